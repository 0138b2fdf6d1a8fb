//! The first conv's nibble table: the same Q-values as the gather kernel and
//! the naive reference on every geometry it supports, at the lane bound, and
//! typed errors for tables that are not the model's own.
mod common;
use common::*;
use policy_core::blob::LayerKind;
use policy_core::conv1_table::{self, TableError};
use policy_core::{FrameStack, Policy};

/// conv1 (4 -> `oc`, `k`/`stride`, `pad`) [+ pool 2] + dense -> 2, random weights.
fn one_conv(seed: u64, oc: u16, k: u8, stride: u8, pad: u8, pool: bool) -> Vec<OwnedLayer> {
    let mut rng = Rng(seed | 1);
    let conv = LayerKind::Conv2d {
        in_c: 4,
        out_c: oc,
        k,
        stride,
        pad,
    };
    let mut layers = vec![rand_layer(&mut rng, conv, false, 127, 300, 4)];
    let side = (80 + 2 * pad as usize - k as usize) / stride as usize + 1;
    let side = if pool { side / 2 } else { side };
    if pool {
        layers.push(pool_layer(2));
    }
    let inp = (side * side * oc as usize) as u32;
    layers.push(rand_layer(
        &mut rng,
        LayerKind::Dense { inp, out: 2 },
        true,
        127,
        5_000,
        0,
    ));
    layers
}

fn table_of(p: &Policy) -> Vec<u32> {
    let mut t = vec![0u32; p.conv1_table_len().expect("geometry has a table")];
    p.write_conv1_table(&mut t).expect("table");
    t
}

/// Q-values without and with the table, and the naive reference, on `stacks`.
fn assert_table_matches(layers: &[OwnedLayer], stacks: &[FrameStack], what: &str) {
    let blob = encode(layers);
    let mut plain = Policy::from_blob(&blob).expect("valid blob");
    let table = table_of(&plain);
    let mut fast = Policy::from_blob(&blob).unwrap();
    fast.attach_conv1_table(&table).expect("own table");
    assert!(fast.conv1_table().is_some());
    for (i, s) in stacks.iter().enumerate() {
        let (_, want) = reference(layers, s);
        assert_eq!(plain.q_values(s), want, "{what}: stack {i} (gather)");
        assert_eq!(fast.q_values(s), want, "{what}: stack {i} (table)");
        // And stage by stage.
        assert_eq!(
            fast.q_values_trace(s),
            plain.q_values_trace(s),
            "{what}: {i}"
        );
    }
}

fn stacks(seed: u64, n: usize) -> Vec<FrameStack> {
    let mut rng = Rng(seed);
    let mut v: Vec<FrameStack> = (0..n).map(|_| rand_stack(&mut rng)).collect();
    let mut full = policy_core::Frame::empty();
    for r in 0..80 {
        for c in 0..80 {
            full.set(r, c, true);
        }
    }
    v.push(FrameStack::new(&full));
    v.push(FrameStack::new(&policy_core::Frame::empty()));
    v
}

#[test]
fn classic_network_gives_the_same_q_values_with_the_table() {
    let s = stacks(11, 6);
    for seed in [3u64, 8] {
        assert_table_matches(&classic(seed), &s, "classic");
    }
    assert_table_matches(&tiny(5), &s, "tiny");
    // The 4x4 first convs (one nibble a kernel row).
    for arch in [netspec::COMPACT, netspec::STRIDED, netspec::TINY] {
        let layers = policy_core::test_support::random_model(&arch, 9);
        assert_table_matches(&layers, &s, arch.name);
    }
}

#[test]
fn every_supported_geometry_matches() {
    let s = stacks(12, 3);
    // (out_c, k, stride, pad, pool): 16-channel passes, 2-channel tails,
    // both, stride 8, pad 0 and 6, no pool; the same for 4x4 kernels.
    for (oc, k, stride, pad, pool) in [
        (32u16, 8u8, 4u8, 2u8, true),
        (16, 8, 4, 0, true),
        (18, 8, 8, 0, false),
        (2, 8, 4, 6, true),
        (6, 8, 8, 2, false),
        (20, 8, 8, 0, true),
        (8, 4, 4, 0, true),
        (16, 4, 4, 0, false),
        (10, 4, 4, 3, true),
        (2, 4, 8, 2, false),
        (24, 4, 8, 1, true),
        (6, 4, 8, 0, true),
        (4, 4, 12, 0, false),
    ] {
        let layers = one_conv(oc as u64 * 31 + k as u64, oc, k, stride, pad, pool);
        let what = format!("oc {oc} k {k} stride {stride} pad {pad} pool {pool}");
        assert_table_matches(&layers, &s, &what);
    }
}

