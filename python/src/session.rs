//! `shmpipe.Listener`, `shmpipe.connect`, `shmpipe.Duplex`,
//! `shmpipe.Connection` and `shmpipe.Client`: a server that clients
//! connect to, each with a private duplex, and request/response calls.
//!
//! A `Duplex` holds the library's [`shmpipe::Client`] (a duplex plus the
//! ids of the calls made on it), so that one object sends, receives,
//! serves and calls. `Connection` adds who is at the other end; `Client`
//! adds `call`.

use std::sync::Mutex;
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use shmpipe::{CallError, ListenerBuilder, PeerCred, RecvError};

use crate::buffer::Message;
use crate::errors;
use crate::handles::{lock, recv_bytes, send_message, try_send_message, wait_readable};
use crate::wait::{self, SIGNAL_SLICE};
use crate::{builder, ring_options, RingOptions};

/// Who is at the other end of a connection, as the kernel recorded it
/// when the client connected: `pid`, `uid`, `gid`.
#[pyclass(frozen, get_all, module = "shmpipe")]
pub(crate) struct PeerCredentials {
    pid: u32,
    uid: u32,
    gid: u32,
}

#[pymethods]
impl PeerCredentials {
    fn __repr__(&self) -> String {
        format!(
            "PeerCredentials(pid={}, uid={}, gid={})",
            self.pid, self.uid, self.gid
        )
    }
}

/// Two rings, one each way: `send` goes to the other end, `recv` comes
/// from it; `try_serve` / `serve` answer the other end's `Client.call`s.
/// From `connect()`, `Listener.accept()` (as a `Connection`) or
/// `Client.connect()`. One thread at a time; closing it (`close()`, the
/// end of its `with` block) ends the stream both ways.
#[pyclass(frozen, subclass, module = "shmpipe")]
pub(crate) struct Duplex {
    inner: Mutex<Option<shmpipe::Client>>,
}

impl Duplex {
    fn new(client: shmpipe::Client) -> Duplex {
        Duplex {
            inner: Mutex::new(Some(client)),
        }
    }

    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut shmpipe::Client) -> PyResult<R>,
    ) -> PyResult<R> {
        let mut g = lock(py, &self.inner, "duplex")?;
        let c = g.as_mut().ok_or_else(|| errors::closed(py, "duplex"))?;
        f(c)
    }
}

/// Runs the Python `handler` on one request: its reply is copied into
/// `out`. On a Python error (or a reply too large) returns more than
/// `out.len()`, so that no reply is sent, and keeps the error.
fn call_handler(
    py: Python<'_>,
    handler: &Bound<'_, PyAny>,
    req: &[u8],
    out: &mut [u8],
    failed: &mut Option<PyErr>,
) -> usize {
    let reply = handler
        .call1((PyBytes::new(py, req),))
        .and_then(|r| Message::get(&r).map(|m| m.as_slice().to_vec()));
    match reply {
        Ok(r) if r.len() <= out.len() => {
            out[..r.len()].copy_from_slice(&r);
            r.len()
        }
        Ok(r) => {
            *failed = Some(errors::too_large(py, r.len(), out.len()));
            out.len() + 1
        }
        Err(e) => {
            *failed = Some(e);
            out.len() + 1
        }
    }
}

/// One `try_serve` step; `Ok(None)` at the client's orderly close.
fn serve_once(
    py: Python<'_>,
    c: &mut shmpipe::Client,
    handler: &Bound<'_, PyAny>,
) -> PyResult<Option<bool>> {
    let mut failed = None;
    let r = c
        .duplex()
        .try_serve(|req, out| call_handler(py, handler, req, out, &mut failed));
    if let Some(e) = failed {
        return Err(e);
    }
    match r {
        Ok(served) => Ok(Some(served)),
        Err(CallError::Disconnected) => Ok(None),
        Err(e) => Err(errors::call(py, e)),
    }
}

