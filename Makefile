# Two entry points for people: `make train` and `make test`. Both set up what
# they need (idempotently: a second run only checks stamps).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := $(CURDIR)/.venv
TORCH_VER   := 2.11.0
TORCH_STAMP := $(VENV)/.torch-$(TORCH_VER)
MCU_STAMP   := $(VENV)/.mcu-tools
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian's toolchain for the Cortex-M builds (-Zbuild-std needs rust-src).
MCU_PKGS    := rustc-web rust-web-src lld-19 qemu-system-arm fonts-dejavu-core
MCU_CARGO   := RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo

export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: help setup torch mcu-tools web-tools train train-check train-smoke study tiny-study reference tiny test check cross test-32 i686-tools fuzz-blob-32 mcu mcu-m0 web web-serve web-test web-shot gpu-bin python python-tools python-test python-bench long-games sb3 rllib-smoke interop-tools interop-test peers peers-profile bench-host
help:
	@echo "make train   set up, train the DQN, evaluate, export the int8 blob, check parity and the firmware loop"
	@echo "make test    set up everything, then fmt, clippy, docs, all tests, cross-builds, MCU runs"
	@echo "make study   the default recipe over 5 training seeds, scored on the test seeds (two at a time, about 5.5 h on 2 idle cores of an AVX-512 machine, three times that without; continues when rerun)"
	@echo "make tiny-study  the micro:bit distillation over 3 seeds"
	@echo "make mcu     Cortex-M4 image under QEMU vs the host simulator (MCU_BLOB=..., MCU_EPISODES=...)"
	@echo "make tiny    the micro:bit's \`tiny\` network into models/tiny/: make tiny-study's seed 1 (distilled from models/teacher first when missing, ~45 min on one core)"
	@echo "make mcu-m0  BBC micro:bit (Cortex-M0, 16 KiB RAM) image likewise (MCU_M0_BLOB=..., MCU_EPISODES=...)"
	@echo "make web     the web page (game + int8 policy in WebAssembly) in target/web/ (WEB_BLOB=...)"
	@echo "make web-serve   serve that page on http://127.0.0.1:8000/"
	@echo "make long-games  the shipped network on 20 test seeds capped at 10 000 pipes, float and int8 (results/long-games-*.md)"
	@echo "make peers   policy-core's latency beside LiteRT, ONNX Runtime, OpenVINO, tract and TFLite Micro on recorded frames (results/peers.md)"

setup: torch mcu-tools
torch: $(TORCH_STAMP)
$(TORCH_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q torch==$(TORCH_VER)
	touch $@

mcu-tools: $(MCU_STAMP)
$(MCU_STAMP): | $(TORCH_STAMP)
	@if ! dpkg -s $(MCU_PKGS) >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(MCU_PKGS); \
	fi
	touch $@

# The committed reference model (models/reference/): the default run
# (`make train`'s defaults, training seed 1), which is the first seed of
# `make study` (fixed as the reference before any result): its files are
# copied over from the study's run folder, trained first when missing
# (its one-seed summary then goes to runs/, not over results/).
REF := models/reference
REF_RUN ?= runs/study-default/seed-1
reference: setup
	@if [ ! -f $(REF_RUN)/study-seed.json ]; then \
	  $(MAKE) --no-print-directory study STUDY_SEEDS=1 ARGS="--out runs"; \
	fi
	mkdir -p $(REF)
	cp $(REF_RUN)/best.safetensors $(REF)/model.safetensors
	cp $(REF_RUN)/{config.toml,metrics.csv,curve.png,report.md,policy.bin,frames.rec,best.gif} $(REF)/

# The committed micro:bit model (models/tiny/): the teacher (models/teacher,
# the run hd1 that was the reference until 2026-12-06; chosen on validation
# games, docs/learning.md) distilled into the `tiny` network with `trainer
# distil`'s defaults (100 000 updates, the same amount of learning on a
# busy machine, the teacher's Q-difference clipped at 1, the last quarter
# through the int8 grid): the first seed of `make tiny-study`, whose files
# are copied over from the study's run folder, distilled first when missing
# (its one-seed summary then goes to runs/, not over results/).
TEACHER := models/teacher
TINY := models/tiny
TINY_RUN ?= runs/study-tiny-clip/seed-1
tiny: setup
	@if [ ! -f $(TINY_RUN)/study-seed.json ]; then \
	  $(MAKE) --no-print-directory tiny-study TINY_SEEDS=1 ARGS="--out runs"; \
	fi
	mkdir -p $(TINY)
	cp $(TINY_RUN)/best.safetensors $(TINY)/model.safetensors
	cp $(TINY_RUN)/{distil.toml,metrics.csv,curve.png,report.md,policy.bin,frames.rec,best.gif} $(TINY)/

# The main job: train (CUDA when present, else CPU), evaluate on the test
# seeds, record, export the int8 blob (all by `trainer train`), then check
# the blob against the float network (parity: recorded frames, and a closed
# loop on test games with the power to see a 5 % int8 loss) and play it in
# the firmware loop on the same 100 test games as the float evaluation.
# ARGS are passed to `trainer train` (see `target/release/trainer train --help`).
# NAME is expanded once (:=): every step below names the same run folder.
ifeq ($(origin NAME),undefined)
NAME := $(shell date -u +%Y%m%d-%H%M%S)
endif
RUNS_DIR ?= runs
RUN      := $(RUNS_DIR)/$(NAME)
train: setup
	cargo build --release -p trainer -p parity -p firmware-sim
	target/release/trainer train --name $(NAME) --runs-dir $(RUNS_DIR) $(ARGS)
	@case " $(ARGS) " in *" --help "*|*" -h "*|*" --no-finish "*) exit 0;; esac; \
	if [ ! -f $(RUN)/policy.bin ]; then \
	  echo "train: $(RUN)/policy.bin is missing: the run stopped before its end."; \
	  echo "train: continue it with target/release/trainer train --resume $(RUN), then make train-check NAME=$(NAME)"; \
	  exit 1; \
	fi; \
	$(MAKE) --no-print-directory train-check NAME=$(NAME) RUNS_DIR=$(RUNS_DIR)

