//! The `shmpipe` command line as a library: the binary (`src/main.rs`)
//! parses arguments and calls into these modules, and the tests and the
//! fuzz target use [`describe`] to render what `shmpipe inspect` shows.
//!
//! ```text
//! cmd/       create, send, recv, inspect, list, rm
//! describe   a RingInfo as inspect's text and JSON; status words
//! bench/     `shmpipe bench`: mechanisms, coordination, floors, report
//! fail       exit codes and the Failure every command returns
//! interrupt  SIGINT, SIGTERM, SIGHUP during send and recv; dying by a signal
//! ```
//!
//! This is not a stable API: depend on the `shmpipe` library crate for
//! rings, and run the `shmpipe` binary for the command line.

pub mod bench;
pub mod cmd;
pub mod describe;
pub mod fail;
pub mod interrupt;
