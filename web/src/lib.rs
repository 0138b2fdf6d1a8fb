//! The game and the integer policy as a WebAssembly module, for the web page
//! (`make web`): `no_std`, no allocator, the very same `flappy`, `policy-core`
//! and `firmware-sim` code as the host simulator and the Cortex-M images.
//!
//! # One episode, as the firmware loop plays it
//! [`start`] begins a game with a seed; then, once per game frame, the page
//! calls [`decide`] (Q-values of the current frame stack, folded into the
//! checksum, and the greedy action) and [`step`] with the action to play (the
//! policy's, or the person's when they have taken over). That is exactly
//! `firmware_sim::run_episodes` for one episode, so the checksum after `n`
//! decisions equals the host's `firmware-sim --episodes 1 --max-steps n`.
//!
//! # Memory shared with the page
//! The page writes a blob into [`staging_ptr`] (at most [`staging_cap`] bytes)
//! and calls [`load_blob`]; it reads the frame from [`paint`] (288x512 palette
//! indices, colours at [`palette_ptr`]) and error text from [`message_ptr`].
//! A bad blob leaves the previous policy loaded and playing.
#![cfg_attr(not(test), no_std)]

use core::cell::{Cell, UnsafeCell};
use core::fmt::Write as _;
use firmware_sim::{argmax, Env, Fnv64, Frame, FrameStack, Game, NUM_ACTIONS};
use flappy::paint::{paint_indexed, PALETTE, PIXELS};

/// Most bytes a blob may have (the reference blob has about 225 KB).
const BLOB_CAP: usize = 1 << 20;
/// Most words of a first-conv nibble table kept (larger ones run without it,
/// with the same Q-values).
const TABLE_CAP: usize = 1 << 17;
/// Most bytes of an error message.
const MESSAGE_CAP: usize = 512;

/// A static the exports share, borrowed one at a time: [`Shared::with`]
/// lends `&mut T` for the length of a closure, and traps if the static is
/// already lent, so no two references to it can overlap, whatever the
/// callers do. The page reads and writes the buffers through raw pointers
/// ([`Shared::ptr`]) only between exports.
struct Shared<T> {
    lent: Cell<bool>,
    value: UnsafeCell<T>,
}

// SAFETY: the module runs on one thread (wasm32 without the `atomics`
// feature has no threads; the host build only type-checks it), and `with`
// keeps the borrows of that thread apart.
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    const fn new(value: T) -> Shared<T> {
        Shared {
            lent: Cell::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with the value; a nested `with` of the same static traps.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        assert!(!self.lent.replace(true), "a shared static borrowed twice");
        // SAFETY: `lent` was false, so no other reference to the value is
        // live, and it stays true (no other one is made) until `f` returns;
        // a panic in `f` traps the module, so nothing runs after it.
        let r = f(unsafe { &mut *self.value.get() });
        self.lent.set(false);
        r
    }

    /// Where the value lies, for the page (no reference is made).
    fn ptr(&self) -> *mut T {
        self.value.get()
    }
}

// The big buffers are all zeros, so they cost the module nothing (bss).
/// Where the page writes a new blob before [`load_blob`].
static STAGING: Shared<[u8; BLOB_CAP]> = Shared::new([0; BLOB_CAP]);
/// The painted frame.
static IMAGE: Shared<[u8; PIXELS]> = Shared::new([0; PIXELS]);

/// The loaded policy and the blob and nibble table it borrows.
mod slot {
    use super::{Shared, BLOB_CAP, TABLE_CAP};
    use core::cell::UnsafeCell;
    use firmware_sim::{BlobError, FrameStack, Policy, NUM_ACTIONS};

    /// A buffer that only [`Loaded::load`] touches.
    struct Buffer<T>(UnsafeCell<T>);
    // SAFETY: one thread (see `Shared`); only `Loaded::load` makes
    // references into a `Buffer`, through the one `Loaded` there is.
    unsafe impl<T> Sync for Buffer<T> {}

    /// The loaded blob.
    static ACTIVE: Buffer<[u8; BLOB_CAP]> = Buffer(UnsafeCell::new([0; BLOB_CAP]));
    /// Its first-conv nibble table.
    static TABLE: Buffer<[u32; TABLE_CAP]> = Buffer(UnsafeCell::new([0; TABLE_CAP]));
    /// The one `Loaded`: its fields are private and it has no constructor
    /// outside this module, so there is never another.
    static SLOT: Shared<Loaded> = Shared::new(Loaded {
        policy: Policy::empty(),
        loaded: false,
    });

    /// The policy, borrowing [`ACTIVE`] and [`TABLE`] (the only references
    /// into them outside [`Loaded::load`], which drops it before writing
    /// them). Neither `Clone` nor able to hand those borrows out.
    pub struct Loaded {
        policy: Policy<'static>,
        loaded: bool,
    }

    /// Runs `f` with the loaded policy.
    pub fn with<R>(f: impl FnOnce(&mut Loaded) -> R) -> R {
        SLOT.with(f)
    }

