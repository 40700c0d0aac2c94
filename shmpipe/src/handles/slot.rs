//! Zero-copy and batch calls, next to the guards they return: the
//! producer reserves slots and writes in place ([`WriteSlot`],
//! [`WriteBatch`]), the consumer reads in place ([`ReadSlot`]); each guard
//! publishes or releases with one index store.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::slice;
use std::time::{Duration, Instant};

use super::deadline_after;
use super::message::Message;
use super::{Consumer, Producer};
use crate::error::{RecvError, SendError, TryRecvError, TrySendError};
use crate::sync::Ordering::Relaxed;

impl Producer {
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
    #[inline]
    pub fn try_reserve(&mut self) -> Result<WriteSlot<'_>, TrySendError<()>> {
        self.reserve_check(1)?;
        Ok(WriteSlot::new(self))
    }

    /// Reserves the next slot, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`reserve_deadline`](Self::reserve_deadline), never `Timeout`.
    #[inline(always)]
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

    #[inline(always)]
    fn reserve_until(&mut self, deadline: Option<Instant>) -> Result<WriteSlot<'_>, SendError<()>> {
        let len = self.holder.ring.payload_capacity();
        self.reserve_one_until(len, deadline)
    }

    /// Reserves one slot, its first `len` bytes handed out (at most the
    /// slot's payload, checked by the caller), waiting until `deadline`:
    /// `reserve` (all of the payload) and the typed handles (a `T`).
    #[inline(always)]
    pub(super) fn reserve_one_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteSlot<'_>, SendError<()>> {
        debug_assert!(len <= self.holder.ring.payload_capacity());
        match self.reserve_check(1) {
            Ok(_) => {}
            Err(TrySendError::Full(())) => {
                self.wait_writable(1, deadline)?;
                // `wait_writable` returned Ok: a slot is free and only this
                // handle can fill it, but the consumer may have closed
                // meanwhile.
                self.free_slots(1).map_err(SendError::from)?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(WriteSlot::with_len(self, len, 1))
    }

    /// Reserves room for a message of exactly `len` bytes, without
    /// blocking: one slot, or as many consecutive slots as it takes, up to
    /// the [message limit](Producer::message_limit). The returned
    /// [`WriteSlot`] dereferences to one `&mut [u8]` of `len` bytes
    /// (contiguous even across the end of the ring); write the message
    /// into it and [`commit`](WriteSlot::commit) its length (at most
    /// `len`). The consumer sees all of it or, if this process dies first,
    /// none of it.
    ///
    /// # Errors
    ///
    /// [`TrySendError::TooLarge`] above the message limit, else as
    /// [`try_reserve`](Self::try_reserve). On a ring that pads at the wrap
    /// ([`RingInfo::contiguous_wrap`](crate::RingInfo::contiguous_wrap)
    /// false), a `Full` reservation may have published a PAD already.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new()
    ///     .slots(16)
    ///     .slot_size(4096)
    ///     .create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut slot = tx.try_reserve_len(20_000)?; // 5 slots
    /// slot.fill(0xab);
    /// slot.commit(20_000);
    /// let msg = rx.try_borrow()?; // one slice, in place
    /// assert_eq!(msg.len(), 20_000);
    /// assert!(msg.iter().all(|&b| b == 0xab));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_reserve_len(&mut self, len: usize) -> Result<WriteSlot<'_>, TrySendError<()>> {
        let n = self
            .check_limit(len)
            .map_err(|max| TrySendError::TooLarge { msg: (), len, max })?;
        if n == 1 {
            self.reserve_check(1)?;
        } else {
            self.place(n)?;
        }
        Ok(WriteSlot::with_len(self, len, n))
    }

    /// Like [`try_reserve_len`](Self::try_reserve_len), waiting until the
    /// slots are free or `deadline` passes (`None`: as long as it takes).
    ///
    /// # Errors
    ///
    /// As [`reserve_deadline`](Self::reserve_deadline), and
    /// [`SendError::TooLarge`].
    pub fn reserve_len_deadline(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteSlot<'_>, SendError<()>> {
        let ring = self.holder.ring;
        let n = self
            .check_limit(len)
            .map_err(|max| SendError::TooLarge { msg: (), len, max })?;
        loop {
            let r = if n == 1 {
                self.reserve_check(1).map(|_| ())
            } else {
                self.place(n)
            };
            match r {
                Ok(()) => break,
                Err(TrySendError::Full(())) => {}
                Err(e) => return Err(e.into()),
            }
            let want = if ring.contiguous(self.tail, n) {
                n
            } else {
                ring.capacity() - ring.slot_index(self.tail) as u64
            };
            self.wait_writable(want, deadline)?;
        }
        Ok(WriteSlot::with_len(self, len, n))
    }

    /// [`reserve_len_deadline`](Self::reserve_len_deadline) without a
    /// deadline.
    ///
    /// # Errors
    ///
    /// As [`reserve_len_deadline`](Self::reserve_len_deadline), never
    /// `Timeout`.
    pub fn reserve_len(&mut self, len: usize) -> Result<WriteSlot<'_>, SendError<()>> {
        self.reserve_len_deadline(len, None)
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
        let want = (max.max(1) as u64).min(self.holder.ring.capacity());
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
        let want = (max.max(1) as u64).min(self.holder.ring.capacity());
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

