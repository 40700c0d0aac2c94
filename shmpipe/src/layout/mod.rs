//! The shared byte layout of a ring: the `#[repr(C)]` header, the claim
//! word, geometry, header initialisation and validation, and raw slot
//! access.
//!
//! ```text
//! mod.rs       Geometry: slot count and size, checked
//! header.rs    RingHeader and its lines (meta, indices, control, stats); constants
//! claim.rs     Claim: who holds a side, packed in one u64
//! validate.rs  writing a fresh header; waiting for and validating a published one
//! view.rs      RingRef: a process-local, validated view (pointers + geometry)
//! ```
//!
//! This module knows the bytes and nothing about processes or system calls.
//! The index protocol itself (who stores `head` and `tail`, with which
//! ordering) lives with the handles in `crate::handles`, the only writers.

mod claim;
mod header;
mod validate;
mod view;

pub(crate) use claim::{Claim, START_MASK, STATE_ATTACHED, STATE_CLOSED, STATE_VACANT};
pub(crate) use header::{
    commit_value, ControlLine, RingHeader, StatsLine, DEFAULT_PAYLOAD_ALIGN, FLAG_REMOVED,
    HEADER_LEN, MAGIC, MARK_FIRST, MARK_MASK, MARK_PAD, MARK_WHOLE, MAX_PAYLOAD_ALIGN, MAX_SLOTS,
    MAX_SLOT_SIZE, MAX_TOTAL_LEN, MIN_PAYLOAD_ALIGN, PARKED_FUTEX, PARKED_NOTIFY, SLOT_ALIGN,
    SLOT_COMMIT, SLOT_EXTENT, SLOT_HEADER, WRAP_DOUBLE_MAP, WRAP_PAD,
};
pub(crate) use validate::{init_header, read_fingerprint, read_geometry, wait_ready};
pub(crate) use view::RingRef;

use crate::error::Error;

/// A ring's shape: how many slots, how big, where the payload sits in each
/// and how large a message may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Number of slots, a power of two.
    pub(crate) slot_count: u64,
    /// Bytes per slot including its 16-byte header, a multiple of 64.
    pub(crate) slot_size: usize,
    /// Offset of the payload in a slot: `max(SLOT_HEADER, payload_align)`.
    pub(crate) payload_offset: usize,
    /// Every payload address is a multiple of this (a power of two).
    pub(crate) payload_align: usize,
    /// Byte offset of slot 0 in the segment.
    pub(crate) slots_offset: usize,
    /// Largest message over any number of slots.
    pub(crate) message_limit: u64,
    /// Whether every process maps the slot area twice, back to back
    /// (`WRAP_DOUBLE_MAP`), so that messages may cross the wrap.
    pub(crate) double_map: bool,
}

