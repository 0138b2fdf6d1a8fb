//! Blob parser fuzzer: `cargo run --release -p policy-core --example fuzz_blob -- 1000000 [seed]`.
//! Mutates a valid blob's payload, reseals it with a correct CRC (so the
//! validator, not the CRC, has to catch it), loads it and, if it loads, runs it.
#[path = "../tests/common/mod.rs"]
mod common;
use common::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0x5EED);
    let payload = payload_of(&tiny(seed));
    let mut rng = Rng(seed | 1);
    let stack = rand_stack(&mut rng);
    let t = std::time::Instant::now();
    let mut loaded = 0u64;
    for i in 0..n {
        loaded += fuzz_case(&mut rng, &payload, &stack) as u64;
        if (i + 1) % 250_000 == 0 {
            eprintln!("{} cases, {} loaded, {:.1?}", i + 1, loaded, t.elapsed());
        }
    }
    println!(
        "fuzz_blob: {n} cases, {loaded} loaded and ran, 0 panics, {:.1?}",
        t.elapsed()
    );
}
