//! Typed messages on the plain handles: a `T` sent as its bytes
//! ([`Producer::send_value`]), written in place ([`Producer::reserve_value`]
//! and its guard [`WriteValue`]), received as a copy
//! ([`Consumer::recv_value`]) or read in place ([`Consumer::borrow_value`]
//! and its guard [`ReadValue`]).
//!
//! The bounds are `zerocopy`'s, per call: sending needs the bytes of a `T`
//! (`IntoBytes + Immutable`: no padding, no interior mutability), receiving
//! a `T` from any bytes (`FromBytes`: every bit pattern is a valid `T`, so a
//! hostile producer cannot make an invalid value). Every received message's
//! length is checked to be exactly `size_of::<T>()`.
//!
//! In-place calls also need the payload aligned for `T`. On these plain
//! handles that is checked when the call is compiled: `T`'s alignment must
//! be at most [`MIN_PAYLOAD_ALIGN`], which every ring gives. A type that
//! needs more (a cache-line-aligned struct) goes through the typed handles
//! (`handles/typed.rs`), which check the ring's own alignment once, when
//! the handle is made.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::time::Instant;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::slot::{ReadSlot, WriteSlot};
use super::{Consumer, Producer};
use crate::error::{Corruption, Expected, RecvError, SendError, TryRecvError, TrySendError};

/// The alignment every ring gives its payloads, whatever it was created
/// with: the largest alignment a type may need to be written or read in
/// place through the plain handles' [`Producer::reserve_value`] and
/// [`Consumer::borrow_value`] (checked when the call is compiled). Types
/// that need more use [`Ring::typed_producer`](crate::Ring::typed_producer)
/// and [`Ring::typed_consumer`](crate::Ring::typed_consumer) on a ring
/// created for them.
pub const MIN_PAYLOAD_ALIGN: usize = crate::layout::MIN_PAYLOAD_ALIGN;

