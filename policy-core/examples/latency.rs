//! `cargo run --release -p policy-core --example latency [-- iters]`: int8
//! decision latency of a random classic-architecture policy, one thread, and
//! the time of each kernel.
#[path = "../tests/common/mod.rs"]
mod common;
use common::*;
use policy_core::Policy;
use std::time::Instant;

fn main() {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let layers = classic(42);
    let blob = encode(&layers);
    let mut p = Policy::from_blob(&blob).expect("blob");
    let mut rng = Rng(7);
    let stacks: Vec<_> = (0..64).map(|_| rand_stack(&mut rng)).collect();
    let mut sink = 0i64;
    for s in &stacks {
        sink += p.q_values(s)[0] as i64;
    }
    let t = Instant::now();
    for i in 0..iters {
        sink += p.q_values(&stacks[i % stacks.len()])[0] as i64;
    }
    let per = t.elapsed() / iters as u32;
    println!(
        "blob {} bytes, RAM {} bytes, {iters} decisions: {per:.1?} per decision (sink {sink})",
        blob.len(),
        policy_core::PEAK_RAM_BYTES
    );
}
