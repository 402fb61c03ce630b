//! The README's first command (and the runner's command line): `foxrelay-local demo` runs the whole stack,
//! places orders across the simulator's behaviours and exits 0 once every
//! one has ended and been notified.

use std::process::Command;

#[test]
fn the_demo_exits_zero_with_every_order_ended_and_notified() {
    let output = Command::new(env!("CARGO_BIN_EXE_foxrelay-local"))
        .arg("demo")
        .env("FOXRELAY_API_ADDR", "127.0.0.1:0")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("FOXRELOAD_BASE_URL")
        .env_remove("FOXRELOAD_API_KEY")
        .output()
        .expect("the runner starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("all 10 orders ended and were notified"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("event  order.").count(), 10, "{stdout}");
    // The replay is checked by the demo itself before it says so.
    assert!(
        stdout.contains("Idempotent-Replayed: true; nothing bought again"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cancelReason payment_expiration"),
        "{stdout}"
    );
    // Codes are masked unless --show-codes.
    assert!(!stdout.contains("FOX-"), "{stdout}");
    // While it waits, a person watching sees how far it is.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(" of 10 orders ended; waiting for ")),
        "{stdout}"
    );
}

#[test]
fn help_lists_every_option_with_its_environment_variable_and_the_exit_codes() {
    let output = Command::new(env!("CARGO_BIN_EXE_foxrelay-local"))
        .arg("--help")
        .output()
        .expect("the runner starts");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    for said in [
        "serve",
        "demo",
        "--template",
        "--show-codes",
        "--api-addr",
        "FOXRELAY_API_ADDR",
        "--scan-interval-secs",
        "SCAN_INTERVAL_SECS",
        "--poll-copies",
        "FOXRELAY_POLL_COPIES",
        "--aws-endpoint-url",
        "AWS_ENDPOINT_URL",
        "--foxreload-base-url",
        "FOXRELOAD_BASE_URL",
        "--foxreload-api-key",
        "FOXRELOAD_API_KEY",
        "--version",
        "Exit codes",
    ] {
        assert!(help.contains(said), "--help does not say {said}:\n{help}");
    }
    let version = Command::new(env!("CARGO_BIN_EXE_foxrelay-local"))
        .arg("--version")
        .output()
        .expect("the runner starts");
    assert!(version.status.success());
    assert!(
        String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")),
        "--version names the version"
    );
    // A usage error exits 2 and says what is wrong.
    let wrong = Command::new(env!("CARGO_BIN_EXE_foxrelay-local"))
        .args(["serve", "--poll-copies", "none"])
        .output()
        .expect("the runner starts");
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--poll-copies"));
}
