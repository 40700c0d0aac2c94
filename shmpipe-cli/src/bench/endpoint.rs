//! A peer's end of a channel: the trait every mechanism's endpoint
//! implements (in its family's file under `mechanisms/`, or in
//! `floor.rs`), and what they share.
//!
//! Every mechanism moves a message from a buffer in the sender's memory to
//! a buffer in the receiver's memory: the sender writes the message into
//! [`Endpoint::out`] and calls [`Endpoint::send`], the receiver gets it back
//! from [`Endpoint::recv`] as a slice of its own buffer. For shmpipe that is
//! `Producer::send` (a copy into the slot) and `Consumer::recv` (a copy out
//! of it); for the queues and sockets the kernel makes the two copies.

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use rustix::fs::FileType;
use rustix::io::Errno;

/// Why a peer failed; printed on its stderr for the coordinator.
#[derive(Debug)]
pub struct PeerError(pub String);

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PeerError {
    pub fn new(msg: impl fmt::Display) -> PeerError {
        PeerError(msg.to_string())
    }

    /// Adds what was being done to the message.
    pub fn context(what: &'static str) -> impl FnOnce(PeerError) -> PeerError {
        move |e| PeerError(format!("{what}: {}", e.0))
    }
}

impl From<io::Error> for PeerError {
    fn from(e: io::Error) -> PeerError {
        PeerError::new(e)
    }
}

impl From<Errno> for PeerError {
    fn from(e: Errno) -> PeerError {
        PeerError::new(io::Error::from(e))
    }
}

impl From<shmpipe::Error> for PeerError {
    fn from(e: shmpipe::Error) -> PeerError {
        PeerError::new(e)
    }
}

impl From<shmpipe::RecvError> for PeerError {
    fn from(e: shmpipe::RecvError) -> PeerError {
        PeerError::new(e)
    }
}

impl From<shmpipe::SendError<()>> for PeerError {
    fn from(e: shmpipe::SendError<()>) -> PeerError {
        PeerError::new(e)
    }
}

/// One end of a channel, opened by a peer process.
pub trait Endpoint {
    /// The buffer the next message is written into: `msg_size` bytes,
    /// filled with a pattern when the endpoint was opened.
    fn out(&mut self) -> &mut [u8];

    /// Sends the first `len` bytes of [`out`](Self::out) as one message,
    /// waiting while the channel is full.
    fn send(&mut self, len: usize) -> Result<(), PeerError>;

    /// Receives the next message, waiting while there is none.
    fn recv(&mut self) -> Result<&[u8], PeerError>;

    /// Sends message number `seq`, `len` bytes: its number in its first 8
    /// bytes, the rest as [`out`](Self::out) holds it. The throughput and
    /// ping-pong jobs send through this; an endpoint that writes in place
    /// (`shmpipe-in-place`, `shmpipe-typed-in-place`) writes the number
    /// into the slot instead of `out`.
    #[inline]
    fn send_seq(&mut self, seq: u64, len: usize) -> Result<(), PeerError> {
        put_u64(self.out(), 0, seq);
        self.send(len)
    }

    /// Receives the next message's number and length; an endpoint that
    /// reads in place reads them from the slot without copying the rest.
    #[inline]
    fn recv_seq(&mut self) -> Result<(u64, usize), PeerError> {
        let msg = self.recv()?;
        Ok((get_u64(msg, 0)?, msg.len()))
    }

    /// Whether the receiving peer is asleep, where the mechanism can tell.
    fn peer_parked(&self) -> Option<bool> {
        None
    }
}

/// Writes `v` little-endian at `buf[at..at + 8]`.
#[inline]
pub fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Reads the little-endian `u64` at `buf[at..at + 8]`.
#[inline]
pub fn get_u64(buf: &[u8], at: usize) -> Result<u64, PeerError> {
    match buf.get(at..at + 8) {
        Some(b) => {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            Ok(u64::from_le_bytes(w))
        }
        None => Err(PeerError(format!(
            "received a {}-byte message, too short to be ours",
            buf.len()
        ))),
    }
}

/// The byte every message is filled with, past its header.
pub const FILL: u8 = 0xA5;

/// A send buffer of `size` bytes, filled with [`FILL`].
pub fn out_buffer(size: usize) -> Vec<u8> {
    vec![FILL; size]
}

/// The error of a call on a direction this end does not have.
pub fn not_open(what: &str) -> PeerError {
    PeerError(format!("this end is not open for {what}"))
}

/// Takes ownership of descriptor `fd`, inherited from the coordinator,
/// after checking that it is open and of the `expected` type.
pub fn adopt_fd(fd: i32, expected: &[FileType]) -> Result<OwnedFd, PeerError> {
    // 0, 1 and 2 are this process's stdio, never a passed channel.
    if fd < 3 || !super::sys::fd_is_open(fd) {
        return Err(PeerError(format!(
            "descriptor {fd} was not inherited from `shmpipe bench` (this command is internal)"
        )));
    }
    // SAFETY: the coordinator passed `fd` to this process for its use
    // alone; it is open (checked above) and adopted exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let kind = FileType::from_raw_mode(rustix::fs::fstat(&owned)?.st_mode);
    if !expected.contains(&kind) {
        return Err(PeerError(format!(
            "descriptor {fd} is a {kind:?}, expected one of {expected:?}"
        )));
    }
    Ok(owned)
}