    impl Loaded {
        /// Whether a policy is loaded.
        pub fn is_loaded(&self) -> bool {
            self.loaded
        }

        /// The policy's Q-values for `stack`.
        pub fn q_values(&mut self, stack: &FrameStack) -> [i32; NUM_ACTIONS] {
            self.policy.q_values(stack)
        }

        /// Copies `blob` (already validated by the caller, at most
        /// `BLOB_CAP` bytes) into the active buffer and loads it, with its
        /// nibble table when it has one that fits. On error no policy is loaded.
        pub fn load(&mut self, blob: &[u8]) -> Result<(), BlobError> {
            // Drop the borrows of ACTIVE and TABLE before writing them.
            self.policy = Policy::empty();
            self.loaded = false;
            let len = blob.len().min(BLOB_CAP);
            // SAFETY: the only references into ACTIVE and TABLE are the ones
            // the policy of the one `Loaded` (this one: `&mut self`) held,
            // just dropped, and the ones made below, which end up in it.
            let active: &'static mut [u8; BLOB_CAP] = unsafe { &mut *ACTIVE.0.get() };
            active[..len].copy_from_slice(&blob[..len]);
            let active: &'static [u8] = &active[..len];
            let mut policy = Policy::from_blob(active)?;
            if let Some(n) = policy
                .conv1_table_len()
                .filter(|&n| n > 0 && n <= TABLE_CAP)
            {
                // SAFETY: as above.
                let table: &'static mut [u32; TABLE_CAP] = unsafe { &mut *TABLE.0.get() };
                let table = &mut table[..n];
                if policy.write_conv1_table(table).is_ok() {
                    // A table that does not check out is simply not used.
                    let _ = policy.attach_conv1_table(table);
                }
            }
            self.policy = policy;
            self.loaded = true;
            Ok(())
        }
    }
}

/// Everything else the page drives.
struct App {
    /// The game; `None` until the first [`start`].
    game: Option<Game>,
    frame: Frame,
    stack: FrameStack,
    q: [i32; NUM_ACTIONS],
    hash: Fnv64,
    decisions: u32,
    score: u32,
    message: [u8; MESSAGE_CAP],
    message_len: usize,
}

static APP: Shared<App> = Shared::new(App {
    game: None,
    frame: Frame::empty(),
    stack: FrameStack::new(&Frame::empty()),
    q: [0; NUM_ACTIONS],
    hash: Fnv64::new(),
    decisions: 0,
    score: 0,
    message: [0; MESSAGE_CAP],
    message_len: 0,
});

/// Runs `f` with the app state.
fn with_app<R>(f: impl FnOnce(&mut App) -> R) -> R {
    APP.with(f)
}

/// Formats `args` into a fixed buffer, cutting what does not fit.
struct Message<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for Message<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

impl App {
    fn set_message(&mut self, args: core::fmt::Arguments<'_>) {
        let mut m = Message {
            buf: &mut self.message,
            len: 0,
        };
        let _ = m.write_fmt(args);
        self.message_len = m.len;
    }
}

/// Start of the buffer the page writes a blob into.
#[no_mangle]
pub extern "C" fn staging_ptr() -> *mut u8 {
    STAGING.ptr().cast()
}

/// Size of that buffer in bytes.
#[no_mangle]
pub extern "C" fn staging_cap() -> u32 {
    BLOB_CAP as u32
}

/// Loads the first `len` bytes of the staging buffer as the policy.
/// Returns 1 on success; 0 on failure, with the reason at [`message_ptr`]
/// (the previous policy, if any, stays loaded).
#[no_mangle]
pub extern "C" fn load_blob(len: u32) -> u32 {
    with_app(|a| {
        let len = len as usize;
        if len > BLOB_CAP {
            a.set_message(format_args!(
                "the file has {len} bytes; the page takes at most {BLOB_CAP}"
            ));
            return 0;
        }
        STAGING.with(|staging| {
            let staging = &staging[..len];
            // Validate in place first, so a bad file never touches the loaded blob.
            let loaded = firmware_sim::Policy::from_blob(staging)
                .map(|_| ())
                .and_then(|()| slot::with(|p| p.load(staging)));
            match loaded {
                Ok(()) => {
                    a.message_len = 0;
                    1
                }
                Err(e) => {
                    a.set_message(format_args!("not a policy blob: {e}"));
                    0
                }
            }
        })
    })
}

/// Start of the last error message (UTF-8, [`message_len`] bytes).
#[no_mangle]
pub extern "C" fn message_ptr() -> *const u8 {
    with_app(|a| a.message.as_ptr())
}

/// Bytes of the last error message.
#[no_mangle]
pub extern "C" fn message_len() -> u32 {
    with_app(|a| a.message_len as u32)
}

