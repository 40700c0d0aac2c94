//! [`Producer`] and [`Consumer`]: the two ends of a ring, and the index
//! protocol they run.
//!
//! Each handle owns one index and caches the other:
//!
//! - The producer owns `tail`. It writes a slot, then stores `tail + 1` with
//!   Release. It reads `head` (Acquire) only when its cached copy says the
//!   ring is full.
//! - The consumer owns `head`. Caught up, it polls the commit word of the
//!   slot it expects (Acquire), and reads `tail` only for batches and
//!   before it sleeps; it reads the slot, then stores `head + 1` with
//!   Release.
//!
//! Every value read from the mapping is checked before use: `head <= tail
//! <= head + capacity`, indices never move backwards, and a slot's length
//! is at most the payload capacity. A violation is a `Corrupt` error, never
//! an out-of-bounds access or a panic.
//!
//! The per-message path of `send`, `reserve`/`commit`, `recv` and
//! `borrow`, and of the typed handles' same four calls (a `T` that fits a
//! slot takes `reserve`'s one-slot path; a borrowed `T`'s length is checked
//! once), is `#[inline(always)]` down to the stores, and everything off
//! it (waiting, errors, multi-slot messages, re-reading the peer's index)
//! is `#[cold]` and out of line. Left to the inliner, the fast path came
//! out as calls that return their `Result` through memory in some
//! callers, and reading such a result back stalls until every store before
//! it has left the store buffer: on a busy ring, behind the stores to the
//! lines the peer is reading, a coherence round trip per message
//! (`docs/benchmarks.md`, "What the benchmark's own dispatch cost; the fast
//! path inlined").
//!
//! ```text
//! mod.rs       Holder: the claim a handle holds, its stats, peer checks
//! message.rs   Message: what a copy send takes, what a failed one hands back
//! producer.rs  Producer: copy sends (try_send, send, send_deadline, ...)
//! consumer.rs  Consumer: copy receives (try_recv, recv, recv_deadline, ...)
//! slot.rs      zero-copy and batch calls and their guards: WriteSlot,
//!              WriteBatch (producer), ReadSlot (consumer)
//! value.rs     typed messages on the plain handles: send_value,
//!              reserve_value (WriteValue), recv_value, borrow_value
//!              (ReadValue)
//! typed.rs     TypedProducer, TypedConsumer: handles for a ring of `T`s
//! ```

mod consumer;
mod message;
mod producer;
mod slot;
mod typed;
mod value;

pub use consumer::Consumer;
pub use message::Message;
pub use producer::Producer;
pub use slot::{ReadSlot, WriteBatch, WriteSlot};
pub use typed::{TypedConsumer, TypedProducer};
pub use value::{ReadValue, WriteValue, MIN_PAYLOAD_ALIGN};

use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Corruption, Error, Expected};
use crate::info::Stats;
use crate::layout::{
    Claim, ControlLine, RingRef, StatsLine, STATE_ATTACHED, STATE_CLOSED, STATE_VACANT,
};
use crate::layout::{PARKED_FUTEX, PARKED_NOTIFY};
use crate::liveness::{self, ProcessWatch};
use crate::mapping::Mapping;
use crate::notify::Notifier;
use crate::readiness::{Readiness, SetLink};
use crate::side::Side;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::sync::{barrier, Futex};
use crate::wake::{self, WaitConfig, WaitStats};
use crate::watcher::{self, Fired, Watch};

/// What a `WaitSet` (`waitset.rs`) asks of a member, the same on both kinds
/// of handle: the handle's [`Holder`] does the work; each kind supplies
/// only its holder and its own re-check.
pub(crate) trait SetMember {
    /// The handle's holder.
    fn holder(&self) -> &Holder;
    /// The same, to change.
    fn holder_mut(&mut self) -> &mut Holder;
    /// The re-check after announcing and the barrier (`check_armed`):
    /// `true` if there is still nothing to do but wait.
    fn recheck(&mut self) -> bool;

