#!/usr/bin/env python3
"""`make mcu` / `make mcu-m0` checks: an MCU run against the host simulator.

Usage: check.py MCU_OUTPUT HOST_JSON ELF [CHIP] [--results PREFIX] [--command CMD] [--blob PATH]

CHIP is `m4` (the Cortex-M4 image, the default) or `m0` (the BBC micro:bit
image). Reads the MCU's JSON line, the host simulator's JSON and the linked
ELF; computes flash (allocated PROGBITS sections, .data counted once as its
load image) and static RAM (allocated sections at 0x2000_0000+) from the
section headers and checks them against what the firmware read from the
linker's symbols; prints one JSON summary line and a short report; exits 1
if the checksums, decisions or scores differ, if the per-layer pass did not
reproduce the checksum, if the clock calibration is off the chip's
instructions per tick (1%: SysTick 40 on the M4, TIMER0 62.5 on the M0,
both under -icount shift=0), or if flash or RAM (static + measured stack
high water) exceed the chip's budget (M4: 1 MiB / 64 KiB; M0: 256 KiB /
16 KiB). Instructions per decision are reported against the chip's bar
(M4: 3 000 000; M0: 1 000 000) but do not fail the check.

With --results PREFIX (make's MCU_RESULTS) a run that passes also writes
PREFIX.json and PREFIX.md: instruction counts per decision and per layer
(mean and max), decisions, flash, RAM (static + stack), the checksums, and
the issue-27 anchors of TFLite Micro + CMSIS-NN (anchors.json, beside this
script). All counts are QEMU instruction counts under -icount shift=0, not
cycles. --command and --blob say what produced the run.
"""
import json
import os
import struct
import subprocess
import sys

