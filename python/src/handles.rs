//! `shmpipe.Producer`, `shmpipe.Consumer` and `shmpipe.Borrowed`.
//!
//! Each handle wraps the library's handle in a `Mutex`: a blocking call
//! holds it while the GIL is released, and a second thread calling the
//! same handle meanwhile gets `shmpipe.Unsupported` at once instead of
//! waiting (one thread per handle is the model; a ring has one producer
//! and one consumer).
//!
//! Every call tries first with the GIL held (no system call, no GIL
//! handover while messages keep coming) and only waits, with the GIL
//! released, when the ring is full or empty.

use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use shmpipe::{RecvError, SendError, TryRecvError, TrySendError};

use crate::buffer::{new_bytes, Buffer, Message, PYBUF_READ};
use crate::errors;
use crate::wait::{self, DETACH_COPY};

/// Locks `m` without waiting: a handle in use by another thread is an
/// error, not a wait.
pub(crate) fn lock<'a, T>(
    py: Python<'_>,
    m: &'a Mutex<T>,
    what: &str,
) -> PyResult<MutexGuard<'a, T>> {
    match m.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::WouldBlock) => Err(errors::busy(py, what)),
        // Nothing here panics while holding the lock; if something did,
        // the handle's state is still consistent (the library's handles
        // keep their own invariants), so carry on.
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
    }
}

fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

// ---------------------------------------------------------------------------
// Producer
// ---------------------------------------------------------------------------

/// The writing end of a ring, from `Ring.producer()`.
///
/// One per ring at a time, across all processes. Closing it (`close()`,
/// the end of its `with` block, or garbage collection) ends the stream:
/// the consumer receives every message already sent, then `Disconnected`.
#[pyclass(frozen, module = "shmpipe")]
pub(crate) struct Producer {
    inner: Mutex<Option<shmpipe::Producer>>,
}

impl Producer {
    pub(crate) fn new(tx: shmpipe::Producer) -> Producer {
        Producer {
            inner: Mutex::new(Some(tx)),
        }
    }

    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut shmpipe::Producer) -> PyResult<R>,
    ) -> PyResult<R> {
        let mut g = lock(py, &self.inner, "producer")?;
        let tx = g.as_mut().ok_or_else(|| errors::closed(py, "producer"))?;
        f(tx)
    }
}

/// Sends `msg` if there is room: `Ok(true)`; `Ok(false)` if the ring is
/// full. A message larger than one slot takes several (up to the ring's
/// message limit); large messages are copied with the GIL released.
fn try_send_once(py: Python<'_>, tx: &mut shmpipe::Producer, msg: &[u8]) -> PyResult<bool> {
    let limit = tx.message_limit();
    if msg.len() > limit {
        return Err(errors::too_large(py, msg.len(), limit));
    }
    if msg.len() < DETACH_COPY && msg.len() <= tx.max_message() {
        return match tx.try_send(msg) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => Ok(false),
            Err(e) => Err(errors::try_send(py, e)),
        };
    }
    match tx.try_reserve_len(msg.len()) {
        Ok(mut slot) => {
            let n = msg.len();
            let dst = &mut slot[..n];
            if n < DETACH_COPY {
                dst.copy_from_slice(msg);
            } else {
                py.detach(|| dst.copy_from_slice(msg));
            }
            slot.commit(n);
            Ok(true)
        }
        Err(TrySendError::Full(())) => Ok(false),
        Err(e) => Err(errors::try_send(py, e)),
    }
}

/// Sends one message, waiting until `deadline` for room (GIL released
/// while waiting; Ctrl-C interrupts the wait). A message over several
/// slots waits for all of them at once, and is copied and committed with
/// the GIL released.
pub(crate) fn send_message(
    py: Python<'_>,
    tx: &mut shmpipe::Producer,
    msg: &[u8],
    deadline: Option<Instant>,
) -> PyResult<()> {
    if try_send_once(py, tx, msg)? {
        return Ok(());
    }
    if msg.len() <= tx.max_message() {
        loop {
            wait_writable(py, tx, deadline)?;
            if try_send_once(py, tx, msg)? {
                return Ok(());
            }
        }
    }
    if passed(deadline) {
        return Err(errors::send(py, SendError::Timeout(())));
    }
    let r = wait::wait_ready(py, deadline, SendError::is_timeout, |until| {
        let mut slot = tx.reserve_len_deadline(msg.len(), Some(until))?;
        slot.copy_from_slice(msg);
        slot.commit(msg.len());
        Ok(())
    })?;
    r.map_err(|e| errors::send(py, e))
}

