//! Puts `memory.x` on the linker search path, copies the policy blob into
//! `OUT_DIR` (from `FIRMWARE_BLOB`, default `models/reference/policy.bin` at the
//! repository root) and writes the episode plan (`FIRMWARE_SEED`,
//! `FIRMWARE_EPISODES`, `FIRMWARE_MAX_SCORE`, `FIRMWARE_MAX_STEPS`) as constants.
use std::{env, fs, path::PathBuf};

fn var_u64(name: &str, default: u64) -> u64 {
    println!("cargo:rerun-if-env-changed={name}");
    match env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not an unsigned integer")),
        Err(_) => default,
    }
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    println!("cargo:rerun-if-env-changed=FIRMWARE_BLOB");
    let blob = env::var_os("FIRMWARE_BLOB")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../models/reference/policy.bin"));
    println!("cargo:rerun-if-changed={}", blob.display());
    let bytes = fs::read(&blob).unwrap_or_else(|e| {
        panic!(
            "cannot read the policy blob {} ({e}); set FIRMWARE_BLOB or run `make mcu`",
            blob.display()
        )
    });
    if bytes.get(..4) != Some(b"FQDN".as_slice()) {
        panic!("{} is not a policy blob (no FQDN magic)", blob.display());
    }
    fs::write(out.join("policy.bin"), &bytes).unwrap();

    let plan = format!(
        "/// Seed of episode 0.\npub const SEED: u64 = {};\n\
         /// Episodes to play.\npub const EPISODES: u32 = {};\n\
         /// Score at which an episode stops.\npub const MAX_SCORE: u32 = {};\n\
         /// Decisions after which an episode stops.\npub const MAX_STEPS: u32 = {};\n",
        var_u64("FIRMWARE_SEED", 0),
        var_u64("FIRMWARE_EPISODES", 2),
        var_u64("FIRMWARE_MAX_SCORE", 3),
        var_u64("FIRMWARE_MAX_STEPS", 1_000_000),
    );
    fs::write(out.join("plan.rs"), plan).unwrap();
}
