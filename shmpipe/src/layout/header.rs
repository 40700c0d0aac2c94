//! The `#[repr(C)]` header at offset 0 of every segment.
//!
//! ```text
//! offset  line (128 B, CachePadded)  written by       read by
//! 0x000   meta                       creator, once    openers (snapshot, validated)
//! 0x080   message type               creator, once    openers (the type fingerprint)
//! 0x100   tail                       producer/msg     consumer when its cache says empty
//! 0x180   head                       consumer/msg     producer when its cache says full
//! 0x200   producer control           producer, rare   consumer after each release
//! 0x280   consumer control           consumer, rare   producer on each send and publish
//! 0x300   producer counters          producer/msg     inspect
//! 0x380   consumer counters          consumer/msg     inspect
//! 0x400   (zero up to `slots_offset`: 1024 B, or one page for a double-mapped ring)
//! slots_offset  slot 0, slot 1, ...  (slot_count x slot_size bytes)
//! ```
//!
//! Offsets are for x86-64, where `CachePadded` is 128 bytes (adjacent-line
//! prefetch pairs 64-byte lines); the header records its own length so that
//! a peer built for another cache-line size is refused, not misread.
//!
//! Each slot starts with a 16-byte header, then the payload at
//! `payload_offset` (a multiple of `payload_align`):
//!
//! ```text
//! +0   u32  length word: low 30 bits the length of a one-slot message;
//!           top 2 bits the mark: 00 whole message in this slot,
//!           01 FIRST slot of a multi-slot message, 10 PAD (skip to the
//!           end of the ring), 11 reserved (corrupt)
//! +4   u32  commit word: commit_value(position) once published
//! +8   u64  FIRST: the message length; PAD: the slots skipped; else unused
//! +payload_offset  payload
//! ```
//!
//! A multi-slot message takes `n` consecutive slots and is one contiguous
//! byte run from the first slot's payload to the end of slot `n - 1`: the
//! later slots carry no header (their header bytes are payload), so a
//! message is always one slice. There are therefore no MIDDLE or LAST
//! marks: the FIRST slot's length says where the message ends.
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
///
/// 3: 16-byte slot headers with fragment marks, payload alignment
/// (`payload_offset`, `payload_align`), a ring-wide `message_limit`,
/// `slots_offset` and the wrap mode (double mapping), and the message-type
/// line (type fingerprint).
pub(crate) const LAYOUT_VERSION: u32 = 3;

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

/// Bytes at the start of each slot: the length word (`u32` at +0, with the
/// mark in its top two bits), the commit word (`u32` at +4,
/// [`commit_value`] of the slot's position once its message is published)
/// and the extent (`u64` at +8: a FIRST slot's message length, a PAD
/// slot's count). See the module docs.
pub(crate) const SLOT_HEADER: usize = 16;
/// Offset of the commit word in a slot.
pub(crate) const SLOT_COMMIT: usize = 4;
/// Offset of the extent word in a slot.
pub(crate) const SLOT_EXTENT: usize = 8;
/// The mark bits of the length word.
pub(crate) const MARK_MASK: u32 = 3 << 30;
/// Mark: the whole message is in this slot (low bits: its length).
pub(crate) const MARK_WHOLE: u32 = 0;
/// Mark: the first slot of a multi-slot message (extent: its length).
pub(crate) const MARK_FIRST: u32 = 1 << 30;
/// Mark: padding to the end of the ring (extent: slots skipped), written
/// by a producer whose ring cannot map messages across the wrap.
pub(crate) const MARK_PAD: u32 = 2 << 30;
/// Smallest payload alignment.
pub(crate) const MIN_PAYLOAD_ALIGN: usize = 8;
/// Default payload alignment.
pub(crate) const DEFAULT_PAYLOAD_ALIGN: usize = 16;
/// Largest payload alignment accepted (one base page).
pub(crate) const MAX_PAYLOAD_ALIGN: usize = 4096;
/// `meta.wrap_mode`: messages never cross the end of the ring; a producer
/// pads to the end instead.
pub(crate) const WRAP_PAD: u32 = 0;
/// `meta.wrap_mode`: the slot area is mapped twice, back to back, by every
/// process, so a message may run across the end of the ring.
pub(crate) const WRAP_DOUBLE_MAP: u32 = 1;
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
    /// Offset of the payload in a slot: `max(SLOT_HEADER, payload_align)`.
    pub(crate) payload_offset: AtomicU32,
    /// Every payload starts at a multiple of this: a power of two,
    /// `MIN_PAYLOAD_ALIGN..=MAX_PAYLOAD_ALIGN`.
    pub(crate) payload_align: AtomicU32,
    /// Largest message, in bytes, over any number of slots: at most
    /// `slot_count * slot_size - payload_offset`.
    pub(crate) message_limit: AtomicU64,
    /// Byte offset of slot 0: at least `header_len`, a multiple of
    /// `payload_align`; one page when `wrap_mode` is [`WRAP_DOUBLE_MAP`].
    pub(crate) slots_offset: AtomicU64,
    /// [`WRAP_PAD`] or [`WRAP_DOUBLE_MAP`].
    pub(crate) wrap_mode: AtomicU32,
    /// Reserved, zero.
    pub(crate) reserved: AtomicU32,
}

