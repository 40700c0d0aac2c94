//! The shared ring: geometry, header initialisation and validation, and raw
//! slot access.
//!
//! This module knows the byte layout ([`layout`]) and nothing about
//! processes or system calls. The index protocol itself (who stores `head`
//! and `tail`, with which ordering) lives with the handles in
//! `crate::handles`, which are the only writers.

pub(crate) mod layout;

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::error::{Corruption, Error, Expected};
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use layout::{
    RingHeader, HEADER_LEN, INIT_BUSY, INIT_EMPTY, INIT_READY, LAYOUT_VERSION, MAGIC, MAX_SLOTS,
    MAX_SLOT_SIZE, MAX_TOTAL_LEN, SLOT_ALIGN, SLOT_HEADER,
};

/// A ring's shape: how many slots and how big each is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Number of slots, a power of two.
    pub(crate) slot_count: u64,
    /// Bytes per slot including its 8-byte length header, a multiple of 64.
    pub(crate) slot_size: usize,
}

impl Geometry {
    /// Checks a requested geometry.
    pub(crate) fn new(slot_count: u64, slot_size: u64) -> Result<Geometry, Error> {
        if slot_count == 0 || !slot_count.is_power_of_two() {
            return Err(Error::config(
                "slot count",
                slot_count,
                "must be a power of two (1, 2, 4, ... 4294967296)",
            ));
        }
        if slot_count > MAX_SLOTS {
            return Err(Error::config(
                "slot count",
                slot_count,
                "must be at most 4294967296 (2^32)",
            ));
        }
        if slot_size < SLOT_ALIGN as u64 || slot_size % SLOT_ALIGN as u64 != 0 {
            return Err(Error::config(
                "slot size",
                slot_size,
                "must be a non-zero multiple of 64 bytes (8 of them hold the length)",
            ));
        }
        if slot_size > MAX_SLOT_SIZE as u64 {
            return Err(Error::config(
                "slot size",
                slot_size,
                "must be at most 1 GiB (1073741824 bytes)",
            ));
        }
        let g = Geometry {
            slot_count,
            slot_size: slot_size as usize,
        };
        match g.total_len() {
            Some(t) if t <= MAX_TOTAL_LEN => Ok(g),
            _ => Err(Error::config(
                "ring size (slots x slot size)",
                slot_count.saturating_mul(slot_size),
                "must be at most 1 TiB",
            )),
        }
    }

    /// The slot size that carries messages of up to `max_message` bytes.
    pub(crate) fn slot_size_for(max_message: u64) -> u64 {
        let raw = max_message.saturating_add(SLOT_HEADER as u64);
        raw.saturating_add(SLOT_ALIGN as u64 - 1) & !(SLOT_ALIGN as u64 - 1)
    }

    /// Largest message, in bytes.
    pub(crate) fn payload_capacity(&self) -> usize {
        self.slot_size - SLOT_HEADER
    }

    /// Header plus slots, in bytes.
    pub(crate) fn total_len(&self) -> Option<u64> {
        self.slot_count
            .checked_mul(self.slot_size as u64)?
            .checked_add(HEADER_LEN as u64)
    }
}

/// Writes a fresh header into zero-filled memory and publishes it. Only the
/// creator of a segment calls this, before anyone can consider it ready.
pub(crate) fn init_header(hdr: &RingHeader, geom: Geometry, page_size: usize, creator: (u32, u64)) {
    let m = &hdr.meta;
    // The creator's identity first, so a half-initialised ring can be told
    // stale (creator dead) from in progress.
    m.creator_pid.store(creator.0, Relaxed);
    m.creator_start.store(creator.1, Relaxed);
    m.init_state.store(INIT_BUSY, Relaxed);
    m.magic.store(MAGIC, Relaxed);
    m.version.store(LAYOUT_VERSION, Relaxed);
    m.header_len.store(HEADER_LEN as u64, Relaxed);
    m.slot_count.store(geom.slot_count, Relaxed);
    m.slot_size.store(geom.slot_size as u64, Relaxed);
    m.payload_capacity
        .store(geom.payload_capacity() as u64, Relaxed);
    m.total_len.store(geom.total_len().unwrap_or(0), Relaxed);
    m.page_size.store(page_size as u64, Relaxed);
    // ORDERING: Release; pairs with the Acquire `init_state` load in
    // `wait_ready`, publishing every field written above.
    m.init_state.store(INIT_READY, Release);
}

