#!/usr/bin/env bash
# One-command GPU check, for a lent GPU machine (python3 with torch 2.11.0 and
# CUDA; no Rust, no network there). Build the trainer here first:
#
#   make gpu-bin          # copies target/release/trainer into gpu/ (git-ignored)
#
# then run this script there with gpu/ carried along. It points the trainer at
# that machine's own libtorch, prints `trainer bench` (env steps/s, updates/s
# on CPU and CUDA) and trains the default configuration for MINUTES (15) on
# CUDA, printing the score reached (20 unseen seeds, capped at 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${MINUTES:-15}"
BIN="${BIN:-gpu/trainer}"
[ -x "$BIN" ] || { echo "gpu-check: no $BIN (run \`make gpu-bin\` on the build machine)"; exit 1; }
TORCH_LIB="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
OUT="${OUT:-gpu/out}"
mkdir -p "$OUT"
"$BIN" bench --seconds 5 | tee "$OUT/bench.md"
"$BIN" train --name gpu-check --runs-dir "$OUT" --minutes "$MINUTES" --final-max-score 1000 \
  | tee "$OUT/train.log"
tail -n 25 "$OUT/gpu-check/metrics.csv" | cut -d, -f1-13
