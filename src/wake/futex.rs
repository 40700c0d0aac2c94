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

use rustix::io::Errno;
use rustix::thread::futex;

use crate::sync::WaitOutcome;

/// `futex(uaddr, FUTEX_WAIT, expected, timeout)`: sleeps while `*word ==
/// expected`, for at most `timeout` (relative, measured by the kernel on the
/// monotonic clock).
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
pub(crate) fn wake_all(word: &AtomicU32) -> usize {
    // Errors (EFAULT/EINVAL) cannot happen for an aligned word in a live
    // mapping; a failed wake is covered by the waiter's bounded timeout.
    futex::wake(word, futex::Flags::empty(), i32::MAX as u32).unwrap_or(0)
}
