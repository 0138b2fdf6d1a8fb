//! The capacity sets: the default one runs every `netspec` architecture; the
//! small-RAM one (feature `caps-m0`, the 16 KiB micro:bit image) runs `tiny`
//! with its nibble table and rejects the others at load with a typed
//! error, never a panic. Run both:
//! `cargo test -p policy-core --test caps` and
//! `cargo test -p policy-core --features caps-m0 --test caps`.
mod common;
use common::*;
use policy_core::{BlobError, FrameStack, Policy, Scratch, SMALL_RAM};

#[test]
fn every_architecture_loads_or_is_refused_cleanly() {
    let mut rng = Rng(3);
    let stack = rand_stack(&mut rng);
    for arch in netspec::ALL {
        let layers = policy_core::test_support::random_model(arch, 7);
        // Encoded without validation: `encode` checks the capacities too.
        let mut blob = vec![0u8; 4 << 20];
        let n = model_of(&layers)
            .encode_into_unvalidated(&mut blob)
            .unwrap();
        blob.truncate(n);
        let fits = !SMALL_RAM || arch.name == "tiny";
        match Policy::from_blob(&blob) {
            Ok(mut p) => {
                assert!(fits, "{} loaded with the small-RAM capacities", arch.name);
                assert_eq!(
                    p.q_values(&stack),
                    reference(&layers, &stack).1,
                    "{}",
                    arch.name
                );
                // The first conv's nibble table fits the window buffer too.
                let mut t = vec![0u32; p.conv1_table_len().expect("4x4 or 8x8 first conv")];
                p.write_conv1_table(&mut t).unwrap();
                let t: &'static [u32] = Box::leak(t.into_boxed_slice());
                p.attach_conv1_table(t).unwrap();
                assert_eq!(
                    p.q_values(&stack),
                    reference(&layers, &stack).1,
                    "{}",
                    arch.name
                );
            }
            Err(e) => {
                assert!(!fits, "{}: {e}", arch.name);
                assert!(
                    matches!(e, BlobError::CapacityExceeded { .. }),
                    "{}: {e}",
                    arch.name
                );
            }
        };
    }
}

#[test]
fn small_ram_buffers_fit_a_16k_chip() {
    let scratch = std::mem::size_of::<Scratch>();
    let policy = std::mem::size_of::<Policy>();
    let stack = std::mem::size_of::<FrameStack>();
    println!(
        "small RAM {SMALL_RAM}: scratch {scratch} B, policy {policy} B, frame stack {stack} B"
    );
    if SMALL_RAM {
        // The micro:bit image measures the rest (game loop, observation,
        // parse, report) and checks static + stack <= 16 KiB (`make mcu-m0`).
        assert!(scratch <= 7 * 1024, "{scratch}");
    }
}
