//! The README's first command: `foxrelay-local demo` runs the whole stack,
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
}
