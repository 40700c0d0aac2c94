//! What a ring looks like from outside: [`RingInfo`], [`SideInfo`],
//! [`SideState`] and [`Stats`], read from the shared header as a snapshot
//! (for `shmpipe inspect`, monitoring, tests).

use std::path::PathBuf;

use crate::fingerprint::TypeFingerprint;
use crate::layout::{Claim, ControlLine, StatsLine, STATE_ATTACHED, STATE_CLOSED, STATE_VACANT};
use crate::liveness::ProcessWatch;
use crate::mapping::Mapping;
use crate::segment::Backend;
use crate::sync::Ordering::Relaxed;

/// Counters kept by one side of a ring, also visible to other processes
/// through [`Ring::info`](crate::Ring::info).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages sent (producer) or received (consumer).
    pub messages: u64,
    /// Payload bytes sent or received.
    pub bytes: u64,
    /// Operations that found the ring full (producer) or empty (consumer).
    pub stalls: u64,
    /// Times this side slept on its futex.
    pub futex_waits: u64,
    /// Times this side woke its parked peer.
    pub futex_wakes: u64,
    /// Spin iterations spent waiting before parking.
    pub spin_rounds: u64,
    /// Sleeps that ended by their timeout (the heartbeat or the caller's
    /// deadline) rather than by a wake from the peer. While messages keep
    /// arriving this stays 0: a timed-out sleep with data waiting would be a
    /// late wake-up.
    pub wait_timeouts: u64,
}

impl Stats {
    pub(crate) fn load(c: &StatsLine) -> Stats {
        Stats {
            messages: c.messages.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            stalls: c.stalls.load(Relaxed),
            futex_waits: c.futex_waits.load(Relaxed),
            futex_wakes: c.futex_wakes.load(Relaxed),
            spin_rounds: c.spin_rounds.load(Relaxed),
            wait_timeouts: c.wait_timeouts.load(Relaxed),
        }
    }
}

/// Who holds one side of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SideState {
    /// Nobody has held it yet.
    Vacant,
    /// A process holds it. `alive` is false if it died without releasing
    /// it (the side can then be taken over).
    Attached {
        /// The holder's process id.
        pid: u32,
        /// Whether that process is still running (zombies count as dead).
        alive: bool,
    },
    /// The last holder dropped its handle.
    Closed {
        /// The last holder's process id.
        pid: u32,
    },
    /// The claim word holds a state no correct process writes.
    Invalid {
        /// The state found.
        state: u64,
    },
}

/// One side's state and counters, in [`RingInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SideInfo {
    /// Who holds it.
    pub state: SideState,
    /// Whether it is asleep (or about to sleep) on its futex.
    pub parked: bool,
    /// Which barrier its waits pay, as it declared when it claimed the side
    /// (meaningful while it is attached).
    pub barrier: WakeBarrier,
    /// Its counters.
    pub stats: Stats,
}

/// How the wake protocol's store→load handshake is paid for a side (see
/// `docs/design.md` §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WakeBarrier {
    /// Asymmetric: the side pays `membarrier(2)` before it sleeps, so its
    /// peer publishes with no fence at all.
    Membarrier,
    /// Symmetric: membarrier is unavailable to this side's process, so its
    /// peer fences after every index store it makes for it.
    Fence,
}

impl std::fmt::Display for WakeBarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WakeBarrier::Membarrier => "membarrier",
            WakeBarrier::Fence => "fence",
        })
    }
}

