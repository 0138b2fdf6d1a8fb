//! Cortex-M4 image (scaffold): SysTick calibration and stack painting.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Ticks since start (24-bit down-counter plus wrap count).
fn now() -> u64 {
    loop {
        let w = WRAPS.load(Ordering::Relaxed);
        let v = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == w {
            return ((w as u64) << 24) + (0xFF_FFFF - v as u64);
        }
    }
}

#[inline(never)]
fn calib_loop(n: u32) {
    unsafe {
        core::arch::asm!("1:", "subs {0}, #1", "bne 1b", inout(reg) n => _, options(nomem, nostack));
    }
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().unwrap();
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0xFF_FFFF);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();
    let n = 1_000_000u32;
    let t0 = now();
    calib_loop(n);
    let t1 = now();
    let t2 = now();
    calib_loop(4*n);
    let t3 = now();
    hprintln!("ticks {} {} ", t1 - t0, t3 - t2);
    debug::exit(debug::EXIT_SUCCESS);
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
