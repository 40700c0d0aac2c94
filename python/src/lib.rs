//! The `shmpipe` Python module: shmpipe's rings for Python, as a PyO3
//! extension built by maturin (abi3, CPython 3.9 and later).
//!
//! ```text
//! lib.rs      the module, Ring, RingInfo, SideInfo
//! handles.rs  Producer, Consumer, Borrowed
//! errors.rs   the exception classes and the conversions into them
//! wait.rs     timeouts; the blocking wait, GIL released, Ctrl-C checked
//! buffer.rs   the buffer protocol: messages in, recv_into's buffer
//! session.rs  Listener, connect, Duplex, Connection, Client
//! ```
//!
//! See `python/README.md` for the Python API and `shmpipe.pyi` for its
//! types. The package is tested by pytest (`python/tests/`), not by
//! `cargo test`: an extension module links against the interpreter that
//! loads it.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::unnecessary_safety_comment)]

mod buffer;
mod errors;
mod handles;
mod session;
mod wait;

use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use shmpipe::{HugePages, RingBuilder, SideState, WaitStrategy};

use handles::{Borrowed, Consumer, Producer};

pub(crate) fn wait_strategy(wait: &str) -> PyResult<WaitStrategy> {
    match wait {
        "spin_then_park" => Ok(WaitStrategy::DEFAULT),
        "spin" => Ok(WaitStrategy::Spin),
        "park" => Ok(WaitStrategy::Park),
        other => Err(PyValueError::new_err(format!(
            "wait must be 'spin_then_park' (the default: spin 50 µs, then sleep), 'spin' \
             (lowest latency, burns a core) or 'park' (sleep at once), not {other:?}"
        ))),
    }
}

fn huge_pages(policy: &str) -> PyResult<HugePages> {
    match policy {
        "never" => Ok(HugePages::Never),
        "prefer" => Ok(HugePages::Prefer),
        "require" => Ok(HugePages::Require),
        other => Err(PyValueError::new_err(format!(
            "huge_pages must be 'never', 'prefer' or 'require', not {other:?}"
        ))),
    }
}

/// The ring options a Python call was given (`None`: not given).
pub(crate) struct RingOptions<'a> {
    pub(crate) slots: Option<u64>,
    pub(crate) max_message: Option<u64>,
    pub(crate) slot_size: Option<u64>,
    pub(crate) message_limit: Option<u64>,
    pub(crate) payload_align: Option<u64>,
    pub(crate) huge_pages: &'a str,
    pub(crate) mode: u32,
    pub(crate) populate: bool,
    pub(crate) wait: &'a str,
    pub(crate) reclaim_stale: bool,
    pub(crate) accept_any_geometry: bool,
    pub(crate) wait_for_creation: Option<f64>,
    pub(crate) open_timeout: f64,
}

/// The defaults of `Ring.create`.
pub(crate) fn ring_options() -> RingOptions<'static> {
    RingOptions {
        slots: None,
        max_message: None,
        slot_size: None,
        message_limit: None,
        payload_align: None,
        huge_pages: "never",
        mode: 0o600,
        populate: false,
        wait: "spin_then_park",
        reclaim_stale: false,
        accept_any_geometry: false,
        wait_for_creation: None,
        open_timeout: 1.0,
    }
}

fn seconds(what: &str, t: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(t).map_err(|_| {
        PyValueError::new_err(format!("{what} must be a number of seconds >= 0 (got {t})"))
    })
}

/// A builder for `o`. The geometry given (slots, max_message or
/// slot_size) is what opening checks.
pub(crate) fn builder(o: &RingOptions<'_>) -> PyResult<RingBuilder> {
    let mut b = RingBuilder::new();
    if let Some(n) = o.slots {
        b.slots(n);
    }
    match (o.max_message, o.slot_size) {
        (Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "give max_message or slot_size, not both (slot_size = max_message + 16, \
                 rounded up to a multiple of 64)",
            ))
        }
        (Some(m), None) => {
            b.max_message(m);
        }
        (None, Some(s)) => {
            b.slot_size(s);
        }
        (None, None) => {}
    }
    if let Some(m) = o.message_limit {
        b.message_limit(m);
    }
    if let Some(a) = o.payload_align {
        b.payload_align(a);
    }
    if let Some(t) = o.wait_for_creation {
        b.wait_for_creation(seconds("wait_for_creation", t)?);
    }
    b.huge_pages(huge_pages(o.huge_pages)?)
        .mode(o.mode)
        .populate(o.populate)
        .wait_strategy(wait_strategy(o.wait)?)
        .heartbeat(wait::HEARTBEAT)
        .reclaim_stale(o.reclaim_stale)
        .accept_any_geometry(o.accept_any_geometry)
        .open_timeout(seconds("timeout", o.open_timeout)?);
    Ok(b)
}

