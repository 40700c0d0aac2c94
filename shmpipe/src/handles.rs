//! [`Producer`] and [`Consumer`]: the two ends of a ring, and the index
//! protocol they run.
//!
//! Each handle owns one index and caches the other:
//!
//! - The producer owns `tail`. It writes a slot, then stores `tail + 1` with
//!   Release. It reads `head` (Acquire) only when its cached copy says the
//!   ring is full.
//! - The consumer owns `head`. It reads `tail` (Acquire) only when its
//!   cached copy says the ring is empty, reads the slot, then stores
//!   `head + 1` with Release.
//!
//! Every value read from the mapping is checked before use: `head <= tail
//! <= head + capacity`, indices never move backwards, and a slot's length
//! is at most the payload capacity. A violation is a `Corrupt` error, never
//! an out-of-bounds access or a panic.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr;
use std::slice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::builder::Shared;
use crate::error::{
    Corruption, Error, Expected, RecvError, Role, SendError, TryRecvError, TrySendError,
};
use crate::peer::{self, PeerWatch};
use crate::ring::layout::{Claim, Control, Counters, STATE_ATTACHED, STATE_CLOSED, STATE_VACANT};
use crate::ring::RingRef;
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed, Release};
use crate::wake::{self, WaitConfig, WaitCounts, WaitStrategy};

/// Counters kept by one side of a ring, also visible to other processes
/// through [`Ring::info`](crate::Ring::info).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages sent (producer) or received (consumer).
    pub messages: u64,
    /// Payload bytes sent or received.
    pub bytes: u64,
    /// Operations that found the ring full (producer) or empty (consumer).
    pub stalls: u64,
    /// Times this side slept on its futex.
    pub futex_waits: u64,
    /// Times this side woke its parked peer.
    pub futex_wakes: u64,
    /// Spin iterations spent waiting before parking.
    pub spin_rounds: u64,
}

impl Stats {
    pub(crate) fn load(c: &Counters) -> Stats {
        Stats {
            messages: c.messages.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            stalls: c.stalls.load(Relaxed),
            futex_waits: c.futex_waits.load(Relaxed),
            futex_wakes: c.futex_wakes.load(Relaxed),
            spin_rounds: c.spin_rounds.load(Relaxed),
        }
    }
}

// Counter stores are Relaxed: each counter line has a single writer, and
// readers (inspect) want a recent value, not a synchronised one.

/// What the holder of a side needs in order to take part: the shared ring,
/// the process-local geometry and the claim it holds.
struct Side {
    shared: Arc<Shared>,
    ring: RingRef,
    me: Claim,
    stats: Stats,
    wait: WaitConfig,
    peer: PeerWatch,
}

