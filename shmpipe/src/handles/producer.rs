//! [`Producer`]: the writing end, its index protocol (it owns `tail`) and
//! the copying sends. Zero-copy and batch sends are in `slot.rs`.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::ptr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::message::Message;
use super::{check_indices, deadline_after, Holder, SetMember, MAX_POSITION};
use crate::error::{Corruption, Error, Expected, SendError, TrySendError};
use crate::info::Stats;
use crate::layout::{
    commit_value, Claim, MARK_FIRST, MARK_MASK, MARK_PAD, MARK_WHOLE, STATE_CLOSED,
};
use crate::mapping::Mapping;
use crate::side::Side;
use crate::sync::barrier;
use crate::sync::compiler_barrier;
use crate::sync::spin_loop;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::wake::{self, Sleep, WaitConfig, WaitStats, WaitStrategy};
use crate::watcher::Fired;

/// The writing end of a ring. One per ring at a time, enforced through the
/// shared header; `Send`, not `Clone`.
///
/// Dropping it closes the ring for writing: the consumer receives every
/// message already committed, then [`RecvError::Disconnected`](crate::RecvError::Disconnected).
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
    pub(super) holder: Holder,
    /// Next position to write; `0..tail` are committed.
    pub(super) tail: u64,
    /// The consumer's `head` as last read.
    head_cache: u64,
    /// The consumer's claim word when this producer attached: only a
    /// consumer that closes *after* that disconnects us (one that left
    /// before is like none: messages wait for the next consumer).
    consumer_at_attach: u64,
}

// SAFETY: the handle owns its claim; the raw pointers in `RingRef` point into
// the segment kept alive by the `Arc<Mapping>` it holds, and every shared
// access is atomic or ordered by the index protocol.
unsafe impl Send for Producer {}
// SAFETY: `&Producer` only reads atomics (len, capacity, stats).
unsafe impl Sync for Producer {}

impl SetMember for Producer {
    fn holder(&self) -> &Holder {
        &self.holder
    }
    fn holder_mut(&mut self) -> &mut Holder {
        &mut self.holder
    }
    fn recheck(&mut self) -> bool {
        matches!(self.check_armed(), Ok(true))
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("ring", &self.holder.mapping.label)
            .field("tail", &self.tail)
            .field("capacity", &self.holder.ring.capacity())
            .finish_non_exhaustive()
    }
}

impl Producer {
    pub(crate) fn new(mapping: Arc<Mapping>, wait: WaitConfig) -> Result<Producer, Error> {
        let holder = Holder::claim(mapping, Side::Producer, wait)?;
        let hdr = holder.ring.header();
        // ORDERING: Acquire on both: `tail` may have been stored by a
        // previous producer, `head` by the consumer; either way we only need
        // their latest values, which the claim's Acquire already ordered.
        let tail = hdr.tail.load(Acquire);
        let head = hdr.head.load(Acquire);
        let consumer_at_attach = hdr.consumer.claim.load(Acquire);
        let cap = holder.ring.capacity();
        let mut p = Producer {
            holder,
            tail,
            head_cache: head,
            consumer_at_attach,
        };
        // A previous producer that died between publishing a slot's commit
        // word and storing `tail` left committed messages past `tail` (the
        // consumer may even have read them). They are complete messages:
        // take them into the stream rather than overwrite them.
        let end = if tail <= MAX_POSITION && head <= MAX_POSITION && tail.abs_diff(head) <= cap {
            p.committed_end(tail, head.saturating_add(cap))
        } else {
            tail
        };
        if !check_indices(head, end, cap) {
            let corruption = Corruption {
                field: "tail",
                found: tail,
                expected: Expected::Range {
                    min: head,
                    max: head.saturating_add(cap),
                },
            };
            let address = p.holder.mapping.label.clone();
            drop(p); // releases the claim
            return Err(Error::Corrupt {
                address,
                corruption,
            });
        }
        p.clean_after_crash(end, head.saturating_add(cap));
        if end != tail {
            p.tail = end;
            // ORDERING: Release; pairs with the consumer's Acquire `tail`
            // load, as in `publish` (the dead producer's slot writes were
            // published by their commit words' Release stores already).
            p.holder.ring.header().tail.store(end, Release);
        }
        Ok(p)
    }

