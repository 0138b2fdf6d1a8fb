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
