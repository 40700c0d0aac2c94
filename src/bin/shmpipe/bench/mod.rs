//! `shmpipe bench`: being written (issue 5).

use crate::fail::{CmdResult, Failure};

/// Options of `shmpipe bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Options of the hidden `shmpipe bench-peer`.
#[derive(clap::Args, Debug)]
pub struct PeerArgs {}

pub fn run(_args: BenchArgs) -> CmdResult {
    Err(Failure::new(1, "shmpipe bench is not built yet"))
}

pub fn peer(_args: PeerArgs) -> CmdResult {
    Err(Failure::new(1, "shmpipe bench-peer is not built yet"))
}
