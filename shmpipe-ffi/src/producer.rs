//! `shmpipe_producer_*`: the writing end.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::slice;

use shmpipe::{Producer, WriteBatch, WriteSlot};

use crate::guard::{guard, guard_value, guard_void, send_fail, try_send_fail, Fail, Wait};
use crate::ring::store_len;
use crate::*;

/// What a handle is doing between calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Nothing outstanding: every call is allowed.
    Idle,
    /// A slot is reserved (producer) or borrowed (consumer).
    Slot,
    /// One of the handle's batch callbacks is running.
    Callback,
}

/// The writing end of a ring (opaque). From `shmpipe_ring_producer`, freed
/// by `shmpipe_producer_close`. Use it from one thread at a time.
pub struct shmpipe_producer {
    state: Cell<State>,
    /// The reserved slot while `state` is `Slot`. It borrows `*inner`
    /// (which never moves) and is dropped before `inner` is freed.
    slot: UnsafeCell<Option<WriteSlot<'static>>>,
    /// From `Box::into_raw`; freed by `shmpipe_producer_close`. Reached only
    /// through [`shmpipe_producer::idle`] while `state` is `Idle`, so no two
    /// `&mut` to it are ever live.
    inner: NonNull<Producer>,
    /// Geometry, copied at claim time so that the getters never touch
    /// `inner` while a slot borrows it.
    capacity: usize,
    max_message: usize,
    message_limit: usize,
    payload_align: usize,
}

/// One message to send, for `shmpipe_producer_send_batch`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmpipe_iovec {
    /// The message bytes (may be NULL when `len` is 0).
    pub data: *const c_void,
    /// The message length in bytes.
    pub len: usize,
}

/// Writes message number `index` of a batch into `slot` (`cap` bytes of
/// shared memory) and returns its length, at most `cap`. Called by
/// `shmpipe_producer_fill_batch`.
pub type shmpipe_fill_fn = Option<
    unsafe extern "C" fn(ctx: *mut c_void, index: usize, slot: *mut c_void, cap: usize) -> usize,
>;

impl shmpipe_producer {
    pub(crate) fn new(p: Producer) -> *mut shmpipe_producer {
        let (capacity, max_message) = (p.capacity(), p.max_message());
        let (message_limit, payload_align) = (p.message_limit(), p.payload_align());
        let inner = NonNull::from(Box::leak(Box::new(p)));
        Box::into_raw(Box::new(shmpipe_producer {
            state: Cell::new(State::Idle),
            slot: UnsafeCell::new(None),
            inner,
            capacity,
            max_message,
            message_limit,
            payload_align,
        }))
    }

    /// The producer, if nothing is outstanding on the handle.
    #[allow(clippy::mut_from_ref)] // exclusivity comes from `state`, see `inner`
    fn idle(&self) -> Result<&mut Producer, Fail> {
        match self.state.get() {
            // SAFETY: `inner` is live until close; with `state == Idle` no
            // slot and no callback holds a `&mut` to it, and the handle is
            // used by one thread at a time (the documented contract), so
            // this is the only one.
            State::Idle => Ok(unsafe { &mut *self.inner.as_ptr() }),
            State::Slot => Err(Fail::new(
                SHMPIPE_BUSY,
                "a slot is reserved on this producer: commit or abort it first",
            )),
            State::Callback => Err(Fail::new(
                SHMPIPE_BUSY,
                "called from inside this producer's own batch callback",
            )),
        }
    }
}

/// Marks a handle as running one of its callbacks; back to `Idle` when
/// dropped, also if the callback's caller panics.
pub(crate) struct CallbackGuard<'a>(&'a Cell<State>);

impl<'a> CallbackGuard<'a> {
    pub(crate) fn enter(state: &'a Cell<State>) -> CallbackGuard<'a> {
        state.set(State::Callback);
        CallbackGuard(state)
    }
}

impl Drop for CallbackGuard<'_> {
    fn drop(&mut self) {
        self.0.set(State::Idle);
    }
}