#[pymethods]
impl Duplex {
    /// Sends one message to the other end, as `Producer.send` (up to the
    /// ring's `message_limit`, waiting for room as long as it takes or at
    /// most `timeout` seconds).
    #[pyo3(signature = (data, timeout=None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let deadline = wait::deadline(timeout)?;
        let msg = Message::get(data)?;
        self.with(py, |c| {
            send_message(py, c.duplex().producer(), msg.as_slice(), deadline)
        })
    }

    /// Sends one message if there is room now; raises `Full` otherwise.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let msg = Message::get(data)?;
        self.with(py, |c| {
            try_send_message(py, c.duplex().producer(), msg.as_slice())
        })
    }

    /// Receives the next message from the other end as `bytes`, as
    /// `Consumer.recv` (GIL released while waiting; `Disconnected` once
    /// the other end closed and everything was received).
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        let deadline = wait::deadline(timeout)?;
        self.with(py, |c| {
            recv_bytes(py, c.duplex().consumer(), deadline)?
                .ok_or_else(|| errors::recv(py, RecvError::Disconnected))
        })
    }

    /// Receives the next message if one is waiting; raises `Empty`
    /// otherwise.
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.with(py, |c| match c.duplex().consumer().try_borrow() {
            Ok(slot) => crate::buffer::new_bytes(py, &slot),
            Err(e) => Err(errors::try_recv(py, e)),
        })
    }

    /// Answers one request of the other end's `Client.call`, if one is
    /// waiting: `handler(request: bytes)` returns the reply (any bytes-like
    /// object, at most `max_message - 8` bytes). Returns whether a request
    /// was answered (False if none was waiting, or the reply ring is full).
    /// Raises `Disconnected` once the client closed and every request was
    /// answered, `PeerDied` if its process died; an exception from
    /// `handler` propagates, and that request gets no reply.
    fn try_serve(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.with(py, |c| match serve_once(py, c, handler)? {
            Some(served) => Ok(served),
            None => Err(errors::call(py, CallError::Disconnected)),
        })
    }

    /// Answers requests with `handler` (as `try_serve`) until the client
    /// closes its end; returns how many were answered. Waits between
    /// requests with the GIL released; Ctrl-C interrupts it. Raises
    /// `PeerDied` if the client's process died.
    fn serve(&self, py: Python<'_>, handler: &Bound<'_, PyAny>) -> PyResult<u64> {
        self.with(py, |c| {
            let mut served = 0;
            loop {
                match serve_once(py, c, handler)? {
                    None => return Ok(served),
                    Some(true) => served += 1,
                    Some(false) => {
                        // Wait for the next request (or the end); a full
                        // reply ring is retried after a short wait.
                        if !wait_readable(py, c.duplex().consumer(), None)? {
                            return Ok(served);
                        }
                        if c.duplex().consumer().is_empty() {
                            continue;
                        }
                        if c.duplex().producer().is_full() {
                            py.detach(|| std::thread::sleep(SIGNAL_SLICE / 50));
                            py.check_signals()?;
                        }
                    }
                }
            }
        })
    }

    /// The readiness descriptor of the receiving ring (an int), for
    /// `select`, `selectors` or asyncio: readable when a receive or serve
    /// should be tried again, after `arm()` returned True.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.with(py, |c| {
            c.duplex()
                .consumer()
                .readiness_fd()
                .map(|fd| std::os::fd::AsRawFd::as_raw_fd(&fd))
                .map_err(|e| errors::setup(py, e))
        })
    }

    /// Prepares a wait on `fileno()`: True means wait until it is
    /// readable; False means try now.
    fn arm(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |c| {
            c.duplex().consumer().arm().map_err(|e| errors::recv(py, e))
        })
    }

    /// The largest message in one slot of the sending ring; a call's
    /// request and reply hold 8 bytes less (the request id).
    #[getter]
    fn max_message(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |c| Ok(c.duplex().max_message()))
    }

    /// The largest message `send` takes (over several slots).
    #[getter]
    fn message_limit(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |c| Ok(c.duplex().producer().message_limit()))
    }

    /// Process id of the other end, or None.
    #[getter]
    fn peer_pid(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        self.with(py, |c| Ok(c.duplex().peer_pid()))
    }

    /// Whether the other end's process is alive.
    fn peer_alive(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |c| Ok(c.duplex().peer_alive()))
    }

    /// Whether this duplex was closed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(lock(py, &self.inner, "duplex")?.is_none())
    }

    /// Closes both rings' ends: the other end receives what was sent, then
    /// `Disconnected`. Closing twice is fine.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let c = lock(py, &self.inner, "duplex")?.take();
        drop(c);
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }
}

