//! Blob parser fuzzer: `cargo run --release -p policy-core --example fuzz_blob -- 1000000 [seed]`.
//! Mutates a valid blob's payload, reseals it with a correct CRC (so the
//! validator, not the CRC, has to catch it), loads it and, if it loads, runs it.
//! A panic in a case is caught and counted (the exit status is 1 if any);
//! the summary on stdout names the target, whose `usize` width matters
//! (`make fuzz-blob-32` runs it on i686 into `results/fuzz-blob-32bit.md`).
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
    let (mut loaded, mut panics) = (0u64, 0u64);
    for i in 0..n {
        let case = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fuzz_case(&mut rng, &payload, &stack)
        }));
        match case {
            Ok(l) => loaded += l as u64,
            Err(_) => {
                panics += 1;
                eprintln!("case {i} panicked");
            }
        }
        if (i + 1) % 250_000 == 0 {
            eprintln!("{} cases, {} loaded, {:.1?}", i + 1, loaded, t.elapsed());
        }
    }
    println!(
        "fuzz_blob on {} ({}-bit usize): {n} cases (seed {seed:#x}), {loaded} loaded and ran, {panics} panics, {:.0} s",
        std::env::consts::ARCH,
        usize::BITS,
        t.elapsed().as_secs_f64()
    );
    if panics > 0 {
        std::process::exit(1);
    }
}