/// The message type a ring was created for (all zero: untyped), written
/// once by the creator with the rest of the header.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct TypeLine {
    /// `size_of` the type.
    pub(crate) size: AtomicU64,
    /// A hash of the type's layout; zero for an untyped ring.
    pub(crate) hash: AtomicU64,
    /// `align_of` the type, a power of two (zero: untyped).
    pub(crate) align: AtomicU32,
    /// Reserved, zero.
    pub(crate) reserved: AtomicU32,
    /// The type's name, UTF-8, zero-padded (`fingerprint::NAME_LEN` bytes).
    pub(crate) name: [AtomicU64; 4],
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
    /// This side's notification pipe, for waits on its readiness
    /// descriptor: the read end's descriptor number in this side's process,
    /// plus one (0: none; `notify.rs`, `docs/design.md` §7).
    pub(crate) notify_pipe: AtomicU32,
    /// The name of this side's notification socket (0: none), for waits on
    /// its readiness descriptor where its pipe cannot be used.
    pub(crate) notify_id: AtomicU64,
    /// The inode number of the pipe named by `notify_pipe`.
    pub(crate) notify_pipe_ino: AtomicU64,
}

/// `parked` bit: the side sleeps (or is about to) on its futex.
pub(crate) const PARKED_FUTEX: u32 = 1;
/// `parked` bit: the side waits on its readiness descriptor; a publisher
/// writes a byte to its notification pipe (`notify_pipe`) or socket
/// (`notify_id`).
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
/// - the messages in `head..tail` are committed: each starts in a slot
///   whose commit word is its position's, holds a whole message (length at
///   most `payload_capacity`), the FIRST slot of one spanning `n` slots
///   (length at most `message_limit`, in `n` slots) or a PAD to the end of
///   the ring;
/// - only the producer writes `tail`, the slots in `tail..head + slot_count`
///   and the producer lines; only the consumer writes `head` and the
///   consumer lines;
/// - `meta` never changes after `init_state == INIT_READY`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RingHeader {
    pub(crate) meta: CachePadded<Meta>,
    pub(crate) message_type: CachePadded<TypeLine>,
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
    assert!(size_of::<TypeLine>() == 56);
    assert!(SLOT_HEADER <= SLOT_ALIGN);
    // `error::Geometry::max_message` states the slot header's size.
    assert!(SLOT_HEADER == 16);
    assert!(size_of::<ControlLine>() == 40);
    assert!(size_of::<StatsLine>() == 56);
    assert!(HEADER_LEN % SLOT_ALIGN == 0);
    assert!(align_of::<RingHeader>() <= 4096);
    // The index lines and control lines never share a cache line.
    assert!(offset_of!(RingHeader, head) - offset_of!(RingHeader, tail) >= 64);
    assert!(offset_of!(RingHeader, producer) - offset_of!(RingHeader, head) >= 64);
    #[cfg(target_arch = "x86_64")]
    assert!(HEADER_LEN == 8 * 128);
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