    /// Registers the notification inbox and the peer's pidfd in the set's
    /// epoll.
    fn join_set(&mut self, link: SetLink) -> Result<(), Error> {
        self.holder_mut().join_set(link)
    }
    /// Undoes `join_set` (and disarms).
    fn leave_set(&mut self) {
        self.holder_mut().leave_set();
    }
    /// Whether the last descriptor announcement still stands, so the next
    /// wait need not re-arm this member.
    fn still_armed(&self) -> bool {
        self.holder().still_armed()
    }
    /// The first half of `arm` (the set pays one heavy barrier for all its
    /// members, then calls `recheck`). Returns whether this process pays
    /// the heavy barrier.
    fn announce_wait(&mut self) -> bool {
        let h = self.holder_mut();
        let _ = h.announce();
        h.asymmetric
    }
    /// For a set sleeping in `futex_waitv`: announces a futex sleep (then
    /// the barrier and `recheck`, as above). Returns whether this process
    /// pays the heavy barrier, or `None` where such a sleep would not learn
    /// of the peer's death.
    fn announce_futex_wait(&mut self) -> Option<bool> {
        let h = self.holder_mut();
        h.announce_futex().map(|()| h.asymmetric)
    }
    /// Whether the futex announcement still stands.
    fn still_armed_futex(&self) -> bool {
        self.holder().still_armed_futex()
    }
    /// The futex word to sleep on, and its expected value.
    fn armed_word(&self) -> Option<(&Futex, u32)> {
        self.holder().armed_word()
    }
    /// Withdraws either announcement (what every call does first).
    fn disarm_member(&mut self) {
        self.holder_mut().disarm();
    }
    /// Under loom: whether the modelled notification inbox holds a
    /// notification.
    #[cfg(loom)]
    fn readiness_pending(&self) -> bool {
        self.holder().readiness_pending()
    }
}

// Counter stores are Relaxed: each counter line has a single writer, and
// readers (inspect) want a recent value, not a synchronised one.

/// How a handle is armed for a waiter outside its own blocking calls (a
/// `WaitSet`, an event loop): what its last announcement was, which its
/// next operation withdraws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Armed {
    /// Not armed (the state of a busy handle).
    No,
    /// `PARKED_NOTIFY` announced: the readiness descriptor is signalled.
    Descriptor,
    /// `PARKED_FUTEX` announced for a `WaitSet`'s `futex_waitv`, with the
    /// `event` value read before the announcement.
    Futex { event: u32 },
}

/// What a handle holds: the claim on its side, the mapping it keeps alive,
/// a process-local copy of the validated view, its stats and how it waits.
pub(crate) struct Holder {
    mapping: Arc<Mapping>,
    ring: RingRef,
    me: Claim,
    stats: Stats,
    wait: WaitConfig,
    peer: ProcessWatch,
    /// This process runs the asymmetric barrier protocol
    /// (`sync::barrier::asymmetric`), as its control line declares.
    asymmetric: bool,
    /// Which side this handle holds.
    side: Side,
    /// Signals the peer's notification inbox when it waits on a
    /// descriptor.
    notifier: Notifier,
    /// This handle's readiness descriptor, made on first use.
    readiness: Option<Readiness>,
    /// A descriptor arming was withdrawn since the inbox was last drained:
    /// the notification that ended it may still be queued.
    inbox_dirty: bool,
    /// What this handle announced for an outside waiter.
    armed: Armed,
    /// The death watcher's registration for the current peer (its claim
    /// word), so that futex sleeps need no heartbeat.
    watch: Option<(u64, Watch)>,
    /// The claim word of a peer already reported dead: blocking calls
    /// return `PeerDied` at once until another process claims its side.
    dead_peer: Option<u64>,
}

