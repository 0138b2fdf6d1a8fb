//! Recorded observations: the frame stacks an agent met while playing, for
//! calibration (`export --calib`) and the parity harness. Format version 2
//! (specified in `docs/recording-format.md`; version 1 is still read):
//!
//! 1. a postcard-encoded [`RecordingHeader`] (magic `FLAPREC1`, version,
//!    counts, seed, CRC-32 of the seed, the counts and the body);
//! 2. the body: `frames` unique bit-packed frames of 800 bytes, then
//!    `stacks` stacks of four little-endian `u32` frame indices (oldest first).
//!
//! Consecutive stacks of one episode share three frames, so storing each frame
//! once makes a recording about 4x smaller than raw stacks.

use anyhow::{bail, Context, Result};
use flappy::{Frame, FrameStack, FRAME_BYTES, STACK_LEN};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Magic bytes at the start of every recording.
pub const MAGIC: [u8; 8] = *b"FLAPREC1";
/// The format version this code writes. It also reads version 1, whose CRC
/// covered the body only (so a flipped bit in the seed went unnoticed).
pub const VERSION: u16 = 2;

/// The header in front of the body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecordingHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: u16,
    /// Bytes per frame (800).
    pub frame_bytes: u32,
    /// Frames per stack (4).
    pub stack_len: u32,
    /// Unique frames in the body.
    pub frames: u32,
    /// Stacks in the body.
    pub stacks: u32,
    /// The first game seed of the recording run.
    pub seed: u64,
    /// CRC-32 (IEEE) of the seed, `frames` and `stacks` (little-endian, in
    /// that order) followed by the body; version 1: of the body alone.
    pub body_crc32: u32,
}

/// A recording in memory: the stacks, in the order they were met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// First game seed.
    pub seed: u64,
    /// The frame stacks.
    pub stacks: Vec<FrameStack>,
}

impl Recording {
    /// Encodes to the version-1 byte format (frames deduplicated).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut frames: Vec<[u8; FRAME_BYTES]> = Vec::new();
        let mut index: HashMap<[u8; FRAME_BYTES], u32> = HashMap::new();
        let mut refs: Vec<u8> = Vec::with_capacity(self.stacks.len() * STACK_LEN * 4);
        for s in &self.stacks {
            for i in 0..STACK_LEN {
                let f = s.frame(i).0;
                let id = *index.entry(f).or_insert_with(|| {
                    frames.push(f);
                    (frames.len() - 1) as u32
                });
                refs.extend_from_slice(&id.to_le_bytes());
            }
        }
        let mut body = Vec::with_capacity(frames.len() * FRAME_BYTES + refs.len());
        for f in &frames {
            body.extend_from_slice(f);
        }
        body.extend_from_slice(&refs);
        let header = RecordingHeader {
            magic: MAGIC,
            version: VERSION,
            frame_bytes: FRAME_BYTES as u32,
            stack_len: STACK_LEN as u32,
            frames: u32::try_from(frames.len()).context("too many frames")?,
            stacks: u32::try_from(self.stacks.len()).context("too many stacks")?,
            seed: self.seed,
            body_crc32: 0,
        };
        let header = RecordingHeader {
            body_crc32: checksum(&header, &body),
            ..header
        };
        let mut out = postcard::to_allocvec(&header)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes and validates the byte format; every defect is an error naming it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Recording> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            bail!(
                "not a recording (missing magic {:?})",
                String::from_utf8_lossy(&MAGIC)
            );
        }
        let (h, body): (RecordingHeader, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| anyhow::anyhow!("truncated or corrupt recording header: {e}"))?;
        if h.version != VERSION && h.version != 1 {
            bail!(
                "recording format version {} is not supported (this build reads versions 1 and {VERSION})",
                h.version
            );
        }
        if h.frame_bytes as usize != FRAME_BYTES || h.stack_len as usize != STACK_LEN {
            bail!("recording has {}-byte frames in stacks of {}, expected {FRAME_BYTES} and {STACK_LEN}", h.frame_bytes, h.stack_len);
        }
        let frames_len = (h.frames as u64) * FRAME_BYTES as u64;
        let expected = frames_len + (h.stacks as u64) * STACK_LEN as u64 * 4;
        if body.len() as u64 != expected {
            bail!(
                "recording body is {} bytes, its header announces {expected} ({} frames, {} stacks): truncated or padded",
                body.len(),
                h.frames,
                h.stacks
            );
        }
        if checksum(&h, body) != h.body_crc32 {
            bail!("recording checksum mismatch: the file is corrupt");
        }
        let (fb, rb) = body.split_at(frames_len as usize);
        let frames: Vec<&[u8]> = fb.chunks_exact(FRAME_BYTES).collect();
        let mut stacks = Vec::with_capacity(h.stacks as usize);
        for (k, refs) in rb.chunks_exact(STACK_LEN * 4).enumerate() {
            let mut s: Option<FrameStack> = None;
            for r in refs.chunks_exact(4) {
                let id = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize;
                let Some(bytes) = frames.get(id) else {
                    bail!(
                        "stack {k} refers to frame {id}, but the recording has {} frames",
                        frames.len()
                    );
                };
                let mut f = Frame::empty();
                f.0.copy_from_slice(bytes);
                match s.as_mut() {
                    None => s = Some(FrameStack::new(&f)),
                    Some(s) => s.push(&f),
                }
            }
            if let Some(s) = s {
                stacks.push(s);
            }
        }
        Ok(Recording {
            seed: h.seed,
            stacks,
        })
    }

    /// Reads and validates a recording file.
    pub fn load(path: &Path) -> Result<Recording> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading recording {}", path.display()))?;
        Recording::from_bytes(&bytes).with_context(|| format!("in recording {}", path.display()))
    }

    /// Writes the recording atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write_atomic(path, &self.to_bytes()?)
    }
}

