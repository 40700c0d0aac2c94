//! The boundary: [`guard`] runs every entry point under `catch_unwind` and
//! turns a failure into a status code plus the thread-local last error.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use shmpipe::{CallError, Error, RecvError, SendError, TryRecvError, TrySendError};

use crate::*;

/// A failure on its way to C: a status and what `shmpipe_last_error()`
/// will say.
#[derive(Debug)]
pub struct Fail {
    status: c_int,
    message: Message,
}

/// The text of the last error: the common transient ones are static, so
/// that a spinning `try_recv` that finds the ring empty allocates nothing.
#[derive(Debug)]
enum Message {
    Static(&'static CStr),
    Owned(CString),
}

impl Fail {
    /// A failure with a fixed message.
    pub(crate) fn fixed(status: c_int, message: &'static CStr) -> Fail {
        Fail {
            status,
            message: Message::Static(message),
        }
    }

    /// A failure with a formatted message.
    pub(crate) fn new(status: c_int, message: impl Into<String>) -> Fail {
        Fail {
            status,
            message: Message::Owned(to_cstring(message.into())),
        }
    }

    /// `SHMPIPE_INVALID_ARGUMENT` for a NULL pointer argument.
    pub(crate) fn null(what: &str) -> Fail {
        Fail::new(
            SHMPIPE_INVALID_ARGUMENT,
            format!("`{what}` is NULL: pass a valid pointer"),
        )
    }

    /// The status this failure returns.
    pub fn status(&self) -> c_int {
        self.status
    }
}

/// A `CString` of `s`, with any interior NUL shown as `\0` instead of
/// cutting the message short.
fn to_cstring(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let text = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\\0");
        CString::new(text).unwrap_or_default()
    })
}

thread_local! {
    static LAST_ERROR: RefCell<Message> = const { RefCell::new(Message::Static(c"")) };
}

fn set_last_error(message: Message) {
    // `try_with`: during thread teardown the slot may be gone; the status
    // still reaches the caller.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = message;
        }
    });
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// Runs `f` at the C boundary: `SHMPIPE_OK` if it succeeds; its status (and
/// message, for `shmpipe_last_error`) if it fails; `SHMPIPE_PANIC` if it
/// panics. No unwind ever leaves this function.
///
/// # Examples
///
/// ```
/// use shmpipe_ffi::{guard, SHMPIPE_OK, SHMPIPE_PANIC};
/// assert_eq!(guard(|| Ok(())), SHMPIPE_OK);
/// assert_eq!(guard(|| panic!("boom")), SHMPIPE_PANIC);
/// ```
pub fn guard(f: impl FnOnce() -> Result<(), Fail>) -> c_int {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SHMPIPE_OK,
        Ok(Err(fail)) => {
            set_last_error(fail.message);
            fail.status
        }
        Err(payload) => {
            let text = panic_text(&*payload);
            // Dropping the payload could itself panic: drop it under
            // catch_unwind too, and forget only such a second payload.
            if let Err(again) = panic::catch_unwind(AssertUnwindSafe(|| drop(payload))) {
                std::mem::forget(again);
            }
            set_last_error(Message::Owned(to_cstring(format!(
                "internal error, a bug in shmpipe (please report it): {text}"
            ))));
            SHMPIPE_PANIC
        }
    }
}

/// [`guard`] for the calls that return nothing (`*_close`): a failure is
/// only recorded in the last error.
pub(crate) fn guard_void(f: impl FnOnce() -> Result<(), Fail>) {
    let _ = guard(f);
}

/// [`guard`] for the calls that return a value instead of a status
/// (getters, static strings): `fallback` if `f` panics. They read fields
/// and cannot panic; the guard keeps the rule that no unwind leaves an
/// entry point.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// The last failure on the calling thread, in words that say what to do:
/// a NUL-terminated UTF-8 string, never NULL (empty if nothing failed yet).
///
/// Owned by the library: do not free it. It stays valid until the next
/// failing call on the same thread; a successful call leaves it unchanged,
/// so read it right after a call returned a negative status.
#[no_mangle]
pub extern "C" fn shmpipe_last_error() -> *const c_char {
    let read = panic::catch_unwind(|| {
        LAST_ERROR
            .try_with(|slot| match &*slot.borrow() {
                // The pointer stays valid after the borrow ends: the
                // CString's buffer lives in the thread-local until replaced.
                Message::Static(s) => s.as_ptr(),
                Message::Owned(s) => s.as_ptr(),
            })
            .unwrap_or(c"".as_ptr())
    });
    read.unwrap_or(c"".as_ptr())
}

