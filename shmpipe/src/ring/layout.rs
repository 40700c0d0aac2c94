//! The `#[repr(C)]` header at offset 0 of every segment.
//!
//! ```text
//! offset  line (128 B, CachePadded)  written by       read by
//! 0x000   meta                       creator, once    openers (snapshot, validated)
//! 0x080   tail                       producer/msg     consumer when its cache says empty
//! 0x100   head                       consumer/msg     producer when its cache says full
//! 0x180   producer control           producer, rare   consumer after each release
//! 0x200   consumer control           consumer, rare   producer on each send
//! 0x280   producer counters          producer/msg     inspect
//! 0x300   consumer counters          consumer/msg     inspect
//! 0x380   slot 0, slot 1, ...        (slot_count x slot_size bytes)
//! ```
//!
//! Offsets are for x86-64, where `CachePadded` is 128 bytes (adjacent-line
//! prefetch pairs 64-byte lines); the header records its own length so that
//! a peer built for another cache-line size is refused, not misread.
//!
//! Every field is atomic: another process may write any of them at any time,
//! and atomics make those concurrent accesses defined behaviour. Fields are
//! read once into process-local values and validated before use.

#![allow(clippy::disallowed_types)]

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU32, AtomicU64, Futex};

/// `b"shmpipe\0"` read as a little-endian `u64`.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"shmpipe\0");

/// Bumped on any change to the shared layout or protocol.
pub(crate) const LAYOUT_VERSION: u32 = 1;

/// `meta.init_state`: zero-filled memory, nobody has started.
pub(crate) const INIT_EMPTY: u32 = 0;
/// `meta.init_state`: the creator is writing the header.
pub(crate) const INIT_BUSY: u32 = 1;
/// `meta.init_state`: the header is complete; openers may read it.
pub(crate) const INIT_READY: u32 = 2;

/// Bytes at the start of each slot holding the message length (`u32`) and a
/// reserved word (zero).
pub(crate) const SLOT_HEADER: usize = 8;
/// Slot sizes are multiples of this, so slots never share a cache line.
pub(crate) const SLOT_ALIGN: usize = 64;
/// Largest slot accepted, 1 GiB.
pub(crate) const MAX_SLOT_SIZE: usize = 1 << 30;
/// Largest slot count accepted, 2^32.
pub(crate) const MAX_SLOTS: u64 = 1 << 32;
/// Largest whole segment accepted, 1 TiB.
pub(crate) const MAX_TOTAL_LEN: u64 = 1 << 40;

/// Geometry and identity, written once by the creator before
/// `init_state = INIT_READY` and read-only afterwards.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Meta {
    /// [`MAGIC`].
    pub(crate) magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub(crate) version: AtomicU32,
    /// `INIT_EMPTY` → `INIT_BUSY` → `INIT_READY`.
    pub(crate) init_state: AtomicU32,
    /// Byte offset of slot 0, `size_of::<RingHeader>()`.
    pub(crate) header_len: AtomicU64,
    /// Number of slots, a power of two.
    pub(crate) slot_count: AtomicU64,
    /// Bytes per slot, a multiple of [`SLOT_ALIGN`].
    pub(crate) slot_size: AtomicU64,
    /// Largest message, `slot_size - SLOT_HEADER`.
    pub(crate) payload_capacity: AtomicU64,
    /// `header_len + slot_count * slot_size`; the segment may be longer
    /// (rounded up to whole pages).
    pub(crate) total_len: AtomicU64,
    /// Page size of the mapping as created (4 KiB, 2 MiB, 1 GiB).
    pub(crate) page_size: AtomicU64,
    /// Process that created the ring.
    pub(crate) creator_pid: AtomicU32,
    /// Reserved, zero.
    pub(crate) flags: AtomicU32,
    /// Start time of the creator (see [`Claim`]), so that a stale ring can
    /// be told from one whose creator is still setting it up.
    pub(crate) creator_start: AtomicU64,
}

/// One side's control line: its claim, and the wake state of the futex it
/// sleeps on. Written rarely (claim, close, park), so the peer's reads of it
/// on every operation stay cache hits.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Who holds this side: see [`Claim`].
    pub(crate) claim: AtomicU64,
    /// 1 while this side is (about to be) asleep on `event`; see the wake
    /// protocol in `docs/design.md`.
    pub(crate) parked: AtomicU32,
    /// The futex word this side sleeps on; the peer bumps it to wake it.
    pub(crate) event: Futex,
}

/// Statistics written by one side only (plain stores of process-local
/// totals), on their own line so they never disturb the index lines.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Messages sent (producer) or received (consumer).
    pub(crate) messages: AtomicU64,
    /// Payload bytes sent or received.
    pub(crate) bytes: AtomicU64,
    /// Operations that found the ring full (producer) or empty (consumer).
    pub(crate) stalls: AtomicU64,
    /// `FUTEX_WAIT` calls made by this side.
    pub(crate) futex_waits: AtomicU64,
    /// `FUTEX_WAKE` calls made by this side to wake its peer.
    pub(crate) futex_wakes: AtomicU64,
    /// Spin iterations spent waiting before parking.
    pub(crate) spin_rounds: AtomicU64,
}

