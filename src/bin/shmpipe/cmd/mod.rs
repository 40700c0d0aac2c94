//! The ring commands: create, send, recv, inspect, list, rm.

use crate::fail::{CmdResult, Failure};

/// Options of `shmpipe create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The ring's address (shm:NAME, file:PATH, sysv:KEY).
    pub address: String,
}

/// Options of `shmpipe send`.
#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The ring's address.
    pub address: String,
}

/// Options of `shmpipe recv`.
#[derive(clap::Args, Debug)]
pub struct RecvArgs {
    /// The ring's address.
    pub address: String,
}

/// Options of `shmpipe inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The ring's address.
    pub address: String,
}

/// Options of `shmpipe list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {}

/// Options of `shmpipe rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// The ring's address.
    pub address: String,
}

fn todo(what: &str) -> CmdResult {
    Err(Failure::new(1, format!("shmpipe {what} is being written")))
}

pub fn create(_a: CreateArgs) -> CmdResult {
    todo("create")
}
pub fn send(_a: SendArgs) -> CmdResult {
    todo("send")
}
pub fn recv(_a: RecvArgs) -> CmdResult {
    todo("recv")
}
pub fn inspect(_a: InspectArgs) -> CmdResult {
    todo("inspect")
}
pub fn list(_a: ListArgs) -> CmdResult {
    todo("list")
}
pub fn rm(_a: RmArgs) -> CmdResult {
    todo("rm")
}