impl Side {
    /// Claims `role` on `shared`: a vacant or closed side, or one whose
    /// holder is dead, is taken with one compare-and-swap.
    fn claim(shared: Arc<Shared>, role: Role, wait: WaitConfig) -> Result<Side, Error> {
        let ring = shared.ring;
        let hdr = ring.header();
        let (ctl, counters) = match role {
            Role::Producer => (&hdr.producer, &hdr.producer_stats),
            Role::Consumer => (&hdr.consumer, &hdr.consumer_stats),
        };
        let (pid, start) = peer::current_cached();
        let mut me = Claim::new(STATE_ATTACHED, pid, start);
        let mut peer = PeerWatch::default();
        // ORDERING: Acquire; pairs with the previous holder's Release claim
        // or close, so its last index store is visible to us.
        let mut cur = ctl.claim.load(Acquire);
        loop {
            let c = Claim(cur);
            match c.state() {
                STATE_VACANT | STATE_CLOSED => {}
                STATE_ATTACHED => {
                    if shared.process_local || peer.is_alive(c) {
                        return Err(Error::AlreadyClaimed {
                            address: shared.label.clone(),
                            role,
                            pid: c.pid(),
                        });
                    }
                }
                state => {
                    return Err(Error::Corrupt {
                        address: shared.label.clone(),
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
        Ok(Side {
            stats: Stats::load(counters),
            shared,
            ring,
            me,
            wait,
            peer: PeerWatch::default(),
        })
    }

    /// Gives the claim up as closed and wakes the peer so that it notices.
    fn close(&mut self, own: &Control, peer: &Control) {
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
            wake::notify(peer);
        }
    }

    /// The peer's claim and whether it is alive; `None` when the peer side
    /// is vacant or closed.
    fn peer_status(&mut self, peer: &Control) -> Option<(u32, bool)> {
        // Relaxed: only the identity is needed. Whether the process lives
        // comes from the OS, and once it is dead every store it made is
        // visible (its exit is a full barrier); the caller then reads the
        // indices with their own Acquire.
        let c = Claim(peer.claim.load(Relaxed));
        if c.state() != STATE_ATTACHED {
            return None;
        }
        let alive = self.shared.process_local || self.peer.is_alive(c);
        Some((c.pid(), alive))
    }

    fn add_wait_counts(&mut self, counts: WaitCounts, own: &Counters) {
        if counts.spins > 0 {
            self.stats.spin_rounds = self.stats.spin_rounds.wrapping_add(counts.spins);
            own.spin_rounds.store(self.stats.spin_rounds, Relaxed);
        }
        // `wake::block` already published each futex wait as it happened.
        self.stats.futex_waits = self.stats.futex_waits.wrapping_add(counts.futex_waits);
    }

    fn count_stall(&mut self, own: &Counters) {
        self.stats.stalls = self.stats.stalls.wrapping_add(1);
        own.stalls.store(self.stats.stalls, Relaxed);
    }

    fn count_wake(&mut self, own: &Counters) {
        self.stats.futex_wakes = self.stats.futex_wakes.wrapping_add(1);
        own.futex_wakes.store(self.stats.futex_wakes, Relaxed);
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

/// Accessors both handles share. `$peer` is the other side's control line
/// in the header; `$peer_name` names it in the docs.
macro_rules! side_accessors {
    ($peer:ident, $peer_name:literal) => {
        /// Number of slots in the ring.
        pub fn capacity(&self) -> usize {
            self.side.ring.capacity() as usize
        }

        /// Largest message, in bytes.
        pub fn max_message(&self) -> usize {
            self.side.ring.payload_capacity()
        }

        /// Whether no message is waiting.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Whether every slot holds a message.
        pub fn is_full(&self) -> bool {
            self.len() == self.capacity()
        }

        /// This side's counters.
        pub fn stats(&self) -> Stats {
            self.side.stats
        }

        /// How blocking calls wait.
        pub fn wait_strategy(&self) -> WaitStrategy {
            self.side.wait.strategy
        }

        /// Sets how blocking calls wait.
        pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
            self.side.wait.strategy = strategy;
        }

        #[doc = concat!(
                                    "Sets how often a blocked call checks that the ", $peer_name,
                                    " is alive (default 100 ms): a dead ", $peer_name,
                                    " is reported within about this long."
                                )]
        pub fn set_heartbeat(&mut self, interval: Duration) {
            self.side.wait.heartbeat = interval.max(Duration::from_millis(1));
        }

        #[doc = concat!("Whether a ", $peer_name, " holds the ring and its process is alive.")]
        pub fn peer_alive(&mut self) -> bool {
            let ring = self.side.ring;
            matches!(self.side.peer_status(&ring.header().$peer), Some((_, true)))
        }

        #[doc = concat!("Process id of the ", $peer_name, " holding the ring, if any.")]
        pub fn peer_pid(&self) -> Option<u32> {
            let ring = self.side.ring;
            let c = Claim(ring.header().$peer.claim.load(Relaxed));
            (c.state() == STATE_ATTACHED).then(|| c.pid())
        }
    };
}

// ---------------------------------------------------------------------------
// Producer
// ---------------------------------------------------------------------------

/// The writing end of a ring. One per ring at a time, enforced through the
/// shared header; `Send`, not `Clone`.
///
/// Dropping it closes the ring for writing: the consumer receives every
/// message already committed, then [`RecvError::Disconnected`].
///
/// # Examples
///
/// ```
/// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
/// let mut tx = ring.producer()?;
/// let mut rx = ring.consumer()?;
/// tx.try_send(b"hello")?;
/// let mut buf = [0u8; 64];
/// let n = rx.try_recv(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A second handle cannot be made by cloning:
///
/// ```compile_fail
/// fn second(p: &shmpipe::Producer) -> shmpipe::Producer {
///     p.clone()
/// }
/// ```
pub struct Producer {
    side: Side,
    /// Next position to write; `0..tail` are committed.
    tail: u64,
    /// The consumer's `head` as last read.
    head_cache: u64,
    /// The consumer's claim word when this producer attached: only a
    /// consumer that closes *after* that disconnects us (one that left
    /// before is like none: messages wait for the next consumer).
    consumer_at_attach: u64,
}

// SAFETY: the handle owns its claim; the raw pointers in `RingRef` point into
// the segment kept alive by the `Arc<Shared>` it holds, and every shared
// access is atomic or ordered by the index protocol.
unsafe impl Send for Producer {}
// SAFETY: `&Producer` only reads atomics (len, capacity, stats).
unsafe impl Sync for Producer {}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("ring", &self.side.shared.label)
            .field("tail", &self.tail)
            .field("capacity", &self.side.ring.capacity())
            .finish_non_exhaustive()
    }
}

impl Producer {
    pub(crate) fn new(shared: Arc<Shared>, wait: WaitConfig) -> Result<Producer, Error> {
        let side = Side::claim(shared, Role::Producer, wait)?;
        let hdr = side.ring.header();
        // ORDERING: Acquire on both: `tail` may have been stored by a
        // previous producer, `head` by the consumer; either way we only need
        // their latest values, which the claim's Acquire already ordered.
        let tail = hdr.tail.load(Acquire);
        let head = hdr.head.load(Acquire);
        let consumer_at_attach = hdr.consumer.claim.load(Acquire);
        let p = Producer {
            side,
            tail,
            head_cache: head,
            consumer_at_attach,
        };
        if !check_indices(head, tail, p.side.ring.capacity()) {
            let corruption = Corruption {
                field: "tail",
                found: tail,
                expected: Expected::Range {
                    min: head,
                    max: head.saturating_add(p.side.ring.capacity()),
                },
            };
            let address = p.side.shared.label.clone();
            drop(p); // releases the claim
            return Err(Error::Corrupt {
                address,
                corruption,
            });
        }
        Ok(p)
    }

    /// The ring position the next message will take: the number of
    /// messages ever committed to this ring, by this producer and the ones
    /// before it. A producer that takes over a ring resumes here, so
    /// numbering messages by position makes a resumed stream gap-free.
    pub fn position(&self) -> u64 {
        self.tail
    }

