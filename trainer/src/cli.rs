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
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