#[test]
fn extreme_weights_stay_inside_the_lanes() {
    // All 64 groups of every window set, every weight at -128 or +127: the
    // lane sums reach 0 and 64 * 1020, the ends of the carry-free range.
    let s = stacks(13, 2);
    for w in [0x80u8, 0x7F, 0x81] {
        let mut layers = classic(21);
        layers[0].weights.iter_mut().for_each(|x| *x = w);
        assert_table_matches(&layers, &s, &format!("weights {w:#x}"));
    }
    let mut layers = classic(22);
    for (i, x) in layers[0].weights.iter_mut().enumerate() {
        *x = if i % 3 == 0 { 0x80 } else { 0x7F };
    }
    assert_table_matches(&layers, &s, "mixed extremes");
}

#[test]
fn unsupported_geometries_have_no_table() {
    // k not 8 or 4, stride not a multiple of 4, odd channels.
    for (oc, k, stride) in [(8u16, 6u8, 4u8), (8, 5, 4), (8, 4, 2), (8, 8, 2), (7, 4, 4)] {
        let layers = one_conv(5, oc, k, stride, 0, true);
        let blob = encode(&layers);
        let mut p = Policy::from_blob(&blob).expect("valid blob");
        assert_eq!(p.conv1_table_len(), None, "oc {oc} k {k} stride {stride}");
        let mut out = vec![0u32; 64];
        assert_eq!(p.write_conv1_table(&mut out), Err(TableError::Unsupported));
        let t: &'static [u32] = Box::leak(vec![0u32; 1024].into_boxed_slice());
        assert_eq!(p.attach_conv1_table(t), Err(TableError::Unsupported));
        assert!(p.conv1_table().is_none());
    }
    // An empty policy has no first layer.
    let mut p = Policy::empty();
    assert_eq!(p.conv1_table_len(), None);
    assert_eq!(p.attach_conv1_table(&[]), Err(TableError::Unsupported));
}

#[test]
fn foreign_and_damaged_tables_are_refused() {
    let blob = encode(&classic(31));
    let other = encode(&classic(32));
    let mut p = Policy::from_blob(&blob).unwrap();
    let good = table_of(&p);
    let len = good.len();
    // (32 kernel rows x 2 nibbles x 16 patterns + 4 frames x 36 runs) x 16 words.
    assert_eq!(len, (32 * 2 * 16 + 4 * 36) * 16);

    // Wrong lengths.
    for n in [0, 1, len - 2, len - 1, len + 1, len + 2] {
        let mut t = good.clone();
        t.resize(n, 0);
        assert_eq!(
            p.attach_conv1_table(Box::leak(t.into_boxed_slice())),
            Err(TableError::BadLength {
                expected: len,
                actual: n
            })
        );
        let mut out = vec![0u32; n];
        assert!(matches!(
            p.write_conv1_table(&mut out),
            Err(TableError::BadLength { .. })
        ));
    }
    // Another model's table.
    let q = Policy::from_blob(&other).unwrap();
    let foreign = table_of(&q);
    assert!(matches!(
        p.attach_conv1_table(Box::leak(foreign.into_boxed_slice())),
        Err(TableError::Mismatch { .. })
    ));
    // One flipped bit anywhere: the first wrong entry is named.
    let mut rng = Rng(9);
    for _ in 0..200 {
        let at = rng.below(len as u64) as usize;
        let mut t = good.clone();
        t[at] ^= 1 << rng.below(32);
        assert_eq!(
            p.attach_conv1_table(Box::leak(t.into_boxed_slice())),
            Err(TableError::Mismatch { word: at })
        );
    }
    assert!(p.conv1_table().is_none(), "a refused table is not attached");
    // The zero pattern of every nibble is the bare offset in both lanes.
    assert_eq!(conv1_table::OFFSET, 512);
    for group in 0..64 {
        assert!(good[group * 16 * 16..][..16]
            .iter()
            .all(|&w| w == 512 | 512 << 16));
    }
}

#[test]
fn loading_another_blob_detaches_the_table() {
    let blob: &'static [u8] = Box::leak(encode(&classic(41)).into_boxed_slice());
    let other: &'static [u8] = Box::leak(encode(&classic(42)).into_boxed_slice());
    let mut p = Policy::from_blob(blob).unwrap();
    let t: &'static [u32] = Box::leak(table_of(&p).into_boxed_slice());
    p.attach_conv1_table(t).unwrap();
    p.load(other).unwrap();
    assert!(p.conv1_table().is_none());
    let s = stacks(14, 2);
    for st in &s {
        assert_eq!(p.q_values(st), reference(&classic(42), st).1);
    }
}
