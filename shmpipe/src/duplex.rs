//! [`Duplex`]: two rings, one each way, used as one two-way channel.
//!
//! A duplex is a [`Producer`] on one ring and a [`Consumer`] on another,
//! whose peer holds the opposite sides. It is made
//!
//! - in one process, for two threads: [`Duplex::pair`];
//! - under one address, by a creator and an opener:
//!   [`Duplex::create`] and [`Duplex::open`], which name the two rings
//!   `<address>.up` (opener to creator) and `<address>.down` (creator to
//!   opener);
//! - by a [`Listener`](crate::Listener) for each client that
//!   [`connect`](crate::connect)s (two private memfd rings);
//! - from two rings or two handles you already have:
//!   [`Duplex::from_rings`], [`Duplex::from_parts`].
//!
//! Use it as one value (`send`/`recv` and the other calls delegate to the
//! halves), or [`into_split`](Duplex::into_split) it to give each half to
//! its own thread. In a [`WaitSet`](crate::WaitSet) it is ready when its
//! consumer half is ([`WaitSet::add_duplex`](crate::WaitSet::add_duplex)).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::address::{Address, AsAddress};
use crate::error::{Error, RecvError, SendError, TryRecvError, TrySendError};
use crate::handles::{Consumer, Message, Producer};
use crate::ring::{Ring, RingBuilder};

/// Which end of a named duplex a process takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Creates both rings; consumes `.up`, produces on `.down`.
    Creator,
    /// Opens both rings, or creates those missing; the creator's end.
    Reuser,
    /// Opens both rings; produces on `.up`, consumes `.down`.
    Opener,
}

/// A two-way channel: a [`Producer`] to the peer and a [`Consumer`] from
/// it.
///
/// # Examples
///
/// ```
/// use shmpipe::{Duplex, RingBuilder};
///
/// let (mut a, mut b) = Duplex::pair(RingBuilder::new().slots(8))?;
/// a.send(b"ping")?;
/// assert_eq!(b.try_recv_vec()?, b"ping");
/// b.send(b"pong")?;
/// assert_eq!(a.try_recv_vec()?, b"pong");
///
/// // Each half on its own.
/// let (mut tx, mut rx) = a.into_split();
/// tx.try_send(b"again")?;
/// assert_eq!(b.try_recv_vec()?, b"again");
/// # let _ = &mut rx;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Duplex {
    tx: Producer,
    rx: Consumer,
}

impl Duplex {
    /// A duplex from a producer (to the peer) and a consumer (from it).
    pub fn from_parts(tx: Producer, rx: Consumer) -> Duplex {
        Duplex { tx, rx }
    }

    /// Claims the producer side of `tx` and the consumer side of `rx`.
    ///
    /// # Errors
    ///
    /// As [`Ring::producer`] and [`Ring::consumer`].
    pub fn from_rings(tx: &Ring, rx: &Ring) -> Result<Duplex, Error> {
        Ok(Duplex {
            tx: tx.producer()?,
            rx: rx.consumer()?,
        })
    }

    /// Two connected duplexes in this process's heap (for two threads),
    /// each ring with `builder`'s geometry and wait settings: what one
    /// sends the other receives.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad geometry.
    pub fn pair(builder: &RingBuilder) -> Result<(Duplex, Duplex), Error> {
        let ab = builder.create_in_process()?;
        let ba = builder.create_in_process()?;
        Ok((Duplex::from_rings(&ab, &ba)?, Duplex::from_rings(&ba, &ab)?))
    }

