//! The one place atomics, fences, the futex and slot-access tracking come from.
//!
//! Everything in the ring and wake protocols goes through this module, so the
//! same code runs in production (where the header lives in a shared mapping)
//! and under [loom] (where the header lives on the heap and the futex is a
//! `Mutex` plus `Condvar`). `clippy.toml` forbids `core::sync::atomic` types
//! elsewhere in the crate.
//!
//! Loom caveat (see `docs/design.md`): loom models `fence(SeqCst)` but not
//! `SeqCst` loads and stores, so every store→load ordering in the protocol is
//! written as `store; fence(SeqCst); load` on both sides.
//!
//! [loom]: https://docs.rs/loom

#![allow(clippy::disallowed_types)]

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use std::time::Duration;

/// A hint inside a busy-wait loop. Under loom it yields, so that the model
/// makes progress instead of exploring the same spin forever.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives the processor to another thread.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

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
        crate::wake::futex::wait(&self.0, expected, timeout)
    }

    /// Wakes every waiter on the word; returns how many were woken.
    pub(crate) fn wake_all(&self) -> usize {
        crate::wake::futex::wake_all(&self.0)
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

/// Tracks accesses to slot memory so that loom can check that a slot is
/// never read and written concurrently.
///
/// In production this is a zero-sized no-op: the slots are raw shared
/// memory, ordered by the `head`/`tail` protocol. Under loom each slot gets a
/// `loom::cell::UnsafeCell<()>` whose `with`/`with_mut` record the access, so
/// publishing an index before the slot write is reported as a causality
/// violation.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct SlotTracker;

#[cfg(not(loom))]
impl SlotTracker {
    pub(crate) fn new(_slots: usize) -> Self {
        SlotTracker
    }

    /// Runs `f`, a read of slot `_index`.
    #[inline(always)]
    pub(crate) fn read<R>(&self, _index: usize, f: impl FnOnce() -> R) -> R {
        f()
    }

    /// Runs `f`, a write of slot `_index`.
    #[inline(always)]
    pub(crate) fn write<R>(&self, _index: usize, f: impl FnOnce() -> R) -> R {
        f()
    }
}

#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct SlotTracker(Box<[loom::cell::UnsafeCell<()>]>);

#[cfg(loom)]
impl SlotTracker {
    pub(crate) fn new(slots: usize) -> Self {
        SlotTracker(
            (0..slots)
                .map(|_| loom::cell::UnsafeCell::new(()))
                .collect(),
        )
    }

    pub(crate) fn read<R>(&self, index: usize, f: impl FnOnce() -> R) -> R {
        self.0[index].with(|_| f())
    }

    pub(crate) fn write<R>(&self, index: usize, f: impl FnOnce() -> R) -> R {
        self.0[index].with_mut(|_| f())
    }
}
