//! What a long run shows while it works: a progress bar on a terminal, and
//! a plain line at least every minute when its output goes to a file or a
//! pipe (a log, CI), where a bar would print nothing readable. Also the
//! throughput window, the running training score and the `1.23M` number
//! format of those lines.

use indicatif::{ProgressBar, ProgressStyle};
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Seconds between plain progress lines when stderr is not a terminal.
pub const PLAIN_EVERY_S: f64 = 60.0;

/// A run's progress: a bar on a terminal, else plain lines on stderr.
pub struct Progress {
    shown: Shown,
    /// The budget: seconds, or steps when `by_steps`.
    len: u64,
    by_steps: bool,
    message: String,
}

enum Shown {
    Bar(ProgressBar),
    Lines { every: Duration, last: Instant },
}

impl Progress {
    /// Progress against a time budget of `budget_s` seconds, or against
    /// `total_steps` when that is above 0. A bar when stderr is a terminal.
    pub fn new(budget_s: f64, total_steps: u64) -> Progress {
        Self::with_terminal(budget_s, total_steps, std::io::stderr().is_terminal())
    }

    /// As [`Progress::new`], saying whether stderr is a terminal.
    pub fn with_terminal(budget_s: f64, total_steps: u64, terminal: bool) -> Progress {
        let by_steps = total_steps > 0;
        let len = if by_steps {
            total_steps
        } else {
            budget_s.ceil() as u64
        };
        let shown = if terminal {
            let tmpl = if by_steps {
                "{spinner} [{elapsed_precise}] {bar:30} {percent}% {msg}"
            } else {
                "{spinner} [{elapsed_precise}/{duration_precise}] {bar:30} {msg}"
            };
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template(tmpl) {
                bar.set_style(style);
            }
            Shown::Bar(bar)
        } else {
            Shown::Lines {
                every: Duration::from_secs_f64(PLAIN_EVERY_S),
                last: Instant::now(),
            }
        };
        let mut p = Progress {
            shown,
            len,
            by_steps,
            message: String::new(),
        };
        p.set_message("filling the replay memory with biased random play".into());
        p
    }

    /// The text shown after the bar (or in the next plain line).
    pub fn set_message(&mut self, msg: String) {
        if let Shown::Bar(b) = &self.shown {
            b.set_message(msg.clone());
        }
        self.message = msg;
    }

    /// Moves to `steps` done and `elapsed_s` seconds of budget used; in
    /// plain mode prints a line when the last one is a minute old.
    pub fn tick(&mut self, steps: u64, elapsed_s: f64) {
        let line = self.line(steps, elapsed_s);
        match &mut self.shown {
            Shown::Bar(b) => b.set_position(if self.by_steps {
                steps
            } else {
                elapsed_s as u64
            }),
            Shown::Lines { every, last } => {
                if last.elapsed() >= *every {
                    *last = Instant::now();
                    eprintln!("{line}");
                }
            }
        }
    }

    /// The plain line for `steps` and `elapsed_s`.
    pub fn line(&self, steps: u64, elapsed_s: f64) -> String {
        if self.by_steps {
            format!(
                "[{:.1} min, {}/{} steps] {}",
                elapsed_s / 60.0,
                human(steps),
                human(self.len),
                self.message
            )
        } else {
            format!(
                "[{:.1}/{:.0} min] {}",
                elapsed_s / 60.0,
                self.len as f64 / 60.0,
                self.message
            )
        }
    }

    /// Between two steps of a clocked loop: pauses while `clock` is asked
    /// to (saying so here), then the budget seconds it has used.
    pub fn hold(&self, clock: &mut crate::pause::Clock, stop: &AtomicBool) -> f64 {
        clock.hold_if_asked(stop, |m| self.println(m));
        clock.elapsed()
    }

    /// Prints `msg` above the bar (or as a line).
    pub fn println(&self, msg: &str) {
        match &self.shown {
            Shown::Bar(b) => b.println(msg),
            Shown::Lines { .. } => eprintln!("{msg}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Shown::Bar(b) = &self.shown {
            b.finish_and_clear();
        }
    }
}

/// Throughput over the interval since the last call.
pub struct Window {
    t: Instant,
    steps: u64,
    updates: u64,
}

impl Window {
    /// A window starting now at these counts.
    pub fn new(steps: u64, updates: u64) -> Window {
        Window {
            t: Instant::now(),
            steps,
            updates,
        }
    }

    /// Steps/s and updates/s since the last call (or `new`).
    pub fn rates(&mut self, steps: u64, updates: u64) -> (f64, f64) {
        let dt = self.t.elapsed().as_secs_f64().max(1e-9);
        let r = (
            steps.saturating_sub(self.steps) as f64 / dt,
            updates.saturating_sub(self.updates) as f64 / dt,
        );
        *self = Window::new(steps, updates);
        r
    }
}

/// Episodes in a run's running training score ([`RecentScores`]).
pub const RECENT_EPISODES: usize = 100;

/// The scores of the last [`RECENT_EPISODES`] episodes: a run's running
/// training score.
#[derive(Clone, Debug, Default)]
pub struct RecentScores(VecDeque<u32>);

impl RecentScores {
    /// Adds an episode's score, forgetting the oldest beyond [`RECENT_EPISODES`].
    pub fn push(&mut self, score: u32) {
        self.0.push_back(score);
        if self.0.len() > RECENT_EPISODES {
            self.0.pop_front();
        }
    }

    /// Their mean (0 when there are none).
    pub fn mean(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.iter().map(|&s| s as f64).sum::<f64>() / self.0.len() as f64
        }
    }

    /// The scores, oldest first (for a checkpoint).
    pub fn to_vec(&self) -> Vec<u32> {
        self.0.iter().copied().collect()
    }
}

impl From<&[u32]> for RecentScores {
    /// Scores saved by [`RecentScores::to_vec`].
    fn from(scores: &[u32]) -> RecentScores {
        RecentScores(scores.iter().copied().collect())
    }
}

/// `1234567` as `1.23M`.
pub fn human(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_where_the_run_is() {
        let mut p = Progress::with_terminal(55.0 * 60.0, 0, false);
        p.set_message("step 1.00M | score 3.0".into());
        assert_eq!(
            p.line(1_000_000, 90.0),
            "[1.5/55 min] step 1.00M | score 3.0"
        );
        let p = Progress::with_terminal(0.0, 200_000, false);
        assert!(
            p.line(50_000, 30.0)
                .starts_with("[0.5 min, 50.0k/200.0k steps] "),
            "{}",
            p.line(50_000, 30.0)
        );
    }

    #[test]
    fn numbers_read_short() {
        assert_eq!(human(9_999), "9999");
        assert_eq!(human(12_345), "12.3k");
        assert_eq!(human(1_234_567), "1.23M");
    }
}
