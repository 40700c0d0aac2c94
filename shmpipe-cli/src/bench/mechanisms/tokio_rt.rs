//! tokio: the receiving side awaits its message on a `current_thread`
//! runtime, one `block_on` per message. `shmpipe-tokio` awaits
//! `AsyncConsumer::recv` (the producer's `send` parks on the futex when
//! full); `tokio-unix` awaits `read_exact` on a tokio `UnixStream` (a
//! `socketpair(AF_UNIX, SOCK_STREAM)`, the sender writing with tokio too).

use std::os::fd::OwnedFd;

use rustix::fs::FileType;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use serde::{Deserialize, Serialize};
use shmpipe::{AsyncConsumer, Producer, Ring, WaitStrategy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

use super::shmpipe::{RingLink, Shmpipe, WaitMode};
use super::{parse_link, Channel, Entry, Family, Group, Mechanism, Setup};
use crate::bench::endpoint::{adopt_fd, not_open, out_buffer, Endpoint, PeerError};
use crate::bench::jobs;
use crate::bench::protocol::PeerSpec;

pub const SHMPIPE_TOKIO: Entry = Entry {
    mechanism: Mechanism::ShmpipeTokio,
    name: "shmpipe-tokio",
    about: "shmpipe, the consumer awaiting AsyncConsumer::recv on a current_thread tokio runtime",
    family: &Tokio,
    group: Group::Shmpipe,
    default: false,
};
pub const TOKIO_UNIX: Entry = Entry {
    mechanism: Mechanism::TokioUnix,
    name: "tokio-unix",
    about: "a tokio UnixStream pair on current_thread runtimes: write_all, read_exact awaited",
    family: &Tokio,
    group: Group::Other,
    default: false,
};

/// A tokio peer's end: a shmpipe ring pair or an inherited socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokioLink {
    pub ring: Option<RingLink>,
    pub socket: Option<i32>,
}

/// The tokio family.
pub struct Tokio;

impl Family for Tokio {
    fn kind(&self) -> &'static str {
        "tokio"
    }

    fn channel(
        &self,
        m: Mechanism,
        setup: &mut Setup<'_>,
        two_way: bool,
        size: usize,
    ) -> Result<Channel, String> {
        if m == Mechanism::ShmpipeTokio {
            // The same rings as shmpipe-park's, links wrapped.
            let mut ch = Shmpipe.channel(Mechanism::ShmpipePark, setup, two_way, size)?;
            let wrap = |v: Option<serde_json::Value>| -> Result<TokioLink, String> {
                let ring = v
                    .map(|v| parse_link::<RingLink>(&v).map_err(|e| e.0))
                    .transpose()?;
                Ok(TokioLink { ring, socket: None })
            };
            let (p, c) = (wrap(ch.producer.take())?, wrap(ch.consumer.take())?);
            ch.links(self.kind(), &p, &c);
            return Ok(ch);
        }
        let mut ch = Channel::default();
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| format!("socketpair: {e}"))?;
        let (a, b) = (ch.keep(a), ch.keep(b));
        ch.pass_producer = vec![a];
        ch.pass_consumer = vec![b];
        let p = TokioLink {
            ring: None,
            socket: Some(a),
        };
        let c = TokioLink {
            ring: None,
            socket: Some(b),
        };
        ch.links(self.kind(), &p, &c);
        Ok(ch)
    }

    fn reports_parked(&self, m: Mechanism) -> bool {
        m == Mechanism::ShmpipeTokio
    }

    fn serve(&self, spec: &PeerSpec) -> Result<(), PeerError> {
        let l: TokioLink = parse_link(&spec.link)?;
        jobs::serve(TokioEnd::open(&l, spec.msg_size), spec)
    }
}

/// A ring pair's end: the ring sent on (for `info()`), its producer, the
/// awaited consumer.
struct RingSide {
    tx_ring: Option<Ring>,
    tx: Option<Producer>,
    rx: Option<AsyncConsumer>,
}

/// What a tokio end moves messages over.
enum Over {
    Ring(Box<RingSide>),
    Socket(tokio::net::UnixStream),
}

/// A tokio end: its runtime and its channel.
pub struct TokioEnd {
    rt: Runtime,
    over: Over,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl TokioEnd {
    fn open(l: &TokioLink, size: usize) -> Result<TokioEnd, PeerError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| PeerError(format!("starting the tokio runtime: {e}")))?;
        let over = match (&l.ring, l.socket) {
            (Some(r), _) => {
                let tx_ring = r.tx.as_deref().map(Ring::open).transpose()?;
                let tx = match &tx_ring {
                    Some(ring) => {
                        let mut p = ring.producer()?;
                        p.set_wait_strategy(WaitStrategy::Park);
                        Some(p)
                    }
                    None => None,
                };
                let rx = match r.rx.as_deref() {
                    Some(addr) => {
                        let c = Ring::open(addr)?.consumer()?;
                        // AsyncFd registers with the runtime's reactor.
                        let _g = rt.enter();
                        Some(AsyncConsumer::new(c)?)
                    }
                    None => None,
                };
                debug_assert!(r.wait == WaitMode::Park);
                Over::Ring(Box::new(RingSide { tx_ring, tx, rx }))
            }
            (None, Some(fd)) => {
                let owned: OwnedFd = adopt_fd(fd, &[FileType::Socket])?;
                let std = std::os::unix::net::UnixStream::from(owned);
                std.set_nonblocking(true)?;
                let _g = rt.enter();
                Over::Socket(tokio::net::UnixStream::from_std(std)?)
            }
            (None, None) => return Err(not_open("sending or receiving")),
        };
        Ok(TokioEnd {
            rt,
            over,
            out: out_buffer(size),
            inb: vec![0; size],
        })
    }
}

impl Endpoint for TokioEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        match &mut self.over {
            Over::Ring(r) => {
                let tx = r.tx.as_mut().ok_or_else(|| not_open("sending"))?;
                tx.send(&self.out[..len]).map_err(|e| e.map(drop).into())
            }
            Over::Socket(s) => Ok(self.rt.block_on(s.write_all(&self.out[..len]))?),
        }
    }

    fn recv(&mut self) -> Result<&[u8], PeerError> {
        match &mut self.over {
            Over::Ring(r) => {
                let rx = r.rx.as_mut().ok_or_else(|| not_open("receiving"))?;
                let n = self.rt.block_on(rx.recv(&mut self.inb))?;
                Ok(&self.inb[..n])
            }
            Over::Socket(s) => match self.rt.block_on(s.read_exact(&mut self.inb)) {
                Ok(_) => Ok(&self.inb[..]),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Err(PeerError::new("the sender closed the channel"))
                }
                Err(e) => Err(e.into()),
            },
        }
    }

    fn peer_parked(&self) -> Option<bool> {
        match &self.over {
            Over::Ring(r) => r.tx_ring.as_ref().map(|r| r.info().consumer.parked),
            Over::Socket(_) => None,
        }
    }
}