impl Producer {
    /// Sends a copy of `value`'s bytes as one message, without blocking.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send); the value stays with the caller
    /// (the error holds `()`). `TooLarge` if a `T` exceeds the
    /// [message limit](Self::message_limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
    ///
    /// #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug, PartialEq)]
    /// #[repr(C)]
    /// struct Tick {
    ///     price: u64,
    ///     qty: u32,
    ///     side: u32,
    /// }
    ///
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send_value(&Tick { price: 101, qty: 5, side: 1 })?;
    /// let tick: Tick = rx.try_recv_value()?;
    /// assert_eq!(tick, Tick { price: 101, qty: 5, side: 1 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_send_value<T: IntoBytes + Immutable>(
        &mut self,
        value: &T,
    ) -> Result<(), TrySendError<()>> {
        self.try_send(value.as_bytes()).map_err(|e| e.map(drop))
    }

    /// Sends a copy of `value`'s bytes, waiting as long as it takes for a
    /// free slot.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send), holding `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send_value(&[1u32, 2, 3])?;
    /// assert_eq!(rx.recv_value::<[u32; 3]>()?, [1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn send_value<T: IntoBytes + Immutable>(&mut self, value: &T) -> Result<(), SendError<()>> {
        self.send(value.as_bytes()).map_err(|e| e.map(drop))
    }

    /// Sends a copy of `value`'s bytes, waiting until `deadline` for a free
    /// slot.
    ///
    /// # Errors
    ///
    /// As [`send_deadline`](Self::send_deadline), holding `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let ring = shmpipe::RingBuilder::new().slots(1).create_in_process()?;
    /// let (mut tx, _rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send_value_deadline(&7u64, Instant::now())?;
    /// let soon = Instant::now() + Duration::from_millis(10);
    /// assert!(tx.send_value_deadline(&8u64, soon).unwrap_err().is_timeout());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_value_deadline<T: IntoBytes + Immutable>(
        &mut self,
        value: &T,
        deadline: Instant,
    ) -> Result<(), SendError<()>> {
        self.send_deadline(value.as_bytes(), deadline)
            .map_err(|e| e.map(drop))
    }

    /// Reserves the next slot for a `T` written in place, without
    /// blocking. Write it through the returned [`WriteValue`] (a `&mut T`)
    /// and [`commit`](WriteValue::commit); dropping it publishes nothing.
    ///
    /// `T`'s alignment must be at most [`MIN_PAYLOAD_ALIGN`]: checked when
    /// this call is compiled (a type that needs more is a compile error
    /// here; use [`Ring::typed_producer`](crate::Ring::typed_producer)).
    ///
    /// # Errors
    ///
    /// As [`try_reserve`](Self::try_reserve); `TooLarge` if a `T` exceeds
    /// the [message limit](Self::message_limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};
    ///
    /// #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    /// #[repr(C)]
    /// struct Quote {
    ///     bid: u64,
    ///     ask: u64,
    /// }
    ///
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut slot = tx.try_reserve_value::<Quote>()?;
    /// // The slot holds whatever it carried last (a valid `Quote`, since
    /// // any bytes are): set every field, or start from zero.
    /// slot.zero();
    /// slot.bid = 99;
    /// slot.commit();
    /// let q = rx.try_borrow_value::<Quote>()?;
    /// assert_eq!((q.bid, q.ask), (99, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A type that needs more alignment than every ring gives is refused
    /// when compiled:
    ///
    /// ```compile_fail
    /// # use shmpipe::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
    /// #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    /// #[repr(C, align(64))]
    /// struct Line([u8; 64]);
    /// # let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let mut tx = ring.producer()?;
    /// tx.try_reserve_value::<Line>()?.commit();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_reserve_value<T: FromBytes + IntoBytes + KnownLayout>(
        &mut self,
    ) -> Result<WriteValue<'_, T>, TrySendError<()>> {
        const { assert_min_align::<T>() };
        self.try_reserve_value_aligned()
    }

    /// Reserves the next slot for a `T`, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Self::reserve); `TooLarge` if a `T` exceeds the
    /// [message limit](Self::message_limit).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut slot = tx.reserve_value::<[u64; 4]>()?;
    /// *slot = [1, 2, 3, 4];
    /// slot.commit();
    /// assert_eq!(rx.recv_value::<[u64; 4]>()?, [1, 2, 3, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn reserve_value<T: FromBytes + IntoBytes + KnownLayout>(
        &mut self,
    ) -> Result<WriteValue<'_, T>, SendError<()>> {
        const { assert_min_align::<T>() };
        self.reserve_value_until(None)
    }

    /// Reserves the next slot for a `T`, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`reserve_deadline`](Self::reserve_deadline); `TooLarge` if a `T`
    /// exceeds the [message limit](Self::message_limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let mut tx = ring.producer()?;
    /// let mut slot = tx.reserve_value_deadline::<u32>(Instant::now())?;
    /// *slot = 5;
    /// slot.commit();
    /// assert_eq!(tx.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve_value_deadline<T: FromBytes + IntoBytes + KnownLayout>(
        &mut self,
        deadline: Instant,
    ) -> Result<WriteValue<'_, T>, SendError<()>> {
        const { assert_min_align::<T>() };
        self.reserve_value_until(Some(deadline))
    }

    /// `try_reserve_value` without the compile-time alignment bound: the
    /// caller (a typed handle) checked the ring's alignment.
    #[inline]
    pub(crate) fn try_reserve_value_aligned<T: FromBytes + IntoBytes + KnownLayout>(
        &mut self,
    ) -> Result<WriteValue<'_, T>, TrySendError<()>> {
        let slot = self.try_reserve_len(size_of::<T>())?;
        WriteValue::new(slot).map_err(|corruption| TrySendError::Corrupt {
            msg: (),
            corruption,
        })
    }

    /// `reserve_value*` without the compile-time alignment bound. A `T`
    /// that fits one slot takes `reserve`'s path (no division, nothing out
    /// of line); a larger one `reserve_len_deadline`'s.
    #[inline(always)]
    pub(crate) fn reserve_value_until<T: FromBytes + IntoBytes + KnownLayout>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<WriteValue<'_, T>, SendError<()>> {
        let slot = if size_of::<T>() <= self.holder.ring.payload_capacity() {
            self.reserve_one_until(size_of::<T>(), deadline)?
        } else {
            self.reserve_len_deadline(size_of::<T>(), deadline)?
        };
        WriteValue::new(slot).map_err(|corruption| SendError::Corrupt {
            msg: (),
            corruption,
        })
    }
}

/// Refuses, at compile time, a type the plain handles cannot place.
const fn assert_min_align<T>() {
    assert!(
        align_of::<T>() <= MIN_PAYLOAD_ALIGN,
        "this type needs more alignment than every ring gives (MIN_PAYLOAD_ALIGN): \
         create the ring with RingBuilder::message_type::<T>() and use \
         Ring::typed_producer / Ring::typed_consumer"
    );
}