# The checks after a run (make train runs them; NAME= names the run).
train-check:
	target/release/parity --checkpoint $(RUN)/best.safetensors --blob $(RUN)/policy.bin \
	  --frames $(RUN)/frames.rec --seed test --episodes 100 --max-score 200 --powered \
	  --report $(RUN)/parity.md
	target/release/firmware-sim --blob $(RUN)/policy.bin --episodes 100 --seed test --max-score 1000

# `make train` end to end with a 12-second budget (run by `make test`): every
# step must run and print (the parity report, the firmware loop's checksum).
# The run name is left to `make train`, as for a user.
train-smoke:
	rm -rf target/train-smoke
	$(MAKE) --no-print-directory train RUNS_DIR=target/train-smoke \
	  ARGS="--minutes 0.2 --threads 1 --eval-every 0 --select-episodes 0 --final-episodes 3 --final-max-score 5 --record-frames 200" \
	  > target/train-smoke.log 2>&1 || { cat target/train-smoke.log; exit 1; }
	@grep -q "^# Parity: int8 policy-core vs float network" target/train-smoke.log \
	  && grep -q "checksum" target/train-smoke.log \
	  || { cat target/train-smoke.log; echo "train-smoke: make train skipped its parity or firmware step"; exit 1; }
	@echo "train-smoke: make train ran training, parity and the firmware loop"

# The study behind the README's learning figures: `make train`'s defaults
# with 5 training seeds, two at a time with one libtorch thread each
# (`--jobs 2`; STUDY_JOBS=1 runs them one after another with every core),
# each scored on 100 test games as float and as int8 in the firmware loop;
# results/study-default.{json,md,png}. About 5.5 hours on an idle 2-core
# CPU (8 one after another); the same command continues a stopped study.
# The budget is in steps, so a compile beside it slows it without changing
# its results.
STUDY_SEEDS ?= 1,2,3,4,5
STUDY_JOBS ?= 2
study: setup
	cargo build --release -p study
	target/release/study train --seeds $(STUDY_SEEDS) --jobs $(STUDY_JOBS) $(ARGS)

