//! An int8 policy that owns its blob: policy-core's [`Policy`] borrows the
//! blob's bytes (zero-copy weights), so the bytes and the policy live
//! together in one self-referential cell. Inference is policy-core's, on
//! integers only, bit for bit what `firmware-sim` and the firmware compute.

use flappy::FrameStack;
use policy_core::{BlobError, Policy, NUM_ACTIONS};
use self_cell::self_cell;

/// The blob and the first conv's nibble table (empty when its geometry has none).
struct Owner {
    blob: Vec<u8>,
    table: Vec<u32>,
}

self_cell!(
    struct Cell {
        owner: Owner,
        #[covariant]
        dependent: Policy,
    }
);

/// A validated policy blob held in memory, ready to decide.
pub struct OwnedPolicy {
    cell: Cell,
}

impl OwnedPolicy {
    /// Parses and validates `blob` (policy-core's checks: magic, version,
    /// CRC, shapes, capacities), and attaches the first conv's nibble table
    /// when it has one (it changes the time of a decision, not its result).
    pub fn from_bytes(blob: Vec<u8>) -> Result<OwnedPolicy, BlobError> {
        let probe = Policy::from_blob(&blob)?;
        let mut table = vec![0u32; probe.conv1_table_len().unwrap_or(0)];
        if probe.write_conv1_table(&mut table).is_err() {
            table.clear();
        }
        drop(probe);
        let cell = Cell::try_new(Owner { blob, table }, |o| {
            let mut p = Policy::from_blob(&o.blob)?;
            if !o.table.is_empty() {
                // Checked against the weights it was written from; were it
                // refused, the gather kernel would serve, with equal results.
                let _ = p.attach_conv1_table(&o.table);
            }
            Ok::<_, BlobError>(p)
        })?;
        Ok(OwnedPolicy { cell })
    }

    /// The integer Q-values of `stack` (Idle, Flap), on the scale
    /// [`OwnedPolicy::output_scale`].
    pub fn q_values(&mut self, stack: &FrameStack) -> [i32; NUM_ACTIONS] {
        self.cell.with_dependent_mut(|_, p| p.q_values(stack))
    }

    /// The float value of one Q-value step: `q ≈ q_values * output_scale`.
    pub fn output_scale(&self) -> f32 {
        self.cell.borrow_dependent().output_scale()
    }

    /// The layers, as `netspec` describes them.
    pub fn layers(&self) -> Vec<netspec::Layer> {
        let model = self.cell.borrow_dependent().model();
        model.layers.iter().map(|l| l.kind.to_netspec()).collect()
    }

    /// The name of the `netspec` architecture with these layers, if any.
    pub fn arch_name(&self) -> Option<&'static str> {
        let layers = self.layers();
        netspec::ALL
            .iter()
            .find(|a| a.layers == layers.as_slice())
            .map(|a| a.name)
    }

    /// Bytes of the blob.
    pub fn blob_len(&self) -> usize {
        self.cell.borrow_owner().blob.len()
    }

    /// Whether the first conv runs through its nibble table.
    pub fn has_conv1_table(&self) -> bool {
        self.cell.borrow_dependent().conv1_table().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn reference_blob() -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/reference/policy.bin");
        std::fs::read(p).expect("models/reference/policy.bin is committed")
    }

    #[test]
    fn decides_like_a_borrowed_policy() {
        let blob = reference_blob();
        let mut owned = OwnedPolicy::from_bytes(blob.clone()).unwrap();
        assert_eq!(owned.arch_name(), Some("compact"));
        assert!(owned.has_conv1_table());
        assert_eq!(owned.blob_len(), blob.len());
        assert!(owned.output_scale() > 0.0);
        let mut plain = Policy::from_blob(&blob).unwrap();
        for s in quant::float_model::played_stacks(64, 9) {
            assert_eq!(owned.q_values(&s), plain.q_values(&s));
        }
    }

    #[test]
    fn a_bad_blob_is_the_parsers_error() {
        let mut blob = reference_blob();
        blob[100] ^= 1;
        let e = OwnedPolicy::from_bytes(blob).err().expect("a flipped bit");
        assert_eq!(
            e,
            Policy::from_blob(&{
                let mut b = reference_blob();
                b[100] ^= 1;
                b
            })
            .unwrap_err()
        );
        assert!(OwnedPolicy::from_bytes(Vec::new()).is_err());
    }
}