/// The header. See the module docs for the byte layout.
///
/// # Invariants
///
/// Upheld by every correct process; checked, never assumed, when read:
/// - `head <= tail <= head + slot_count` at all times;
/// - slot `p & (slot_count - 1)` for `head <= p < tail` holds a committed
///   message whose length is at most `payload_capacity`;
/// - only the producer writes `tail`, the slots in `tail..head + slot_count`
///   and the producer lines; only the consumer writes `head` and the
///   consumer lines;
/// - `meta` never changes after `init_state == INIT_READY`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RingHeader {
    pub(crate) meta: CachePadded<Meta>,
    /// Producer's position: messages `0..tail` have been committed.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// Consumer's position: messages `0..head` have been released.
    pub(crate) head: CachePadded<AtomicU64>,
    pub(crate) producer: CachePadded<Control>,
    pub(crate) consumer: CachePadded<Control>,
    pub(crate) producer_stats: CachePadded<Counters>,
    pub(crate) consumer_stats: CachePadded<Counters>,
}

/// Byte offset of slot 0.
pub(crate) const HEADER_LEN: usize = core::mem::size_of::<RingHeader>();

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Meta>() <= 128);
    assert!(size_of::<Control>() == 16);
    assert!(size_of::<Counters>() == 48);
    assert!(HEADER_LEN % SLOT_ALIGN == 0);
    assert!(align_of::<RingHeader>() <= 4096);
    // The index lines and control lines never share a cache line.
    assert!(offset_of!(RingHeader, head) - offset_of!(RingHeader, tail) >= 64);
    assert!(offset_of!(RingHeader, producer) - offset_of!(RingHeader, head) >= 64);
    #[cfg(target_arch = "x86_64")]
    assert!(HEADER_LEN == 7 * 128);
};

/// A side's claim, packed into one `u64` so that taking it is a single
/// compare-and-swap:
///
/// ```text
/// bits 63..62  state: 0 vacant, 1 attached, 2 closed
/// bits 61..56  generation: +1 (mod 64) on every claim of this side, so a
///              new session of the same process is a different word
/// bits 55..34  pid (22 bits: Linux pids stay below PID_MAX_LIMIT = 2^22)
/// bits 33..0   start time of that process, clock ticks after boot
///              (/proc/PID/stat field 22), modulo 2^34, telling a
///              recycled pid apart
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claim(pub(crate) u64);

/// Nobody has held this side yet.
pub(crate) const STATE_VACANT: u64 = 0;
/// A process holds this side (and may have died since).
pub(crate) const STATE_ATTACHED: u64 = 1;
/// The last holder dropped its handle.
pub(crate) const STATE_CLOSED: u64 = 2;

const GEN_BITS: u32 = 6;
const PID_BITS: u32 = 22;
const START_BITS: u32 = 34;
/// The bits of a start time a claim keeps; compare start times through it.
pub(crate) const START_MASK: u64 = (1 << START_BITS) - 1;
const PID_MASK: u64 = (1 << PID_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const GEN_SHIFT: u32 = PID_BITS + START_BITS;
const STATE_SHIFT: u32 = GEN_SHIFT + GEN_BITS;

impl Claim {
    pub(crate) fn new(state: u64, pid: u32, start: u64) -> Claim {
        Claim(
            (state << STATE_SHIFT)
                | ((u64::from(pid) & PID_MASK) << START_BITS)
                | (start & START_MASK),
        )
    }

    pub(crate) fn state(self) -> u64 {
        self.0 >> STATE_SHIFT
    }

    pub(crate) fn generation(self) -> u64 {
        (self.0 >> GEN_SHIFT) & GEN_MASK
    }

    /// The same holder with the generation after `prev`'s.
    pub(crate) fn next_generation_after(self, prev: Claim) -> Claim {
        let gen = (prev.generation() + 1) & GEN_MASK;
        Claim((self.0 & !(GEN_MASK << GEN_SHIFT)) | (gen << GEN_SHIFT))
    }

    pub(crate) fn pid(self) -> u32 {
        ((self.0 >> START_BITS) & PID_MASK) as u32
    }

    pub(crate) fn start(self) -> u64 {
        self.0 & START_MASK
    }

    /// The same holder (and generation) in another state.
    pub(crate) fn with_state(self, state: u64) -> Claim {
        Claim((self.0 & !(3 << STATE_SHIFT)) | (state << STATE_SHIFT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_packs_and_unpacks() {
        let c = Claim::new(STATE_ATTACHED, 4_194_303, (1 << 40) - 1);
        assert_eq!(c.state(), STATE_ATTACHED);
        assert_eq!(c.pid(), 4_194_303);
        assert_eq!(c.start(), START_MASK);
        assert_eq!(c.generation(), 0);
        let next = c.next_generation_after(Claim::new(STATE_CLOSED, 1, 1).next_generation_after(c));
        assert_eq!(next.generation(), 2);
        assert_eq!(
            (next.pid(), next.start(), next.state()),
            (c.pid(), c.start(), c.state())
        );
        let wrapped = c.next_generation_after(Claim(63 << GEN_SHIFT));
        assert_eq!(wrapped.generation(), 0);
        let closed = next.with_state(STATE_CLOSED);
        assert_eq!(closed.state(), STATE_CLOSED);
        assert_eq!(closed.pid(), c.pid());
        assert_eq!(closed.generation(), 2);
        assert_eq!(Claim(0).state(), STATE_VACANT);
        // A hostile value with state 3 decodes without panicking.
        assert_eq!(Claim(u64::MAX).state(), 3);
    }

    #[cfg(not(loom))]
    #[test]
    fn magic_spells_shmpipe() {
        assert_eq!(&MAGIC.to_le_bytes(), b"shmpipe\0");
    }
}