# The micro:bit policy's study: `make tiny`'s distillation with 3 seeds,
# one thread each, two at a time (TINY_JOBS=1: one after another;
# results/study-tiny-clip.*; about 40 minutes a seed on a quiet core). A
# study's name stands for one recipe:
# results/study-tiny-select.* is the recipe before the teacher's
# Q-difference was clipped (`--name tiny-select` then),
# results/study-tiny-grid.* the one before the selection played the
# int8 blobs (`--name tiny-grid` then), results/study-tiny-hd1.* the one
# before its last quarter trained through the int8 grid (`--name tiny-hd1`),
# and results/study-tiny.* that recipe with the study's seed 1 as teacher
# (`--teacher runs/study-default/seed-1`, name `tiny`), stopped after 2
# seeds when validation games chose the other teacher (scripts/tiny-teachers).
TINY_SEEDS ?= 1,2,3
TINY_JOBS ?= 2
tiny-study: setup
	cargo build --release -p study
	target/release/study distil --teacher $(TEACHER) --name tiny-clip --seeds $(TINY_SEEDS) --jobs $(TINY_JOBS) --threads 1 $(ARGS)

# The trainer binary for a lent GPU machine (no Rust there): carry gpu/ and
# run scripts/gpu-check.sh on it.
gpu-bin: torch
	cargo build --release -p trainer
	mkdir -p gpu && cp target/release/trainer gpu/

check: torch
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc -q --workspace --no-deps
	cargo clippy -q -p flappy-py --all-targets --features python -- -D warnings
	cd web && cargo fmt -- --check && CARGO_TARGET_DIR=$(CURDIR)/target/web-host cargo clippy -q --all-targets -- -D warnings
	cd web && CARGO_TARGET_DIR=$(CURDIR)/target/web-host cargo test -q

# The workspace's tests run under cargo-nextest when the machine has it (one
# process per test, two at a time across test binaries, the longest first:
# .config/nextest.toml), the doc examples under `cargo test --doc`; on a
# machine without nextest, all of them under `cargo test`. libtorch's
# OpenMP threads wait asleep, not spinning, between parallel regions
# (OMP_WAIT_POLICY=PASSIVE: the same results; with two tests at a time, a
# spinning thread takes the other test's core: the int8 selection test
# used 62 s of CPU spinning, 36 s passive).
test: setup check
	@export OMP_WAIT_POLICY=PASSIVE; \
	if cargo nextest --version >/dev/null 2>&1; then \
	  set -x; cargo nextest run --workspace --release --no-fail-fast && cargo test --workspace --release --doc; \
	else \
	  set -x; cargo test --workspace --release; \
	fi
	cargo test --release -q -p policy-core --features caps-m0 --test caps
	$(MAKE) cross
	$(MAKE) test-32
	$(MAKE) mcu
	$(MAKE) mcu-m0
	$(MAKE) web-test
	$(MAKE) python-test
	$(MAKE) interop-test
	$(MAKE) train-smoke

