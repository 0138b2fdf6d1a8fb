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

#[test]
fn act_is_argmax_with_ties_to_idle() {
    use policy_core::{action_of, Action};
    assert_eq!(action_of(&[5, 5]), Action::Idle);
    assert_eq!(action_of(&[5, 6]), Action::Flap);
    assert_eq!(action_of(&[-1, -2]), Action::Idle);
    assert_eq!(action_of(&[i32::MIN, i32::MIN + 1]), Action::Flap);
    let layers = classic(77);
    let blob = encode(&layers);
    let mut p = Policy::from_blob(&blob).unwrap();
    let mut rng = Rng(3);
    for _ in 0..8 {
        let s = rand_stack(&mut rng);
        let (_, q) = reference(&layers, &s);
        let want = if q[1] > q[0] {
            Action::Flap
        } else {
            Action::Idle
        };
        assert_eq!(p.act(&s), want);
        assert_eq!(p.act_index(&s), (want == Action::Flap) as usize);
    }
}

#[test]
fn empty_then_load_in_place_matches_from_blob() {
    let layers = classic(5);
    let blob = encode(&layers);
    let other = encode(&classic(6));
    let mut a = Policy::from_blob(&blob).unwrap();
    let mut b = Policy::empty();
    let mut rng = Rng(9);
    let s = rand_stack(&mut rng);
    assert_eq!(b.q_values(&s), [0, 0]);
    assert!(b.stages().is_empty());
    // A bad blob leaves it unchanged; a good one loads.
    assert!(b.load(&blob[..blob.len() - 1]).is_err());
    assert!(b.stages().is_empty());
    b.load(&blob).unwrap();
    for _ in 0..4 {
        let s = rand_stack(&mut rng);
        assert_eq!(a.q_values(&s), b.q_values(&s));
    }
    // Reloading another model replaces it.
    b.load(&other).unwrap();
    let mut c = Policy::from_blob(&other).unwrap();
    let s = rand_stack(&mut rng);
    assert_eq!(b.q_values(&s), c.q_values(&s));
}

/// A first conv whose unpooled row is wider than `POOL_ROW_CAP` (40 x 32 = 1280)
/// but whose pooled row fits (10 x 32 = 320): valid, and it runs exactly.
#[test]
fn wide_first_conv_followed_by_a_pool_is_accepted_and_exact() {
    use policy_core::blob::LayerKind;
    let mut rng = Rng(4242);
    let conv1 = LayerKind::Conv2d {
        in_c: 4,
        out_c: 32,
        k: 4,
        stride: 2,
        pad: 1,
    };
    let layers = vec![
        rand_layer(&mut rng, conv1, false, 60, 200, 3),
        pool_layer(4),
        rand_layer(
            &mut rng,
            LayerKind::Dense {
                inp: 10 * 10 * 32,
                out: 16,
            },
            false,
            127,
            5_000,
            10,
        ),
        rand_layer(
            &mut rng,
            LayerKind::Dense { inp: 16, out: 2 },
            true,
            127,
            5_000,
            0,
        ),
    ];
    const { assert!(40 * 32 > policy_core::POOL_ROW_CAP) };
    let blob = encode(&layers);
    let mut p = Policy::from_blob(&blob).expect("pooled row fits: valid blob");
    for _ in 0..3 {
        let stack = rand_stack(&mut rng);
        let (_, want) = reference(&layers, &stack);
        assert_eq!(p.q_values(&stack), want);
    }
    // Without the pool the same conv does not fit (its row, and its whole map).
    let mut unpooled = layers;
    unpooled.remove(1);
    unpooled[1] = rand_layer(
        &mut rng,
        LayerKind::Dense {
            inp: 40 * 40 * 32,
            out: 16,
        },
        false,
        127,
        5_000,
        10,
    );
    let bytes = common::sealed(&payload_of(&unpooled), policy_core::blob::VERSION);
    assert!(matches!(
        Policy::from_blob(&bytes),
        Err(policy_core::BlobError::CapacityExceeded { layer: 0 })
    ));
}

/// Every architecture of `netspec` runs exactly: adding one there is enough
/// for the integer runtime.
#[test]
fn every_netspec_architecture_matches_the_naive_reference() {
    for arch in netspec::ALL {
        let layers = policy_core::test_support::random_model(arch, 99);
        let blob = encode(&layers);
        let mut p = Policy::from_blob(&blob).unwrap_or_else(|e| panic!("{}: {e}", arch.name));
        let mut rng = Rng(17);
        for _ in 0..2 {
            let stack = rand_stack(&mut rng);
            assert_eq!(
                p.q_values(&stack),
                reference(&layers, &stack).1,
                "{}",
                arch.name
            );
        }
    }
}

/// Every `netspec` architecture (with its own kernels: the pair layout on
/// SIMD hosts for the convs that fit `PACK_CAP`, the conv1 table when
/// attached) against the naive reference, layer by layer.
#[test]
fn every_architecture_matches_naive_reference_exactly() {
    for arch in netspec::ALL {
        let layers = policy_core::test_support::random_model(arch, 0xA5 + arch.name.len() as u64);
        let blob = encode(&layers);
        let mut p = Policy::from_blob(&blob).expect("valid blob");
        let mut t = vec![0u32; p.conv1_table_len().unwrap_or(0)];
        let mut with_table = p.clone();
        if !t.is_empty() {
            p.write_conv1_table(&mut t).unwrap();
            with_table.attach_conv1_table(&t).unwrap();
        }
        let mut rng = Rng(11);
        for i in 0..3 {
            let stack = rand_stack(&mut rng);
            let (ref_stages, ref_q) = reference(&layers, &stack);
            let tr = p.q_values_trace(&stack);
            for (s, (got, want)) in tr.stages.iter().zip(&ref_stages).enumerate() {
                assert_eq!(&got.values, want, "{} stack {i} stage {s}", arch.name);
            }
            assert_eq!(tr.q, ref_q, "{}", arch.name);
            assert_eq!(with_table.q_values(&stack), ref_q, "{} (table)", arch.name);
        }
    }
}
