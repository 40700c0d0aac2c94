//! [`RingRef`]: where this process sees the header and the slots, and the
//! geometry it validated once.

use std::ptr::NonNull;

use super::{Geometry, RingHeader, SLOT_HEADER};

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
}

impl RingRef {
    /// # Safety
    ///
    /// `hdr` points to a live `RingHeader` and `slots` to
    /// `geom.slot_count * geom.slot_size` bytes, both valid (and not moved
    /// or unmapped) for as long as any copy of this `RingRef` is used.
    pub(crate) unsafe fn new(hdr: NonNull<RingHeader>, slots: NonNull<u8>, geom: Geometry) -> Self {
        RingRef {
            hdr,
            slots,
            mask: geom.slot_count - 1,
            slot_size: geom.slot_size,
            capacity: geom.slot_count,
        }
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

    /// Largest message, in bytes.
    #[inline]
    pub(crate) fn payload_capacity(&self) -> usize {
        self.slot_size - SLOT_HEADER
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
    /// follow it.
    #[inline]
    pub(crate) fn payload_ptr(&self, pos: u64) -> *mut u8 {
        // SAFETY: SLOT_HEADER < slot_size, so this stays inside the slot.
        unsafe { self.slot_ptr(pos).add(SLOT_HEADER) }
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
