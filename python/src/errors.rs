//! The exception classes, one per Rust error variant, under `shmpipe.Error`,
//! and the conversions from the library's error types.
//!
//! The classes are made at import with `type(name, bases, namespace)`, so
//! that one can have two bases: `shmpipe.Timeout` is also a `TimeoutError`,
//! `shmpipe.NotFound` a `FileNotFoundError`, and so on. Each instance's
//! message is the library's `Display` text, which says what to do; the
//! variant's fields are attributes (`pid`, `max`, `needed`, `field`, ...).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use shmpipe::{
    CallError, Corruption, Error, RecvError, SendError, Side, TryRecvError, TrySendError,
};

/// Name, bases (shmpipe classes defined above it, or builtins) and
/// docstring of every exception class, base first.
const CLASSES: &[(&str, &[&str], &str)] = &[
    (
        "Error",
        &["Exception"],
        "Base class of every shmpipe error. The message says what happened and what to do.",
    ),
    (
        "Full",
        &["Error"],
        "try_send found the ring full: try again once the consumer has made room.",
    ),
    (
        "Empty",
        &["Error"],
        "try_recv found no message waiting: try again later, or use recv(timeout=...).",
    ),
    (
        "Timeout",
        &["Error", "TimeoutError"],
        "A blocking call's timeout passed with the ring still full (send) or empty (recv).",
    ),
    (
        "Disconnected",
        &["Error"],
        "The peer closed its handle: on the consumer, after every message was received.",
    ),
    (
        "PeerDied",
        &["Disconnected"],
        "The peer's process died without closing (attribute `pid`); a new process can take \
         its side over.",
    ),
    (
        "TooLarge",
        &["Error", "ValueError"],
        "The message is larger than the call takes (attributes `size`, `max`): the ring's \
         message_limit for send, max_message for a batch message, max_message - 8 for a call.",
    ),
    (
        "BufferTooSmall",
        &["Error", "ValueError"],
        "recv_into's buffer is smaller than the next message (attribute `needed`); the message \
         stays in the ring.",
    ),
    (
        "Corrupt",
        &["Error"],
        "A shared field holds a value no correct peer writes (attributes `field`, `found`, \
         `expected`): remove the ring and create it again.",
    ),
    (
        "InvalidAddress",
        &["Error", "ValueError"],
        "The address is malformed: use shm:NAME, file:PATH, sysv:KEY or sysv:PATH:ID.",
    ),
    (
        "InvalidConfig",
        &["Error", "ValueError"],
        "A geometry or option value is out of range (attributes `option`, `value`).",
    ),
    (
        "AlreadyExists",
        &["Error", "FileExistsError"],
        "Creating a ring whose name is taken: open it instead, or remove it first.",
    ),
    (
        "NotFound",
        &["Error", "FileNotFoundError"],
        "No ring at that address: create it first, or check the name with Ring.list().",
    ),
    (
        "PermissionDenied",
        &["Error", "PermissionError"],
        "The operating system refused access to the segment (another user's, or its mode).",
    ),
    (
        "Symlink",
        &["Error"],
        "The address names a symbolic link, which shmpipe never follows: name the real file.",
    ),
    (
        "NotARegularFile",
        &["Error"],
        "The segment is not a regular file or shared-memory object.",
    ),
    (
        "NotInitialized",
        &["Error"],
        "The ring's creator did not finish initialising it in time (it may have died).",
    ),
    (
        "BadMagic",
        &["Error"],
        "The segment is not a shmpipe ring: check the address.",
    ),
    (
        "VersionMismatch",
        &["Error"],
        "The ring was made by an incompatible shmpipe version (attributes `found`, `expected`).",
    ),
    (
        "AlreadyClaimed",
        &["Error"],
        "That side of the ring is held by a live process (attributes `side`, `pid`).",
    ),
    (
        "InUse",
        &["Error"],
        "Ring.remove refused: a live process holds a side (attributes `side`, `pid`); pass \
         force=True to remove it anyway.",
    ),
    (
        "HugePagesUnavailable",
        &["Error"],
        "huge_pages='require' and no huge pages could be had; the message says what to set up.",
    ),
    (
        "Unsupported",
        &["Error"],
        "The operation does not apply to this ring or handle.",
    ),
    (
        "Removed",
        &["Disconnected"],
        "The ring was removed (Ring.remove, `shmpipe rm`) while this handle used it; open or \
         create it anew.",
    ),
    (
        "GeometryMismatch",
        &["Error"],
        "The ring exists with another geometry than asked for (attributes `expected`, `found`: \
         (slots, slot_size) pairs).",
    ),
    (
        "NotCreated",
        &["NotFound"],
        "No ring appeared at the address within the time allowed to wait for its creator.",
    ),
    (
        "Vanished",
        &["Error"],
        "The ring kept being removed or replaced while this process tried to open or create it.",
    ),
    (
        "IncompatibleType",
        &["Error"],
        "The ring was made for another message type than the one expected (the Rust crate's \
         typed rings; untyped opens never check).",
    ),
    (
        "Misaligned",
        &["Error"],
        "A typed handle's message type needs more alignment than the ring gives its payloads \
         (attributes `type_align`, `ring_align`).",
    ),
    (
        "TypeTooLarge",
        &["TooLarge"],
        "A typed handle's message type is larger than the ring's message limit (attributes \
         `size`, `max`).",
    ),
    (
        "Protocol",
        &["Error"],
        "The peer broke the protocol: a failed listener handshake, or a request or reply that \
         is no message of the request/response protocol.",
    ),
    (
        "Io",
        &["Error", "OSError"],
        "Any other failed system call (attributes `errno`, `op`, `target`).",
    ),
];

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn types(py: Python<'_>) -> PyResult<&Vec<Py<PyType>>> {
    TYPES.get_or_try_init(py, || {
        let builtins = py.import("builtins")?;
        let type_ = builtins.getattr("type")?;
        let mut made: Vec<Py<PyType>> = Vec::with_capacity(CLASSES.len());
        for (name, bases, doc) in CLASSES {
            let mut base_objs = Vec::with_capacity(bases.len());
            for base in *bases {
                let ours = CLASSES.iter().position(|(n, _, _)| n == base);
                match ours.and_then(|i| made.get(i)) {
                    Some(t) => base_objs.push(t.bind(py).clone().into_any()),
                    None => base_objs.push(builtins.getattr(*base)?),
                }
            }
            let ns = PyDict::new(py);
            ns.set_item("__module__", "shmpipe")?;
            ns.set_item("__doc__", *doc)?;
            let cls = type_.call1((*name, PyTuple::new(py, base_objs)?, ns))?;
            made.push(cls.cast_into::<PyType>()?.unbind());
        }
        Ok(made)
    })
}