    /// Messages committed and not yet released by the consumer.
    pub fn len(&self) -> usize {
        let head = self.side.ring.header().head.load(Relaxed);
        (self.tail.saturating_sub(head)).min(self.side.ring.capacity()) as usize
    }

    side_accessors!(consumer, "consumer");

    /// Makes sure at least `want` slots are free (fewer is fine if at least
    /// one is), reading the consumer's `head` only if the cache says there
    /// are not enough. Returns the number of free slots.
    #[inline]
    fn free_slots(&mut self, want: u64) -> Result<u64, TrySendError<()>> {
        let ring = self.side.ring;
        let hdr = ring.header();
        // The consumer's claim shares its line with state written only on
        // claim, close and park, so this load is a cache hit.
        let consumer = hdr.consumer.claim.load(Relaxed);
        if consumer != self.consumer_at_attach && Claim(consumer).state() == STATE_CLOSED {
            return Err(TrySendError::Disconnected(()));
        }
        let cap = self.side.ring.capacity();
        let free = cap - (self.tail - self.head_cache);
        if free >= want {
            return Ok(free);
        }
        // ORDERING: Acquire; pairs with the Release `head` store in
        // `Consumer::release`: the consumer's reads of the slots it released
        // happen before we overwrite them.
        let head = hdr.head.load(Acquire);
        if head < self.head_cache || !check_indices(head, self.tail, cap) {
            return Err(TrySendError::Corrupt {
                msg: (),
                corruption: Corruption {
                    field: "head",
                    found: head,
                    expected: Expected::Range {
                        min: self.head_cache.max(self.tail.saturating_sub(cap)),
                        max: self.tail,
                    },
                },
            });
        }
        self.head_cache = head;
        let free = cap - (self.tail - head);
        if free == 0 {
            return Err(TrySendError::Full(()));
        }
        Ok(free)
    }

    /// Like `free_slots`, counting a stall when the ring is full.
    #[inline]
    fn reserve_check(&mut self, want: u64) -> Result<u64, TrySendError<()>> {
        let r = self.free_slots(want);
        if let Err(TrySendError::Full(())) = r {
            let ring = self.side.ring;
            let hdr = ring.header();
            self.side.count_stall(&hdr.producer_stats);
        }
        r
    }

    /// Writes `msg` into the slot for `pos` (which the producer owns).
    #[inline]
    fn write_slot(&self, pos: u64, msg: &[u8]) {
        let ring = self.side.ring;
        debug_assert!(msg.len() <= ring.payload_capacity());
        self.side.shared.tracker.write(ring.slot_index(pos), || {
            // SAFETY: `pos` is in `tail..head + capacity` (checked by
            // `free_slots`), so the consumer does not touch this slot until
            // `tail` passes it; `msg.len() <= payload_capacity`.
            unsafe {
                ptr::copy_nonoverlapping(msg.as_ptr(), ring.payload_ptr(pos), msg.len());
                ring.write_len(pos, msg.len() as u32);
            }
        });
    }

    /// Publishes `n` written slots holding `bytes` bytes in all.
    #[inline]
    fn publish(&mut self, n: u64, bytes: u64) {
        let ring = self.side.ring;
        let hdr = ring.header();
        self.tail += n;
        // ORDERING: Release; pairs with the Acquire `tail` load in
        // `Consumer::available`, publishing the slot writes above.
        hdr.tail.store(self.tail, Release);
        // Counters started from values in the mapping: wrap, never panic.
        self.side.stats.messages = self.side.stats.messages.wrapping_add(n);
        self.side.stats.bytes = self.side.stats.bytes.wrapping_add(bytes);
        hdr.producer_stats
            .messages
            .store(self.side.stats.messages, Relaxed);
        hdr.producer_stats
            .bytes
            .store(self.side.stats.bytes, Relaxed);
        if wake::notify(&hdr.consumer) {
            self.side.count_wake(&hdr.producer_stats);
        }
    }

    /// Sends a message if a slot is free, without blocking.
    ///
    /// # Errors
    ///
    /// The message comes back inside the error: [`TrySendError::Full`],
    /// [`TrySendError::Disconnected`] (the consumer dropped its handle),
    /// [`TrySendError::TooLarge`] (never truncated) or
    /// [`TrySendError::Corrupt`].
    #[inline]
    pub fn try_send<M: AsRef<[u8]>>(&mut self, msg: M) -> Result<(), TrySendError<M>> {
        let bytes = msg.as_ref();
        let max = self.side.ring.payload_capacity();
        if bytes.len() > max {
            return Err(TrySendError::TooLarge { msg, max });
        }
        if let Err(e) = self.reserve_check(1) {
            return Err(e.map(|()| msg));
        }
        let len = bytes.len();
        self.write_slot(self.tail, bytes);
        self.publish(1, len as u64);
        Ok(())
    }

    /// Sends a message, waiting as long as it takes for a free slot.
    ///
    /// # Errors
    ///
    /// As [`send_deadline`](Self::send_deadline), never `Timeout`.
    pub fn send<M: AsRef<[u8]>>(&mut self, msg: M) -> Result<(), SendError<M>> {
        self.send_until(msg, None)
    }

