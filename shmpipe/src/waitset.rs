//! [`WaitSet`]: one thread waits on any number of consumers, producers,
//! duplexes and listeners at once, with a deadline, and learns which are
//! ready.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use rustix::event::epoll;
use rustix::io::Errno;

use crate::duplex::Duplex;
use crate::error::Error;
use crate::handles::{Consumer, Producer, SetMember};
use crate::listener::Listener;
use crate::readiness::{SetLink, SourceKind};
use crate::sync::{barrier, wait_any, Futex, WaitAny, WAIT_ANY_MAX};

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
/// waits. [`wait`](Self::wait) re-arms the members that something happened
/// to since the last wait, with one heavy barrier for them all, re-checks
/// those, and only then sleeps, one of two ways:
///
/// - **On the members' futex words** (`futex_waitv`, Linux 5.16+), where
///   every member is a ring handle (no listener), there are at most 128,
///   and each peer's death is watched (its pidfd in the death watcher):
///   the set sleeps exactly as one blocked `recv` does, woken by the
///   publisher's `FUTEX_WAKE` or by the watcher when a peer dies.
/// - **On descriptors** (`epoll_wait`) otherwise, or always with
///   [`with_epoll`](Self::with_epoll): each member's notification inbox (a pipe and a socket)
///   and its peer's pidfd are in one epoll set (no nested epoll per
///   member), so a dead peer wakes the set at once.
///
/// A member nothing happened to stays armed either way: a wait on a set of
/// idle members costs one system call.
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
    epoll: Arc<OwnedFd>,
    members: Vec<Option<Member>>,
    free: Vec<usize>,
    events: Vec<epoll::Event>,
    /// Slots re-armed by the current wait (kept to reuse its allocation).
    rearmed: Vec<usize>,
    /// Never sleep in `futex_waitv` (`with_epoll`, or the kernel refused
    /// it once).
    epoll_only: bool,
    /// The last wait slept (or would have) in `futex_waitv`.
    last_futex: bool,
}

/// What the set asks of a member, whatever its kind. A new kind of member
/// (a listening socket, ...) is a [`Member`] variant, an `impl` of this
/// trait, and an arm in [`Member::source`].
///
/// A wait calls, for every member: [`still_armed`](Self::still_armed); for
/// those that are not, [`announce`](Self::announce), then one heavy
/// barrier for all, then [`check`](Self::check). It then sleeps in
/// `epoll_wait` on the descriptors each member registered in
/// [`join`](Self::join), and reports a member ready when one of them is
/// readable (or when `check` said so).
///
/// A member that is a descriptor itself (a listening socket) has nothing to
/// announce: `join` adds its descriptor under a new
/// [`SourceKind`] (keeping the link to delete
/// it in `leave`), `still_armed` is `true`, `announce` returns `false` (no
/// heavy barrier), `check` returns `true` and `disarm` does nothing; the
/// level-triggered epoll reports it while it is readable.
pub(crate) trait Source {
    /// Registers the member's descriptors in the set's epoll, under
    /// `link.key(kind)`.
    fn join(&mut self, link: SetLink) -> Result<(), Error>;
    /// Takes them out again (the member leaves the set).
    fn leave(&mut self);
    /// Whether the member's last announcement stands: nothing happened to
    /// it since, so the wait needs nothing of it but its descriptors.
    fn still_armed(&mut self) -> bool;
    /// Announces a wait to whoever will signal the member; returns whether
    /// the barrier after it must be the heavy one.
    fn announce(&mut self) -> bool;
    /// After the barrier: `true` if there is still nothing to do but wait,
    /// `false` if the member is ready now (or has an error to report).
    fn check(&mut self) -> bool;
    /// Withdraws the announcement (a member `check` found ready: nothing
    /// will signal its descriptor for what is already there, so the next
    /// wait must re-arm and re-check it, to report it again if it is
    /// still ready).
    fn disarm(&mut self);
    /// Under loom, which models no epoll: whether one of the member's
    /// (modelled) descriptors is readable.
    #[cfg(loom)]
    fn signalled(&mut self) -> bool;
    /// For a sleep in `futex_waitv`: whether the member's futex
    /// announcement stands (nothing woke its word since).
    fn still_armed_futex(&mut self) -> bool;
    /// Announces a futex sleep; returns whether the barrier after it must
    /// be the heavy one, or `None` where the member cannot sleep on a
    /// futex (the set then waits on descriptors).
    fn announce_futex(&mut self) -> Option<bool>;
    /// The futex word and its expected value, while futex-armed.
    fn armed_word(&self) -> Option<(&Futex, u32)>;
}

