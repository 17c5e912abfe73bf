//! The web Explorer in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) opens the counterexample URL that
//! `berth-check explore` prints and must show the violated property.

use crate::util::{binary, run_bounded};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the served Explorer however the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The Chromium binary: `$BERTH_CHROMIUM`, or `chromium` on the `PATH`.
/// Without one the test is skipped loudly on a developer's machine and
/// fails in CI (`CI` set), where `.ci/run` installs it.
fn chromium() -> Option<PathBuf> {
    let candidate = std::env::var_os("BERTH_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("chromium"))
                    .find(|file| file.is_file())
            })
        });
    if candidate.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "headless Chromium is required in CI: apt-get install chromium (or set BERTH_CHROMIUM)"
        );
        eprintln!("SKIPPED explorer browser test: no chromium on PATH (apt-get install chromium)");
    }
    candidate
}

/// Runs headless Chromium on `url` with `args`, giving the page's scripts
/// ten seconds of virtual time to fetch and render the states.
fn headless(chromium: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let output = run_bounded(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(url),
        Duration::from_secs(120),
    );
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Goal: the counterexample URL of `berth-check explore --variant
/// no-fencing` opens, in a real browser, on the state that violates `no lost
/// confirmed booking`, saying so; the path of actions and the sequence
/// diagram name actors by role; a screenshot is saved.
#[test]
fn browser_opens_the_counterexample_on_the_violation() {
    let Some(chromium) = chromium() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let mut explorer = KillOnDrop(
        Command::new(binary("berth-check"))
            .args(["explore", "--variant", "no-fencing", "--addr", &addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth-check explore"),
    );
    let mut lines = BufReader::new(explorer.0.stdout.take().unwrap()).lines();
    let prefix = "counterexample of `no lost confirmed booking`";
    let url = loop {
        let line = lines
            .next()
            .expect("explore printed the counterexample URL")
            .unwrap();
        if let Some((_, url)) = line.split_once("): ").filter(|_| line.starts_with(prefix)) {
            break url.to_owned();
        }
    };
    assert!(url.starts_with(&format!("http://{addr}/#/steps/")), "{url}");
    // `explore` serves right after printing; wait until it answers.
    crate::checker_cli::connect(&addr);

    let dom = headless(
        &chromium,
        &scratch.path().join("profile"),
        &["--window-size=1280,900", "--dump-dom"],
        &url,
    );
    // The first screen says what broke: the banner with the violated
    // property and its explanation is drawn at the top of a 1280×900 window
    // (its script records where it was drawn).
    let banner = dom
        .split("id=\"berth-banner\"")
        .nth(1)
        .expect("the page carries the banner");
    let banner_tag = &banner[..banner.find('>').unwrap()];
    let attribute = |name: &str| -> i64 {
        let start = banner_tag
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("no {name} on the banner: {banner_tag}"))
            + name.len()
            + 2;
        banner_tag[start..]
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(attribute("data-top"), 0, "{banner_tag}");
    assert!(
        attribute("data-bottom") > 0 && attribute("data-bottom") < 450,
        "the banner must fit the top of the first screen: {banner_tag}"
    );
    assert!(
        banner.contains("VIOLATED `no lost confirmed booking`")
            && banner.contains("client 4 was told"),
        "the banner names the violation and what broke: {banner}"
    );
    assert!(
        dom.contains("VIOLATED `no lost confirmed booking`: client 4 was told"),
        "the page does not show the violation:\n{dom}"
    );
    assert!(dom.contains("Always no lost confirmed booking"), "{dom}");
    assert!(
        dom.contains("controller 0: suspect leader of b0 timer fires"),
        "{dom}"
    );
    assert!(dom.contains("replica newyork-a"), "sequence diagram: {dom}");

    let screenshot = scratch.path().join("explorer.png");
    headless(
        &chromium,
        &scratch.path().join("profile"),
        &[
            "--window-size=1280,900",
            &format!("--screenshot={}", screenshot.display()),
        ],
        &url,
    );
    let png = std::fs::read(&screenshot).expect("chromium saved the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a blank screenshot: {} bytes",
        png.len()
    );
}
