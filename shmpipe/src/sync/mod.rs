//! The one place atomics, fences, the futex and slot-access tracking come from.
//!
//! Everything in the ring and wake protocols goes through this module, so the
//! same code runs in production (where the header lives in a shared mapping)
//! and under [loom] (where the header lives on the heap and the futex is a
//! `Mutex` plus `Condvar`). `clippy.toml` forbids `core::sync::atomic` types
//! elsewhere in the crate.
//!
//! ```text
//! mod.rs           the switch: atomics, spin_loop, yield_now
//! barrier.rs       the wake protocol's two barriers: membarrier or fences
//! futex.rs         Futex (FUTEX_WAIT/FUTEX_WAKE, shared) and its loom model
//! slot_tracker.rs  SlotTracker: slot accesses recorded for loom, free otherwise
//! ```
//!
//! This module is the bottom layer: it imports nothing else of the crate.
//!
//! Loom caveat (see `docs/design.md`): loom models `fence(SeqCst)` but not
//! `SeqCst` loads and stores, so every store→load ordering in the protocol is
//! written as `store; fence(SeqCst); load` on both sides.
//!
//! [loom]: https://docs.rs/loom

#![allow(clippy::disallowed_types)]

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub(crate) mod barrier;
mod futex;
mod slot_tracker;

pub(crate) use futex::{wait_any, Futex, WaitAny, WaitOutcome, WAIT_ANY_MAX};
pub(crate) use slot_tracker::SlotTracker;

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

/// Keeps the compiler from moving the stores before this point after it
/// (no instruction: the order that matters is the one a process killed
/// here leaves in memory, where every executed store stays visible).
#[inline]
pub(crate) fn compiler_barrier() {
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::Release);
}