    /// Sends a message, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    ///
    /// As [`send_deadline`](Self::send_deadline).
    pub fn send_timeout<M: AsRef<[u8]>>(
        &mut self,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendError<M>> {
        self.send_until(msg, deadline_after(timeout))
    }

    /// Sends a message, waiting until `deadline` (monotonic clock) for a
    /// free slot. A deadline in the past tries once and returns.
    ///
    /// # Errors
    ///
    /// The message comes back inside the error: [`SendError::Timeout`],
    /// [`SendError::Disconnected`], [`SendError::PeerDied`] (the consumer's
    /// process died; noticed within the heartbeat interval),
    /// [`SendError::TooLarge`] or [`SendError::Corrupt`].
    pub fn send_deadline<M: AsRef<[u8]>>(
        &mut self,
        msg: M,
        deadline: Instant,
    ) -> Result<(), SendError<M>> {
        self.send_until(msg, Some(deadline))
    }

    fn send_until<M: AsRef<[u8]>>(
        &mut self,
        msg: M,
        deadline: Option<Instant>,
    ) -> Result<(), SendError<M>> {
        let mut msg = msg;
        loop {
            match self.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(m)) => msg = m,
                Err(e) => return Err(e.into()),
            }
            if let Err(e) = self.wait_writable(1, deadline) {
                return Err(e.map(|()| msg));
            }
        }
    }

    /// Blocks until at least one slot is free (`Ok`), or fails.
    fn wait_writable(&mut self, want: u64, deadline: Option<Instant>) -> Result<(), SendError<()>> {
        let ring = self.side.ring;
        let hdr = ring.header();
        let cfg = self.side.wait;
        let mut counts = WaitCounts::default();
        let r = wake::block(
            &hdr.producer,
            &hdr.producer_stats,
            &cfg,
            deadline,
            &mut counts,
            |check_peer| match self.free_slots(want) {
                Ok(_) => Some(Ok(())),
                Err(TrySendError::Full(())) => {
                    if check_peer {
                        if let Some((pid, false)) = self.side.peer_status(&hdr.consumer) {
                            return Some(Err(SendError::PeerDied { msg: (), pid }));
                        }
                    }
                    None
                }
                Err(e) => Some(Err(e.into())),
            },
        );
        self.side.add_wait_counts(counts, &hdr.producer_stats);
        r.unwrap_or(Err(SendError::Timeout(())))
    }

    /// Reserves the next slot for writing in place, without blocking.
    /// Write into the returned [`WriteSlot`] and
    /// [`commit`](WriteSlot::commit) a length; dropping it publishes
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], [`TrySendError::Disconnected`] or
    /// [`TrySendError::Corrupt`], holding `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut slot = tx.try_reserve()?;
    /// slot[..3].copy_from_slice(b"abc");
    /// slot.commit(3);
    /// assert_eq!(&*rx.try_borrow()?, b"abc");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_reserve(&mut self) -> Result<WriteSlot<'_>, TrySendError<()>> {
        self.reserve_check(1)?;
        Ok(WriteSlot::new(self))
    }

    /// Reserves the next slot, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`reserve_deadline`](Self::reserve_deadline), never `Timeout`.
    pub fn reserve(&mut self) -> Result<WriteSlot<'_>, SendError<()>> {
        self.reserve_until(None)
    }

    /// Reserves the next slot, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`reserve_deadline`](Self::reserve_deadline).
    pub fn reserve_timeout(&mut self, timeout: Duration) -> Result<WriteSlot<'_>, SendError<()>> {
        self.reserve_until(deadline_after(timeout))
    }

    /// Reserves the next slot, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// [`SendError::Timeout`], [`SendError::Disconnected`],
    /// [`SendError::PeerDied`] or [`SendError::Corrupt`], holding `()`.
    pub fn reserve_deadline(&mut self, deadline: Instant) -> Result<WriteSlot<'_>, SendError<()>> {
        self.reserve_until(Some(deadline))
    }

    fn reserve_until(&mut self, deadline: Option<Instant>) -> Result<WriteSlot<'_>, SendError<()>> {
        match self.reserve_check(1) {
            Ok(_) => {}
            Err(TrySendError::Full(())) => self.wait_writable(1, deadline)?,
            Err(e) => return Err(e.into()),
        }
        // `wait_writable` returned Ok: a slot is free and only this handle
        // can fill it, but the consumer may have closed meanwhile.
        self.free_slots(1).map_err(SendError::from)?;
        Ok(WriteSlot::new(self))
    }

    /// Reserves up to `max` free slots at once, without blocking. Fill them
    /// with [`WriteBatch::push`] or [`WriteBatch::push_with`] and
    /// [`commit`](WriteBatch::commit) to publish them all with one index
    /// store (and at most one wakeup).
    ///
    /// # Errors
    ///
    /// As [`try_reserve`](Self::try_reserve); `Full` only when no slot at
    /// all is free.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new().slots(8).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut batch = tx.try_reserve_batch(16)?;
    /// assert_eq!(batch.capacity(), 8);
    /// batch.push(b"one")?;
    /// batch.push(b"two")?;
    /// assert_eq!(batch.commit(), 2);
    /// let mut got = Vec::new();
    /// rx.try_recv_batch(10, |m| got.push(m.to_vec()))?;
    /// assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_reserve_batch(&mut self, max: usize) -> Result<WriteBatch<'_>, TrySendError<()>> {
        let want = (max.max(1) as u64).min(self.side.ring.capacity());
        let free = self.reserve_check(want)?;
        Ok(WriteBatch::new(self, free.min(want)))
    }

    /// Reserves up to `max` slots, waiting until at least one is free or
    /// `deadline` passes (`None`: wait as long as it takes).
    ///
    /// # Errors
    ///
    /// As [`reserve_deadline`](Self::reserve_deadline).
    pub fn reserve_batch_deadline(
        &mut self,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteBatch<'_>, SendError<()>> {
        let want = (max.max(1) as u64).min(self.side.ring.capacity());
        let free = match self.reserve_check(want) {
            Ok(free) => free,
            Err(TrySendError::Full(())) => {
                self.wait_writable(1, deadline)?;
                self.free_slots(want).map_err(SendError::from)?
            }
            Err(e) => return Err(e.into()),
        };
        Ok(WriteBatch::new(self, free.min(want)))
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let ring = self.side.ring;
        let hdr = ring.header();
        self.side.close(&hdr.producer, &hdr.consumer);
    }
}

