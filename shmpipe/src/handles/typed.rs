//! [`TypedProducer`] and [`TypedConsumer`]: handles for a ring of `T`s,
//! checked once when made (type fingerprint, size, alignment) so that
//! every call after is the plain handle's, with no check left to fail but
//! each received message's length.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::time::Instant;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::value::{ReadValue, WriteValue};
use super::{Consumer, Producer};
use crate::error::{RecvError, SendError, TryRecvError, TrySendError};

/// The producer of a ring of `T`s, from
/// [`Ring::typed_producer`](crate::Ring::typed_producer).
///
/// Making it checked that the ring was created for `T` (or for no type),
/// that a `T` fits a slot and that the ring aligns its payloads for `T`,
/// however much alignment `T` needs: every [`try_reserve`](Self::try_reserve)
/// hands out a properly aligned `&mut T`. `Send`, not `Clone`; dropping it
/// closes the ring for writing, as for [`Producer`].
///
/// # Examples
///
/// ```
/// use shmpipe::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
/// use shmpipe::RingBuilder;
///
/// #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy)]
/// #[repr(C, align(64))]
/// struct Tick {
///     seq: u64,
///     price: u64,
///     rest: [u64; 6],
/// }
///
/// let ring = RingBuilder::new().slots(64).message_type::<Tick>().create_in_process()?;
/// let mut tx = ring.typed_producer::<Tick>()?;
/// let mut rx = ring.typed_consumer::<Tick>()?;
///
/// let mut slot = tx.try_reserve()?; // in place, 64-byte aligned
/// slot.seq = 1;
/// slot.price = 100;
/// slot.commit();
/// tx.try_send(&Tick { seq: 2, price: 101, rest: [0; 6] })?; // a copy
///
/// let first = rx.try_borrow()?; // in place
/// assert_eq!(&*first as *const Tick as usize % 64, 0);
/// assert_eq!(first.price, 100);
/// drop(first);
/// assert_eq!(rx.try_recv()?.price, 101); // a copy
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedProducer<T> {
    inner: Producer,
    // `fn(T) -> T`: the handle holds no `T` (it is `Send` and `Sync`
    // whatever `T` is), and is invariant in it.
    _type: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for TypedProducer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedProducer")
            .field("type", &core::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> TypedProducer<T> {
    /// Wraps a producer whose ring was checked for `T` (size, alignment,
    /// fingerprint) by the caller.
    pub(crate) fn new(inner: Producer) -> TypedProducer<T> {
        debug_assert!(size_of::<T>() <= inner.message_limit());
        debug_assert!(align_of::<T>() <= inner.payload_align());
        TypedProducer {
            inner,
            _type: PhantomData,
        }
    }

    /// Sends a copy of `value`, without blocking.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_send`], holding `()`; never `TooLarge`.
    #[inline]
    pub fn try_send(&mut self, value: &T) -> Result<(), TrySendError<()>> {
        self.inner.try_send_value(value)
    }

    /// Sends a copy of `value`, waiting as long as it takes for a free
    /// slot.
    ///
    /// # Errors
    ///
    /// As [`Producer::send`], holding `()`; never `TooLarge`.
    #[inline(always)]
    pub fn send(&mut self, value: &T) -> Result<(), SendError<()>> {
        self.inner.send_value(value)
    }

    /// Sends a copy of `value`, waiting until `deadline` for a free slot.
    ///
    /// # Errors
    ///
    /// As [`Producer::send_deadline`], holding `()`; never `TooLarge`.
    pub fn send_deadline(&mut self, value: &T, deadline: Instant) -> Result<(), SendError<()>> {
        self.inner.send_value_deadline(value, deadline)
    }

    /// Reserves the next slot for a `T` written in place, without blocking
    /// (see [`WriteValue`] on what it holds before you write it).
    ///
    /// # Errors
    ///
    /// As [`Producer::try_reserve`].
    #[inline]
    pub fn try_reserve(&mut self) -> Result<WriteValue<'_, T>, TrySendError<()>> {
        self.inner.try_reserve_value_aligned()
    }

    /// Reserves the next slot for a `T`, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`Producer::reserve`].
    #[inline(always)]
    pub fn reserve(&mut self) -> Result<WriteValue<'_, T>, SendError<()>> {
        self.inner.reserve_value_until(None)
    }

    /// Reserves the next slot for a `T`, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`Producer::reserve_deadline`].
    pub fn reserve_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<WriteValue<'_, T>, SendError<()>> {
        self.inner.reserve_value_until(Some(deadline))
    }
}

