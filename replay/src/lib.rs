//! Replay memory that stores each bit-packed frame once.
//!
//! Every environment has its own ring (so an environment's steps are
//! contiguous). Entry `i` of a ring holds the observation `o_i` the agent saw,
//! the action it took, the reward it got and whether that step ended the
//! episode. The 4-stack of entry `i` is rebuilt from entries `i-3..=i`; when an
//! episode started inside that window (or the window reaches past the oldest
//! entry still stored), the earlier channels repeat the episode's first frame,
//! exactly as `FrameStack` does at a reset, so stacks never mix episodes.
//!
//! Memory: 800 bytes + 6 bytes per transition (1M transitions ≈ 0.8 GB).
//! Prioritized sampling draws from a sum tree ([`priority`]).

pub mod priority;

use crate::priority::SumTree;
use flappy::{Frame, FRAME_BYTES, STACK_LEN};
use rand_core::RngCore;
use rand_pcg::Pcg32;

/// One environment's ring.
#[derive(Clone)]
struct Ring {
    frames: Vec<[u8; FRAME_BYTES]>,
    actions: Vec<u8>,
    rewards: Vec<f32>,
    /// Bit 0: the step ended the episode; bit 1: this entry is an episode's first frame.
    flags: Vec<u8>,
    /// Total entries ever written (the next logical index).
    written: u64,
}

const DONE: u8 = 1;
const FIRST: u8 = 2;
/// A frame stored only to complete the stacks after it (the past of a
/// retried game, [`Replay::push_context`]): not a transition of its own.
const CONTEXT: u8 = 4;

impl Ring {
    fn cap(&self) -> u64 {
        self.frames.len() as u64
    }
    fn oldest(&self) -> u64 {
        self.written.saturating_sub(self.cap())
    }
    fn slot(&self, logical: u64) -> usize {
        (logical % self.cap()) as usize
    }
}

/// A sampled n-step transition, as indices into the memory (see [`Replay::stack`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Environment (ring) index.
    pub env: usize,
    /// Logical index of the state's newest frame.
    pub index: u64,
    /// Action taken.
    pub action: u8,
    /// Discounted sum of the `steps` rewards.
    pub ret: f32,
    /// Number of rewards summed (1..=n).
    pub steps: u32,
    /// The episode ended within those steps (no bootstrap).
    pub done: bool,
    /// Logical index of the bootstrap state's newest frame.
    pub next_index: u64,
}

/// The replay memory (see the module docs).
pub struct Replay {
    rings: Vec<Ring>,
    /// Prioritized replay: the priorities `p^alpha` by leaf `env * per_ring + slot`.
    tree: Option<SumTree>,
    alpha: f64,
}

/// Transitions drawn by priority, with their importance-sampling weights.
pub struct Prioritized {
    /// The transitions.
    pub samples: Vec<Sample>,
    /// `(N * P(i))^-beta`, divided by the batch's largest.
    pub weights: Vec<f32>,
    /// Their leaves in the sum tree (for [`Replay::set_priorities`]).
    pub leaves: Vec<usize>,
}

/// Added to every |TD error| so no stored transition's priority is 0.
pub const PRIORITY_EPS: f64 = 1e-3;

impl Replay {
    /// `capacity` transitions in total, split evenly over `envs` environments.
    pub fn new(capacity: usize, envs: usize) -> Replay {
        let per = (capacity / envs.max(1)).max(STACK_LEN + 2);
        let ring = Ring {
            frames: vec![[0u8; FRAME_BYTES]; per],
            actions: vec![0; per],
            rewards: vec![0.0; per],
            flags: vec![0; per],
            written: 0,
        };
        Replay {
            rings: vec![ring; envs.max(1)],
            tree: None,
            alpha: 0.0,
        }
    }

    /// Turns on prioritized replay with exponent `alpha` (0 < alpha <= 1):
    /// new transitions get the largest priority seen so far.
    pub fn with_priorities(mut self, alpha: f64) -> Replay {
        let per = self.rings[0].frames.len();
        self.tree = Some(SumTree::new(per * self.rings.len()));
        self.alpha = alpha;
        self
    }

    /// Whether sampling is prioritized.
    pub fn is_prioritized(&self) -> bool {
        self.tree.is_some()
    }