    /// Creates the two rings of a duplex at `address` (`<address>.up` and
    /// `<address>.down`, see [`Duplex::ring_addresses`]) with `builder`'s
    /// options, and takes the creator's end: it receives what the opener
    /// sends. If the second ring cannot be made, the first is removed.
    ///
    /// # Errors
    ///
    /// As [`RingBuilder::create`] (for example [`Error::AlreadyExists`]),
    /// and [`Error::Unsupported`] for System V addresses (a key names one
    /// segment).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::{Duplex, RingBuilder};
    ///
    /// # let name = format!("shm:doc-duplex-{}", std::process::id());
    /// let mut server = Duplex::create(RingBuilder::new().unlink_on_drop(true), &name)?;
    /// let mut client = Duplex::open(&RingBuilder::new(), &name)?; // another process
    /// client.send(b"request")?;
    /// assert_eq!(server.try_recv_vec()?, b"request");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(builder: &RingBuilder, address: impl AsAddress) -> Result<Duplex, Error> {
        Duplex::named(builder, &address.to_address()?, End::Creator)
    }

    /// Opens the two rings of a duplex made by [`Duplex::create`] and takes
    /// the opener's end: it sends to the creator.
    ///
    /// # Errors
    ///
    /// As [`RingBuilder::open`] (for example [`Error::NotFound`]) and
    /// [`Ring::producer`]; [`Error::Unsupported`] for System V addresses.
    pub fn open(builder: &RingBuilder, address: impl AsAddress) -> Result<Duplex, Error> {
        Duplex::named(builder, &address.to_address()?, End::Opener)
    }

    /// Takes the creator's end of the duplex at `address`, creating its
    /// rings or opening them where they exist (a server restarted while
    /// its clients wait, or started after a client that waits with
    /// [`RingBuilder::wait_for_creation`]): each ring through
    /// [`RingBuilder::open_or_create`], so geometry checks and
    /// `reclaim_stale` apply. Rings this call created are removed if the
    /// other cannot be had.
    ///
    /// # Errors
    ///
    /// As [`RingBuilder::open_or_create`] and [`Ring::consumer`] (for
    /// example [`Error::InUse`] while another creator's end is held);
    /// [`Error::Unsupported`] for System V addresses.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::{Duplex, RingBuilder};
    ///
    /// # let name = format!("shm:doc-duplex-ooc-{}", std::process::id());
    /// let server = Duplex::open_or_create(RingBuilder::new().unlink_on_drop(true), &name)?;
    /// drop(server); // the server restarts: its rings are still there
    /// # let b = RingBuilder::new();
    /// let mut server = Duplex::open_or_create(&b, &name)?;
    /// let mut client = Duplex::open(&b, &name)?;
    /// client.send(b"hello")?;
    /// assert_eq!(server.try_recv_vec()?, b"hello");
    /// # shmpipe::Ring::remove(format!("{name}.up").as_str(), true)?;
    /// # shmpipe::Ring::remove(format!("{name}.down").as_str(), true)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_or_create(builder: &RingBuilder, address: impl AsAddress) -> Result<Duplex, Error> {
        Duplex::named(builder, &address.to_address()?, End::Reuser)
    }

    fn named(builder: &RingBuilder, address: &Address, end: End) -> Result<Duplex, Error> {
        let (up, down) = Duplex::ring_addresses(address)?;
        let up_ring = ring_for(builder, &up, end)?;
        let down_ring = match ring_for(builder, &down, end) {
            Ok(r) => r,
            Err(e) => {
                if end == End::Creator || (end == End::Reuser && up_ring.created()) {
                    let _ = up_ring.unlink();
                }
                return Err(e);
            }
        };
        match end {
            End::Creator | End::Reuser => Duplex::from_rings(&down_ring, &up_ring),
            End::Opener => Duplex::from_rings(&up_ring, &down_ring),
        }
    }

    /// The addresses of a named duplex's two rings: `<address>.up`
    /// (opener to creator) and `<address>.down` (creator to opener).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for a System V address, or
    /// [`Error::InvalidAddress`] if the suffixed name is too long.
    ///
    /// ```
    /// use shmpipe::Duplex;
    ///
    /// let (up, down) = Duplex::ring_addresses(&"shm:calc".parse()?)?;
    /// assert_eq!((up.to_string(), down.to_string()), ("shm:calc.up".into(), "shm:calc.down".into()));
    /// # Ok::<(), shmpipe::Error>(())
    /// ```
    pub fn ring_addresses(address: &Address) -> Result<(Address, Address), Error> {
        let suffixed = |suffix: &str| -> Result<Address, Error> {
            match address {
                Address::Shm(name) => Address::parse(&format!("shm:{name}{suffix}")),
                Address::File(path) => {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    Ok(Address::File(PathBuf::from(p)))
                }
                _ => Err(Error::Unsupported {
                    address: address.to_string(),
                    what: "a duplex (two rings under one name) at a System V key",
                }),
            }
        };
        Ok((suffixed(".up")?, suffixed(".down")?))
    }

    /// The halves, to use from two threads.
    pub fn into_split(self) -> (Producer, Consumer) {
        (self.tx, self.rx)
    }

    /// Both halves at once, borrowed (to hold a reply slot and a request
    /// slot together).
    pub(crate) fn halves(&mut self) -> (&mut Producer, &mut Consumer) {
        (&mut self.tx, &mut self.rx)
    }

    /// The sending half.
    pub fn producer(&mut self) -> &mut Producer {
        &mut self.tx
    }

    /// The receiving half.
    pub fn consumer(&mut self) -> &mut Consumer {
        &mut self.rx
    }

    /// The receiving half, shared (a `WaitSet` reads its futex word).
    pub(crate) fn consumer_ref(&self) -> &Consumer {
        &self.rx
    }

    /// Whether the peer still holds both its sides (a process that died
    /// or dropped its end: `false`).
    pub fn peer_alive(&mut self) -> bool {
        self.tx.peer_alive() && self.rx.peer_alive()
    }

    /// The peer's process id (the producer of the ring this end receives
    /// from, else the consumer of the one it sends on), if attached.
    pub fn peer_pid(&self) -> Option<u32> {
        self.rx.peer_pid().or_else(|| self.tx.peer_pid())
    }

    /// Largest message the peer can receive from this end.
    pub fn max_message(&self) -> usize {
        self.tx.max_message()
    }

    /// [`Producer::try_send`] on the sending half.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_send`].
    pub fn try_send<M: Message>(&mut self, msg: M) -> Result<(), TrySendError<M::Unsent>> {
        self.tx.try_send(msg)
    }

    /// [`Producer::send`] on the sending half.
    ///
    /// # Errors
    ///
    /// As [`Producer::send`].
    pub fn send<M: Message>(&mut self, msg: M) -> Result<(), SendError<M::Unsent>> {
        self.tx.send(msg)
    }

    /// [`Producer::send_timeout`] on the sending half.
    ///
    /// # Errors
    ///
    /// As [`Producer::send_timeout`].
    pub fn send_timeout<M: Message>(
        &mut self,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendError<M::Unsent>> {
        self.tx.send_timeout(msg, timeout)
    }

    /// [`Producer::send_deadline`] on the sending half.
    ///
    /// # Errors
    ///
    /// As [`Producer::send_deadline`].
    pub fn send_deadline<M: Message>(
        &mut self,
        msg: M,
        deadline: Instant,
    ) -> Result<(), SendError<M::Unsent>> {
        self.tx.send_deadline(msg, deadline)
    }

    /// [`Consumer::try_recv`] on the receiving half.
    ///
    /// # Errors
    ///
    /// As [`Consumer::try_recv`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        self.rx.try_recv(buf)
    }

    /// [`Consumer::try_recv_vec`] on the receiving half.
    ///
    /// # Errors
    ///
    /// As [`Consumer::try_recv_vec`].
    pub fn try_recv_vec(&mut self) -> Result<Vec<u8>, TryRecvError> {
        self.rx.try_recv_vec()
    }

    /// [`Consumer::recv`] on the receiving half.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv`].
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.rx.recv(buf)
    }

    /// [`Consumer::recv_timeout`] on the receiving half.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv_timeout`].
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, RecvError> {
        self.rx.recv_timeout(buf, timeout)
    }

    /// [`Consumer::recv_deadline`] on the receiving half.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv_deadline`].
    pub fn recv_deadline(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, RecvError> {
        self.rx.recv_deadline(buf, deadline)
    }

    /// [`Consumer::recv_vec_deadline`] on the receiving half.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv_vec_deadline`].
    pub fn recv_vec_deadline(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, RecvError> {
        self.rx.recv_vec_deadline(deadline)
    }
}

/// The ring at `address` for this end of a named duplex: the creator
/// creates it, the reuser opens or creates it, the opener opens it
/// (waiting for it if the builder says `wait_for_creation`).
fn ring_for(builder: &RingBuilder, address: &Address, end: End) -> Result<Ring, Error> {
    match end {
        End::Creator => builder.create(address),
        End::Reuser => builder.open_or_create(address),
        End::Opener => builder.open(address),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pair_carries_both_ways_and_splits() {
        let (mut a, mut b) = Duplex::pair(RingBuilder::new().slots(4)).unwrap();
        a.try_send(b"a->b").unwrap();
        b.try_send(b"b->a").unwrap();
        assert_eq!(b.try_recv_vec().unwrap(), b"a->b");
        assert_eq!(a.try_recv_vec().unwrap(), b"b->a");
        assert!(a.peer_alive());
        let (tx, rx) = b.into_split();
        drop(tx);
        // b's sending half is gone: a sees the end of the stream.
        assert_eq!(a.try_recv_vec(), Err(TryRecvError::Disconnected));
        drop(rx);
        assert!(matches!(
            a.try_send(b"x"),
            Err(TrySendError::Disconnected(_))
        ));
    }

    #[test]
    fn sysv_address_is_unsupported() {
        let a = Address::parse("sysv:0x1234").unwrap();
        assert!(matches!(
            Duplex::ring_addresses(&a),
            Err(Error::Unsupported { .. })
        ));
        let f = Address::parse("file:/tmp/x").unwrap();
        let (up, down) = Duplex::ring_addresses(&f).unwrap();
        assert_eq!(up, Address::File("/tmp/x.up".into()));
        assert_eq!(down, Address::File("/tmp/x.down".into()));
    }
}