/// A shared-memory ring: `Ring.create(...)` makes one, `Ring.open(...)`
/// maps an existing one; take its `producer()` or `consumer()` (one of
/// each per ring, across all processes).
///
/// Closing the ring (`close()`, the end of its `with` block) unmaps it once
/// the handles taken from it are closed too; it does not remove the ring's
/// name (`Ring.remove` or `ring.unlink()` does).
#[pyclass(frozen, module = "shmpipe")]
struct Ring {
    inner: Mutex<Option<shmpipe::Ring>>,
}

impl Ring {
    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&shmpipe::Ring) -> PyResult<R>,
    ) -> PyResult<R> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(r) => f(r),
            None => Err(errors::closed(py, "ring")),
        }
    }
}

#[pymethods]
impl Ring {
    /// Creates a new ring at `address` (`shm:NAME`, `file:PATH`,
    /// `sysv:KEY`). `slots` is a power of two; give the largest message in
    /// one slot as `max_message` or the slot size (a multiple of 64,
    /// including a 16-byte header) as `slot_size`, not both (default:
    /// 256-byte slots). Larger messages take several slots, up to
    /// `message_limit` bytes (default: what the ring holds). Every payload
    /// starts at a multiple of `payload_align` (default 16). `huge_pages`
    /// is 'never', 'prefer' or 'require'; `mode` the permission bits;
    /// `populate` pre-faults every page; `wait` is how blocking calls
    /// wait; `reclaim_stale` replaces an existing ring whose processes are
    /// all dead. Raises `AlreadyExists` for a taken name.
    ///
    /// With `open_or_create=True` an existing ring is opened instead, so
    /// that peers can start in any order: of any number of processes doing
    /// this at once, exactly one creates the ring (`created` says which).
    /// The ring found must have the geometry given (`GeometryMismatch`
    /// otherwise) unless `accept_any_geometry=True`; `timeout` is how long
    /// to wait for its creator to finish initialising it.
    #[staticmethod]
    #[pyo3(signature = (address, *, slots=1024, max_message=None, slot_size=None,
                        message_limit=None, payload_align=None, huge_pages="never",
                        mode=0o600, populate=false, wait="spin_then_park",
                        reclaim_stale=false, open_or_create=false,
                        accept_any_geometry=false, timeout=1.0))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        address: &str,
        slots: u64,
        max_message: Option<u64>,
        slot_size: Option<u64>,
        message_limit: Option<u64>,
        payload_align: Option<u64>,
        huge_pages: &str,
        mode: u32,
        populate: bool,
        wait: &str,
        reclaim_stale: bool,
        open_or_create: bool,
        accept_any_geometry: bool,
        timeout: f64,
    ) -> PyResult<Ring> {
        let b = builder(&RingOptions {
            slots: Some(slots),
            max_message,
            slot_size,
            message_limit,
            payload_align,
            huge_pages,
            mode,
            populate,
            wait,
            reclaim_stale,
            accept_any_geometry,
            wait_for_creation: None,
            open_timeout: timeout,
        })?;
        let r = py.detach(|| {
            if open_or_create {
                b.open_or_create(address)
            } else {
                b.create(address)
            }
        });
        Ok(Ring {
            inner: Mutex::new(Some(r.map_err(|e| errors::setup(py, e))?)),
        })
    }

    /// Maps the existing ring at `address`, waiting up to `timeout`
    /// seconds for a creator that has not finished initialising it, and,
    /// with `wait_for_creation` seconds, for a ring that does not exist
    /// yet (a client started before its server; then `NotCreated`, a
    /// `NotFound`). Given `slots`, `max_message` or `slot_size`, the ring
    /// must have that geometry (`GeometryMismatch`). Raises `NotFound`,
    /// `PermissionDenied`, `BadMagic`, `VersionMismatch`, `Corrupt`, ...
    #[staticmethod]
    #[pyo3(signature = (address, *, wait="spin_then_park", timeout=1.0,
                        wait_for_creation=None, slots=None, max_message=None,
                        slot_size=None))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        py: Python<'_>,
        address: &str,
        wait: &str,
        timeout: f64,
        wait_for_creation: Option<f64>,
        slots: Option<u64>,
        max_message: Option<u64>,
        slot_size: Option<u64>,
    ) -> PyResult<Ring> {
        let b = builder(&RingOptions {
            slots,
            max_message,
            slot_size,
            wait,
            wait_for_creation,
            open_timeout: timeout,
            ..ring_options()
        })?;
        let r = py.detach(|| b.open(address));
        Ok(Ring {
            inner: Mutex::new(Some(r.map_err(|e| errors::setup(py, e))?)),
        })
    }

    /// Whether this handle created the ring (`create`, or the process that
    /// won `create(open_or_create=True)`), not opened it.
    #[getter]
    fn created(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |r| Ok(r.created()))
    }

    /// Claims the producer side. Raises `AlreadyClaimed` while a live
    /// process holds it; a side left by a dead process is taken over.
    fn producer(&self, py: Python<'_>) -> PyResult<Producer> {
        self.with(py, |r| {
            r.producer()
                .map(Producer::new)
                .map_err(|e| errors::setup(py, e))
        })
    }

    /// Claims the consumer side (as `producer()`).
    fn consumer(&self, py: Python<'_>) -> PyResult<Consumer> {
        self.with(py, |r| {
            r.consumer()
                .map(Consumer::new)
                .map_err(|e| errors::setup(py, e))
        })
    }

    /// A snapshot of the ring's geometry, indices, sides and counters.
    fn info(&self, py: Python<'_>) -> PyResult<RingInfo> {
        self.with(py, |r| RingInfo::new(py, r.info()))
    }

    /// The ring's address (`shm:NAME`, ...), or None for an anonymous one.
    #[getter]
    fn address(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.with(py, |r| Ok(r.address().map(|a| a.to_string())))
    }

    /// Every shmpipe ring this process can see, as a list of
    /// `(address, info)`, where `info` is a `RingInfo`, or the
    /// `shmpipe.Error` met opening that ring (corrupt, no permission).
    #[staticmethod]
    fn list(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
        let rings = py.detach(shmpipe::Ring::list);
        let out = PyList::empty(py);
        for (address, info) in rings {
            let info = match info {
                Ok(i) => Bound::new(py, RingInfo::new(py, i)?)?.into_any(),
                Err(e) => errors::setup(py, e)
                    .into_value(py)
                    .into_bound(py)
                    .into_any(),
            };
            out.append(PyTuple::new(
                py,
                [address.to_string().into_pyobject(py)?.into_any(), info],
            )?)?;
        }
        Ok(out)
    }

    /// Removes the ring at `address`. Refuses (`InUse`) while a live
    /// process holds a side, unless `force`; never removes a segment that
    /// is not a shmpipe ring (`BadMagic`). Processes that have it mapped
    /// keep working.
    #[staticmethod]
    #[pyo3(signature = (address, force=false))]
    fn remove(py: Python<'_>, address: &str, force: bool) -> PyResult<()> {
        py.detach(|| shmpipe::Ring::remove(address, force))
            .map_err(|e| errors::setup(py, e))
    }

    /// Removes this ring's name now (as `Ring.remove(address, force=True)`).
    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |r| r.unlink().map_err(|e| errors::setup(py, e)))
    }

    /// Unmaps the ring once the handles taken from it are closed too.
    /// Closing twice is fine.
    fn close(&self) {
        let r = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(r);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        match self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(r) => format!("<shmpipe.{r:?}>"),
            None => "<shmpipe.Ring (closed)>".to_owned(),
        }
    }
}