impl Holder {
    /// Claims `side` on `mapping`: a vacant or closed side, or one whose
    /// holder is dead, is taken with one compare-and-swap.
    fn claim(mapping: Arc<Mapping>, side: Side, wait: WaitConfig) -> Result<Holder, Error> {
        let ring = mapping.view;
        let hdr = ring.header();
        let (ctl, counters) = match side {
            Side::Producer => (&hdr.producer, &hdr.producer_stats),
            Side::Consumer => (&hdr.consumer, &hdr.consumer_stats),
        };
        let (pid, start) = liveness::current_cached();
        let mut me = Claim::new(STATE_ATTACHED, pid, start);
        let mut peer = ProcessWatch::default();
        // ORDERING: Acquire; pairs with the previous holder's Release claim
        // or close, so its last index store is visible to us.
        let mut cur = ctl.claim.load(Acquire);
        loop {
            let c = Claim(cur);
            match c.state() {
                STATE_VACANT | STATE_CLOSED => {}
                STATE_ATTACHED => {
                    if mapping.process_local || peer.is_alive(c) {
                        return Err(Error::AlreadyClaimed {
                            address: mapping.label.clone(),
                            side,
                            pid: c.pid(),
                        });
                    }
                }
                state => {
                    return Err(Error::Corrupt {
                        address: mapping.label.clone(),
                        corruption: Corruption {
                            field: "claim state",
                            found: state,
                            expected: Expected::Range { min: 0, max: 2 },
                        },
                    })
                }
            }
            // ORDERING: AcqRel. Acquire as above; Release publishes the
            // claim to the peer's liveness checks and to other claimers.
            let mine = me.next_generation_after(c);
            match ctl.claim.compare_exchange(cur, mine.0, AcqRel, Acquire) {
                Ok(_) => {
                    me = mine;
                    break;
                }
                Err(now) => cur = now,
            }
        }
        ctl.parked.store(0, Relaxed);
        let asymmetric = barrier::asymmetric();
        if !mapping.process_local {
            watcher::start();
        }
        // Relaxed: a mode the peer reads on every publish to us. A publisher
        // that still sees the previous holder's mode for a moment is covered
        // by the heartbeat bound on every sleep (design.md §7).
        ctl.needs_fence.store(u32::from(!asymmetric), Relaxed);
        let notifier = Notifier::new(mapping.segment.writable_by_owner_only());
        let mut holder = Holder {
            stats: Stats::load(counters),
            mapping,
            ring,
            me,
            wait,
            peer: ProcessWatch::default(),
            asymmetric,
            side,
            notifier,
            readiness: None,
            inbox_dirty: false,
            armed: Armed::No,
            watch: None,
            dead_peer: None,
        };
        // Wake a peer waiting for this side to be claimed
        // (`wait_for_producer`, `wait_for_consumer`).
        let peer_line = match side {
            Side::Producer => &hdr.consumer,
            Side::Consumer => &hdr.producer,
        };
        holder.wake_peer(peer_line);
        // The one-time setup of a sleep, done now rather than in the first
        // wait when the peer is already here: its pidfd, verified, in the
        // death watcher (a peer that claims later is watched at our first
        // sleep after it came).
        if !holder.mapping.process_local {
            let _ = holder.watch_peer_death();
        }
        Ok(holder)
    }

    /// Gives the claim up as closed and wakes the peer so that it notices.
    fn close(&mut self, own: &ControlLine, peer: &ControlLine) {
        let closed = self.me.with_state(STATE_CLOSED);
        // ORDERING: Release; pairs with the peer's Acquire claim load, so
        // every index store made before closing is visible once the peer
        // sees CLOSED. A failed exchange means our claim was taken over
        // (we were judged dead): leave the new holder's claim alone.
        if own
            .claim
            .compare_exchange(self.me.0, closed.0, Release, Relaxed)
            .is_ok()
        {
            own.parked.store(0, Relaxed);
            self.wake_peer(peer);
        }
    }

    /// The peer's claim and whether it is alive; `None` when the peer side
    /// is vacant or closed.
    fn peer_status(&mut self, peer: &ControlLine) -> Option<(u32, bool)> {
        // Relaxed: only the identity is needed. Whether the process lives
        // comes from the OS, and once it is dead every store it made is
        // visible (its exit is a full barrier); the caller then reads the
        // indices with their own Acquire.
        let c = Claim(peer.claim.load(Relaxed));
        if c.state() != STATE_ATTACHED {
            return None;
        }
        let alive = self.mapping.process_local || self.peer.is_alive(c);
        Some((c.pid(), alive))
    }

    /// Process id of the process holding the side whose control line is
    /// `peer`, if any.
    fn peer_pid(&self, peer: &ControlLine) -> Option<u32> {
        // Relaxed: an identity to show; nothing is read on its strength.
        let c = Claim(peer.claim.load(Relaxed));
        (c.state() == STATE_ATTACHED).then(|| c.pid())
    }

    fn add_wait_stats(&mut self, counts: WaitStats, own: &StatsLine) {
        if counts.spins > 0 {
            self.stats.spin_rounds = self.stats.spin_rounds.wrapping_add(counts.spins);
            own.spin_rounds.store(self.stats.spin_rounds, Relaxed);
        }
        // `wake::block` already published each futex wait and timeout as it
        // happened.
        self.stats.futex_waits = self.stats.futex_waits.wrapping_add(counts.futex_waits);
        self.stats.wait_timeouts = self.stats.wait_timeouts.wrapping_add(counts.timeouts);
    }

