//! The bare ring: the reference every shmpipe row is divided by, measured
//! in every repetition right before the rows at the same size.
//!
//! A minimal single-producer single-consumer ring between the two peer
//! processes, in a memfd both inherit, with the shape shmpipe's ring gets
//! for the size ([`ring_shape`]): `head` and `tail` on lines of their own,
//! each side caching the other's index, spinning only, the same two copies
//! in and out as `Producer::send` and `Consumer::recv`. No validation of
//! what the peer wrote beyond keeping the copy in bounds, no wake-ups, no
//! counters, no liveness: what a ring costs with nothing else, so the
//! ratio to it is what shmpipe's safety and wake-up machinery cost.

// Bare atomics in shared memory, on purpose outside the library's loom
// shim (clippy.toml's list is for the library's protocol).
#![allow(clippy::disallowed_types)]

use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::{parse_link, Channel, Entry, Family, Group, Mechanism, Setup};
use crate::bench::config::ring_shape;
use crate::bench::endpoint::{not_open, out_buffer, Endpoint, PeerError};
use crate::bench::floor::{create_memfd, spin_until, SharedMap};
use crate::bench::jobs;
use crate::bench::protocol::PeerSpec;

pub const BARE_RING: Entry = Entry {
    mechanism: Mechanism::BareRing,
    name: "bare-ring",
    about: "the reference: a minimal spinning SPSC ring in a shared memfd (cached indices, the \
            same copies in and out, no validation, no wake-ups); always measured for \
            throughput and ping-pong",
    family: &BareRings,
    group: Group::Reference,
    default: false,
};

/// Byte offsets in the mapping: the consumer's index, the producer's, the
/// slots. Each index has its 128-byte pair of lines to itself.
const HEAD: usize = 0;
const TAIL: usize = 128;
const SLOTS: usize = 256;
/// A slot: the message length, then the payload.
const SLOT_HEADER: usize = 8;

/// A peer's bare rings, by inherited memfd: the one it sends on, the one
/// it receives from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BareLink {
    pub tx: Option<i32>,
    pub rx: Option<i32>,
    pub slots: u64,
    pub slot_size: u64,
}

/// The bare ring's family.
pub struct BareRings;

impl Family for BareRings {
    fn kind(&self) -> &'static str {
        "bare-ring"
    }

    fn channel(
        &self,
        _m: Mechanism,
        _setup: &mut Setup<'_>,
        two_way: bool,
        size: usize,
    ) -> Result<Channel, String> {
        let mut ch = Channel::default();
        let g = ring_shape(size);
        let len = SLOTS as u64 + g.slots * g.slot_size;
        let mut memfd = || {
            create_memfd(len as usize)
                .map(|fd| ch.keep(fd))
                .map_err(|e| format!("bare ring memfd: {e}"))
        };
        let a = memfd()?;
        let b = if two_way { Some(memfd()?) } else { None };
        let producer = BareLink {
            tx: Some(a),
            rx: b,
            slots: g.slots,
            slot_size: g.slot_size,
        };
        let consumer = BareLink {
            tx: b,
            rx: Some(a),
            ..producer
        };
        ch.pass_producer = [Some(a), b].into_iter().flatten().collect();
        ch.pass_consumer = ch.pass_producer.clone();
        ch.links(self.kind(), &producer, &consumer);
        Ok(ch)
    }

    fn serve(&self, spec: &PeerSpec) -> Result<(), PeerError> {
        let l: BareLink = parse_link(&spec.link)?;
        jobs::serve(BareEnd::open(&l, spec.msg_size), spec)
    }
}

/// One mapped bare ring.
struct BareMap {
    map: SharedMap,
    /// Slot count - 1 (a power of two minus one).
    mask: u64,
    slot_size: usize,
}

impl BareMap {
    fn open(fd: i32, slots: u64, slot_size: u64, size: usize) -> Result<BareMap, PeerError> {
        if !slots.is_power_of_two() || slot_size < (size + SLOT_HEADER) as u64 {
            return Err(PeerError(format!(
                "bad bare ring shape: {slots} slots of {slot_size} bytes for {size}-byte messages"
            )));
        }
        let len = slots
            .checked_mul(slot_size)
            .and_then(|n| n.checked_add(SLOTS as u64))
            .ok_or_else(|| PeerError::new("bare ring too large"))?;
        Ok(BareMap {
            map: SharedMap::open(fd, len as usize)?,
            mask: slots - 1,
            slot_size: slot_size as usize,
        })
    }

