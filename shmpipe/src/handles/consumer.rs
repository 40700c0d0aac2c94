//! [`Consumer`]: the reading end, its index protocol (it owns `head`) and
//! the copying receives. Zero-copy and batch receives are in `slot.rs`.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::slice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{check_indices, deadline_after, Holder, SetMember};
use crate::error::{Corruption, Error, Expected, RecvError, TryRecvError};
use crate::info::Stats;
use crate::layout::{
    commit_value, Claim, MARK_FIRST, MARK_MASK, MARK_PAD, MARK_WHOLE, STATE_CLOSED,
};
use crate::mapping::Mapping;
use crate::side::Side;
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{barrier, spin_loop};
use crate::wake::{self, Sleep, WaitConfig, WaitStats, WaitStrategy};
use crate::watcher::Fired;

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
    pub(super) holder: Holder,
    /// Next position to read; `0..head` are released.
    pub(super) head: u64,
    /// Positions below this are known to be committed: the producer's
    /// `tail` as last read, or past it where a slot's commit word said so.
    /// Never below `head`.
    known: u64,
    /// The producer's `tail` as last read (it never moves backwards).
    tail_seen: u64,
    /// The position whose commit word [`slot_committed`](Self::slot_committed)
    /// last found set (`u64::MAX`: none): `message_len` need not check it
    /// again.
    polled: u64,
    /// Messages taken by their commit words in a row, since the consumer
    /// last paced or found the ring empty (see [`pace`](Self::pace)).
    streak: u64,
    /// The `streak` at which the consumer paces: [`PACE_EVERY`], or
    /// `u64::MAX` with pacing off ([`set_pacing`](Self::set_pacing)).
    pace_every: u64,
    /// How many slots behind the producer a streaming consumer keeps:
    /// [`PACE_LAG_BYTES`] of slots, at most half the ring.
    pace_lag: u64,
}

/// Messages a consumer takes by their commit words, without finding the
/// ring empty, before it reads `tail` to see how far behind it is. (Under
/// loom every one, so that the models explore pacing too.)
const PACE_EVERY: u64 = if cfg!(loom) { 1 } else { 16 };

/// How far behind the producer a streaming consumer keeps, in bytes of
/// slots: well past what the hardware prefetchers fetch ahead of a
/// sequential reader (a few KiB), so that the lines the consumer (and its
/// prefetchers) read are ones the producer has finished writing.
const PACE_LAG_BYTES: u64 = 16 << 10;

/// Pacing is on by default where slots are smaller than this: a slot of a
/// page or more starts a page of its own, and no prefetcher reads across
/// a page, so a consumer just behind its producer does not take its lines
/// early. There pacing only costs its `tail` reads (4 KiB messages read in
/// place streamed a fifth slower with it).
const PACE_SLOTS_BELOW: usize = 4096;

/// [`Consumer::pace_lag`] for a ring of `cap` slots of `slot_size` bytes.
fn pace_lag(cap: u64, slot_size: usize) -> u64 {
    (PACE_LAG_BYTES / slot_size.max(1) as u64).clamp(1, (cap / 2).max(1))
}

/// Most re-reads of `tail` one pacing step waits for the producer to get
/// [`PACE_LAG_BYTES`] ahead; each is preceded by [`PACE_PAUSES`] spin
/// hints.
const PACE_ROUNDS: u32 = if cfg!(loom) { 1 } else { 16 };
const PACE_PAUSES: u32 = if cfg!(loom) { 1 } else { 4 };

// SAFETY: as for `Producer`.
unsafe impl Send for Consumer {}
// SAFETY: `&Consumer` only reads atomics (len, capacity, stats).
unsafe impl Sync for Consumer {}