/// Why the payload at `ptr` cannot be viewed as a `T`: it is not aligned
/// for it (unreachable once the alignment bound was checked, at compile
/// time or when a typed handle was made).
fn misaligned<T>(ptr: *const u8) -> Corruption {
    Corruption {
        field: "payload alignment",
        found: (ptr as usize % align_of::<T>()) as u64,
        expected: Expected::Exactly(0),
    }
}

/// A slot reserved for a `T` by [`Producer::try_reserve_value`] (or
/// `reserve_value*`, or a [`TypedProducer`](crate::TypedProducer)):
/// dereferences to the `T` in place; [`commit`](Self::commit) publishes
/// it. Dropping it publishes nothing.
///
/// The `T` starts as the bytes the slot carried last (zeros on a fresh
/// ring): a valid `T`, since any bytes are, but not a fresh one. Set every
/// field, assign a whole value, or call [`zero`](Self::zero) first.
pub struct WriteValue<'a, T> {
    /// `size_of::<T>()` bytes, aligned for `T` (checked in `new`).
    slot: WriteSlot<'a>,
    _type: PhantomData<&'a mut T>,
}

impl<'a, T: FromBytes + IntoBytes + KnownLayout> WriteValue<'a, T> {
    /// Views the `size_of::<T>()` bytes of `slot` as a `T`.
    #[inline(always)]
    fn new(mut slot: WriteSlot<'a>) -> Result<WriteValue<'a, T>, Corruption> {
        let ptr = slot.as_ptr();
        if T::mut_from_bytes(&mut slot).is_err() {
            return Err(misaligned::<T>(ptr));
        }
        Ok(WriteValue {
            slot,
            _type: PhantomData,
        })
    }

    /// Sets the value to all zeros.
    pub fn zero(&mut self) {
        self.slot.fill(0);
    }

    /// Publishes the value as one message of `size_of::<T>()` bytes.
    #[inline(always)]
    pub fn commit(self) {
        self.slot.commit(size_of::<T>());
    }
}

impl<T> Deref for WriteValue<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the slot's bytes are exactly `size_of::<T>()` long and
        // aligned for `T` (checked by `T::mut_from_bytes` in `new`), and any
        // bytes are a valid `T` (`FromBytes`); the borrow is the slot's.
        unsafe { &*self.slot.as_ptr().cast::<T>() }
    }
}

impl<T> DerefMut for WriteValue<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; what is written through it stays valid
        // bytes for the consumer (`IntoBytes`: no padding). `&mut self`
        // makes the borrow exclusive.
        unsafe { &mut *self.slot.as_mut_ptr().cast::<T>() }
    }
}

impl<T> fmt::Debug for WriteValue<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteValue")
            .field("type", &core::any::type_name::<T>())
            .field("capacity", &self.slot.capacity())
            .finish()
    }
}

