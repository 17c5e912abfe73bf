//! Helpers: locate a workspace binary and run it with a time bound.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of workspace binary `name`, built by the same `cargo test` run
/// into the same target directory as this test binary.
pub fn binary(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// Runs `command` to completion, killing it if it takes longer than `limit`.
pub fn run_bounded(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > limit {
            child.kill().ok();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{command:?} ran longer than {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // Polling: std has no wait-with-timeout for a child process, and the
        // bound above is what keeps a hung binary from hanging the suite.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `berth-check` with `args`, bounded to twenty minutes: a bound for
/// hangs, not for speed. The slowest run these tests make (a cutover
/// variant with its shortest-counterexample search) takes about a minute
/// idle and several on a busy 2-core machine.
pub fn berth_check(args: &[&str]) -> Output {
    berth_check_within(args, Duration::from_secs(1200))
}

/// `berth-check` with `args`, bounded to `limit`.
pub fn berth_check_within(args: &[&str], limit: Duration) -> Output {
    run_bounded(Command::new(binary("berth-check")).args(args), limit)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