# Per chip: what it is, flash and RAM budgets (bytes), the instructions-per-
# decision bar (reported only), instructions per clock tick under -icount
# shift=0, the clock, and the core clock in MHz for decisions per second.
CHIP_FIELDS = ("name", "flash", "ram", "instr", "per_tick", "clock", "mhz")
CHIPS = {
    key: dict(zip(CHIP_FIELDS, values))
    for key, values in {
        # STM32F407-class budget: 1 MiB / 64 KiB, 168 MHz.
        "m4": ("Cortex-M4 (QEMU mps2-an386)", 1024 * 1024, 64 * 1024, 3_000_000, 40.0, "SysTick at 25 MHz", 168),
        "m0": ("BBC micro:bit, nRF51822 Cortex-M0 (QEMU microbit)", 256 * 1024, 16 * 1024, 1_000_000, 62.5, "nRF51 TIMER0 at 16 MHz", 16),
    }.items()
}
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


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        return out.splitlines()[0].strip() if out else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def anchor_layers(chip_key):
    """The issue-27 anchors for this chip: (engine, total, per-layer list or None)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "anchors.json")
    try:
        with open(path) as f:
            a = json.load(f).get(chip_key)
    except (OSError, ValueError):
        return None
    if not a:
        return None
    layers = None
    lay = a.get("layers")
    if lay:
        layers = [round(p / r) for p, r in zip(lay["policy_core_then"], lay["ratio_policy_core_to_cmsis"])]
    return a["engine"], a["net"], a["instructions_per_decision"], layers


def write_results(prefix, chip_key, chip, out, host, command, blob):
    """PREFIX.json and PREFIX.md of a run that passed every check."""
    stages = out.get("layer_split", {}).get("stages", [])
    anchors = anchor_layers(chip_key)
    ipd = out["instructions_per_decision"]
    res = {
        "what": "instructions per decision counted by QEMU (-icount shift=0: 1 instruction = 1 ns of "
                "virtual time, read from the chip's clock), not cycles",
        "chip": chip["name"],
        "command": command,
        "qemu": tool_version(["qemu-system-arm", "--version"]),
        "rustc": tool_version(["/usr/bin/rustc", "--version"]),
        "blob": blob,
        "blob_bytes": out["blob_bytes"],
        "seed": out["seed"],
        "episodes": out["episodes"],
        "max_score": out["max_score"],
        "scores": out["scores"],
        "score": out["score"],
        "decisions": out["decisions"],
        "instructions_per_decision": ipd,
        "layers": [
            {"stage": st["stage"], "instructions_mean": st["instructions_mean"],
             "instructions_max": st.get("instructions_max")}
            for st in stages
        ],
        "flash_bytes": out["flash_bytes"],
        "flash_budget_bytes": chip["flash"],
        "ram_static_bytes": out["ram_static_bytes"],
        "stack_high_water_bytes": out["stack_high_water_bytes"],
        "ram_bytes": out["ram_bytes"],
        "ram_budget_bytes": chip["ram"],
        "checksum_mcu": out["checksum"],
        "checksum_host": host["checksum"],
        "checksum_match": out["checksum"] == host["checksum"],
    }
    if anchors:
        engine, net, total, layers = anchors
        res["anchor"] = {"engine": engine, "net": net, "instructions_per_decision": total,
                         "layers_approx": layers, "source": "issue 27, firmware-sim/mcu/anchors.json"}
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with open(prefix + ".json", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    n = lambda v: "" if v is None else f"{v:,}".replace(",", " ")
    layers = anchors[3] if anchors else None
    engine = anchors[0] if anchors else None
    lines = [
        f"# {chip['name']}: instructions per decision",
        "",
        f"QEMU instruction counts (`-icount shift=0`), not cycles. `{command}`; blob `{blob}` "
        f"({n(out['blob_bytes'])} B); seed {out['seed']}, {out['episodes']} episode(s) to score "
        f"{out['max_score']}: **{n(out['decisions'])} decisions**, scores {out['scores'][:8]}"
        f"{' ...' if len(out['scores']) > 8 else ''}.",
        "",
    ]
    head = "| layer | mean | max |"
    rule = "|---|---:|---:|"
    if layers:
        head += f" {engine} (issue 27, approx.) | policy-core / it |"
        rule += "---:|---:|"
    lines += [head, rule]
    for i, st in enumerate(res["layers"]):
        row = f"| {st['stage']} | {n(st['instructions_mean'])} | {n(st['instructions_max'])} |"
        if layers:
            a = layers[i] if i < len(layers) else None
            ratio = f"{st['instructions_mean'] / a:.2f}x" if a else ""
            row += f" {n(a) if a else ''} | {ratio} |"
        lines.append(row)
    total = f"| **decision** | **{n(ipd['mean'])}** | **{n(ipd['max'])}** |"
    if layers:
        total += f" {n(anchors[2])} | {ipd['mean'] / anchors[2]:.2f}x |"
    lines.append(total)
    if anchors and not layers:
        lines += ["", f"{engine} (issue 27 anchor, `{anchors[1]}`): {n(anchors[2])} instructions per decision; "
                  f"policy-core / it = {ipd['mean'] / anchors[2]:.2f}x."]
    lines += [
        "",
        "The per-layer counts come from a second pass with stage marks (the same kernels); "
        "the decision counts from the first pass.",
        "",
        f"- flash {n(out['flash_bytes'])} B of {n(chip['flash'])}; RAM {n(out['ram_bytes'])} B = static "
        f"{n(out['ram_static_bytes'])} + stack high water {n(out['stack_high_water_bytes'])} (of {n(chip['ram'])})",
        f"- checksum MCU `{out['checksum']}`, host `{host['checksum']}`: "
        f"{'equal' if res['checksum_match'] else 'DIFFERENT'}",
        f"- {res['qemu']}; {res['rustc']}",
    ]
    if anchors:
        lines.append("- The TFLite Micro + CMSIS-NN figures are the issue's outside anchors (its own build), "
                     "not reproduced by `make`; per layer they are derived from the issue's two-digit ratios.")
    with open(prefix + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"results       {prefix}.json, {prefix}.md")


def main():
    args, opts, it = [], {}, iter(sys.argv[1:])
    for a in it:
        if a in ("--results", "--command", "--blob"):
            opts[a[2:]] = next(it, "")
        else:
            args.append(a)
    mcu_path, host_path, elf = args[:3]
    chip_key = args[3] if len(args) > 3 else "m4"
    chip = CHIPS[chip_key]
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
    # Under -icount shift=0 (1 instruction = 1 ns) SysTick (25 MHz) advances
    # once per 40 instructions, TIMER0 (16 MHz) once per 62.5; anything else
    # means QEMU did not count instructions.
    per_tick = chip["per_tick"]
    ok_cal = abs(cal["instructions_per_tick_x1000"] - 1000 * per_tick) <= 10 * per_tick
    ok_flash = flash <= chip["flash"]
    ok_ram = ram <= chip["ram"]
    # policy-core's PEAK_RAM_BYTES (working buffers + frame stack, printed by
    # the host simulator, which has the M4's capacities) lives on the M4
    # image's stack: the measured high water must hold it.
    peak = host.get("peak_ram_bytes", 0) if chip is CHIPS["m4"] else 0
    ok_peak = peak <= stack
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
    print(f"chip          {chip['name']}")
    print(f"checksum      mcu {mcu['checksum']}  host {host['checksum']}  {mark(ok_sum)}")
    print(f"decisions     mcu {mcu['decisions']}  host {host['decisions']}; scores mcu {mcu['scores']} host {host['scores']}  {mark(ok_dec)}")
    print(f"flash         {flash} B  (bar {chip['flash']}; firmware says {mcu['flash_bytes']})  {mark(ok_flash and ok_elf)}")
    print(f"ram           {ram} B = static {ram_static} + stack high water {stack}  (bar {chip['ram']})  {mark(ok_ram and ok_elf)}")
    if peak:
        print(f"decision RAM  policy-core PEAK_RAM_BYTES {peak} B <= stack high water {stack} B (the rest: game, loop, call frames)  {mark(ok_peak)}")
    print(f"instructions  {ipd['mean']} mean, {ipd['max']} max per decision  (bar {chip['instr']}: "
          f"{'ok' if ipd['max'] <= chip['instr'] else 'OVER, reported only'}); "
          f"{chip['mhz'] * 1e6 / max(ipd['mean'], 1):.1f} decisions/s at {chip['mhz']} MHz if one instruction took one cycle")
    print(f"clock scale   {cal['instructions_per_tick_x1000'] / 1000:.3f} instructions/tick "
          f"({cal['instructions']} loop instructions in {cal['ticks']} ticks; expected {per_tick:g} for {chip['clock']}, -icount shift=0)  {mark(ok_cal)}")
    for st in split.get("stages", []):
        print(f"  {st['stage']:<24} {st['instructions_mean']:>9} instructions/decision (mean), "
              f"{st.get('instructions_max', '?'):>9} max")
    print(f"layer split   second pass with stage marks (Policy::q_values_marked): checksum {mark(ok_split)}")
    print(f"host latency  {host['latency_ns_per_decision'] / 1e3:.1f} us/decision")
    if not (ok_sum and ok_dec and ok_elf and ok_split and ok_cal and ok_flash and ok_ram and ok_peak):
        sys.exit(1)
    if opts.get("results"):
        write_results(opts["results"], chip_key, chip, out, host, opts.get("command", "?"),
                      opts.get("blob", "?"))


if __name__ == "__main__":
    main()