impl Consumer {
    /// Receives the next message as a copy of a `T`, without blocking.
    ///
    /// Safe against any producer: the message must be exactly
    /// `size_of::<T>()` bytes, and any bytes are a valid `T`
    /// ([`FromBytes`]); the copy is yours, so a peer writing the slot
    /// afterwards cannot change it.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv), never `BufferTooSmall`; a message
    /// of another length is [`TryRecvError::Corrupt`] with field
    /// `slot length` and the size expected. Such a message stays in the
    /// ring: read it as bytes ([`try_recv_vec`](Self::try_recv_vec)) to
    /// get past it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::{Corruption, Expected, TryRecvError};
    ///
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send(b"12 bytes....")?; // not a u64
    /// let err = rx.try_recv_value::<u64>().unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     TryRecvError::Corrupt(Corruption {
    ///         field: "slot length",
    ///         found: 12,
    ///         expected: Expected::Exactly(8),
    ///     })
    /// ));
    /// assert_eq!(rx.try_recv_vec()?, b"12 bytes...."); // skips it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_recv_value<T: FromBytes>(&mut self) -> Result<T, TryRecvError> {
        self.available_counted(1)?;
        self.take_value()
    }

    /// Receives the next message as a copy of a `T`, waiting as long as it
    /// takes.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), never `BufferTooSmall`; a message of another
    /// length as in [`try_recv_value`](Self::try_recv_value).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send_value(&-5i64)?;
    /// assert_eq!(rx.recv_value::<i64>()?, -5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn recv_value<T: FromBytes>(&mut self) -> Result<T, RecvError> {
        self.recv_value_until(None)
    }

    /// Receives the next message as a copy of a `T`, waiting until
    /// `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_deadline`](Self::recv_deadline), never `BufferTooSmall`; a
    /// message of another length as in
    /// [`try_recv_value`](Self::try_recv_value).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (_tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let soon = Instant::now() + Duration::from_millis(10);
    /// assert!(rx.recv_value_deadline::<u64>(soon).unwrap_err().is_timeout());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_value_deadline<T: FromBytes>(&mut self, deadline: Instant) -> Result<T, RecvError> {
        self.recv_value_until(Some(deadline))
    }

    #[inline(always)]
    fn recv_value_until<T: FromBytes>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<T, RecvError> {
        loop {
            self.ready_until(deadline)?;
            match self.take_value() {
                // Only a PAD was ready: wait for the message after it.
                Err(TryRecvError::Empty) => {}
                r => return r.map_err(RecvError::from),
            }
        }
    }

    /// Copies the next message (known to be committed) out as a `T`.
    #[inline(always)]
    fn take_value<T: FromBytes>(&mut self) -> Result<T, TryRecvError> {
        let (len, slots) = self.value_len::<T>()?;
        // SAFETY: `value_len` checked `(len, slots)` at `head`; the slice
        // is gone before `release`.
        let value = T::read_from_bytes(unsafe { self.unit_payload((len, slots)) });
        // `len == size_of::<T>()`, so the copy cannot fail; if it did, the
        // length was wrong.
        let value = value.map_err(|_| wrong_len::<T>(len))?;
        self.release_unit(slots, 1, len as u64);
        Ok(value)
    }

    /// The length and slots of the next message (committed, after any PAD,
    /// which it releases), checked to be a `T`'s.
    #[inline(always)]
    fn value_len<T>(&mut self) -> Result<(usize, u64), TryRecvError> {
        value_unit::<T>(self.next_message()?)
    }

    /// Borrows the next message in place as a `T`, without blocking; the
    /// slot is released when the returned [`ReadValue`] is dropped.
    ///
    /// `T`'s alignment must be at most [`MIN_PAYLOAD_ALIGN`]: checked when
    /// this call is compiled (use
    /// [`Ring::typed_consumer`](crate::Ring::typed_consumer) for types that
    /// need more).
    ///
    /// For a trusted producer: see [`ReadValue`] on what a producer that
    /// breaks the protocol can do to a value you look at in place. Against
    /// an untrusted one, [`try_recv_value`](Self::try_recv_value) copies.
    ///
    /// # Errors
    ///
    /// As [`try_borrow`](Self::try_borrow); a message of another length as
    /// in [`try_recv_value`](Self::try_recv_value).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send_value(&[3u16, 4])?;
    /// let v = rx.try_borrow_value::<[u16; 2]>()?;
    /// assert_eq!(v[0] + v[1], 7);
    /// drop(v); // releases the slot
    /// assert!(rx.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_borrow_value<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ReadValue<'_, T>, TryRecvError> {
        const { assert_min_align::<T>() };
        self.try_borrow_value_aligned()
    }

    /// Borrows the next message in place as a `T`, waiting as long as it
    /// takes.
    ///
    /// # Errors
    ///
    /// As [`borrow`](Self::borrow); a message of another length as in
    /// [`try_recv_value`](Self::try_recv_value).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send_value(&0x1234u32)?;
    /// assert_eq!(*rx.borrow_value::<u32>()?, 0x1234);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn borrow_value<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ReadValue<'_, T>, RecvError> {
        const { assert_min_align::<T>() };
        self.borrow_value_until(None)
    }

    /// Borrows the next message in place as a `T`, waiting until
    /// `deadline`.
    ///
    /// # Errors
    ///
    /// As [`borrow_deadline`](Self::borrow_deadline); a message of another
    /// length as in [`try_recv_value`](Self::try_recv_value).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let ring = shmpipe::RingBuilder::new().slots(4).create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send_value(&1.5f64)?;
    /// let soon = Instant::now() + Duration::from_secs(1);
    /// assert_eq!(*rx.borrow_value_deadline::<f64>(soon)?, 1.5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn borrow_value_deadline<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
        deadline: Instant,
    ) -> Result<ReadValue<'_, T>, RecvError> {
        const { assert_min_align::<T>() };
        self.borrow_value_until(Some(deadline))
    }

    /// `try_borrow_value` without the compile-time alignment bound: the
    /// caller (a typed handle) checked the ring's alignment.
    #[inline(always)]
    pub(crate) fn try_borrow_value_aligned<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<ReadValue<'_, T>, TryRecvError> {
        self.available_counted(1)?;
        let unit = self.value_len::<T>()?;
        ReadValue::new(self, unit)
    }

    /// `borrow_value*` without the compile-time alignment bound.
    #[inline(always)]
    pub(crate) fn borrow_value_until<T: FromBytes + KnownLayout + Immutable>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<ReadValue<'_, T>, RecvError> {
        let unit = value_unit::<T>(self.message_until(deadline)?)?;
        Ok(ReadValue::new(self, unit)?)
    }
}

