//! The study plot's x axis: environment steps where every evaluation says
//! its step (the budget is in steps, so runs that shared the CPU unevenly
//! line up), training minutes for results written before points had steps;
//! either way a point keeps its JSON as it was.

use std::path::Path;
use study::summary::Study;

fn committed(name: &str) -> Study {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../results/{name}.json"));
    Study::load(&path).unwrap()
}

#[test]
fn old_results_plot_against_minutes() {
    let study = committed("study-default");
    assert!(study
        .runs
        .iter()
        .all(|r| r.curve.iter().all(|p| p.steps.is_none())));
    let (curves, x) = study.curves();
    assert_eq!(x, "training minutes");
    assert_eq!(curves.len(), study.runs.len());
    for ((_, c), r) in curves.iter().zip(&study.runs) {
        let minutes: Vec<f64> = r.curve.iter().map(|p| p.minutes).collect();
        assert_eq!(c.iter().map(|p| p.0).collect::<Vec<_>>(), minutes);
    }
}

#[test]
fn points_with_steps_plot_against_steps_and_round_trip() {
    let mut study = committed("study-default");
    for r in &mut study.runs {
        for (k, p) in r.curve.iter_mut().enumerate() {
            p.steps = Some(100_000 * (k as u64 + 1));
        }
    }
    let (curves, x) = study.curves();
    assert_eq!(x, "environment steps (millions)");
    let (_, first) = &curves[0];
    assert_eq!(first[0].0, 0.1);
    assert_eq!(first[9].0, 1.0);
    // The seeds line up on steps, whatever their minutes.
    let xs = |i: usize| curves[i].1.iter().map(|p| p.0).take(10).collect::<Vec<_>>();
    assert_eq!(xs(0), xs(3));

    let text = study.json().unwrap();
    assert!(text.contains("\"steps\": 100000"));
    let dir = std::env::temp_dir().join(format!("study-curves-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("study.json");
    std::fs::write(&copy, &text).unwrap();
    let again = Study::load(&copy).unwrap();
    assert_eq!(again.runs[0].curve[4].steps, Some(500_000));
    let png = dir.join("study.png");
    again.plot(&png).unwrap();
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    std::fs::remove_dir_all(&dir).unwrap();

    // One point without its step: the whole plot falls back to minutes.
    study.runs[2].curve[3].steps = None;
    assert_eq!(study.curves().1, "training minutes");
}
