//! [`RingRef`]: where this process sees the header and the slots, and the
//! geometry it validated once.

// `sync::AtomicU32` is the loom switch itself; the lint sees through it.
#![allow(clippy::disallowed_types)]

use std::ptr::NonNull;

use super::{Geometry, RingHeader, SLOT_COMMIT, SLOT_EXTENT};
use crate::sync::AtomicU32;

/// A process-local, validated view of a ring: where the header and slots
/// are, and the geometry (copied out of the shared header once, so a peer
/// rewriting `meta` later cannot change how this process indexes memory).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingRef {
    hdr: NonNull<RingHeader>,
    slots: NonNull<u8>,
    mask: u64,
    slot_size: usize,
    capacity: u64,
    payload_offset: usize,
    /// Largest one-slot message: the slot's payload, or the message limit
    /// if that is lower.
    one_slot: usize,
    payload_align: usize,
    message_limit: u64,
    double_map: bool,
    /// Under loom the commit words cannot live in raw slot memory (loom
    /// atomics are not layout-compatible): they live in an array the
    /// mapping owns, one per slot.
    #[cfg(loom)]
    commits: NonNull<AtomicU32>,
}

impl RingRef {
    /// # Safety
    ///
    /// `hdr` points to a live `RingHeader` and `slots` to
    /// `geom.slot_count * geom.slot_size` bytes (twice that, the second
    /// half mapping the first, when `geom.double_map`), both valid (and not
    /// moved or unmapped) for as long as any copy of this `RingRef` is used.
    pub(crate) unsafe fn new(hdr: NonNull<RingHeader>, slots: NonNull<u8>, geom: Geometry) -> Self {
        RingRef {
            hdr,
            slots,
            mask: geom.slot_count - 1,
            slot_size: geom.slot_size,
            capacity: geom.slot_count,
            payload_offset: geom.payload_offset,
            one_slot: (geom.payload_capacity() as u64).min(geom.message_limit) as usize,
            payload_align: geom.payload_align,
            message_limit: geom.message_limit,
            double_map: geom.double_map,
            #[cfg(loom)]
            commits: NonNull::dangling(),
        }
    }

    /// Under loom: where the commit words live.
    ///
    /// # Safety
    ///
    /// `commits` points to `capacity()` atomics that live as long as every
    /// copy of this `RingRef` is used.
    #[cfg(loom)]
    pub(crate) unsafe fn with_commit_words(mut self, commits: NonNull<AtomicU32>) -> Self {
        self.commits = commits;
        self
    }

    /// The shared header.
    #[inline]
    pub(crate) fn header(&self) -> &RingHeader {
        // SAFETY: `new`'s contract keeps the header alive and in place while
        // this `RingRef` is in use; every field is atomic, so shared access
        // is sound even while other processes write it.
        unsafe { self.hdr.as_ref() }
    }