impl<T> TypedProducer<T> {
    /// The plain producer: its counters, wait settings, readiness
    /// descriptor.
    pub fn untyped(&self) -> &Producer {
        &self.inner
    }

    /// The plain producer, mutably (to set how it waits, to arm it, or to
    /// send bytes: an untyped message on a typed ring is the caller's
    /// business, and the consumer's length check refuses it).
    pub fn untyped_mut(&mut self) -> &mut Producer {
        &mut self.inner
    }

    /// Unwraps the plain producer.
    pub fn into_untyped(self) -> Producer {
        self.inner
    }
}

/// The consumer of a ring of `T`s, from
/// [`Ring::typed_consumer`](crate::Ring::typed_consumer); checked when
/// made like a [`TypedProducer`], so that every
/// [`try_borrow`](Self::try_borrow) gives a properly aligned `&T`.
/// `Send`, not `Clone`.
///
/// [`try_recv`](Self::try_recv) (a copy) is safe against any producer;
/// [`try_borrow`](Self::try_borrow) (in place) is for a producer you trust:
/// see [`ReadValue`].
pub struct TypedConsumer<T> {
    inner: Consumer,
    _type: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for TypedConsumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedConsumer")
            .field("type", &core::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> TypedConsumer<T> {
    /// Wraps a consumer whose ring was checked for `T` by the caller.
    pub(crate) fn new(inner: Consumer) -> TypedConsumer<T> {
        debug_assert!(size_of::<T>() <= inner.message_limit());
        debug_assert!(align_of::<T>() <= inner.payload_align());
        TypedConsumer {
            inner,
            _type: PhantomData,
        }
    }

    /// Receives the next `T` as a copy, without blocking.
    ///
    /// # Errors
    ///
    /// As [`Consumer::try_recv_value`].
    #[inline]
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.inner.try_recv_value()
    }

    /// Receives the next `T` as a copy, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv_value`].
    #[inline(always)]
    pub fn recv(&mut self) -> Result<T, RecvError> {
        self.inner.recv_value()
    }

    /// Receives the next `T` as a copy, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv_value_deadline`].
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<T, RecvError> {
        self.inner.recv_value_deadline(deadline)
    }

    /// Borrows the next `T` in place, without blocking; for a trusted
    /// producer (see [`ReadValue`]).
    ///
    /// # Errors
    ///
    /// As [`Consumer::try_borrow_value`].
    #[inline]
    pub fn try_borrow(&mut self) -> Result<ReadValue<'_, T>, TryRecvError> {
        self.inner.try_borrow_value_aligned()
    }

    /// Borrows the next `T` in place, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`Consumer::borrow_value`].
    #[inline(always)]
    pub fn borrow(&mut self) -> Result<ReadValue<'_, T>, RecvError> {
        self.inner.borrow_value_until(None)
    }

    /// Borrows the next `T` in place, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`Consumer::borrow_value_deadline`].
    pub fn borrow_deadline(&mut self, deadline: Instant) -> Result<ReadValue<'_, T>, RecvError> {
        self.inner.borrow_value_until(Some(deadline))
    }
}

impl<T> TypedConsumer<T> {
    /// The plain consumer: its counters, wait settings, readiness
    /// descriptor.
    pub fn untyped(&self) -> &Consumer {
        &self.inner
    }

    /// The plain consumer, mutably (to set how it waits, to arm it, or to
    /// read a message of another length as bytes and get past it).
    pub fn untyped_mut(&mut self) -> &mut Consumer {
        &mut self.inner
    }

    /// Unwraps the plain consumer.
    pub fn into_untyped(self) -> Consumer {
        self.inner
    }
}
