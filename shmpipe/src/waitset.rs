//! [`WaitSet`]: one thread waits on any number of consumers and producers
//! at once, with a deadline, and learns which are ready.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Instant;

use rustix::event::epoll;
use rustix::io::Errno;

use crate::duplex::Duplex;
use crate::error::Error;
use crate::handles::{Consumer, Producer};
use crate::listener::Listener;
use crate::sync::barrier;

/// Names a member of a [`WaitSet`]: returned by `add_*`, reported by
/// [`wait`](WaitSet::wait) when that member is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// A handle in a [`WaitSet`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Member {
    /// Ready when a message is waiting (or the producer closed or died).
    Consumer(Consumer),
    /// Ready when a slot is free (or the consumer left or died).
    Producer(Producer),
    /// Ready when its consumer half is: a message is waiting (or the peer
    /// closed or died). Boxed: a duplex is two handles.
    Duplex(Box<Duplex>),
    /// Ready when a client is waiting to connect: accept it with
    /// [`Listener::try_accept`].
    Listener(Listener),
}

/// Waits on many handles at once: one thread, no CPU while idle, no thread
/// per ring.
///
/// The set owns its members (get them back with
/// [`consumer`](Self::consumer), [`producer`](Self::producer) or
/// [`remove`](Self::remove)); members can be added and removed between
/// waits. Each member's [readiness descriptor](Consumer::readiness_fd)
/// joins one epoll set; [`wait`](Self::wait) arms every member with one
/// heavy barrier for them all, re-checks them, and only then sleeps. A dead
/// peer wakes the set at once (its pidfd is in the member's descriptor).
///
/// A member reported ready is only ready "to try": receive with the
/// non-blocking calls (`try_recv`, `try_borrow`, ...) until `Empty`.
///
/// # Examples
///
/// ```
/// use shmpipe::{RingBuilder, WaitSet};
/// use std::time::{Duration, Instant};
///
/// let a = RingBuilder::new().slots(8).create_in_process()?;
/// let b = RingBuilder::new().slots(8).create_in_process()?;
/// let (mut tx_a, mut tx_b) = (a.producer()?, b.producer()?);
/// let mut set = WaitSet::new()?;
/// let ta = set.add_consumer(a.consumer()?)?;
/// let tb = set.add_consumer(b.consumer()?)?;
///
/// tx_b.try_send(b"to b")?;
/// let mut ready = Vec::new();
/// set.wait(Some(Instant::now() + Duration::from_secs(1)), &mut ready)?;
/// assert_eq!(ready, [tb]);
/// assert_eq!(set.consumer(tb).unwrap().try_recv_vec()?, b"to b");
///
/// // Nothing more: the wait ends at its deadline with no token.
/// set.wait(Some(Instant::now() + Duration::from_millis(10)), &mut ready)?;
/// assert!(ready.is_empty());
/// # let _ = (ta, &mut tx_a);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WaitSet {
    epoll: OwnedFd,
    members: Vec<Option<Member>>,
    /// Each member's readiness descriptor number, as registered: epoll
    /// keys its entries by (file, descriptor number), so removal must name
    /// that very number.
    fds: Vec<RawFd>,
    free: Vec<usize>,
    events: Vec<epoll::Event>,
}

impl std::fmt::Debug for WaitSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitSet")
            .field("members", &self.len())
            .finish_non_exhaustive()
    }
}