/// Checks a producer handle pointer.
///
/// # Safety
///
/// `p` is NULL or a live producer handle.
unsafe fn handle<'a>(p: *const shmpipe_producer) -> Result<&'a shmpipe_producer, Fail> {
    // SAFETY: NULL or live, by the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| Fail::null("producer"))
}

/// The bytes of a message argument.
///
/// # Safety
///
/// `msg` is NULL or valid for reads of `len` bytes for `'a`.
unsafe fn message<'a>(msg: *const c_void, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if msg.is_null() {
        return Err(Fail::null(what));
    }
    if isize::try_from(len).is_err() {
        return Err(Fail::new(
            SHMPIPE_INVALID_ARGUMENT,
            format!("message length {len} is not a valid object size"),
        ));
    }
    // SAFETY: non-NULL, at most isize::MAX bytes, readable by the contract.
    Ok(unsafe { slice::from_raw_parts(msg.cast::<u8>(), len) })
}

/// Sends the `len` bytes at `msg` as one message: up to
/// `shmpipe_producer_max_message` bytes in one slot, larger ones (up to
/// `shmpipe_producer_message_limit`) over as many consecutive slots as they
/// take, committed at once (the consumer sees all of it or nothing).
/// `timeout_ns < 0` waits as long as it takes for free slots, `0` never
/// waits (`SHMPIPE_FULL`), `> 0` waits at most that long
/// (`SHMPIPE_TIMEOUT`).
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_FULL`, `SHMPIPE_TIMEOUT`,
/// `SHMPIPE_DISCONNECTED` (the consumer closed), `SHMPIPE_PEER_DIED` (its
/// process died), `SHMPIPE_TOO_LARGE` (above the message limit; never
/// truncated), `SHMPIPE_CORRUPT`, `SHMPIPE_BUSY` or
/// `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `p` is NULL or a live producer handle; `msg` is NULL or readable for
/// `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_send(
    p: *mut shmpipe_producer,
    msg: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let tx = unsafe { handle(p) }?.idle()?;
        // SAFETY: forwarded contract.
        let bytes = unsafe { message(msg, len, "msg") }?;
        match Wait::from_ns(timeout_ns) {
            Wait::Never => tx.try_send(bytes).map_err(try_send_fail),
            Wait::Until(None) => tx.send(bytes).map_err(send_fail),
            Wait::Until(Some(d)) => tx.send_deadline(bytes, d).map_err(send_fail),
        }
    })
}

/// `shmpipe_producer_send(p, msg, len, 0)`: never waits.
///
/// # Safety
///
/// As `shmpipe_producer_send`.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_try_send(
    p: *mut shmpipe_producer,
    msg: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmpipe_producer_send(p, msg, len, 0) }
}

/// Reserves the next slot for writing in place (zero-copy): `*buf` points
/// to `*cap` bytes of shared memory (one slot's payload,
/// `shmpipe_producer_max_message`; for more, `shmpipe_producer_reserve_len`). Write the
/// message there, then `shmpipe_producer_commit` its length, or
/// `shmpipe_producer_abort` to publish nothing. Until then every other call
/// on this producer returns `SHMPIPE_BUSY`, and `*buf` is valid only until
/// that commit, abort or close. `timeout_ns` and statuses as for
/// `shmpipe_producer_send` (never `SHMPIPE_TOO_LARGE`).
///
/// # Safety
///
/// `p` is NULL or a live producer handle; `buf` and `cap` are NULL or valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_reserve(
    p: *mut shmpipe_producer,
    buf: *mut *mut c_void,
    cap: *mut usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let h = unsafe { handle(p) }?;
        if buf.is_null() {
            return Err(Fail::null("buf"));
        }
        // SAFETY: non-NULL and writable by the contract; NULL until a slot
        // is reserved.
        unsafe { buf.write(ptr::null_mut()) };
        let tx = h.idle()?;
        let slot = match Wait::from_ns(timeout_ns) {
            Wait::Never => tx.try_reserve().map_err(try_send_fail)?,
            Wait::Until(None) => tx.reserve().map_err(send_fail)?,
            Wait::Until(Some(d)) => tx.reserve_deadline(d).map_err(send_fail)?,
        };
        // SAFETY: the slot borrows `*h.inner`, which stays at its address
        // until `shmpipe_producer_close`; close drops the slot first, and
        // while it is stored (`state == Slot`) nothing else reaches
        // `*h.inner`. So the borrow outlives every use of the slot.
        let slot: WriteSlot<'static> = unsafe { std::mem::transmute(slot) };
        // SAFETY: `state` was Idle, so no reference into `h.slot` is live.
        let stored = unsafe { &mut *h.slot.get() }.insert(slot);
        // Taken from the slot in its final place: moving it would retag its
        // buffer and invalidate a pointer taken before.
        let (data, len) = (stored.as_mut_ptr(), stored.len());
        h.state.set(State::Slot);
        // SAFETY: non-NULL checked above / NULL allowed for `cap`.
        unsafe {
            buf.write(data.cast());
            store_len(cap, len);
        }
        Ok(())
    })
}

