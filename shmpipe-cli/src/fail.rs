//! How commands fail: a message for stderr (what happened and what to do)
//! and a documented exit code.

use std::fmt;

/// Exit codes. Stable: scripts may rely on them.
pub mod exit {
    /// Any failure not listed below (I/O error, permission, ...).
    pub const ERROR: u8 = 1;
    /// Bad arguments (also what clap uses for usage errors).
    pub const USAGE: u8 = 2;
    /// The peer process died (`recv`: the producer; `send`: the consumer).
    pub const PEER_DIED: u8 = 3;
    /// `--timeout` elapsed.
    pub const TIMEOUT: u8 = 4;
    /// The ring is corrupt, or is not a shmpipe ring.
    pub const CORRUPT: u8 = 5;
    /// The ring does not exist.
    pub const NOT_FOUND: u8 = 6;
    /// The ring is in use (`rm` without `--force`) or already exists
    /// (`create`), or its side is held by another live process.
    pub const IN_USE: u8 = 7;
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  error (I/O, permission, ...)
  2  bad arguments
  3  the peer process died
  4  timed out (--timeout)
  5  the ring is corrupt or not a shmpipe ring
  6  no such ring
  7  the ring exists, is in use, or its side is held by another process";

/// A failed command: what to print and how to exit.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

pub type CmdResult = Result<(), Failure>;

impl Failure {
    pub fn new(code: u8, message: impl fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl fmt::Display) -> Failure {
        Failure::new(exit::USAGE, message)
    }
}

impl From<shmpipe::Error> for Failure {
    fn from(e: shmpipe::Error) -> Failure {
        use shmpipe::Error as E;
        let code = match &e {
            E::InvalidAddress { .. } | E::InvalidConfig { .. } => exit::USAGE,
            E::NotFound { .. } => exit::NOT_FOUND,
            E::AlreadyExists { .. } | E::AlreadyClaimed { .. } | E::InUse { .. } => exit::IN_USE,
            E::BadMagic { .. }
            | E::VersionMismatch { .. }
            | E::Corrupt { .. }
            | E::NotInitialized { .. } => exit::CORRUPT,
            _ => exit::ERROR,
        };
        Failure::new(code, e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(exit::ERROR, e)
    }
}
