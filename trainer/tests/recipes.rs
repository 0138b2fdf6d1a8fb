//! Every committed recipe (`recipes/*.toml`, read by `study train --recipe`
//! and `study distil --recipe`) is a valid set of training or distillation
//! settings: a typo in a key or a value out of range fails here, not hours
//! into a trial.

use std::path::Path;
use trainer::config::{Config, DistilConfig};

#[test]
fn every_recipe_is_valid_training_or_distillation_settings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes");
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let train = Config::from_toml(&text);
        let distil = DistilConfig::from_toml(&text);
        assert!(
            train.is_ok() || distil.is_ok(),
            "{}: neither training settings ({}) nor distillation settings ({})",
            path.display(),
            train.unwrap_err(),
            distil.unwrap_err()
        );
        read += 1;
    }
    assert!(read >= 10, "only {read} recipes in {}", dir.display());
}

/// The check above has teeth: a misspelt key, and the two kinds' keys mixed
/// (with a value out of range), are refused by both kinds of settings.
#[test]
fn a_bad_recipe_is_refused_by_both_kinds() {
    for bad in ["n_stepz = 5", "int8_frac = 2.0\nn_step = 0"] {
        assert!(Config::from_toml(bad).is_err(), "{bad}");
        assert!(DistilConfig::from_toml(bad).is_err(), "{bad}");
    }
}