/// A slot reserved by [`Producer::try_reserve`] (or `reserve*`), or the
/// run of slots reserved by [`Producer::try_reserve_len`]: write the
/// message into it (it dereferences to the whole payload area, one slice)
/// and [`commit`](Self::commit) its length. Dropping it publishes nothing.
pub struct WriteSlot<'a> {
    producer: &'a mut Producer,
    /// The bytes reserved, `len` of them. A pointer, not a `&mut [u8]`:
    /// committing fewer slots than were reserved zeroes commit words inside
    /// these bytes, which no reference held by the guard may cover then
    /// (a reference in a value passed by value, as `commit(self)` takes
    /// it, is protected for the whole call).
    buf: NonNull<u8>,
    len: usize,
    /// Slots reserved.
    slots: u64,
    _bytes: PhantomData<&'a mut [u8]>,
}

// SAFETY: a `WriteSlot` is a `&mut Producer` and the exclusive use of the
// bytes it reserved (what a `&'a mut [u8]` would be): both may move to, and
// be shared with, another thread like those references.
unsafe impl Send for WriteSlot<'_> {}
// SAFETY: as above; `&WriteSlot` only reads the bytes.
unsafe impl Sync for WriteSlot<'_> {}

impl<'a> WriteSlot<'a> {
    #[inline(always)]
    fn new(producer: &'a mut Producer) -> WriteSlot<'a> {
        let cap = producer.holder.ring.payload_capacity();
        WriteSlot::with_len(producer, cap, 1)
    }

    /// `len` bytes over the `slots` free, contiguous slots at `tail`.
    #[inline(always)]
    fn with_len(producer: &'a mut Producer, len: usize, slots: u64) -> WriteSlot<'a> {
        let ring = producer.holder.ring;
        let pos = producer.tail;
        producer
            .holder
            .mapping
            .tracker
            .write_span(ring.slot_index(pos), slots, || ());
        if slots > 1 {
            // SAFETY: the slots are free (checked by the caller). The
            // header goes first, so that a successor after a crash knows
            // how far the payload written below may reach.
            unsafe { producer.write_first(pos, len as u64) };
        }
        // SAFETY: the `slots` slots at `tail` are free and contiguous
        // (checked by the caller: `reserve_check` or `place`), so the
        // consumer does not read them until they are published, and the
        // exclusive borrow of the producer keeps anyone else in this
        // process from writing them; `len` fits them (`check_limit`). They
        // hold initialised bytes (the segment was zero-filled). The lifetime
        // is tied to the borrow of the producer, which keeps the mapping
        // alive. (Kept as a pointer; `deref` remakes the slice.)
        let buf = NonNull::from(unsafe { slice::from_raw_parts_mut(ring.payload_ptr(pos), len) });
        let buf = buf.cast::<u8>();
        WriteSlot {
            producer,
            buf,
            len,
            slots,
            _bytes: PhantomData,
        }
    }

    /// The bytes reserved: the slot's payload capacity, or the length
    /// given to [`Producer::try_reserve_len`].
    pub fn capacity(&self) -> usize {
        self.len
    }

    /// Publishes the first `len` bytes written as one message.
    ///
    /// # Panics
    ///
    /// If `len` exceeds [`capacity`](Self::capacity).
    #[inline(always)]
    pub fn commit(self, len: usize) {
        assert!(
            len <= self.len,
            "committed length {len} exceeds the slot's capacity {}",
            self.len
        );
        let p = self.producer;
        let ring = p.holder.ring;
        let pos = p.tail;
        if self.slots == 1 {
            p.holder.mapping.tracker.write(ring.slot_index(pos), || {
                // SAFETY: as in `WriteSlot::new`, this slot belongs to the
                // producer until published.
                unsafe { ring.write_len(pos, len as u32) }
            });
            return p.publish(1, len as u64);
        }
        commit_span(p, self.slots, len);
    }
}

/// `WriteSlot::commit` of a reservation over several slots (from
/// `try_reserve_len`): the message may need fewer of them.
#[cold]
fn commit_span(p: &mut Producer, slots: u64, len: usize) {
    let ring = p.holder.ring;
    let pos = p.tail;
    // The caller may have written anywhere in the reservation, also
    // where the commit words of the slots after the message sit: zero
    // those before publishing (the consumer polls the next one).
    let used = ring.slots_for(len as u64);
    for q in pos + used..pos + slots {
        // Relaxed: ours until published; the publish below is Release.
        ring.commit_word(q).store(0, Relaxed);
    }
    p.holder.mapping.tracker.write(ring.slot_index(pos), || {
        // SAFETY: the slot at `pos` belongs to the producer until
        // published.
        unsafe {
            if used == 1 {
                ring.write_len(pos, len as u32);
            } else {
                ring.write_extent(pos, len as u64);
            }
        }
    });
    if used == 1 {
        p.publish(1, len as u64);
    } else {
        p.publish_span(used, 1, len as u64);
    }
}

impl Deref for WriteSlot<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `buf` is `len` initialised bytes this producer owns until
        // it commits (see `with_len`); the borrow ends before `commit`,
        // which takes the guard.
        unsafe { slice::from_raw_parts(self.buf.as_ptr(), self.len) }
    }
}