    /// Counts a call that found the ring empty (full), and empties the
    /// inbox an earlier descriptor wake-up left (see `disarm_slow`).
    fn count_stall(&mut self, own: &StatsLine) {
        self.stats.stalls = self.stats.stalls.wrapping_add(1);
        own.stalls.store(self.stats.stalls, Relaxed);
        self.drain_inbox();
    }

    /// Consumes the notifications in the inbox, if a wake-up may have left
    /// one there.
    #[inline]
    fn drain_inbox(&mut self) {
        if self.inbox_dirty {
            self.drain_inbox_slow();
        }
    }

    #[cold]
    fn drain_inbox_slow(&mut self) {
        if let Some(r) = self.readiness.as_ref() {
            r.drain();
        }
        self.inbox_dirty = false;
    }

    fn count_wake(&mut self, own: &StatsLine) {
        self.stats.futex_wakes = self.stats.futex_wakes.wrapping_add(1);
        own.futex_wakes.store(self.stats.futex_wakes, Relaxed);
    }

    /// After an index store: wakes the peer however it waits (nothing at
    /// all while it is busy). Returns whether it was asleep on its futex.
    #[inline(always)]
    fn wake_peer(&mut self, peer: &ControlLine) -> bool {
        wake::notify_any(peer, self.asymmetric, &mut self.notifier)
    }

    /// This side's control line and the peer's.
    fn lines(&self) -> (&ControlLine, &ControlLine) {
        let hdr = self.mapping.view.header();
        match self.side {
            Side::Producer => (&hdr.producer, &hdr.consumer),
            Side::Consumer => (&hdr.consumer, &hdr.producer),
        }
    }

    /// The readiness descriptor, made (and its name published) on first
    /// use.
    fn readiness(&mut self) -> Result<&mut Readiness, Error> {
        if self.readiness.is_none() {
            let r = Readiness::new()
                .map_err(|e| Error::from_errno("pipe2/socket", &self.mapping.label, e))?;
            let (own, _) = self.lines();
            let (pipe, pipe_ino) = r.pipe_id();
            // Relaxed: published by the Release store below. (The loom
            // model has no pipe and reads neither.)
            if !cfg!(loom) {
                own.notify_pipe.store(pipe, Relaxed);
                own.notify_pipe_ino.store(pipe_ino, Relaxed);
            }
            // ORDERING: Release; pairs with the Acquire load in
            // `notify::Address::read` (also ordered by the `parked` bit's
            // Release), publishing the pipe's names too.
            own.notify_id.store(r.id(), Release);
            self.readiness = Some(r);
        }
        Ok(self.readiness.as_mut().expect("made above"))
    }

