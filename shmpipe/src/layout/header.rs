//! The `#[repr(C)]` header at offset 0 of every segment.
//!
//! ```text
//! offset  line (128 B, CachePadded)  written by       read by
//! 0x000   meta                       creator, once    openers (snapshot, validated)
//! 0x080   tail                       producer/msg     consumer when its cache says empty
//! 0x100   head                       consumer/msg     producer when its cache says full
//! 0x180   producer control           producer, rare   consumer after each release
//! 0x200   consumer control           consumer, rare   producer on each send and publish
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

use crate::sync::Ordering::Relaxed;
use crate::sync::{AtomicU32, AtomicU64, Futex};

/// `b"shmpipe\0"` read as a little-endian `u64`.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"shmpipe\0");

/// Bumped on any change to the shared layout or protocol.
///
/// 2: slot commit words, the control line's barrier and notification
/// fields, at most 2^31 slots.
pub(crate) const LAYOUT_VERSION: u32 = 2;

/// `meta.init_state`: zero-filled memory, nobody has started.
pub(crate) const INIT_EMPTY: u32 = 0;
/// `meta.init_state`: the creator is writing the header.
pub(crate) const INIT_BUSY: u32 = 1;
/// `meta.init_state`: the header is complete; openers may read it.
pub(crate) const INIT_READY: u32 = 2;

/// `meta.flags`: the ring was removed (`Ring::remove`); both sides' waits
/// end with a `Removed` error. Set once, after the name is gone, and
/// never cleared.
pub(crate) const FLAG_REMOVED: u32 = 1;
/// The flag bits this version knows; any other set bit is corruption.
pub(crate) const KNOWN_FLAGS: u32 = FLAG_REMOVED;

/// Linux pids stay below this (`PID_MAX_LIMIT`, 2^22 on 64-bit kernels,
/// the largest `kernel.pid_max` accepts); a larger pid in the header is
/// corruption.
pub(crate) const PID_MAX_LIMIT: u32 = 1 << 22;

/// Bytes at the start of each slot: the message length (`u32` at +0; its
/// top two bits are reserved, zero) and the commit word (`u32` at +4,
/// [`commit_value`] of the slot's position once its message is published).
pub(crate) const SLOT_HEADER: usize = 8;
/// Offset of the commit word in a slot.
pub(crate) const SLOT_COMMIT: usize = 4;
/// Slot sizes are multiples of this, so slots never share a cache line.
pub(crate) const SLOT_ALIGN: usize = 64;
/// Largest slot accepted, 1 GiB.
pub(crate) const MAX_SLOT_SIZE: usize = 1 << 30;
/// Largest slot count accepted, 2^31: the commit word holds a position
/// modulo 2^32, and a slot's previous commit (one lap back) must differ
/// from the one a reader waits for.
pub(crate) const MAX_SLOTS: u64 = 1 << 31;
/// Largest whole segment accepted, 1 TiB.
pub(crate) const MAX_TOTAL_LEN: u64 = 1 << 40;

/// Geometry and identity, written once by the creator before
/// `init_state = INIT_READY` and read-only afterwards, but for
/// [`FLAG_REMOVED`] in `flags`.
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
    /// Process that created the ring, below [`PID_MAX_LIMIT`].
    pub(crate) creator_pid: AtomicU32,
    /// Flag bits; only [`KNOWN_FLAGS`] may be set, the rest are reserved
    /// (zero).
    pub(crate) flags: AtomicU32,
    /// Start time of the creator (see [`Claim`]), so that a stale ring can
    /// be told from one whose creator is still setting it up.
    pub(crate) creator_start: AtomicU64,
    /// The message type's fingerprint (`TypeFingerprint`): size, alignment
    /// and name hash; all zero for an untyped ring.
    pub(crate) message_type: [AtomicU64; 3],
}

/// One side's control line: its claim, and the wake state of the futex it
/// sleeps on. Written rarely (claim, close, park), so the peer's reads of it
/// on every operation stay cache hits.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct ControlLine {
    /// Who holds this side: see [`Claim`].
    pub(crate) claim: AtomicU64,
    /// Non-zero while this side is (about to be) asleep: [`PARKED_FUTEX`]
    /// on `event`, [`PARKED_NOTIFY`] on its readiness descriptor; see the
    /// wake protocol in `docs/design.md` §7.
    pub(crate) parked: AtomicU32,
    /// The futex word this side sleeps on; the peer bumps it to wake it.
    pub(crate) event: Futex,
    /// 1 if this side's waits cannot pay the heavy (membarrier) barrier, so
    /// a publisher must fence after every index store it makes for it; 0 if
    /// they do (`sync::barrier`).
    pub(crate) needs_fence: AtomicU32,
    /// Reserved, zero.
    pub(crate) reserved: AtomicU32,
    /// The name of this side's notification socket (0: none), for waits on
    /// its readiness descriptor (`notify.rs`, `docs/design.md` §7).
    pub(crate) notify_id: AtomicU64,
}

/// `parked` bit: the side sleeps (or is about to) on its futex.
pub(crate) const PARKED_FUTEX: u32 = 1;
/// `parked` bit: the side waits on its readiness descriptor; a publisher
/// sends a datagram to its notification socket (`notify_id`).
pub(crate) const PARKED_NOTIFY: u32 = 2;

/// The commit word a slot holds once the message at `pos` is published:
/// the low 32 bits of `pos + 1` (so a zero-filled slot is not committed).
#[inline]
pub(crate) fn commit_value(pos: u64) -> u32 {
    pos.wrapping_add(1) as u32
}

/// Statistics written by one side only (plain stores of process-local
/// totals), on their own line so they never disturb the index lines.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct StatsLine {
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
    /// `FUTEX_WAIT` calls that ended by their timeout, not by a wake.
    pub(crate) wait_timeouts: AtomicU64,
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
    pub(crate) producer: CachePadded<ControlLine>,
    pub(crate) consumer: CachePadded<ControlLine>,
    pub(crate) producer_stats: CachePadded<StatsLine>,
    pub(crate) consumer_stats: CachePadded<StatsLine>,
}

/// Byte offset of slot 0.
pub(crate) const HEADER_LEN: usize = core::mem::size_of::<RingHeader>();

impl RingHeader {
    /// Whether [`FLAG_REMOVED`] is set. Read on the wait paths only (an
    /// empty or full ring), never per message.
    pub(crate) fn is_removed(&self) -> bool {
        // Relaxed: nothing is read on the strength of the flag. A waiter
        // that parked sees it: the remover sets it before the full barrier
        // B2 in `wake::notify`, the waiter reads it after B1 in `wake::block`.
        self.meta.flags.load(Relaxed) & FLAG_REMOVED != 0
    }
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Meta>() <= 128);
    assert!(size_of::<ControlLine>() == 32);
    assert!(size_of::<StatsLine>() == 56);
    assert!(HEADER_LEN % SLOT_ALIGN == 0);
    assert!(align_of::<RingHeader>() <= 4096);
    // The index lines and control lines never share a cache line.
    assert!(offset_of!(RingHeader, head) - offset_of!(RingHeader, tail) >= 64);
    assert!(offset_of!(RingHeader, producer) - offset_of!(RingHeader, head) >= 64);
    #[cfg(target_arch = "x86_64")]
    assert!(HEADER_LEN == 7 * 128);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(loom))]
    #[test]
    fn magic_spells_shmpipe() {
        assert_eq!(&MAGIC.to_le_bytes(), b"shmpipe\0");
    }
}
