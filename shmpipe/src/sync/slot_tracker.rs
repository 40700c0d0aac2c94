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

    /// Runs `f`, a read of the `_n` slots from `_first` on (a multi-slot
    /// message; indices wrap at the end of the ring).
    #[inline(always)]
    pub(crate) fn read_span<R>(&self, _first: usize, _n: u64, f: impl FnOnce() -> R) -> R {
        f()
    }

    /// Runs `f`, a write of the `_n` slots from `_first` on.
    #[inline(always)]
    pub(crate) fn write_span<R>(&self, _first: usize, _n: u64, f: impl FnOnce() -> R) -> R {
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

    /// Every slot of the span is recorded as read, not just the first: a
    /// multi-slot message's payload runs through all of them.
    pub(crate) fn read_span<R>(&self, first: usize, n: u64, f: impl FnOnce() -> R) -> R {
        let len = self.0.len();
        for i in 1..(n as usize).min(len) {
            self.0[(first + i) % len].with(|_| ());
        }
        self.0[first].with(|_| f())
    }

    /// As `read_span`, for writes.
    pub(crate) fn write_span<R>(&self, first: usize, n: u64, f: impl FnOnce() -> R) -> R {
        let len = self.0.len();
        for i in 1..(n as usize).min(len) {
            self.0[(first + i) % len].with_mut(|_| ());
        }
        self.0[first].with_mut(|_| f())
    }
}