/// One side of a ring, in `RingInfo.producer` and `RingInfo.consumer`:
/// who holds it (`state`: 'vacant', 'attached', 'closed' or 'invalid';
/// `pid`; `alive`), whether it sleeps on its futex (`parked`), and its
/// counters.
#[pyclass(frozen, get_all, module = "shmpipe")]
struct SideInfo {
    state: &'static str,
    pid: Option<u32>,
    alive: Option<bool>,
    parked: bool,
    messages: u64,
    bytes: u64,
    stalls: u64,
    futex_waits: u64,
    futex_wakes: u64,
    spin_rounds: u64,
}

impl SideInfo {
    fn new(s: shmpipe::SideInfo) -> SideInfo {
        let (state, pid, alive) = match s.state {
            SideState::Vacant => ("vacant", None, None),
            SideState::Attached { pid, alive } => ("attached", Some(pid), Some(alive)),
            SideState::Closed { pid } => ("closed", Some(pid), None),
            _ => ("invalid", None, None),
        };
        SideInfo {
            state,
            pid,
            alive,
            parked: s.parked,
            messages: s.stats.messages,
            bytes: s.stats.bytes,
            stalls: s.stats.stalls,
            futex_waits: s.stats.futex_waits,
            futex_wakes: s.stats.futex_wakes,
            spin_rounds: s.stats.spin_rounds,
        }
    }
}