/// The CRC a header of `h.version` stores for `body`.
fn checksum(h: &RecordingHeader, body: &[u8]) -> u32 {
    if h.version == 1 {
        return policy_core::crc::crc32(body);
    }
    let mut covered = Vec::with_capacity(16 + body.len());
    covered.extend_from_slice(&h.seed.to_le_bytes());
    covered.extend_from_slice(&h.frames.to_le_bytes());
    covered.extend_from_slice(&h.stacks.to_le_bytes());
    covered.extend_from_slice(body);
    policy_core::crc::crc32(&covered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flappy::{Action, Game};

    fn sample(n: usize) -> Recording {
        let mut g = Game::new(5);
        let mut f = g.frame();
        let mut s = FrameStack::new(&f);
        let mut stacks = Vec::new();
        for i in 0..n {
            stacks.push(s);
            let st = g
                .step(if i % 9 == 0 {
                    Action::Flap
                } else {
                    Action::Idle
                })
                .unwrap();
            g.observe(&mut f);
            if st.terminal {
                s.reset(&f)
            } else {
                s.push(&f)
            }
        }
        Recording { seed: 5, stacks }
    }

    #[test]
    fn round_trip_dedups_frames() {
        let r = sample(300);
        let bytes = r.to_bytes().unwrap();
        assert!(
            bytes.len() < 300 * FRAME_BYTES * 2,
            "frames are shared: {}",
            bytes.len()
        );
        assert_eq!(Recording::from_bytes(&bytes).unwrap(), r);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let bytes = sample(40).to_bytes().unwrap();
        for cut in (0..bytes.len()).step_by(97) {
            assert!(
                Recording::from_bytes(&bytes[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        for pos in (0..bytes.len()).step_by(131) {
            let mut b = bytes.clone();
            b[pos] ^= 0x10;
            assert!(Recording::from_bytes(&b).is_err(), "flipped at {pos}");
        }
        let mut v3 = bytes.clone();
        v3[8] = 3; // version (postcard varint right after the 8 magic bytes)
        let e = Recording::from_bytes(&v3).unwrap_err().to_string();
        assert!(e.contains("version 3"), "{e}");
        let e = Recording::from_bytes(b"hello world")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a recording"), "{e}");
    }

    #[test]
    fn every_header_bit_is_covered() {
        let r = sample(40);
        let bytes = r.to_bytes().unwrap();
        let (_, body) = postcard::take_from_bytes::<RecordingHeader>(&bytes).unwrap();
        let header_len = bytes.len() - body.len();
        for pos in 0..header_len {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[pos] ^= 1 << bit;
                // A flip may still decode, but never to the same recording.
                if let Ok(got) = Recording::from_bytes(&b) {
                    panic!("flip {pos}:{bit} loaded (seed {})", got.seed);
                }
            }
        }
    }

    #[test]
    fn version_1_files_still_load() {
        let r = sample(30);
        let v2 = r.to_bytes().unwrap();
        let (h, body) = postcard::take_from_bytes::<RecordingHeader>(&v2).unwrap();
        let h1 = RecordingHeader {
            version: 1,
            body_crc32: policy_core::crc::crc32(body),
            ..h
        };
        let mut v1 = postcard::to_allocvec(&h1).unwrap();
        v1.extend_from_slice(body);
        assert_eq!(Recording::from_bytes(&v1).unwrap(), r);
        // In version 1 the seed was not covered: the reason for version 2.
        let h1_bad_seed = RecordingHeader { seed: 6, ..h1 };
        let mut v1 = postcard::to_allocvec(&h1_bad_seed).unwrap();
        v1.extend_from_slice(body);
        assert_eq!(Recording::from_bytes(&v1).unwrap().seed, 6);
    }
}
