//! `shmpipe_consumer_*`: the reading end.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::slice;

use shmpipe::{Consumer, ReadSlot, RecvError, TryRecvError};

use crate::guard::{guard, guard_value, guard_void, recv_fail, try_recv_fail, Fail, Wait};
use crate::producer::{CallbackGuard, State};
use crate::ring::store_len;
use crate::*;

/// The reading end of a ring (opaque). From `shmpipe_ring_consumer`, freed
/// by `shmpipe_consumer_close`. Use it from one thread at a time.
pub struct shmpipe_consumer {
    state: Cell<State>,
    /// The borrowed message while `state` is `Slot`. It borrows `*inner`
    /// (which never moves) and is dropped before `inner` is freed.
    slot: UnsafeCell<Option<ReadSlot<'static>>>,
    /// From `Box::leak`; freed by `shmpipe_consumer_close`. Reached only
    /// through [`shmpipe_consumer::idle`] while `state` is `Idle`, so no two
    /// `&mut` to it are ever live.
    inner: NonNull<Consumer>,
    /// Geometry, copied at claim time so that the getters never touch
    /// `inner` while a slot borrows it.
    capacity: usize,
    max_message: usize,
    message_limit: usize,
    payload_align: usize,
    /// `inner.pacing()`, kept here for the getter (set with it).
    pacing: Cell<bool>,
}

/// Reads one message of a batch in place: `len` bytes at `msg`, valid only
/// during the call. Called by `shmpipe_consumer_recv_batch`.
pub type shmpipe_read_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, msg: *const c_void, len: usize)>;

impl shmpipe_consumer {
    pub(crate) fn new(c: Consumer) -> *mut shmpipe_consumer {
        let (capacity, max_message) = (c.capacity(), c.max_message());
        let (message_limit, payload_align) = (c.message_limit(), c.payload_align());
        let pacing = Cell::new(c.pacing());
        let inner = NonNull::from(Box::leak(Box::new(c)));
        Box::into_raw(Box::new(shmpipe_consumer {
            state: Cell::new(State::Idle),
            slot: UnsafeCell::new(None),
            inner,
            capacity,
            max_message,
            message_limit,
            payload_align,
            pacing,
        }))
    }

    /// The consumer, if nothing is outstanding on the handle.
    #[allow(clippy::mut_from_ref)] // exclusivity comes from `state`, see `inner`
    fn idle(&self) -> Result<&mut Consumer, Fail> {
        match self.state.get() {
            // SAFETY: `inner` is live until close; with `state == Idle` no
            // borrowed message and no callback holds a `&mut` to it, and
            // the handle is used by one thread at a time (the documented
            // contract), so this is the only one.
            State::Idle => Ok(unsafe { &mut *self.inner.as_ptr() }),
            State::Slot => Err(Fail::new(
                SHMPIPE_BUSY,
                "a message is borrowed on this consumer: release it first",
            )),
            State::Callback => Err(Fail::new(
                SHMPIPE_BUSY,
                "called from inside this consumer's own batch callback",
            )),
        }
    }
}

/// Checks a consumer handle pointer.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle.
unsafe fn handle<'a>(c: *const shmpipe_consumer) -> Result<&'a shmpipe_consumer, Fail> {
    // SAFETY: NULL or live, by the caller's contract.
    unsafe { c.as_ref() }.ok_or_else(|| Fail::null("consumer"))
}