/// The name of a status code (`"SHMPIPE_TIMEOUT"`), or `"SHMPIPE_UNKNOWN"`.
/// A static string: do not free it.
#[no_mangle]
pub extern "C" fn shmpipe_status_name(status: c_int) -> *const c_char {
    guard_value(c"SHMPIPE_UNKNOWN".as_ptr(), || status_name(status).as_ptr())
}

fn status_name(status: c_int) -> &'static CStr {
    let name: &'static CStr = match status {
        SHMPIPE_OK => c"SHMPIPE_OK",
        SHMPIPE_DISCONNECTED => c"SHMPIPE_DISCONNECTED",
        SHMPIPE_TIMEOUT => c"SHMPIPE_TIMEOUT",
        SHMPIPE_PEER_DIED => c"SHMPIPE_PEER_DIED",
        SHMPIPE_FULL => c"SHMPIPE_FULL",
        SHMPIPE_EMPTY => c"SHMPIPE_EMPTY",
        SHMPIPE_TOO_LARGE => c"SHMPIPE_TOO_LARGE",
        SHMPIPE_CORRUPT => c"SHMPIPE_CORRUPT",
        SHMPIPE_BUFFER_TOO_SMALL => c"SHMPIPE_BUFFER_TOO_SMALL",
        SHMPIPE_INVALID_ARGUMENT => c"SHMPIPE_INVALID_ARGUMENT",
        SHMPIPE_BUSY => c"SHMPIPE_BUSY",
        SHMPIPE_NOT_FOUND => c"SHMPIPE_NOT_FOUND",
        SHMPIPE_ALREADY_EXISTS => c"SHMPIPE_ALREADY_EXISTS",
        SHMPIPE_PERMISSION_DENIED => c"SHMPIPE_PERMISSION_DENIED",
        SHMPIPE_ALREADY_CLAIMED => c"SHMPIPE_ALREADY_CLAIMED",
        SHMPIPE_IN_USE => c"SHMPIPE_IN_USE",
        SHMPIPE_NOT_A_RING => c"SHMPIPE_NOT_A_RING",
        SHMPIPE_VERSION_MISMATCH => c"SHMPIPE_VERSION_MISMATCH",
        SHMPIPE_HUGE_PAGES_UNAVAILABLE => c"SHMPIPE_HUGE_PAGES_UNAVAILABLE",
        SHMPIPE_UNSUPPORTED => c"SHMPIPE_UNSUPPORTED",
        SHMPIPE_IO => c"SHMPIPE_IO",
        SHMPIPE_PANIC => c"SHMPIPE_PANIC",
        SHMPIPE_ERROR => c"SHMPIPE_ERROR",
        SHMPIPE_REMOVED => c"SHMPIPE_REMOVED",
        SHMPIPE_GEOMETRY_MISMATCH => c"SHMPIPE_GEOMETRY_MISMATCH",
        SHMPIPE_PROTOCOL => c"SHMPIPE_PROTOCOL",
        SHMPIPE_INCOMPATIBLE_TYPE => c"SHMPIPE_INCOMPATIBLE_TYPE",
        _ => c"SHMPIPE_UNKNOWN",
    };
    name
}

/// The library's version (`"0.1.0"`), a static string.
#[no_mangle]
pub extern "C" fn shmpipe_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    guard_value(c"unknown".as_ptr(), || VERSION.as_ptr())
}

// ---------------------------------------------------------------------------
// Mapping the library's errors
// ---------------------------------------------------------------------------

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        let status = match &e {
            Error::InvalidAddress { .. } | Error::InvalidConfig { .. } => SHMPIPE_INVALID_ARGUMENT,
            Error::AlreadyExists { .. } => SHMPIPE_ALREADY_EXISTS,
            Error::NotFound { .. }
            | Error::NotCreated { .. }
            | Error::Vanished { .. }
            | Error::NoListener { .. } => SHMPIPE_NOT_FOUND,
            Error::GeometryMismatch { .. } => SHMPIPE_GEOMETRY_MISMATCH,
            Error::PermissionDenied { .. } | Error::Symlink { .. } => SHMPIPE_PERMISSION_DENIED,
            Error::NotARegularFile { .. }
            | Error::NotInitialized { .. }
            | Error::BadMagic { .. } => SHMPIPE_NOT_A_RING,
            Error::VersionMismatch { .. } => SHMPIPE_VERSION_MISMATCH,
            Error::Corrupt { .. } => SHMPIPE_CORRUPT,
            Error::AlreadyClaimed { .. } => SHMPIPE_ALREADY_CLAIMED,
            Error::InUse { .. } | Error::ListenerInUse { .. } => SHMPIPE_IN_USE,
            Error::NotASocket { .. } => SHMPIPE_NOT_A_RING,
            Error::Handshake { .. } => SHMPIPE_PROTOCOL,
            Error::HugePagesUnavailable { .. } => SHMPIPE_HUGE_PAGES_UNAVAILABLE,
            Error::Unsupported { .. } => SHMPIPE_UNSUPPORTED,
            // The second mapping of a double-mapped ring failed: a system
            // call's error, with its message.
            Error::Io { .. } | Error::DoubleMapFailed { .. } => SHMPIPE_IO,
            Error::Removed { .. } => SHMPIPE_REMOVED,
            Error::IncompatibleType { .. } | Error::Misaligned { .. } => SHMPIPE_INCOMPATIBLE_TYPE,
            Error::TypeTooLarge { .. } => SHMPIPE_TOO_LARGE,
            _ => SHMPIPE_ERROR,
        };
        Fail::new(status, e.to_string())
    }
}