/// A slot reserved by [`Producer::try_reserve`] (or `reserve*`): write the
/// message into it (it dereferences to the whole payload area) and
/// [`commit`](Self::commit) its length. Dropping it publishes nothing.
pub struct WriteSlot<'a> {
    producer: &'a mut Producer,
    buf: &'a mut [u8],
}

impl<'a> WriteSlot<'a> {
    fn new(producer: &'a mut Producer) -> WriteSlot<'a> {
        let ring = producer.side.ring;
        let pos = producer.tail;
        producer
            .side
            .shared
            .tracker
            .write(ring.slot_index(pos), || ());
        // SAFETY: the slot at `tail` is free (checked by the caller), so the
        // consumer does not read it until it is published, and the
        // exclusive borrow of the producer keeps anyone else in this
        // process from writing it. It holds `payload_capacity` initialised
        // bytes (the segment was zero-filled). The lifetime is tied to the
        // borrow of the producer, which keeps the mapping alive.
        let buf =
            unsafe { slice::from_raw_parts_mut(ring.payload_ptr(pos), ring.payload_capacity()) };
        WriteSlot { producer, buf }
    }

    /// The payload capacity of the slot, in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Publishes the first `len` bytes written as one message.
    ///
    /// # Panics
    ///
    /// If `len` exceeds [`capacity`](Self::capacity).
    pub fn commit(self, len: usize) {
        assert!(
            len <= self.buf.len(),
            "committed length {len} exceeds the slot's capacity {}",
            self.buf.len()
        );
        let p = self.producer;
        let ring = p.side.ring;
        let pos = p.tail;
        p.side.shared.tracker.write(ring.slot_index(pos), || {
            // SAFETY: as in `WriteSlot::new`, this slot belongs to the
            // producer until published.
            unsafe { ring.write_len(pos, len as u32) }
        });
        p.publish(1, len as u64);
    }
}

impl Deref for WriteSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf
    }
}

impl DerefMut for WriteSlot<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf
    }
}

impl fmt::Debug for WriteSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteSlot")
            .field("capacity", &self.buf.len())
            .finish()
    }
}

/// Slots reserved together by [`Producer::try_reserve_batch`]; published
/// together by [`commit`](Self::commit). Dropping it publishes nothing.
pub struct WriteBatch<'a> {
    producer: &'a mut Producer,
    reserved: u64,
    filled: u64,
    bytes: u64,
}

