//! Pipes and UNIX sockets: `write` and `read` of whole messages on
//! descriptors the coordinator creates and the peers inherit (under the
//! same numbers), with the kernel's default buffer sizes.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::FileType;
use rustix::io::Errno;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use rustix::pipe::{pipe_with, PipeFlags};
use serde::{Deserialize, Serialize};

use super::{parse_link, Channel, Entry, Family, Group, Mechanism, Setup};
use crate::bench::endpoint::{adopt_fd, not_open, out_buffer, Endpoint, PeerError};
use crate::bench::jobs;
use crate::bench::protocol::PeerSpec;

pub const PIPE: Entry = Entry {
    mechanism: Mechanism::Pipe,
    name: "pipe",
    about: "an anonymous pipe (pipe2): write, read until the message is complete",
    family: &Fds,
    group: Group::Other,
    default: true,
};
pub const UNIX_STREAM: Entry = Entry {
    mechanism: Mechanism::UnixStream,
    name: "unix-stream",
    about: "a UNIX stream socket pair: write, read until the message is complete",
    family: &Fds,
    group: Group::Other,
    default: true,
};
pub const UNIX_SEQPACKET: Entry = Entry {
    mechanism: Mechanism::UnixSeqpacket,
    name: "unix-seqpacket",
    about: "a UNIX seqpacket socket pair: one message per write and read",
    family: &Fds,
    group: Group::Other,
    default: true,
};
pub const UNIX_DGRAM: Entry = Entry {
    mechanism: Mechanism::UnixDgram,
    name: "unix-dgram",
    about: "a UNIX datagram socket pair (not run unless asked for: on Linux it measures as \
            unix-seqpacket)",
    family: &Fds,
    group: Group::Other,
    default: false,
};

/// How messages are delimited on a file descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// A byte stream (pipe, stream socket): every message is exactly
    /// `msg_size` bytes, written and read in full.
    Stream,
    /// One message per `write`/`read` (seqpacket and datagram sockets).
    Packet,
}

/// A peer's inherited descriptors: pipe ends or sockets (`tx` and `rx`
/// may be the same socket).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdLink {
    pub tx: Option<i32>,
    pub rx: Option<i32>,
    pub framing: Framing,
}

/// The pipe and socket family.
pub struct Fds;

impl Family for Fds {
    fn kind(&self) -> &'static str {
        "fd"
    }

    fn channel(
        &self,
        m: Mechanism,
        _setup: &mut Setup<'_>,
        two_way: bool,
        _size: usize,
    ) -> Result<Channel, String> {
        let mut ch = Channel::default();
        if m == Mechanism::Pipe {
            let framing = Framing::Stream;
            let (r1, w1) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
            let (r1, w1) = (ch.keep(r1), ch.keep(w1));
            let (back_r, back_w) = if two_way {
                let (r2, w2) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
                (Some(ch.keep(r2)), Some(ch.keep(w2)))
            } else {
                (None, None)
            };
            let producer = FdLink {
                tx: Some(w1),
                rx: back_r,
                framing,
            };
            let consumer = FdLink {
                tx: back_w,
                rx: Some(r1),
                framing,
            };
            ch.pass_producer = [Some(w1), back_r].into_iter().flatten().collect();
            ch.pass_consumer = [back_w, Some(r1)].into_iter().flatten().collect();
            ch.links(self.kind(), &producer, &consumer);
            return Ok(ch);
        }
        let (kind, framing) = match m {
            Mechanism::UnixStream => (SocketType::STREAM, Framing::Stream),
            Mechanism::UnixSeqpacket => (SocketType::SEQPACKET, Framing::Packet),
            _ => (SocketType::DGRAM, Framing::Packet),
        };
        let (a, b) = socketpair(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None)
            .map_err(|e| format!("socketpair: {e}"))?;
        let (a, b) = (ch.keep(a), ch.keep(b));
        // Producer on `a`, consumer on `b`; both ways for ping-pong.
        let producer = FdLink {
            tx: Some(a),
            rx: two_way.then_some(a),
            framing,
        };
        let consumer = FdLink {
            tx: two_way.then_some(b),
            rx: Some(b),
            framing,
        };
        ch.pass_producer = vec![a];
        ch.pass_consumer = vec![b];
        ch.links(self.kind(), &producer, &consumer);
        Ok(ch)
    }

    fn serve(&self, spec: &PeerSpec) -> Result<(), PeerError> {
        let l: FdLink = parse_link(&spec.link)?;
        jobs::serve(FdEnd::open(l.tx, l.rx, l.framing, spec.msg_size), spec)
    }
}

/// Pipe ends or sockets: `write`/`read` of whole messages.
pub struct FdEnd {
    tx: Option<OwnedFd>,
    rx: Option<OwnedFd>,
    framing: Framing,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl FdEnd {
    pub fn open(
        tx: Option<i32>,
        rx: Option<i32>,
        framing: Framing,
        size: usize,
    ) -> Result<FdEnd, PeerError> {
        let kinds = [FileType::Fifo, FileType::Socket];
        let txo = tx.map(|fd| adopt_fd(fd, &kinds)).transpose()?;
        let rxo = match (rx, &txo) {
            // One socket both ways: a second descriptor for it.
            (Some(r), Some(t)) if Some(r) == tx => Some(t.try_clone()?),
            (Some(r), _) => Some(adopt_fd(r, &kinds)?),
            (None, _) => None,
        };
        Ok(FdEnd {
            tx: txo,
            rx: rxo,
            framing,
            out: out_buffer(size),
            inb: vec![0; size],
        })
    }
}

impl Endpoint for FdEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        let fd = self.tx.as_ref().ok_or_else(|| not_open("sending"))?;
        let mut rest = &self.out[..len];
        while !rest.is_empty() {
            match rustix::io::write(fd, rest) {
                Ok(n) if self.framing == Framing::Packet && n != rest.len() => {
                    return Err(PeerError(format!("short packet write: {n} of {len} bytes")));
                }
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let fd = self.rx.as_ref().ok_or_else(|| not_open("receiving"))?;
        let want = self.inb.len();
        let mut got = 0;
        loop {
            match rustix::io::read(fd.as_fd(), &mut self.inb[got..]) {
                Ok(0) => return Err(PeerError::new("the sender closed the channel")),
                Ok(n) if self.framing == Framing::Packet => return Ok(&self.inb[..n]),
                Ok(n) => {
                    got += n;
                    if got == want {
                        return Ok(&self.inb[..]);
                    }
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
