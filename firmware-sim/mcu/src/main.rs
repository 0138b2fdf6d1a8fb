//! Firmware image: the game and the integer policy in a closed loop on the
//! chip, through the same [`firmware_sim::run_episodes`] as the host
//! simulator. Two chips, one source:
//!
//! * Cortex-M4 (`thumbv7em-none-eabihf`, QEMU `mps2-an386`, `make mcu`):
//!   SysTick (25 MHz core clock) times the decisions.
//! * BBC micro:bit (feature `microbit`: nRF51822, Cortex-M0,
//!   `thumbv6m-none-eabi`, QEMU `microbit`, `make mcu-m0`): policy-core's
//!   small-RAM capacities (`caps-m0`), `memory-microbit.x`, and the nRF51's
//!   TIMER0 at 16 MHz (QEMU's SysTick does not count on that machine).
//!
//! Prints one JSON line over semihosting, then exits (0 on success):
//! scores, decisions, instructions per decision (clock ticks, calibrated
//! against an instruction loop of known length), stack high-water mark and
//! the FNV-1a checksum of all Q-values. Flash and static RAM come from the
//! ELF (`make mcu`, `make mcu-m0`).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprint, hprintln};
use firmware_sim::policy_core::blob::{LayerKind, Stage};
use firmware_sim::policy_core::MAX_LAYERS;
use firmware_sim::{
    run_episodes, Env, Episode, Marked, NoObserver, Observer, Plan, Policy, Summary, NUM_ACTIONS,
};

mod plan {
    include!(concat!(env!("OUT_DIR"), "/plan.rs"));
}

/// The policy blob, in flash.
static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/policy.bin"));

/// The blob's first-conv nibble table (`build.rs`), in flash; empty if the
/// blob has none. Checked against the blob before it is used.
mod table {
    include!(concat!(env!("OUT_DIR"), "/conv1_table.rs"));
}

/// Most episodes whose scores are listed.
const MAX_LISTED: usize = 64;

/// Word painted over the free stack at start.
const PAINT: u32 = 0xC0DE_57AC;

// ------------------------------------------------------------------ clock ---

/// The Cortex-M4's clock: SysTick on the core clock (25 MHz on `mps2-an386`;
/// under `-icount shift=0`, 40 instructions a tick).
#[cfg(not(feature = "microbit"))]
mod clock {
    use core::sync::atomic::{AtomicU32, Ordering};
    use cortex_m::peripheral::{syst::SystClkSource, SYST};
    use cortex_m_rt::exception;

    /// What ticks (the JSON's `clock`).
    pub const NAME: &str = "SysTick 25 MHz";

    static WRAPS: AtomicU32 = AtomicU32::new(0);

    #[exception]
    fn SysTick() {
        WRAPS.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts SysTick: core clock, full 24-bit reload, wraps counted.
    pub fn start() {
        let mut cp = cortex_m::Peripherals::take().unwrap();
        cp.SYST.set_clock_source(SystClkSource::Core);
        cp.SYST.set_reload(0xFF_FFFF);
        cp.SYST.clear_current();
        cp.SYST.enable_interrupt();
        cp.SYST.enable_counter();
    }

    /// SysTick ticks since it started: wraps of the 24-bit down-counter
    /// (counted by the exception) plus the current count.
    #[inline(always)]
    pub fn now() -> u64 {
        loop {
            let w = WRAPS.load(Ordering::Relaxed);
            let v = SYST::get_current();
            if WRAPS.load(Ordering::Relaxed) == w {
                return ((w as u64) << 24) + (0xFF_FFFF - v as u64);
            }
        }
    }
}

/// The micro:bit's clock: the nRF51's TIMER0, 32-bit, prescaler 0 (16 MHz);
/// under `-icount shift=0` (1 instruction = 1 ns), 62.5 instructions a
/// tick. QEMU's `microbit` SysTick does not advance.
#[cfg(feature = "microbit")]
mod clock {
    use core::sync::atomic::{AtomicU32, Ordering};

    /// What ticks (the JSON's `clock`).
    pub const NAME: &str = "nRF51 TIMER0 16 MHz";

    /// TIMER0's registers (nRF51 Reference Manual, TIMER).
    const BASE: usize = 0x4000_8000;
    const TASKS_START: usize = 0x000;
    const TASKS_CLEAR: usize = 0x00C;
    const TASKS_CAPTURE0: usize = 0x040;
    const MODE: usize = 0x504;
    const BITMODE: usize = 0x508;
    const PRESCALER: usize = 0x510;
    const CC0: usize = 0x540;