/// A snapshot of a ring, from [`Ring::info`](crate::Ring::info).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingInfo {
    /// The ring's address (`shm:x`, `file:/p`, `memfd:x`, `heap`).
    pub address: String,
    /// What backs it.
    pub backend: Backend,
    /// Where it lives in the file system (`/dev/shm/NAME`, a hugetlbfs
    /// path, a file), if anywhere.
    pub path: Option<PathBuf>,
    /// The System V segment id, for System V rings.
    pub sysv_id: Option<i32>,
    /// Processes attached to a System V segment (`shm_nattch`).
    pub attach_count: Option<u64>,
    /// Permission bits of the segment (`0o600`, ...), when known.
    pub mode: Option<u32>,
    /// The segment's owner (user id), when known.
    pub owner: Option<u32>,
    /// The page size of the mapping in bytes: the huge page size for
    /// hugetlbfs files, hugetlb memfds and `SHM_HUGETLB` segments, the base
    /// page size otherwise (`KernelPageSize` in `/proc/self/smaps` agrees;
    /// the tests check it there).
    pub page_size: u64,
    /// Why huge pages were preferred but not used ([`HugePages::Prefer`](crate::HugePages::Prefer)
    /// falling back), as seen by the process that created the ring.
    pub huge_page_fallback: Option<String>,
    /// Bytes mapped (the segment, rounded up to whole pages).
    pub mapped_len: u64,
    /// Number of slots.
    pub slots: u64,
    /// Bytes per slot, including the 16-byte slot header.
    pub slot_size: u64,
    /// Largest message in one slot, in bytes.
    pub max_message: u64,
    /// Largest message over any number of slots, in bytes.
    pub message_limit: u64,
    /// Every payload starts at an address that is a multiple of this.
    pub payload_align: u64,
    /// Offset of the payload in a slot.
    pub payload_offset: u64,
    /// Whether a message may cross the end of the ring as one slice (the
    /// slot area is mapped twice, back to back); if not, a producer pads to
    /// the end of the ring instead, and every message is still one slice.
    pub contiguous_wrap: bool,
    /// The message type the ring was created for, if any.
    pub fingerprint: Option<TypeFingerprint>,
    /// Header plus slots, in bytes.
    pub total_len: u64,
    /// The process that created the ring.
    pub creator_pid: u32,
    /// Whether that process is still alive.
    pub creator_alive: bool,
    /// The consumer's position (messages released).
    pub head: u64,
    /// The producer's position (messages committed).
    pub tail: u64,
    /// The producer side.
    pub producer: SideInfo,
    /// The consumer side.
    pub consumer: SideInfo,
}

impl RingInfo {
    /// Reads a snapshot of the ring mapped by `s`.
    pub(crate) fn read(s: &Mapping) -> RingInfo {
        let hdr = s.view.header();
        // Relaxed throughout: a snapshot for people and tools; no data is
        // read on the strength of these values.
        let head = hdr.head.load(Relaxed);
        let tail = hdr.tail.load(Relaxed);
        let side = |ctl: &ControlLine, stats| {
            let claim = Claim(ctl.claim.load(Relaxed));
            let state = match claim.state() {
                STATE_VACANT => SideState::Vacant,
                STATE_ATTACHED => SideState::Attached {
                    pid: claim.pid(),
                    alive: s.process_local || ProcessWatch::default().is_alive(claim),
                },
                STATE_CLOSED => SideState::Closed { pid: claim.pid() },
                other => SideState::Invalid { state: other },
            };
            SideInfo {
                state,
                parked: ctl.parked.load(Relaxed) != 0,
                barrier: if ctl.needs_fence.load(Relaxed) == 0 {
                    WakeBarrier::Membarrier
                } else {
                    WakeBarrier::Fence
                },
                stats: Stats::load(stats),
            }
        };
        let creator_pid = hdr.meta.creator_pid.load(Relaxed);
        let creator_start = hdr.meta.creator_start.load(Relaxed);
        let creator_alive = creator_pid != 0
            && (s.process_local
                || ProcessWatch::default().is_alive(Claim::new(
                    STATE_ATTACHED,
                    creator_pid,
                    creator_start,
                )));
        RingInfo {
            address: s.label.clone(),
            backend: s.segment.backend(),
            path: s.segment.path().map(PathBuf::from),
            sysv_id: s.segment.sysv_id(),
            attach_count: s.segment.attach_count(),
            mode: s.segment.mode(),
            owner: s.segment.owner(),
            page_size: s.page_size,
            huge_page_fallback: s.segment.huge_fallback().map(str::to_owned),
            mapped_len: s.segment.len() as u64,
            slots: s.geometry.slot_count,
            slot_size: s.geometry.slot_size as u64,
            max_message: s.view.payload_capacity() as u64,
            message_limit: s.geometry.message_limit,
            payload_align: s.geometry.payload_align as u64,
            payload_offset: s.geometry.payload_offset as u64,
            contiguous_wrap: s.geometry.double_map,
            fingerprint: s.fingerprint.clone(),
            total_len: s.geometry.total_len().unwrap_or(0),
            creator_pid,
            creator_alive,
            head,
            tail,
            producer: side(&hdr.producer, &hdr.producer_stats),
            consumer: side(&hdr.consumer, &hdr.consumer_stats),
        }
    }

    /// Messages waiting (`tail - head`), or `None` if the indices are
    /// inconsistent.
    pub fn len(&self) -> Option<u64> {
        self.tail
            .checked_sub(self.head)
            .filter(|&n| n <= self.slots)
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}