const MSG_FULL: &CStr = c"sending on a full ring";
const MSG_EMPTY: &CStr = c"receiving on an empty ring";
const MSG_SEND_TIMEOUT: &CStr = c"timed out sending on a full ring";
const MSG_RECV_TIMEOUT: &CStr = c"timed out receiving on an empty ring";
const MSG_SEND_DISCONNECTED: &CStr = c"sending on a ring whose consumer has disconnected";
const MSG_RECV_DISCONNECTED: &CStr = c"receiving on an empty ring whose producer has disconnected";

/// The status and message of a failed non-blocking send.
pub(crate) fn try_send_fail<T>(e: TrySendError<T>) -> Fail {
    match e {
        TrySendError::Full(_) => Fail::fixed(SHMPIPE_FULL, MSG_FULL),
        TrySendError::Disconnected(_) => Fail::fixed(SHMPIPE_DISCONNECTED, MSG_SEND_DISCONNECTED),
        e @ TrySendError::TooLarge { .. } => Fail::new(SHMPIPE_TOO_LARGE, e.to_string()),
        e @ TrySendError::Corrupt { .. } => Fail::new(SHMPIPE_CORRUPT, e.to_string()),
        e @ TrySendError::Removed(_) => Fail::new(SHMPIPE_REMOVED, e.to_string()),
    }
}

/// The status and message of a failed blocking send.
pub(crate) fn send_fail<T>(e: SendError<T>) -> Fail {
    match e {
        SendError::Timeout(_) => Fail::fixed(SHMPIPE_TIMEOUT, MSG_SEND_TIMEOUT),
        SendError::Disconnected(_) => Fail::fixed(SHMPIPE_DISCONNECTED, MSG_SEND_DISCONNECTED),
        e @ SendError::PeerDied { .. } => Fail::new(SHMPIPE_PEER_DIED, e.to_string()),
        e @ SendError::TooLarge { .. } => Fail::new(SHMPIPE_TOO_LARGE, e.to_string()),
        e @ SendError::Corrupt { .. } => Fail::new(SHMPIPE_CORRUPT, e.to_string()),
        e @ SendError::Removed(_) => Fail::new(SHMPIPE_REMOVED, e.to_string()),
    }
}

/// The status and message of a failed non-blocking receive.
pub(crate) fn try_recv_fail(e: TryRecvError) -> Fail {
    match e {
        TryRecvError::Empty => Fail::fixed(SHMPIPE_EMPTY, MSG_EMPTY),
        TryRecvError::Disconnected => Fail::fixed(SHMPIPE_DISCONNECTED, MSG_RECV_DISCONNECTED),
        e @ TryRecvError::BufferTooSmall { .. } => {
            Fail::new(SHMPIPE_BUFFER_TOO_SMALL, e.to_string())
        }
        e @ TryRecvError::Corrupt(_) => Fail::new(SHMPIPE_CORRUPT, e.to_string()),
        e @ TryRecvError::Removed => Fail::new(SHMPIPE_REMOVED, e.to_string()),
    }
}

/// The status and message of a failed blocking receive.
pub(crate) fn recv_fail(e: RecvError) -> Fail {
    match e {
        RecvError::Timeout => Fail::fixed(SHMPIPE_TIMEOUT, MSG_RECV_TIMEOUT),
        RecvError::Disconnected => Fail::fixed(SHMPIPE_DISCONNECTED, MSG_RECV_DISCONNECTED),
        e @ RecvError::PeerDied { .. } => Fail::new(SHMPIPE_PEER_DIED, e.to_string()),
        e @ RecvError::BufferTooSmall { .. } => Fail::new(SHMPIPE_BUFFER_TOO_SMALL, e.to_string()),
        e @ RecvError::Corrupt(_) => Fail::new(SHMPIPE_CORRUPT, e.to_string()),
        e @ RecvError::Removed => Fail::new(SHMPIPE_REMOVED, e.to_string()),
    }
}

