//! The reclaim policy: whether an existing ring may be replaced because
//! nothing can use it any more (its creator and every holder are dead).

use std::ptr::NonNull;
use std::time::Duration;

use crate::address::Address;
use crate::error::Error;
use crate::layout::{self, Claim, RingHeader, STATE_ATTACHED};
use crate::liveness::ProcessWatch;
use crate::mapping;
use crate::segment::{Segment, SegmentOptions};
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
fn staleness_of(segment: &Segment, label: &str) -> Result<Staleness, Error> {
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
fn staleness_of(_segment: &Segment, _label: &str) -> Result<Staleness, Error> {
    Ok(Staleness::Stale)
}