impl WaitSet {
    /// An empty set.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if no epoll instance can be made.
    pub fn new() -> Result<WaitSet, Error> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|e| Error::from_errno("epoll_create", "wait set", e))?;
        Ok(WaitSet {
            epoll,
            members: Vec::new(),
            fds: Vec::new(),
            free: Vec::new(),
            events: Vec::with_capacity(64),
        })
    }

    /// Adds a consumer; it is ready when a receive would not say `Empty`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if its readiness descriptor cannot be made or added.
    pub fn add_consumer(&mut self, mut consumer: Consumer) -> Result<Token, Error> {
        let fd = consumer.readiness_fd()?.as_raw_fd();
        let slot = self.register(fd)?;
        self.members[slot] = Some(Member::Consumer(consumer));
        Ok(Token(slot))
    }

    /// Adds a producer; it is ready when a send would not say `Full`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if its readiness descriptor cannot be made or added.
    pub fn add_producer(&mut self, mut producer: Producer) -> Result<Token, Error> {
        let fd = producer.readiness_fd()?.as_raw_fd();
        let slot = self.register(fd)?;
        self.members[slot] = Some(Member::Producer(producer));
        Ok(Token(slot))
    }

    /// Adds a duplex; it is ready when its consumer half is (a message is
    /// waiting, or the peer closed or died). Sends on it with
    /// [`duplex`](Self::duplex) as usual.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if its readiness descriptor cannot be made or added.
    pub fn add_duplex(&mut self, mut duplex: Duplex) -> Result<Token, Error> {
        let fd = duplex.consumer().readiness_fd()?.as_raw_fd();
        let slot = self.register(fd)?;
        self.members[slot] = Some(Member::Duplex(Box::new(duplex)));
        Ok(Token(slot))
    }

    /// Adds a listener; it is ready when a client waits to connect (its
    /// socket is readable). Accept with
    /// [`listener(token)`](Self::listener)`.try_accept()`, and add the
    /// connection with [`add_duplex`](Self::add_duplex).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if its socket cannot be added.
    pub fn add_listener(&mut self, listener: Listener) -> Result<Token, Error> {
        let fd = listener.as_raw_fd();
        let slot = self.register(fd)?;
        self.members[slot] = Some(Member::Listener(listener));
        Ok(Token(slot))
    }

    /// Registers a member's readiness descriptor `fd` (open: its handle is
    /// being added) under a free slot; returns the slot.
    fn register(&mut self, fd: RawFd) -> Result<usize, Error> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.members.push(None);
            self.fds.push(-1);
            self.members.len() - 1
        });
        // SAFETY: `fd` is the readiness descriptor of the handle being
        // added, open for the duration of this call.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        match epoll::add(
            &self.epoll,
            bfd,
            epoll::EventData::new_u64(slot as u64),
            epoll::EventFlags::IN,
        ) {
            Ok(()) => {
                self.fds[slot] = fd;
                Ok(slot)
            }
            Err(e) => {
                self.free.push(slot);
                Err(Error::from_errno("epoll_ctl", "wait set", e))
            }
        }
    }

    /// Takes a member out of the set.
    pub fn remove(&mut self, token: Token) -> Option<Member> {
        self.members.get(token.0)?.as_ref()?;
        // SAFETY: the member (which owns the descriptor) is still in the
        // set, so the descriptor registered under this slot is open.
        let bfd = unsafe { BorrowedFd::borrow_raw(self.fds[token.0]) };
        let _ = epoll::delete(&self.epoll, bfd);
        let m = self.members[token.0].take()?;
        self.fds[token.0] = -1;
        self.free.push(token.0);
        Some(m)
    }

    /// The consumer named by `token`, if it is one.
    pub fn consumer(&mut self, token: Token) -> Option<&mut Consumer> {
        match self.members.get_mut(token.0)? {
            Some(Member::Consumer(c)) => Some(c),
            _ => None,
        }
    }

    /// The producer named by `token`, if it is one.
    pub fn producer(&mut self, token: Token) -> Option<&mut Producer> {
        match self.members.get_mut(token.0)? {
            Some(Member::Producer(p)) => Some(p),
            _ => None,
        }
    }

    /// The duplex named by `token`, if it is one.
    pub fn duplex(&mut self, token: Token) -> Option<&mut Duplex> {
        match self.members.get_mut(token.0)? {
            Some(Member::Duplex(d)) => Some(d),
            _ => None,
        }
    }

    /// The listener named by `token`, if it is one.
    pub fn listener(&mut self, token: Token) -> Option<&mut Listener> {
        match self.members.get_mut(token.0)? {
            Some(Member::Listener(l)) => Some(l),
            _ => None,
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.iter().filter(|m| m.is_some()).count()
    }

    /// Whether the set has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until at least one member is ready or `deadline` passes
    /// (`None`: as long as it takes), and puts the ready members' tokens in
    /// `ready` (cleared first; empty after a timeout). Returns how many.
    ///
    /// A member whose peer died, closed or corrupted the ring counts as
    /// ready: its next call reports it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `epoll_wait` fails (never for `EINTR`: the wait
    /// goes on to its deadline).
    pub fn wait(
        &mut self,
        deadline: Option<Instant>,
        ready: &mut Vec<Token>,
    ) -> Result<usize, Error> {
        ready.clear();
        // Arm everything, pay one heavy barrier for all, then re-check.
        let mut heavy = false;
        for m in self.members.iter_mut().flatten() {
            heavy |= match m {
                Member::Consumer(c) => c.announce_wait(),
                Member::Producer(p) => p.announce_wait(),
                Member::Duplex(d) => d.consumer().announce_wait(),
                // A socket: epoll reports it by itself, nothing to arm.
                Member::Listener(_) => false,
            };
        }
        let _ = barrier::waiter(heavy);
        for (i, m) in self.members.iter_mut().enumerate() {
            let armed = match m {
                Some(Member::Consumer(c)) => !matches!(c.check_armed(), Ok(false) | Err(_)),
                Some(Member::Producer(p)) => !matches!(p.check_armed(), Ok(false) | Err(_)),
                Some(Member::Duplex(d)) => {
                    !matches!(d.consumer().check_armed(), Ok(false) | Err(_))
                }
                // Level-triggered: a waiting client wakes `epoll_wait` below.
                Some(Member::Listener(_)) => true,
                None => continue,
            };
            if !armed {
                ready.push(Token(i));
            }
        }
        while ready.is_empty() {
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break;
                    }
                    let left = d - now;
                    Some(rustix::time::Timespec {
                        tv_sec: left.as_secs() as i64,
                        tv_nsec: i64::from(left.subsec_nanos()),
                    })
                }
            };
            self.events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut self.events),
                timeout.as_ref(),
            ) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => {
                    self.disarm_all();
                    return Err(Error::from_errno("epoll_wait", "wait set", e));
                }
            }
            for ev in &self.events {
                let t = Token(ev.data.u64() as usize);
                let present = self.members.get(t.0).is_some_and(Option::is_some);
                if present && !ready.contains(&t) {
                    ready.push(t);
                }
            }
        }
        self.disarm_all();
        ready.sort_unstable();
        Ok(ready.len())
    }

    fn disarm_all(&mut self) {
        for m in self.members.iter_mut().flatten() {
            match m {
                Member::Consumer(c) => c.disarm_wait(),
                Member::Producer(p) => p.disarm_wait(),
                Member::Duplex(d) => d.consumer().disarm_wait(),
                Member::Listener(_) => {}
            }
        }
    }
}
