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
    commit_value, ControlLine, RingHeader, StatsLine, FLAG_REMOVED, HEADER_LEN, MAGIC, MAX_SLOTS,
    MAX_SLOT_SIZE, MAX_TOTAL_LEN, PARKED_FUTEX, PARKED_NOTIFY, SLOT_ALIGN, SLOT_COMMIT,
    SLOT_HEADER,
};
pub(crate) use validate::{init_header, read_geometry, read_message_type, wait_ready};
pub(crate) use view::RingRef;

use crate::error::Error;

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