/// Reserves room for a message of exactly `len` bytes, to write in place:
/// one slot, or as many consecutive slots as it takes, up to
/// `shmpipe_producer_message_limit`. `*buf` points to `len` contiguous
/// bytes of shared memory (one run even across the end of the ring);
/// write the message there and `shmpipe_producer_commit` its length (at
/// most `len`), or `shmpipe_producer_abort`. The consumer sees all of it,
/// or, if this process dies first, none of it. Until then the producer is
/// busy, as after `shmpipe_producer_reserve`. `timeout_ns` as for
/// `shmpipe_producer_send`.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_TOO_LARGE` (above the message limit;
/// nothing reserved), and the statuses of `shmpipe_producer_reserve`.
///
/// # Safety
///
/// `p` is NULL or a live producer handle; `buf` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_reserve_len(
    p: *mut shmpipe_producer,
    len: usize,
    buf: *mut *mut c_void,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let h = unsafe { handle(p) }?;
        if buf.is_null() {
            return Err(Fail::null("buf"));
        }
        // SAFETY: non-NULL and writable by the contract; NULL until room
        // is reserved.
        unsafe { buf.write(ptr::null_mut()) };
        let tx = h.idle()?;
        let slot = match Wait::from_ns(timeout_ns) {
            Wait::Never => tx.try_reserve_len(len).map_err(try_send_fail)?,
            Wait::Until(deadline) => tx.reserve_len_deadline(len, deadline).map_err(send_fail)?,
        };
        // SAFETY: as in `shmpipe_producer_reserve`: the slot borrows
        // `*h.inner`, which does not move until close, and close drops the
        // slot first.
        let slot: WriteSlot<'static> = unsafe { std::mem::transmute(slot) };
        // SAFETY: `state` was Idle, so no reference into `h.slot` is live.
        let stored = unsafe { &mut *h.slot.get() }.insert(slot);
        let data = stored.as_mut_ptr();
        h.state.set(State::Slot);
        // SAFETY: non-NULL, checked above.
        unsafe { buf.write(data.cast()) };
        Ok(())
    })
}

/// `shmpipe_producer_reserve(p, buf, cap, 0)`: never waits.
///
/// # Safety
///
/// As `shmpipe_producer_reserve`.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_try_reserve(
    p: *mut shmpipe_producer,
    buf: *mut *mut c_void,
    cap: *mut usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmpipe_producer_reserve(p, buf, cap, 0) }
}

/// Takes the reserved slot out of the handle, if there is one.
fn take_slot(h: &shmpipe_producer) -> Result<WriteSlot<'static>, Fail> {
    if h.state.get() != State::Slot {
        return Err(Fail::new(
            SHMPIPE_INVALID_ARGUMENT,
            "no slot is reserved on this producer: call shmpipe_producer_reserve first",
        ));
    }
    // SAFETY: `state == Slot`, so the slot is stored and nothing else
    // refers to the cell during this call (one thread at a time).
    let slot = unsafe { (*h.slot.get()).take() };
    h.state.set(State::Idle);
    slot.ok_or_else(|| Fail::new(SHMPIPE_PANIC, "reserved slot missing"))
}