/// A consumer or a producer: its holder does what the set asks
/// ([`SetMember`]).
impl<T: SetMember> Source for T {
    fn join(&mut self, link: SetLink) -> Result<(), Error> {
        self.join_set(link)
    }
    fn leave(&mut self) {
        self.leave_set();
    }
    fn still_armed(&mut self) -> bool {
        SetMember::still_armed(self)
    }
    fn disarm(&mut self) {
        self.disarm_member();
    }
    #[cfg(loom)]
    fn signalled(&mut self) -> bool {
        self.readiness_pending()
    }
    fn announce(&mut self) -> bool {
        self.announce_wait()
    }
    fn check(&mut self) -> bool {
        self.recheck()
    }
    fn still_armed_futex(&mut self) -> bool {
        SetMember::still_armed_futex(self)
    }
    fn announce_futex(&mut self) -> Option<bool> {
        self.announce_futex_wait()
    }
    fn armed_word(&self) -> Option<(&Futex, u32)> {
        SetMember::armed_word(self)
    }
}

/// A duplex waits as its consumer half does.
impl Source for Duplex {
    fn join(&mut self, link: SetLink) -> Result<(), Error> {
        Source::join(self.consumer(), link)
    }
    fn leave(&mut self) {
        Source::leave(self.consumer());
    }
    fn still_armed(&mut self) -> bool {
        Source::still_armed(self.consumer())
    }
    fn disarm(&mut self) {
        Source::disarm(self.consumer());
    }
    #[cfg(loom)]
    fn signalled(&mut self) -> bool {
        Source::signalled(self.consumer())
    }
    fn announce(&mut self) -> bool {
        Source::announce(self.consumer())
    }
    fn check(&mut self) -> bool {
        Source::check(self.consumer())
    }
    fn still_armed_futex(&mut self) -> bool {
        Source::still_armed_futex(self.consumer())
    }
    fn announce_futex(&mut self) -> Option<bool> {
        Source::announce_futex(self.consumer())
    }
    fn armed_word(&self) -> Option<(&Futex, u32)> {
        Source::armed_word(self.consumer_ref())
    }
}

/// A listener is a descriptor itself: its listening socket, readable
/// (level-triggered) while a client waits to be accepted. Nothing to
/// announce or re-check: it is always "armed".
impl Source for Listener {
    fn join(&mut self, link: SetLink) -> Result<(), Error> {
        link.add(self.as_fd(), SourceKind::Listener)
            .map_err(|e| Error::from_errno("epoll_ctl", "wait set", e))?;
        self.set = Some(link);
        Ok(())
    }
    fn leave(&mut self) {
        if let Some(link) = self.set.take() {
            link.delete(self.as_fd());
        }
    }
    fn still_armed(&mut self) -> bool {
        true
    }
    fn disarm(&mut self) {}
    #[cfg(loom)]
    fn signalled(&mut self) -> bool {
        false
    }
    fn announce(&mut self) -> bool {
        false
    }
    fn check(&mut self) -> bool {
        true
    }
    // A set with a listener never sleeps in `futex_waitv`.
    fn still_armed_futex(&mut self) -> bool {
        false
    }
    fn announce_futex(&mut self) -> Option<bool> {
        None
    }
    fn armed_word(&self) -> Option<(&Futex, u32)> {
        None
    }
}