/// Adds every exception class to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for ((name, _, _), t) in CLASSES.iter().zip(types(py)?) {
        m.add(*name, t.bind(py))?;
    }
    Ok(())
}

/// A new exception of class `name` (one of `CLASSES`) with `args` and the
/// attributes `attrs`.
fn make<'py, A>(py: Python<'py>, name: &str, args: A, attrs: &[(&str, Bound<'py, PyAny>)]) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let build = || -> PyResult<PyErr> {
        let i = CLASSES.iter().position(|(n, _, _)| *n == name).unwrap_or(0);
        let cls = types(py)?[i].bind(py);
        let exc = cls.call1(args)?;
        for (k, v) in attrs {
            exc.setattr(*k, v)?;
        }
        Ok(PyErr::from_value(exc))
    };
    // Making the exception can itself fail (out of memory): raise that.
    build().unwrap_or_else(|e| e)
}

fn simple(py: Python<'_>, name: &str, msg: String) -> PyErr {
    make(py, name, (msg,), &[])
}

fn side_str(side: Side) -> &'static str {
    match side {
        Side::Producer => "producer",
        Side::Consumer => "consumer",
    }
}

/// Turns a list of `(name, value)` into attributes, or the error making
/// one of them.
macro_rules! attrs {
    ($py:expr; $($k:literal => $v:expr),* $(,)?) => {{
        let v: PyResult<Vec<(&str, Bound<'_, PyAny>)>> = (|| {
            Ok(vec![$(($k, $v.into_pyobject($py)?.into_any())),*])
        })();
        v
    }};
}