/// A `Duplex` to a peer that connected through a `Listener` (or that this
/// process connected to), with the peer's credentials.
#[pyclass(frozen, subclass, extends = Duplex, module = "shmpipe")]
pub(crate) struct Connection {
    peer: PeerCred,
}

#[pymethods]
impl Connection {
    /// The other end's process, user and group (`pid`, `uid`, `gid`), as
    /// the kernel recorded them when the socket connected.
    #[getter]
    fn peer_cred(&self) -> PeerCredentials {
        PeerCredentials {
            pid: self.peer.pid,
            uid: self.peer.uid,
            gid: self.peer.gid,
        }
    }
}

/// The calling end of a connection: `call(request)` sends a request and
/// waits for its reply (the server answers with `Duplex.try_serve` or
/// `serve`). `Client.connect(address)` connects.
#[pyclass(frozen, extends = Connection, module = "shmpipe")]
pub(crate) struct Client {}

fn connection_init(conn: shmpipe::Connection) -> PyClassInitializer<Connection> {
    let peer = conn.peer_cred();
    PyClassInitializer::from(Duplex::new(shmpipe::Client::from_connection(conn)))
        .add_subclass(Connection { peer })
}

fn connect_rings(py: Python<'_>, address: &str, wait: &str) -> PyResult<shmpipe::Connection> {
    let mut b = shmpipe::RingBuilder::new();
    b.wait_strategy(crate::wait_strategy(wait)?)
        .heartbeat(wait::HEARTBEAT);
    py.detach(|| shmpipe::connect_with(&b, address))
        .map_err(|e| errors::setup(py, e))
}

#[pymethods]
impl Client {
    /// Connects to the listener at `address` (a socket path, or a bare
    /// NAME for `/dev/shm/shmpipe-NAME.sock`).
    #[staticmethod]
    #[pyo3(signature = (address, *, wait="spin_then_park"))]
    fn connect(py: Python<'_>, address: &str, wait: &str) -> PyResult<Py<Client>> {
        let conn = connect_rings(py, address, wait)?;
        Py::new(py, connection_init(conn).add_subclass(Client {}))
    }

    /// Sends `request` (bytes-like, at most `max_message - 8` bytes) and
    /// waits for its reply, as long as it takes (`timeout=None`) or at most
    /// `timeout` seconds (`Timeout`; a late reply is skipped by the next
    /// call). The GIL is released for the whole call; a signal (Ctrl-C)
    /// is handled when it returns, so pass a timeout where that matters.
    /// Raises `PeerDied` if the server's process died, `Disconnected` if
    /// it closed, `TooLarge`, `Protocol` (a reply to no call made).
    #[pyo3(signature = (request, timeout=None))]
    fn call<'py>(
        slf: &Bound<'py, Self>,
        request: &Bound<'py, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let py = slf.py();
        let deadline: Option<Instant> = wait::deadline(timeout)?;
        let msg = Message::get(request)?;
        let duplex: &Duplex = slf.as_super().as_super().get();
        let reply = duplex.with(py, |c| {
            let req = msg.as_slice();
            py.detach(|| c.call_deadline(req, deadline))
                .map_err(|e| errors::call(py, e))
        })?;
        py.check_signals()?;
        Ok(PyBytes::new(py, &reply))
    }
}

/// Connects to the listener at `address` (a socket path, or a bare NAME
/// for `/dev/shm/shmpipe-NAME.sock`) and returns this client's
/// `Connection`. Raises `NotFound` if nothing listens there,
/// `PermissionDenied` if the socket's mode keeps this user out,
/// `Protocol` if the server broke the handshake.
#[pyfunction]
#[pyo3(signature = (address, *, wait="spin_then_park"))]
pub(crate) fn connect(py: Python<'_>, address: &str, wait: &str) -> PyResult<Py<Connection>> {
    let conn = connect_rings(py, address, wait)?;
    Py::new(py, connection_init(conn))
}

