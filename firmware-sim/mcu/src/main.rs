//! Cortex-M4 image: the game and the integer policy in a closed loop on the
//! chip (QEMU `mps2-an386`), through the same [`firmware_sim::run_episodes`]
//! as the host simulator.
//!
//! Prints one JSON line over semihosting, then exits (0 on success):
//! scores, decisions, instructions per decision (SysTick, calibrated against
//! an instruction loop of known length), stack high-water mark and the
//! FNV-1a checksum of all Q-values. Flash and static RAM come from the ELF
//! (`make mcu`).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprint, hprintln};
use firmware_sim::policy_core::blob::{LayerKind, Stage};
use firmware_sim::policy_core::MAX_LAYERS;
use firmware_sim::{
    run_episodes, Env, Episode, Marked, NoObserver, Observer, Plan, Policy, NUM_ACTIONS,
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

// ---------------------------------------------------------------- SysTick ---

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick ticks since it started: wraps of the 24-bit down-counter (counted
/// by the exception) plus the current count.
#[inline(always)]
fn now() -> u64 {
    loop {
        let w = WRAPS.load(Ordering::Relaxed);
        let v = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == w {
            return ((w as u64) << 24) + (0xFF_FFFF - v as u64);
        }
    }
}

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

/// Per-stage instruction counts from a second pass over the whole plan
/// through [`Marked`] (`Policy::q_values_marked`: the decision path itself,
/// with a SysTick read at each stage boundary). Its checksum must equal the
/// first pass's.
struct Split {
    ticks: [u64; MAX_LAYERS],
    stages: usize,
    decisions: u64,
    checksum: u64,
}

#[inline(never)]
fn layer_split(policy: &mut Policy<'static>, plan: &Plan) -> Option<Split> {
    let mut ticks = [0u64; MAX_LAYERS];
    let mut last = 0u64;
    let mut marked = Marked::new(policy, |i: usize| {
        let t = now();
        if i > 0 {
            ticks[i - 1] += t - last;
        }
        last = t;
    });
    let stages = marked.stages();
    let sum = run_episodes::<firmware_sim::Game, _, _>(&mut marked, plan, &mut NoObserver).ok()?;
    Some(Split {
        ticks,
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
    let mut cp = cortex_m::Peripherals::take().unwrap();
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0xFF_FFFF);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();
    spin(1000); // let the first reload happen

    // Calibration: the difference of two loops (5N and N iterations of
    // `subs; bne`) is 8N instructions and cancels the call overhead.
    const CAL_N: u32 = 1_000_000;
    let cal_ticks = ticks_of(5 * CAL_N) - ticks_of(CAL_N);
    let cal_instr = 2 * 4 * CAL_N as u64;
    // Instructions per tick, x1000, rounded.
    let per_tick_x1000 = (cal_instr * 1000 + cal_ticks / 2) / cal_ticks.max(1);

    // The policy (~27 KiB with its buffers) is built in place in this frame
    // and loaded there, rather than returned by value from `from_blob`
    // (see the README, "Where the RAM goes").
    // The blob is opaque to the optimizer, like a blob flashed separately:
    // otherwise it may fold the parsing of an invalid blob and drop the bytes
    // from flash (and a blob that does not fit would link).
    let blob: &'static [u8] = core::hint::black_box(BLOB);
    let mut policy = Policy::empty();
    if let Err(e) = policy.load(blob) {
        fail("blob", &e);
    }
    play(&mut policy, per_tick_x1000, cal_instr, cal_ticks)
}

/// The measured run and the report (a frame of its own, below `main`'s).
#[inline(never)]
fn play(policy: &mut Policy<'static>, per_tick_x1000: u64, cal_instr: u64, cal_ticks: u64) -> ! {
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
    let mut m = Meter {
        t0: 0,
        ticks_sum: 0,
        ticks_max: 0,
        scores: [0; MAX_LISTED],
        listed: 0,
    };
    let sum = match run_episodes::<firmware_sim::Game, _, _>(policy, &plan, &mut m) {
        Ok(s) => s,
        Err(e) => fail("game", &e),
    };
    let hw = stack_high_water();
    let (flash, ram_static) = image_sizes();
    let split = layer_split(policy, &plan);

    let d = sum.decisions.max(1);
    let instr = |ticks: u64| (ticks * per_tick_x1000 + 500) / 1000;
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
         \"stack_high_water_bytes\":{},\"ram_static_bytes\":{},\"ram_bytes\":{},\"flash_bytes\":{},\
         \"blob_bytes\":{},\"conv1_table_bytes\":{},\"checksum\":\"{:016x}\"",
        sum.total_score,
        sum.max_score,
        sum.decisions,
        instr(m.ticks_sum) / d,
        instr(m.ticks_max),
        m.ticks_sum / d,
        m.ticks_max,
        cal_instr,
        cal_ticks,
        per_tick_x1000,
        hw,
        ram_static,
        ram_static + hw,
        flash,
        BLOB.len(),
        policy.conv1_table().map_or(0, |t| 4 * t.len()),
        sum.checksum
    );
    let ok = match &split {
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
                    "\",\"instructions_mean\":{}}}",
                    instr(sp.ticks[i]) / sp.decisions.max(1)
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