fn with_attrs<'py>(
    py: Python<'py>,
    name: &str,
    msg: String,
    attrs: PyResult<Vec<(&str, Bound<'py, PyAny>)>>,
) -> PyErr {
    match attrs {
        Ok(a) => make(py, name, (msg,), &a),
        Err(e) => e,
    }
}

fn corrupt(py: Python<'_>, msg: String, c: &Corruption, address: Option<&str>) -> PyErr {
    let expected = c.expected.to_string();
    with_attrs(
        py,
        "Corrupt",
        msg,
        attrs!(py; "field" => c.field, "found" => c.found, "expected" => expected,
               "address" => address),
    )
}

/// A setup or administration error as its exception.
pub(crate) fn setup(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::InvalidAddress { input, .. } => {
            with_attrs(py, "InvalidAddress", msg, attrs!(py; "address" => input))
        }
        Error::InvalidConfig { what, value, .. } => with_attrs(
            py,
            "InvalidConfig",
            msg,
            attrs!(py; "option" => what, "value" => value),
        ),
        Error::AlreadyExists { address } => {
            with_attrs(py, "AlreadyExists", msg, attrs!(py; "address" => address))
        }
        Error::NotFound { address } => {
            with_attrs(py, "NotFound", msg, attrs!(py; "address" => address))
        }
        Error::PermissionDenied { address, op, .. } => with_attrs(
            py,
            "PermissionDenied",
            msg,
            attrs!(py; "address" => address, "op" => op),
        ),
        Error::Symlink { address } => {
            with_attrs(py, "Symlink", msg, attrs!(py; "address" => address))
        }
        Error::NoListener { address } => {
            with_attrs(py, "NotFound", msg, attrs!(py; "address" => address))
        }
        Error::NotASocket { address } => {
            with_attrs(py, "NotARegularFile", msg, attrs!(py; "address" => address))
        }
        Error::NotARegularFile { address } => {
            with_attrs(py, "NotARegularFile", msg, attrs!(py; "address" => address))
        }
        Error::NotInitialized { address, .. } => {
            with_attrs(py, "NotInitialized", msg, attrs!(py; "address" => address))
        }
        Error::BadMagic { address, found } => with_attrs(
            py,
            "BadMagic",
            msg,
            attrs!(py; "address" => address, "found" => found),
        ),
        Error::VersionMismatch {
            address,
            found,
            expected,
        } => with_attrs(
            py,
            "VersionMismatch",
            msg,
            attrs!(py; "address" => address, "found" => found, "expected" => expected),
        ),
        Error::Corrupt {
            address,
            corruption,
        } => corrupt(py, msg, &corruption, Some(&address)),
        Error::AlreadyClaimed { address, side, pid } => with_attrs(
            py,
            "AlreadyClaimed",
            msg,
            attrs!(py; "address" => address, "side" => side_str(side), "pid" => pid),
        ),
        Error::InUse { address, side, pid } => with_attrs(
            py,
            "InUse",
            msg,
            attrs!(py; "address" => address, "side" => side_str(side), "pid" => pid),
        ),
        Error::HugePagesUnavailable { address, .. } => with_attrs(
            py,
            "HugePagesUnavailable",
            msg,
            attrs!(py; "address" => address),
        ),
        Error::Unsupported { address, .. } => {
            with_attrs(py, "Unsupported", msg, attrs!(py; "address" => address))
        }
        Error::Removed { address } => {
            with_attrs(py, "Removed", msg, attrs!(py; "address" => address))
        }
        Error::GeometryMismatch {
            address,
            expected,
            found,
        } => with_attrs(
            py,
            "GeometryMismatch",
            msg,
            attrs!(py; "address" => address,
                "expected" => (expected.slots, expected.slot_size),
                "found" => (found.slots, found.slot_size)),
        ),
        Error::NotCreated { address, .. } => {
            with_attrs(py, "NotCreated", msg, attrs!(py; "address" => address))
        }
        Error::Vanished { address, attempts } => with_attrs(
            py,
            "Vanished",
            msg,
            attrs!(py; "address" => address, "attempts" => attempts),
        ),
        // The second mapping of a double-mapped ring failed: an `Io` error
        // of the `mmap` that failed.
        Error::DoubleMapFailed { address, source } => {
            let errno = source.raw_os_error();
            match attrs!(py; "op" => "mmap (slot area mapped twice)", "target" => address) {
                Ok(a) => make(py, "Io", (errno, msg), &a),
                Err(e) => e,
            }
        }
        Error::Handshake { .. } => simple(py, "Protocol", msg),
        Error::IncompatibleType { address, .. } => with_attrs(
            py,
            "IncompatibleType",
            msg,
            attrs!(py; "address" => address),
        ),
        Error::Misaligned {
            address,
            type_align,
            ring_align,
            ..
        } => with_attrs(
            py,
            "Misaligned",
            msg,
            attrs!(py; "address" => address, "type_align" => type_align,
                "ring_align" => ring_align),
        ),
        Error::TypeTooLarge {
            address, size, max, ..
        } => with_attrs(
            py,
            "TypeTooLarge",
            msg,
            attrs!(py; "address" => address, "size" => size, "max" => max),
        ),
        Error::ListenerInUse { .. } => simple(py, "InUse", msg),
        Error::Io { op, target, source } => {
            let errno = source.raw_os_error();
            match attrs!(py; "op" => op, "target" => target) {
                Ok(a) => make(py, "Io", (errno, msg), &a),
                Err(e) => e,
            }
        }
        // A variant added to the library later: still a shmpipe.Error
        // with its message.
        _ => simple(py, "Error", msg),
    }
}