/// Sends one message if there is room now; `Full` otherwise.
pub(crate) fn try_send_message(
    py: Python<'_>,
    tx: &mut shmpipe::Producer,
    msg: &[u8],
) -> PyResult<()> {
    if try_send_once(py, tx, msg)? {
        Ok(())
    } else {
        Err(errors::try_send(py, TrySendError::Full(())))
    }
}

/// Waits, with the GIL released, until a slot is free.
fn wait_writable(
    py: Python<'_>,
    tx: &mut shmpipe::Producer,
    deadline: Option<Instant>,
) -> PyResult<()> {
    if passed(deadline) {
        return Err(errors::send(py, SendError::Timeout(())));
    }
    let r = wait::wait_ready(py, deadline, SendError::is_timeout, |until| {
        // A reserved batch that is dropped publishes nothing: this only
        // waits for room.
        tx.reserve_batch_deadline(1, Some(until)).map(drop)
    })?;
    r.map_err(|e| errors::send(py, e))
}

/// Sends what fits of `msgs[*sent..]` now, publishing them with one index
/// store; returns whether anything was sent.
fn try_send_some(
    py: Python<'_>,
    tx: &mut shmpipe::Producer,
    msgs: &[Message<'_, '_>],
    sent: &mut usize,
) -> PyResult<bool> {
    let mut batch = match tx.try_reserve_batch(msgs.len() - *sent) {
        Ok(b) => b,
        Err(TrySendError::Full(())) => return Ok(false),
        Err(e) => return Err(errors::try_send(py, e)),
    };
    while *sent < msgs.len() && batch.remaining() > 0 {
        // Sizes were checked before: push cannot fail.
        if let Err(e) = batch.push(msgs[*sent].as_slice()) {
            return Err(errors::try_send(py, e));
        }
        *sent += 1;
    }
    batch.commit();
    Ok(true)
}

fn messages<'a, 'py>(
    py: Python<'py>,
    objs: &'a [Bound<'py, PyAny>],
    max: usize,
) -> PyResult<Vec<Message<'a, 'py>>> {
    let msgs: Vec<Message<'_, '_>> = objs.iter().map(Message::get).collect::<PyResult<_>>()?;
    if let Some((i, m)) = msgs
        .iter()
        .enumerate()
        .find(|(_, m)| m.as_slice().len() > max)
    {
        let e = errors::too_large(py, m.as_slice().len(), max);
        e.value(py).setattr("index", i)?;
        return Err(e);
    }
    Ok(msgs)
}

/// Adds how many messages of a batch were sent to the exception.
fn with_sent(py: Python<'_>, e: PyErr, sent: usize) -> PyErr {
    match e.value(py).setattr("sent", sent) {
        Ok(()) => e,
        Err(e2) => e2,
    }
}