/// Receives the next message into the `cap` bytes at `buf` and stores its
/// length in `*len` (a buffer of `shmpipe_consumer_message_limit` bytes
/// takes any message, including those over several slots). `timeout_ns < 0` waits as long as it takes, `0` never
/// waits (`SHMPIPE_EMPTY`), `> 0` waits at most that long
/// (`SHMPIPE_TIMEOUT`).
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_EMPTY`, `SHMPIPE_TIMEOUT`,
/// `SHMPIPE_DISCONNECTED` (the producer closed and every message was
/// received), `SHMPIPE_PEER_DIED` (its process died; every message it
/// committed was received), `SHMPIPE_BUFFER_TOO_SMALL` (the message stays
/// in the ring and `*len` is its length), `SHMPIPE_CORRUPT`, `SHMPIPE_BUSY`
/// or `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle; `buf` is NULL or writable for
/// `cap` bytes; `len` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_recv(
    c: *mut shmpipe_consumer,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        if len.is_null() {
            return Err(Fail::null("len"));
        }
        // SAFETY: forwarded contract.
        let rx = unsafe { handle(c) }?.idle()?;
        let buf: &mut [u8] = if cap == 0 {
            &mut []
        } else if buf.is_null() {
            return Err(Fail::null("buf"));
        } else if isize::try_from(cap).is_err() {
            return Err(Fail::new(
                SHMPIPE_INVALID_ARGUMENT,
                format!("buffer size {cap} is not a valid object size"),
            ));
        } else {
            // SAFETY: non-NULL, at most isize::MAX bytes, writable by the
            // contract. The bytes need not be initialised: only written.
            unsafe { slice::from_raw_parts_mut(buf.cast::<u8>(), cap) }
        };
        let mut needed = None;
        let r = match Wait::from_ns(timeout_ns) {
            Wait::Never => rx.try_recv(buf).map_err(|e| {
                if let TryRecvError::BufferTooSmall { needed: n } = e {
                    needed = Some(n);
                }
                try_recv_fail(e)
            }),
            Wait::Until(deadline) => {
                let r = match deadline {
                    None => rx.recv(buf),
                    Some(d) => rx.recv_deadline(buf, d),
                };
                r.map_err(|e| {
                    if let RecvError::BufferTooSmall { needed: n } = e {
                        needed = Some(n);
                    }
                    recv_fail(e)
                })
            }
        };
        if let Some(n) = r.as_ref().ok().copied().or(needed) {
            // SAFETY: `len` is non-NULL (checked above) and writable by the
            // contract.
            unsafe { len.write(n) };
        }
        r.map(drop)
    })
}

/// `shmpipe_consumer_recv(c, buf, cap, len, 0)`: never waits.
///
/// # Safety
///
/// As `shmpipe_consumer_recv`.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_try_recv(
    c: *mut shmpipe_consumer,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmpipe_consumer_recv(c, buf, cap, len, 0) }
}

/// Borrows the next message in place (zero-copy): `*msg` points to its
/// `*len` bytes in shared memory, one contiguous run also for a message
/// over several slots (up to the ring's message limit). They stay valid, and the slot stays
/// unavailable to the producer, until `shmpipe_consumer_release` (or
/// close); meanwhile every other call on this consumer returns
/// `SHMPIPE_BUSY`. The bytes are shared memory a misbehaving producer could
/// change under you: copy them out before validating them. `timeout_ns` and
/// statuses as for `shmpipe_consumer_recv` (never
/// `SHMPIPE_BUFFER_TOO_SMALL`).
///
/// # Safety
///
/// `c` is NULL or a live consumer handle; `msg` and `len` are NULL or valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_borrow(
    c: *mut shmpipe_consumer,
    msg: *mut *const c_void,
    len: *mut usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let h = unsafe { handle(c) }?;
        if msg.is_null() {
            return Err(Fail::null("msg"));
        }
        if len.is_null() {
            return Err(Fail::null("len"));
        }
        // SAFETY: non-NULL and writable by the contract; NULL until a
        // message is borrowed.
        unsafe { msg.write(ptr::null()) };
        let rx = h.idle()?;
        let slot = match Wait::from_ns(timeout_ns) {
            Wait::Never => rx.try_borrow().map_err(try_recv_fail)?,
            Wait::Until(None) => rx.borrow().map_err(recv_fail)?,
            Wait::Until(Some(d)) => rx.borrow_deadline(d).map_err(recv_fail)?,
        };
        // SAFETY: the slot borrows `*h.inner`, which stays at its address
        // until `shmpipe_consumer_close`; close drops the slot first, and
        // while it is stored (`state == Slot`) nothing else reaches
        // `*h.inner`. So the borrow outlives every use of the slot.
        let slot: ReadSlot<'static> = unsafe { std::mem::transmute(slot) };
        // SAFETY: `state` was Idle, so no reference into `h.slot` is live.
        let stored = unsafe { &mut *h.slot.get() }.insert(slot);
        // Taken from the slot in its final place (see the producer's
        // reserve).
        let (data, n) = (stored.as_ptr(), stored.len());
        h.state.set(State::Slot);
        // SAFETY: both non-NULL and writable (checked above).
        unsafe {
            msg.write(data.cast());
            len.write(n);
        }
        Ok(())
    })
}

