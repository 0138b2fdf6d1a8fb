//! Every README figure equals the results file it includes (study::readme):
//! the repository's README, each model folder's, and docs/learning.md (the
//! earlier studies' tables).

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

#[test]
fn model_readme_figures_equal_their_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for model in ["models/reference", "models/tiny"] {
        let dir = root.join(model);
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        // Paths in a model's README are relative to its folder.
        let stale = study::readme::stale(&readme, &dir).unwrap();
        assert!(
            stale.is_empty(),
            "{model}/README.md blocks differ from their files \
             (run `target/release/study readme --path {model}/README.md`): {stale:?}"
        );
    }
    let tiny = std::fs::read_to_string(root.join("models/tiny/README.md")).unwrap();
    assert!(
        !study::readme::blocks(&tiny).unwrap().is_empty(),
        "models/tiny/README.md includes its test-game figures from results files"
    );
}

#[test]
fn learning_doc_figures_equal_their_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/learning.md")).unwrap();
    assert!(
        !study::readme::blocks(&doc).unwrap().is_empty(),
        "docs/learning.md includes the earlier studies' tables from their files"
    );
    // Paths in docs/learning.md are relative to docs/.
    let stale = study::readme::stale(&doc, &root.join("docs")).unwrap();
    assert!(
        stale.is_empty(),
        "docs/learning.md blocks differ from their files \
         (run `target/release/study readme --path docs/learning.md`): {stale:?}"
    );
}
