//! The training clock, and how to pause it.
//!
//! A CPU run is budgeted in minutes, so anything else the machine does while
//! it trains (a compile, a test run) takes updates from it and changes what
//! it learns. On a 2-core machine one can instead *pause* the run: while a
//! file `hold-<pid>` lies in the pause folder (`$FLAPPY_PAUSE_DIR`, default
//! `$TMPDIR/flappy-pause`, or `/tmp/flappy-pause`) and process `<pid>`
//! lives, every clocked loop sleeps between two steps, and its clock does
//! not count that time. `scripts/quiet CMD` does it for one command: it
//! writes its hold, waits until every clocked loop says it has paused, runs
//! CMD, and removes its hold.
//!
//! The files, all in the pause folder:
//! * `trainer-<pid>`: a clocked loop of process `<pid>` is running;
//! * `paused-<pid>`: it is paused now;
//! * `hold-<pid>`: process `<pid>` asks every loop to pause; a hold whose
//!   process has ended is stale, ignored and removed.
//!
//! `trainer-` and `hold-` files hold their process's start time (field 22
//! of `/proc/<pid>/stat`), so that a file left by a process that was killed
//! is stale even once its pid belongs to another process.
//!
//! Turns, so that neither side starves: a loop that has just resumed runs
//! at least [`RUN_MIN`] before it pauses again (a hold waits), and once it
//! has been paused for [`PAUSE_MAX`] it writes `draining-<pid>`: the holds
//! there finish, no new one is taken (`scripts/quiet` waits), and the loop
//! resumes when the last is gone. Busy holders thus get at most about half
//! of the machine's time, and the loop the other half.
//!
//! A loop started *under* a hold (a process that holds is one of its
//! ancestors: a test run or a smoke run through `scripts/quiet`) is itself
//! the work that asked for quiet: it neither registers nor pauses, so two
//! quiet commands that both train never wait for each other.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a running loop looks at the pause folder.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// How often a paused loop looks again.
const POLL: Duration = Duration::from_millis(500);
/// After resuming, a loop runs at least this long before it pauses again.
pub const RUN_MIN: Duration = Duration::from_secs(8 * 60);
/// After pausing this long, a loop lets no new hold in and resumes when
/// the holds it waits for are gone.
pub const PAUSE_MAX: Duration = Duration::from_secs(8 * 60);

/// The pause folder (see the module docs).
pub fn pause_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FLAPPY_PAUSE_DIR") {
        return PathBuf::from(d);
    }
    std::env::temp_dir().join("flappy-pause")
}

/// Seconds of budget used: wall time since the run began (across sessions),
/// less the time spent paused.
pub struct Clock {
    before_s: f64,
    start: Instant,
    paused_s: f64,
    dir: PathBuf,
    last_look: Instant,
    registered: bool,
    /// When the loop last started or resumed (None: it has not paused yet,
    /// so it may pause at once).
    resumed: Option<Instant>,
    run_min: Duration,
    pause_max: Duration,
}

impl Clock {
    /// A clock that has already counted `before_s` seconds (a resumed run),
    /// watching the pause folder [`pause_dir`].
    pub fn start(before_s: f64) -> Clock {
        Self::watching(before_s, pause_dir())
    }

    /// A clock watching `dir` for holds.
    pub fn watching(before_s: f64, dir: PathBuf) -> Clock {
        let pid = std::process::id();
        let held = ancestors()
            .iter()
            .any(|a| dir.join(format!("hold-{a}")).exists());
        let registered = !held
            && std::fs::create_dir_all(&dir).is_ok()
            && std::fs::write(dir.join(format!("trainer-{pid}")), start_mark(pid)).is_ok();
        Clock {
            before_s,
            start: Instant::now(),
            paused_s: 0.0,
            dir,
            last_look: Instant::now(),
            registered,
            resumed: None,
            run_min: RUN_MIN,
            pause_max: PAUSE_MAX,
        }
    }

    /// The same clock taking turns of `run_min` running and at most
    /// `pause_max` paused (tests).
    pub fn with_turns(mut self, run_min: Duration, pause_max: Duration) -> Clock {
        self.run_min = run_min;
        self.pause_max = pause_max;
        self
    }

