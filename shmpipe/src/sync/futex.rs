//! [`Futex`]: a 32-bit word that processes sleep on, and its loom model.
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

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[cfg(all(not(miri), not(loom)))]
use rustix::{io::Errno, thread::futex};

/// Why [`Futex::wait`] returned. Callers re-check their condition in every
/// case; the distinction only feeds statistics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Woken by `wake`, or the word no longer held the expected value.
    Woken,
    /// The timeout elapsed.
    TimedOut,
    /// A signal interrupted the wait, or the kernel reported a spurious
    /// wakeup; the caller retries against its own deadline.
    Interrupted,
}

/// A 32-bit futex word shared between processes.
///
/// In production this is exactly an `AtomicU32` in the shared mapping, and
/// `wait`/`wake` are `FUTEX_WAIT`/`FUTEX_WAKE` *without*
/// `FUTEX_PRIVATE_FLAG`: a private futex silently never wakes a waiter in
/// another process.
#[cfg(not(loom))]
#[repr(transparent)]
#[derive(Debug, Default)]
pub(crate) struct Futex(AtomicU32);

#[cfg(not(loom))]
impl Futex {
    #[inline]
    pub(crate) fn load(&self, order: Ordering) -> u32 {
        self.0.load(order)
    }

    #[inline]
    pub(crate) fn fetch_add(&self, v: u32, order: Ordering) -> u32 {
        self.0.fetch_add(v, order)
    }

    /// Sleeps while the word holds `expected`, for at most `timeout`.
    pub(crate) fn wait(&self, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
        wait(&self.0, expected, timeout)
    }

    /// Wakes every waiter on the word; returns how many were woken.
    pub(crate) fn wake_all(&self) -> usize {
        wake_all(&self.0)
    }
}

/// The loom model of a futex: a word plus a `Mutex` and `Condvar`.
///
/// `wait` checks the word under the lock and sleeps on the condvar; `wake`
/// takes and drops the lock before notifying, so a waiter that checked the
/// word before the bump is already inside `Condvar::wait` when notified.
/// Loom ignores the timeout and simulates no spurious wakeups.
#[cfg(loom)]
#[derive(Debug, Default)]
pub(crate) struct Futex {
    word: AtomicU32,
    lock: loom::sync::Mutex<()>,
    cv: loom::sync::Condvar,
}

#[cfg(loom)]
impl Futex {
    pub(crate) fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }

    pub(crate) fn fetch_add(&self, v: u32, order: Ordering) -> u32 {
        self.word.fetch_add(v, order)
    }

    pub(crate) fn wait(&self, expected: u32, _timeout: Option<Duration>) -> WaitOutcome {
        let guard = self.lock.lock().unwrap();
        // ORDERING: Acquire pairs with the waker's Release bump; the mutex
        // already orders it, Acquire keeps the model honest without it.
        if self.word.load(Ordering::Acquire) != expected {
            return WaitOutcome::Woken;
        }
        drop(self.cv.wait(guard).unwrap());
        WaitOutcome::Woken
    }

    pub(crate) fn wake_all(&self) -> usize {
        drop(self.lock.lock().unwrap());
        self.cv.notify_all();
        1
    }
}

/// `futex(uaddr, FUTEX_WAIT, expected, timeout)`: sleeps while `*word ==
/// expected`, for at most `timeout` (relative, measured by the kernel on the
/// monotonic clock).
#[cfg(all(not(miri), not(loom)))]
fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
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
#[cfg(all(not(miri), not(loom)))]
fn wake_all(word: &AtomicU32) -> usize {
    // Errors (EFAULT/EINVAL) cannot happen for an aligned word in a live
    // mapping; a failed wake is covered by the waiter's bounded timeout.
    futex::wake(word, futex::Flags::empty(), i32::MAX as u32).unwrap_or(0)
}

// Under Miri the same two calls go through `libc::syscall` with exactly the
// argument types the kernel declares (`u32 *uaddr`, `const struct timespec
// *`): Miri's futex shim checks variadic argument types, and rustix passes
// an `*const AtomicU32` (the same ABI, which Miri rightly refuses to assume).

#[cfg(all(miri, not(loom)))]
fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> WaitOutcome {
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

#[cfg(all(miri, not(loom)))]
fn wake_all(word: &AtomicU32) -> usize {
    // SAFETY: `word` is a live, aligned u32 for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
    usize::try_from(r).unwrap_or(0)
}
