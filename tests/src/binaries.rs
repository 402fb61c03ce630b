//! The three function binaries, as Lambda runs them.
//!
//! `cargo test --workspace` builds them already (each function's own tests
//! run its binary). The build here asks for them as that run does (the
//! whole workspace, with its test targets, so every crate has the features
//! `cargo test --workspace` gives it): after that run it finds them fresh
//! and builds nothing. Asking for the three packages alone would resolve
//! other features (no test-only ones), rebuild tokio, the SDK and everything
//! above them (minutes on two cores) and replace the binaries the functions'
//! own tests run. A run of this crate alone builds the workspace's tests
//! here, once per test binary, with the same profile and target directory.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The path of function `name`'s binary, built if needed.
///
/// # Panics
/// When the build fails: the test cannot run without the binary.
pub fn function_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // target/<profile>/deps/<this test> → target/<profile>
        let exe = std::env::current_exe().expect("the test knows its path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("a test binary lives in target/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir
            .parent()
            .expect("target/<profile>")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--quiet", "--workspace", "--bins", "--tests"])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the function binaries failed");
        profile_dir
    });
    dir.join(name)
}
