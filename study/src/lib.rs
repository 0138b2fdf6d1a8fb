//! A study: the default recipe trained (or distilled) once per seed, each
//! run scored on the test seeds as a float network and as its int8 blob in
//! the firmware loop, and the runs summed up with intervals across seeds.
//!
//! * [`seed_run`]: one seed, from nothing or from where it stopped, to its
//!   [`SeedResult`] (`<runs>/study-<name>/seed-<s>/study-seed.json`);
//! * [`jobs`]: several seeds at once, each in a child process;
//! * [`int8`]: the blob played by `firmware_sim::run_episodes`;
//! * [`stats`]: IQM, mean, percentile bootstrap, paired power;
//! * [`summary`]: the study's JSON, Markdown table and plot
//!   (`results/study-<name>.{json,md,png}`);
//! * [`readme`]: the README's include blocks, each equal to a results file;
//! * [`compare`]: a recipe trial against its control, and the adoption rule.
//!
//! Data flows one way: the study reads what `trainer`, `parity` and
//! `firmware-sim` make, and nothing reads the study but people (and the
//! README check).

pub mod compare;
pub mod int8;
pub mod jobs;
pub mod readme;
pub mod seed_run;
pub mod stats;
pub mod summary;

pub use seed_run::{Kind, SeedResult, StudyPlan};
pub use summary::Study;