/// A non-blocking send's error (the message is not needed: the caller
/// still has it).
pub(crate) fn try_send<T>(py: Python<'_>, e: TrySendError<T>) -> PyErr {
    let e = e.map(drop);
    let msg = e.to_string();
    match e {
        TrySendError::Full(()) => simple(py, "Full", msg),
        TrySendError::Disconnected(()) => simple(py, "Disconnected", msg),
        TrySendError::TooLarge { max, .. } => {
            with_attrs(py, "TooLarge", msg, attrs!(py; "max" => max))
        }
        TrySendError::Corrupt { corruption, .. } => corrupt(py, msg, &corruption, None),
        TrySendError::Removed(()) => simple(py, "Removed", msg),
    }
}

/// A blocking send's error.
pub(crate) fn send<T>(py: Python<'_>, e: SendError<T>) -> PyErr {
    let e = e.map(drop);
    let msg = e.to_string();
    match e {
        SendError::Timeout(()) => simple(py, "Timeout", msg),
        SendError::Disconnected(()) => simple(py, "Disconnected", msg),
        SendError::PeerDied { pid, .. } => {
            with_attrs(py, "PeerDied", msg, attrs!(py; "pid" => pid))
        }
        SendError::TooLarge { max, .. } => {
            with_attrs(py, "TooLarge", msg, attrs!(py; "max" => max))
        }
        SendError::Corrupt { corruption, .. } => corrupt(py, msg, &corruption, None),
        SendError::Removed(()) => simple(py, "Removed", msg),
    }
}

