//! What the binaries over this crate (`trainer`, `study`) share: their
//! `main` ([`main_with`]) and Ctrl-C for long runs ([`stop_on_ctrl_c`]).

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag the first Ctrl-C raises (saying `what` happens now); a second
/// one exits at once. Installs the process's one Ctrl-C handler.
pub fn stop_on_ctrl_c(what: &'static str) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without saving");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: {what} (again to abort)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// A binary's `main`: freed memory kept for reuse
/// ([`crate::alloc::keep_freed_memory`]), then `run`; an error is printed
/// with its causes and exits with status 1.
pub fn main_with(run: impl FnOnce() -> Result<()>) {
    crate::alloc::keep_freed_memory();
    // Output piped into a reader that stops early (`trainer eval | head -1`)
    // ends the process quietly, as for other command-line tools, instead of
    // a panic on the failed write (Rust ignores SIGPIPE by default).
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal, before any thread
    // starts; SIG_DFL is always a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
