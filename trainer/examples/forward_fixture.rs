//! `cargo run --release -p trainer --example forward_fixture -- WEIGHTS.safetensors RECORDING OUT.json`:
//! the trainer's own float forward (`QNetwork::forward`, libtorch, one
//! thread) on every stack of a recording, written as JSON for the Python
//! package's test that its PyTorch module computes the same Q-values
//! (`python/tests/test_torch.py`). The JSON names both inputs with their
//! CRC-32, so the test notices a fixture older than the files it describes.
use anyhow::{Context, Result};
use std::path::Path;
use trainer::net::{to_input, unpack_stack, INPUT_LEN};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ck, rec, out] = args.as_slice() else {
        anyhow::bail!("usage: forward_fixture WEIGHTS.safetensors RECORDING OUT.json");
    };
    tch::set_num_threads(1);
    let file = Path::new(ck);
    anyhow::ensure!(file.is_file(), "{ck}: not a weights file (.safetensors)");
    let net = trainer::checkpoint::load_network(file, tch::Device::Cpu)?;
    let recording = trainer::recording::Recording::load(Path::new(rec))?;
    let n = recording.stacks.len();
    let mut buf = vec![0f32; n * INPUT_LEN];
    for (s, dst) in recording.stacks.iter().zip(buf.chunks_exact_mut(INPUT_LEN)) {
        unpack_stack(s, dst);
    }
    let q = tch::no_grad(|| net.forward(&to_input(&buf, n, tch::Device::Cpu)));
    let q: Vec<f32> = Vec::try_from(q.flatten(0, -1)).context("Q-values to floats")?;
    let crc = |p: &Path| -> Result<u32> {
        Ok(crc32fast::hash(
            &std::fs::read(p).with_context(|| p.display().to_string())?,
        ))
    };
    let json = serde_json::json!({
        "command": format!("cargo run --release -p trainer --example forward_fixture -- {ck} {rec} {out}"),
        "checkpoint": ck,
        "checkpoint_crc32": crc(file)?,
        "recording": rec,
        "recording_crc32": crc(Path::new(rec))?,
        "arch": net.arch.name,
        "libtorch_threads": 1,
        "q": q.chunks(2).map(|c| [c[0], c[1]]).collect::<Vec<_>>(),
    });
    std::fs::write(out, serde_json::to_string(&json)? + "\n").with_context(|| out.clone())?;
    println!("wrote {out}: Q-values of {n} stacks");
    Ok(())
}
