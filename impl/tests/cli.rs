//! The `berth` binary's surface before the runtime lands: it says what is
//! coming and does nothing it cannot do.

use std::process::Command;

#[test]
fn help_says_what_is_coming() {
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("berth cluster up"), "{text}");
    assert!(text.contains("Not yet available"), "{text}");
}

#[test]
fn running_without_the_runtime_fails_clearly() {
    let output = Command::new(env!("CARGO_BIN_EXE_berth")).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not built yet"));
}
