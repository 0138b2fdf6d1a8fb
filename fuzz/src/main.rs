//! Fuzzes every reader of outside bytes with mutated real files (see the
//! library): `cargo run --release -p fuzz-readers -- [cases=1000000] [seed]`.
//! Exits non-zero if any case panicked.
use std::io::Write;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let cases: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let seed: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(0xF022);
    tch::set_num_threads(1);
    let work = std::env::temp_dir().join(format!("fuzz-readers-{}", std::process::id()));
    let bases = fuzz_readers::Bases::new(&work)?;
    let t = std::time::Instant::now();
    let tallies = fuzz_readers::run(&bases, cases, seed, |n| {
        if n % 50_000 == 0 {
            eprint!("\r{n} / {cases} cases, {:.0} s", t.elapsed().as_secs_f64());
            let _ = std::io::stderr().flush();
        }
    });
    eprintln!();
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "fuzz-readers: {cases} cases, seed {seed:#x}, {:.0} s\n",
        t.elapsed().as_secs_f64()
    );
    print!("{}", fuzz_readers::table(&tallies));
    let mut panicked = false;
    for (r, t) in &tallies {
        if let Some((case, msg)) = &t.first_panic {
            println!("\n{r:?}: first panic at case {case}: {msg}");
            panicked = true;
        }
    }
    if panicked {
        std::process::exit(1);
    }
    Ok(())
}