#[pymethods]
impl Producer {
    /// Sends one message (`bytes`, `bytearray`, `memoryview` or any
    /// contiguous buffer) of up to `message_limit` bytes (a message larger
    /// than `max_message` takes several consecutive slots, committed at
    /// once), waiting for room: as long as it takes
    /// (`timeout=None`) or at most `timeout` seconds (`Timeout`).
    ///
    /// The GIL is released while waiting and while copying a large
    /// message; Ctrl-C interrupts the wait with `KeyboardInterrupt` (the
    /// message is then not sent). Do not modify a buffer while it is being
    /// sent.
    #[pyo3(signature = (data, timeout=None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let deadline = wait::deadline(timeout)?;
        let msg = Message::get(data)?;
        self.with(py, |tx| send_message(py, tx, msg.as_slice(), deadline))
    }

    /// The readiness descriptor (an int), for `select`, `selectors` or
    /// asyncio's `loop.add_reader`: it becomes readable when a send should
    /// be tried again (a slot was freed, the consumer left or died), after
    /// `arm()` returned `True`. It belongs to the producer: do not close it.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.with(py, |tx| {
            tx.readiness_fd()
                .map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd))
                .map_err(|e| errors::setup(py, e))
        })
    }

    /// Prepares a wait on `fileno()`: `True` means wait until it is
    /// readable, then try again; `False` means a send may succeed now.
    /// Any later call on the producer disarms it. Raises `PeerDied` if the
    /// consumer's process died.
    fn arm(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |tx| tx.arm().map_err(|e| errors::send(py, e)))
    }

    /// Sends one message if a slot is free now; raises `Full` otherwise.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let msg = Message::get(data)?;
        self.with(py, |tx| try_send_message(py, tx, msg.as_slice()))
    }

    /// Sends every message of an iterable, publishing as many as fit with
    /// one index store (and at most one wakeup) at a time; waits for room
    /// as `send` does. Returns the number sent (all of them). Each message
    /// of a batch takes one slot, and every size is checked first: a
    /// message over `max_message` raises `TooLarge` (send it alone with
    /// `send`; its
    /// position in `index`) before anything is sent. An error after some
    /// were sent says how many in its `sent` attribute.
    #[pyo3(signature = (messages, timeout=None))]
    fn send_batch(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let deadline = wait::deadline(timeout)?;
        let objs: Vec<Bound<'_, PyAny>> = messages.try_iter()?.collect::<PyResult<_>>()?;
        self.with(py, |tx| {
            let msgs = self::messages(py, &objs, tx.max_message())?;
            let mut sent = 0;
            while sent < msgs.len() {
                let r = try_send_some(py, tx, &msgs, &mut sent).and_then(|progress| {
                    if progress {
                        Ok(())
                    } else {
                        wait_writable(py, tx, deadline)
                    }
                });
                r.map_err(|e| with_sent(py, e, sent))?;
            }
            Ok(sent)
        })
    }

    /// Sends as many messages of an iterable as fit now, with one index
    /// store; returns how many (0 when the ring is full). Sizes are
    /// checked first, as in `send_batch`.
    fn try_send_batch(&self, py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<usize> {
        let objs: Vec<Bound<'_, PyAny>> = messages.try_iter()?.collect::<PyResult<_>>()?;
        self.with(py, |tx| {
            let msgs = self::messages(py, &objs, tx.max_message())?;
            let mut sent = 0;
            if !msgs.is_empty() {
                try_send_some(py, tx, &msgs, &mut sent).map_err(|e| with_sent(py, e, sent))?;
            }
            Ok(sent)
        })
    }

    /// Number of slots in the ring.
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |tx| Ok(tx.capacity()))
    }

    /// The largest message in one slot, in bytes (the most a batch
    /// message holds).
    #[getter]
    fn max_message(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |tx| Ok(tx.max_message()))
    }

    /// The largest message `send` takes, over any number of slots.
    #[getter]
    fn message_limit(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |tx| Ok(tx.message_limit()))
    }

    /// Every payload starts at an address that is a multiple of this.
    #[getter]
    fn payload_align(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |tx| Ok(tx.payload_align()))
    }

    /// Messages ever committed to this ring (by this producer and the ones
    /// before it): the position the next message takes.
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |tx| Ok(tx.position()))
    }

    /// Process id of the consumer holding the ring, or None.
    #[getter]
    fn peer_pid(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        self.with(py, |tx| Ok(tx.peer_pid()))
    }

    /// Whether a consumer holds the ring and its process is alive.
    fn peer_alive(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |tx| Ok(tx.peer_alive()))
    }

    /// Whether this handle was closed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(lock(py, &self.inner, "producer")?.is_none())
    }

    /// Messages sent and not yet received.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |tx| Ok(tx.len()))
    }

    /// Closes the producer: the consumer receives what was sent, then
    /// `Disconnected`. Closing twice is fine.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let tx = lock(py, &self.inner, "producer")?.take();
        drop(tx);
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match lock(py, &self.inner, "producer") {
            Ok(g) => match g.as_ref() {
                Some(tx) => format!("<shmpipe.{tx:?}>"),
                None => "<shmpipe.Producer (closed)>".to_owned(),
            },
            Err(_) => "<shmpipe.Producer (in use)>".to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------
// Consumer
// ---------------------------------------------------------------------------

struct ConsumerState {
    rx: Option<shmpipe::Consumer>,
    /// A `Borrowed` holds the next message in place: it has not been
    /// released, and nothing else may touch the ring until it is.
    borrowed: bool,
}

/// The reading end of a ring, from `Ring.consumer()`.
///
/// One per ring at a time, across all processes. Iterating over it
/// receives messages until the producer closes.
#[pyclass(frozen, module = "shmpipe")]
pub(crate) struct Consumer {
    inner: Mutex<ConsumerState>,
}

impl Consumer {
    pub(crate) fn new(rx: shmpipe::Consumer) -> Consumer {
        Consumer {
            inner: Mutex::new(ConsumerState {
                rx: Some(rx),
                borrowed: false,
            }),
        }
    }

    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut shmpipe::Consumer) -> PyResult<R>,
    ) -> PyResult<R> {
        let mut g = lock(py, &self.inner, "consumer")?;
        if g.borrowed {
            return Err(errors::borrowed(py));
        }
        let rx =
            g.rx.as_mut()
                .ok_or_else(|| errors::closed(py, "consumer"))?;
        f(rx)
    }

    /// Releases the message a `Borrowed` holds.
    fn end_borrow(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.inner, "consumer")?;
        if !g.borrowed {
            return Ok(());
        }
        g.borrowed = false;
        let Some(rx) = g.rx.as_mut() else {
            return Ok(());
        };
        // The borrowed message is still the next one (its ReadSlot was
        // forgotten, not dropped): a batch of one releases exactly it,
        // checking its length once more.
        match rx.try_recv_batch(1, |_| {}) {
            Ok(_) => Ok(()),
            Err(e) => Err(errors::try_recv(py, e)),
        }
    }
}