    /// Number of slots.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes per slot, its header included.
    #[inline]
    pub(crate) fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Largest message in one slot, in bytes (never above the message
    /// limit).
    #[inline]
    pub(crate) fn payload_capacity(&self) -> usize {
        self.one_slot
    }

    /// Largest message over any number of slots, in bytes.
    #[inline]
    pub(crate) fn message_limit(&self) -> u64 {
        self.message_limit
    }

    /// Every payload address is a multiple of this.
    #[inline]
    pub(crate) fn payload_align(&self) -> usize {
        self.payload_align
    }

    /// Slots a message of `len` bytes takes (`len` at most the limit).
    #[inline]
    pub(crate) fn slots_for(&self, len: u64) -> u64 {
        (len + self.payload_offset as u64).div_ceil(self.slot_size as u64)
    }

    /// Whether the `n` slots from `pos` on are one contiguous run of
    /// memory: they do not cross the end of the ring, or it is mapped
    /// twice.
    #[inline]
    pub(crate) fn contiguous(&self, pos: u64, n: u64) -> bool {
        self.double_map || self.slot_index(pos) as u64 + n <= self.capacity
    }

    /// Which slot position `pos` uses.
    #[inline]
    pub(crate) fn slot_index(&self, pos: u64) -> usize {
        (pos & self.mask) as usize
    }

    #[inline]
    fn slot_ptr(&self, pos: u64) -> *mut u8 {
        let offset = self.slot_index(pos) * self.slot_size;
        // SAFETY: slot_index < slot_count, so `offset + slot_size` is within
        // the slot area `new` vouched for.
        unsafe { self.slots.as_ptr().add(offset) }
    }

    /// First payload byte of the slot for `pos`; `payload_capacity()` bytes
    /// follow it in the slot, and `n * slot_size - payload_offset` in the
    /// `n` slots from `pos` on when `contiguous(pos, n)`.
    #[inline]
    pub(crate) fn payload_ptr(&self, pos: u64) -> *mut u8 {
        // SAFETY: payload_offset < slot_size (validated), so this stays
        // inside the slot.
        unsafe { self.slot_ptr(pos).add(self.payload_offset) }
    }

    /// Reads the extent word of the slot for `pos` exactly once (a FIRST
    /// slot's message length, a PAD slot's count). Peer-written: check it.
    #[inline]
    pub(crate) fn read_extent(&self, pos: u64) -> u64 {
        // SAFETY: the slot start is 64-byte aligned and in bounds, so the
        // word at +8 is 8-byte aligned inside the slot header; one volatile
        // load, so the value checked is the value used.
        unsafe {
            self.slot_ptr(pos)
                .add(SLOT_EXTENT)
                .cast::<u64>()
                .read_volatile()
        }
    }

    /// Writes the extent word of the slot for `pos`.
    ///
    /// # Safety
    ///
    /// As for [`write_len`](Self::write_len).
    #[inline]
    pub(crate) unsafe fn write_extent(&self, pos: u64, extent: u64) {
        // SAFETY: aligned and in bounds (see `read_extent`); the caller owns
        // the slot.
        unsafe {
            self.slot_ptr(pos)
                .add(SLOT_EXTENT)
                .cast::<u64>()
                .write_volatile(extent)
        }
    }

    /// The commit word of the slot for `pos` (see [`commit_value`]).
    ///
    /// A hostile process may write any value there: readers compare it with
    /// the value they expect and treat anything else as "not yet".
    ///
    /// [`commit_value`]: super::commit_value
    #[inline]
    pub(crate) fn commit_word(&self, pos: u64) -> &AtomicU32 {
        #[cfg(not(loom))]
        // SAFETY: the slot start is 64-byte aligned and in bounds, so the
        // word at +4 is 4-byte aligned and inside the slot header; an
        // AtomicU32 is valid for any bit pattern and the mapping outlives
        // `self` (`new`'s contract). Every access to it is atomic.
        unsafe {
            &*self.slot_ptr(pos).add(SLOT_COMMIT).cast::<AtomicU32>()
        }
        #[cfg(loom)]
        // SAFETY: `with_commit_words`' contract; the index is below capacity.
        unsafe {
            &*self.commits.as_ptr().add(self.slot_index(pos))
        }
    }

    /// Reads the length word of the slot for `pos` exactly once.
    ///
    /// The value may have been written by a hostile process: callers must
    /// check it against `payload_capacity()` before use.
    #[inline]
    pub(crate) fn read_len(&self, pos: u64) -> u32 {
        // SAFETY: the slot start is 64-byte aligned and in bounds; a volatile
        // read makes exactly one load, so the value checked is the value used.
        unsafe { self.slot_ptr(pos).cast::<u32>().read_volatile() }
    }

    /// Writes the length word of the slot for `pos`.
    ///
    /// # Safety
    ///
    /// The caller is the producer and `pos` is in `tail..head + capacity`
    /// (a slot the consumer does not read).
    #[inline]
    pub(crate) unsafe fn write_len(&self, pos: u64, len: u32) {
        // SAFETY: aligned and in bounds (see `read_len`); the caller owns
        // the slot.
        unsafe { self.slot_ptr(pos).cast::<u32>().write_volatile(len) }
    }
}