impl SetMember for Consumer {
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

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", &self.holder.mapping.label)
            .field("head", &self.head)
            .field("capacity", &self.holder.ring.capacity())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub(crate) fn new(mapping: Arc<Mapping>, wait: WaitConfig) -> Result<Consumer, Error> {
        let holder = Holder::claim(mapping, Side::Consumer, wait)?;
        let hdr = holder.ring.header();
        // ORDERING: Acquire; pairs with the Release stores of `head` (by a
        // previous consumer) and `tail` (by the producer).
        let head = hdr.head.load(Acquire);
        let tail = hdr.tail.load(Acquire);
        let cap = holder.ring.capacity();
        let lag = pace_lag(cap, holder.ring.slot_size());
        let pace_every = if holder.ring.slot_size() < PACE_SLOTS_BELOW {
            PACE_EVERY
        } else {
            u64::MAX
        };
        let c = Consumer {
            holder,
            head,
            known: tail.max(head),
            tail_seen: tail,
            polled: u64::MAX,
            streak: 0,
            pace_every,
            pace_lag: lag,
        };
        // `tail` may lag `head`: a previous consumer read messages by their
        // commit words before the producer's `tail` store was seen, or the
        // producer died between the two stores (its successor repairs
        // `tail`). Either way by less than a lap.
        if !check_indices(head.min(tail), head.max(tail), cap) {
            let corruption = Corruption {
                field: "tail",
                found: tail,
                expected: Expected::Range {
                    min: head,
                    max: head.saturating_add(c.holder.ring.capacity()),
                },
            };
            let address = c.holder.mapping.label.clone();
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
        let tail = self.holder.ring.header().tail.load(Relaxed);
        (tail.max(self.known).saturating_sub(self.head)).min(self.holder.ring.capacity()) as usize
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

    /// Whether this consumer paces itself behind a streaming producer (by
    /// default on where slots are smaller than 4 KiB).
    pub fn pacing(&self) -> bool {
        self.pace_every != u64::MAX
    }

    /// Turns pacing on or off. With it on, a consumer that has received
    /// 16 messages in a row without finding the ring empty checks how far
    /// behind the producer it is and, if less than 16 KiB of slots, waits
    /// (at most 16 short pauses, each with a re-read of `tail`, and only
    /// while the producer keeps moving) for it to get that far ahead; then
    /// it reads the messages in between as a batch. Streaming right
    /// behind its producer, a consumer takes a cache miss per slot in
    /// series and both sides slow down (8-byte messages at a third of the
    /// rate; see `docs/benchmarks.md`, "A consumer just behind the
    /// producer: pacing"). A consumer that finds the ring empty between
    /// messages never paces, so a lone message or a request and its reply
    /// pay nothing; turn it off where no message may wait behind a pacing
    /// step (a few microseconds at most) even while the producer streams.
    /// On slots of 4 KiB or more it is off by default: each slot starts a
    /// page, no prefetcher reads ahead across it, and pacing would only
    /// cost its reads of `tail`.
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new().slots(64).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// assert!(rx.pacing());
    /// rx.set_pacing(false);
    /// for i in 0..40u8 {
    ///     tx.try_send(&[i])?;
    /// }
    /// let mut buf = [0u8; 1];
    /// for i in 0..40u8 {
    ///     rx.try_recv(&mut buf)?;
    ///     assert_eq!(buf[0], i);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_pacing(&mut self, on: bool) {
        self.pace_every = if on { PACE_EVERY } else { u64::MAX };
        self.streak = 0;
    }

    /// Sets how often a blocked call checks that the producer is alive
    /// (default 100 ms): a dead producer is reported within about this long.
    pub fn set_heartbeat(&mut self, interval: Duration) {
        self.holder.wait.heartbeat = interval.max(Duration::from_millis(1));
    }

    /// Whether a producer holds the ring and its process is alive.
    pub fn peer_alive(&mut self) -> bool {
        let ring = self.holder.ring;
        matches!(
            self.holder.peer_status(&ring.header().producer),
            Some((_, true))
        )
    }

    /// Process id of the producer holding the ring, if any.
    pub fn peer_pid(&self) -> Option<u32> {
        self.holder.peer_pid(&self.holder.ring.header().producer)
    }

    /// Messages ready to read, reading the producer's `tail` only if the
    /// cache says there are fewer than `want` (a batch wants many, a single
    /// receive one).
    ///
    /// A caught-up consumer asking for one message polls the commit word of
    /// the slot it expects, not `tail`: the slot's line is the one the
    /// producer writes anyway, so a hand-off moves one cache line.
    #[inline(always)]
    pub(super) fn available(&mut self, want: u64) -> Result<u64, TryRecvError> {
        let avail = self.known - self.head;
        if avail >= want {
            return Ok(avail);
        }
        if want == 1 {
            if self.slot_committed(self.head) {
                self.streak += 1;
                if self.streak >= self.pace_every {
                    self.pace()?;
                }
                return Ok(self.known - self.head);
            }
            self.streak = 0;
            return self.empty_or_closed();
        }
        let avail = self.refresh_tail()?;
        if avail > 0 {
            return Ok(avail);
        }
        self.empty_or_closed()
    }

    /// As `available(1)`, and also re-reading `tail` when the commit word
    /// says "not yet": the re-check after announcing a sleep.
    pub(super) fn available_thorough(&mut self) -> Result<u64, TryRecvError> {
        match self.available(1) {
            Err(TryRecvError::Empty) => {}
            r => return r,
        }
        match self.refresh_tail()? {
            0 => Err(TryRecvError::Empty),
            n => Ok(n),
        }
    }

    /// Whether the message at `pos` is committed, by its slot's commit
    /// word; if so, it is known to be.
    #[inline(always)]
    fn slot_committed(&mut self, pos: u64) -> bool {
        // ORDERING: Acquire; pairs with the Release commit-word store in
        // `Producer::publish`, so the slot's payload and length are visible.
        // A hostile value is merely "not yet".
        let committed = self.holder.ring.commit_word(pos).load(Acquire) == commit_value(pos);
        if committed {
            self.known = pos + 1;
            self.polled = pos;
        }
        committed
    }

    /// Nothing is ready: `Empty`, or `Disconnected` if the producer closed
    /// and everything it committed was received.
    #[cold]
    fn empty_or_closed(&mut self) -> Result<u64, TryRecvError> {
        let ring = self.holder.ring;
        let hdr = ring.header();
        // ORDERING: Acquire; pairs with the Release close in
        // `Holder::close`, so the commit words and `tail` read below are
        // the producer's last.
        if Claim(hdr.producer.claim.load(Acquire)).state() != STATE_CLOSED {
            if hdr.is_removed() {
                return Err(TryRecvError::Removed);
            }
            return Err(TryRecvError::Empty);
        }
        if self.refresh_tail()? > 0 || self.slot_committed(self.head) {
            return Ok(self.known - self.head);
        }
        Err(TryRecvError::Disconnected)
    }

    /// A consumer that took [`PACE_EVERY`] messages in a row by their
    /// commit words, never finding the ring empty, is streaming just
    /// behind the producer. There both sides stall: each slot the
    /// consumer reads is a line the producer wrote moments before, and
    /// the lines the consumer's prefetchers fetch ahead are ones the
    /// producer has yet to write, so it must take them back. Measured
    /// (`docs/benchmarks.md`, "A consumer just behind the producer:
    /// pacing"), 8-byte messages then stream at a third of a bare ring's
    /// rate.
    ///
    /// So it reads `tail` and, while the producer is less than
    /// [`pace_lag`](Self::pace_lag) slots ahead and still moving, lets it
    /// get ahead: at most [`PACE_ROUNDS`] short pauses, each followed by a
    /// re-read of `tail`. It stops as soon as a re-read finds `tail` where
    /// it was (a producer no faster than us gains nothing from waiting).
    /// Whatever `tail` says is then known committed and read without
    /// polling commit words, as a batch.
    ///
    /// A consumer that finds the ring empty never paces (the streak
    /// restarts), so a lone message or a ping-pong pays nothing; a
    /// message can be delayed by at most one pacing step while the
    /// producer is streaming. A `tail` that fails its checks comes back
    /// as `Corrupt`; the message at `head`, known by its commit word,
    /// stays for the next call.
    #[cold]
    #[inline(never)]
    fn pace(&mut self) -> Result<(), TryRecvError> {
        self.streak = 0;
        let mut ahead = self.pace_tail()?;
        for _ in 0..PACE_ROUNDS {
            if ahead >= self.pace_lag {
                break;
            }
            for _ in 0..PACE_PAUSES {
                spin_loop();
            }
            let now = self.pace_tail()?;
            if now == ahead {
                break;
            }
            ahead = now;
        }
        Ok(())
    }

    /// `pace`'s reads of `tail`: `refresh_tail`. (With the deliberate bug
    /// `pace_known_from_tail`, `known` is set to `tail` instead of
    /// extended to it, forgetting that commit words run ahead of `tail`;
    /// `loom_ring`'s checks then fail: a message delivered twice, a slot's
    /// old contents taken for the next message.)
    #[inline]
    fn pace_tail(&mut self) -> Result<u64, TryRecvError> {
        let r = self.refresh_tail();
        if cfg!(shmpipe_bug = "pace_known_from_tail") {
            self.known = self.tail_seen;
        }
        r
    }

    #[cold]
    pub(super) fn refresh_tail(&mut self) -> Result<u64, TryRecvError> {
        // ORDERING: Acquire; pairs with the Release `tail` store in
        // `Producer::publish`, so the slot writes before it are visible.
        let tail = self.holder.ring.header().tail.load(Acquire);
        let cap = self.holder.ring.capacity();
        // `tail` may lag `head` (see `new`), never by a lap, never backwards.
        if tail < self.tail_seen || !check_indices(self.head.min(tail), self.head.max(tail), cap) {
            return Err(TryRecvError::Corrupt(Corruption {
                field: "tail",
                found: tail,
                expected: Expected::Range {
                    min: self.tail_seen,
                    max: self.head.saturating_add(cap),
                },
            }));
        }
        self.tail_seen = tail;
        self.known = self.known.max(tail);
        Ok(self.known - self.head)
    }

    /// Like `available`, counting a stall when the ring is empty.
    #[inline(always)]
    pub(super) fn available_counted(&mut self, want: u64) -> Result<u64, TryRecvError> {
        self.holder.disarm();
        let r = self.available(want);
        if let Err(TryRecvError::Empty) = r {
            let ring = self.holder.ring;
            let hdr = ring.header();
            self.holder.count_stall(&hdr.consumer_stats);
        }
        r
    }

    /// The checked length of the committed one-slot message at `pos`;
    /// `Ok(None)` when the slot starts a multi-slot unit (a FIRST or a PAD
    /// mark: see [`unit`](Self::unit)).
    #[inline(always)]
    pub(super) fn message_len(&self, pos: u64) -> Result<Option<usize>, TryRecvError> {
        let ring = self.holder.ring;
        // Every unit's first slot holds its commit word before `tail`
        // passes it (`Producer::publish`, `publish_span`, a takeover's
        // `committed_end`): a position below `tail` without one was never
        // published, whatever `tail` says (a stale slot of the last lap).
        // Checked unless `slot_committed` just found it set.
        if pos != self.polled {
            // Relaxed: `pos` is known committed by an Acquire load of
            // `tail`, which the producer stored after this word; the word
            // changes only on the next lap, after `head` passes.
            let commit = ring.commit_word(pos).load(Relaxed);
            if commit != commit_value(pos) {
                return Err(self.bad_commit(pos, commit));
            }
        }
        let word = self
            .holder
            .mapping
            .tracker
            .read(ring.slot_index(pos), || ring.read_len(pos));
        if word & MARK_MASK != MARK_WHOLE {
            return Ok(None);
        }
        if word as usize > ring.payload_capacity() {
            return Err(self.bad_len(word));
        }
        Ok(Some(word as usize))
    }

    /// The error for a unit start below `tail` whose commit word is not
    /// its position's.
    #[cold]
    fn bad_commit(&self, pos: u64, commit: u32) -> TryRecvError {
        TryRecvError::Corrupt(Corruption {
            field: "commit word",
            found: u64::from(commit),
            expected: Expected::Exactly(u64::from(commit_value(pos))),
        })
    }

    /// The error for a one-slot length word over the payload capacity.
    #[cold]
    fn bad_len(&self, word: u32) -> TryRecvError {
        TryRecvError::Corrupt(Corruption {
            field: "slot length",
            found: u64::from(word),
            expected: Expected::Range {
                min: 0,
                max: self.holder.ring.payload_capacity() as u64,
            },
        })
    }

    /// The committed unit at `pos`, checked: a message of `len` bytes in
    /// `slots` slots, or a PAD of `slots` slots to the end of the ring.
    #[inline(always)]
    fn unit(&mut self, pos: u64) -> Result<Unit, TryRecvError> {
        match self.message_len(pos)? {
            Some(len) => Ok(Unit::Message { len, slots: 1 }),
            None => self.unit_slow(pos),
        }
    }

    #[cold]
    fn unit_slow(&mut self, pos: u64) -> Result<Unit, TryRecvError> {
        let ring = self.holder.ring;
        let (word, extent) = self.holder.mapping.tracker.read(ring.slot_index(pos), || {
            (ring.read_len(pos), ring.read_extent(pos))
        });
        let corrupt = |field, found, expected| {
            TryRecvError::Corrupt(Corruption {
                field,
                found,
                expected,
            })
        };
        if word & !MARK_MASK != 0 {
            return Err(corrupt(
                "slot length",
                u64::from(word),
                Expected::Rule("no length bits beside a FIRST or PAD mark"),
            ));
        }
        let unit = match word {
            MARK_FIRST => {
                // A FIRST mark on a message that fits one slot, or one
                // longer than the limit (hence than the ring), is a lie.
                if extent <= ring.payload_capacity() as u64 || extent > ring.message_limit() {
                    return Err(corrupt(
                        "message length",
                        extent,
                        Expected::Range {
                            min: ring.payload_capacity() as u64 + 1,
                            max: ring.message_limit(),
                        },
                    ));
                }
                let slots = ring.slots_for(extent);
                if !ring.contiguous(pos, slots) {
                    return Err(corrupt(
                        "message length",
                        extent,
                        Expected::Rule(
                            "a message that ends before the end of the ring (this ring pads \
                             at the wrap)",
                        ),
                    ));
                }
                Unit::Message {
                    len: extent as usize,
                    slots,
                }
            }
            MARK_PAD => {
                // A message of at most `message_limit` always fits from the
                // ring's first slot, so no producer pads there: refusing it
                // keeps a hostile one from making the consumer release
                // whole laps of PADs, one store each, without end.
                if ring.slot_index(pos) == 0 {
                    return Err(corrupt(
                        "pad length",
                        extent,
                        Expected::Rule("no PAD at the ring's first slot"),
                    ));
                }
                let to_end = ring.capacity() - ring.slot_index(pos) as u64;
                if extent != to_end {
                    return Err(corrupt("pad length", extent, Expected::Exactly(to_end)));
                }
                Unit::Pad { slots: to_end }
            }
            _ => {
                return Err(corrupt(
                    "slot mark",
                    u64::from(word >> 30),
                    Expected::Rule("0 (whole), 1 (first of several) or 2 (pad)"),
                ))
            }
        };
        let slots = match unit {
            Unit::Message { slots, .. } | Unit::Pad { slots } => slots,
        };
        // The unit's first commit word committed all of it.
        self.known = self.known.max(pos + slots);
        Ok(unit)
    }

    /// The next message at `head` (known to be committed): its length and
    /// slots, after releasing any PAD before it. `Empty` if a PAD was all
    /// there was.
    #[inline(always)]
    pub(super) fn next_message(&mut self) -> Result<(usize, u64), TryRecvError> {
        loop {
            match self.unit(self.head)? {
                Unit::Message { len, slots } => return Ok((len, slots)),
                Unit::Pad { slots } => {
                    self.release_unit(slots, 0, 0);
                    self.available(1)?;
                }
            }
        }
    }

    /// The payload of the committed message at `pos`.
    ///
    /// # Safety
    ///
    /// `pos` is in `head..tail` and `len` was checked by `unit` (or
    /// `message_len`); the slice must be dropped before `head` passes
    /// `pos`.
    #[inline]
    pub(super) unsafe fn payload<'s>(&self, pos: u64, len: usize) -> &'s [u8] {
        // SAFETY: `len` fits the slots of the unit, which `unit` checked
        // are contiguous in this mapping; the producer does not write them
        // until `head` passes them.
        unsafe { slice::from_raw_parts(self.holder.ring.payload_ptr(pos), len) }
    }

    /// Releases `n` one-slot messages holding `bytes` bytes in all.
    #[inline]
    pub(super) fn release(&mut self, n: u64, bytes: u64) {
        self.head += n;
        self.publish_head(n, bytes);
    }

    /// Releases one unit of `slots` slots at `head` (a multi-slot message,
    /// `messages == 1`, or a PAD). The commit words of its later slots are
    /// zeroed first: they held payload (or a stale commit), and this
    /// consumer will poll them as message starts on a later lap.
    #[inline(always)]
    pub(super) fn release_unit(&mut self, slots: u64, messages: u64, bytes: u64) {
        if slots == 1 {
            self.head += 1;
            return self.publish_head(messages, bytes);
        }
        self.release_span(slots, messages, bytes);
    }

    /// `release_unit` of a unit over several slots.
    #[cold]
    fn release_span(&mut self, slots: u64, messages: u64, bytes: u64) {
        let ring = self.holder.ring;
        for pos in self.head + 1..self.head + slots {
            self.holder
                .mapping
                .tracker
                .read(ring.slot_index(pos), || ());
            // Relaxed: the `head` Release store below orders it before the
            // producer's reuse of the slot; this consumer's own later poll
            // of the word is after it in program order.
            ring.commit_word(pos).store(0, Relaxed);
        }
        self.head += slots;
        self.publish_head(messages, bytes);
    }

    /// Stores `head` and counts `messages` messages of `bytes` bytes.
    #[inline(always)]
    fn publish_head(&mut self, messages: u64, bytes: u64) {
        let ring = self.holder.ring;
        let hdr = ring.header();
        // ORDERING: Release; pairs with the Acquire `head` load in
        // `Producer::free_slots`: our reads of these slots happen before
        // the producer overwrites them.
        hdr.head.store(self.head, Release);
        // Counters started from values in the mapping: wrap, never panic.
        self.holder.stats.messages = self.holder.stats.messages.wrapping_add(messages);
        self.holder.stats.bytes = self.holder.stats.bytes.wrapping_add(bytes);
        hdr.consumer_stats
            .messages
            .store(self.holder.stats.messages, Relaxed);
        hdr.consumer_stats
            .bytes
            .store(self.holder.stats.bytes, Relaxed);
        if self.holder.wake_peer(&hdr.producer) {
            self.holder.count_wake(&hdr.consumer_stats);
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
    #[inline(always)]
    fn take_into(&mut self, buf: &mut [u8]) -> Result<usize, TryRecvError> {
        let (len, slots) = self.next_message()?;
        let Some(dst) = buf.get_mut(..len) else {
            return Err(TryRecvError::BufferTooSmall { needed: len });
        };
        // SAFETY: `next_message` checked `(len, slots)` at `head`; the
        // slice is gone before `release`.
        dst.copy_from_slice(unsafe { self.unit_payload((len, slots)) });
        self.release_unit(slots, 1, len as u64);
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

    /// Receives the next message into `buf`, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`recv_deadline`](Self::recv_deadline), never `Timeout`.
    #[inline(always)]
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

    #[inline(always)]
    fn recv_until(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, RecvError> {
        loop {
            self.ready_until(deadline)?;
            match self.take_into(buf) {
                // Only a PAD was ready: wait for the message after it.
                Err(TryRecvError::Empty) => {}
                r => return r.map_err(RecvError::from),
            }
        }
    }

    /// Receives the next message into a new `Vec`, waiting until `deadline`
    /// (`None`: as long as it takes).
    ///
    /// # Errors
    ///
    /// As [`recv_deadline`](Self::recv_deadline), never `BufferTooSmall`.
    pub fn recv_vec_deadline(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, RecvError> {
        Ok(self.borrow_until(deadline)?.to_vec())
    }

    /// Returns once a message is ready to read; fails on timeout,
    /// disconnection, peer death or corruption.
    #[inline(always)]
    pub(super) fn ready_until(&mut self, deadline: Option<Instant>) -> Result<(), RecvError> {
        match self.available_counted(1) {
            Ok(_) => Ok(()),
            Err(TryRecvError::Empty) => self.wait_readable(deadline),
            Err(e) => Err(e.into()),
        }
    }

    /// `ready_until` once the ring was found empty: spins, parks, or
    /// fails.
    #[inline(never)]
    fn wait_readable(&mut self, deadline: Option<Instant>) -> Result<(), RecvError> {
        if let Some(pid) = self.holder.known_dead_peer() {
            return Err(RecvError::PeerDied { pid });
        }
        let ring = self.holder.ring;
        let hdr = ring.header();
        let cfg = self.holder.wait;
        let mut counts = WaitStats::default();
        let asymmetric = self.holder.asymmetric;
        let died = self.holder.watch_peer_death();
        let r = wake::block(
            &hdr.consumer,
            &hdr.consumer_stats,
            &cfg,
            Sleep {
                asymmetric,
                bounded: died.is_none(),
            },
            deadline,
            &mut counts,
            |poll| {
                let ready = if poll.thorough {
                    self.available_thorough()
                } else {
                    self.available(1)
                };
                match ready {
                    Ok(_) => Some(Ok(())),
                    Err(TryRecvError::Empty) => {
                        let fired = died.as_ref().is_some_and(Fired::is_set);
                        if poll.check_peer || fired {
                            return self.if_producer_dead().map(Err);
                        }
                        None
                    }
                    Err(e) => Some(Err(e.into())),
                }
            },
        );
        self.holder.add_wait_stats(counts, &hdr.consumer_stats);
        if let Some(Err(RecvError::PeerDied { .. })) = r {
            self.holder.mark_peer_dead();
        }
        r.unwrap_or(Err(RecvError::Timeout))
    }

    /// `PeerDied` if the producer's process died and everything it
    /// committed was received; `None` while it lives or messages are left
    /// (they are delivered first).
    fn if_producer_dead(&mut self) -> Option<RecvError> {
        let ring = self.holder.ring;
        let (pid, alive) = self.holder.peer_status(&ring.header().producer)?;
        if alive {
            return None;
        }
        // Everything it committed before dying is visible now: drain first.
        match self.available_thorough() {
            Err(TryRecvError::Empty) => Some(RecvError::PeerDied { pid }),
            Ok(_) => None,
            Err(e) => Some(e.into()),
        }
    }

    /// The readiness descriptor: readable when this consumer should try
    /// again (a message arrived, the producer closed or died). Watch it
    /// with epoll, poll, mio or tokio's `AsyncFd`, after
    /// [`arm`](Self::arm) returned `true`; any later call on the consumer
    /// disarms it. Made on first use; it lives as long as the consumer.
    ///
    /// The call after a wake-up takes its message without first emptying the
    /// descriptor (a system call less on the wake-up's path), so the
    /// descriptor may stay readable until a call finds the ring empty or `arm`
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
    /// announces it to the producer, then re-checks. Returns `true` when
    /// the caller should wait for the descriptor to become readable, and
    /// `false` when it should not because a message is ready now (or the
    /// ring is in a state the next receive reports: closed, corrupt).
    ///
    /// While both sides are busy nobody arms, and the producer makes no
    /// system call; an armed consumer gets one notification per wake-up.
    ///
    /// # Errors
    ///
    /// [`RecvError::PeerDied`] when the producer's process died and every
    /// message it committed was received: at once, and on every later call
    /// until a new producer attaches. If the descriptor cannot be made this
    /// returns `Ok(false)` (do not wait) and
    /// [`readiness_fd`](Self::readiness_fd) says why.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// assert!(rx.arm()?, "empty: wait for the descriptor");
    /// let fd = rx.readiness_fd()?.as_raw_fd();
    /// tx.try_send(b"hello")?; // signals the descriptor
    /// let mut fds = [libc::pollfd { fd, events: libc::POLLIN, revents: 0 }];
    /// // SAFETY: one valid pollfd.
    /// assert_eq!(unsafe { libc::poll(fds.as_mut_ptr(), 1, 1000) }, 1);
    /// assert_eq!(rx.try_recv_vec()?, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn arm(&mut self) -> Result<bool, RecvError> {
        if let Some(pid) = self.holder.known_dead_peer() {
            if self.available(1).is_err() {
                return Err(RecvError::PeerDied { pid });
            }
            return Ok(false);
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
    /// consumer does this by itself; an event loop that armed many handles
    /// and woke for one disarms the others with this.
    pub fn disarm(&mut self) {
        self.holder.disarm();
    }

    /// The re-check after announcing (and the barrier): `true` if there is
    /// still nothing to do but wait.
    pub(crate) fn check_armed(&mut self) -> Result<bool, RecvError> {
        // The deliberate bug loom must catch (`.ci/run`): no re-check after
        // announcing, so a message published just before the announcement
        // (whose producer saw no `PARKED_NOTIFY`) is never signalled.
        if cfg!(shmpipe_bug = "no_notify_recheck") {
            return Ok(true);
        }
        match self.available_thorough() {
            Err(TryRecvError::Empty) => {}
            _ => return Ok(false),
        }
        if let Some(e) = self.if_producer_dead() {
            if matches!(e, RecvError::PeerDied { .. }) {
                self.holder.mark_peer_dead();
            }
            return Err(e);
        }
        Ok(true)
    }

    /// Whether a receive would find something now (a message, or an error
    /// to report), without taking it.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn ready_now(&mut self) -> bool {
        self.holder.disarm();
        !matches!(self.available(1), Err(TryRecvError::Empty))
    }

    /// Waits until a producer holds the ring and its process is alive, or
    /// `deadline` passes (`None`: as long as it takes); returns its pid.
    /// After `PeerDied`, this waits for the producer that takes over.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`].
    pub fn wait_for_producer(&mut self, deadline: Option<Instant>) -> Result<u32, RecvError> {
        let ring = self.holder.ring;
        let hdr = ring.header();
        let cfg = WaitConfig {
            strategy: WaitStrategy::Park,
            ..self.holder.wait
        };
        let mut counts = WaitStats::default();
        let asymmetric = self.holder.asymmetric;
        let r = wake::block(
            &hdr.consumer,
            &hdr.consumer_stats,
            &cfg,
            Sleep {
                asymmetric,
                bounded: true,
            },
            deadline,
            &mut counts,
            |_| match self.holder.peer_status(&hdr.producer) {
                Some((pid, true)) => Some(pid),
                _ => None,
            },
        );
        self.holder.add_wait_stats(counts, &hdr.consumer_stats);
        r.ok_or(RecvError::Timeout)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let ring = self.holder.ring;
        let hdr = ring.header();
        self.holder.close(&hdr.consumer, &hdr.producer);
    }
}

/// What starts at a committed position.
#[derive(Clone, Copy, Debug)]
enum Unit {
    /// A message of `len` bytes in `slots` slots.
    Message { len: usize, slots: u64 },
    /// Padding to the end of the ring.
    Pad { slots: u64 },
}
