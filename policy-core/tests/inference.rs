//! Integer inference against a naive reference (exact equality), layer by layer.
mod common;
use common::*;
use policy_core::Policy;

#[test]
fn classic_random_models_match_naive_reference_exactly() {
    for seed in 1..=3u64 {
        let layers = classic(seed * 7919);
        let blob = encode(&layers);
        let mut p = Policy::from_blob(&blob).expect("valid blob");
        let mut rng = Rng(seed * 31 + 5);
        for _ in 0..4 {
            let stack = rand_stack(&mut rng);
            let (ref_stages, ref_q) = reference(&layers, &stack);
            let t = p.q_values_trace(&stack);
            assert_eq!(t.stages.len(), ref_stages.len());
            for (i, (got, want)) in t.stages.iter().zip(&ref_stages).enumerate() {
                assert_eq!(&got.values, want, "seed {seed} stage {i}");
            }
            // Not degenerate: hidden activations are neither all 0 nor all 255.
            for s in &t.stages[..t.stages.len() - 1] {
                assert!(
                    s.values.iter().any(|&v| v > 0 && v < 255),
                    "degenerate stage {}",
                    s.layer
                );
            }
            assert_eq!(t.q, ref_q);
            assert_eq!(p.q_values(&stack), ref_q);
        }
    }
}
