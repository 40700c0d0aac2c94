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
        // And every `wait_any` (which may be waiting on this word among
        // others): the same take-drop-notify, on the model's one condvar.
        drop(ANY.lock.lock().unwrap());
        ANY.cv.notify_all();
        1
    }
}

/// The loom model of `futex_waitv`: one `Mutex` + `Condvar` that every
/// [`wait_any`] sleeps on and every [`Futex::wake_all`] notifies (after its
/// own), so a waiter that checked its words before a bump is inside
/// `Condvar::wait` when the waker notifies.
#[cfg(loom)]
struct Any {
    lock: loom::sync::Mutex<()>,
    cv: loom::sync::Condvar,
}

#[cfg(loom)]
loom::lazy_static! {
    static ref ANY: Any = Any {
        lock: loom::sync::Mutex::new(()),
        cv: loom::sync::Condvar::new(),
    };
}

/// The most words one [`wait_any`] takes (the kernel's `FUTEX_WAITV_MAX`).
pub(crate) const WAIT_ANY_MAX: usize = 128;

/// Why [`wait_any`] returned. As with [`Futex::wait`], callers re-check
/// their conditions in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitAny {
    /// The word at this index was woken.
    Woken(usize),
    /// A word no longer held its expected value (which one the kernel does
    /// not say), or a signal or a spurious wake-up ended the wait.
    Changed,
    /// The deadline passed.
    TimedOut,
    /// `futex_waitv` is missing (Linux before 5.16, Miri) or refused (a
    /// seccomp profile): wait some other way.
    Unsupported,
}

/// `futex_waitv`: sleeps while every word holds its expected value, until
/// one of them is woken or `deadline` passes (`None`: no deadline); the
/// index reported is the word's position in `words`. At most
/// [`WAIT_ANY_MAX`] words; more, or none, is `Unsupported`. Shared futexes
/// (no `FUTEX2_PRIVATE`), like [`Futex::wait`]: woken from any process.
#[cfg(all(not(miri), not(loom)))]
pub(crate) fn wait_any<'a>(
    words: impl IntoIterator<Item = (&'a Futex, u32)>,
    deadline: Option<std::time::Instant>,
) -> WaitAny {
    use rustix::thread::futex::{Wait, WaitFlags, WaitPtr, WaitvFlags};
    use rustix::time::{ClockId, Timespec};
    let mut waiters = [Wait::new(); WAIT_ANY_MAX];
    let mut n = 0;
    for (f, expected) in words {
        let Some(w) = waiters.get_mut(n) else {
            return WaitAny::Unsupported;
        };
        w.val = u64::from(expected);
        w.uaddr = WaitPtr::new(f.0.as_ptr().cast());
        w.flags = WaitFlags::SIZE_U32;
        n += 1;
    }
    if n == 0 {
        return WaitAny::Unsupported;
    }
    // The timeout is absolute on CLOCK_MONOTONIC, the clock `Instant` reads.
    let timeout = deadline.map(|d| {
        let left = d.saturating_duration_since(std::time::Instant::now());
        let now = rustix::time::clock_gettime(ClockId::Monotonic);
        let nsec = now.tv_nsec + i64::from(left.subsec_nanos());
        Timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(i64::try_from(left.as_secs()).unwrap_or(i64::MAX))
                .saturating_add(nsec / 1_000_000_000),
            tv_nsec: nsec % 1_000_000_000,
        }
    });
    match futex::waitv(
        &waiters[..n],
        WaitvFlags::empty(),
        timeout.as_ref(),
        ClockId::Monotonic,
    ) {
        Ok(i) => WaitAny::Woken(i),
        Err(Errno::AGAIN | Errno::INTR) => WaitAny::Changed,
        Err(Errno::TIMEDOUT) => WaitAny::TimedOut,
        // ENOSYS (before 5.16), EPERM (seccomp) and anything unexpected:
        // the caller falls back to another way of waiting.
        Err(_) => WaitAny::Unsupported,
    }
}

/// Under Miri: no `futex_waitv` shim; callers fall back.
#[cfg(all(miri, not(loom)))]
pub(crate) fn wait_any<'a>(
    _: impl IntoIterator<Item = (&'a Futex, u32)>,
    _: Option<std::time::Instant>,
) -> WaitAny {
    WaitAny::Unsupported
}

/// The loom model: sleeps on the model's condvar until a word differs from
/// its expected value (no deadline: loom has no time).
#[cfg(loom)]
pub(crate) fn wait_any<'a>(
    words: impl IntoIterator<Item = (&'a Futex, u32)>,
    _: Option<std::time::Instant>,
) -> WaitAny {
    let words: Vec<_> = words.into_iter().collect();
    let mut guard = ANY.lock.lock().unwrap();
    loop {
        // ORDERING: Acquire pairs with the waker's Release bump, as in the
        // model's `wait`.
        if let Some(i) = words
            .iter()
            .position(|(f, expected)| f.word.load(Ordering::Acquire) != *expected)
        {
            return WaitAny::Woken(i);
        }
        guard = ANY.cv.wait(guard).unwrap();
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