impl Member {
    /// The member as the set drives it.
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Member::Consumer(c) => c,
            Member::Producer(p) => p,
            Member::Duplex(d) => &mut **d,
            Member::Listener(l) => l,
        }
    }

    /// The member as the set reads it.
    fn source_ref(&self) -> &dyn Source {
        match self {
            Member::Consumer(c) => c,
            Member::Producer(p) => p,
            Member::Duplex(d) => &**d,
            Member::Listener(l) => l,
        }
    }
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
            epoll: Arc::new(epoll),
            members: Vec::new(),
            free: Vec::new(),
            events: Vec::with_capacity(64),
            rearmed: Vec::new(),
            epoll_only: false,
            last_futex: false,
        })
    }

    /// An empty set that always sleeps on descriptors (`epoll_wait`), never
    /// on futex words: for comparison (`shmpipe bench -m
    /// shmpipe-waitset-epoll`), or where `futex_waitv` must be avoided.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if no epoll instance can be made.
    pub fn with_epoll() -> Result<WaitSet, Error> {
        let mut set = WaitSet::new()?;
        set.epoll_only = true;
        Ok(set)
    }

    /// Whether the last [`wait`](Self::wait) slept (or would have slept) in
    /// `futex_waitv` on its members' futex words, rather than in
    /// `epoll_wait`. See the type's documentation for when it can.
    pub fn last_wait_used_futexes(&self) -> bool {
        self.last_futex
    }

    /// Adds a consumer; it is ready when a receive would not say `Empty`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if its notification inbox cannot be made or added.
    pub fn add_consumer(&mut self, consumer: Consumer) -> Result<Token, Error> {
        self.add(Member::Consumer(consumer))
    }

    /// Adds a producer; it is ready when a send would not say `Full`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if its notification inbox cannot be made or added.
    pub fn add_producer(&mut self, producer: Producer) -> Result<Token, Error> {
        self.add(Member::Producer(producer))
    }

    /// Adds a duplex; it is ready when its consumer half is (a message is
    /// waiting, or the peer closed or died). Sends on it with
    /// [`duplex`](Self::duplex) as usual.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if its descriptors cannot be added.
    pub fn add_duplex(&mut self, duplex: Duplex) -> Result<Token, Error> {
        self.add(Member::Duplex(Box::new(duplex)))
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
        self.add(Member::Listener(listener))
    }

    /// Registers `member`'s descriptors under a free slot.
    fn add(&mut self, mut member: Member) -> Result<Token, Error> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.members.push(None);
            self.members.len() - 1
        });
        let link = SetLink {
            epoll: Arc::clone(&self.epoll),
            slot,
        };
        match member.source().join(link) {
            Ok(()) => {
                self.members[slot] = Some(member);
                Ok(Token(slot))
            }
            Err(e) => {
                self.free.push(slot);
                Err(e)
            }
        }
    }

    /// Takes a member out of the set.
    pub fn remove(&mut self, token: Token) -> Option<Member> {
        let mut m = self.members.get_mut(token.0)?.take()?;
        m.source().leave();
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
    /// ready: its next call reports it. Readiness is level-triggered: a
    /// member reported ready and left as it was is reported by the next
    /// wait again. Members stay armed after the wait until their next call
    /// (their peer signals them once, not per message).
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
        self.last_futex = self.futexes_possible();
        if self.last_futex {
            if let Some(n) = self.wait_futexes(deadline, ready) {
                return Ok(n);
            }
            self.last_futex = false;
        }
        self.wait_epoll(deadline, ready)
    }

    /// Whether a wait may sleep in `futex_waitv`: allowed, and 1 to 128
    /// members, none a listener.
    fn futexes_possible(&self) -> bool {
        if self.epoll_only {
            return false;
        }
        let mut n = 0;
        for m in self.members.iter().flatten() {
            if matches!(m, Member::Listener(_)) {
                return false;
            }
            n += 1;
        }
        (1..=WAIT_ANY_MAX).contains(&n)
    }

    /// [`wait`](Self::wait) on the members' futex words. Returns `None`,
    /// having reported nothing, where it cannot: a member whose peer's
    /// death no watcher covers, or a kernel without `futex_waitv` (then
    /// never again).
    fn wait_futexes(&mut self, deadline: Option<Instant>, ready: &mut Vec<Token>) -> Option<usize> {
        loop {
            // W1-W3 of the futex protocol for the members something
            // happened to.
            self.rearm(ready, true)?;
            if !ready.is_empty() {
                return Some(ready.len());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Some(0);
            }
            // W4: sleep on every member's word, each with the value read
            // before its announcement.
            let mut slots = [0usize; WAIT_ANY_MAX];
            let mut n = 0;
            let words = self.members.iter().enumerate().filter_map(|(i, m)| {
                let word = m.as_ref()?.source_ref().armed_word()?;
                if let Some(s) = slots.get_mut(n) {
                    *s = i;
                }
                n += 1;
                Some(word)
            });
            match wait_any(words, deadline) {
                WaitAny::Woken(k) => {
                    if let Some(&i) = slots.get(k) {
                        ready.push(Token(i));
                        return Some(1);
                    }
                }
                WaitAny::Changed => {}
                WaitAny::TimedOut => return Some(0),
                WaitAny::Unsupported => {
                    self.epoll_only = true;
                    return None;
                }
            }
            // A word changed before the sleep (or a signal): report the
            // members whose announcement was consumed; none, and the loop
            // re-arms what needs it.
            for (i, m) in self.members.iter_mut().enumerate() {
                if m.as_mut().is_some_and(|m| !m.source().still_armed_futex()) {
                    ready.push(Token(i));
                }
            }
            if !ready.is_empty() {
                return Some(ready.len());
            }
        }
    }

    /// Re-arms only the members something happened to since the last wait
    /// (on their futex words, or on their descriptors): announces each,
    /// pays one heavy barrier for them all, re-checks each, and puts those
    /// ready now in `ready` (disarmed, so that the next wait re-checks
    /// them). `None`, having announced nothing more, where a member cannot
    /// sleep on its futex word.
    fn rearm(&mut self, ready: &mut Vec<Token>, futex: bool) -> Option<()> {
        self.rearmed.clear();
        let mut heavy = false;
        for (i, m) in self.members.iter_mut().enumerate() {
            let Some(m) = m else { continue };
            let src = m.source();
            let armed = if futex {
                src.still_armed_futex()
            } else {
                src.still_armed()
            };
            if !armed {
                heavy |= if futex {
                    src.announce_futex()?
                } else {
                    src.announce()
                };
                self.rearmed.push(i);
            }
        }
        if !self.rearmed.is_empty() {
            let _ = barrier::waiter(heavy);
            for &i in &self.rearmed {
                if let Some(m) = self.members[i].as_mut() {
                    let src = m.source();
                    if !src.check() {
                        src.disarm();
                        ready.push(Token(i));
                    }
                }
            }
        }
        Some(())
    }

    /// [`wait`](Self::wait) on the members' descriptors.
    fn wait_epoll(
        &mut self,
        deadline: Option<Instant>,
        ready: &mut Vec<Token>,
    ) -> Result<usize, Error> {
        // W'1-W'3 for the members something happened to.
        let _ = self.rearm(ready, false);
        #[cfg(loom)]
        if ready.is_empty() {
            // The model of `epoll_wait` (no deadline: loom has no time).
            let _ = deadline;
            let members = &mut self.members;
            crate::notify::wait_until(|| {
                ready.extend(members.iter_mut().enumerate().filter_map(|(i, m)| {
                    m.as_mut()
                        .is_some_and(|m| m.source().signalled())
                        .then_some(Token(i))
                }));
                !ready.is_empty()
            });
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
                &*self.epoll,
                rustix::buffer::spare_capacity(&mut self.events),
                timeout.as_ref(),
            ) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::from_errno("epoll_wait", "wait set", e)),
            }
            for ev in &self.events {
                let t = Token((ev.data.u64() >> SourceKind::BITS) as usize);
                let present = self.members.get(t.0).is_some_and(Option::is_some);
                if present && !ready.contains(&t) {
                    ready.push(t);
                }
            }
        }
        ready.sort_unstable();
        Ok(ready.len())
    }

    /// Whether every member is armed the way the last wait slept (for
    /// tests of the lazy re-arming).
    #[cfg(test)]
    fn all_armed(&mut self) -> bool {
        let futex = self.last_futex;
        self.members.iter_mut().flatten().all(|m| {
            let src = m.source();
            if futex {
                src.still_armed_futex()
            } else {
                src.still_armed()
            }
        })
    }
}