/// Waits, with the GIL released, until a message is ready. `Ok(false)`:
/// the producer closed and everything was received.
pub(crate) fn wait_readable(
    py: Python<'_>,
    rx: &mut shmpipe::Consumer,
    deadline: Option<Instant>,
) -> PyResult<bool> {
    if passed(deadline) {
        return Err(errors::recv(py, RecvError::Timeout));
    }
    let r = wait::wait_ready(py, deadline, RecvError::is_timeout, |until| {
        // A batch of at most 0 messages takes none: this only waits.
        rx.recv_batch_deadline(0, Some(until), |_| {}).map(drop)
    })?;
    match r {
        Ok(()) => Ok(true),
        Err(RecvError::Disconnected) => Ok(false),
        Err(e) => Err(errors::recv(py, e)),
    }
}

/// The next message as `bytes`, or `None` once the producer closed and
/// everything was received.
pub(crate) fn recv_bytes<'py>(
    py: Python<'py>,
    rx: &mut shmpipe::Consumer,
    deadline: Option<Instant>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    loop {
        match rx.try_borrow() {
            Ok(slot) => return new_bytes(py, &slot).map(Some),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return Ok(None),
            Err(e) => return Err(errors::try_recv(py, e)),
        }
        if !wait_readable(py, rx, deadline)? {
            return Ok(None);
        }
    }
}

/// Copies the next message into `dst`, if one is ready: `Ok(Some(n))`.
/// A message larger than `dst` stays in the ring (`BufferTooSmall`).
fn try_recv_into(
    py: Python<'_>,
    rx: &mut shmpipe::Consumer,
    dst: &mut [u8],
) -> Result<usize, Result<TryRecvError, PyErr>> {
    let slot = rx.try_borrow().map_err(Ok)?;
    let n = slot.len();
    if n > dst.len() {
        // Forgetting the slot leaves the message unreleased (a ReadSlot
        // owns nothing but its borrow): receive it again with room.
        std::mem::forget(slot);
        return Err(Ok(TryRecvError::BufferTooSmall { needed: n }));
    }
    let dst = &mut dst[..n];
    if n < DETACH_COPY {
        dst.copy_from_slice(&slot);
    } else {
        let src: &[u8] = &slot;
        py.detach(|| dst.copy_from_slice(src));
    }
    drop(slot);
    Ok(n)
}

/// `shmpipe.Disconnected` for a receive that found the stream ended.
fn disconnected(py: Python<'_>) -> PyErr {
    errors::recv(py, RecvError::Disconnected)
}

