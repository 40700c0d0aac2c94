//! Property test (stable toolchain, run by `cargo test`): whatever bytes a
//! peer writes into the mapping, and whenever it writes them, the library's
//! reader and `shmpipe inspect`'s rendering get values or typed errors,
//! never a panic or an out-of-bounds length (the same harness the fuzzer
//! runs, `tests/harness/untrusted.rs`). The queue model of the library's
//! semantics is `shmpipe/tests/queue_model.rs`.
//!
//! `PROPTEST_CASES` raises the number of cases for long runs.

#![allow(clippy::disallowed_types)]

#[path = "harness/untrusted.rs"]
mod untrusted;

use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(400), ..ProptestConfig::default() })]

    #[test]
    fn untrusted_mapping_never_breaks_the_reader(data in proptest::collection::vec(any::<u8>(), 0..1536)) {
        untrusted::run(&data);
    }
}
