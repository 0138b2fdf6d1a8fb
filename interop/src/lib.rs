//! The policy blob in the standard int8 file formats, without libtorch.
//!
//! * [`tflite`]: a TFLite int8 flatbuffer (LiteRT, TFLite Micro, Netron);
//! * [`onnx`]: an ONNX QDQ graph (ONNX Runtime, OpenVINO, tract, Netron);
//!
//! both from one lowering ([`plan`]) of a blob read by policy-core's own
//! parser, with the blob's integer weights and biases, and f32 scales chosen
//! so that TFLite's requantization reproduces policy-core's bit for bit
//! ([`mapping`]; the whole mapping is in `docs/interop.md`), in two
//! [`Flavour`]s: `exact` (bit-exact under LiteRT's reference kernels and
//! TFLite Micro, the default) and `fast` (the same integers in the operators
//! the optimized runtimes' fast paths take). Also: policy-core's per-layer
//! outputs on recorded frames as `.npy` files ([`trace`], for the
//! conformance tests) and its latency on the same frames ([`mod@bench`], for
//! `make peers`; with the `tract` feature also tract's, `tract`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
#[cfg(test)]
mod fbread;
pub mod mapping;
pub mod npy;
pub mod onnx;
mod pb;
pub mod plan;
pub mod q_offset;
pub mod tflite;
pub mod trace;
#[cfg(feature = "tract")]
pub mod tract;

use anyhow::{Context, Result};
use std::path::Path;

/// A standard file format the blob can be written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TFLite int8 flatbuffer (`.tflite`).
    Tflite,
    /// ONNX QDQ graph (`.onnx`).
    Onnx,
}

impl std::str::FromStr for Format {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Format> {
        match s {
            "tflite" => Ok(Format::Tflite),
            "onnx" => Ok(Format::Onnx),
            other => anyhow::bail!("unknown format {other:?} (tflite or onnx)"),
        }
    }
}

/// Which graph a file holds. Both carry the blob's integer weights, biases
/// and scales; they differ in the operators (docs/interop.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flavour {
    /// The conformance graph: TFLite's reference kernels and TFLite Micro
    /// compute policy-core's integers at every stage.
    #[default]
    Exact,
    /// The graph the optimized runtimes run fastest: TFLite's first conv
    /// after a `SPACE_TO_DEPTH`, `FULLY_CONNECTED` dense layers and a float
    /// output layer; ONNX with uint8 activations (policy-core's own, zero
    /// point 0) and a uint8 NHWC input.
    Fast,
}

impl Flavour {
    /// Both flavours, the default first.
    pub const ALL: [Flavour; 2] = [Flavour::Exact, Flavour::Fast];

    /// The name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Exact => "exact",
            Flavour::Fast => "fast",
        }
    }
}

impl std::str::FromStr for Flavour {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Flavour> {
        Flavour::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown flavour {s:?} (exact or fast)"))
    }
}

/// Parses and validates a blob with policy-core's parser, then lowers it.
pub fn lower_blob(blob: &[u8]) -> Result<plan::Plan> {
    let (model, stages) =
        policy_core::Model::from_bytes(blob).context("not a valid policy blob")?;
    let mut plan = plan::lower(&model, &stages)?;
    plan.q_fit = Some(q_offset::q_fit(blob)?);
    Ok(plan)
}

/// The blob written in `format` and `flavour`.
pub fn convert(blob: &[u8], format: Format, flavour: Flavour) -> Result<Vec<u8>> {
    write_plan(&lower_blob(blob)?, format, flavour)
}

fn write_plan(plan: &plan::Plan, format: Format, flavour: Flavour) -> Result<Vec<u8>> {
    match format {
        Format::Tflite => tflite::write(plan, flavour),
        Format::Onnx => Ok(onnx::write(plan, flavour)),
    }
}

