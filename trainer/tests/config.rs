//! The training configuration: defaults, TOML files and their errors, what a
//! resume may change, and the learning-rate and exploration schedules.

use trainer::config::{Config, LrFall};

#[test]
fn toml_round_trip_and_partial_files() {
    let c = Config::default();
    assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
    let p = Config::from_toml("lr = 0.001\nnet = \"small\"").unwrap();
    assert_eq!((p.lr, p.net, p.gamma), (0.001, netspec::SMALL, 0.99));
}

#[test]
fn bad_configs_are_clear_errors() {
    let e = Config::from_toml("learning_rate = 0.1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `learning_rate`"), "{e}");
    let e = Config::from_toml("lr = \"fast\"").unwrap_err().to_string();
    assert!(e.contains("invalid type"), "{e}");
    let e = Config::from_toml("gamma = 1.5").unwrap_err().to_string();
    assert!(e.contains("gamma"), "{e}");
    let e = Config::from_toml("net = \"huge\"").unwrap_err().to_string();
    assert!(e.contains("unknown network"), "{e}");
    let e = Config::from_toml("retry_prob = 0.5\nretry_back = 0")
        .unwrap_err()
        .to_string();
    assert!(e.contains("retry_back"), "{e}");
    assert!(Config::from_toml("retry_prob = 0.5\nretry_back = 1").is_ok());
}

#[test]
fn resume_may_change_the_budget_only() {
    let saved = Config::default();
    let longer = Config {
        minutes: 90.0,
        threads: 1,
        ..saved.clone()
    };
    assert!(longer.learning_changes(&saved).is_empty());
    let other = Config {
        lr: 1e-3,
        net: netspec::SMALL,
        ..saved.clone()
    };
    let mut changed = other.learning_changes(&saved);
    changed.sort();
    assert_eq!(changed, ["lr", "net"]);
}

#[test]
fn learning_rate_falls_linearly_to_lr_end() {
    let c = Config {
        lr: 4e-4,
        lr_end: 1e-4,
        ..Config::default()
    };
    assert_eq!(c.learning_rate(0.0), 4e-4);
    assert!((c.learning_rate(0.5) - 2.5e-4).abs() < 1e-12);
    assert_eq!(c.learning_rate(1.0), 1e-4);
    assert_eq!(
        c.learning_rate(7.0),
        1e-4,
        "past the budget it stays at lr_end"
    );
    assert!(Config::from_toml("lr = 1e-4\nlr_end = 2e-4").is_err());
}

#[test]
fn a_geometric_fall_passes_the_geometric_mean_halfway() {
    let c = Config {
        lr: 4e-4,
        lr_end: 1e-4,
        lr_fall: LrFall::Geometric,
        ..Config::default()
    };
    assert!((c.learning_rate(0.0) - 4e-4).abs() < 1e-15);
    assert!((c.learning_rate(0.5) - 2e-4).abs() < 1e-12);
    assert!((c.learning_rate(1.0) - 1e-4).abs() < 1e-15);
    assert!(
        c.learning_rate(0.25)
            < Config {
                lr_fall: LrFall::Linear,
                ..c.clone()
            }
            .learning_rate(0.25)
    );
    let e = Config::from_toml("lr_fall = \"cosine\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`cosine`") && e.contains("geometric"), "{e}");
}

#[test]
fn epsilon_schedule() {
    let c = Config::default();
    assert_eq!(c.epsilon(0), 1.0);
    assert!((c.epsilon(c.learning_starts) - c.eps_start).abs() < 1e-12);
    assert!((c.epsilon(c.learning_starts + c.eps_decay_steps * 10) - c.eps_end).abs() < 1e-12);
}

/// The default budget is in environment steps (the same learning on any
/// machine); a time limit is opt-in, and with no step budget the old
/// automatic minutes apply.
#[test]
fn the_default_budget_is_in_steps() {
    let cpu = tch::Device::Cpu;
    let c = Config::default();
    assert_eq!(c.total_steps, 2_000_000);
    assert!(c.budget_minutes(cpu).is_infinite());
    let capped = Config {
        minutes: 30.0,
        ..Config::default()
    };
    assert_eq!(capped.budget_minutes(cpu), 30.0);
    let timed = Config {
        total_steps: 0,
        ..Config::default()
    };
    assert_eq!(timed.budget_minutes(cpu), 55.0);
    assert_eq!(timed.budget_minutes(tch::Device::Cuda(0)), 14.0);
}