#[pymethods]
impl SideInfo {
    fn __repr__(&self) -> String {
        format!(
            "SideInfo(state={:?}, pid={}, alive={}, parked={}, messages={}, bytes={})",
            self.state,
            self.pid.map_or("None".to_owned(), |p| p.to_string()),
            self.alive
                .map_or("None", |a| if a { "True" } else { "False" }),
            if self.parked { "True" } else { "False" },
            self.messages,
            self.bytes
        )
    }
}

/// A snapshot of a ring, from `Ring.info()` and `Ring.list()`.
#[pyclass(frozen, get_all, module = "shmpipe")]
struct RingInfo {
    /// The ring's address.
    address: String,
    /// 'posix-shm', 'file', 'memfd', 'sysv' or 'heap'.
    backend: String,
    /// Where it lives in the file system, if anywhere.
    path: Option<String>,
    /// Permission bits, when known.
    mode: Option<u32>,
    /// The mapping's page size in bytes (the huge page size with huge
    /// pages).
    page_size: u64,
    /// Why huge_pages='prefer' fell back to base pages, if it did.
    huge_page_fallback: Option<String>,
    /// Bytes mapped.
    mapped_len: u64,
    /// Number of slots.
    slots: u64,
    /// Bytes per slot, including the 16-byte slot header.
    slot_size: u64,
    /// The largest message in one slot, in bytes.
    max_message: u64,
    /// The largest message over any number of slots, in bytes.
    message_limit: u64,
    /// Every payload starts at a multiple of this many bytes.
    payload_align: u64,
    /// Header plus slots, in bytes.
    total_len: u64,
    /// The creating process.
    creator_pid: u32,
    /// Whether it is alive.
    creator_alive: bool,
    /// Messages released by consumers.
    head: u64,
    /// Messages committed by producers.
    tail: u64,
    /// Messages waiting (tail - head), None if the indices are
    /// inconsistent.
    len: Option<u64>,
    /// The producer side.
    producer: Py<SideInfo>,
    /// The consumer side.
    consumer: Py<SideInfo>,
}

impl RingInfo {
    fn new(py: Python<'_>, i: shmpipe::RingInfo) -> PyResult<RingInfo> {
        Ok(RingInfo {
            len: i.len(),
            address: i.address,
            backend: i.backend.to_string(),
            path: i.path.map(|p| p.display().to_string()),
            mode: i.mode,
            page_size: i.page_size,
            huge_page_fallback: i.huge_page_fallback,
            mapped_len: i.mapped_len,
            slots: i.slots,
            slot_size: i.slot_size,
            max_message: i.max_message,
            message_limit: i.message_limit,
            payload_align: i.payload_align,
            total_len: i.total_len,
            creator_pid: i.creator_pid,
            creator_alive: i.creator_alive,
            head: i.head,
            tail: i.tail,
            producer: Py::new(py, SideInfo::new(i.producer))?,
            consumer: Py::new(py, SideInfo::new(i.consumer))?,
        })
    }
}

#[pymethods]
impl RingInfo {
    fn __repr__(&self) -> String {
        format!(
            "RingInfo(address={:?}, backend={:?}, slots={}, slot_size={}, max_message={}, \
             head={}, tail={})",
            self.address,
            self.backend,
            self.slots,
            self.slot_size,
            self.max_message,
            self.head,
            self.tail
        )
    }
}

/// Lock-free single-producer single-consumer message rings in Linux shared
/// memory, between processes (Python or Rust) on one host.
///
///     import shmpipe
///     ring = shmpipe.Ring.create("shm:orders", slots=1024, max_message=248)
///     with ring.producer() as tx:
///         tx.send(b"hello")
///
///     # another process
///     rx = shmpipe.Ring.open("shm:orders").consumer()
///     for msg in rx:      # until the producer closes
///         print(msg)
///
/// Errors are subclasses of shmpipe.Error, one per case (Full, Empty,
/// Timeout, Disconnected, PeerDied, TooLarge, NotFound, ...), each message
/// saying what to do.
#[pymodule]
#[pyo3(name = "shmpipe")]
fn shmpipe_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Ring>()?;
    m.add_class::<RingInfo>()?;
    m.add_class::<SideInfo>()?;
    m.add_class::<Producer>()?;
    m.add_class::<Consumer>()?;
    m.add_class::<Borrowed>()?;
    session::register(m)?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