/// Publishes the first `len` bytes written into the reserved slot (or the
/// room of `shmpipe_producer_reserve_len`) as one message.
/// `SHMPIPE_TOO_LARGE` if `len` exceeds what was reserved (the slot stays
/// reserved); `SHMPIPE_INVALID_ARGUMENT` if nothing is reserved.
///
/// # Safety
///
/// `p` is NULL or a live producer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_commit(p: *mut shmpipe_producer, len: usize) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let h = unsafe { handle(p) }?;
        let slot = take_slot(h)?;
        if len > slot.capacity() {
            let cap = slot.capacity();
            // SAFETY: as in `take_slot`; put it back.
            unsafe { *h.slot.get() = Some(slot) };
            h.state.set(State::Slot);
            return Err(Fail::new(
                SHMPIPE_TOO_LARGE,
                format!("committed length {len} exceeds the slot's capacity of {cap} bytes"),
            ));
        }
        slot.commit(len);
        Ok(())
    })
}

/// Gives the reserved slot back unpublished. `SHMPIPE_INVALID_ARGUMENT` if
/// no slot is reserved.
///
/// # Safety
///
/// `p` is NULL or a live producer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_abort(p: *mut shmpipe_producer) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let slot = take_slot(unsafe { handle(p) }?)?;
        // An unpublished slot is simply forgotten by the ring: nothing to do.
        let _ = slot;
        Ok(())
    })
}

/// Reserves up to `max` slots, waiting per `timeout_ns` until at least one
/// is free.
fn reserve_batch(tx: &mut Producer, max: usize, timeout_ns: i64) -> Result<WriteBatch<'_>, Fail> {
    if max == 0 {
        return Err(Fail::new(
            SHMPIPE_INVALID_ARGUMENT,
            "a batch needs at least one message",
        ));
    }
    match Wait::from_ns(timeout_ns) {
        Wait::Never => tx.try_reserve_batch(max).map_err(try_send_fail),
        Wait::Until(deadline) => tx.reserve_batch_deadline(max, deadline).map_err(send_fail),
    }
}

/// Sends as many of the `count` messages in `msgs` as there are free slots,
/// in order, publishing them with one index store (and at most one
/// wake-up); `*sent` (if not NULL) says how many. Waits per `timeout_ns`
/// (as `shmpipe_producer_send`) only until at least one slot is free.
/// Each message of a batch takes one slot: the batch stops before a
/// message larger than `shmpipe_producer_max_message` (send that one with
/// `shmpipe_producer_send`), which gives `SHMPIPE_TOO_LARGE` when it comes
/// first. `count` must be at least 1.
///
/// # Safety
///
/// `p` is NULL or a live producer handle; `msgs` is NULL or readable for
/// `count` entries, each readable for its `len` bytes; `sent` is NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_send_batch(
    p: *mut shmpipe_producer,
    msgs: *const shmpipe_iovec,
    count: usize,
    sent: *mut usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        unsafe { store_len(sent, 0) };
        // SAFETY: forwarded contract.
        let tx = unsafe { handle(p) }?.idle()?;
        if msgs.is_null() && count > 0 {
            return Err(Fail::null("msgs"));
        }
        let msgs: &[shmpipe_iovec] = if count == 0 {
            &[]
        } else {
            // SAFETY: non-NULL (checked above) and readable for `count`
            // entries by the contract.
            unsafe { slice::from_raw_parts(msgs, count) }
        };
        if let Some(i) = msgs.iter().position(|m| m.data.is_null() && m.len > 0) {
            return Err(Fail::null(&format!("msgs[{i}].data")));
        }
        let max = tx.max_message();
        let fit = msgs.iter().take_while(|m| m.len <= max).count();
        if fit == 0 && !msgs.is_empty() {
            return Err(Fail::new(
                SHMPIPE_TOO_LARGE,
                format!(
                    "message of {} bytes larger than one slot ({max} bytes), the most a batch \
                     message holds: send it with shmpipe_producer_send, or create the ring \
                     with a larger slot size",
                    msgs[0].len
                ),
            ));
        }
        let mut batch = reserve_batch(tx, fit, timeout_ns)?;
        for m in &msgs[..fit] {
            // SAFETY: non-NULL when `len > 0` (checked above), readable for
            // `len` bytes by the contract; at most `max` bytes.
            let body = unsafe { message(m.data, m.len, "msgs[].data") }?;
            if batch.push(body).is_err() {
                break; // every reserved slot is filled
            }
        }
        let n = batch.commit();
        // SAFETY: forwarded contract.
        unsafe { store_len(sent, n) };
        Ok(())
    })
}

