//! A study's JSON survives being read and written again byte for byte: a
//! resumed study rewrites its file from what it read, so a float that parses
//! to a neighbouring value would change a committed figure nobody measured.

use std::path::Path;

#[test]
fn committed_studies_rewrite_to_the_same_bytes() {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
    let mut checked = 0;
    for entry in std::fs::read_dir(&results).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("study-") && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let study = study::summary::Study::load(&path).unwrap();
        let again = study.json().unwrap();
        assert!(again == text, "{name} changes when read and written again");
        checked += 1;
    }
    assert!(checked > 0, "no study JSON under results/");
}

/// The CPU a run finished on is kept and shown; a run without one (every
/// file written before it was kept) keeps its JSON as it was.
#[test]
fn a_runs_cpu_is_kept_and_shown() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/study-tiny-select.json");
    let mut study = study::summary::Study::load(&path).unwrap();
    assert!(
        study.runs.len() >= 2,
        "the committed study has fewer than 2 runs"
    );
    for r in &mut study.runs {
        r.cpu.clear();
    }
    assert!(!study.json().unwrap().contains("\"cpu\""));
    assert!(!study.markdown().contains("CPU each run finished on"));
    study.runs[1].cpu = "Some CPU +avx512".into();
    let seed = study.runs[1].seed;
    let text = study.json().unwrap();
    let dir = std::env::temp_dir().join(format!("study-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("study.json");
    std::fs::write(&copy, &text).unwrap();
    let again = study::summary::Study::load(&copy).unwrap();
    assert_eq!(again.runs[1].cpu, "Some CPU +avx512");
    assert!(again.runs[0].cpu.is_empty());
    let md = again.markdown();
    assert!(
        md.contains(&format!("seed {seed}: `Some CPU +avx512`")),
        "{md}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
