//! The int8 blob scored as the firmware plays it: `firmware_sim::run_episodes`
//! (policy-core, integers only) on consecutive game seeds, the games split
//! between threads.

use anyhow::Result;
use firmware_sim::{run_episodes, Episode, Game, Observer, Plan, Policy};

/// Collects each episode's score in plan order.
struct Scores(Vec<u32>);

impl Observer<Game> for Scores {
    fn episode_end(&mut self, e: &Episode) {
        self.0.push(e.score);
    }
}

/// Scores of `games` games (seeds `first..first + games`, each to a crash
/// or `cap`) played by the blob `bytes`, on `threads` threads; game `i`'s
/// score at `i`.
pub fn scores(
    bytes: &[u8],
    first: u64,
    games: usize,
    cap: u32,
    threads: usize,
) -> Result<Vec<u32>> {
    // Parse once here, so a bad blob is one error and not one per thread.
    Policy::from_blob(bytes).map_err(|e| anyhow::anyhow!("bad blob: {e}"))?;
    let threads = threads.clamp(1, games.max(1));
    let per = games.div_ceil(threads);
    let parts: Vec<Result<Vec<u32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = t * per;
                let n = per.min(games.saturating_sub(start));
                s.spawn(move || -> Result<Vec<u32>> {
                    let mut policy =
                        Policy::from_blob(bytes).map_err(|e| anyhow::anyhow!("bad blob: {e}"))?;
                    let plan = Plan {
                        base_seed: first + start as u64,
                        episodes: n as u32,
                        max_score: cap,
                        max_steps: Plan::DEFAULT_MAX_STEPS,
                    };
                    let mut obs = Scores(Vec::with_capacity(n));
                    run_episodes(&mut policy, &plan, &mut obs)
                        .map_err(|e| anyhow::anyhow!("game error: {e}"))?;
                    Ok(obs.0)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("an int8 worker panicked")))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(games);
    for p in parts {
        all.extend(p?);
    }
    Ok(all)
}