/// Waits (bounded by `timeout`) until the creator has published the header.
pub(crate) fn wait_ready(hdr: &RingHeader, label: &str, timeout: Duration) -> Result<(), Error> {
    let start = Instant::now();
    let mut sleep = Duration::from_micros(50);
    loop {
        // ORDERING: Acquire; pairs with the Release store of INIT_READY in
        // `init_header`, so the geometry read after this is the creator's.
        let state = hdr.meta.init_state.load(Acquire);
        let magic = hdr.meta.magic.load(Relaxed);
        if magic != 0 && magic != MAGIC {
            return Err(Error::BadMagic {
                address: label.to_owned(),
                found: magic,
            });
        }
        match state {
            INIT_READY if magic == MAGIC => return Ok(()),
            INIT_READY | INIT_EMPTY | INIT_BUSY => {}
            other => {
                return Err(Error::Corrupt {
                    address: label.to_owned(),
                    corruption: Corruption {
                        field: "init_state",
                        found: u64::from(other),
                        expected: Expected::Range {
                            min: u64::from(INIT_EMPTY),
                            max: u64::from(INIT_READY),
                        },
                    },
                })
            }
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::NotInitialized {
                address: label.to_owned(),
                waited,
            });
        }
        std::thread::sleep(sleep.min(timeout - waited));
        sleep = (sleep * 2).min(Duration::from_millis(10));
    }
}

/// Reads and validates the geometry of a published header against the real
/// length of the segment. Returns the geometry and the recorded page size.
pub(crate) fn read_geometry(
    hdr: &RingHeader,
    segment_len: usize,
    label: &str,
) -> Result<(Geometry, u64), Error> {
    let m = &hdr.meta;
    let corrupt = |field, found, expected| Error::Corrupt {
        address: label.to_owned(),
        corruption: Corruption {
            field,
            found,
            expected,
        },
    };
    let version = m.version.load(Relaxed);
    if version != LAYOUT_VERSION {
        return Err(Error::VersionMismatch {
            address: label.to_owned(),
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let header_len = m.header_len.load(Relaxed);
    if header_len != HEADER_LEN as u64 {
        return Err(corrupt(
            "header_len",
            header_len,
            Expected::Exactly(HEADER_LEN as u64),
        ));
    }
    let slot_count = m.slot_count.load(Relaxed);
    if slot_count == 0 || !slot_count.is_power_of_two() || slot_count > MAX_SLOTS {
        return Err(corrupt("slot_count", slot_count, Expected::PowerOfTwo));
    }
    let slot_size = m.slot_size.load(Relaxed);
    if slot_size == 0 || slot_size % SLOT_ALIGN as u64 != 0 || slot_size > MAX_SLOT_SIZE as u64 {
        return Err(corrupt(
            "slot_size",
            slot_size,
            Expected::MultipleOf(SLOT_ALIGN as u64),
        ));
    }
    let geom = Geometry {
        slot_count,
        slot_size: slot_size as usize,
    };
    let payload = m.payload_capacity.load(Relaxed);
    if payload != geom.payload_capacity() as u64 {
        return Err(corrupt(
            "payload_capacity",
            payload,
            Expected::Exactly(geom.payload_capacity() as u64),
        ));
    }
    let total = m.total_len.load(Relaxed);
    let needed = geom.total_len().unwrap_or(u64::MAX);
    if total != needed {
        return Err(corrupt("total_len", total, Expected::Exactly(needed)));
    }
    if total > segment_len as u64 {
        return Err(corrupt(
            "total_len",
            total,
            Expected::Range {
                min: HEADER_LEN as u64,
                max: segment_len as u64,
            },
        ));
    }
    let page_size = m.page_size.load(Relaxed);
    if !page_size.is_power_of_two() {
        return Err(corrupt("page_size", page_size, Expected::PowerOfTwo));
    }
    Ok((geom, page_size))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_rules() {
        assert!(Geometry::new(0, 64).is_err());
        assert!(Geometry::new(3, 64).is_err());
        assert!(Geometry::new(4, 0).is_err());
        assert!(Geometry::new(4, 32).is_err());
        assert!(Geometry::new(4, 100).is_err());
        assert!(Geometry::new(4, (MAX_SLOT_SIZE * 2) as u64).is_err());
        assert!(Geometry::new(1 << 33, 64).is_err());
        assert!(Geometry::new(1 << 30, 1 << 20).is_err());
        let g = Geometry::new(1024, 256).unwrap();
        assert_eq!(g.payload_capacity(), 248);
        assert_eq!(g.total_len(), Some(HEADER_LEN as u64 + 1024 * 256));
        assert_eq!(Geometry::new(1, 64).unwrap().payload_capacity(), 56);
    }

    #[test]
    fn slot_size_for_messages() {
        assert_eq!(Geometry::slot_size_for(0), 64);
        assert_eq!(Geometry::slot_size_for(56), 64);
        assert_eq!(Geometry::slot_size_for(57), 128);
        assert_eq!(Geometry::slot_size_for(4096), 4160);
    }
}