/// The status and message of a failed call or serve step.
pub(crate) fn call_fail(e: CallError) -> Fail {
    let status = match e {
        CallError::Timeout => SHMPIPE_TIMEOUT,
        CallError::Disconnected => SHMPIPE_DISCONNECTED,
        CallError::PeerDied { .. } => SHMPIPE_PEER_DIED,
        CallError::Removed => SHMPIPE_REMOVED,
        CallError::TooLarge { .. } => SHMPIPE_TOO_LARGE,
        CallError::BufferTooSmall { .. } => SHMPIPE_BUFFER_TOO_SMALL,
        CallError::BadMessage { .. } => SHMPIPE_PROTOCOL,
        CallError::Corrupt(_) => SHMPIPE_CORRUPT,
        _ => SHMPIPE_ERROR,
    };
    Fail::new(status, e.to_string())
}

// ---------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------

/// How a call with a `timeout_ns` argument waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// `timeout_ns == 0`: the non-blocking form (`FULL`/`EMPTY`, never
    /// `TIMEOUT`).
    Never,
    /// `timeout_ns < 0` (`None`) or a deadline on the monotonic clock.
    Until(Option<Instant>),
}

impl Wait {
    pub(crate) fn from_ns(timeout_ns: i64) -> Wait {
        match u64::try_from(timeout_ns) {
            Err(_) => Wait::Until(None),
            Ok(0) => Wait::Never,
            // A deadline too far to represent waits forever.
            Ok(ns) => Wait::Until(Instant::now().checked_add(Duration::from_nanos(ns))),
        }
    }
}

/// Nanoseconds as a `Duration`, `None` for 0 (keep the default).
pub(crate) fn nanos(ns: u64) -> Option<Duration> {
    (ns != 0).then(|| Duration::from_nanos(ns))
}

/// Writes `value` through `out` if it is not NULL.
///
/// # Safety
///
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn store<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL, and valid for writes by the caller's contract.
        unsafe { out.write(value) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        // SAFETY: shmpipe_last_error never returns NULL and the string stays
        // valid until the next failing call on this thread.
        unsafe { CStr::from_ptr(shmpipe_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panics_become_a_status_and_a_message() {
        assert_eq!(guard(|| panic!("deliberate {}", 42)), SHMPIPE_PANIC);
        let text = last();
        assert!(text.contains("deliberate 42"), "{text}");
        assert!(text.contains("bug in shmpipe"), "{text}");
    }

    #[test]
    fn success_keeps_the_last_error() {
        assert_eq!(guard(|| Err(Fail::new(SHMPIPE_IO, "first"))), SHMPIPE_IO);
        assert_eq!(guard(|| Ok(())), SHMPIPE_OK);
        assert_eq!(last(), "first");
    }

    #[test]
    fn the_last_error_is_per_thread() {
        assert_eq!(guard(|| Err(Fail::new(SHMPIPE_IO, "main"))), SHMPIPE_IO);
        std::thread::spawn(|| {
            assert_eq!(last(), "");
            assert_eq!(
                guard(|| Err(Fail::fixed(SHMPIPE_EMPTY, MSG_EMPTY))),
                SHMPIPE_EMPTY
            );
            assert_eq!(last(), "receiving on an empty ring");
        })
        .join()
        .unwrap();
        assert_eq!(last(), "main");
    }

    #[test]
    fn interior_nul_is_escaped() {
        assert_eq!(to_cstring("a\0b".into()).to_str().unwrap(), "a\\0b");
    }

    #[test]
    fn every_status_has_a_name() {
        for status in SHMPIPE_INCOMPATIBLE_TYPE..=SHMPIPE_OK {
            // SAFETY: static NUL-terminated strings.
            let name = unsafe { CStr::from_ptr(shmpipe_status_name(status)) };
            assert_ne!(name.to_str().unwrap(), "SHMPIPE_UNKNOWN", "status {status}");
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(shmpipe_status_name(7)) };
        assert_eq!(unknown.to_str().unwrap(), "SHMPIPE_UNKNOWN");
    }

    #[test]
    fn timeouts() {
        assert_eq!(Wait::from_ns(-1), Wait::Until(None));
        assert_eq!(Wait::from_ns(0), Wait::Never);
        assert!(matches!(Wait::from_ns(1_000), Wait::Until(Some(_))));
        assert!(matches!(Wait::from_ns(i64::MAX), Wait::Until(_)));
    }
}
