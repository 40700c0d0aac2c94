//! The two barriers of the wake protocol's store→load handshake (see
//! `docs/design.md` §7): a *light* one the publisher pays on every message,
//! and a *heavy* one the side about to sleep pays once per park.
//!
//! Asymmetric mode (Linux 4.16+, where `membarrier(2)` is allowed): the
//! light barrier is a compiler fence (free) and the heavy one is
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which makes every running
//! thread of every process registered with
//! `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` execute a full memory barrier
//! before the call returns (threads not running at that moment have passed
//! one in the context switch). So the publisher's compiler fence is
//! promoted to a full barrier exactly when a waiter needs it, and a busy
//! pair pays nothing.
//!
//! Symmetric mode (membarrier missing or refused, e.g. by a seccomp
//! profile): both barriers are `fence(SeqCst)`, as before.
//!
//! Under loom both barriers are `fence(SeqCst)` (loom has no membarrier);
//! the substitution is sound because membarrier guarantees at least what a
//! `fence(SeqCst)` on the publisher's thread would (design.md §7).
//!
//! # References
//!  - [membarrier(2)](https://man7.org/linux/man-pages/man2/membarrier.2.html)

#![allow(clippy::disallowed_types)]

/// Whether this process takes part in the asymmetric protocol: it
/// registered for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (so a peer's heavy
/// barrier reaches its threads) and may issue it (so its own waits can pay
/// the heavy barrier). Decided once per process (again after `fork`: the
/// registration is not inherited).
#[cfg(not(any(loom, miri)))]
pub(crate) fn asymmetric() -> bool {
    use rustix::thread::{membarrier, membarrier_query, MembarrierCommand};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    // pid << 2 | state; state 1 = symmetric, 2 = asymmetric; 0 = not decided.
    static STATE: AtomicU64 = AtomicU64::new(0);
    let pid = u64::from(std::process::id());
    let s = STATE.load(Relaxed);
    if s != 0 && s >> 2 == pid {
        return s & 3 == 2;
    }
    let supported = membarrier_query().contains_command(MembarrierCommand::GlobalExpedited);
    let ok = supported
        && membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
        // One trial call: a seccomp profile may allow registering and
        // refuse the command itself.
        && membarrier(MembarrierCommand::GlobalExpedited).is_ok();
    STATE.store(pid << 2 | if ok { 2 } else { 1 }, Relaxed);
    ok
}

/// Under Miri (no membarrier shim) the protocol runs symmetric.
#[cfg(all(miri, not(loom)))]
pub(crate) fn asymmetric() -> bool {
    false
}

/// Under loom the asymmetric code paths run, with both barriers modelled
/// as `fence(SeqCst)`.
#[cfg(loom)]
pub(crate) fn asymmetric() -> bool {
    true
}

/// The publisher's barrier, between its index store and its load of the
/// peer's `parked` word. `light` is true when both this process and the
/// peer run asymmetric: then a compiler fence suffices.
#[inline(always)]
pub(crate) fn publisher(light: bool) {
    #[cfg(loom)]
    {
        let _ = light;
        #[cfg(not(shmpipe_bug = "no_publisher_barrier"))]
        loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
    }
    #[cfg(not(loom))]
    {
        if light {
            core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        } else {
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// The waiter's barrier, between its `parked` store and its re-check of
/// the ring. With `heavy` (this process runs asymmetric) it is
/// `membarrier(GLOBAL_EXPEDITED)`. Returns `false` if that call failed: the
/// caller then knows its publisher may have skipped its fence and must not
/// sleep without a timeout.
#[inline]
pub(crate) fn waiter(heavy: bool) -> bool {
    #[cfg(loom)]
    {
        let _ = heavy;
        #[cfg(not(shmpipe_bug = "no_waiter_barrier"))]
        loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
        true
    }
    #[cfg(not(loom))]
    {
        // Always at least a full fence on this thread: it orders the
        // `parked` store before the re-check whatever the peer does.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        if !heavy {
            return true;
        }
        #[cfg(miri)]
        return false;
        #[cfg(not(miri))]
        rustix::thread::membarrier(rustix::thread::MembarrierCommand::GlobalExpedited).is_ok()
    }
}