    /// The end of the run of committed units from `from` on: the first
    /// position below `limit` where no committed message or PAD starts. A
    /// unit is committed by its first slot's commit word (a slot's word
    /// from the previous lap differs: `MAX_SLOTS` keeps laps apart, and the
    /// consumer zeroes the words inside multi-slot units it releases); a
    /// unit whose header breaks the rules, or that would run past `limit`,
    /// ends the run.
    fn committed_end(&self, from: u64, limit: u64) -> u64 {
        let ring = self.holder.ring;
        let mut pos = from;
        // ORDERING: Acquire; pairs with the Release commit store of the
        // producer that wrote the unit, so its header and payload are
        // visible.
        while pos < limit && ring.commit_word(pos).load(Acquire) == commit_value(pos) {
            let word = ring.read_len(pos);
            let slots = match word & MARK_MASK {
                MARK_WHOLE if word as usize <= ring.payload_capacity() => 1,
                MARK_FIRST => {
                    let len = ring.read_extent(pos);
                    if len <= ring.payload_capacity() as u64 || len > ring.message_limit() {
                        break;
                    }
                    ring.slots_for(len)
                }
                MARK_PAD
                    if ring.slot_index(pos) != 0
                        && ring.read_extent(pos)
                            == ring.capacity() - ring.slot_index(pos) as u64 =>
                {
                    ring.read_extent(pos)
                }
                _ => break,
            };
            if pos + slots > limit || !ring.contiguous(pos, slots) {
                break;
            }
            pos += slots;
        }
        pos
    }

    /// After a takeover at `end`: a predecessor killed while writing a
    /// multi-slot message at `end` left payload bytes where later slots'
    /// commit words sit, which could read as commits. Its header was
    /// written before the payload (`write_first`), so its extent says how
    /// far to zero them; never past `free_end`, the end of the free slots.
    fn clean_after_crash(&self, end: u64, free_end: u64) {
        let ring = self.holder.ring;
        if end >= free_end || ring.read_len(end) & MARK_MASK != MARK_FIRST {
            return;
        }
        let len = ring.read_extent(end).min(ring.message_limit());
        let stop = (end + ring.slots_for(len)).min(free_end);
        for pos in end + 1..stop {
            // Relaxed: these slots are free (ours); the consumer reaches
            // them only after our next publish, whose Release orders this.
            ring.commit_word(pos).store(0, Relaxed);
        }
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
        let head = self.holder.ring.header().head.load(Relaxed);
        (self.tail.saturating_sub(head)).min(self.holder.ring.capacity()) as usize
    }

    /// Number of slots in the ring.
    pub fn capacity(&self) -> usize {
        self.holder.ring.capacity() as usize
    }

    /// Largest message in one slot, in bytes (larger ones take several
    /// slots, up to [`message_limit`](Self::message_limit)).
    pub fn max_message(&self) -> usize {
        self.holder.ring.payload_capacity()
    }

    /// Largest message the ring accepts, over any number of slots.
    pub fn message_limit(&self) -> usize {
        self.holder.ring.message_limit() as usize
    }

    /// Every payload starts at an address that is a multiple of this
    /// ([`RingBuilder::payload_align`](crate::RingBuilder::payload_align)).
    pub fn payload_align(&self) -> usize {
        self.holder.ring.payload_align()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot holds a message.
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// This side's stats.
    pub fn stats(&self) -> Stats {
        self.holder.stats
    }

    /// How blocking calls wait.
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.holder.wait.strategy
    }

