//! Helpers shared by the command line's tests: unique ring names that are
//! removed even when a test fails, test data, and scaled counts.
#![allow(dead_code)]
#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh `shm:` address unique to this process and call.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shm:shmpipe-cli-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes a ring (or file) when dropped, so tests clean up after failures.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        // What `Ring::remove` never removes (another magic, a symlink, a
        // special file) a test planted on purpose: remove the file itself.
        if let Err(
            shmpipe::Error::BadMagic { .. }
            | shmpipe::Error::Symlink { .. }
            | shmpipe::Error::NotARegularFile { .. },
        ) = shmpipe::Ring::remove(self.0.as_str(), true)
        {
            if let Some(name) = self.0.strip_prefix("shm:") {
                let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
            }
        }
    }
}

/// splitmix64: a small, fast, good-enough generator for test data.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Scale for counts and sizes: `SHMPIPE_TEST_SCALE` multiplies them.
pub fn scaled(n: u64) -> u64 {
    let scale: f64 = std::env::var("SHMPIPE_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64) * scale).max(1.0) as u64
}