impl<'a> WriteBatch<'a> {
    fn new(producer: &'a mut Producer, reserved: u64) -> WriteBatch<'a> {
        WriteBatch {
            producer,
            reserved,
            filled: 0,
            bytes: 0,
        }
    }

    /// Slots reserved.
    pub fn capacity(&self) -> usize {
        self.reserved as usize
    }

    /// Slots filled so far.
    pub fn len(&self) -> usize {
        self.filled as usize
    }

    /// Whether no slot has been filled yet.
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Slots still free in this batch.
    pub fn remaining(&self) -> usize {
        (self.reserved - self.filled) as usize
    }

    /// Copies `msg` into the next slot of the batch.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] when every reserved slot is filled,
    /// [`TrySendError::TooLarge`] when `msg` exceeds the payload capacity.
    pub fn push<M: AsRef<[u8]>>(&mut self, msg: M) -> Result<(), TrySendError<M>> {
        let bytes = msg.as_ref();
        let max = self.producer.side.ring.payload_capacity();
        if bytes.len() > max {
            return Err(TrySendError::TooLarge { msg, max });
        }
        if self.filled == self.reserved {
            return Err(TrySendError::Full(msg));
        }
        let len = bytes.len();
        self.producer
            .write_slot(self.producer.tail + self.filled, bytes);
        self.filled += 1;
        self.bytes += len as u64;
        Ok(())
    }

    /// Lets `fill` write the next slot in place: it gets the whole payload
    /// area and returns the message length. Returns `false` (without
    /// calling `fill`) when every reserved slot is filled.
    ///
    /// # Panics
    ///
    /// If `fill` returns a length above the payload capacity.
    pub fn push_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> bool {
        if self.filled == self.reserved {
            return false;
        }
        let ring = self.producer.side.ring;
        let pos = self.producer.tail + self.filled;
        let tracker = &self.producer.side.shared.tracker;
        let len = tracker.write(ring.slot_index(pos), || {
            // SAFETY: `pos` is among the reserved free slots (see
            // `WriteSlot::new`); the slice lives only for this call.
            let buf = unsafe {
                slice::from_raw_parts_mut(ring.payload_ptr(pos), ring.payload_capacity())
            };
            let len = fill(buf);
            assert!(
                len <= ring.payload_capacity(),
                "filled length {len} exceeds the slot's capacity {}",
                ring.payload_capacity()
            );
            // SAFETY: as above.
            unsafe { ring.write_len(pos, len as u32) };
            len
        });
        self.filled += 1;
        self.bytes += len as u64;
        true
    }

    /// Publishes every filled slot with one index store; returns how many.
    pub fn commit(self) -> usize {
        if self.filled > 0 {
            self.producer.publish(self.filled, self.bytes);
        }
        self.filled as usize
    }
}

impl fmt::Debug for WriteBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBatch")
            .field("capacity", &self.reserved)
            .field("len", &self.filled)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Consumer
// ---------------------------------------------------------------------------

/// The reading end of a ring. One per ring at a time, enforced through the
/// shared header; `Send`, not `Clone`.
///
/// Dropping it makes the producer's sends fail with `Disconnected`.
///
/// ```compile_fail
/// fn second(c: &shmpipe::Consumer) -> shmpipe::Consumer {
///     c.clone()
/// }
/// ```
pub struct Consumer {
    side: Side,
    /// Next position to read; `0..head` are released.
    head: u64,
    /// The producer's `tail` as last read.
    tail_cache: u64,
}

// SAFETY: as for `Producer`.
unsafe impl Send for Consumer {}
// SAFETY: `&Consumer` only reads atomics (len, capacity, stats).
unsafe impl Sync for Consumer {}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", &self.side.shared.label)
            .field("head", &self.head)
            .field("capacity", &self.side.ring.capacity())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub(crate) fn new(shared: Arc<Shared>, wait: WaitConfig) -> Result<Consumer, Error> {
        let side = Side::claim(shared, Role::Consumer, wait)?;
        let hdr = side.ring.header();
        // ORDERING: Acquire; pairs with the Release stores of `head` (by a
        // previous consumer) and `tail` (by the producer).
        let head = hdr.head.load(Acquire);
        let tail = hdr.tail.load(Acquire);
        let c = Consumer {
            side,
            head,
            tail_cache: tail,
        };
        if !check_indices(head, tail, c.side.ring.capacity()) {
            let corruption = Corruption {
                field: "tail",
                found: tail,
                expected: Expected::Range {
                    min: head,
                    max: head.saturating_add(c.side.ring.capacity()),
                },
            };
            let address = c.side.shared.label.clone();
            drop(c);
            return Err(Error::Corrupt {
                address,
                corruption,
            });
        }
        Ok(c)
    }

    /// The ring position of the next message to read: the number of
    /// messages ever released from this ring, by this consumer and the ones
    /// before it. A consumer that takes over a ring resumes here.
    pub fn position(&self) -> u64 {
        self.head
    }

    /// Messages committed and not yet received.
    pub fn len(&self) -> usize {
        let tail = self.side.ring.header().tail.load(Relaxed);
        (tail.saturating_sub(self.head)).min(self.side.ring.capacity()) as usize
    }

    side_accessors!(producer, "producer");

    /// Messages ready to read, reading the producer's `tail` only if the
    /// cache says there are fewer than `want` (a batch wants many, a single
    /// receive one).
    #[inline]
    fn available(&mut self, want: u64) -> Result<u64, TryRecvError> {
        let avail = self.tail_cache - self.head;
        if avail >= want {
            return Ok(avail);
        }
        let avail = self.refresh_tail()?;
        if avail > 0 {
            return Ok(avail);
        }
        // Empty: has the producer closed? Its close is a Release store
        // after its last `tail` store.
        let ring = self.side.ring;
        let hdr = ring.header();
        // ORDERING: Acquire; pairs with the Release close in `Side::close`,
        // so the `tail` read below is the producer's last.
        if Claim(hdr.producer.claim.load(Acquire)).state() == STATE_CLOSED {
            if self.refresh_tail()? == 0 {
                return Err(TryRecvError::Disconnected);
            }
            return Ok(self.tail_cache - self.head);
        }
        Err(TryRecvError::Empty)
    }

    #[cold]
    fn refresh_tail(&mut self) -> Result<u64, TryRecvError> {
        // ORDERING: Acquire; pairs with the Release `tail` store in
        // `Producer::publish`, so the slot writes before it are visible.
        let tail = self.side.ring.header().tail.load(Acquire);
        let cap = self.side.ring.capacity();
        if tail < self.tail_cache || !check_indices(self.head, tail, cap) {
            return Err(TryRecvError::Corrupt(Corruption {
                field: "tail",
                found: tail,
                expected: Expected::Range {
                    min: self.tail_cache,
                    max: self.head.saturating_add(cap),
                },
            }));
        }
        self.tail_cache = tail;
        Ok(tail - self.head)
    }

    /// Like `available`, counting a stall when the ring is empty.
    #[inline]
    fn available_counted(&mut self, want: u64) -> Result<u64, TryRecvError> {
        let r = self.available(want);
        if let Err(TryRecvError::Empty) = r {
            let ring = self.side.ring;
            let hdr = ring.header();
            self.side.count_stall(&hdr.consumer_stats);
        }
        r
    }