    #[inline(always)]
    fn write(reg: usize, v: u32) {
        // SAFETY: a TIMER0 register of the nRF51 (memory-mapped I/O).
        unsafe { core::ptr::write_volatile((BASE + reg) as *mut u32, v) }
    }

    #[inline(always)]
    fn read(reg: usize) -> u32 {
        // SAFETY: a TIMER0 register of the nRF51 (memory-mapped I/O).
        unsafe { core::ptr::read_volatile((BASE + reg) as *const u32) }
    }

    /// High word of the count and the last count read: a read that is
    /// smaller than the last one wrapped (every 2^32 ticks, 268 s at 16 MHz;
    /// reads come far more often). Single-threaded: loads and stores only,
    /// which ARMv6-M has.
    static HIGH: AtomicU32 = AtomicU32::new(0);
    static LAST: AtomicU32 = AtomicU32::new(0);

    /// Starts TIMER0: timer mode, 32 bits, prescaler 0 (16 MHz), from 0.
    pub fn start() {
        write(MODE, 0);
        write(BITMODE, 3);
        write(PRESCALER, 0);
        write(TASKS_CLEAR, 1);
        write(TASKS_START, 1);
    }

    /// TIMER0 ticks since it started (captured into CC[0]), extended to 64 bits.
    #[inline(always)]
    pub fn now() -> u64 {
        write(TASKS_CAPTURE0, 1);
        let v = read(CC0);
        let mut hi = HIGH.load(Ordering::Relaxed);
        if v < LAST.load(Ordering::Relaxed) {
            hi += 1;
            HIGH.store(hi, Ordering::Relaxed);
        }
        LAST.store(v, Ordering::Relaxed);
        ((hi as u64) << 32) | v as u64
    }
}

use clock::now;

/// Runs `2 * n` instructions (`subs`; `bne`) plus a handful of call overhead.
#[inline(never)]
fn spin(n: u32) {
    // SAFETY: a register-only countdown loop.
    unsafe {
        core::arch::asm!("1:", "subs {0}, #1", "bne 1b", inout(reg) n => _, options(nomem, nostack));
    }
}

fn ticks_of(n: u32) -> u64 {
    let t0 = now();
    spin(n);
    now() - t0
}

// ------------------------------------------------------------ stack paint ---

extern "C" {
    /// End of static RAM (.bss/.uninit), from cortex-m-rt's link.x.
    static __sheap: u32;
    /// Initial stack pointer (top of RAM), from cortex-m-rt's link.x.
    static _stack_start: u32;
    /// Start of RAM (`ORIGIN(RAM)`), from cortex-m-rt's link.x.
    static _ram_start: u32;
    /// Start of flash (`ORIGIN(FLASH)`): the vector table.
    static __vector_table: u32;
    /// Load address (in flash) of `.data`'s initial values.
    static __sidata: u32;
    /// `.data` in RAM.
    static __sdata: u32;
    static __edata: u32;
}

/// Flash used (vector table, code, read-only data with the blob, `.data`'s
/// initial values) and static RAM (`.data`, `.bss`, `.uninit`), from the
/// linker's symbols; `make mcu` checks them against the ELF's sections.
fn image_sizes() -> (usize, usize) {
    // Only the addresses of the linker symbols are taken.
    let a = |p: *const u32| p as usize;
    let flash = a(core::ptr::addr_of!(__sidata)) + a(core::ptr::addr_of!(__edata))
        - a(core::ptr::addr_of!(__sdata))
        - a(core::ptr::addr_of!(__vector_table));
    let ram = a(core::ptr::addr_of!(__sheap)) - a(core::ptr::addr_of!(_ram_start));
    (flash, ram)
}

fn stack_bounds() -> (usize, usize) {
    // Only the addresses of the linker symbols are taken.
    (
        core::ptr::addr_of!(__sheap) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// Paints the free stack, from the end of static RAM up to 256 bytes below
/// this function's own stack pointer.
#[inline(never)]
fn paint_stack() {
    let (lo, _) = stack_bounds();
    let sp = cortex_m::register::msp::read() as usize - 256;
    let mut p = lo;
    while p < sp {
        // SAFETY: [lo, sp) is free RAM between the statics and the live stack.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes of stack ever used: from the top down to the lowest overwritten word.
fn stack_high_water() -> usize {
    let (lo, top) = stack_bounds();
    let mut p = lo;
    // SAFETY: reads of RAM between the statics and the top of the stack.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

// ------------------------------------------------------------------ loop ----

/// Times every decision and lists the scores.
struct Meter {
    t0: u64,
    ticks_sum: u64,
    ticks_max: u64,
    scores: [u32; MAX_LISTED],
    listed: usize,
}

impl<E: Env> Observer<E> for Meter {
    #[inline(always)]
    fn before_decision(&mut self) {
        self.t0 = now();
    }
    #[inline(always)]
    fn after_decision(&mut self, _q: &[i32; NUM_ACTIONS], _action: usize) {
        let dt = now() - self.t0;
        self.ticks_sum += dt;
        self.ticks_max = self.ticks_max.max(dt);
    }
    fn episode_end(&mut self, e: &Episode) {
        if self.listed < MAX_LISTED {
            self.scores[self.listed] = e.score;
            self.listed += 1;
        }
    }
}

/// The run as the firmware would ship: the plan played, every decision timed.
#[inline(never)]
fn first_pass(policy: &mut Policy<'static>, plan: &Plan) -> (Summary, Meter) {
    let mut m = Meter {
        t0: 0,
        ticks_sum: 0,
        ticks_max: 0,
        scores: [0; MAX_LISTED],
        listed: 0,
    };
    match run_episodes::<firmware_sim::Game, _, _>(policy, plan, &mut m) {
        Ok(sum) => (sum, m),
        Err(e) => fail("game", &e),
    }
}

/// Per-stage instruction counts from a second pass over the whole plan
/// through [`Marked`] (`Policy::q_values_marked`: the decision path itself,
/// with a clock read at each stage boundary). Its checksum must equal the
/// first pass's.
struct Split {
    ticks: [u64; MAX_LAYERS],
    /// The most ticks one decision spent in each stage.
    ticks_max: [u64; MAX_LAYERS],
    stages: usize,
    decisions: u64,
    checksum: u64,
}

#[inline(never)]
fn layer_split(policy: &mut Policy<'static>, plan: &Plan) -> Option<Split> {
    let mut ticks = [0u64; MAX_LAYERS];
    let mut ticks_max = [0u64; MAX_LAYERS];
    let mut last = 0u64;
    let mut marked = Marked::new(policy, |i: usize| {
        let t = now();
        if i > 0 {
            ticks[i - 1] += t - last;
            ticks_max[i - 1] = ticks_max[i - 1].max(t - last);
        }
        last = t;
    });
    let stages = marked.stages();
    let sum = run_episodes::<firmware_sim::Game, _, _>(&mut marked, plan, &mut NoObserver).ok()?;
    Some(Split {
        ticks,
        ticks_max,
        stages,
        decisions: sum.decisions,
        checksum: sum.checksum,
    })
}

/// Prints a stage's layers as e.g. `conv8x8/4 4->32 +pool2`.
fn print_stage(policy: &Policy, st: &Stage) {
    match policy.model().layers[st.layer].kind {
        LayerKind::Conv2d {
            in_c,
            out_c,
            k,
            stride,
            ..
        } => hprint!("conv{}x{}/{} {}->{}", k, k, stride, in_c, out_c),
        LayerKind::Dense { inp, out } => hprint!("fc {}->{}", inp, out),
        LayerKind::MaxPool { k } => hprint!("pool{}", k),
    }
    if st.pool > 1 {
        hprint!(" +pool{}", st.pool);
    }
}

fn fail(what: &str, e: &dyn core::fmt::Debug) -> ! {
    hprintln!("{{\"error\":\"{}: {:?}\"}}", what, e);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[entry]
fn main() -> ! {
    paint_stack();
    clock::start();
    spin(1000); // let SysTick's first reload happen

    // Calibration: the difference of two loops (5N and N iterations of
    // `subs; bne`) is 8N instructions and cancels the call overhead.
    const CAL_N: u32 = 1_000_000;
    let ticks = ticks_of(5 * CAL_N) - ticks_of(CAL_N);
    let instructions = 2 * 4 * CAL_N as u64;
    let cal = Calibration {
        instructions,
        ticks,
        per_tick_x1000: (instructions * 1000 + ticks / 2) / ticks.max(1),
    };

    // The policy (~27 KiB with its buffers, ~7 KiB with `caps-m0`) is
    // built in place in this frame and loaded there, rather than returned by
    // value from `from_blob` (see the README, "Where the RAM goes").
    let mut policy = Policy::empty();
    load(&mut policy);
    play(&mut policy, &cal)
}

/// The clock against instructions, measured at start.
struct Calibration {
    /// Instructions of the calibration loops' difference.
    instructions: u64,
    /// Clock ticks they took.
    ticks: u64,
    /// Instructions per tick, x1000, rounded.
    per_tick_x1000: u64,
}

impl Calibration {
    /// Instructions in `ticks` clock ticks, rounded.
    fn instructions(&self, ticks: u64) -> u64 {
        (ticks * self.per_tick_x1000 + 500) / 1000
    }
}

/// Loads the blob into `policy`. Out of line: the parse's temporaries (the
/// decoded model; ~2 KB of `main`'s frame on the Cortex-M0) live in this
/// frame only while it runs, not in `main`'s for the whole run.
#[inline(never)]
fn load(policy: &mut Policy<'static>) {
    // The blob is opaque to the optimizer, like a blob flashed separately:
    // otherwise it may fold the parsing of an invalid blob and drop the bytes
    // from flash (and a blob that does not fit would link).
    let blob: &'static [u8] = core::hint::black_box(BLOB);
    if let Err(e) = policy.load(blob) {
        fail("blob", &e);
    }
}

/// The measured run (a frame of its own, below `main`'s), then the report.
#[inline(never)]
fn play(policy: &mut Policy<'static>, cal: &Calibration) -> ! {
    // Checked against the blob's weights: it speeds up, never changes, the
    // first conv. Opaque to the optimizer like the blob.
    let table: &'static [u32] = core::hint::black_box(&table::TABLE[..]);
    if !table.is_empty() {
        if let Err(e) = policy.attach_conv1_table(table) {
            fail("conv1 table", &e);
        }
    }
    let plan = Plan {
        base_seed: plan::SEED,
        episodes: plan::EPISODES,
        max_score: plan::MAX_SCORE,
        max_steps: plan::MAX_STEPS,
    };
    // The two passes run one after the other from this frame, so the stack
    // holds one loop at a time (nested, the second pass's loop would sit on
    // top of the first's: 7.7 KB more, over the micro:bit's 16 KiB).
    let (sum, m) = first_pass(policy, &plan);
    let hw = stack_high_water();
    let split = layer_split(policy, &plan);
    report(policy, &plan, cal, &sum, &m, hw, split.as_ref())
}

/// Prints the JSON line and exits: success if the per-layer pass reproduced
/// the first pass. Out of line, so that its formatting does not sit under
/// the passes.
#[inline(never)]
fn report(
    policy: &Policy,
    plan: &Plan,
    cal: &Calibration,
    sum: &Summary,
    m: &Meter,
    hw: usize,
    split: Option<&Split>,
) -> ! {
    let (flash, ram_static) = image_sizes();
    let d = sum.decisions.max(1);
    let instr = |ticks: u64| cal.instructions(ticks);
    hprint!(
        "{{\"episodes\":{},\"seed\":{},\"max_score\":{},\"scores\":[",
        sum.episodes,
        plan.base_seed,
        plan.max_score
    );
    for (i, s) in m.scores[..m.listed].iter().enumerate() {
        hprint!("{}{}", if i == 0 { "" } else { "," }, s);
    }
    hprint!(
        "],\"score\":{},\"best_score\":{},\"decisions\":{},\
         \"instructions_per_decision\":{{\"mean\":{},\"max\":{}}},\
         \"systick_ticks_per_decision\":{{\"mean\":{},\"max\":{}}},\
         \"systick_calibration\":{{\"instructions\":{},\"ticks\":{},\"instructions_per_tick_x1000\":{}}},\
         \"clock\":\"{}\",\
         \"stack_high_water_bytes\":{},\"ram_static_bytes\":{},\"ram_bytes\":{},\"flash_bytes\":{},\
         \"blob_bytes\":{},\"conv1_table_bytes\":{},\"checksum\":\"{:016x}\"",
        sum.total_score,
        sum.max_score,
        sum.decisions,
        instr(m.ticks_sum) / d,
        instr(m.ticks_max),
        m.ticks_sum / d,
        m.ticks_max,
        cal.instructions,
        cal.ticks,
        cal.per_tick_x1000,
        clock::NAME,
        hw,
        ram_static,
        ram_static + hw,
        flash,
        BLOB.len(),
        policy.conv1_table().map_or(0, |t| 4 * t.len()),
        sum.checksum
    );
    let ok = match split {
        Some(sp) => {
            let ok = sp.checksum == sum.checksum && sp.decisions == sum.decisions;
            hprint!(
                ",\"layer_split\":{{\"checksum_matches\":{},\"stages\":[",
                ok
            );
            for (i, st) in policy.stages()[..sp.stages].iter().enumerate() {
                hprint!("{}{{\"stage\":\"", if i == 0 { "" } else { "," });
                print_stage(policy, st);
                hprint!(
                    "\",\"instructions_mean\":{},\"instructions_max\":{}}}",
                    instr(sp.ticks[i]) / sp.decisions.max(1),
                    instr(sp.ticks_max[i])
                );
            }
            hprint!("]}"); // no arguments: printed as is, not formatted
            ok
        }
        None => false,
    };
    hprintln!("}");
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("{{\"error\":\"panic: {}\"}}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
