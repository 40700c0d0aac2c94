//! Shared (inter-process) futex calls.
//!
//! `FUTEX_WAIT` and `FUTEX_WAKE` on a 32-bit word in a `MAP_SHARED` mapping,
//! keyed by the kernel on the backing page, so a waiter in one process is
//! woken by a waker in another. Never `FUTEX_PRIVATE_FLAG`: with it the kernel
//! keys the futex on (mm, address) and a wake from another process silently
//! finds nobody (measured: `wake` returned 0 and the waiter timed out).
//!
//! # References
//!  - [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html)

#![allow(clippy::disallowed_types)]

use core::sync::atomic::AtomicU32;
use std::time::Duration;

#[cfg(not(miri))]
use rustix::{io::Errno, thread::futex};

use crate::sync::WaitOutcome;

/// `futex(uaddr, FUTEX_WAIT, expected, timeout)`: sleeps while `*word ==
/// expected`, for at most `timeout` (relative, measured by the kernel on the
/// monotonic clock).
#[cfg(not(miri))]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
    let ts = timeout.map(|d| rustix::time::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    });
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Ok(()) => WaitOutcome::Woken,
        // The word changed before we slept: the event we wait for happened.
        Err(Errno::AGAIN) => WaitOutcome::Woken,
        Err(Errno::TIMEDOUT) => WaitOutcome::TimedOut,
        Err(Errno::INTR) => WaitOutcome::Interrupted,
        // EFAULT/EINVAL cannot happen for an aligned word in a live mapping;
        // treat anything else as a spurious wakeup so callers re-check their
        // condition and their deadline rather than panic.
        Err(_) => WaitOutcome::Interrupted,
    }
}

/// `futex(uaddr, FUTEX_WAKE, INT_MAX)`: wakes every waiter on `word`.
/// Returns how many were woken.
#[cfg(not(miri))]
pub(crate) fn wake_all(word: &AtomicU32) -> usize {
    // Errors (EFAULT/EINVAL) cannot happen for an aligned word in a live
    // mapping; a failed wake is covered by the waiter's bounded timeout.
    futex::wake(word, futex::Flags::empty(), i32::MAX as u32).unwrap_or(0)
}

// Under Miri the same two calls go through `libc::syscall` with exactly the
// argument types the kernel declares (`u32 *uaddr`, `const struct timespec
// *`): Miri's futex shim checks variadic argument types, and rustix passes
// an `*const AtomicU32` (the same ABI, which Miri rightly refuses to assume).

#[cfg(miri)]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos()),
    });
    let tsp: *const libc::timespec = ts.as_ref().map_or(std::ptr::null(), |t| t);
    // SAFETY: `word` is a live, aligned u32 for the duration of the call and
    // `tsp` is null or points to `ts`, which outlives it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tsp,
        )
    };
    if r == 0 {
        return WaitOutcome::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => WaitOutcome::Woken,
        Some(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
        _ => WaitOutcome::Interrupted,
    }
}

#[cfg(miri)]
pub(crate) fn wake_all(word: &AtomicU32) -> usize {
    // SAFETY: `word` is a live, aligned u32 for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
    usize::try_from(r).unwrap_or(0)
}
