//! Which geometry an opener asked for, and the check on open: a builder
//! given `slots`, `slot_size` or `max_message` refuses a ring of another
//! geometry with [`Error::GeometryMismatch`], instead of silently using a
//! ring of 4 slots of 56 bytes when 1024 x 4096 was asked for.
//!
//! The rule, per dimension the builder was given: the ring's value must
//! equal the one this builder would create. `max_message(n)` asks for the
//! slot size it would create (`n + 8` rounded up to 64), not for "at least
//! `n`": then the ring that several racing
//! [`open_or_create`](super::RingBuilder::open_or_create) callers end up
//! with does not depend on who won, and a consumer sized for `n`-byte
//! messages never meets a larger one. A dimension not given is not
//! checked; `accept_any_geometry(true)` checks nothing.

use super::{Ring, RingBuilder};
use crate::error::{self, Error};

/// The dimensions a builder was given explicitly.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Asked {
    /// `slots` was called.
    pub(super) slots: bool,
    /// `slot_size` or `max_message` was called.
    pub(super) slot_size: bool,
    /// `accept_any_geometry(true)`: check nothing.
    pub(super) any: bool,
}

impl RingBuilder {
    /// Refuses `ring` if its geometry differs from the one asked for.
    pub(super) fn check_geometry(&self, ring: &Ring) -> Result<(), Error> {
        let asked = self.asked;
        if asked.any || !(asked.slots || asked.slot_size) {
            return Ok(());
        }
        let g = ring.mapping.geometry;
        let found = error::Geometry {
            slots: g.slot_count,
            slot_size: g.slot_size as u64,
        };
        let expected = error::Geometry {
            slots: if asked.slots { self.slots } else { found.slots },
            slot_size: if asked.slot_size {
                self.slot_size
            } else {
                found.slot_size
            },
        };
        if expected == found {
            return Ok(());
        }
        Err(Error::GeometryMismatch {
            address: ring.mapping.label.clone(),
            expected,
            found,
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn heap(slots: u64, slot_size: u64) -> Ring {
        let mut b = RingBuilder::new();
        b.slots(slots).slot_size(slot_size);
        b.create_in_process().unwrap()
    }

    #[test]
    fn only_the_dimensions_given_are_checked() {
        let ring = heap(16, 128);
        assert!(RingBuilder::new().check_geometry(&ring).is_ok());
        assert!(RingBuilder::new().slots(16).check_geometry(&ring).is_ok());
        assert!(RingBuilder::new()
            .slot_size(128)
            .check_geometry(&ring)
            .is_ok());
        // 100-byte messages need 108 bytes: a 128-byte slot, this one.
        assert!(RingBuilder::new()
            .max_message(100)
            .check_geometry(&ring)
            .is_ok());
        // 40-byte messages would get 64-byte slots: not this ring.
        let e = RingBuilder::new().max_message(40).check_geometry(&ring);
        assert!(matches!(
            e,
            Err(Error::GeometryMismatch { expected, found, .. })
                if expected == error::Geometry { slots: 16, slot_size: 64 }
                    && found == error::Geometry { slots: 16, slot_size: 128 }
        ));
        let mut b = RingBuilder::new();
        b.slots(1024).slot_size(4096);
        let msg = b.check_geometry(&ring).unwrap_err().to_string();
        assert!(msg.contains("16 slots x 128 bytes"), "{msg}");
        assert!(msg.contains("1024 slots x 4096 bytes"), "{msg}");
        assert!(b.accept_any_geometry(true).check_geometry(&ring).is_ok());
    }

    #[test]
    fn default_geometry_is_created_but_not_checked() {
        let mut b = RingBuilder::new();
        b.default_geometry(8, 256);
        let ring = b.create_in_process().unwrap();
        assert_eq!((ring.info().slots, ring.info().slot_size), (8, 256));
        assert!(b.check_geometry(&heap(4, 64)).is_ok());
        // Given afterwards: created and checked.
        b.slots(32);
        assert_eq!(b.create_in_process().unwrap().info().slots, 32);
        assert!(b.check_geometry(&heap(4, 256)).is_err());
        // Given before: the default does not override it.
        let mut b = RingBuilder::new();
        b.slots(2).default_geometry(8, 256);
        assert_eq!(b.create_in_process().unwrap().info().slots, 2);
    }
}
