//! Every README figure equals the results file it includes (study::readme).

use std::path::Path;

#[test]
fn readme_figures_equal_their_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = study::readme::blocks(&readme).unwrap();
    assert!(
        !blocks.is_empty(),
        "the README includes its figures from results files"
    );
    let stale = study::readme::stale(&readme, &root).unwrap();
    assert!(
        stale.is_empty(),
        "README blocks differ from their files (run `target/release/study readme`): {stale:?}"
    );
}
