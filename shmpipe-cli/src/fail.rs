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
    /// The ring is in use (`rm` without `--force`), holds unread messages
    /// (`rm` without `--force`), already exists (`create`), exists with
    /// another geometry than the options ask for, or its side is held by
    /// another live process.
    pub const IN_USE: u8 = 7;
    /// `recv`: the stream is incomplete (its start or its end mark is
    /// missing) or was not written by `shmpipe send`.
    pub const INCOMPLETE: u8 = 8;
    /// The ring was removed (`shmpipe rm --force`) while in use.
    pub const REMOVED: u8 = 9;
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  error (I/O, permission, ...)
  2  bad arguments
  3  the peer process died
  4  timed out (--timeout)
  5  the ring is corrupt or not a shmpipe ring (also a FIFO, socket,
     directory, device or symlink where the ring should be)
  6  no such ring
  7  the ring exists, is in use, holds unread messages (rm), or its side is
     held by another process
  8  recv: the stream is incomplete (its start or end is missing; see
     --resume) or not from `shmpipe send`
  9  the ring was removed while in use
  129, 130, 143  send/recv ended by SIGHUP, SIGINT, SIGTERM (after closing
     its side and removing a ring nothing can use any more)
  141  recv: standard output was closed (as `cat` ends by SIGPIPE)";

/// A failed command: what to print and how to exit.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// End the process by this signal instead of exiting with `code`
    /// (`128 + signal`).
    pub signal: Option<i32>,
}

pub type CmdResult = Result<(), Failure>;

impl Failure {
    pub fn new(code: u8, message: impl fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
            signal: None,
        }
    }

    /// End by `sig` (after clean-up), silently: the shell reports
    /// `128 + sig`.
    pub fn signal(sig: i32) -> Failure {
        Failure {
            code: (128 + sig).clamp(0, 255) as u8,
            message: String::new(),
            signal: Some(sig),
        }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl fmt::Display) -> Failure {
        Failure::new(exit::USAGE, message)
    }
}

impl From<shmpipe::Error> for Failure {
    fn from(e: shmpipe::Error) -> Failure {
        Failure::from_ref(&e)
    }
}

impl Failure {
    /// The failure for a library error: its exit code and message.
    pub fn from_ref(e: &shmpipe::Error) -> Failure {
        use shmpipe::Error as E;
        let code = match e {
            E::InvalidAddress { .. } | E::InvalidConfig { .. } => exit::USAGE,
            E::NotFound { .. } | E::NotCreated { .. } => exit::NOT_FOUND,
            E::AlreadyExists { .. }
            | E::AlreadyClaimed { .. }
            | E::InUse { .. }
            | E::GeometryMismatch { .. } => exit::IN_USE,
            E::Removed { .. } => exit::REMOVED,
            E::BadMagic { .. }
            | E::VersionMismatch { .. }
            | E::Corrupt { .. }
            | E::NotInitialized { .. }
            | E::NotARegularFile { .. }
            | E::Symlink { .. } => exit::CORRUPT,
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