# The standard int8 runtimes from PyPI (pinned), in the venv, for the
# conformance tests of `interop convert`'s TFLite and ONNX files and for
# `make peers` (docs/interop.md). The stamp names the pins.
INTEROP_PY    := ai-edge-litert==2.3.0 onnxruntime==1.31.1 tflite-micro==0.dev20261023182759 numpy==2.4.6 pytest==9.2.0
INTEROP_STAMP := $(VENV)/.interop-$(shell echo '$(INTEROP_PY)' | md5sum | cut -c1-8)
INTEROP_BIN   := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release/interop
INTEROP_ENV   := INTEROP_BIN=$(INTEROP_BIN) PYTHONDONTWRITEBYTECODE=1
interop-tools: $(INTEROP_STAMP)
$(INTEROP_STAMP): | $(TORCH_STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q $(INTEROP_PY)
	touch $@

# LiteRT's reference kernels and TFLite Micro bit-identical with policy-core
# at every stage, XNNPACK, LiteRT's built-in kernels and ONNX Runtime on the
# same action (>= 99 %), on models/reference and models/tiny's recordings
# (interop/py/test_conformance.py; about 15 s).
interop-test: interop-tools
	cargo build --release -q -p interop
	$(INTEROP_ENV) $(VENV)/bin/python -m pytest -q -p no:cacheprovider interop/py

# Batch-1, one-thread latency of policy-core and every peer on the same
# recorded frames, both flavours of the files, interleaved rounds, under
# scripts/quiet (about 5 min, plus about 6 min to compile tract the first
# time): results/peers.{json,md}. OpenVINO (pinned, from PyPI) is optional:
# left out when it does not install. ARGS go to interop/py/peers.py
# (--rounds, --models, --limit). policy-core also runs built with
# -C target-cpu=native (target/native), in the same rounds.
PEERS_PY := openvino==2026.4.1
PEERS_STAMP := $(VENV)/.peers-$(shell echo '$(PEERS_PY)' | md5sum | cut -c1-8)
$(PEERS_STAMP): | $(INTEROP_STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q $(PEERS_PY) || echo "OpenVINO not installed: make peers goes on without it"
	touch $@
NATIVE_DIR := $(CURDIR)/target/native
peers: interop-tools $(PEERS_STAMP)
	$(INTEROP_ENV) INTEROP_NATIVE_BIN=$(NATIVE_DIR)/release/interop scripts/quiet sh -c \
	  'cargo build --release -q -p interop --features tract && \
	  CARGO_TARGET_DIR=$(NATIVE_DIR) RUSTFLAGS="-C target-cpu=native" cargo build --release -q -p interop && \
	  $(VENV)/bin/python interop/py/peers.py $(ARGS)'

# Where LiteRT (per operator), ONNX Runtime and OpenVINO (their profilers)
# spend their time on both flavours of the reference model, and XNNPACK's
# 1x1 convolution by channel count (about 2 min, under scripts/quiet):
# results/peers-profile.{json,md}. ARGS go to interop/py/profile_peers.py.
peers-profile: interop-tools $(PEERS_STAMP)
	$(INTEROP_ENV) scripts/quiet sh -c 'cargo build --release -q -p interop --features tract && \
	  $(VENV)/bin/python interop/py/profile_peers.py $(ARGS)'

# Host latency of policy-core per decision and per layer (firmware-sim's
# policy-latency: batch 1, one thread, 2 000 stacks from the policy's own
# games, 30 rounds, medians) for two builds: the default one (x86-64:
# SSE2) and one for this CPU (-C target-cpu=native, in target/native:
# AVX2, AVX-512, VNNI as the CPU has them); timed under scripts/quiet
# (about a minute): results/policy-latency{,-native}.{json,md}.
BENCH_BLOB ?= models/reference/policy.bin
bench-host:
	cargo build --release -q -p firmware-sim --bin policy-latency
	CARGO_TARGET_DIR=$(CURDIR)/target/native RUSTFLAGS="-C target-cpu=native" \
	  cargo build --release -q -p firmware-sim --bin policy-latency
	scripts/quiet $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release/policy-latency \
	  --blob $(BENCH_BLOB) --results results/policy-latency --build "make bench-host, default flags" $(ARGS)
	scripts/quiet $(CURDIR)/target/native/release/policy-latency \
	  --blob $(BENCH_BLOB) --results results/policy-latency-native \
	  --build "make bench-host, RUSTFLAGS=-C target-cpu=native" $(ARGS)

# The Python package (python/, docs/python.md): the pinned tools of its
# tests, then the abi3 wheel that maturin builds, installed into the venv
# (again only when a source changed). `make python-test` runs its tests.
PY_REQ      := python/requirements-test.txt
PY_STAMP    := $(VENV)/.python-tools
WHEEL_STAMP := $(VENV)/.flappy-dqn-wheel
WHEEL_DIR   := $(CURDIR)/target/wheels
PY_SOURCES  := $(shell find python/src python/flappy_dqn flappy/src policy-core/src netspec/src quant/src \
                 -name '*.rs' -o -name '*.py' 2>/dev/null) python/Cargo.toml python/pyproject.toml Cargo.lock
python-tools: $(PY_STAMP)
$(PY_STAMP): $(PY_REQ) | $(TORCH_STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r $(PY_REQ)
	touch $@

python: $(WHEEL_STAMP)
$(WHEEL_STAMP): $(PY_SOURCES) $(PY_STAMP)
	rm -f $(WHEEL_DIR)/flappy_dqn-*.whl
	maturin build --release -q -m python/Cargo.toml --out $(WHEEL_DIR)
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps --force-reinstall $(WHEEL_DIR)/flappy_dqn-*.whl
	touch $@

# pytest: both env checkers, equality with the flappy and firmware-sim
# binaries (observations, episodes, pixels, the Q checksum), the native
# vector env against Gymnasium's SyncVectorEnv, the PyTorch module against
# the trainer's forward, bad input (~10 s after the build).
python-test: python
	cargo build --release -q -p flappy -p firmware-sim
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider python/tests

# Observed steps/s from Python (results/python-throughput.{json,md}): the
# native envs against Gymnasium's vector wrappers and flappy-bird-gymnasium
# (installed here, pinned). Run it under scripts/quiet (about 1 minute).
python-bench: python
	$(VENV)/bin/pip install --disable-pip-version-check -q -r python/requirements-bench.txt
	cargo build --release -q -p flappy
	$(VENV)/bin/python scripts/python_throughput.py

# policy-core's tests on a 32-bit target, where `usize` has 32 bits as on
# the Cortex-M and wasm32 targets: i686 Linux, through Debian's rustc with
# -Zbuild-std (std from rust-web-src) and gcc-multilib's 32-bit C runtime;
# the kernel runs the test binaries natively. About 1 min (the first build
# also builds std: about 4 min more).
I686_STAMP  := $(VENV)/.i686-tools
I686_TARGET := i686-unknown-linux-gnu
I686_CARGO  := RUSTDOC=/usr/bin/rustdoc CARGO_TARGET_DIR=$(CURDIR)/target/i686 $(MCU_CARGO)
i686-tools: $(I686_STAMP)
$(I686_STAMP): | $(MCU_STAMP)
	@if ! dpkg -s gcc-multilib >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-multilib; \
	fi
	touch $@

test-32: i686-tools
	$(I686_CARGO) test -Zbuild-std --locked --release -q --target $(I686_TARGET) -p policy-core

# The blob parser fuzzed on that 32-bit target: 1 M mutated blobs
# (policy-core/examples/fuzz_blob.rs), into results/fuzz-blob-32bit.md.
fuzz-blob-32: i686-tools
	$(I686_CARGO) build -Zbuild-std --locked --release -q --target $(I686_TARGET) -p policy-core --example fuzz_blob
	scripts/quiet scripts/record --text fuzz-blob-32bit -- target/i686/$(I686_TARGET)/release/examples/fuzz_blob 1000000

# "Plays for good": the shipped network on 20 test seeds capped at 10 000
# pipes, as float (trainer eval) and as int8 in the firmware loop
# (results/long-games-float.md, results/long-games-int8.md; about 5 min).
# The same for another model, number of games or cap, e.g. models/tiny's
# test games: make long-games LONG_MODEL=models/tiny LONG_EPISODES=100
# LONG_CAP=1000 LONG_NAME=tiny-test (results/tiny-test-{float,int8}.md).
LONG_MODEL    ?= models/reference
LONG_EPISODES ?= 20
LONG_CAP      ?= 10000
LONG_NAME     ?= long-games
long-games: setup
	cargo build --release -p trainer -p firmware-sim
	scripts/quiet scripts/record --text $(LONG_NAME)-float -- target/release/trainer eval \
	  --checkpoint $(LONG_MODEL)/model.safetensors --seed test --episodes $(LONG_EPISODES) --max-score $(LONG_CAP)
	scripts/quiet scripts/record --text $(LONG_NAME)-int8 -- target/release/firmware-sim \
	  --blob $(LONG_MODEL)/policy.bin --seed test --episodes $(LONG_EPISODES) --max-score $(LONG_CAP)

# Stable-Baselines3's DQN (rl-zoo3's Atari settings) on the same game and
# CPU as `make train`, 55 minutes of a pausable clock, evaluated on the same
# validation and test games: results/sb3-seed$(SB3_SEED).json (see
# scripts/sb3.py for every setting; docs/python.md for how the committed
# runs shared the CPU). Its clock pauses for scripts/quiet holds. ARGS go to
# scripts/sb3.py; scripts/sb3_compare.py then writes results/sb3-vs-trainer.*
SB3_SEED ?= 1
sb3: python
	$(VENV)/bin/python scripts/sb3.py --seed $(SB3_SEED) $(ARGS)

# Ray RLlib: the env registered with Tune, PPO for a few iterations with 2
# local env-runner processes (scripts/rllib_smoke.py; ray pinned in
# python/requirements-rllib.txt). Run it under scripts/quiet.
rllib-smoke: python
	$(VENV)/bin/pip install --disable-pip-version-check -q -r python/requirements-rllib.txt
	$(VENV)/bin/python scripts/rllib_smoke.py

# policy-core (and the game it reads frames from) for Cortex-M4F and Cortex-M0.
cross: mcu-tools
	$(MCU_CARGO) build -Zbuild-std=core --release -p policy-core --target thumbv7em-none-eabihf
	$(MCU_CARGO) build -Zbuild-std=core --release -p policy-core --target thumbv6m-none-eabi

# The Cortex-M4 image (firmware-sim/mcu): game + integer policy in a closed loop
# under QEMU (mps2-an386, -icount shift=0: 1 instruction = 1 ns), checked
# bit for bit against the host simulator on the same blob, seeds, episodes and
# max score, and against the budgets (flash <= 1 MiB, RAM static + stack <=
# 64 KiB; instructions/decision <= 3 000 000 is reported). The link fails if
# the image does not fit memory-m4.x (1 MiB flash, 128 KiB RAM).
# MCU_BLOB defaults to the exported reference model; without one, a random
# classic-architecture blob stands in (written to target/mcu/).
MCU_BLOB      ?= models/reference/policy.bin
MCU_SEED      ?= 0
MCU_EPISODES  ?= 2
MCU_MAX_SCORE ?= 3
MCU_TIMEOUT   ?= 300
# MCU_RESULTS=results/mcu-m4 writes results/mcu-m4.json and .md (instruction
# counts per decision and per layer, flash, RAM, checksums) for a run that
# passes; empty (the default, as in make test) writes nothing. Long runs:
# make mcu MCU_EPISODES=1 MCU_MAX_SCORE=150 MCU_TIMEOUT=1200 MCU_RESULTS=results/mcu-m4
MCU_RESULTS   ?=
MCU_OUT       := $(CURDIR)/target/mcu
MCU_HOST_SIM  := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release/firmware-sim
MCU_TARGET    := thumbv7em-none-eabihf
MCU_FEATURES  :=
MCU_NET       := classic
MCU_CHIP      := m4
MCU_ELF       := $(MCU_OUT)/$(MCU_TARGET)/release/firmware-mcu
MCU_QEMU      := qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -icount shift=0 \
                 -semihosting-config enable=on,target=native -nographic -monitor none -serial none
mcu: mcu-tools
	$(call mcu_run,MCU)

# The BBC micro:bit image (firmware-sim/mcu with the feature `microbit`:
# nRF51822, Cortex-M0, thumbv6m-none-eabi, policy-core's small-RAM
# capacities) under QEMU's microbit machine (-icount shift=0; the nRF51's
# TIMER0 at 16 MHz ticks every 62.5 instructions), checked like `make mcu`
# against the host and against the chip: flash <= 256 KiB, RAM static +
# stack <= 16 KiB (instructions/decision <= 1 000 000 is reported). The link
# fails if the image does not fit memory-microbit.x. MCU_M0_BLOB defaults to
# the exported tiny model; without one, a random `tiny` blob stands in
# (written to target/mcu-m0/). MCU_SEED, MCU_EPISODES, MCU_MAX_SCORE and
# MCU_TIMEOUT are shared with `make mcu`.
MCU_M0_BLOB     ?= models/tiny/policy.bin
MCU_M0_OUT      := $(CURDIR)/target/mcu-m0
MCU_M0_TARGET   := thumbv6m-none-eabi
MCU_M0_FEATURES := microbit
MCU_M0_NET      := tiny
MCU_M0_CHIP     := m0
MCU_M0_ELF      := $(MCU_M0_OUT)/$(MCU_M0_TARGET)/release/firmware-mcu
MCU_M0_QEMU     := qemu-system-arm -machine microbit -icount shift=0 \
                   -semihosting-config enable=on,target=native -nographic -monitor none -serial none
mcu-m0: mcu-tools
	$(call mcu_run,MCU_M0)

# The recipe of both images, for the variables prefixed $(1) (MCU, MCU_M0):
# the blob (or a random one of $(1)_NET), the image built for $(1)_TARGET
# with $(1)_FEATURES, the QEMU run, the host run, check.py for $(1)_CHIP.
define mcu_run
	@mkdir -p $($(1)_OUT)
	cargo build --release -q -p firmware-sim
	@set -euo pipefail; \
	blob="$($(1)_BLOB)"; \
	if [ ! -f "$$blob" ]; then \
	  blob="$($(1)_OUT)/random-policy.bin"; \
	  echo "$@: no $($(1)_BLOB); using a random $($(1)_NET) blob ($$blob)"; \
	  $(MCU_HOST_SIM) --write-random-blob "$$blob" --net $($(1)_NET) --seed 1; \
	fi; \
	blob_arg="$$blob"; blob="$$(realpath "$$blob")"; \
	( cd firmware-sim/mcu && CARGO_TARGET_DIR=$($(1)_OUT) FIRMWARE_BLOB="$$blob" FIRMWARE_SEED=$(MCU_SEED) \
	  FIRMWARE_EPISODES=$(MCU_EPISODES) FIRMWARE_MAX_SCORE=$(MCU_MAX_SCORE) \
	  $(MCU_CARGO) build -Zbuild-std=core --release -q --target $($(1)_TARGET) --features "$($(1)_FEATURES)" ); \
	timeout $(MCU_TIMEOUT) $($(1)_QEMU) -kernel $($(1)_ELF) > $($(1)_OUT)/mcu.json \
	  || { cat $($(1)_OUT)/mcu.json; echo "$@: QEMU run failed or timed out"; exit 1; }; \
	$(MCU_HOST_SIM) --blob "$$blob" --seed $(MCU_SEED) --episodes $(MCU_EPISODES) \
	  --max-score $(MCU_MAX_SCORE) --json > $($(1)_OUT)/host.json; \
	python3 firmware-sim/mcu/check.py $($(1)_OUT)/mcu.json $($(1)_OUT)/host.json $($(1)_ELF) $($(1)_CHIP) \
	  $(if $(MCU_RESULTS),--results $(MCU_RESULTS) --blob "$$blob_arg" \
	  --command "make $@ $(1)_BLOB=$($(1)_BLOB) MCU_SEED=$(MCU_SEED) MCU_EPISODES=$(MCU_EPISODES) MCU_MAX_SCORE=$(MCU_MAX_SCORE) MCU_RESULTS=$(MCU_RESULTS)")
endef

# The web page (web/): the game and policy-core compiled to WebAssembly
# (no_std, Debian's rustc with -Zbuild-std, linked by wasm-ld from lld-19),
# bundled with the page and the default blob into target/web/, which opens
# straight from disk. WEB_BLOB is the policy it starts with.
WEB_STAMP := $(VENV)/.web-tools
WEB_PKGS  := chromium
WEB_BLOB  ?= models/reference/policy.bin
WEB_OUT   := $(CURDIR)/target/web
WEB_BUILD := $(CURDIR)/target/web-build
WEB_WASM  := $(WEB_BUILD)/wasm32-unknown-unknown/release/flappy_web.wasm
web-tools: $(WEB_STAMP)
$(WEB_STAMP): | $(TORCH_STAMP)
	@if ! dpkg -s $(WEB_PKGS) >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(WEB_PKGS); \
	fi
	touch $@

# WEB_RUSTFLAGS: the module is built with WebAssembly SIMD (simd128: every
# current browser has it), so policy-core's packed kernels run there too;
# WEB_RUSTFLAGS= builds the scalar module.
WEB_RUSTFLAGS ?= -C target-feature=+simd128
web: mcu-tools
	cd web && CARGO_TARGET_DIR=$(WEB_BUILD) CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19 \
	  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$(WEB_RUSTFLAGS)" \
	  $(MCU_CARGO) build -Zbuild-std=core --release -q --target wasm32-unknown-unknown
	python3 web/bundle.py $(WEB_WASM) $(WEB_BLOB) $(WEB_OUT)
	@echo "web: open file://$(WEB_OUT)/index.html in a browser, or run make web-serve"

web-serve: web
	@echo "serving $(WEB_OUT) on http://127.0.0.1:8000/ (Ctrl-C stops)"
	python3 -m http.server --bind 127.0.0.1 --directory $(WEB_OUT) 8000

# Headless Chromium plays the page and checks it against the host loop
# (firmware-sim/tests/browser.rs).
web-test: web web-tools
	FLAPPY_WEB_DIR=$(WEB_OUT) cargo test --release -q -p firmware-sim --test browser -- --ignored

# The README's picture of the page: seed 0, 900 frames in, paused.
web-shot: web web-tools
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=700,640 \
	  --virtual-time-budget=20000 --screenshot=$(CURDIR)/docs/web-page.png \
	  "file://$(WEB_OUT)/index.html?seed=0&warm=900&paused=1"