    /// Stores environment `env`'s step: it observed `obs` (the first frame of an
    /// episode if `first`), took `action`, got `reward`, and `done` tells
    /// whether the episode ended there.
    pub fn push(
        &mut self,
        env: usize,
        obs: &Frame,
        first: bool,
        action: u8,
        reward: f32,
        done: bool,
    ) {
        let r = &mut self.rings[env];
        let s = r.slot(r.written);
        r.frames[s] = obs.0;
        r.actions[s] = action;
        r.rewards[s] = reward;
        r.flags[s] = (u8::from(done) * DONE) | (u8::from(first) * FIRST);
        r.written += 1;
        let leaf = env * r.frames.len() + s;
        if let Some(t) = &mut self.tree {
            let p = t.max_priority();
            t.set(leaf, p);
        }
    }

    /// Stores the frames that precede a game put back into an earlier state
    /// (oldest first), so the stacks of the steps pushed next are rebuilt as
    /// the agent saw them. They start a new stretch of the ring and are never
    /// sampled as transitions.
    pub fn push_context(&mut self, env: usize, older: &[Frame]) {
        for (k, f) in older.iter().enumerate() {
            let r = &mut self.rings[env];
            let s = r.slot(r.written);
            r.frames[s] = f.0;
            r.actions[s] = 0;
            r.rewards[s] = 0.0;
            r.flags[s] = CONTEXT | if k == 0 { FIRST } else { 0 };
            r.written += 1;
            let leaf = env * r.frames.len() + s;
            if let Some(t) = &mut self.tree {
                t.set(leaf, 0.0);
            }
        }
    }

    /// Bytes of memory per stored transition (frame, action, reward, flags).
    pub const BYTES_PER_TRANSITION: usize = FRAME_BYTES + 1 + 4 + 1;

    /// Bytes held by the memory's buffers.
    pub fn bytes(&self) -> usize {
        self.rings.iter().map(|r| r.frames.len()).sum::<usize>() * Self::BYTES_PER_TRANSITION
    }