    /// The checked length of the committed message at `pos`.
    #[inline]
    fn message_len(&self, pos: u64) -> Result<usize, TryRecvError> {
        let ring = self.side.ring;
        let len = self
            .side
            .shared
            .tracker
            .read(ring.slot_index(pos), || ring.read_len(pos));
        if len as usize > ring.payload_capacity() {
            return Err(TryRecvError::Corrupt(Corruption {
                field: "slot length",
                found: u64::from(len),
                expected: Expected::Range {
                    min: 0,
                    max: ring.payload_capacity() as u64,
                },
            }));
        }
        Ok(len as usize)
    }

    /// The payload of the committed message at `pos`.
    ///
    /// # Safety
    ///
    /// `pos` is in `head..tail` and `len` was checked by `message_len`; the
    /// slice must be dropped before `head` passes `pos`.
    #[inline]
    unsafe fn payload<'s>(&self, pos: u64, len: usize) -> &'s [u8] {
        // SAFETY: `len <= payload_capacity`, so the slice stays inside the
        // slot; the producer does not write the slot until `head` passes it.
        unsafe { slice::from_raw_parts(self.side.ring.payload_ptr(pos), len) }
    }

    /// Releases `n` slots holding `bytes` bytes in all.
    #[inline]
    fn release(&mut self, n: u64, bytes: u64) {
        let ring = self.side.ring;
        let hdr = ring.header();
        self.head += n;
        // ORDERING: Release; pairs with the Acquire `head` load in
        // `Producer::free_slots`: our reads of these slots happen before
        // the producer overwrites them.
        hdr.head.store(self.head, Release);
        // Counters started from values in the mapping: wrap, never panic.
        self.side.stats.messages = self.side.stats.messages.wrapping_add(n);
        self.side.stats.bytes = self.side.stats.bytes.wrapping_add(bytes);
        hdr.consumer_stats
            .messages
            .store(self.side.stats.messages, Relaxed);
        hdr.consumer_stats
            .bytes
            .store(self.side.stats.bytes, Relaxed);
        if wake::notify(&hdr.producer) {
            self.side.count_wake(&hdr.consumer_stats);
        }
    }