/// `unit` (a message's length and slots), checked to be a `T`'s.
#[inline(always)]
fn value_unit<T>(unit: (usize, u64)) -> Result<(usize, u64), TryRecvError> {
    if unit.0 != size_of::<T>() {
        return Err(wrong_len::<T>(unit.0));
    }
    Ok(unit)
}

/// A message of `len` bytes where a `T` was expected.
fn wrong_len<T>(len: usize) -> TryRecvError {
    TryRecvError::Corrupt(Corruption {
        field: "slot length",
        found: len as u64,
        expected: Expected::Exactly(size_of::<T>() as u64),
    })
}

/// A message borrowed in place as a `T` by
/// [`Consumer::try_borrow_value`] (or `borrow_value*`, or a
/// [`TypedConsumer`](crate::TypedConsumer)): dereferences to the `T` in
/// the slot, which is released when this is dropped.
///
/// # For a trusted producer
///
/// The `T` lives in shared memory, exactly like a [`ReadSlot`](crate::ReadSlot)'s
/// bytes: a producer that breaks the protocol can write the slot while you
/// look at it (never its length, which was checked once and copied). What
/// `T: FromBytes` guarantees is that every bit pattern is a valid `T`, so
/// no byte a peer writes makes an invalid value (a `bool` that is 2, an
/// enum without that variant). It does not make a concurrent write
/// harmless: under Rust's memory model such a write is a data race (as it
/// is for a `ReadSlot`), and in practice two reads of one field may
/// disagree, or a struct may be half old, half new. Nothing in this crate
/// relies on the value (lengths and indices are copied and checked before
/// use), so the damage stays in what your code concludes from it. Read in
/// place only from a producer you trust; from any other, receive a copy
/// ([`Consumer::try_recv_value`]) and validate the copy.
pub struct ReadValue<'a, T> {
    /// `size_of::<T>()` bytes, aligned for `T` (checked in `new`); releases
    /// the message when dropped.
    slot: ReadSlot<'a>,
    _type: PhantomData<&'a T>,
}

impl<'a, T: FromBytes + KnownLayout + Immutable> ReadValue<'a, T> {
    /// Borrows the next message, committed and `(len, slots)` long
    /// (checked by the caller: `value_len`, `value_unit`).
    #[inline(always)]
    fn new(
        consumer: &'a mut Consumer,
        (len, slots): (usize, u64),
    ) -> Result<ReadValue<'a, T>, TryRecvError> {
        // SAFETY: the caller checked `(len, slots)` at `head`; the bytes
        // live in the ReadSlot below, which releases the slots only when
        // dropped, or are dropped unused on the refusal.
        let bytes: &'a [u8] = unsafe { consumer.unit_payload((len, slots)) };
        // Checked before the ReadSlot exists: a refusal releases nothing.
        if T::ref_from_bytes(bytes).is_err() {
            return Err(TryRecvError::Corrupt(misaligned::<T>(bytes.as_ptr())));
        }
        Ok(ReadValue {
            slot: ReadSlot::from_parts(consumer, bytes, slots),
            _type: PhantomData,
        })
    }
}

impl<T> Deref for ReadValue<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the message is exactly `size_of::<T>()` bytes, aligned for
        // `T` (checked by `T::ref_from_bytes` in `new`), any bytes are a
        // valid `T` (`FromBytes`), and `T` has no interior mutability
        // (`Immutable`); the borrow is the slot's, released only on drop.
        unsafe { &*self.slot.as_ptr().cast::<T>() }
    }
}

impl<T> fmt::Debug for ReadValue<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadValue")
            .field("type", &core::any::type_name::<T>())
            .field("len", &self.slot.len())
            .finish()
    }
}
