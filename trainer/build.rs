//! Gives a libtorch-linking crate's binaries and tests (trainer, parity, fuzz-readers:
//! the others point their `build` here) an rpath to libtorch in the project venv, so
//! they run without `LD_LIBRARY_PATH` (which still wins when set: RUNPATH).
fn main() {
    println!("cargo:rerun-if-env-changed=VIRTUAL_ENV");
    if let Some(dir) = torch_lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

fn torch_lib_dir() -> Option<String> {
    let venv = std::env::var("VIRTUAL_ENV").ok()?;
    let lib = std::path::Path::new(&venv).join("lib");
    std::fs::read_dir(lib).ok()?.flatten().find_map(|entry| {
        let dir = entry.path().join("site-packages/torch/lib");
        dir.is_dir().then(|| dir.display().to_string())
    })
}
