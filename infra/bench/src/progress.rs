//! Where the run is, on standard error (standard output carries only the
//! tables): the section started, steps within it, and how long it took.

use std::time::Instant;

/// A section started: `[2/5] cold-start`.
pub fn section(index: usize, count: usize, name: &str) -> Instant {
    eprintln!("[{}/{count}] {name}…", index + 1);
    Instant::now()
}

/// A section finished.
pub fn done(name: &str, started: Instant) {
    eprintln!(
        "      {name} done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A step within the running section.
pub fn step(what: impl std::fmt::Display) {
    eprintln!("      {what}");
}