impl Geometry {
    /// Checks a requested geometry: `payload_align` a power of two in
    /// `8..=4096` (and, above 64, dividing the slot size), `message_limit`
    /// at most what the ring holds (`None`: exactly that).
    pub(crate) fn with_layout(
        slot_count: u64,
        slot_size: u64,
        payload_align: u64,
        message_limit: Option<u64>,
    ) -> Result<Geometry, Error> {
        if slot_count == 0 || !slot_count.is_power_of_two() {
            return Err(Error::config(
                "slot count",
                slot_count,
                "must be a power of two (1, 2, 4, ... 2147483648)",
            ));
        }
        if slot_count > MAX_SLOTS {
            return Err(Error::config(
                "slot count",
                slot_count,
                "must be at most 2147483648 (2^31)",
            ));
        }
        if slot_size < SLOT_ALIGN as u64 || slot_size % SLOT_ALIGN as u64 != 0 {
            return Err(Error::config(
                "slot size",
                slot_size,
                "must be a non-zero multiple of 64 bytes (16 of them are the slot header)",
            ));
        }
        if slot_size > MAX_SLOT_SIZE as u64 {
            return Err(Error::config(
                "slot size",
                slot_size,
                "must be at most 1 GiB (1073741824 bytes)",
            ));
        }
        if !payload_align.is_power_of_two()
            || !(MIN_PAYLOAD_ALIGN as u64..=MAX_PAYLOAD_ALIGN as u64).contains(&payload_align)
        {
            return Err(Error::config(
                "payload alignment",
                payload_align,
                "must be a power of two from 8 to 4096 (RingBuilder::payload_align)",
            ));
        }
        if payload_align > SLOT_ALIGN as u64 && slot_size % payload_align != 0 {
            return Err(Error::config(
                "slot size",
                slot_size,
                "must be a multiple of the payload alignment when that is above 64: \
                 raise RingBuilder::slot_size or lower RingBuilder::payload_align",
            ));
        }
        let payload_offset = (SLOT_HEADER as u64).max(payload_align);
        if payload_offset >= slot_size {
            return Err(Error::config(
                "slot size",
                slot_size,
                "must exceed the payload offset (the 16-byte slot header rounded up to the \
                 payload alignment): raise RingBuilder::slot_size",
            ));
        }
        let mut g = Geometry {
            slot_count,
            slot_size: slot_size as usize,
            payload_offset: payload_offset as usize,
            payload_align: payload_align as usize,
            slots_offset: HEADER_LEN.max(payload_align as usize),
            message_limit: 0,
            double_map: false,
        };
        let holds = g.ring_holds();
        g.message_limit =
            match message_limit {
                None => holds,
                Some(m) if m <= holds => m,
                Some(m) => return Err(Error::config(
                    "message limit",
                    m,
                    "must be at most what the ring holds (slots x slot size - payload offset): \
                     raise RingBuilder::slots or RingBuilder::slot_size",
                )),
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

    /// The same geometry with the slot area mapped twice: slot 0 moves to
    /// `page_size`. `None` when that is impossible: the slot area is not a
    /// whole number of pages, or the pages are larger than 2 MiB.
    pub(crate) fn double_mapped(self, page_size: usize) -> Option<Geometry> {
        let area = self.slot_area() as u64;
        if !page_size.is_power_of_two()
            || !(HEADER_LEN..=2 << 20).contains(&page_size)
            || page_size < self.payload_align
            || area % page_size as u64 != 0
        {
            return None;
        }
        let g = Geometry {
            slots_offset: page_size,
            double_map: true,
            ..self
        };
        g.total_len().filter(|&t| t <= MAX_TOTAL_LEN).map(|_| g)
    }

    /// The slot size that carries messages of up to `max_message` bytes in
    /// one slot, with the default payload alignment.
    pub(crate) fn slot_size_for(max_message: u64) -> u64 {
        let raw = max_message.saturating_add(SLOT_HEADER as u64);
        raw.saturating_add(SLOT_ALIGN as u64 - 1) & !(SLOT_ALIGN as u64 - 1)
    }

    /// Largest message in one slot, in bytes.
    pub(crate) fn payload_capacity(&self) -> usize {
        self.slot_size - self.payload_offset
    }

    /// Largest message the ring can hold at all: every slot, less the first
    /// slot's header.
    pub(crate) fn ring_holds(&self) -> u64 {
        self.slot_area() as u64 - self.payload_offset as u64
    }

    /// Bytes of the slot area.
    pub(crate) fn slot_area(&self) -> usize {
        self.slot_count as usize * self.slot_size
    }

    /// Slots a message of `len` bytes takes.
    #[cfg(test)]
    pub(crate) fn slots_for(&self, len: u64) -> u64 {
        (len + self.payload_offset as u64).div_ceil(self.slot_size as u64)
    }

    /// Header plus slots, in bytes.
    pub(crate) fn total_len(&self) -> Option<u64> {
        self.slot_count
            .checked_mul(self.slot_size as u64)?
            .checked_add(self.slots_offset as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Geometry {
        fn new(slot_count: u64, slot_size: u64) -> Result<Geometry, Error> {
            Geometry::with_layout(slot_count, slot_size, DEFAULT_PAYLOAD_ALIGN as u64, None)
        }
    }

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
        assert_eq!(g.payload_capacity(), 240);
        assert_eq!(g.total_len(), Some(HEADER_LEN as u64 + 1024 * 256));
        assert_eq!(g.message_limit, 1024 * 256 - 16);
        assert_eq!(g.slots_for(0), 1);
        assert_eq!(g.slots_for(240), 1);
        assert_eq!(g.slots_for(241), 2);
        assert_eq!(g.slots_for(g.message_limit), 1024);
        assert_eq!(Geometry::new(1, 64).unwrap().payload_capacity(), 48);
    }

    #[test]
    fn slot_size_for_messages() {
        assert_eq!(Geometry::slot_size_for(0), 64);
        assert_eq!(Geometry::slot_size_for(48), 64);
        assert_eq!(Geometry::slot_size_for(49), 128);
        assert_eq!(Geometry::slot_size_for(4096), 4160);
    }

    #[test]
    fn payload_alignment_rules() {
        for bad in [0, 4, 12, 8192] {
            assert!(Geometry::with_layout(4, 256, bad, None).is_err(), "{bad}");
        }
        let g = Geometry::with_layout(4, 256, 64, None).unwrap();
        assert_eq!((g.payload_offset, g.payload_capacity()), (64, 192));
        assert!(Geometry::with_layout(4, 192, 128, None).is_err());
        assert!(Geometry::with_layout(4, 64, 64, None).is_err());
        let g = Geometry::with_layout(4, 8192, 4096, None).unwrap();
        assert_eq!((g.payload_offset, g.slots_offset), (4096, 4096));
        assert_eq!(
            Geometry::with_layout(4, 64, 8, None)
                .unwrap()
                .payload_offset,
            16
        );
        assert!(Geometry::with_layout(4, 256, 16, Some(1024 - 16)).is_ok());
        assert!(Geometry::with_layout(4, 256, 16, Some(1024 - 15)).is_err());
    }

    #[test]
    fn double_mapping_needs_whole_pages() {
        let g = Geometry::new(64, 64).unwrap();
        let d = g.double_mapped(4096).unwrap();
        assert_eq!((d.slots_offset, d.total_len()), (4096, Some(8192)));
        assert!(Geometry::new(16, 64).unwrap().double_mapped(4096).is_none());
        assert!(Geometry::new(64, 64)
            .unwrap()
            .double_mapped(2 << 20)
            .is_none());
        assert!(Geometry::new(1024, 4096)
            .unwrap()
            .double_mapped(1 << 30)
            .is_none());
    }
}