#[pymethods]
impl Consumer {
    /// Receives the next message as `bytes`, waiting as long as it takes
    /// (`timeout=None`) or at most `timeout` seconds (`Timeout`). Raises
    /// `Disconnected` once the producer closed and every message was
    /// received, `PeerDied` if its process died.
    ///
    /// The GIL is released while waiting and while copying a large
    /// message; Ctrl-C interrupts the wait with `KeyboardInterrupt`, and
    /// the consumer stays usable (no message is lost).
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        let deadline = wait::deadline(timeout)?;
        self.with(py, |rx| {
            recv_bytes(py, rx, deadline)?.ok_or_else(|| disconnected(py))
        })
    }

    /// The readiness descriptor (an int), for `select`, `selectors` or
    /// asyncio's `loop.add_reader`: it becomes readable when a receive
    /// should be tried again (a message arrived, the producer closed or
    /// died), after `arm()` returned `True`. It belongs to the consumer:
    /// do not close it.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.with(py, |rx| {
            rx.readiness_fd()
                .map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd))
                .map_err(|e| errors::setup(py, e))
        })
    }

    /// Prepares a wait on `fileno()`: `True` means wait until it is
    /// readable, then call `try_recv` until `Empty`; `False` means a
    /// message (or the end of the stream) is there now. Any later call on
    /// the consumer disarms it. Raises `PeerDied` if the producer's process
    /// died and every message it committed was received.
    fn arm(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |rx| rx.arm().map_err(|e| errors::recv(py, e)))
    }

    /// Receives the next message as `bytes` if one is waiting; raises
    /// `Empty` otherwise (`Disconnected` at the end of the stream).
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.with(py, |rx| match rx.try_borrow() {
            Ok(slot) => new_bytes(py, &slot),
            Err(e) => Err(errors::try_recv(py, e)),
        })
    }

    /// Receives the next message into `buffer` (a writable contiguous
    /// buffer: `bytearray`, `memoryview`, numpy array, `mmap`) without
    /// allocating; returns its length. A message longer than the buffer
    /// stays in the ring and raises `BufferTooSmall` (attribute `needed`).
    /// Waits as `recv` does.
    #[pyo3(signature = (buffer, timeout=None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let deadline = wait::deadline(timeout)?;
        let mut buf = Buffer::get(buffer, true)?;
        self.with(py, |rx| loop {
            match try_recv_into(py, rx, buf.as_mut_slice()) {
                Ok(n) => return Ok(n),
                Err(Ok(TryRecvError::Empty)) => {}
                Err(Ok(TryRecvError::Disconnected)) => return Err(disconnected(py)),
                Err(Ok(e)) => return Err(errors::try_recv(py, e)),
                Err(Err(e)) => return Err(e),
            }
            if !wait_readable(py, rx, deadline)? {
                return Err(disconnected(py));
            }
        })
    }

    /// Like `recv_into`, without waiting: raises `Empty` if no message is
    /// waiting.
    fn try_recv_into(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut buf = Buffer::get(buffer, true)?;
        self.with(py, |rx| match try_recv_into(py, rx, buf.as_mut_slice()) {
            Ok(n) => Ok(n),
            Err(Ok(e)) => Err(errors::try_recv(py, e)),
            Err(Err(e)) => Err(e),
        })
    }

    /// Borrows the next message in place, waiting as `recv` does:
    ///
    ///     with consumer.borrow() as view:
    ///         header = bytes(view[:16])
    ///
    /// `view` is a read-only `memoryview` of the message in the ring's
    /// shared memory, no copy made. It is released when the block ends,
    /// and so is the message; until then the consumer refuses other calls.
    /// The view, and anything made from it (slices, numpy arrays), is valid
    /// only inside the block: copy what you keep (`bytes(view)`).
    #[pyo3(signature = (timeout=None))]
    fn borrow(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<Borrowed> {
        let deadline = wait::deadline(timeout)?;
        Self::borrow_until(slf, Some(deadline))
    }

    /// Like `borrow`, without waiting: raises `Empty` if no message is
    /// waiting.
    fn try_borrow(slf: &Bound<'_, Self>) -> PyResult<Borrowed> {
        Self::borrow_until(slf, None)
    }

    /// Receives up to `max` messages as a list of `bytes`, waiting as
    /// `recv` does for the first; the rest are those already waiting, all
    /// released with one index store.
    #[pyo3(signature = (max=64, timeout=None))]
    fn recv_batch<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let deadline = wait::deadline(timeout)?;
        self.with(py, |rx| loop {
            match take_batch(py, rx, max)? {
                Some(list) if !list.is_empty() || max == 0 => return Ok(list),
                Some(_) => {}
                None => return Err(disconnected(py)),
            }
            if !wait_readable(py, rx, deadline)? {
                return Err(disconnected(py));
            }
        })
    }

    /// Receives up to `max` messages already waiting, as a list of `bytes`
    /// (empty if none is), released with one index store. Raises
    /// `Disconnected` at the end of the stream.
    #[pyo3(signature = (max=64))]
    fn try_recv_batch<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyList>> {
        self.with(py, |rx| {
            take_batch(py, rx, max)?.ok_or_else(|| disconnected(py))
        })
    }

    /// Number of slots in the ring.
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |rx| Ok(rx.capacity()))
    }

    /// The largest message in one slot, in bytes.
    #[getter]
    fn max_message(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |rx| Ok(rx.max_message()))
    }

    /// The largest message the ring carries, over any number of slots: a
    /// `recv_into` buffer this large takes any message.
    #[getter]
    fn message_limit(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |rx| Ok(rx.message_limit()))
    }

    /// Every payload (and so every borrowed view) starts at an address
    /// that is a multiple of this.
    #[getter]
    fn payload_align(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |rx| Ok(rx.payload_align()))
    }

    /// Messages ever released from this ring: the position of the next
    /// message.
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |rx| Ok(rx.position()))
    }

    /// Whether the consumer paces itself behind a streaming producer: after
    /// 16 messages in a row it checks how far behind it is and, if less than
    /// 16 KiB of slots, waits a few microseconds at most (only while the
    /// producer keeps publishing) for it to get ahead, so that the two do
    /// not fight over the same cache lines. On by default where slots are
    /// smaller than 4 KiB; a consumer that finds the ring empty between
    /// messages never paces.
    #[getter]
    fn pacing(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |rx| Ok(rx.pacing()))
    }

    #[setter]
    fn set_pacing(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        self.with(py, |rx| {
            rx.set_pacing(on);
            Ok(())
        })
    }

    /// Process id of the producer holding the ring, or None.
    #[getter]
    fn peer_pid(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        self.with(py, |rx| Ok(rx.peer_pid()))
    }

    /// Whether a producer holds the ring and its process is alive.
    fn peer_alive(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |rx| Ok(rx.peer_alive()))
    }

    /// Whether this handle was closed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(lock(py, &self.inner, "consumer")?.rx.is_none())
    }

    /// Messages waiting.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |rx| Ok(rx.len()))
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next message; the iteration ends when the producer closes.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        self.with(py, |rx| recv_bytes(py, rx, None))
    }

    /// Closes the consumer: the producer's sends then fail with
    /// `Disconnected`. Messages not yet received stay in the ring for the
    /// next consumer. Closing twice is fine.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.inner, "consumer")?;
        if g.borrowed {
            return Err(errors::borrowed(py));
        }
        let rx = g.rx.take();
        drop(g);
        drop(rx);
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match lock(py, &self.inner, "consumer") {
            Ok(g) => match g.rx.as_ref() {
                Some(rx) => format!("<shmpipe.{rx:?}>"),
                None => "<shmpipe.Consumer (closed)>".to_owned(),
            },
            Err(_) => "<shmpipe.Consumer (in use)>".to_owned(),
        }
    }
}