    /// Transitions stored (over all environments).
    pub fn len(&self) -> usize {
        self.rings
            .iter()
            .map(|r| (r.written - r.oldest()) as usize)
            .sum()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The four frames (oldest first) of the stack whose newest frame is entry `index`.
    pub fn stack(&self, env: usize, index: u64) -> [&[u8; FRAME_BYTES]; STACK_LEN] {
        let r = &self.rings[env];
        let mut idx = [index; STACK_LEN];
        let mut cur = index;
        for c in (0..STACK_LEN - 1).rev() {
            let at_start = r.flags[r.slot(cur)] & FIRST != 0 || cur == r.oldest();
            if !at_start {
                cur -= 1;
            }
            idx[c] = cur;
        }
        idx.map(|i| &r.frames[r.slot(i)])
    }

    /// The n-step transition starting at entry `index` of ring `env`: rewards
    /// are summed until a terminal step, `n` steps, or the newest entry
    /// (whose successor is not stored yet), whichever comes first. `None` if
    /// `index` is the newest entry or no longer stored.
    pub fn transition(&self, env: usize, index: u64, n: usize, gamma: f32) -> Option<Sample> {
        let r = &self.rings[env];
        if index < r.oldest() || index + 1 >= r.written || r.flags[r.slot(index)] & CONTEXT != 0 {
            return None;
        }
        let mut ret = 0.0;
        let mut disc = 1.0;
        let mut steps = 0;
        let mut done = false;
        let mut i = index;
        while steps < n as u32 && i + 1 < r.written {
            let s = r.slot(i);
            // A run resumed from a checkpoint starts new episodes in the same
            // ring: an entry that did not end its episode but is followed by
            // an episode's first frame lost its successor at the cut.
            if r.flags[s] & DONE == 0 && r.flags[r.slot(i + 1)] & FIRST != 0 {
                if steps == 0 {
                    return None;
                }
                break;
            }
            ret += disc * r.rewards[s];
            disc *= gamma;
            steps += 1;
            i += 1;
            if r.flags[s] & DONE != 0 {
                done = true;
                break;
            }
        }
        Some(Sample {
            env,
            index,
            action: r.actions[r.slot(index)],
            ret,
            steps,
            done,
            next_index: i,
        })
    }

    /// The logical index now stored at leaf `leaf` (`None`: never written).
    fn leaf_index(&self, leaf: usize) -> Option<(usize, u64)> {
        let per = self.rings[0].frames.len();
        let (env, slot) = (leaf / per, (leaf % per) as u64);
        let r = self.rings.get(env)?;
        if slot >= r.written {
            return None;
        }
        let newest = r.written - 1;
        let back = (newest % r.cap() + r.cap() - slot) % r.cap();
        Some((env, newest - back))
    }

    /// Samples `batch` transitions with probability proportional to their
    /// priority (one from each of `batch` equal slices of the total), with
    /// importance-sampling weights for exponent `beta`. Falls back to no
    /// samples when nothing can be drawn (empty memory or not prioritized).
    pub fn sample_prioritized(
        &self,
        rng: &mut Pcg32,
        batch: usize,
        n: usize,
        gamma: f32,
        beta: f64,
    ) -> Prioritized {
        let mut out = Prioritized {
            samples: Vec::with_capacity(batch),
            weights: Vec::with_capacity(batch),
            leaves: Vec::with_capacity(batch),
        };
        let Some(tree) = &self.tree else { return out };
        let total = tree.total();
        let stored = self.len() as f64;
        if total <= 0.0 || stored < 2.0 {
            return out;
        }
        let mut probs = Vec::with_capacity(batch);
        for k in 0..batch {
            // The newest entry of each ring has no successor yet: draw again.
            for _ in 0..64 {
                let leaf = tree.sample_stratum(rng, k, batch);
                let Some((env, idx)) = self.leaf_index(leaf) else {
                    continue;
                };
                if let Some(s) = self.transition(env, idx, n, gamma) {
                    out.samples.push(s);
                    out.leaves.push(leaf);
                    probs.push(tree.get(leaf) / total);
                    break;
                }
            }
        }
        let w: Vec<f64> = probs.iter().map(|&p| (stored * p).powf(-beta)).collect();
        let max = w.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
        out.weights = w.iter().map(|&x| (x / max) as f32).collect();
        out
    }

    /// Sets the priorities of `leaves` from their new |TD errors|.
    pub fn set_priorities(&mut self, leaves: &[usize], td_abs: &[f32]) {
        let alpha = self.alpha;
        if let Some(t) = &mut self.tree {
            for (&leaf, &d) in leaves.iter().zip(td_abs) {
                t.set(leaf, (d.abs() as f64 + PRIORITY_EPS).powf(alpha));
            }
        }
    }

    /// Samples `batch` transitions uniformly (environment, then entry).
    pub fn sample(&self, rng: &mut Pcg32, batch: usize, n: usize, gamma: f32) -> Vec<Sample> {
        let mut out = Vec::with_capacity(batch);
        let mut tries = 0;
        while out.len() < batch && tries < batch * 100 {
            tries += 1;
            let env = (rng.next_u32() as usize) % self.rings.len();
            let r = &self.rings[env];
            let avail = r.written - r.oldest();
            if avail < 2 {
                continue;
            }
            let span = avail - 1;
            let idx = r.oldest() + ((rng.next_u64()) % span);
            if let Some(s) = self.transition(env, idx, n, gamma) {
                out.push(s);
            }
        }
        out
    }
}

/// Magic bytes of a saved replay memory (`replay.bin` in a checkpoint).
pub const FILE_MAGIC: [u8; 8] = *b"FLAPRPL1";
/// Version of the saved replay memory format.
pub const FILE_VERSION: u32 = 1;

impl Replay {
    /// Writes the stored transitions to `w`: magic, version, the ring count
    /// and size, each ring's `written` counter, then each ring's stored
    /// entries oldest first (frames, actions, rewards as f32 LE, flags), then
    /// a CRC-32 of everything before it (all integers little-endian). Only
    /// what is stored is written: 806 bytes per transition.
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut h = crc32fast::Hasher::new();
        let mut put = |w: &mut dyn std::io::Write, b: &[u8]| -> std::io::Result<()> {
            h.update(b);
            w.write_all(b)
        };
        put(w, &FILE_MAGIC)?;
        put(w, &FILE_VERSION.to_le_bytes())?;
        put(w, &(self.rings.len() as u32).to_le_bytes())?;
        put(w, &(self.rings[0].frames.len() as u64).to_le_bytes())?;
        for r in &self.rings {
            put(w, &r.written.to_le_bytes())?;
        }
        for r in &self.rings {
            let live = r.oldest()..r.written;
            for i in live.clone() {
                put(w, &r.frames[r.slot(i)])?;
            }
            let mut bytes = Vec::with_capacity(6 * (r.written - r.oldest()) as usize);
            bytes.extend(live.clone().map(|i| r.actions[r.slot(i)]));
            for i in live.clone() {
                bytes.extend_from_slice(&r.rewards[r.slot(i)].to_le_bytes());
            }
            bytes.extend(live.map(|i| r.flags[r.slot(i)]));
            put(w, &bytes)?;
        }
        let crc = h.finalize();
        w.write_all(&crc.to_le_bytes())
    }

