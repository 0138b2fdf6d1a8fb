//! Blob encoding, decoding and validation: round trips, corruption, hostile blobs.
mod common;
use common::*;
use policy_core::blob::{self, BlobError, Field, InputDesc, LayerKind, Model, MAGIC, VERSION};
use policy_core::Policy;

#[test]
fn round_trip_and_crc_is_standard() {
    let layers = tiny(3);
    let blob = encode(&layers);
    assert_eq!(&blob[..4], &MAGIC);
    let (m, stages) = Model::from_bytes(&blob).unwrap();
    assert_eq!(m, model_of(&layers));
    assert_eq!(stages.len(), 4);
    assert_eq!(stages[0].pool, 2);
    assert_eq!(
        (stages[0].output.c, stages[0].output.h, stages[0].output.w),
        (4, 10, 10)
    );
    // Header: magic, version varint, length varint, CRC-32 LE of the payload.
    let payload = payload_of(&layers);
    assert!(blob.ends_with(&payload));
    let hlen = blob.len() - payload.len();
    let crc = u32::from_le_bytes(blob[hlen - 4..hlen].try_into().unwrap());
    assert_eq!(crc, crc32fast::hash(&payload));
    assert_eq!(blob[4], VERSION as u8);
}

#[test]
fn every_truncation_is_rejected() {
    let blob = encode(&tiny(5));
    for n in 0..blob.len() {
        let e = Policy::from_blob(&blob[..n]).unwrap_err();
        assert!(
            matches!(e, BlobError::Truncated | BlobError::BadMagic),
            "len {n}: {e:?}"
        );
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert_eq!(
        Policy::from_blob(&longer).unwrap_err(),
        BlobError::TrailingBytes
    );
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let blob = encode(&tiny(7));
    let hlen = blob.len() - payload_of(&tiny(7)).len();
    for i in 0..blob.len() {
        for bit in 0..8 {
            let mut b = blob.clone();
            b[i] ^= 1 << bit;
            let e = Policy::from_blob(&b).unwrap_err();
            if i < 4 {
                assert_eq!(e, BlobError::BadMagic);
            } else if i == 4 {
                assert!(
                    matches!(e, BlobError::UnsupportedVersion(_) | BlobError::Truncated),
                    "{e:?}"
                );
            } else if i >= hlen {
                assert!(
                    matches!(e, BlobError::CrcMismatch { .. }),
                    "byte {i} bit {bit}: {e:?}"
                );
            }
        }
    }
}

#[test]
fn wrong_magic_and_version() {
    let blob = encode(&tiny(9));
    let mut b = blob.clone();
    b[0] = b'X';
    assert_eq!(Policy::from_blob(&b).unwrap_err(), BlobError::BadMagic);
    let payload = payload_of(&tiny(9));
    assert_eq!(
        Policy::from_blob(&sealed(&payload, 2)).unwrap_err(),
        BlobError::UnsupportedVersion(2)
    );
    assert_eq!(
        Policy::from_blob(&sealed(&payload, 0)).unwrap_err(),
        BlobError::UnsupportedVersion(0)
    );
    assert!(Policy::from_blob(&sealed(&payload, VERSION)).is_ok());
    assert_eq!(Policy::from_blob(&[]).unwrap_err(), BlobError::Truncated);
}

/// Encodes a (possibly invalid) model with a correct CRC and loads it.
fn load_hostile(layers: &[OwnedLayer]) -> Result<(), BlobError> {
    Policy::from_blob(&sealed(&payload_of(layers), VERSION)).map(|_| ())
}

/// A change to a valid model.
type Mutation = fn(&mut Vec<OwnedLayer>);

fn with(f: impl FnOnce(&mut Vec<OwnedLayer>)) -> Result<(), BlobError> {
    let mut l = tiny(11);
    f(&mut l);
    load_hostile(&l)
}

#[test]
fn hostile_blobs_with_valid_crc_are_rejected_with_the_right_error() {
    assert_eq!(with(|_| {}), Ok(()));
    // Lying shapes.
    assert_eq!(
        with(|l| l[0].kind = LayerKind::Conv2d {
            in_c: 3,
            out_c: 4,
            k: 8,
            stride: 4,
            pad: 2
        }),
        Err(BlobError::ShapeMismatch { layer: 0 })
    );
    assert_eq!(
        with(|l| l[3].kind = LayerKind::Dense { inp: 101, out: 8 }),
        Err(BlobError::ShapeMismatch { layer: 3 })
    );
    assert_eq!(
        with(|l| l[3].kind = LayerKind::Dense {
            inp: u32::MAX,
            out: u32::MAX
        }),
        Err(BlobError::ShapeMismatch { layer: 3 })
    );
    assert_eq!(
        with(|l| l[1].kind = LayerKind::MaxPool { k: 0 }),
        Err(BlobError::ShapeMismatch { layer: 1 })
    );
    assert_eq!(
        with(|l| l[1].kind = LayerKind::MaxPool { k: 200 }),
        Err(BlobError::ShapeMismatch { layer: 1 })
    );
    // Kernel larger than the padded input, zero stride.
    assert_eq!(
        with(|l| l[2].kind = LayerKind::Conv2d {
            in_c: 4,
            out_c: 4,
            k: 4,
            stride: 0,
            pad: 1
        }),
        Err(BlobError::ShapeMismatch { layer: 2 })
    );
    // Tensor lengths that do not match the shapes.
    let lengths: [(usize, Field, Mutation); 6] = [
        (2, Field::Weights, |l| {
            l[2].weights.pop().map(|_| ()).unwrap()
        }),
        (3, Field::Biases, |l| l[3].biases.extend([0; 4])),
        (0, Field::Shifts, |l| l[0].shifts.push(0)),
        (0, Field::Multipliers, |l| l[0].mult.clear()),
        (4, Field::WScales, |l| l[4].w_scales.extend([0; 4])),
        (1, Field::Weights, |l| l[1].weights.push(1)),
    ];
    for (layer, field, f) in lengths {
        assert_eq!(with(f), Err(BlobError::BadLength { layer, field }));
    }
    // Capacity: more output channels than the accumulator buffer.
    assert_eq!(
        with(|l| {
            l[2].kind = LayerKind::Conv2d {
                in_c: 4,
                out_c: 600,
                k: 4,
                stride: 2,
                pad: 1,
            };
            l[2].weights = vec![0; 16 * 4 * 600];
            l[2].biases = vec![0; 4 * 600];
            l[2].mult = vec![0; 4 * 600];
            l[2].shifts = vec![0; 600];
            l[2].w_scales = vec![0; 4 * 600];
        }),
        Err(BlobError::CapacityExceeded { layer: 2 })
    );
    // Requantization parameters.
    assert_eq!(
        with(|l| l[2].shifts[3] = 32),
        Err(BlobError::ShiftOutOfRange {
            layer: 2,
            channel: 3
        })
    );
    assert_eq!(
        with(|l| l[3].mult[4 * 5 + 3] = 0x80),
        Err(BlobError::BadMultiplier {
            layer: 3,
            channel: 5
        })
    );
    // Structure.
    assert_eq!(
        with(|l| l[0].relu = false),
        Err(BlobError::BadRelu { layer: 0 })
    );
    assert_eq!(
        with(|l| l[4].relu = true),
        Err(BlobError::BadRelu { layer: 4 })
    );
    // conv2 fits the unpooled 20x20 map, but a pool after it is unsupported.
    assert_eq!(
        with(|l| l.swap(1, 2)),
        Err(BlobError::UnsupportedLayer { layer: 2 })
    );
    assert_eq!(with(|l| l.clear()), Err(BlobError::NoLayers));
    assert_eq!(
        with(|l| l.truncate(4)),
        Err(BlobError::BadRelu { layer: 3 })
    );
    // Final output is not one value per action.
    assert_eq!(
        with(|l| {
            l[4].kind = LayerKind::Dense { inp: 8, out: 3 };
            l[4].weights = vec![1; 24];
            l[4].biases = vec![0; 12];
        }),
        Err(BlobError::BadOutput)
    );
}

/// A conv whose weight count `k * k * in_c * out_c` is 128 * 128 * 512 *
/// 512 = 2^32, which wraps to 0 in a 32-bit `usize`: a length check
/// computed without overflow checks there would take its empty weights,
/// and the kernels would read past them. Every target refuses it with the
/// same error (`make test` runs this on i686 too).
#[test]
fn a_weight_count_that_overflows_32_bits_is_refused() {
    assert_eq!(128u64 * 128 * 512 * 512, 1 << 32);
    let conv = |in_c, out_c, k, stride, pad| LayerKind::Conv2d {
        in_c,
        out_c,
        k,
        stride,
        pad,
    };
    let mut rng = Rng(29);
    // 4x80x80 -> 1x1 conv -> 8x80x80 -> pool 20 -> 8x4x4 -> 1x1/4 conv -> 512x1x1.
    let mut layers = vec![
        rand_layer(&mut rng, conv(4, 8, 1, 1, 0), false, 3, 10, 8),
        pool_layer(20),
        rand_layer(&mut rng, conv(8, 512, 1, 4, 0), false, 3, 10, 8),
        // A 1x1 conv 512 -> 512 first: the control, a valid model.
        rand_layer(&mut rng, conv(512, 512, 1, 255, 0), false, 3, 10, 8),
        rand_layer(
            &mut rng,
            LayerKind::Dense { inp: 512, out: 2 },
            true,
            3,
            10,
            0,
        ),
    ];
    assert_eq!(load_hostile(&layers), Ok(()));
    // The same layer as a 128x128 kernel (stride 255, pad 127: still a 1x1
    // output) with no weights at all.
    layers[3].kind = conv(512, 512, 128, 255, 127);
    layers[3].weights.clear();
    assert_eq!(
        load_hostile(&layers),
        Err(BlobError::BadLength {
            layer: 3,
            field: Field::Weights
        })
    );
}

#[test]
fn too_many_layers_and_bad_header_fields() {
    let layers = tiny(13);
    let mut m = model_of(&layers);
    m.input = InputDesc {
        channels: 4,
        height: 80,
        width: 81,
        binary: true,
    };
    let mut buf = vec![0u8; 1 << 16];
    assert_eq!(m.encode_into(&mut buf), Err(BlobError::BadInput));
    let n = m.encode_into_unvalidated(&mut buf).unwrap();
    assert_eq!(
        Policy::from_blob(&buf[..n]).unwrap_err(),
        BlobError::BadInput
    );
    let mut m = model_of(&layers);
    m.num_actions = 3;
    let n = m.encode_into_unvalidated(&mut buf).unwrap();
    assert_eq!(
        Policy::from_blob(&buf[..n]).unwrap_err(),
        BlobError::BadActionCount
    );
    // Nine layers: the count varint says 9 but the heapless Vec holds 8.
    let mut p = payload_of(&layers);
    // Payload: input desc (4, 80, 80 as u16 varints: 1 + 1 + 1 bytes, bool 1), num_actions 1, then the count.
    let idx = 5;
    assert_eq!(p[idx], layers.len() as u8);
    p[idx] = 9;
    assert_eq!(
        Policy::from_blob(&sealed(&p, VERSION)).unwrap_err(),
        BlobError::Malformed
    );
    // The payload cut short but resealed: the model does not decode.
    let p = payload_of(&layers);
    assert_eq!(
        Policy::from_blob(&sealed(&p[..p.len() - 1], VERSION)).unwrap_err(),
        BlobError::Malformed
    );
    // Encoder: buffer too small.
    let mut small = [0u8; 100];
    assert_eq!(
        model_of(&layers).encode_into(&mut small),
        Err(BlobError::BufferTooSmall)
    );
}

/// `sum |w|` over every `step`-th int8 weight from `skip`.
fn sum_abs(w: &[u8], skip: usize, step: usize) -> i64 {
    w.iter()
        .skip(skip)
        .step_by(step)
        .map(|&w| (w as i8 as i64).abs())
        .sum()
}

#[test]
fn accumulator_overflow_bound_is_exact() {
    // conv1 sees binary inputs: bound = sum|w| + |bias|.
    let mut l = tiny(17);
    let sum0: i64 = sum_abs(&l[0].weights, 1, 4);
    let set_bias = |l: &mut Vec<OwnedLayer>, layer: usize, ch: usize, v: i32| {
        l[layer].biases[4 * ch..4 * ch + 4].copy_from_slice(&v.to_le_bytes());
    };
    set_bias(&mut l, 0, 1, (i32::MAX as i64 - sum0) as i32);
    assert_eq!(load_hostile(&l), Ok(()));
    set_bias(&mut l, 0, 1, -((i32::MAX as i64 - sum0) as i32));
    assert_eq!(load_hostile(&l), Ok(()));
    set_bias(&mut l, 0, 1, (i32::MAX as i64 - sum0 + 1) as i32);
    assert_eq!(
        load_hostile(&l),
        Err(BlobError::AccumulatorOverflow {
            layer: 0,
            channel: 1
        })
    );
    // u8 layers: bound = 255 * sum|w| + |bias|.
    let mut l = tiny(17);
    let sum3: i64 = sum_abs(&l[3].weights, 6, 8);
    set_bias(&mut l, 3, 6, (i32::MAX as i64 - 255 * sum3) as i32);
    assert_eq!(load_hostile(&l), Ok(()));
    set_bias(&mut l, 3, 6, (i32::MAX as i64 - 255 * sum3 + 1) as i32);
    assert_eq!(
        load_hostile(&l),
        Err(BlobError::AccumulatorOverflow {
            layer: 3,
            channel: 6
        })
    );
    // Bias i32::MIN: |bias| alone exceeds i32::MAX.
    set_bias(&mut l, 3, 6, i32::MIN);
    assert_eq!(
        load_hostile(&l),
        Err(BlobError::AccumulatorOverflow {
            layer: 3,
            channel: 6
        })
    );
    // Weights that can overflow on their own: a wide dense layer of -128s.
    let mut l = classic(3);
    l[4].weights
        .iter_mut()
        .take(1600 * 512)
        .skip(7)
        .step_by(512)
        .for_each(|w| *w = 0x80);
    l[4].biases[28..32].copy_from_slice(&(-2_100_000_000i32).to_le_bytes());
    // 1600 * 128 * 255 = 52_224_000; with |bias| 2.1e9 that is > i32::MAX.
    assert_eq!(
        load_hostile(&l),
        Err(BlobError::AccumulatorOverflow {
            layer: 4,
            channel: 7
        })
    );
    assert_eq!(
        blob::worst_case_accumulator(&model_of(&l), 4),
        52_224_000 + 2_100_000_000
    );
}

#[test]
fn fuzz_mutated_blobs_never_panic() {
    let layers = tiny(23);
    let payload = payload_of(&layers);
    let mut rng = Rng(0xF00D);
    let stack = rand_stack(&mut rng);
    let mut loaded = 0;
    for _ in 0..5000 {
        loaded += fuzz_case(&mut rng, &payload, &stack) as u32;
    }
    // Some mutations (e.g. of weight bytes) keep the blob valid.
    assert!(loaded > 0);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        /// Arbitrary bytes as a payload with a valid CRC never panic the parser.
        #[test]
        fn arbitrary_payloads(p in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Policy::from_blob(&sealed(&p, VERSION));
        }

        /// Arbitrary overwrites of a valid payload, resealed, never panic; if it loads, it runs.
        #[test]
        fn overwritten_payloads(edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6)) {
            let mut p = payload_of(&tiny(29));
            for (at, v) in edits {
                let i = at as usize % p.len();
                p[i] = v;
            }
            if let Ok(mut pol) = Policy::from_blob(&sealed(&p, VERSION)) {
                let mut rng = Rng(1);
                let _ = pol.q_values(&rand_stack(&mut rng));
            }
        }
    }
}
