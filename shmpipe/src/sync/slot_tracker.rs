//! Slot-access tracking: what lets loom check that a slot is never read
//! and written at once.

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