/// Starts a new episode: `Game::new(seed)`, a fresh frame stack, checksum
/// and counters reset.
#[no_mangle]
pub extern "C" fn start(seed_hi: u32, seed_lo: u32) {
    with_app(|a| {
        let game = a.game.insert(<Game as Env>::start(
            ((seed_hi as u64) << 32) | seed_lo as u64,
        ));
        game.observe(&mut a.frame);
        a.stack.reset(&a.frame);
        a.q = [0; NUM_ACTIONS];
        a.hash = Fnv64::new();
        a.decisions = 0;
        a.score = 0;
    })
}

/// The policy's Q-values for the current stack (kept for [`q_value`] and
/// folded into the checksum) and its greedy action (0 = idle, 1 = flap,
/// ties to idle). Without a loaded policy: idle, Q-values 0, nothing hashed.
#[no_mangle]
pub extern "C" fn decide() -> u32 {
    with_app(|a| {
        let q = slot::with(|p| p.is_loaded().then(|| p.q_values(&a.stack)));
        let Some(q) = q else {
            a.q = [0; NUM_ACTIONS];
            return 0;
        };
        a.q = q;
        a.hash.write_q(&a.q);
        a.decisions += 1;
        argmax(&a.q) as u32
    })
}

/// Q-value `i` (0 = idle, 1 = flap) of the last [`decide`], in the blob's
/// integer output scale.
#[no_mangle]
pub extern "C" fn q_value(i: u32) -> i32 {
    with_app(|a| a.q.get(i as usize).copied().unwrap_or(0))
}

/// Plays `action` (0 = idle, anything else = flap) for one frame.
/// Returns 1 if the bird crashed (the episode is over; call [`start`]) or no
/// episode was started, else 0.
#[no_mangle]
pub extern "C" fn step(action: u32) -> u32 {
    with_app(|a| {
        let Some(game) = a.game.as_mut() else {
            return 1;
        };
        // Seeded games never fail; an error would end the episode all the same.
        match Env::step(game, usize::from(action != 0)) {
            Ok(out) if !out.crashed => {
                a.score = out.score;
                game.observe(&mut a.frame);
                a.stack.push(&a.frame);
                0
            }
            Ok(out) => {
                a.score = out.score;
                1
            }
            Err(_) => 1,
        }
    })
}

/// Pipes passed in this episode.
#[no_mangle]
pub extern "C" fn score() -> u32 {
    with_app(|a| a.score)
}

/// Decisions made in this episode.
#[no_mangle]
pub extern "C" fn decisions() -> u32 {
    with_app(|a| a.decisions)
}

/// High 32 bits of the FNV-1a checksum over this episode's Q-values.
#[no_mangle]
pub extern "C" fn checksum_hi() -> u32 {
    with_app(|a| (a.hash.0 >> 32) as u32)
}

/// Low 32 bits of that checksum.
#[no_mangle]
pub extern "C" fn checksum_lo() -> u32 {
    with_app(|a| a.hash.0 as u32)
}

/// Paints the current game state (288x512 palette indices, row-major) and
/// returns where it is.
#[no_mangle]
pub extern "C" fn paint() -> *const u8 {
    IMAGE.with(|image| {
        with_app(|a| match &a.game {
            Some(game) => paint_indexed(&game.state(), image),
            None => image.fill(flappy::paint::BG),
        });
        image.as_ptr()
    })
}

/// The 16 palette colours as `r, g, b` bytes (48 bytes).
#[no_mangle]
pub extern "C" fn palette_ptr() -> *const u8 {
    PALETTE.as_ptr() as *const u8
}

/// Nothing here panics on outside input; a bug traps the module.
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    loop {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A static is lent once at a time: a second borrow while the first
    /// lives traps instead of making two `&mut` to the same value.
    #[test]
    #[should_panic(expected = "borrowed twice")]
    fn a_shared_static_is_lent_once_at_a_time() {
        static S: Shared<u32> = Shared::new(0);
        S.with(|a| S.with(|b| *a += *b));
    }

    /// Writes `bytes` where the page does and loads them.
    fn load(bytes: &[u8]) -> u32 {
        // SAFETY: no borrow of STAGING is live between two exports.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), staging_ptr(), bytes.len()) };
        load_blob(bytes.len() as u32)
    }

    /// A policy plays; a bad file is refused with the parser's reason and
    /// the loaded policy keeps playing, the same Q-values as before.
    #[test]
    fn a_bad_blob_leaves_the_loaded_policy_playing() {
        let blob = include_bytes!("../../models/tiny/policy.bin");
        assert_eq!(load(blob), 1);
        start(0, 7);
        decide();
        let q = [q_value(0), q_value(1)];
        assert_ne!(q, [0, 0]);
        let mut bad = blob.to_vec();
        bad[0] ^= 1;
        assert_eq!(load(&bad), 0);
        // SAFETY: the message lives in APP, not borrowed between exports.
        let msg = unsafe { core::slice::from_raw_parts(message_ptr(), message_len() as usize) };
        assert!(msg.starts_with(b"not a policy blob: "), "{msg:?}");
        start(0, 7);
        decide();
        assert_eq!([q_value(0), q_value(1)], q);
    }
}