    /// Budget seconds used so far.
    pub fn elapsed(&self) -> f64 {
        self.before_s + self.start.elapsed().as_secs_f64() - self.paused_s
    }

    /// Whether this clock pauses when asked (false for a loop that runs
    /// under a hold, or when the pause folder cannot be written).
    pub fn pausable(&self) -> bool {
        self.registered
    }

    /// Seconds this session spent paused.
    pub fn paused(&self) -> f64 {
        self.paused_s
    }

    /// Between two steps: when a live hold exists (and the loop has run
    /// its turn), sleeps until none is left (not counted by
    /// [`Clock::elapsed`]) and returns the seconds paused, calling `say`
    /// once when the pause begins and once at its end. A raised `stop`
    /// (Ctrl-C) ends the pause at once.
    pub fn hold_if_asked(&mut self, stop: &AtomicBool, mut say: impl FnMut(&str)) -> f64 {
        if !self.registered || self.last_look.elapsed() < LOOK_EVERY {
            return 0.0;
        }
        self.last_look = Instant::now();
        if self.resumed.is_some_and(|r| r.elapsed() < self.run_min) {
            return 0.0;
        }
        let Some(first) = live_holds(&self.dir).into_iter().next() else {
            return 0.0;
        };
        let t0 = Instant::now();
        let pid = std::process::id();
        let mark = self.dir.join(format!("paused-{pid}"));
        let drain = self.dir.join(format!("draining-{pid}"));
        let _ = std::fs::write(&mark, b"");
        say(&format!(
            "paused: {} holds the CPU (the clock stops until it is gone)",
            first.display()
        ));
        while !live_holds(&self.dir).is_empty() && !stop.load(Ordering::SeqCst) {
            if t0.elapsed() >= self.pause_max && !drain.exists() {
                let _ = std::fs::write(&drain, b"");
            }
            std::thread::sleep(POLL);
        }
        let _ = std::fs::remove_file(&drain);
        let _ = std::fs::remove_file(&mark);
        self.resumed = Some(Instant::now());
        let s = t0.elapsed().as_secs_f64();
        self.paused_s += s;
        say(&format!("resumed after {:.1} min paused", s / 60.0));
        s
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        let pid = std::process::id();
        let _ = std::fs::remove_file(self.dir.join(format!("trainer-{pid}")));
        let _ = std::fs::remove_file(self.dir.join(format!("paused-{pid}")));
        let _ = std::fs::remove_file(self.dir.join(format!("draining-{pid}")));
    }
}

/// The holds in `dir` whose process lives; stale ones are removed.
fn live_holds(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut live = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("hold-")) else {
            continue;
        };
        let mark = std::fs::read_to_string(e.path()).unwrap_or_default();
        match pid.parse::<u32>() {
            Ok(pid) if same_process(pid, &mark) => live.push(e.path()),
            _ => {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    live.sort();
    live
}

/// The process ids above this one (parent, grandparent, ...), from
/// `/proc/<pid>/stat` (empty where there is no /proc).
fn ancestors() -> Vec<u32> {
    let mut out = Vec::new();
    let mut pid = std::process::id();
    while pid > 1 && out.len() < 64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            break;
        };
        // The field after the parenthesised command name: state, then ppid.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            break;
        };
        out.push(ppid);
        pid = ppid;
    }
    out
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or None where there is no such process or no /proc.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state).
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// What a `trainer-<pid>` or `hold-<pid>` file holds: the start time of
/// `pid` (empty where there is no /proc).
fn start_mark(pid: u32) -> String {
    start_ticks(pid).map(|t| t.to_string()).unwrap_or_default()
}

