//! The README's figures come from files. A block
//!
//! ```text
//! <!-- include results/study-default.md -->
//! (the file's text, as it is)
//! <!-- end include -->
//! ```
//!
//! holds exactly the text of the named file (a Markdown table or a few
//! lines that a project command wrote). `<!-- include PATH demote=N -->`
//! adds N `#` to every heading of the file, so a file's `# Title` can sit
//! under a README section. `study readme` rewrites every block
//! from its file; `make test` fails when a block and its file differ
//! (`study/tests/readme.rs`), so no README figure can drift from its
//! source.

use anyhow::{bail, Context, Result};
use std::path::Path;

const OPEN: &str = "<!-- include ";
const CLOSE: &str = "<!-- end include -->";

/// One include block of a README.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The included file, relative to the repository root.
    pub path: String,
    /// The text between the markers, without the markers' lines.
    pub text: String,
    /// Line of the opening marker (1-based).
    pub line: usize,
}

/// The include blocks of `readme`, in order.
pub fn blocks(readme: &str) -> Result<Vec<Block>> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize, Vec<&str>)> = None;
    for (i, line) in readme.lines().enumerate() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix(OPEN) {
            if let Some((p, l, _)) = &open {
                bail!(
                    "README line {}: include of {p} (line {l}) is not closed",
                    i + 1
                );
            }
            let Some(path) = rest.strip_suffix("-->") else {
                bail!("README line {}: an include marker ends with -->", i + 1);
            };
            open = Some((path.trim().to_string(), i + 1, Vec::new()));
        } else if t == CLOSE {
            let Some((path, line, body)) = open.take() else {
                bail!(
                    "README line {}: end of an include that was not opened",
                    i + 1
                );
            };
            out.push(Block {
                path,
                text: body.join("\n"),
                line,
            });
        } else if let Some((_, _, body)) = &mut open {
            body.push(line);
        }
    }
    if let Some((p, l, _)) = open {
        bail!("README line {l}: include of {p} is not closed");
    }
    Ok(out)
}

/// The text a block `<!-- include SPEC -->` must hold: the file's text
/// (SPEC is `PATH` or `PATH demote=N`), trailing whitespace trimmed, its
/// headings demoted by N levels, its relative links rebased to the README
/// (the repository root).
pub fn expected(root: &Path, spec: &str) -> Result<String> {
    let mut parts = spec.split_whitespace();
    let path = parts.next().unwrap_or_default();
    let mut demote = 0;
    for opt in parts {
        match opt
            .strip_prefix("demote=")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if n <= 5 => demote = n,
            _ => bail!("include {spec}: unknown option {opt} (known: demote=0..5)"),
        }
    }
    let p = root.join(path);
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let mut out = String::with_capacity(text.len());
    let mut fenced = false;
    // The included file's folder, which its relative links start from.
    let folder = Path::new(path).parent().and_then(Path::to_str);
    for line in text.trim_end().lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && demote > 0 && line.starts_with('#') {
            out.push_str(&"#".repeat(demote));
        }
        match folder {
            Some(dir) if !fenced && !dir.is_empty() => out.push_str(&rebase_links(line, dir)),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out.trim_end().to_string())
}

/// `line` with every relative Markdown link or image target (`](x.png)`)
/// prefixed by `dir/`, the included file's folder, so that it still points
/// at its file from the README. Absolute paths, URLs and anchors are kept.
fn rebase_links(line: &str, dir: &str) -> String {
    let mut out = String::with_capacity(line.len() + dir.len());
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let (head, tail) = rest.split_at(i + 2);
        out.push_str(head);
        let keep = tail.starts_with('/') || tail.starts_with('#') || {
            let target = tail.split(')').next().unwrap_or_default();
            target.contains("://") || target.is_empty()
        };
        if !keep {
            out.push_str(dir);
            out.push('/');
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// `readme` with every include block's text replaced by its file's.
pub fn sync(readme: &str, root: &Path) -> Result<String> {
    blocks(readme)?;
    let mut out = String::with_capacity(readme.len());
    let mut skipping = false;
    for line in readme.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix(OPEN) {
            let path = rest.trim_end_matches("-->").trim();
            out.push_str(line);
            out.push('\n');
            let body = expected(root, path)?;
            if !body.is_empty() {
                out.push_str(&body);
                out.push('\n');
            }
            skipping = true;
        } else if t == CLOSE {
            skipping = false;
            out.push_str(line);
            out.push('\n');
        } else if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The blocks of `readme` whose text differs from their file's, each as
/// `line N: PATH`.
pub fn stale(readme: &str, root: &Path) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    for b in blocks(readme)? {
        if b.text.trim_end() != expected(root, &b.path)? {
            bad.push(format!("line {}: {}", b.line, b.path));
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links_point_at_their_files_from_the_readme() {
        assert_eq!(
            rebase_links("![Q errors](q.png) and [doc](/docs/a.md)", "results"),
            "![Q errors](results/q.png) and [doc](/docs/a.md)"
        );
        assert_eq!(
            rebase_links("[x](https://a.b/c) [y](#top) [z](sub/z.md)", "results"),
            "[x](https://a.b/c) [y](#top) [z](results/sub/z.md)"
        );
        assert_eq!(rebase_links("no link (here)", "results"), "no link (here)");
    }

    #[test]
    fn blocks_are_found_synced_and_checked() {
        let dir = std::env::temp_dir().join(format!("readme-sync-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("results")).unwrap();
        std::fs::write(dir.join("results/a.md"), "| x |\n|---|\n| 1 |\n").unwrap();
        let readme = "# T\n\n<!-- include results/a.md -->\n| x |\n|---|\n| 2 |\n<!-- end include -->\ntail\n";
        let b = blocks(readme).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].path.as_str(), b[0].line), ("results/a.md", 3));
        assert_eq!(stale(readme, &dir).unwrap(), vec!["line 3: results/a.md"]);
        let fixed = sync(readme, &dir).unwrap();
        assert!(
            fixed.contains("| 1 |") && !fixed.contains("| 2 |"),
            "{fixed}"
        );
        assert!(fixed.ends_with("<!-- end include -->\ntail\n"), "{fixed}");
        assert!(stale(&fixed, &dir).unwrap().is_empty());
        assert!(blocks("<!-- include a.md -->\nx\n").is_err());
        assert!(blocks("x\n<!-- end include -->\n").is_err());
        assert!(stale(
            "<!-- include results/none.md -->\n<!-- end include -->\n",
            &dir
        )
        .is_err());
        std::fs::write(
            dir.join("results/h.md"),
            "# Head\n```\n# not a heading\n```\nx\n",
        )
        .unwrap();
        assert_eq!(
            expected(&dir, "results/h.md demote=2").unwrap(),
            "### Head\n```\n# not a heading\n```\nx"
        );
        assert!(expected(&dir, "results/h.md shout=1").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
