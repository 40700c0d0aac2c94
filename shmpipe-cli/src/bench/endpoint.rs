//! A peer's end of a channel: one trait, one implementation per mechanism,
//! each the ordinary use of the OS API with the same framing.
//!
//! Every mechanism moves a message from a buffer in the sender's memory to
//! a buffer in the receiver's memory: the sender writes the message into
//! [`Endpoint::out`] and calls [`Endpoint::send`], the receiver gets it back
//! from [`Endpoint::recv`] as a slice of its own buffer. For shmpipe that is
//! `Producer::send` (a copy into the slot) and `Consumer::recv` (a copy out
//! of it); for the queues and sockets the kernel makes the two copies.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use rustix::fs::FileType;
use rustix::io::Errno;
use shmpipe::{Consumer, Producer, Ring, WaitStrategy};

use super::spec::{Framing, Wait};
use super::sys::{PosixMq, SysvBuf};

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

    /// Whether the receiving peer is asleep, where the mechanism can tell.
    fn peer_parked(&self) -> Option<bool> {
        None
    }
}

/// The byte every message is filled with, past its header.
pub const FILL: u8 = 0xA5;

fn out_buffer(size: usize) -> Vec<u8> {
    vec![FILL; size]
}

fn not_open(what: &str) -> PeerError {
    PeerError(format!("this end is not open for {what}"))
}

// ---------------------------------------------------------------------------
// shmpipe
// ---------------------------------------------------------------------------

/// shmpipe rings opened by name: `Producer::send` and `Consumer::recv`.
pub struct RingEnd {
    /// The ring sent on, kept for `info()` (is the consumer parked?).
    tx_ring: Option<Ring>,
    tx: Option<Producer>,
    rx: Option<Consumer>,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl RingEnd {
    pub fn open(
        tx: Option<&str>,
        rx: Option<&str>,
        wait: Wait,
        size: usize,
    ) -> Result<RingEnd, PeerError> {
        let strategy = match wait {
            Wait::Spin => WaitStrategy::Spin,
            Wait::SpinPark => WaitStrategy::DEFAULT,
            Wait::Park => WaitStrategy::Park,
        };
        let check = |max: usize| {
            if max < size {
                Err(PeerError(format!(
                    "the ring carries at most {max}-byte messages, not {size}"
                )))
            } else {
                Ok(())
            }
        };
        let (tx_ring, tx) = match tx {
            Some(addr) => {
                let ring = Ring::open(addr)?;
                let mut p = ring.producer()?;
                p.set_wait_strategy(strategy);
                check(p.max_message())?;
                (Some(ring), Some(p))
            }
            None => (None, None),
        };
        let rx = match rx {
            Some(addr) => {
                let mut c = Ring::open(addr)?.consumer()?;
                c.set_wait_strategy(strategy);
                check(c.max_message())?;
                Some(c)
            }
            None => None,
        };
        Ok(RingEnd {
            tx_ring,
            tx,
            rx,
            out: out_buffer(size),
            inb: vec![0; size],
        })
    }
}

impl Endpoint for RingEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        let tx = self.tx.as_mut().ok_or_else(|| not_open("sending"))?;
        tx.send(&self.out[..len]).map_err(|e| e.map(drop).into())
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let rx = self.rx.as_mut().ok_or_else(|| not_open("receiving"))?;
        let n = rx.recv(&mut self.inb)?;
        Ok(&self.inb[..n])
    }

    fn peer_parked(&self) -> Option<bool> {
        self.tx_ring.as_ref().map(|r| r.info().consumer.parked)
    }
}

// ---------------------------------------------------------------------------
// Pipes and UNIX sockets
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Message queues
// ---------------------------------------------------------------------------

/// POSIX message queues opened by name: `mq_send`/`mq_receive`.
pub struct PosixMqEnd {
    tx: Option<PosixMq>,
    rx: Option<PosixMq>,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl PosixMqEnd {
    pub fn open(tx: Option<&str>, rx: Option<&str>, size: usize) -> Result<PosixMqEnd, PeerError> {
        let open = |name: &str, write| {
            PosixMq::open(name, write).map_err(|e| PeerError(format!("mq_open {name}: {e}")))
        };
        Ok(PosixMqEnd {
            tx: tx.map(|n| open(n, true)).transpose()?,
            rx: rx.map(|n| open(n, false)).transpose()?,
            out: out_buffer(size),
            inb: vec![0; size],
        })
    }
}

impl Endpoint for PosixMqEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        let q = self.tx.as_ref().ok_or_else(|| not_open("sending"))?;
        Ok(q.send(&self.out[..len])?)
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let q = self.rx.as_ref().ok_or_else(|| not_open("receiving"))?;
        let n = q.recv(&mut self.inb)?;
        Ok(&self.inb[..n])
    }
}

/// One System V message queue, one message type per direction:
/// `msgsnd`/`msgrcv` on message buffers written and read in place.
pub struct SysvEnd {
    id: i32,
    tx_type: Option<i64>,
    rx_type: Option<i64>,
    out: SysvBuf,
    inb: SysvBuf,
}

impl SysvEnd {
    pub fn open(
        id: i32,
        tx_type: Option<i64>,
        rx_type: Option<i64>,
        size: usize,
    ) -> Result<SysvEnd, PeerError> {
        for t in [tx_type, rx_type].into_iter().flatten() {
            if t <= 0 {
                return Err(PeerError(format!("message type {t} is not positive")));
            }
        }
        let mut out = SysvBuf::new(size);
        out.text_mut().fill(FILL);
        Ok(SysvEnd {
            id,
            tx_type,
            rx_type,
            out,
            inb: SysvBuf::new(size),
        })
    }
}

impl Endpoint for SysvEnd {
    fn out(&mut self) -> &mut [u8] {
        self.out.text_mut()
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        let t = self.tx_type.ok_or_else(|| not_open("sending"))?;
        Ok(self.out.send(self.id, t, len)?)
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let t = self.rx_type.ok_or_else(|| not_open("receiving"))?;
        let n = self.inb.recv(self.id, t)?;
        Ok(&self.inb.text()[..n])
    }
}