/// A server's listening socket: `Listener.bind(address)`, then `accept()`
/// each client, which gets its own `Connection` (two memfd rings, nothing
/// named in /dev/shm). The socket gets `mode` (default 0o600: only this
/// user may connect; 0o666 admits everyone); the ring options apply to
/// every client's rings. Closing it removes the socket file.
#[pyclass(frozen, module = "shmpipe")]
pub(crate) struct Listener {
    inner: Mutex<Option<shmpipe::Listener>>,
}

impl Listener {
    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut shmpipe::Listener) -> PyResult<R>,
    ) -> PyResult<R> {
        let mut g = lock(py, &self.inner, "listener")?;
        let l = g.as_mut().ok_or_else(|| errors::closed(py, "listener"))?;
        f(l)
    }
}

#[pymethods]
impl Listener {
    /// Binds a listener at `address`: `unix:PATH` or anything with a `/`
    /// is that path, a bare NAME is `/dev/shm/shmpipe-NAME.sock`. A socket
    /// left by a killed listener is reclaimed; a live one raises `InUse`.
    /// `slots`, `max_message` / `slot_size`, `message_limit`, `wait`
    /// configure each client's two rings.
    #[staticmethod]
    #[pyo3(signature = (address, *, mode=0o600, slots=1024, max_message=None, slot_size=None,
                        message_limit=None, wait="spin_then_park"))]
    #[allow(clippy::too_many_arguments)]
    fn bind(
        py: Python<'_>,
        address: &str,
        mode: u32,
        slots: u64,
        max_message: Option<u64>,
        slot_size: Option<u64>,
        message_limit: Option<u64>,
        wait: &str,
    ) -> PyResult<Listener> {
        let rings = builder(&RingOptions {
            slots: Some(slots),
            max_message,
            slot_size,
            message_limit,
            payload_align: None,
            wait,
            ..ring_options()
        })?;
        let l = py
            .detach(|| ListenerBuilder::new().rings(rings).mode(mode).bind(address))
            .map_err(|e| errors::setup(py, e))?;
        Ok(Listener {
            inner: Mutex::new(Some(l)),
        })
    }

    /// Accepts the next client: waits as long as it takes (`timeout=None`)
    /// or at most `timeout` seconds (`Timeout`), with the GIL released;
    /// Ctrl-C interrupts the wait.
    #[pyo3(signature = (timeout=None))]
    fn accept(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<Connection>> {
        let deadline = wait::deadline(timeout)?;
        let conn = self.with(py, |l| loop {
            let now = Instant::now();
            let slice = now.checked_add(SIGNAL_SLICE).unwrap_or(now);
            let until = match deadline {
                Some(d) if d <= slice => d,
                _ => slice,
            };
            let got = py
                .detach(|| l.accept_deadline(Some(until)))
                .map_err(|e| errors::setup(py, e))?;
            if let Some(c) = got {
                return Ok(c);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(errors::timeout(
                    py,
                    "timed out waiting for a client to connect",
                ));
            }
            py.check_signals()?;
        })?;
        Py::new(py, connection_init(conn))
    }

    /// Accepts a client if one is waiting; None otherwise.
    fn try_accept(&self, py: Python<'_>) -> PyResult<Option<Py<Connection>>> {
        let conn = self.with(py, |l| l.try_accept().map_err(|e| errors::setup(py, e)))?;
        conn.map(|c| Py::new(py, connection_init(c))).transpose()
    }

    /// The listening socket (an int) for `select` or `selectors`: readable
    /// while a client waits (then `try_accept()`).
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.with(py, |l| Ok(std::os::fd::AsRawFd::as_raw_fd(l)))
    }

    /// The socket's path.
    #[getter]
    fn path(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |l| Ok(l.path().display().to_string()))
    }

    /// Closes the listener and removes its socket file; connections
    /// accepted from it keep working. Closing twice is fine.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let l = lock(py, &self.inner, "listener")?.take();
        drop(l);
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }
}

/// Registers the classes and `connect`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Listener>()?;
    m.add_class::<Duplex>()?;
    m.add_class::<Connection>()?;
    m.add_class::<Client>()?;
    m.add_class::<PeerCredentials>()?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    Ok(())
}