/// Up to `max` waiting messages; `None` at the end of the stream.
fn take_batch<'py>(
    py: Python<'py>,
    rx: &mut shmpipe::Consumer,
    max: usize,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let list = PyList::empty(py);
    let mut failed = None;
    let r = rx.try_recv_batch(max, |m| {
        if failed.is_none() {
            if let Err(e) = list.append(PyBytes::new(py, m)) {
                failed = Some(e);
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    match r {
        Ok(_) | Err(TryRecvError::Empty) => Ok(Some(list)),
        Err(TryRecvError::Disconnected) => Ok(None),
        Err(e) => Err(errors::try_recv(py, e)),
    }
}

impl Consumer {
    /// Borrows the next message: waits until `deadline` when it is
    /// `Some`, tries once when `None`.
    fn borrow_until(
        slf: &Bound<'_, Self>,
        deadline: Option<Option<Instant>>,
    ) -> PyResult<Borrowed> {
        let py = slf.py();
        let this = slf.get();
        let mut g = lock(py, &this.inner, "consumer")?;
        if g.borrowed {
            return Err(errors::borrowed(py));
        }
        let rx =
            g.rx.as_mut()
                .ok_or_else(|| errors::closed(py, "consumer"))?;
        let (ptr, len) = loop {
            match rx.try_borrow() {
                Ok(slot) => {
                    let at = (slot.as_ptr(), slot.len());
                    // The message stays unreleased until `end_borrow`: a
                    // ReadSlot owns nothing but its borrow, so forgetting
                    // it leaks nothing. The bytes stay mapped while this
                    // consumer lives, which the Borrowed guarantees by
                    // holding it.
                    std::mem::forget(slot);
                    break at;
                }
                Err(TryRecvError::Empty) => {}
                Err(e) => return Err(errors::try_recv(py, e)),
            }
            let Some(deadline) = deadline else {
                return Err(errors::try_recv(py, TryRecvError::Empty));
            };
            if !wait_readable(py, rx, deadline)? {
                return Err(disconnected(py));
            }
        };
        // SAFETY: `ptr..ptr+len` is the borrowed message's payload inside
        // the mapping, which outlives the view (the Borrowed keeps the
        // consumer, and so the mapping, alive, and releases the view before
        // the message). The view is read-only (PyBUF_READ).
        let view = unsafe {
            ffi::PyMemoryView_FromMemory(
                ptr.cast_mut().cast::<c_char>(),
                len as ffi::Py_ssize_t,
                PYBUF_READ,
            )
        };
        if view.is_null() {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: a new, owned reference.
        let view = unsafe { Bound::from_owned_ptr(py, view) };
        g.borrowed = true;
        drop(g);
        Ok(Borrowed {
            consumer: slf.clone().unbind(),
            view: view.unbind(),
            done: Mutex::new(false),
        })
    }
}

// ---------------------------------------------------------------------------
// Borrowed
// ---------------------------------------------------------------------------

/// A message borrowed in place by `Consumer.borrow()`; use it in a `with`
/// block, which gives the read-only `memoryview` and releases the message
/// at its end.
#[pyclass(frozen, module = "shmpipe")]
pub(crate) struct Borrowed {
    consumer: Py<Consumer>,
    view: Py<PyAny>,
    /// Whether the message was released.
    done: Mutex<bool>,
}

#[pymethods]
impl Borrowed {
    /// The message, as a read-only `memoryview` of the shared memory.
    #[getter]
    fn view(&self, py: Python<'_>) -> Py<PyAny> {
        self.view.clone_ref(py)
    }

    fn __enter__(&self, py: Python<'_>) -> Py<PyAny> {
        self.view.clone_ref(py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    /// Releases the view, then the message. Raises `BufferError`, and
    /// keeps both, while something made from the view still exports it
    /// (for example `numpy.frombuffer(view)`): delete that first. Releasing
    /// twice is fine.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let mut done = lock(py, &self.done, "borrowed message")?;
        if *done {
            return Ok(());
        }
        if let Err(e) = self.view.bind(py).call_method0("release") {
            let err = PyBufferError::new_err(
                "the borrowed message is still exported by an object made from its view \
                 (for example numpy.frombuffer(view)): delete that object before the `with` \
                 block ends, or copy the bytes with bytes(view); the message stays borrowed \
                 until release() succeeds",
            );
            err.set_cause(py, Some(e));
            return Err(err);
        }
        *done = true;
        self.consumer.get().end_borrow(py)
    }

    /// The message's length.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.view.bind(py).len()
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        // Garbage-collected without `release()`: release the message, so
        // that the consumer can go on (the view is released first; if
        // something still exports it, that object outlives its validity,
        // as the docs warn).
        let done = self.done.get_mut().map(|d| *d).unwrap_or(true);
        if !done {
            Python::attach(|py| {
                let _ = self.view.bind(py).call_method0("release");
                let _ = self.consumer.get().end_borrow(py);
            });
        }
    }
}