    /// Receives the next message into `buf`, without blocking; returns its
    /// length.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], [`TryRecvError::Disconnected`] (the producer
    /// closed and everything was received), [`TryRecvError::BufferTooSmall`]
    /// (the message stays in the ring) or [`TryRecvError::Corrupt`].
    #[inline]
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        self.available_counted(1)?;
        self.take_into(buf)
    }

    /// Copies the next message (known to be committed) into `buf`.
    #[inline]
    fn take_into(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        let pos = self.head;
        let len = self.message_len(pos)?;
        let Some(dst) = buf.get_mut(..len) else {
            return Err(TryRecvError::BufferTooSmall { needed: len });
        };
        let ring = self.side.ring;
        self.side.shared.tracker.read(ring.slot_index(pos), || {
            // SAFETY: `pos` is committed (`available` returned > 0) and
            // `len` is checked; the slice is gone before `release`.
            dst.copy_from_slice(unsafe { self.payload(pos, len) });
        });
        self.release(1, len as u64);
        Ok(len)
    }

    /// Receives the next message into a new `Vec`, without blocking.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv), never `BufferTooSmall`.
    pub fn try_recv_vec(&mut self) -> Result<Vec<u8>, TryRecvError> {
        let slot = self.try_borrow()?;
        Ok(slot.to_vec())
    }

    /// Borrows the next message in place, without blocking. The slot is
    /// released when the returned [`ReadSlot`] is dropped.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], [`TryRecvError::Disconnected`] or
    /// [`TryRecvError::Corrupt`].
    pub fn try_borrow(&mut self) -> Result<ReadSlot<'_>, TryRecvError> {
        self.available_counted(1)?;
        self.borrow_next()
    }

    fn borrow_next(&mut self) -> Result<ReadSlot<'_>, TryRecvError> {
        let pos = self.head;
        let len = self.message_len(pos)?;
        let ring = self.side.ring;
        self.side.shared.tracker.read(ring.slot_index(pos), || ());
        // SAFETY: `pos` is committed and `len` checked; the slice lives in
        // the ReadSlot, which releases the slot only when dropped.
        let data = unsafe { self.payload(pos, len) };
        Ok(ReadSlot {
            consumer: self,
            data,
        })
    }

    /// Hands up to `max` waiting messages to `f` in order, in place, and
    /// releases them with one index store; without blocking. Returns how
    /// many were handed over.
    ///
    /// If a corrupt slot follows good ones, the good ones are delivered and
    /// the error comes on the next call. If `f` panics, nothing of this
    /// batch is released and the messages will be delivered again.
    ///
    /// # Errors
    ///
    /// As [`try_borrow`](Self::try_borrow).
    pub fn try_recv_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, TryRecvError> {
        let avail = self.available_counted((max as u64).max(1))?;
        let n = avail.min(max as u64);
        let ring = self.side.ring;
        let mut bytes = 0u64;
        let mut done = 0u64;
        while done < n {
            let pos = self.head + done;
            let len = match self.message_len(pos) {
                Ok(len) => len,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            self.side.shared.tracker.read(ring.slot_index(pos), || {
                // SAFETY: `pos` is in `head..tail` and `len` is checked; the
                // slice does not outlive this call and `head` moves after.
                f(unsafe { self.payload(pos, len) })
            });
            bytes += len as u64;
            done += 1;
        }
        if done > 0 {
            self.release(done, bytes);
        }
        Ok(done as usize)
    }

    /// Receives the next message into `buf`, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`recv_deadline`](Self::recv_deadline), never `Timeout`.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_until(buf, None)
    }

    /// Receives the next message into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_deadline`](Self::recv_deadline).
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, RecvError> {
        self.recv_until(buf, deadline_after(timeout))
    }

    /// Receives the next message into `buf`, waiting until `deadline`
    /// (monotonic clock). A deadline in the past tries once and returns.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`], [`RecvError::Disconnected`],
    /// [`RecvError::PeerDied`] (the producer's process died; every message
    /// it committed has been received), [`RecvError::BufferTooSmall`] or
    /// [`RecvError::Corrupt`].
    pub fn recv_deadline(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, RecvError> {
        self.recv_until(buf, Some(deadline))
    }

    fn recv_until(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvError> {
        self.ready_until(deadline)?;
        self.take_into(buf).map_err(RecvError::from)
    }

    /// Receives the next message into a new `Vec`, waiting until `deadline`
    /// (`None`: as long as it takes).
    ///
    /// # Errors
    ///
    /// As [`recv_deadline`](Self::recv_deadline), never `BufferTooSmall`.
    pub fn recv_vec_deadline(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, RecvError> {
        self.ready_until(deadline)?;
        Ok(self.borrow_next()?.to_vec())
    }

    /// Borrows the next message in place, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`borrow_deadline`](Self::borrow_deadline), never `Timeout`.
    pub fn borrow(&mut self) -> Result<ReadSlot<'_>, RecvError> {
        self.ready_until(None)?;
        Ok(self.borrow_next()?)
    }

    /// Borrows the next message in place, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`borrow_deadline`](Self::borrow_deadline).
    pub fn borrow_timeout(&mut self, timeout: Duration) -> Result<ReadSlot<'_>, RecvError> {
        self.ready_until(deadline_after(timeout))?;
        Ok(self.borrow_next()?)
    }

    /// Borrows the next message in place, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`], [`RecvError::Disconnected`],
    /// [`RecvError::PeerDied`] or [`RecvError::Corrupt`].
    pub fn borrow_deadline(&mut self, deadline: Instant) -> Result<ReadSlot<'_>, RecvError> {
        self.ready_until(Some(deadline))?;
        Ok(self.borrow_next()?)
    }

    /// Like [`try_recv_batch`](Self::try_recv_batch), but waits until at
    /// least one message is ready or `deadline` passes (`None`: as long as
    /// it takes).
    ///
    /// # Errors
    ///
    /// As [`borrow_deadline`](Self::borrow_deadline).
    pub fn recv_batch_deadline(
        &mut self,
        max: usize,
        deadline: Option<Instant>,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, RecvError> {
        self.ready_until(deadline)?;
        self.try_recv_batch(max, f).map_err(RecvError::from)
    }

    /// Returns once a message is ready to read; fails on timeout,
    /// disconnection, peer death or corruption.
    fn ready_until(&mut self, deadline: Option<Instant>) -> Result<(), RecvError> {
        match self.available_counted(1) {
            Ok(_) => return Ok(()),
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        let ring = self.side.ring;
        let hdr = ring.header();
        let cfg = self.side.wait;
        let mut counts = WaitCounts::default();
        let r = wake::block(
            &hdr.consumer,
            &hdr.consumer_stats,
            &cfg,
            deadline,
            &mut counts,
            |check_peer| {
                match self.available(1) {
                    Ok(_) => Some(Ok(())),
                    Err(TryRecvError::Empty) => {
                        if check_peer {
                            if let Some((pid, false)) = self.side.peer_status(&hdr.producer) {
                                // Everything it committed before dying is
                                // visible now: drain it first.
                                return Some(match self.refresh_tail() {
                                    Ok(0) => Err(RecvError::PeerDied { pid }),
                                    Ok(_) => Ok(()),
                                    Err(e) => Err(e.into()),
                                });
                            }
                        }
                        None
                    }
                    Err(e) => Some(Err(e.into())),
                }
            },
        );
        self.side.add_wait_counts(counts, &hdr.consumer_stats);
        r.unwrap_or(Err(RecvError::Timeout))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let ring = self.side.ring;
        let hdr = ring.header();
        self.side.close(&hdr.consumer, &hdr.producer);
    }
}

/// A message borrowed in place by [`Consumer::try_borrow`] (or
/// `borrow*`). Dereferences to the message bytes; the slot is released
/// when this is dropped.
///
/// The bytes live in shared memory: a producer that breaks the protocol
/// could change them while you read them (never their length, which was
/// checked once and copied). Copy them out first if you validate them.
pub struct ReadSlot<'a> {
    consumer: &'a mut Consumer,
    data: &'a [u8],
}

impl Deref for ReadSlot<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl AsRef<[u8]> for ReadSlot<'_> {
    fn as_ref(&self) -> &[u8] {
        self.data
    }
}

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        let len = self.data.len() as u64;
        self.consumer.release(1, len);
    }
}

impl fmt::Debug for ReadSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSlot")
            .field("len", &self.data.len())
            .finish()
    }
}