/// `shmpipe_consumer_borrow(c, msg, len, 0)`: never waits.
///
/// # Safety
///
/// As `shmpipe_consumer_borrow`.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_try_borrow(
    c: *mut shmpipe_consumer,
    msg: *mut *const c_void,
    len: *mut usize,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmpipe_consumer_borrow(c, msg, len, 0) }
}

/// Releases the borrowed message: its slot goes back to the producer and
/// the pointer from `shmpipe_consumer_borrow` is no longer valid.
/// `SHMPIPE_INVALID_ARGUMENT` if nothing is borrowed.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_release(c: *mut shmpipe_consumer) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let h = unsafe { handle(c) }?;
        if h.state.get() != State::Slot {
            return Err(Fail::new(
                SHMPIPE_INVALID_ARGUMENT,
                "no message is borrowed on this consumer: call shmpipe_consumer_borrow first",
            ));
        }
        // SAFETY: `state == Slot`: the slot is stored and nothing else
        // refers to the cell during this call (one thread at a time).
        let slot = unsafe { (*h.slot.get()).take() };
        h.state.set(State::Idle);
        drop(slot);
        Ok(())
    })
}

/// Hands up to `max` waiting messages to `f(ctx, msg, len)` in order, in
/// place, and releases them all with one index store; `*received` (if not
/// NULL) says how many. Waits per `timeout_ns` (as `shmpipe_consumer_recv`)
/// only until at least one message is ready. `max` must be at least 1.
///
/// `f` must not call any function on this consumer (those return
/// `SHMPIPE_BUSY`), must not keep `msg` past its return, and must not
/// unwind or `longjmp` out.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle; `f` is NULL or a function as
/// described; `received` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_recv_batch(
    c: *mut shmpipe_consumer,
    max: usize,
    f: shmpipe_read_fn,
    ctx: *mut c_void,
    received: *mut usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        unsafe { store_len(received, 0) };
        // SAFETY: forwarded contract.
        let h = unsafe { handle(c) }?;
        let rx = h.idle()?;
        let Some(f) = f else {
            return Err(Fail::null("f"));
        };
        if max == 0 {
            return Err(Fail::new(
                SHMPIPE_INVALID_ARGUMENT,
                "a batch needs at least one message",
            ));
        }
        let _in_callback = CallbackGuard::enter(&h.state);
        let call = |m: &[u8]| {
            // SAFETY: `f` is a valid function by the contract; `m` is
            // readable for its length during the call.
            unsafe { f(ctx, m.as_ptr().cast(), m.len()) }
        };
        let n = match Wait::from_ns(timeout_ns) {
            Wait::Never => rx.try_recv_batch(max, call).map_err(try_recv_fail)?,
            Wait::Until(deadline) => rx
                .recv_batch_deadline(max, deadline, call)
                .map_err(recv_fail)?,
        };
        // SAFETY: forwarded contract.
        unsafe { store_len(received, n) };
        Ok(())
    })
}

/// Number of slots in the ring; 0 for NULL.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_capacity(c: *const shmpipe_consumer) -> usize {
    // SAFETY: NULL or live, by the contract.
    guard_value(0, || unsafe { c.as_ref() }.map_or(0, |h| h.capacity))
}

/// The largest message in one slot, in bytes; 0 for NULL. Larger ones,
/// over several slots, go up to `shmpipe_consumer_message_limit`.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_max_message(c: *const shmpipe_consumer) -> usize {
    // SAFETY: NULL or live, by the contract.
    guard_value(0, || unsafe { c.as_ref() }.map_or(0, |h| h.max_message))
}

/// The largest message the ring accepts, over any number of slots: a
/// receive buffer this large takes any message; 0 for NULL.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_message_limit(c: *const shmpipe_consumer) -> usize {
    // SAFETY: NULL or live, by the contract.
    guard_value(0, || unsafe { c.as_ref() }.map_or(0, |h| h.message_limit))
}

/// Every payload (and so every borrowed message) starts at an address
/// that is a multiple of this many bytes; 0 for NULL.
///
/// # Safety
///
/// `c` is NULL or a live consumer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_payload_align(c: *const shmpipe_consumer) -> usize {
    // SAFETY: NULL or live, by the contract.
    guard_value(0, || unsafe { c.as_ref() }.map_or(0, |h| h.payload_align))
}