impl DerefMut for WriteSlot<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive.
        unsafe { slice::from_raw_parts_mut(self.buf.as_ptr(), self.len) }
    }
}

impl fmt::Debug for WriteSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteSlot")
            .field("capacity", &self.len)
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
    /// [`TrySendError::TooLarge`] when `msg` does not fit one slot (a
    /// batch holds one-slot messages only; send larger ones with
    /// [`Producer::try_send`]). An owned message comes back inside the
    /// error, a borrowed one does not (see [`Message`]).
    pub fn push<M: Message>(&mut self, msg: M) -> Result<(), TrySendError<M::Unsent>> {
        let len = msg.as_ref().len();
        let max = self.producer.holder.ring.payload_capacity();
        if len > max {
            return Err(TrySendError::TooLarge {
                msg: msg.unsent(),
                len,
                max,
            });
        }
        if self.filled == self.reserved {
            return Err(TrySendError::Full(msg.unsent()));
        }
        self.producer
            .write_slot(self.producer.tail + self.filled, msg.as_ref());
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
        let ring = self.producer.holder.ring;
        let pos = self.producer.tail + self.filled;
        let tracker = &self.producer.holder.mapping.tracker;
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

impl Consumer {
    /// Borrows the next message in place, without blocking. The slot is
    /// released when the returned [`ReadSlot`] is dropped.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`], [`TryRecvError::Disconnected`] or
    /// [`TryRecvError::Corrupt`].
    #[inline]
    pub fn try_borrow(&mut self) -> Result<ReadSlot<'_>, TryRecvError> {
        self.available_counted(1)?;
        self.borrow_next()
    }

    #[inline]
    pub(super) fn borrow_next(&mut self) -> Result<ReadSlot<'_>, TryRecvError> {
        let unit = self.next_message()?;
        Ok(self.borrow_unit(unit))
    }

    /// Borrows the message `next_message` found at `head`: `len` bytes in
    /// `slots` slots.
    #[inline(always)]
    fn borrow_unit(&mut self, unit: (usize, u64)) -> ReadSlot<'_> {
        // SAFETY: `unit` is what `next_message` checked at `head`; the
        // slice lives in the ReadSlot, which releases the slots only when
        // dropped.
        let data = unsafe { self.unit_payload(unit) };
        ReadSlot::from_parts(self, data, unit.1)
    }

    /// The payload of the message at `head`, `len` bytes in `slots`
    /// slots, recorded as read with the slot tracker (all its slots).
    ///
    /// # Safety
    ///
    /// `(len, slots)` must be the committed message at `head` as checked
    /// by `next_message` (or `value_unit`), and the slice must not be used
    /// after `head` passes it (a [`ReadSlot`] made from it releases the
    /// slots only when dropped).
    #[inline(always)]
    pub(super) unsafe fn unit_payload<'s>(&self, (len, slots): (usize, u64)) -> &'s [u8] {
        let pos = self.head;
        let ring = self.holder.ring;
        self.holder
            .mapping
            .tracker
            .read_span(ring.slot_index(pos), slots, || ());
        // SAFETY: `pos` is committed and `len` checked (the caller's
        // contract); the caller bounds the slice's life.
        unsafe { self.payload(pos, len) }
    }

    /// Waits for a message (not just a PAD) and borrows it.
    #[inline(always)]
    pub(super) fn borrow_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<ReadSlot<'_>, RecvError> {
        let unit = self.message_until(deadline)?;
        Ok(self.borrow_unit(unit))
    }

    /// Waits until `deadline` for a message (not just a PAD) at `head`:
    /// its length and slots, checked, for the borrowing calls.
    #[inline(always)]
    pub(super) fn message_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<(usize, u64), RecvError> {
        loop {
            self.ready_until(deadline)?;
            // Only a PAD was ready: wait for the message after it. (Checked
            // without holding a borrow, which the loop could not give up.)
            match self.next_message() {
                Ok(unit) => return Ok(unit),
                Err(TryRecvError::Empty) => {}
                Err(e) => return Err(e.into()),
            }
        }
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
        let ring = self.holder.ring;
        let mut bytes = 0u64;
        let mut done = 0u64;
        while done < n {
            let pos = self.head + done;
            let len = match self.message_len(pos) {
                Ok(Some(len)) => len,
                // A multi-slot message or a PAD: alone, by the one-message
                // path.
                Ok(None) if done == 0 => return self.recv_one_into(f),
                Ok(None) => break,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            self.holder.mapping.tracker.read(ring.slot_index(pos), || {
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

    /// Hands the next message (at `head`, committed) to `f` and releases
    /// it; 0 if only a PAD was there.
    fn recv_one_into(&mut self, mut f: impl FnMut(&[u8])) -> Result<usize, TryRecvError> {
        match self.borrow_next() {
            Ok(m) => {
                f(&m);
                Ok(1)
            }
            Err(TryRecvError::Empty) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Borrows the next message in place, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`borrow_deadline`](Self::borrow_deadline), never `Timeout`.
    #[inline(always)]
    pub fn borrow(&mut self) -> Result<ReadSlot<'_>, RecvError> {
        self.borrow_until(None)
    }

    /// Borrows the next message in place, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`borrow_deadline`](Self::borrow_deadline).
    pub fn borrow_timeout(&mut self, timeout: Duration) -> Result<ReadSlot<'_>, RecvError> {
        self.borrow_until(deadline_after(timeout))
    }

    /// Borrows the next message in place, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// [`RecvError::Timeout`], [`RecvError::Disconnected`],
    /// [`RecvError::PeerDied`] or [`RecvError::Corrupt`].
    pub fn borrow_deadline(&mut self, deadline: Instant) -> Result<ReadSlot<'_>, RecvError> {
        self.borrow_until(Some(deadline))
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
    /// The message, `len` bytes. A pointer, not a `&[u8]`: releasing a
    /// message over several slots zeroes commit words inside what was its
    /// payload, which no reference held by the guard may cover then (a
    /// reference in a value passed by value, as to `drop(slot)`, is
    /// protected for the whole call).
    data: NonNull<u8>,
    len: usize,
    /// Slots the message takes (1 unless it is larger than a slot).
    slots: u64,
    _bytes: PhantomData<&'a [u8]>,
}

// SAFETY: a `ReadSlot` is a `&mut Consumer` and a shared view of the bytes
// it borrowed (what a `&'a [u8]` would be): both may move to, and be
// shared with, another thread like those references.
unsafe impl Send for ReadSlot<'_> {}
// SAFETY: as above; `&ReadSlot` only reads the bytes.
unsafe impl Sync for ReadSlot<'_> {}

impl<'a> ReadSlot<'a> {
    /// The borrow of the committed message at `head` (`data`, over `slots`
    /// slots), checked by the caller as `borrow_next` checks it.
    #[inline(always)]
    pub(super) fn from_parts(consumer: &'a mut Consumer, data: &'a [u8], slots: u64) -> Self {
        ReadSlot {
            consumer,
            data: NonNull::from(data).cast(),
            len: data.len(),
            slots,
            _bytes: PhantomData,
        }
    }
}

impl Deref for ReadSlot<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `data` is the committed, checked message of `len` bytes
        // (see `from_parts`), released only in `drop`, after every borrow
        // of the guard has ended.
        unsafe { slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for ReadSlot<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for ReadSlot<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        let len = self.len as u64;
        self.consumer.release_unit(self.slots, 1, len);
    }
}

impl fmt::Debug for ReadSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSlot").field("len", &self.len).finish()
    }
}