/// Zero-copy batch: reserves up to `max` free slots (waiting per
/// `timeout_ns` until at least one is free), calls `fill(ctx, i, slot, cap)`
/// for each, i = 0, 1, ..., to write message `i` in place and return its
/// length, then publishes them all with one index store; `*sent` says how
/// many. If `fill` returns a length above `cap`, nothing of the batch is
/// published and the call returns `SHMPIPE_TOO_LARGE`.
///
/// `fill` must not call any function on this producer (those return
/// `SHMPIPE_BUSY`), and must not unwind or `longjmp` out.
///
/// # Safety
///
/// `p` is NULL or a live producer handle; `fill` is NULL or a function as
/// described; `sent` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_fill_batch(
    p: *mut shmpipe_producer,
    max: usize,
    fill: shmpipe_fill_fn,
    ctx: *mut c_void,
    sent: *mut usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        unsafe { store_len(sent, 0) };
        // SAFETY: forwarded contract.
        let h = unsafe { handle(p) }?;
        let tx = h.idle()?;
        let Some(fill) = fill else {
            return Err(Fail::null("fill"));
        };
        let mut batch = reserve_batch(tx, max, timeout_ns)?;
        let mut bad = None;
        let in_callback = CallbackGuard::enter(&h.state);
        for i in 0..batch.capacity() {
            batch.push_with(|slot| {
                // SAFETY: `fill` is a valid function by the contract; `slot`
                // is writable for its length for the duration of the call.
                let n = unsafe { fill(ctx, i, slot.as_mut_ptr().cast(), slot.len()) };
                if n > slot.len() {
                    bad = Some((i, n, slot.len()));
                    0
                } else {
                    n
                }
            });
            if bad.is_some() {
                break;
            }
        }
        drop(in_callback);
        if let Some((i, n, cap)) = bad {
            // `batch` is dropped uncommitted on return: nothing published.
            return Err(Fail::new(
                SHMPIPE_TOO_LARGE,
                format!(
                    "fill returned {n} for message {i}, more than the slot's {cap} bytes: \
                     nothing of the batch was published"
                ),
            ));
        }
        let n = batch.commit();
        // SAFETY: forwarded contract.
        unsafe { store_len(sent, n) };
        Ok(())
    })
}

/// Number of slots in the ring; 0 for NULL.
///
/// # Safety
///
/// `p` is NULL or a live producer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_capacity(p: *const shmpipe_producer) -> usize {
    // SAFETY: NULL or live, by the contract.
    guard_value(0, || unsafe { p.as_ref() }.map_or(0, |h| h.capacity))
}

/// The largest message in one slot, in bytes (what `shmpipe_producer_reserve`
/// and a batch message hold); 0 for NULL.
///
/// # Safety
///
/// `p` is NULL or a live producer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_max_message(p: *const shmpipe_producer) -> usize {
    // SAFETY: NULL or live, by the contract.
    guard_value(0, || unsafe { p.as_ref() }.map_or(0, |h| h.max_message))
}

/// The largest message the ring accepts, over any number of slots (what
/// `shmpipe_producer_send` and `shmpipe_producer_reserve_len` take); 0 for
/// NULL.
///
/// # Safety
///
/// `p` is NULL or a live producer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_message_limit(p: *const shmpipe_producer) -> usize {
    // SAFETY: NULL or live, by the contract.
    guard_value(0, || unsafe { p.as_ref() }.map_or(0, |h| h.message_limit))
}