    /// Reads what [`Replay::write_to`] wrote into this (empty) memory, which
    /// must have the same number of rings and ring size; every defect is an
    /// error naming it, and on error the memory is left empty.
    pub fn read_from(&mut self, r: &mut impl std::io::Read) -> anyhow::Result<()> {
        let res = self.read_inner(r);
        if res.is_err() {
            for ring in &mut self.rings {
                ring.written = 0;
            }
        }
        res
    }

    fn read_inner(&mut self, rd: &mut impl std::io::Read) -> anyhow::Result<()> {
        use anyhow::{bail, Context};
        let mut h = crc32fast::Hasher::new();
        let mut take = |rd: &mut dyn std::io::Read, buf: &mut [u8]| -> anyhow::Result<()> {
            rd.read_exact(buf).context("truncated replay memory")?;
            h.update(buf);
            Ok(())
        };
        let mut b8 = [0u8; 8];
        let mut b4 = [0u8; 4];
        take(rd, &mut b8)?;
        if b8 != FILE_MAGIC {
            bail!("not a saved replay memory (bad magic)");
        }
        take(rd, &mut b4)?;
        let version = u32::from_le_bytes(b4);
        if version != FILE_VERSION {
            bail!("replay memory format version {version}, this build reads {FILE_VERSION}");
        }
        take(rd, &mut b4)?;
        let rings = u32::from_le_bytes(b4) as usize;
        take(rd, &mut b8)?;
        let per = u64::from_le_bytes(b8);
        let my_per = self.rings[0].frames.len() as u64;
        if rings != self.rings.len() || per != my_per {
            bail!(
                "the saved replay memory has {rings} rings of {per}, this run {} of {my_per} (num_envs or replay_capacity changed)",
                self.rings.len()
            );
        }
        let mut written = Vec::with_capacity(rings);
        for _ in 0..rings {
            take(rd, &mut b8)?;
            written.push(u64::from_le_bytes(b8));
        }
        for (ring, &wr) in self.rings.iter_mut().zip(&written) {
            ring.written = wr;
            let live = ring.oldest()..wr;
            let n = (wr - ring.oldest()) as usize;
            for i in live.clone() {
                let s = ring.slot(i);
                take(rd, &mut ring.frames[s])?;
            }
            let mut bytes = vec![0u8; 6 * n];
            take(rd, &mut bytes)?;
            let (acts, rest) = bytes.split_at(n);
            let (rews, flags) = rest.split_at(4 * n);
            for (k, i) in live.enumerate() {
                let s = ring.slot(i);
                ring.actions[s] = acts[k];
                ring.rewards[s] = f32::from_le_bytes([
                    rews[4 * k],
                    rews[4 * k + 1],
                    rews[4 * k + 2],
                    rews[4 * k + 3],
                ]);
                ring.flags[s] = flags[k];
            }
        }
        let want = h.finalize();
        rd.read_exact(&mut b4)
            .context("truncated replay memory (no checksum)")?;
        if u32::from_le_bytes(b4) != want {
            bail!("replay memory checksum mismatch: the file is corrupt");
        }
        let mut extra = [0u8; 1];
        if rd.read(&mut extra)? != 0 {
            bail!("unexpected bytes after the replay memory");
        }
        if let Some(t) = &mut self.tree {
            // Priorities are not saved: every restored transition starts at the largest.
            let p = t.max_priority();
            for (env, ring) in self.rings.iter().enumerate() {
                for i in ring.oldest()..ring.written {
                    t.set(env * ring.frames.len() + ring.slot(i), p);
                }
            }
        }
        Ok(())
    }