/// Whether process `pid` is the one that wrote a file holding `mark`:
/// it exists and, when the file names a start time, started then (a pid
/// reused by another process is not it). Where there is no /proc, assumed.
fn same_process(pid: u32, mark: &str) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    match (mark.trim().parse::<u64>(), start_ticks(pid)) {
        (_, None) => false,
        (Ok(want), Some(got)) => want == got,
        (Err(_), Some(_)) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_stops_the_clock_and_a_stale_one_is_ignored() {
        let dir = std::env::temp_dir().join(format!("flappy-pause-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut clock = Clock::watching(100.0, dir.clone());
        assert!(dir
            .join(format!("trainer-{}", std::process::id()))
            .is_file());
        assert!(clock.elapsed() >= 100.0);
        // A hold of a process that does not exist is stale: removed, no pause.
        std::fs::write(dir.join("hold-4294967294"), b"").unwrap();
        clock.last_look = Instant::now() - LOOK_EVERY;
        assert_eq!(clock.hold_if_asked(&AtomicBool::new(false), |_| {}), 0.0);
        assert!(!dir.join("hold-4294967294").exists());
        // The loop's file names its process's start time; a hold whose pid
        // lives but names another start time (a killed holder's pid, reused
        // since) is stale as well.
        let pid = std::process::id();
        let mark = std::fs::read_to_string(dir.join(format!("trainer-{pid}"))).unwrap();
        assert_eq!(mark, start_mark(pid));
        assert!(!mark.is_empty(), "Linux has /proc");
        let reused = dir.join(format!("hold-{pid}"));
        std::fs::write(&reused, b"1").unwrap();
        clock.last_look = Instant::now() - LOOK_EVERY;
        assert_eq!(clock.hold_if_asked(&AtomicBool::new(false), |_| {}), 0.0);
        assert!(!reused.exists());
        // A live hold (this process) pauses until it is removed.
        let hold = dir.join(format!("hold-{}", std::process::id()));
        std::fs::write(&hold, b"").unwrap();
        let h = hold.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            std::fs::remove_file(h).unwrap();
        });
        clock.last_look = Instant::now() - LOOK_EVERY;
        let before = clock.elapsed();
        let mut said = Vec::new();
        let paused = clock.hold_if_asked(&AtomicBool::new(false), |m| said.push(m.to_string()));
        t.join().unwrap();
        assert!(paused >= 1.0, "{paused}");
        assert!(clock.elapsed() - before < 0.5, "the pause is not counted");
        assert_eq!(said.len(), 2, "{said:?}");
        drop(clock);
        assert!(!dir.join(format!("trainer-{}", std::process::id())).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loops_and_holds_take_turns() {
        let dir = std::env::temp_dir().join(format!("flappy-pause-turns-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut clock = Clock::watching(0.0, dir.clone())
            .with_turns(Duration::from_millis(1500), Duration::from_millis(300));
        let pid = std::process::id();
        let hold = dir.join(format!("hold-{pid}"));
        std::fs::write(&hold, b"").unwrap();
        // A hold that outlasts PAUSE_MAX: the loop says it is draining.
        let (h, d) = (hold.clone(), dir.join(format!("draining-{pid}")));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            let drained = d.exists();
            std::fs::remove_file(h).unwrap();
            drained
        });
        clock.last_look = Instant::now() - LOOK_EVERY;
        assert!(clock.hold_if_asked(&AtomicBool::new(false), |_| {}) >= 1.0);
        assert!(t.join().unwrap(), "draining-<pid> was written");
        assert!(!dir.join(format!("draining-{pid}")).exists());
        // Just resumed: a new hold waits for the loop's turn to end.
        std::fs::write(&hold, b"").unwrap();
        clock.last_look = Instant::now() - LOOK_EVERY;
        assert_eq!(clock.hold_if_asked(&AtomicBool::new(false), |_| {}), 0.0);
        std::thread::sleep(Duration::from_millis(1600));
        let h = hold.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(600));
            std::fs::remove_file(h).unwrap();
        });
        clock.last_look = Instant::now() - LOOK_EVERY;
        assert!(
            clock.hold_if_asked(&AtomicBool::new(false), |_| {}) >= 0.5,
            "after its turn it pauses"
        );
        t.join().unwrap();
        drop(clock);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_loop_under_a_hold_neither_registers_nor_pauses() {
        let dir = std::env::temp_dir().join(format!("flappy-pause-anc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let parent = ancestors()[0];
        assert!(start_ticks(parent).is_some());
        std::fs::write(dir.join(format!("hold-{parent}")), start_mark(parent)).unwrap();
        let mut clock = Clock::watching(0.0, dir.clone());
        assert!(!clock.pausable());
        assert!(!dir.join(format!("trainer-{}", std::process::id())).exists());
        clock.last_look = Instant::now() - LOOK_EVERY;
        assert_eq!(
            clock.hold_if_asked(&AtomicBool::new(false), |_| {}),
            0.0,
            "its own hold does not stop it"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