/// A message too large for the call, found before anything was reserved.
pub(crate) fn too_large(py: Python<'_>, size: usize, max: usize) -> PyErr {
    let msg = format!(
        "message of {size} bytes is larger than the {max} bytes this call takes: create the \
         ring with a larger slot size or message_limit"
    );
    with_attrs(
        py,
        "TooLarge",
        msg,
        attrs!(py; "size" => size, "max" => max),
    )
}

/// A non-blocking receive's error.
pub(crate) fn try_recv(py: Python<'_>, e: TryRecvError) -> PyErr {
    let msg = e.to_string();
    match e {
        TryRecvError::Empty => simple(py, "Empty", msg),
        TryRecvError::Disconnected => simple(py, "Disconnected", msg),
        TryRecvError::BufferTooSmall { needed } => {
            with_attrs(py, "BufferTooSmall", msg, attrs!(py; "needed" => needed))
        }
        TryRecvError::Corrupt(c) => corrupt(py, msg, &c, None),
        TryRecvError::Removed => simple(py, "Removed", msg),
    }
}

/// A blocking receive's error.
pub(crate) fn recv(py: Python<'_>, e: RecvError) -> PyErr {
    let msg = e.to_string();
    match e {
        RecvError::Timeout => simple(py, "Timeout", msg),
        RecvError::Disconnected => simple(py, "Disconnected", msg),
        RecvError::PeerDied { pid } => with_attrs(py, "PeerDied", msg, attrs!(py; "pid" => pid)),
        RecvError::BufferTooSmall { needed } => {
            with_attrs(py, "BufferTooSmall", msg, attrs!(py; "needed" => needed))
        }
        RecvError::Corrupt(c) => corrupt(py, msg, &c, None),
        RecvError::Removed => simple(py, "Removed", msg),
    }
}

/// A handle used after `close()` (or its with-block).
pub(crate) fn closed(py: Python<'_>, what: &str) -> PyErr {
    simple(
        py,
        "Unsupported",
        format!("this {what} is closed: take a new one with ring.{what}()"),
    )
}

/// A handle used by a second thread while the first is inside a call.
pub(crate) fn busy(py: Python<'_>, what: &str) -> PyErr {
    simple(
        py,
        "Unsupported",
        format!(
            "this {what} is in use by another thread: a handle serves one thread at a time \
             (a ring has one producer and one consumer); use a lock or one handle per thread"
        ),
    )
}

/// Another call on a consumer while a borrowed message is open.
pub(crate) fn borrowed(py: Python<'_>) -> PyErr {
    simple(
        py,
        "Unsupported",
        "a borrowed message is still open on this consumer: leave its `with` block (or call \
         release()) first"
            .to_owned(),
    )
}

/// A timeout with its own message.
pub(crate) fn timeout(py: Python<'_>, msg: &str) -> PyErr {
    simple(py, "Timeout", msg.to_owned())
}

/// A failed call or serve step.
pub(crate) fn call(py: Python<'_>, e: CallError) -> PyErr {
    let msg = e.to_string();
    match e {
        CallError::Timeout => simple(py, "Timeout", msg),
        CallError::Disconnected => simple(py, "Disconnected", msg),
        CallError::PeerDied { pid } => with_attrs(py, "PeerDied", msg, attrs!(py; "pid" => pid)),
        CallError::Removed => simple(py, "Removed", msg),
        CallError::TooLarge { len, max } => {
            with_attrs(py, "TooLarge", msg, attrs!(py; "size" => len, "max" => max))
        }
        CallError::BufferTooSmall { needed } => {
            with_attrs(py, "BufferTooSmall", msg, attrs!(py; "needed" => needed))
        }
        CallError::BadMessage { .. } => simple(py, "Protocol", msg),
        CallError::Corrupt(c) => corrupt(py, msg, &c, None),
        _ => simple(py, "Error", msg),
    }
}