/// Turns pacing on (`on != 0`) or off: a consumer streaming just behind
/// its producer reads `tail` every 16 messages and, if less than 16 KiB of
/// slots behind, waits a few microseconds at most (only while the producer
/// keeps publishing) for it to get ahead, so that the two do not fight over
/// the same cache lines. On by default where slots are smaller than 4 KiB;
/// a consumer that finds the ring empty between messages never paces. See
/// the Rust crate's `Consumer::set_pacing`.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_BUSY` (a message is borrowed, or called
/// from the consumer's own batch callback) or `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `h` is NULL or a live consumer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_set_pacing(h: *mut shmpipe_consumer, on: c_int) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let h = unsafe { handle(h) }?;
        h.idle()?.set_pacing(on != 0);
        h.pacing.set(on != 0);
        Ok(())
    })
}

/// Whether the consumer paces itself (see `shmpipe_consumer_set_pacing`):
/// 1 or 0; -1 for NULL.
///
/// # Safety
///
/// `h` is NULL or a live consumer handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_pacing(h: *const shmpipe_consumer) -> c_int {
    guard_value(-1, || {
        // SAFETY: NULL or live, by the contract.
        let h = unsafe { h.as_ref() };
        h.map_or(-1, |h| c_int::from(h.pacing.get()))
    })
}

/// Closes the consumer: the producer's sends fail with
/// `SHMPIPE_DISCONNECTED`. A borrowed message is released first. NULL is
/// ignored; a call from inside the consumer's own batch callback is ignored
/// too (the handle stays open).
///
/// # Safety
///
/// `c` is NULL or a live consumer handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_close(c: *mut shmpipe_consumer) {
    guard_void(|| {
        if c.is_null() {
            return Ok(());
        }
        // SAFETY: live handle by the contract.
        let h = unsafe { &*c };
        if h.state.get() == State::Callback {
            return Err(Fail::new(
                SHMPIPE_BUSY,
                "shmpipe_consumer_close called from inside the consumer's own batch callback: \
                 ignored",
            ));
        }
        // SAFETY: a live handle from `Box::into_raw` in `new`, given up by
        // the caller; the slot (which borrows `inner`) goes first.
        let h = unsafe { Box::from_raw(c) };
        drop(h.slot.into_inner());
        // SAFETY: from `Box::leak` in `new`; nothing borrows it any more.
        drop(unsafe { Box::from_raw(h.inner.as_ptr()) });
        Ok(())
    });
}

/// The consumer's readiness descriptor, for epoll, poll or any event loop:
/// it becomes readable when the consumer should try again (a message is waiting, the
/// producer closed or died, the ring was removed), after
/// `shmpipe_consumer_arm` returned `*armed == 1`. Stores it in `*fd`. The
/// descriptor belongs to the consumer: do not close or read it; it stays
/// the same until `shmpipe_consumer_close`.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_IO` (no descriptor could be made),
/// `SHMPIPE_BUSY` or `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `h` is NULL or a live consumer handle; `fd` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_readiness_fd(
    h: *mut shmpipe_consumer,
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
/// producer, then re-checks. `*armed = 1`: wait until the descriptor is
/// readable, then call the non-blocking calls until `SHMPIPE_EMPTY`;
/// `*armed = 0`: do not wait, try now. Any later call on the consumer
/// disarms it. A busy pair never arms, so the producer makes no system call.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_PEER_DIED` (the producer's process died, and every message it committed was received;
/// again at once until a new producer attaches), `SHMPIPE_BUSY` or
/// `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `h` is NULL or a live consumer handle; `armed` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_consumer_arm(
    h: *mut shmpipe_consumer,
    armed: *mut c_int,
) -> c_int {
    guard(|| {
        if armed.is_null() {
            return Err(Fail::null("armed"));
        }
        // SAFETY: forwarded contract.
        let inner = unsafe { handle(h) }?.idle()?;
        let a = inner.arm().map_err(recv_fail)?;
        // SAFETY: non-NULL, writable by the contract.
        unsafe { armed.write(c_int::from(a)) };
        Ok(())
    })
}

/// For the wait set: undoes `shmpipe_consumer_arm` (nothing if the handle is busy).
///
/// # Safety
///
/// `h` is NULL or a live consumer handle.
pub(crate) unsafe fn consumer_disarm(h: *mut shmpipe_consumer) {
    // SAFETY: forwarded contract.
    if let Ok(inner) = unsafe { handle(h) }.and_then(|h| h.idle()) {
        inner.disarm();
    }
}