/// Every payload starts at an address that is a multiple of this many
/// bytes (`shmpipe_options.payload_align`); 0 for NULL.
///
/// # Safety
///
/// `p` is NULL or a live producer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_payload_align(p: *const shmpipe_producer) -> usize {
    // SAFETY: NULL or live, by the contract.
    guard_value(0, || unsafe { p.as_ref() }.map_or(0, |h| h.payload_align))
}

/// Closes the producer: the consumer receives every message already
/// committed, then `SHMPIPE_DISCONNECTED`. A reserved slot is given back
/// unpublished. NULL is ignored; a call from inside the producer's own
/// batch callback is ignored too (the handle stays open).
///
/// # Safety
///
/// `p` is NULL or a live producer handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_close(p: *mut shmpipe_producer) {
    guard_void(|| {
        if p.is_null() {
            return Ok(());
        }
        // SAFETY: live handle by the contract.
        let h = unsafe { &*p };
        if h.state.get() == State::Callback {
            return Err(Fail::new(
                SHMPIPE_BUSY,
                "shmpipe_producer_close called from inside the producer's own batch callback: \
                 ignored",
            ));
        }
        // SAFETY: a live handle from `Box::into_raw` in `new`, given up by
        // the caller; the slot (which borrows `inner`) goes first.
        let h = unsafe { Box::from_raw(p) };
        let _ = h.slot.into_inner();
        // SAFETY: from `Box::leak` in `new`; nothing borrows it any more.
        drop(unsafe { Box::from_raw(h.inner.as_ptr()) });
        Ok(())
    });
}

/// The producer's readiness descriptor, for epoll, poll or any event loop:
/// it becomes readable when the producer should try again (a slot is free, the
/// consumer closed or died, the ring was removed), after
/// `shmpipe_producer_arm` returned `*armed == 1`. Stores it in `*fd`. The
/// descriptor belongs to the producer: do not close or read it; it stays
/// the same until `shmpipe_producer_close`.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_IO` (no descriptor could be made),
/// `SHMPIPE_BUSY` or `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `h` is NULL or a live producer handle; `fd` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_readiness_fd(
    h: *mut shmpipe_producer,
    fd: *mut c_int,
) -> c_int {
    guard(|| {
        if fd.is_null() {
            return Err(Fail::null("fd"));
        }
        // SAFETY: forwarded contract.
        let inner = unsafe { handle(h) }?.idle()?;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&inner.readiness_fd().map_err(Fail::from)?);
        // SAFETY: non-NULL, writable by the contract.
        unsafe { fd.write(raw) };
        Ok(())
    })
}

/// Prepares a wait on the readiness descriptor: announces it to the
/// consumer, then re-checks. `*armed = 1`: wait until the descriptor is
/// readable, then call the non-blocking calls until `SHMPIPE_FULL`;
/// `*armed = 0`: do not wait, try now. Any later call on the producer
/// disarms it. A busy pair never arms, so the consumer makes no system call.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_PEER_DIED` (the consumer's process died;
/// again at once until a new consumer attaches), `SHMPIPE_BUSY` or
/// `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `h` is NULL or a live producer handle; `armed` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_producer_arm(
    h: *mut shmpipe_producer,
    armed: *mut c_int,
) -> c_int {
    guard(|| {
        if armed.is_null() {
            return Err(Fail::null("armed"));
        }
        // SAFETY: forwarded contract.
        let inner = unsafe { handle(h) }?.idle()?;
        let a = inner.arm().map_err(send_fail)?;
        // SAFETY: non-NULL, writable by the contract.
        unsafe { armed.write(c_int::from(a)) };
        Ok(())
    })
}

/// For the wait set: undoes `shmpipe_producer_arm` (nothing if the handle is busy).
///
/// # Safety
///
/// `h` is NULL or a live producer handle.
pub(crate) unsafe fn producer_disarm(h: *mut shmpipe_producer) {
    // SAFETY: forwarded contract.
    if let Ok(inner) = unsafe { handle(h) }.and_then(|h| h.idle()) {
        inner.disarm();
    }
}
