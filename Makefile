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
MCU_PKGS    := rustc-web rust-web-src lld-19 qemu-system-arm
MCU_CARGO   := RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo

export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: help setup torch mcu-tools train test check cross mcu bench
help:
	@echo "make train   set up libtorch, train the DQN, evaluate, export the int8 blob"
	@echo "make test    set up everything, then fmt, clippy, all tests, cross-builds, MCU run"

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

train: torch
	cargo run --release -p trainer -- $(ARGS)

check: torch
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: setup check
	cargo test --workspace --release
	$(MAKE) cross

# policy-core (and the game it reads frames from) for Cortex-M4F and Cortex-M0.
cross: mcu-tools
	$(MCU_CARGO) build -Zbuild-std=core --release -p policy-core --target thumbv7em-none-eabihf
	$(MCU_CARGO) build -Zbuild-std=core --release -p policy-core --target thumbv6m-none-eabi