    /// The readiness descriptor itself (`readiness_fd`).
    fn readiness_fd(&mut self) -> Result<BorrowedFd<'_>, Error> {
        let label = self.mapping.label.clone();
        self.readiness()?
            .fd()
            .map_err(|e| Error::from_errno("epoll_create", &label, e))
    }

    /// Registers the notification inbox and the peer's pidfd in a
    /// `WaitSet`'s epoll (`readiness.rs`), making the inbox first.
    fn join_set(&mut self, link: SetLink) -> Result<(), Error> {
        let label = self.mapping.label.clone();
        self.readiness()?;
        // The peer's pidfd goes in now rather than at the first wait.
        self.watch_peer_pidfd();
        self.readiness()?
            .join(link)
            .map_err(|e| Error::from_errno("epoll_ctl", &label, e))
    }

    /// Takes the descriptors out of the `WaitSet`'s epoll, and disarms.
    fn leave_set(&mut self) {
        self.disarm();
        if let Some(r) = self.readiness.as_mut() {
            r.leave();
        }
    }

    /// Whether this handle's last `announce` still stands: no call
    /// disarmed it since. A `WaitSet` re-arms only members for which this
    /// is false. A publisher may have consumed the announcement (cleared
    /// `PARKED_NOTIFY` as it wrote its byte): the byte stays queued, the
    /// inbox readable, until the next `announce` drains it, so the set's
    /// epoll reports the member without a re-arm (and without the heavy
    /// barrier a re-arm costs).
    fn still_armed(&self) -> bool {
        self.armed == Armed::Descriptor
    }

    /// For a `WaitSet` sleeping in `futex_waitv`: whether this handle's
    /// `PARKED_FUTEX` announcement stands: the bit is still set (no
    /// publisher consumed it to wake us) and `event` holds the value read
    /// before announcing (no waker bumped it: a publisher, the death
    /// watcher). Then nothing happened to the handle since its re-check,
    /// and the set can sleep on its word again without re-arming it.
    fn still_armed_futex(&self) -> bool {
        let Armed::Futex { event } = self.armed else {
            return false;
        };
        let (own, _) = self.lines();
        // Relaxed: a hint that saves a re-arm. A publish racing these loads
        // has already bumped `event`, or will after its `fetch_and`, and
        // either makes `futex_waitv` on `event` return.
        own.parked.load(Relaxed) & PARKED_FUTEX != 0 && own.event.load(Relaxed) == event
    }

    /// For a `WaitSet`: announces a futex sleep (W1-W2 of the futex
    /// protocol, `wake::block`): reads `event`, sets `PARKED_FUTEX`. The
    /// set then pays the heavy barrier for all its members and re-checks
    /// each. Returns `None`, announcing nothing, where a futex sleep
    /// without a heartbeat would not learn of the peer's death (no death
    /// watcher: symmetric mode, no pidfd); the set then waits on
    /// descriptors, whose epoll holds the peer's pidfd.
    fn announce_futex(&mut self) -> Option<()> {
        let (_, peer) = self.lines();
        // Relaxed: only the identity is needed, as in `peer_status`.
        let attached = Claim(peer.claim.load(Relaxed)).state() == STATE_ATTACHED;
        // A vacant side has nobody to die; the process that claims it wakes
        // us (`Holder::claim`), and the re-arm after that wake watches it.
        if attached && !self.mapping.process_local && self.watch_peer_death().is_none() {
            return None;
        }
        if self.armed != Armed::No {
            self.disarm_slow();
        }
        let (own, _) = self.lines();
        // ORDERING: Acquire; pairs with the Release bump in `wake::wake` (and
        // the watcher's), as in `wake::block`: read before announcing, so a
        // bump after this read makes `futex_waitv` return at once.
        let event = own.event.load(Acquire);
        own.parked.fetch_or(PARKED_FUTEX, Relaxed);
        self.armed = Armed::Futex { event };
        Some(())
    }

    /// The futex word and expected value a `WaitSet` sleeps on for this
    /// handle, while it is futex-armed.
    fn armed_word(&self) -> Option<(&Futex, u32)> {
        match self.armed {
            // The deliberate bug loom must catch (`.ci/run`): the expected
            // value read at the sleep rather than before the announcement,
            // so a wake between the re-check and the sleep is lost.
            Armed::Futex { event } if !cfg!(shmpipe_bug = "waitv_late_expected") => {
                Some((&self.lines().0.event, event))
            }
            Armed::Futex { .. } => {
                let own = self.lines().0;
                Some((&own.event, own.event.load(Relaxed)))
            }
            _ => None,
        }
    }

    /// Under loom: sleeps until the modelled notification inbox holds a
    /// notification (what `poll` on the readiness descriptor does).
    #[cfg(loom)]
    fn wait_readiness(&mut self) {
        let r = self.readiness.as_ref();
        crate::notify::wait_until(|| r.map_or(true, |r| r.pending()));
    }

    /// Under loom: whether the modelled inbox holds a notification.
    #[cfg(loom)]
    fn readiness_pending(&self) -> bool {
        self.readiness.as_ref().is_some_and(|r| r.pending())
    }

    /// Registers the verified peer's pidfd with the readiness state, if
    /// there is one (socket made) and the peer lives.
    fn watch_peer_pidfd(&mut self) {
        let (_, peer) = self.lines();
        // Relaxed: only the identity is needed (liveness comes from the OS).
        let c = Claim(peer.claim.load(Relaxed));
        if c.state() == STATE_ATTACHED && !self.mapping.process_local && self.peer.is_alive(c) {
            if let (Some(fd), Some(r)) = (self.peer.pidfd(c), self.readiness.as_mut()) {
                r.watch_peer(c.0, fd);
            }
        }
    }

    /// First half of arming the descriptor: consumes the notifications
    /// received since the last arming, sets `PARKED_NOTIFY` and adds the
    /// peer's pidfd to the descriptor. The caller then pays the heavy
    /// barrier (`barrier::waiter`) and re-checks the ring before waiting.
    ///
    /// The drain (W'0) is here or at the first call that finds nothing to
    /// do (`count_stall`), rather than in `disarm`: a wake-up's call reads
    /// its message without first emptying the inbox (one or two system
    /// calls off the wake-up's path). Whatever it drains was sent for an
    /// earlier announcement (a publisher signals only after it saw the bit
    /// set, and the bit is set after the drain), and the re-check after the
    /// barrier sees anything published before the announcement.
    fn announce(&mut self) -> Result<(), Error> {
        self.readiness()?;
        self.drain_inbox();
        self.watch_peer_pidfd();
        let (own, _) = self.lines();
        // ORDERING: Release; pairs with the Acquire load in the publisher's
        // `signal_descriptor`, publishing `notify_id`.
        own.parked.fetch_or(PARKED_NOTIFY, Release);
        if self.armed != Armed::No {
            // A futex announcement made for a `WaitSet` (which now waits on
            // descriptors): withdrawn.
            own.parked.fetch_and(!PARKED_FUTEX, Relaxed);
        }
        self.armed = Armed::Descriptor;
        Ok(())
    }

    /// Undoes `announce` (or `announce_futex`) and consumes the
    /// notifications received, if armed. Called first by every operation,
    /// so a busy side is never signalled.
    #[inline(always)]
    fn disarm(&mut self) {
        if self.armed != Armed::No {
            self.disarm_slow();
        }
    }

    #[cold]
    fn disarm_slow(&mut self) {
        let (own, _) = self.lines();
        match self.armed {
            Armed::No => {}
            // The notification that woke us, if any, stays in the inbox
            // until this call or a later one finds nothing to do, or the
            // next `announce`: then it is drained.
            Armed::Descriptor => {
                own.parked.fetch_and(!PARKED_NOTIFY, Relaxed);
                self.inbox_dirty = true;
            }
            // A publisher that consumed the bit has woken a sleeper that is
            // awake now: nothing to drain.
            Armed::Futex { .. } => {
                own.parked.fetch_and(!PARKED_FUTEX, Relaxed);
            }
        }
        self.armed = Armed::No;
    }

    /// Whether a futex sleep may go without a heartbeat: the death watcher
    /// covers the peer, and both sides run the asymmetric protocol. Returns
    /// the watch's "the peer died" flag to poll.
    fn watch_peer_death(&mut self) -> Option<Fired> {
        let (_, peer) = self.lines();
        // Relaxed: a mode flag and an identity; see `wake::notify`.
        let c = Claim(peer.claim.load(Relaxed));
        let peer_fences = peer.needs_fence.load(Relaxed) != 0;
        if !self.asymmetric
            || peer_fences
            || c.state() != STATE_ATTACHED
            || self.mapping.process_local
        {
            return None;
        }
        if self.watch.as_ref().is_some_and(|(w, _)| *w == c.0) {
            return self.watch.as_ref().map(|(_, w)| w.fired());
        }
        self.watch = None;
        if !self.peer.is_alive(c) {
            return None;
        }
        let fd = self.peer.pidfd(c)?;
        let w = watcher::watch(fd, &self.mapping, self.side)?;
        let fired = w.fired();
        self.watch = Some((c.0, w));
        Some(fired)
    }

    /// The pid of a peer already reported dead that still holds its side.
    fn known_dead_peer(&self) -> Option<u32> {
        let (_, peer) = self.lines();
        // Relaxed: compared with a claim word read before.
        let c = peer.claim.load(Relaxed);
        (self.dead_peer == Some(c)).then(|| Claim(c).pid())
    }

    /// Remembers that the peer holding its side now was reported dead.
    fn mark_peer_dead(&mut self) {
        let (_, peer) = self.lines();
        // Relaxed: as in `known_dead_peer`.
        self.dead_peer = Some(peer.claim.load(Relaxed));
    }
}

/// Checks `head <= tail <= head + capacity` for indices read from the peer.
fn check_indices(head: u64, tail: u64, capacity: u64) -> bool {
    head <= tail && tail - head <= capacity && tail <= MAX_POSITION
}

/// No ring reaches this many messages (146 years at 10^9 per second), so a
/// larger position in the mapping is corruption; bounding positions here
/// keeps every local increment of them from overflowing.
const MAX_POSITION: u64 = 1 << 62;

fn deadline_after(timeout: Duration) -> Option<Instant> {
    // A timeout too large to represent waits forever.
    Instant::now().checked_add(timeout)
}
