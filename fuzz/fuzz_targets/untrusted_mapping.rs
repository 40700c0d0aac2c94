//! Fuzzes everything that reads a shared mapping another process can write:
//! opening and validating the header, `try_recv`, the borrow and batch
//! paths, sending, `info` and the CLI's `inspect` rendering, with the
//! segment's bytes flipped between calls. See `shmpipe-cli/tests/harness/untrusted.rs`.
//!
//! ```text
//! cargo +nightly fuzz run untrusted_mapping -- -max_total_time=600
//! ```
#![no_main]
#![allow(clippy::disallowed_types)]

#[path = "../../shmpipe-cli/tests/harness/untrusted.rs"]
mod untrusted;

libfuzzer_sys::fuzz_target!(|data: &[u8]| untrusted::run(data));
