//! The web page in a real browser (headless Chromium): the page's WebAssembly
//! build of the game and the integer policy must play exactly as this host
//! loop does, and a corrupted blob must show the blob parser's own error.
//!
//! Needs the built page and Chromium, so it is ignored by a plain
//! `cargo test`; `make web-test` (part of `make test`) builds the page,
//! installs Chromium and runs it. The page directory comes from
//! `FLAPPY_WEB_DIR` (default `target/web`), the browser from `CHROMIUM`
//! (default `chromium`).

use firmware_sim::{run_episodes, Episode, Game, Observer, Plan, Policy};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn page_dir() -> PathBuf {
    let dir = std::env::var_os("FLAPPY_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/web"));
    assert!(
        dir.join("index.html").is_file() && dir.join("assets.js").is_file(),
        "no built page in {} (run `make web`)",
        dir.display()
    );
    dir
}

/// A copy of the page in a fresh directory, with extra files beside it.
fn page_copy(name: &str, extra: &[(&str, &[u8])]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flappy-web-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["index.html", "app.js", "assets.js"] {
        std::fs::copy(page_dir().join(f), dir.join(f)).unwrap();
    }
    for (f, bytes) in extra {
        std::fs::write(dir.join(f), bytes).unwrap();
    }
    dir
}

/// Loads `dir/index.html?query` in headless Chromium and returns the JSON the
/// page wrote into `<pre id="result">`.
///
/// A page that has not written its result yet when Chromium dumps the DOM
/// (a loaded machine can outrun the virtual-time budget) is loaded again,
/// at most twice more; what it writes is checked as strictly every time.
fn run_page(dir: &Path, query: &str) -> serde_json::Value {
    let url = format!("file://{}/index.html?{query}", dir.display());
    let mut last = String::new();
    for attempt in 1..=3 {
        let (dom, stderr) = dump_dom(&url);
        let Some(start) = dom.find("<pre id=\"result\">") else {
            panic!("no result element in the page's DOM for {url}:\n{dom}\n{stderr}")
        };
        let start = start + "<pre id=\"result\">".len();
        let end = start + dom[start..].find("</pre>").expect("unterminated result");
        let json = dom[start..end]
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        if !json.trim().is_empty() {
            return serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("bad result JSON {json:?}: {e}"));
        }
        eprintln!("{url}: the page had written no result yet (attempt {attempt} of 3)");
        last = stderr;
    }
    panic!("{url}: the page wrote no result in 3 loads; Chromium said:\n{last}")
}

/// Chromium's `--dump-dom` of `url`: the DOM and what the browser printed.
fn dump_dom(url: &str) -> (String, String) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let out = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--allow-file-access-from-files",
            "--virtual-time-budget=60000",
            "--dump-dom",
        ])
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {chromium} (install it: `make web-test`): {e}"));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the host loop gives for one episode from `seed`, at most `steps` decisions.
fn host(blob: &[u8], seed: u64, steps: u32) -> (u32, u32, String) {
    let mut policy = Policy::from_blob(blob).unwrap();
    let plan = Plan {
        base_seed: seed,
        episodes: 1,
        max_score: u32::MAX,
        max_steps: steps,
    };
    struct Last(u32, u32);
    impl Observer<Game> for Last {
        fn episode_end(&mut self, e: &Episode) {
            (self.0, self.1) = (e.score, e.decisions);
        }
    }
    let mut last = Last(0, 0);
    let sum = run_episodes::<Game, _, _>(&mut policy, &plan, &mut last).unwrap();
    (last.0, last.1, format!("{:016x}", sum.checksum))
}

fn reference_blob() -> Vec<u8> {
    std::fs::read(repo().join("models/reference/policy.bin"))
        .expect("models/reference/policy.bin (the committed reference model)")
}

#[test]
#[ignore = "needs the built page and Chromium: `make web-test`"]
fn the_page_plays_the_reference_blob_exactly_as_the_host() {
    let blob = reference_blob();
    let dir = page_copy("play", &[("policy.bin", &blob)]);
    for (seed, steps) in [(0u64, 1500u32), (7, 900)] {
        let got = run_page(
            &dir,
            &format!("test=1&blob=policy.bin&seed={seed}&steps={steps}"),
        );
        let (score, decisions, checksum) = host(&blob, seed, steps);
        assert_eq!(got["error"], "", "seed {seed}: {got}");
        assert_eq!(got["decisions"], decisions, "seed {seed}: {got}");
        assert_eq!(got["score"], score, "seed {seed}: {got}");
        assert_eq!(got["checksum"], checksum.as_str(), "seed {seed}: {got}");
        // A policy this good passes pipes in that many frames.
        assert!(score > 10, "seed {seed}: score {score}");
    }
    // Another blob (a random `classic` one: another architecture, and a bird
    // that crashes soon) replaces the built-in one and plays as on the host.
    let other = firmware_sim::random_blob::classic(5);
    let dir2 = page_copy("other", &[("other.bin", &other)]);
    let got = run_page(&dir2, "test=1&blob=other.bin&seed=2&steps=5000");
    let (score, decisions, checksum) = host(&other, 2, 5000);
    assert_eq!(got["blob"], format!("other.bin ({} bytes)", other.len()));
    assert_eq!(got["crashed"], decisions < 5000, "{got}");
    assert_eq!(
        (got["decisions"].clone(), got["score"].clone()),
        (decisions.into(), score.into())
    );
    assert_eq!(got["checksum"], checksum.as_str(), "{got}");
    // The built-in blob (no `blob=`) is the same reference.
    let got = run_page(&dir, "test=1&seed=3&steps=600");
    let (_, _, checksum) = host(&blob, 3, 600);
    assert_eq!(got["checksum"], checksum.as_str(), "{got}");
    assert_eq!(got["blob"], format!("policy.bin ({} bytes)", blob.len()));
}

#[test]
#[ignore = "needs the built page and Chromium: `make web-test`"]
fn a_corrupted_blob_shows_the_parsers_error_and_the_old_policy_keeps_playing() {
    let blob = reference_blob();
    let mut bad = blob.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x5a; // caught by the blob's CRC
    let want = format!("{}", Policy::from_blob(&bad).expect_err("corrupted"));
    let dir = page_copy("bad", &[("bad.bin", &bad), ("empty.bin", b"")]);
    let got = run_page(&dir, "test=1&blob=bad.bin&seed=0&steps=300");
    assert_eq!(
        got["error"],
        format!("bad.bin: not a policy blob: {want}"),
        "{got}"
    );
    // The built-in reference kept playing, bit for bit.
    let (_, _, checksum) = host(&blob, 0, 300);
    assert_eq!(got["checksum"], checksum.as_str(), "{got}");
    let got = run_page(&dir, "test=1&blob=empty.bin&seed=0&steps=10");
    let want = format!("{}", Policy::from_blob(&[]).expect_err("empty"));
    assert_eq!(
        got["error"],
        format!("empty.bin: not a policy blob: {want}"),
        "{got}"
    );
}