    fn index(&self, at: usize) -> &AtomicU64 {
        self.map.word(at)
    }

    /// The slot of position `pos`.
    #[inline]
    fn slot(&self, pos: u64) -> *mut u8 {
        let i = (pos & self.mask) as usize;
        // SAFETY: `open` checked the mapping holds SLOTS + slots *
        // slot_size bytes, and `i < slots`.
        unsafe { self.map.base().add(SLOTS + i * self.slot_size) }
    }
}

/// The sending side: its next position and the consumer's last seen.
struct Tx {
    ring: BareMap,
    tail: u64,
    cached_head: u64,
}

/// The receiving side: its next position and the producer's last seen.
struct Rx {
    ring: BareMap,
    head: u64,
    cached_tail: u64,
}

/// A peer's end of one or two bare rings.
pub struct BareEnd {
    tx: Option<Tx>,
    rx: Option<Rx>,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl BareEnd {
    fn open(l: &BareLink, size: usize) -> Result<BareEnd, PeerError> {
        let map = |fd| BareMap::open(fd, l.slots, l.slot_size, size);
        Ok(BareEnd {
            tx: l.tx.map(map).transpose()?.map(|ring| Tx {
                ring,
                tail: 0,
                cached_head: 0,
            }),
            rx: l.rx.map(map).transpose()?.map(|ring| Rx {
                ring,
                head: 0,
                cached_tail: 0,
            }),
            out: out_buffer(size),
            inb: vec![0; size],
        })
    }
}

impl Endpoint for BareEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        let tx = self.tx.as_mut().ok_or_else(|| not_open("sending"))?;
        let slots = tx.ring.mask + 1;
        let t = tx.tail;
        if t.wrapping_sub(tx.cached_head) >= slots {
            let head = tx.ring.index(HEAD);
            // ORDERING: Acquire; pairs with the consumer's Release store
            // of `head` in `recv`: its copy out of the slot is done.
            tx.cached_head = spin_until(|| {
                let h = head.load(Ordering::Acquire);
                (t.wrapping_sub(h) < slots).then_some(h)
            });
        }
        let len = len.min(tx.ring.slot_size - SLOT_HEADER).min(self.out.len());
        let slot = tx.ring.slot(t);
        // SAFETY: the slot holds slot_size >= SLOT_HEADER + len bytes and
        // is ours until `tail` passes it (the consumer reads it only
        // then); the length word is 8-aligned (slots start 64-aligned).
        unsafe {
            slot.cast::<u64>().write(len as u64);
            ptr::copy_nonoverlapping(self.out.as_ptr(), slot.add(SLOT_HEADER), len);
        }
        // ORDERING: Release; pairs with the consumer's Acquire load of
        // `tail` in `recv`, publishing the slot written above.
        tx.ring.index(TAIL).store(t + 1, Ordering::Release);
        tx.tail = t + 1;
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let rx = self.rx.as_mut().ok_or_else(|| not_open("receiving"))?;
        let h = rx.head;
        if h == rx.cached_tail {
            let tail = rx.ring.index(TAIL);
            // ORDERING: Acquire; pairs with the producer's Release store
            // of `tail` in `send`: the slot's contents are visible.
            rx.cached_tail = spin_until(|| {
                let t = tail.load(Ordering::Acquire);
                (t != h).then_some(t)
            });
        }
        let slot = rx.ring.slot(h);
        // SAFETY: `tail` has passed this slot, so the producer wrote it
        // and does not touch it until `head` passes it; the length is
        // clamped to our buffer and the slot's payload before copying.
        let n = unsafe {
            let n = (slot.cast::<u64>().read() as usize)
                .min(self.inb.len())
                .min(rx.ring.slot_size - SLOT_HEADER);
            ptr::copy_nonoverlapping(slot.add(SLOT_HEADER), self.inb.as_mut_ptr(), n);
            n
        };
        // ORDERING: Release; pairs with the producer's Acquire load of
        // `head` in `send`: our copy-out happens before it reuses the slot.
        rx.ring.index(HEAD).store(h + 1, Ordering::Release);
        rx.head = h + 1;
        Ok(&self.inb[..n])
    }
}