    /// Saves the memory to `path` (through a buffered writer).
    pub fn save(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use anyhow::Context;
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        self.write_to(&mut w)
            .and_then(|()| std::io::Write::flush(&mut w))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Loads a memory saved by [`Replay::save`] into this empty one.
    pub fn load(&mut self, path: &std::path::Path) -> anyhow::Result<()> {
        use anyhow::Context;
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, f);
        self.read_from(&mut r)
            .with_context(|| format!("in {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn context_frames_complete_stacks_and_are_never_sampled() {
        let mut r = Replay::new(1000, 1);
        // An episode of 10 steps that crashes, then the game put back at its
        // step 6 (context: its frames 3, 4, 5), then 5 more steps.
        for t in 0..10u8 {
            r.push(0, &frame(t), t == 0, t % 2, 0.1, t == 9);
        }
        r.push_context(0, &[frame(3), frame(4), frame(5)]);
        for t in 6..11u8 {
            r.push(0, &frame(100 + t), false, 1, 0.1, false);
        }
        let first_retried = 13;
        let stack = r.stack(0, first_retried);
        let want = [frame(3), frame(4), frame(5), frame(106)];
        for (got, want) in stack.iter().zip(&want) {
            assert_eq!(**got, want.0);
        }
        // The next one slides on: 4, 5, 106, 107.
        assert_eq!(*r.stack(0, first_retried + 1)[0], frame(4).0);
        for i in 10..13 {
            assert_eq!(r.transition(0, i, 3, 0.9), None, "context entry {i}");
        }
        // The crash before the context is still a terminal transition.
        let crash = r.transition(0, 9, 3, 0.9).unwrap();
        assert!(crash.done && crash.steps == 1);
        let mut rng = Pcg32::seed_from_u64(5);
        for s in r.sample(&mut rng, 500, 3, 0.9) {
            assert!(!(10..13).contains(&s.index));
        }
        let mut p = Replay::new(1000, 1).with_priorities(0.6);
        for t in 0..10u8 {
            p.push(0, &frame(t), t == 0, 0, 0.1, t == 9);
        }
        p.push_context(0, &[frame(3), frame(4), frame(5)]);
        p.push(0, &frame(6), false, 0, 0.1, false);
        p.push(0, &frame(7), false, 0, 0.1, false);
        let drawn = p.sample_prioritized(&mut rng, 200, 1, 0.9, 0.4);
        assert!(drawn.samples.iter().all(|s| !(10..13).contains(&s.index)));
    }

    #[test]
    fn saved_memory_round_trips_and_every_corruption_is_refused() {
        let mut r = Replay::new(40, 2);
        for t in 0..57u8 {
            for env in 0..2 {
                let done = t % 13 == 12;
                r.push(
                    env,
                    &frame(t.wrapping_add(env as u8)),
                    t % 13 == 0,
                    t % 2,
                    0.1 * t as f32,
                    done,
                );
            }
        }
        let mut bytes = Vec::new();
        r.write_to(&mut bytes).unwrap();
        let mut back = Replay::new(40, 2);
        back.read_from(&mut &bytes[..]).unwrap();
        assert_eq!(back.len(), r.len());
        for env in 0..2 {
            for i in r.rings[env].oldest()..r.rings[env].written {
                assert_eq!(back.stack(env, i), r.stack(env, i));
                assert_eq!(
                    back.transition(env, i, 3, 0.9),
                    r.transition(env, i, 3, 0.9)
                );
            }
        }
        for cut in [0, 5, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut m = Replay::new(40, 2);
            assert!(m.read_from(&mut &bytes[..cut]).is_err(), "cut {cut}");
            assert!(m.is_empty());
        }
        for pos in (0..bytes.len()).step_by(37) {
            let mut b = bytes.clone();
            b[pos] ^= 4;
            assert!(
                Replay::new(40, 2).read_from(&mut &b[..]).is_err(),
                "flip {pos}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Replay::new(40, 2).read_from(&mut &longer[..]).is_err());
        let e = Replay::new(40, 4).read_from(&mut &bytes[..]).unwrap_err();
        assert!(e.to_string().contains("num_envs"), "{e}");
    }

    #[test]
    fn a_resume_cut_is_never_bridged() {
        let mut r = Replay::new(100, 1);
        for t in 0..10u8 {
            r.push(0, &frame(t), t == 0, 0, 1.0, false);
        }
        // Resumed: a new episode starts in the same ring without a terminal step.
        for t in 10..20u8 {
            r.push(0, &frame(t), t == 10, 0, 1.0, false);
        }
        // Entry 9 lost its successor; entries 7 and 8 stop before the cut.
        assert_eq!(r.transition(0, 9, 3, 1.0), None);
        let s = r.transition(0, 8, 3, 1.0).unwrap();
        assert_eq!((s.steps, s.next_index, s.done), (1, 9, false));
        let s = r.transition(0, 7, 3, 1.0).unwrap();
        assert_eq!((s.steps, s.next_index), (2, 9));
        // Inside the new episode everything is as usual.
        let s = r.transition(0, 10, 3, 1.0).unwrap();
        assert_eq!((s.steps, s.next_index, s.ret), (3, 13, 3.0));
    }

    fn frame(n: u8) -> Frame {
        Frame([n; FRAME_BYTES])
    }
    fn ids(st: [&[u8; FRAME_BYTES]; 4]) -> [u8; 4] {
        st.map(|f| f[0])
    }

    #[test]
    fn prioritized_sampling_prefers_large_errors_and_weights_correct_it() {
        let mut r = Replay::new(64, 2).with_priorities(1.0);
        for t in 0..100u8 {
            for env in 0..2 {
                r.push(env, &frame(t), t == 0, t % 2, 0.1, false);
            }
        }
        let mut rng = Pcg32::seed_from_u64(5);
        let b = r.sample_prioritized(&mut rng, 32, 3, 0.99, 0.5);
        assert_eq!(b.samples.len(), 32);
        // Every drawn leaf maps back to the transition it was drawn for.
        for (s, &leaf) in b.samples.iter().zip(&b.leaves) {
            assert_eq!(r.leaf_index(leaf), Some((s.env, s.index)));
        }
        // Give one transition a large error (30), the rest a unit one: it holds
        // about 30 / 93 of the priority mass, against 1 / 64 when uniform.
        let all: Vec<usize> = (0..64).collect();
        r.set_priorities(&all, &[1.0; 64]);
        let hot = b.leaves[0];
        r.set_priorities(&[hot], &[30.0]);
        let b = r.sample_prioritized(&mut rng, 32, 3, 0.99, 1.0);
        let hits = b.leaves.iter().filter(|&&l| l == hot).count();
        assert!(
            (8..=13).contains(&hits),
            "the high-error transition takes its share: {hits}/32"
        );
        // With beta = 1 its weight is the smallest: (N P)^-1 undoes the bias.
        let weight_of = |pick: &dyn Fn(usize) -> bool| -> Vec<f32> {
            b.leaves
                .iter()
                .zip(&b.weights)
                .filter(|(&l, _)| pick(l))
                .map(|(_, &w)| w)
                .collect()
        };
        let (hot_w, cold_w) = (weight_of(&|l| l == hot), weight_of(&|l| l != hot));
        assert!(!hot_w.is_empty() && !cold_w.is_empty());
        let wh = hot_w.iter().copied().fold(0.0f32, f32::max);
        let wc = cold_w.iter().copied().fold(1.0f32, f32::min);
        assert!(wh < wc, "hot weight {wh} vs cold {wc}");
        assert!(b.weights.iter().all(|&w| w > 0.0 && w <= 1.0));
    }

    #[test]
    fn stacks_never_cross_episode_starts() {
        let mut r = Replay::new(100, 1);
        // episode A: frames 1,2,3 (3 ends it); episode B: 10, 11, 12, 13, 14
        r.push(0, &frame(1), true, 0, 0.1, false);
        r.push(0, &frame(2), false, 0, 0.1, false);
        r.push(0, &frame(3), false, 1, -1.0, true);
        for (k, n) in [10u8, 11, 12, 13, 14].iter().enumerate() {
            r.push(0, &frame(*n), k == 0, 0, 0.1, false);
        }
        assert_eq!(ids(r.stack(0, 0)), [1, 1, 1, 1]);
        assert_eq!(ids(r.stack(0, 2)), [1, 1, 2, 3]);
        assert_eq!(ids(r.stack(0, 3)), [10, 10, 10, 10]);
        assert_eq!(ids(r.stack(0, 4)), [10, 10, 10, 11]);
        assert_eq!(ids(r.stack(0, 7)), [11, 12, 13, 14]);
    }

    #[test]
    fn wrap_around_keeps_order_and_oldest_is_a_start() {
        let mut r = Replay::new(6, 1);
        for n in 0..10u8 {
            r.push(0, &frame(n), n == 0, 0, 0.1, false);
        }
        assert_eq!(r.len(), 6);
        // entries 4..=9 survive; 4 is the oldest and acts as a start
        assert_eq!(ids(r.stack(0, 9)), [6, 7, 8, 9]);
        assert_eq!(ids(r.stack(0, 5)), [4, 4, 4, 5]);
        assert!(r.transition(0, 3, 1, 0.9).is_none(), "overwritten");
        assert!(
            r.transition(0, 9, 1, 0.9).is_none(),
            "newest has no successor"
        );
        let t = r.transition(0, 8, 3, 0.5).unwrap();
        assert_eq!((t.steps, t.next_index, t.done), (1, 9, false));
    }

    #[test]
    fn n_step_truncates_at_terminal_and_write_head() {
        let mut r = Replay::new(100, 1);
        let rw = [0.1f32, 1.0, 0.1, -1.0, 0.1, 0.1];
        for (i, rew) in rw.iter().enumerate() {
            r.push(0, &frame(i as u8), i == 0 || i == 4, 0, *rew, i == 3);
        }
        let t = r.transition(0, 0, 3, 0.5).unwrap();
        assert_eq!((t.steps, t.done, t.next_index), (3, false, 3));
        assert!((t.ret - (0.1 + 0.5 * 1.0 + 0.25 * 0.1)).abs() < 1e-6);
        let t = r.transition(0, 2, 3, 0.5).unwrap();
        assert_eq!((t.steps, t.done), (2, true));
        assert!((t.ret - (0.1 - 0.5)).abs() < 1e-6);
        // at the write head: entries 4, 5 stored, 5 is newest
        let t = r.transition(0, 4, 3, 0.5).unwrap();
        assert_eq!((t.steps, t.done, t.next_index), (1, false, 5));
    }

    #[test]
    fn a_million_transitions_fit_in_a_gibibyte() {
        // The accounting matches the buffers actually allocated ...
        let r = Replay::new(10_000, 8);
        let held: usize = r
            .rings
            .iter()
            .map(|g| {
                g.frames.len() * std::mem::size_of::<[u8; FRAME_BYTES]>()
                    + g.actions.len()
                    + g.rewards.len() * std::mem::size_of::<f32>()
                    + g.flags.len()
            })
            .sum();
        assert_eq!(r.bytes(), held);
        // ... and scales to 1M transitions within 1 GiB.
        let per_transition = held / 10_000;
        assert!(per_transition * 1_000_000 <= 1 << 30, "{per_transition} B");
    }

    #[test]
    fn envs_are_separate_and_sampling_is_valid() {
        let mut r = Replay::new(40, 2);
        for n in 0..30u8 {
            r.push(0, &frame(n), n == 0, 1, 0.1, false);
            r.push(1, &frame(100 + n), n == 0, 0, 0.1, n % 7 == 6);
        }
        let mut rng = Pcg32::seed_from_u64(3);
        let s = r.sample(&mut rng, 64, 3, 0.99);
        assert_eq!(s.len(), 64);
        for t in s {
            let st = ids(r.stack(t.env, t.index));
            assert!(st.iter().all(|&v| (v >= 100) == (t.env == 1)));
            assert!(t.next_index > t.index && t.steps >= 1);
        }
    }
}
