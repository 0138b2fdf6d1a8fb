//! Puts `memory-m4.x` (`memory-microbit.x` with the feature `microbit`) on
//! the linker search path as `memory.x` (cortex-m-rt's `link.x` includes
//! that name; no file of that name may lie in this folder, where the linker
//! runs, since `ld.lld` looks there first), copies the policy blob into `OUT_DIR`
//! (from `FIRMWARE_BLOB`, default `models/reference/policy.bin` at the
//! repository root, `models/tiny/policy.bin` for the micro:bit) and writes
//! the episode plan (`FIRMWARE_SEED`, `FIRMWARE_EPISODES`,
//! `FIRMWARE_MAX_SCORE`, `FIRMWARE_MAX_STEPS`) as constants.
//! It also writes the blob's first-conv nibble table (`policy-core`'s
//! `conv1_table`, 74 752 B for the classic network; none for a first conv
//! whose kernel is not 8 wide, such as `compact`'s and `tiny`'s 4x4) as a
//! `static [u32; N]` for flash; the firmware checks it against the blob at
//! start. A blob that does not load, or whose first conv has no table, gets
//! an empty one (the firmware then reports the blob's error, or runs the
//! gather kernel).
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
    // The memory map of the chip (see the module docs for the names).
    let microbit = env::var_os("CARGO_FEATURE_MICROBIT").is_some();
    let memory = if microbit {
        "memory-microbit.x"
    } else {
        "memory-m4.x"
    };
    fs::copy(memory, out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={memory}");

    println!("cargo:rerun-if-env-changed=FIRMWARE_BLOB");
    let default_blob = if microbit {
        "../../models/tiny/policy.bin"
    } else {
        "../../models/reference/policy.bin"
    };
    let blob = env::var_os("FIRMWARE_BLOB")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join(default_blob));
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
    let table = match policy_core::Policy::from_blob(&bytes) {
        Ok(p) => {
            let mut t = vec![0u32; p.conv1_table_len().unwrap_or(0)];
            if !t.is_empty() {
                p.write_conv1_table(&mut t)
                    .unwrap_or_else(|e| panic!("conv1 table of {}: {e}", blob.display()));
            }
            t
        }
        Err(_) => Vec::new(),
    };
    // A word array (aligned in flash), 8 words a line.
    let mut src = format!(
        "/// The blob's first-conv nibble table (policy-core's conv1_table).\n\
         pub static TABLE: [u32; {}] = [\n",
        table.len()
    );
    for line in table.chunks(8) {
        for w in line {
            src.push_str(&format!("{w:#010x},"));
        }
        src.push('\n');
    }
    src.push_str("];\n");
    fs::write(out.join("conv1_table.rs"), src).unwrap();

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