/// A model with one trivial operator in `format`, to measure the cost of a
/// call into a runtime (`make peers`).
pub fn null_model(format: Format) -> Vec<u8> {
    match format {
        Format::Tflite => tflite::null_model(),
        Format::Onnx => onnx::null_model(),
    }
}

/// Reads the blob at `blob`, writes it in `format` (the exact flavour) to
/// `out` (atomically) and returns a short report of the requantization mapping.
pub fn convert_file(blob: &Path, format: Format, out: &Path) -> Result<String> {
    convert_file_as(blob, format, Flavour::Exact, out)
}

/// [`convert_file`] in a chosen flavour.
pub fn convert_file_as(
    blob: &Path,
    format: Format,
    flavour: Flavour,
    out: &Path,
) -> Result<String> {
    let bytes = std::fs::read(blob).with_context(|| format!("cannot read {}", blob.display()))?;
    let plan = lower_blob(&bytes).with_context(|| blob.display().to_string())?;
    let data = write_plan(&plan, format, flavour)?;
    atomic::write_atomic(out, &data)?;
    Ok(format!(
        "{}wrote {} ({} bytes)",
        mapping_report(&plan),
        out.display(),
        data.len()
    ))
}

/// One line per hidden stage: how many channels' TFLite multipliers give
/// policy-core's outputs for every possible accumulator.
pub fn mapping_report(plan: &plan::Plan) -> String {
    let mut s = String::new();
    for (i, st) in plan.stages.iter().enumerate() {
        if st.last {
            s += &format!(
                "stage {i} (layer {}): output layer, multiplier 1 (the exact flavour's int16 outputs are the int32 Q-values less {})\n",
                st.layer,
                plan.q_offset()
            );
            if let Some(f) = plan.q_fit {
                s += &format!(
                    "  Q-values in the policy's own play: {}..={}{}\n",
                    f.lo,
                    f.hi,
                    if f.fits() {
                        String::new()
                    } else {
                        format!(
                            "; WARNING: wider than the int16 output holds (+-{} less the offset): \
                             the exact flavour saturates there, the fast flavour does not",
                            q_offset::LIMIT
                        )
                    }
                );
            }
            continue;
        }
        let eq = st.channels.iter().filter(|c| c.equivalent).count();
        let same = st
            .channels
            .iter()
            .filter(|c| c.tflite.0 == c.blob.0)
            .count();
        let diff: u64 = st.channels.iter().map(|c| c.differing).sum();
        s += &format!(
            "stage {i} (layer {}): {eq}/{} channels requantize like policy-core for every accumulator ({same} with the very same Q31 mantissa); accumulator values that round differently: {diff}\n",
            st.layer,
            st.channels.len()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_blob_gives_the_parsers_error() {
        let err = convert(b"not a blob", Format::Tflite, Flavour::Exact).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("wrong magic bytes"), "{msg}");
        let mut blob = policy_core::test_support::random_blob(&netspec::TINY, 1);
        let n = blob.len();
        blob[n - 1] ^= 1;
        let msg = format!(
            "{:#}",
            convert(&blob, Format::Onnx, Flavour::Fast).unwrap_err()
        );
        assert!(msg.contains("CRC"), "{msg}");
    }

    #[test]
    fn every_architecture_converts_to_both_formats_in_both_flavours() {
        for arch in netspec::ALL {
            let blob = policy_core::test_support::random_blob(arch, 11);
            for f in [Format::Tflite, Format::Onnx] {
                for fl in Flavour::ALL {
                    let out = convert(&blob, f, fl)
                        .unwrap_or_else(|e| panic!("{} {fl:?}: {e:#}", arch.name));
                    assert!(
                        out.len() > blob.len() / 2,
                        "{}: {} bytes",
                        arch.name,
                        out.len()
                    );
                }
            }
        }
    }

    #[test]
    fn flavour_names_round_trip() {
        for f in Flavour::ALL {
            assert_eq!(f.name().parse::<Flavour>().expect("known"), f);
        }
        assert!("quick".parse::<Flavour>().is_err());
    }
}
