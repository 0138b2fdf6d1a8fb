#!/usr/bin/env python3
"""`make mcu` checks: the Cortex-M4 run against the host simulator.

Usage: check.py MCU_OUTPUT HOST_JSON ELF

Reads the MCU's JSON line, the host simulator's JSON and the linked ELF;
computes flash (allocated PROGBITS sections, .data counted once as its load
image) and static RAM (allocated sections at 0x2000_0000+) from the section
headers and checks them against what the firmware read from the linker's
symbols; prints one JSON summary line and a short report; exits 1 if the
checksums, decisions or scores differ, if the per-layer pass did not
reproduce the checksum, if the SysTick calibration is not 40 instructions
per tick (1%), or if flash > 1 MiB or RAM (static + measured stack
high water) > 64 KiB. Instructions per decision are reported against their
3 000 000 bar but do not fail the check.
"""
import json
import struct
import sys

FLASH_BAR = 1024 * 1024
RAM_BAR = 64 * 1024
INSTR_BAR = 3_000_000
RAM_BASE = 0x2000_0000
SHF_ALLOC = 0x2
SHT_NOBITS = 8


def elf_sizes(path):
    with open(path, "rb") as f:
        b = f.read()
    if b[:4] != b"\x7fELF" or b[4] != 1 or b[5] != 1:
        sys.exit(f"{path}: not a little-endian ELF32 file")
    shoff, = struct.unpack_from("<I", b, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", b, 0x2E)
    flash = ram = 0
    sections = {}
    for i in range(shnum):
        _name, typ, flags, addr, _off, size = struct.unpack_from("<IIIIII", b, shoff + i * shentsize)
        if not flags & SHF_ALLOC or size == 0:
            continue
        if addr >= RAM_BASE:
            ram += size
            if typ != SHT_NOBITS:
                flash += size  # initial values of .data live in flash
        elif typ != SHT_NOBITS:
            flash += size
        sections[i] = (addr, size)
    return flash, ram


def main():
    mcu_path, host_path, elf = sys.argv[1:4]
    mcu = None
    with open(mcu_path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                mcu = json.loads(line)
    if mcu is None or "error" in mcu:
        sys.exit(f"MCU run failed: {mcu if mcu else open(mcu_path).read()!r}")
    with open(host_path) as f:
        host = json.load(f)
    flash, ram_static = elf_sizes(elf)
    stack = mcu["stack_high_water_bytes"]
    ram = ram_static + stack
    ipd = mcu["instructions_per_decision"]
    cal = mcu["systick_calibration"]
    split = mcu.get("layer_split", {})
    ok_sum = mcu["checksum"] == host["checksum"]
    # The firmware lists the first 64 episodes' scores; `score` is the sum of all.
    ok_dec = (mcu["decisions"] == host["decisions"] and mcu["episodes"] == host["episodes"]
              and mcu["scores"] == host["scores"][:len(mcu["scores"])]
              and mcu["score"] == sum(host["scores"]))
    ok_elf = mcu["flash_bytes"] == flash and mcu["ram_static_bytes"] == ram_static
    ok_split = bool(split.get("checksum_matches"))
    # Under -icount shift=0 SysTick (25 MHz) advances once per 40 instructions;
    # anything else means QEMU did not count instructions.
    ok_cal = abs(cal["instructions_per_tick_x1000"] - 40_000) <= 400
    ok_flash = flash <= FLASH_BAR
    ok_ram = ram <= RAM_BAR
    out = dict(mcu)
    out.update(
        flash_bytes=flash,
        ram_static_bytes=ram_static,
        ram_bytes=ram,
        host_checksum=host["checksum"],
        checksum_match=ok_sum,
        host_latency_ns_per_decision=round(host["latency_ns_per_decision"], 1),
    )
    print(json.dumps(out))
    mark = lambda ok: "ok" if ok else "FAIL"
    print(f"checksum      mcu {mcu['checksum']}  host {host['checksum']}  {mark(ok_sum)}")
    print(f"decisions     mcu {mcu['decisions']}  host {host['decisions']}; scores mcu {mcu['scores']} host {host['scores']}  {mark(ok_dec)}")
    print(f"flash         {flash} B  (bar {FLASH_BAR}; firmware says {mcu['flash_bytes']})  {mark(ok_flash and ok_elf)}")
    print(f"ram           {ram} B = static {ram_static} + stack high water {stack}  (bar {RAM_BAR})  {mark(ok_ram and ok_elf)}")
    print(f"instructions  {ipd['mean']} mean, {ipd['max']} max per decision  (bar {INSTR_BAR}: "
          f"{'ok' if ipd['max'] <= INSTR_BAR else 'OVER, reported only'})")
    print(f"systick scale {cal['instructions_per_tick_x1000'] / 1000:.3f} instructions/tick "
          f"({cal['instructions']} loop instructions in {cal['ticks']} ticks; expected 40 at 25 MHz, -icount shift=0)  {mark(ok_cal)}")
    for st in split.get("stages", []):
        print(f"  {st['stage']:<24} {st['instructions_mean']:>9} instructions/decision (mean)")
    print(f"layer split   second pass with stage marks (Policy::q_values_marked): checksum {mark(ok_split)}")
    print(f"host latency  {host['latency_ns_per_decision'] / 1e3:.1f} us/decision")
    if not (ok_sum and ok_dec and ok_elf and ok_split and ok_cal and ok_flash and ok_ram):
        sys.exit(1)


if __name__ == "__main__":
    main()
