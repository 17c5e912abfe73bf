//! The `berth` command line: every command is listed and has its own help.
//! (Being an integration test of this package also makes `cargo test
//! --workspace` build the `berth` binary that `tests/`'s end-to-end tests
//! run.)

use std::process::Command;

/// Goal: `berth --help` lists every command, and each has its own help.
#[test]
fn help_lists_every_command() {
    let berth = env!("CARGO_BIN_EXE_berth");
    let help = Command::new(berth).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for command in [
        "cluster",
        "controller",
        "node",
        "status",
        "hold",
        "confirm",
        "book",
        "token",
        "move",
        "failover",
        "bench",
    ] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
        let own = Command::new(berth)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(own.status.success(), "{command} --help");
    }
}

/// Goal: a missing configuration file is a clear error (exit 2), not a panic.
#[test]
fn a_missing_configuration_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["status", "--config", "/nonexistent/cluster.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("cannot read the cluster configuration"),
        "{error}"
    );
}