impl Drop for WaitSet {
    fn drop(&mut self) {
        // Members leave first: their handles' drops then close the ring with
        // no announcement of ours left in their control lines.
        for m in self.members.iter_mut().flatten() {
            m.source().leave();
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::ring::RingBuilder;
    use std::time::Duration;

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_millis(5))
    }

    /// Both ways of sleeping keep idle members armed across waits and re-arm
    /// only what a call or a publish touched.
    fn members_stay_armed_until_something_happens_to_them(mut set: WaitSet, futex: bool) {
        let a = RingBuilder::new().slots(4).create_in_process().unwrap();
        let b = RingBuilder::new().slots(4).create_in_process().unwrap();
        let (mut tx_a, _tx_b) = (a.producer().unwrap(), b.producer().unwrap());
        let ta = set.add_consumer(a.consumer().unwrap()).unwrap();
        let _tb = set.add_consumer(b.consumer().unwrap()).unwrap();
        let mut ready = Vec::new();
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 0);
        assert_eq!(set.last_wait_used_futexes(), futex);
        assert!(
            set.all_armed(),
            "a timed-out wait leaves every member armed"
        );
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 0);
        assert!(set.all_armed());

        // A publish consumes the announcement (one byte, or one futex
        // wake), a second one sends nothing more. A descriptor member stays
        // armed (its byte stays queued until it is drained); a futex
        // member's announcement is spent, and the next wait re-arms it.
        tx_a.try_send(b"one").unwrap();
        tx_a.try_send(b"two").unwrap();
        assert!(!a.info().consumer.parked, "the publisher cleared the bit");
        assert_eq!(set.all_armed(), !futex);
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 1);
        assert_eq!(ready, [ta]);
        let rx = set.consumer(ta).unwrap();
        assert_eq!(rx.try_recv_vec().unwrap(), b"one");
        assert_eq!(rx.try_recv_vec().unwrap(), b"two");
        assert!(
            !SetMember::still_armed(rx) && !SetMember::still_armed_futex(rx),
            "a call disarms"
        );
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 0);
        assert!(set.all_armed(), "the next wait re-armed it");

        // Ready before the wait (a disarmed member: no byte; the
        // re-check finds it) and left alone: reported again by the next
        // wait.
        set.consumer(ta).unwrap().disarm();
        tx_a.try_send(b"early").unwrap();
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 1);
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 1);
        assert_eq!(ready, [ta]);
        assert_eq!(set.consumer(ta).unwrap().try_recv_vec().unwrap(), b"early");

        // A removed member is disarmed and out of the set.
        let Some(Member::Consumer(mut rx_a)) = set.remove(ta) else {
            panic!("consumer a")
        };
        assert!(!SetMember::still_armed(&rx_a) && !SetMember::still_armed_futex(&rx_a));
        assert!(!a.info().consumer.parked, "nothing announced for it");
        tx_a.try_send(b"three").unwrap();
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 0);
        assert_eq!(rx_a.try_recv_vec().unwrap(), b"three");
    }

    #[test]
    fn futex_members_stay_armed_until_something_happens_to_them() {
        members_stay_armed_until_something_happens_to_them(WaitSet::new().unwrap(), true);
    }

    #[test]
    fn descriptor_members_stay_armed_until_something_happens_to_them() {
        members_stay_armed_until_something_happens_to_them(WaitSet::with_epoll().unwrap(), false);
    }

    /// A listener in the set, or more members than one `futex_waitv` takes:
    /// the set sleeps on descriptors, and goes back to futexes without them.
    #[test]
    fn a_set_falls_back_to_descriptors_and_back() {
        let mut ready = Vec::new();
        let rings: Vec<_> = (0..=WAIT_ANY_MAX)
            .map(|_| RingBuilder::new().slots(2).create_in_process().unwrap())
            .collect();
        let mut set = WaitSet::new().unwrap();
        let mut tokens: Vec<_> = rings
            .iter()
            .map(|r| set.add_consumer(r.consumer().unwrap()).unwrap())
            .collect();
        let mut tx = rings[WAIT_ANY_MAX].producer().unwrap();
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 0);
        assert!(!set.last_wait_used_futexes(), "129 members: epoll");
        let last = tokens.pop().unwrap();
        drop(set.remove(last));
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 0);
        assert!(set.last_wait_used_futexes(), "128 members: futex_waitv");

        // A member armed on its futex, then on its descriptor: each
        // announcement withdraws the other, and a publish is seen either way.
        let t = set
            .add_consumer(rings[WAIT_ANY_MAX].consumer().unwrap())
            .unwrap();
        drop(set.remove(tokens[0]));
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 0);
        assert!(set.last_wait_used_futexes());
        let dir = std::env::temp_dir().join(format!("shmpipe-ws-fallback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock").display().to_string();
        let listener = crate::listener::Listener::bind(&path).unwrap();
        let tl = set.add_listener(listener).unwrap();
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 0);
        assert!(!set.last_wait_used_futexes(), "a listener: epoll");
        tx.try_send(b"x").unwrap();
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 1);
        assert_eq!(ready, [t]);
        assert_eq!(set.consumer(t).unwrap().try_recv_vec().unwrap(), b"x");
        drop(set.remove(tl));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 0);
        assert!(set.last_wait_used_futexes());
        tx.try_send(b"y").unwrap();
        assert_eq!(set.wait(soon(), &mut ready).unwrap(), 1);
        assert_eq!(ready, [t]);
    }
}