    /// Sets how blocking calls wait.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.holder.wait.strategy = strategy;
    }

    /// Sets how often a blocked call checks that the consumer is alive
    /// (default 100 ms): a dead consumer is reported within about this long.
    pub fn set_heartbeat(&mut self, interval: Duration) {
        self.holder.wait.heartbeat = interval.max(Duration::from_millis(1));
    }

    /// Whether a consumer holds the ring and its process is alive.
    pub fn peer_alive(&mut self) -> bool {
        let ring = self.holder.ring;
        matches!(
            self.holder.peer_status(&ring.header().consumer),
            Some((_, true))
        )
    }

    /// Process id of the consumer holding the ring, if any.
    pub fn peer_pid(&self) -> Option<u32> {
        self.holder.peer_pid(&self.holder.ring.header().consumer)
    }

    /// Makes sure at least `want` slots are free (fewer is fine if at least
    /// one is), reading the consumer's `head` only if the cache says there
    /// are not enough. Returns the number of free slots.
    #[inline(always)]
    pub(super) fn free_slots(&mut self, want: u64) -> Result<u64, TrySendError<()>> {
        let ring = self.holder.ring;
        let hdr = ring.header();
        // The consumer's claim shares its line with state written only on
        // claim, close and park, so this load is a cache hit.
        let consumer = hdr.consumer.claim.load(Relaxed);
        if consumer != self.consumer_at_attach && Claim(consumer).state() == STATE_CLOSED {
            return Err(TrySendError::Disconnected(()));
        }
        let cap = self.holder.ring.capacity();
        let free = cap - (self.tail - self.head_cache);
        if free >= want {
            return Ok(free);
        }
        self.refresh_head()
    }

    /// `free_slots` once the cache says too few are free: reads `head`.
    #[cold]
    fn refresh_head(&mut self) -> Result<u64, TrySendError<()>> {
        let ring = self.holder.ring;
        let hdr = ring.header();
        let cap = ring.capacity();
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
            if hdr.is_removed() {
                return Err(TrySendError::Removed(()));
            }
            return Err(TrySendError::Full(()));
        }
        Ok(free)
    }

    /// Like `free_slots`, counting a stall when the ring is full.
    #[inline(always)]
    pub(super) fn reserve_check(&mut self, want: u64) -> Result<u64, TrySendError<()>> {
        self.holder.disarm();
        let r = self.free_slots(want);
        if let Err(TrySendError::Full(())) = r {
            let ring = self.holder.ring;
            let hdr = ring.header();
            self.holder.count_stall(&hdr.producer_stats);
        }
        r
    }

    /// Writes `msg` into the slot for `pos` (which the producer owns).
    #[inline(always)]
    pub(super) fn write_slot(&self, pos: u64, msg: &[u8]) {
        let ring = self.holder.ring;
        debug_assert!(msg.len() <= ring.payload_capacity());
        self.holder.mapping.tracker.write(ring.slot_index(pos), || {
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
    #[inline(always)]
    pub(super) fn publish(&mut self, n: u64, bytes: u64) {
        let ring = self.holder.ring;
        let hdr = ring.header();
        for pos in self.tail..self.tail + n {
            // ORDERING: Release; pairs with the Acquire commit-word load in
            // `Consumer::slot_committed`, publishing the slot's payload and
            // length written before. In position order, so that a producer
            // killed half-way leaves a committed prefix (see `new`).
            ring.commit_word(pos).store(commit_value(pos), Release);
        }
        self.tail += n;
        // ORDERING: Release; pairs with the Acquire `tail` load in
        // `Consumer::refresh_tail`, publishing the slot writes above.
        hdr.tail.store(self.tail, Release);
        // Counters started from values in the mapping: wrap, never panic.
        self.holder.stats.messages = self.holder.stats.messages.wrapping_add(n);
        self.holder.stats.bytes = self.holder.stats.bytes.wrapping_add(bytes);
        hdr.producer_stats
            .messages
            .store(self.holder.stats.messages, Relaxed);
        hdr.producer_stats
            .bytes
            .store(self.holder.stats.bytes, Relaxed);
        if self.holder.wake_peer(&hdr.consumer) {
            self.holder.count_wake(&hdr.producer_stats);
        }
    }

    /// Sends a message if a slot is free, without blocking.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`], [`TrySendError::Disconnected`] (the consumer
    /// dropped its handle), [`TrySendError::Removed`],
    /// [`TrySendError::TooLarge`] (never truncated) or
    /// [`TrySendError::Corrupt`]. An owned message comes back inside the
    /// error, a borrowed one does not, so that `?` can box the error (see
    /// [`Message`]).
    #[inline]
    pub fn try_send<M: Message>(&mut self, msg: M) -> Result<(), TrySendError<M::Unsent>> {
        match self.try_send_bytes(msg.as_ref()) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.map(|()| msg.unsent())),
        }
    }

    #[inline(always)]
    fn try_send_bytes(&mut self, bytes: &[u8]) -> Result<(), TrySendError<()>> {
        let len = bytes.len();
        if len > self.holder.ring.payload_capacity() {
            return self.try_send_large(bytes);
        }
        self.reserve_check(1)?;
        self.write_slot(self.tail, bytes);
        self.publish(1, len as u64);
        Ok(())
    }

    /// `try_send` of a message larger than one slot: over consecutive
    /// slots, published as one unit.
    #[cold]
    fn try_send_large(&mut self, bytes: &[u8]) -> Result<(), TrySendError<()>> {
        let len = bytes.len();
        let n = match self.check_limit(len) {
            Ok(n) => n,
            Err(max) => return Err(TrySendError::TooLarge { msg: (), len, max }),
        };
        self.place(n)?;
        let ring = self.holder.ring;
        let pos = self.tail;
        let tracker = &self.holder.mapping.tracker;
        tracker.write_span(ring.slot_index(pos), n, || {
            // SAFETY: `place` made the `n` slots from `tail` on free and
            // contiguous, so `len <= n * slot_size - payload_offset` bytes
            // from the payload pointer are ours until published.
            unsafe {
                self.write_first(pos, len as u64);
                ptr::copy_nonoverlapping(bytes.as_ptr(), ring.payload_ptr(pos), len);
            }
        });
        self.publish_span(n, 1, len as u64);
        Ok(())
    }

    /// The slots a message of `len` bytes needs, or the message limit if it
    /// is larger.
    pub(super) fn check_limit(&self, len: usize) -> Result<u64, usize> {
        let ring = self.holder.ring;
        if len as u64 > ring.message_limit() {
            return Err(ring.message_limit() as usize);
        }
        Ok(ring.slots_for(len as u64))
    }

    /// Makes the `n` slots from `tail` on free and contiguous: on a ring
    /// that is not mapped twice, a run that would cross the end of the ring
    /// is preceded by a PAD to the end (published on its own at once).
    /// `Full` if the slots are not free yet (a PAD may have been published).
    pub(super) fn place(&mut self, n: u64) -> Result<(), TrySendError<()>> {
        let ring = self.holder.ring;
        let cap = ring.capacity();
        if !ring.contiguous(self.tail, n) {
            let pad = cap - ring.slot_index(self.tail) as u64;
            if self.reserve_check(pad)? < pad {
                return Err(self.full());
            }
            let pos = self.tail;
            self.holder.mapping.tracker.write(ring.slot_index(pos), || {
                // SAFETY: the `pad` slots from `tail` are free (checked
                // above); only their first slot's header is written.
                unsafe {
                    ring.write_extent(pos, pad);
                    ring.write_len(pos, MARK_PAD);
                }
            });
            self.publish_span(pad, 0, 0);
        }
        // The deliberate bug CI builds for loom: only one free slot asked
        // for, so the rest of the message may overwrite slots the consumer
        // is still reading (a causality violation in `loom_ring`).
        #[cfg(shmpipe_bug = "place_one_slot")]
        let n = 1;
        if self.reserve_check(n)? < n {
            return Err(self.full());
        }
        Ok(())
    }

    /// `Full`, counted as a stall.
    fn full(&mut self) -> TrySendError<()> {
        let ring = self.holder.ring;
        let hdr = ring.header();
        self.holder.count_stall(&hdr.producer_stats);
        TrySendError::Full(())
    }

    /// Writes the header of a FIRST slot at `pos` for a message of `len`
    /// bytes, before any of its payload: a producer killed while writing
    /// the payload leaves the extent its successor must clean (see `new`).
    ///
    /// # Safety
    ///
    /// The producer owns the slot at `pos`.
    pub(super) unsafe fn write_first(&self, pos: u64, len: u64) {
        let ring = self.holder.ring;
        // SAFETY: the caller owns the slot.
        unsafe {
            ring.write_extent(pos, len);
            ring.write_len(pos, MARK_FIRST);
        }
        // The header stores stay before the payload writes that follow
        // (for a successor reading them after a crash).
        compiler_barrier();
    }

    /// Publishes one unit of `slots` slots from `tail` on (a multi-slot
    /// message, `messages == 1`, or a PAD, `messages == 0`): one commit
    /// word, on its first slot, then `tail`.
    pub(super) fn publish_span(&mut self, slots: u64, messages: u64, bytes: u64) {
        let ring = self.holder.ring;
        let hdr = ring.header();
        let pos = self.tail;
        // ORDERING: Release; pairs with the Acquire commit-word load in
        // `Consumer::slot_committed`, publishing the header and every
        // payload byte of the unit (its later slots have no commit word of
        // their own: one store commits it all or nothing).
        ring.commit_word(pos).store(commit_value(pos), Release);
        self.tail += slots;
        // ORDERING: Release; pairs with the Acquire `tail` load in
        // `Consumer::refresh_tail`, as in `publish`.
        hdr.tail.store(self.tail, Release);
        self.holder.stats.messages = self.holder.stats.messages.wrapping_add(messages);
        self.holder.stats.bytes = self.holder.stats.bytes.wrapping_add(bytes);
        hdr.producer_stats
            .messages
            .store(self.holder.stats.messages, Relaxed);
        hdr.producer_stats
            .bytes
            .store(self.holder.stats.bytes, Relaxed);
        if self.holder.wake_peer(&hdr.consumer) {
            self.holder.count_wake(&hdr.producer_stats);
        }
    }

    /// Sends a message, waiting as long as it takes for a free slot.
    ///
    /// A producer that finds the ring full and spins waits for it to refill
    /// a little (a sixteenth of the ring, at most 256 slots) before it goes
    /// on, for some microseconds at most: taking each slot the moment the
    /// consumer frees it slows the consumer down (`docs/design.md` §7).
    ///
    /// ```
    /// use std::error::Error;
    /// use shmpipe::{Producer, RingBuilder};
    ///
    /// fn f(tx: &mut Producer) -> Result<(), Box<dyn Error>> {
    ///     let local = vec![0u8; 100];
    ///     tx.send(&local[..])?; // a borrowed slice: the error borrows nothing
    ///     Ok(())
    /// }
    /// # let ring = RingBuilder::new().slots(4).create_in_process()?;
    /// # f(&mut ring.producer()?)?;
    /// # Ok::<(), Box<dyn Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send_deadline`](Self::send_deadline), never `Timeout`.
    #[inline(always)]
    pub fn send<M: Message>(&mut self, msg: M) -> Result<(), SendError<M::Unsent>> {
        self.send_until(msg, None)
    }

    /// Sends a message, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    ///
    /// As [`send_deadline`](Self::send_deadline).
    pub fn send_timeout<M: Message>(
        &mut self,
        msg: M,
        timeout: Duration,
    ) -> Result<(), SendError<M::Unsent>> {
        self.send_until(msg, deadline_after(timeout))
    }

    /// Sends a message, waiting until `deadline` (monotonic clock) for a
    /// free slot. A deadline in the past tries once and returns.
    ///
    /// # Errors
    ///
    /// [`SendError::Timeout`], [`SendError::Disconnected`],
    /// [`SendError::PeerDied`] (the consumer's process died; noticed within
    /// the heartbeat interval), [`SendError::Removed`],
    /// [`SendError::TooLarge`] or [`SendError::Corrupt`]. An owned message
    /// comes back inside the error, a borrowed one does not (see
    /// [`Message`]).
    pub fn send_deadline<M: Message>(
        &mut self,
        msg: M,
        deadline: Instant,
    ) -> Result<(), SendError<M::Unsent>> {
        self.send_until(msg, Some(deadline))
    }

    #[inline(always)]
    fn send_until<M: Message>(
        &mut self,
        msg: M,
        deadline: Option<Instant>,
    ) -> Result<(), SendError<M::Unsent>> {
        match self.send_bytes_until(msg.as_ref(), deadline) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.map(|()| msg.unsent())),
        }
    }

    #[inline(always)]
    fn send_bytes_until(
        &mut self,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendError<()>> {
        let ring = self.holder.ring;
        loop {
            match self.try_send_bytes(bytes) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(())) => {}
                Err(e) => return Err(e.into()),
            }
            // A multi-slot message waits for all its slots at once (PADs
            // aside: `place` publishes them as soon as they fit). Worked out
            // here, on a full ring, to keep a division off the fast path.
            let want = ring.slots_for(bytes.len() as u64).min(ring.capacity());
            let want = if ring.contiguous(self.tail, want) {
                want
            } else {
                ring.capacity() - ring.slot_index(self.tail) as u64
            };
            self.wait_writable(want, deadline)?;
        }
    }

    /// Blocks until at least `want` slots are free (`Ok`), or fails.
    pub(super) fn wait_writable(
        &mut self,
        want: u64,
        deadline: Option<Instant>,
    ) -> Result<(), SendError<()>> {
        let ring = self.holder.ring;
        let hdr = ring.header();
        if let Some(pid) = self.holder.known_dead_peer() {
            return Err(SendError::PeerDied { msg: (), pid });
        }
        let cfg = self.holder.wait;
        let mut counts = WaitStats::default();
        let asymmetric = self.holder.asymmetric;
        let died = self.holder.watch_peer_death();
        // While spinning, wait for the ring to refill a little, not for the
        // first free slot (see `refill_target`); a sleeper takes what it
        // needs.
        // Not under loom: no refill wait there, so the models stay as they
        // were.
        let refill = refill_target(want, ring.capacity());
        let mut patience = if cfg!(loom) { 0 } else { REFILL_POLLS };
        let r = wake::block(
            &hdr.producer,
            &hdr.producer_stats,
            &cfg,
            Sleep {
                asymmetric,
                bounded: died.is_none(),
            },
            deadline,
            &mut counts,
            // `free_slots` reads `head` whenever its cache says full, so
            // every poll is as thorough as the re-check must be.
            |poll| {
                let refilling = !poll.thorough && patience > 0;
                let target = if refilling { refill } else { want };
                match self.free_slots(target) {
                    Ok(free) if free >= target => return Some(Ok(())),
                    Ok(_) | Err(TrySendError::Full(())) => {}
                    Err(e) => return Some(Err(e.into())),
                }
                if refilling {
                    // Fewer looks at `head`, which the consumer stores on
                    // every receive.
                    patience -= 1;
                    for _ in 0..REFILL_PAUSES {
                        spin_loop();
                    }
                }
                let fired = died.as_ref().is_some_and(Fired::is_set);
                if poll.check_peer || fired {
                    if let Some((pid, false)) = self.holder.peer_status(&hdr.consumer) {
                        return Some(Err(SendError::PeerDied { msg: (), pid }));
                    }
                }
                None
            },
        );
        self.holder.add_wait_stats(counts, &hdr.producer_stats);
        if let Some(Err(SendError::PeerDied { .. })) = r {
            self.holder.mark_peer_dead();
        }
        match r {
            Some(r) => r,
            // The deadline passed while waiting for the refill: what was
            // asked for may be free all the same.
            None if self.free_slots(want).is_ok_and(|free| free >= want) => Ok(()),
            None => Err(SendError::Timeout(())),
        }
    }

    /// The readiness descriptor: readable when this producer should try
    /// again (a slot was freed, the consumer closed or died). Watch it with
    /// epoll, poll, mio or tokio's `AsyncFd`, after [`arm`](Self::arm)
    /// returned `true`; any later call on the producer disarms it. Made on
    /// first use; it lives as long as the producer.
    ///
    /// The call after a wake-up takes its free slot without first emptying the
    /// descriptor (a system call less on the wake-up's path), so the
    /// descriptor may stay readable until a call finds the ring full or `arm`
    /// runs: a level-triggered loop may wake once more for nothing, and
    /// its next call empties it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the descriptor cannot be made (`EMFILE`, ...).
    pub fn readiness_fd(&mut self) -> Result<BorrowedFd<'_>, Error> {
        self.holder.readiness_fd()
    }

    /// Prepares a wait on the [readiness descriptor](Self::readiness_fd):
    /// announces it to the consumer, then re-checks. Returns `true` when
    /// the caller should wait for the descriptor to become readable, and
    /// `false` when it should not because a slot is free now (or the ring
    /// is in a state the next call reports: closed, corrupt).
    ///
    /// While both sides are busy nobody arms, and the consumer makes no
    /// system call; an armed producer gets one notification per wake-up.
    ///
    /// # Errors
    ///
    /// [`SendError::PeerDied`] when the consumer's process died: at once,
    /// and on every later call until a new consumer attaches. If the
    /// descriptor cannot be made this returns `Ok(false)` (do not wait) and
    /// [`readiness_fd`](Self::readiness_fd) says why.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let ring = shmpipe::RingBuilder::new().slots(1).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send(b"fills the ring")?;
    /// assert!(tx.arm()?, "full: wait for the descriptor");
    /// let fd = tx.readiness_fd()?.as_raw_fd();
    /// rx.try_recv_vec()?; // frees the slot and signals the descriptor
    /// let mut fds = [libc::pollfd { fd, events: libc::POLLIN, revents: 0 }];
    /// // SAFETY: one valid pollfd.
    /// assert_eq!(unsafe { libc::poll(fds.as_mut_ptr(), 1, 1000) }, 1);
    /// tx.try_send(b"room again")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn arm(&mut self) -> Result<bool, SendError<()>> {
        if let Some(pid) = self.holder.known_dead_peer() {
            return Err(SendError::PeerDied { msg: (), pid });
        }
        if self.holder.announce().is_err() {
            return Ok(false);
        }
        let _ = barrier::waiter(self.holder.asymmetric);
        match self.check_armed() {
            Ok(true) => Ok(true),
            other => {
                self.holder.disarm();
                other
            }
        }
    }

    /// Whether a send would find a free slot now; the errors a send would
    /// report (other than `Full`).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn space_now(&mut self) -> Result<bool, SendError<()>> {
        match self.reserve_check(1) {
            Ok(_) => Ok(true),
            Err(TrySendError::Full(())) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The loom model of waiting on the readiness descriptor (there is no
    /// descriptor under loom): sleeps until the modelled notification
    /// inbox holds a notification. Call after [`arm`](Self::arm) returned
    /// `true`, as `poll` would be.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_wait_readiness(&mut self) {
        self.holder.wait_readiness();
    }

    /// Undoes [`arm`](Self::arm) without another call: the peer stops
    /// signalling the readiness descriptor. Every other call on the
    /// producer does this by itself; an event loop that armed many handles
    /// and woke for one disarms the others with this.
    pub fn disarm(&mut self) {
        self.holder.disarm();
    }

    /// The re-check after announcing (and the barrier): `true` if there is
    /// still nothing to do but wait.
    pub(crate) fn check_armed(&mut self) -> Result<bool, SendError<()>> {
        // The deliberate bug loom must catch: see `Consumer::check_armed`.
        if cfg!(shmpipe_bug = "no_notify_recheck") {
            return Ok(true);
        }
        match self.free_slots(1) {
            Ok(_) => Ok(false),
            Err(TrySendError::Full(())) => {
                let ring = self.holder.ring;
                if let Some((pid, false)) = self.holder.peer_status(&ring.header().consumer) {
                    self.holder.mark_peer_dead();
                    return Err(SendError::PeerDied { msg: (), pid });
                }
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// Waits until a consumer holds the ring and its process is alive, or
    /// `deadline` passes (`None`: as long as it takes); returns its pid.
    /// After `PeerDied`, this waits for the consumer that takes over.
    ///
    /// # Errors
    ///
    /// [`SendError::Timeout`].
    pub fn wait_for_consumer(&mut self, deadline: Option<Instant>) -> Result<u32, SendError<()>> {
        let ring = self.holder.ring;
        let hdr = ring.header();
        let cfg = WaitConfig {
            strategy: WaitStrategy::Park,
            ..self.holder.wait
        };
        let mut counts = WaitStats::default();
        let asymmetric = self.holder.asymmetric;
        let r = wake::block(
            &hdr.producer,
            &hdr.producer_stats,
            &cfg,
            Sleep {
                asymmetric,
                bounded: true,
            },
            deadline,
            &mut counts,
            |_| match self.holder.peer_status(&hdr.consumer) {
                Some((pid, true)) => Some(pid),
                _ => None,
            },
        );
        self.holder.add_wait_stats(counts, &hdr.producer_stats);
        r.ok_or(SendError::Timeout(()))
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let ring = self.holder.ring;
        let hdr = ring.header();
        self.holder.close(&hdr.producer, &hdr.consumer);
    }
}

/// Looks at `head` a spinning producer takes waiting for
/// [`refill_target`] free slots, before it takes what it needs.
const REFILL_POLLS: u32 = 8;

/// `pause` instructions between two of those looks: about 1.3 µs where a
/// `pause` takes 40 ns (Intel since Skylake), much less where it is short;
/// the refill wait ends within some 10 µs.
const REFILL_PAUSES: u32 = 32;

/// Free slots a spinning producer that found the ring full waits for, for
/// at most [`REFILL_POLLS`] looks at `head`: a sixteenth of the ring (at
/// most 256 slots, at least `want`).
///
/// Taking each slot as soon as the consumer frees it makes the two sides
/// fight over cache lines: the producer polls `head`, which the consumer
/// stores on every receive, and writes the slot the consumer has just
/// left, so the consumer's `head` stores keep waiting for their line to
/// come back. Measured (docs/benchmarks.md), a consumer a little slower
/// than its producer ran at a third of its speed that way. Waiting for a
/// refill, looking seldom, costs the consumer nothing (it still has the
/// rest of the ring to read) and delays the producer by some microseconds
/// at most. The re-check before a sleep takes what the call needs, so a
/// parked producer is woken once, as before.
fn refill_target(want: u64, capacity: u64) -> u64 {
    (capacity / 16).clamp(1, 256).max(want).min(capacity)
}
