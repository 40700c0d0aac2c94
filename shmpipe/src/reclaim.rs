//! The reclaim policy: whether an existing ring may be replaced because
//! nothing can use it any more (its creator and every holder are dead),
//! and the removal itself, safe against other reclaimers and creators
//! racing for the same name (`segment::lock_for_reclaim`).

use std::ptr::NonNull;
use std::time::Duration;

use crate::address::Address;
use crate::error::Error;
use crate::layout::{self, Claim, RingHeader, STATE_ATTACHED};
use crate::liveness::ProcessWatch;
use crate::mapping;
use crate::segment::{self, Segment, SegmentOptions, TryReclaim};
use crate::side::Side;
use crate::sync::Ordering::Relaxed;

/// Who, if anyone, keeps an existing ring alive.
pub(crate) enum Staleness {
    /// Its creator and every holder are dead (or it never got a header).
    Stale,
    /// Its creator lives.
    Creator,
    /// A side is held by a live process.
    Held(Side, u32),
}

/// What [`reclaim`] did.
pub(crate) enum Reclaim {
    /// The stale ring's name was removed, or nothing was there: the name
    /// is free to create.
    Free,
    /// Someone keeps it: its creator holds it (creating or using it),
    /// another reclaimer is judging it, or the name changed under us.
    Busy,
    /// It is not stale.
    Live(Staleness),
}

/// Removes the ring at `address` if it is stale, holding the reclaim lock
/// while judging it so that no ring created meanwhile is removed. Never
/// removes a segment that is not a shmpipe ring (that is `BadMagic`).
pub(crate) fn reclaim(address: &Address) -> Result<Reclaim, Error> {
    let lock = match segment::lock_for_reclaim(address)? {
        TryReclaim::Locked(l) => l,
        // Not ours to judge; but say who holds a side, if anyone does.
        TryReclaim::Busy => {
            return Ok(match staleness(address) {
                Ok(held @ Staleness::Held(..)) => Reclaim::Live(held),
                _ => Reclaim::Busy,
            })
        }
        TryReclaim::Gone => return Ok(Reclaim::Free),
    };
    let judged = match staleness(address) {
        Err(Error::NotFound { .. }) => return Ok(Reclaim::Free),
        r => r?,
    };
    if !lock.still_named() {
        return Ok(Reclaim::Busy);
    }
    match judged {
        Staleness::Stale => {
            // A System V creator between `shmget` and publishing its header
            // holds no lock: the kernel's creator pid tells.
            if let Some(cpid) = lock.sysv_creator() {
                if cpid != std::process::id()
                    && crate::liveness::proc_stat(cpid).is_some_and(|s| s.state != b'Z')
                    && !header_ready(address)
                {
                    return Ok(Reclaim::Live(Staleness::Creator));
                }
            }
            Ok(if lock.unlink()? {
                Reclaim::Free
            } else {
                Reclaim::Busy
            })
        }
        live => Ok(Reclaim::Live(live)),
    }
}

/// Whether the ring at `address` has a published header.
fn header_ready(address: &Address) -> bool {
    let opts = SegmentOptions {
        read_only: true,
        open_timeout: Duration::from_millis(10),
        ..mapping::segment_options()
    };
    let Ok(segment) = Segment::open(address, &opts) else {
        return false;
    };
    ready_now(&segment)
}

#[cfg(not(loom))]
fn ready_now(segment: &Segment) -> bool {
    let base = NonNull::new(segment.base()).expect("mappings are never null");
    // SAFETY: as in `staleness_of`: at least HEADER_LEN bytes of atomics.
    let hdr: &RingHeader = unsafe { base.cast::<RingHeader>().as_ref() };
    layout::wait_ready(hdr, "", Duration::ZERO).is_ok()
}

#[cfg(loom)]
fn ready_now(_segment: &Segment) -> bool {
    true
}

/// Decides whether the ring at `address` may be reclaimed. Never says
/// `Stale` for a segment that is not a shmpipe ring (that is `BadMagic`).
pub(crate) fn staleness(address: &Address) -> Result<Staleness, Error> {
    let opts = SegmentOptions {
        read_only: true,
        open_timeout: Duration::from_millis(100),
        ..mapping::segment_options()
    };
    let segment = match Segment::open(address, &opts) {
        Ok(s) => s,
        // Never sized past the header: its creator died before writing one.
        Err(Error::NotInitialized { .. }) => return Ok(Staleness::Stale),
        Err(e) => return Err(e),
    };
    staleness_of(&segment, &address.to_string())
}

#[cfg(not(loom))]
pub(crate) fn staleness_of(segment: &Segment, label: &str) -> Result<Staleness, Error> {
    let base = NonNull::new(segment.base()).expect("mappings are never null");
    // SAFETY: `Segment::open` guarantees at least HEADER_LEN bytes; every
    // header field is an atomic, valid for any bit pattern, and the mapping
    // outlives this function.
    let hdr: &RingHeader = unsafe { base.cast::<RingHeader>().as_ref() };
    // A creator that is still initialising gets a moment to finish; either
    // way only the identities below decide.
    match layout::wait_ready(hdr, label, Duration::from_millis(100)) {
        Ok(()) | Err(Error::NotInitialized { .. }) => {}
        Err(e) => return Err(e),
    }
    let creator = hdr.meta.creator_pid.load(Relaxed);
    let start = hdr.meta.creator_start.load(Relaxed);
    if creator != 0 && ProcessWatch::default().is_alive(Claim::new(STATE_ATTACHED, creator, start))
    {
        return Ok(Staleness::Creator);
    }
    for (role, ctl) in [
        (Side::Producer, &hdr.producer),
        (Side::Consumer, &hdr.consumer),
    ] {
        // Relaxed: only the identity is needed; liveness comes from the OS.
        let c = Claim(ctl.claim.load(Relaxed));
        if c.state() == STATE_ATTACHED && ProcessWatch::default().is_alive(c) {
            return Ok(Staleness::Held(role, c.pid()));
        }
    }
    Ok(Staleness::Stale)
}

#[cfg(loom)]
pub(crate) fn staleness_of(_segment: &Segment, _label: &str) -> Result<Staleness, Error> {
    Ok(Staleness::Stale)
}
