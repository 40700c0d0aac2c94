//! The wake protocol: how a side with nothing to do sleeps in the kernel,
//! and how its peer wakes it without a system call when nobody sleeps.
//!
//! Each side has a control line with a `parked` flag and an `event` futex
//! word. The consumer sleeps on its own `event` waiting for data; the
//! producer sleeps on its own `event` waiting for space. The state of one
//! direction, seen from the waiter `W` and the publisher `P`:
//!
//! ```text
//! parked | W is ...                          | P after publishing
//! -------+-----------------------------------+-------------------------------
//!   0    | running (or spinning)             | fence(SeqCst); sees 0: no syscall
//!   1    | announced: between its fence and  | fence(SeqCst); sees 1: bumps
//!        | its re-check, or inside           | `event` and FUTEX_WAKEs; W's
//!        | FUTEX_WAIT(event, ev)             | wait returns (or fails with
//!        |                                   | EAGAIN because event != ev)
//! ```
//!
//! Waiter `W` (`block`): read `ev = event` (Acquire), store `parked = 1`,
//! **fence F1 (SeqCst)**, re-check the ring, then `FUTEX_WAIT(event, ev,
//! timeout)`. Publisher `P` (`notify`): store the index (Release), **fence
//! F2 (SeqCst)**, load `parked`; if 1, bump `event` (Release) and
//! `FUTEX_WAKE`.
//!
//! No wakeup is lost. F1 and F2 are totally ordered. If F2 comes first, W's
//! re-check after F1 sees P's index store and W does not sleep. If F1 comes
//! first, P's load after F2 sees `parked = 1`, so P bumps `event`; W read
//! `ev` before F1, so either W's `FUTEX_WAIT` finds `event != ev` and
//! returns at once, or W is already asleep and P's wake reaches it. (If W's
//! read of `ev` already saw the bump, it synchronised with P's Release bump,
//! which follows P's index store, so W's re-check sees the index.) Every
//! sleep also has a timeout, so even a peer that breaks the protocol costs
//! at most one heartbeat, never a hang.
//!
//! While both sides are busy `parked` stays 0 and publishing costs one
//! fence and one load of a read-mostly line: no system call.

use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use crate::layout::{ControlLine, StatsLine};
use crate::sync::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::sync::{fence, spin_loop, yield_now, WaitOutcome};

/// How a blocking call waits for its peer.
///
/// | strategy | latency | CPU while waiting |
/// |---|---|---|
/// | [`Spin`](WaitStrategy::Spin) | lowest (a cache-line transfer) | one full core |
/// | [`SpinThenPark`](WaitStrategy::SpinThenPark) (default) | as `Spin` while messages keep coming, a futex wake after a pause | none once parked |
/// | [`Park`](WaitStrategy::Park) | a futex wake (tens of µs in a VM) | none |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Busy-spin until the peer acts or the deadline passes. Never sleeps in
    /// the kernel; burns a core.
    Spin,
    /// Spin (with exponential backoff, then yielding) for `spin`, then
    /// sleep on a futex until woken.
    SpinThenPark {
        /// How long to spin before parking. About one park-plus-wake round
        /// trip is a good value.
        spin: Duration,
    },
    /// Sleep on the futex at once.
    Park,
}

impl WaitStrategy {
    /// The default: spin for 50 µs, then park.
    pub const DEFAULT: WaitStrategy = WaitStrategy::SpinThenPark {
        spin: Duration::from_micros(50),
    };
}

impl Default for WaitStrategy {
    fn default() -> Self {
        WaitStrategy::DEFAULT
    }
}

/// How a handle waits, and how often it checks that its peer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaitConfig {
    pub(crate) strategy: WaitStrategy,
    /// A blocked side checks its peer's liveness this often, so a dead peer
    /// is noticed within this bound.
    pub(crate) heartbeat: Duration,
}

impl Default for WaitConfig {
    fn default() -> Self {
        WaitConfig {
            strategy: WaitStrategy::DEFAULT,
            heartbeat: Duration::from_millis(100),
        }
    }
}

/// Work done while waiting, added to the side's shared counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WaitStats {
    pub(crate) spins: u64,
    pub(crate) futex_waits: u64,
}

/// Iterations between clock reads while busy-spinning.
const SPINS_PER_CLOCK_READ: u32 = 64;

/// Plain spins before the first clock read (about 1-3 µs).
const QUICK_SPINS: u32 = 64;

/// Waits until `poll` returns `Some`, or `deadline` passes (`None`).
///
/// `poll(check_peer)` re-checks the ring; with `check_peer` set (once per
/// heartbeat) it also checks whether the peer is alive. `own` is the
/// waiting side's control line.
pub(crate) fn block<T>(
    own: &ControlLine,
    own_stats: &StatsLine,
    cfg: &WaitConfig,
    deadline: Option<Instant>,
    counts: &mut WaitStats,
    mut poll: impl FnMut(bool) -> Option<T>,
) -> Option<T> {
    // Phase 0: a burst of plain spinning, before any clock read or backoff.
    // A busy peer usually answers within a few hundred nanoseconds, and both
    // would add to every such wait (measured: 10-40 ns for the clock, 50-90
    // ns for the backoff, on a 300 ns round trip). Skipped when the deadline
    // has already passed, so that such a call returns at once.
    if cfg.strategy != WaitStrategy::Park && !cfg!(loom) {
        let past = deadline.is_some_and(|d| Instant::now() >= d);
        if !past {
            for i in 0..QUICK_SPINS {
                if let Some(r) = poll(false) {
                    counts.spins += u64::from(i);
                    return Some(r);
                }
                spin_loop();
            }
            counts.spins += u64::from(QUICK_SPINS);
        }
    }
    let start = Instant::now();
    let mut next_beat = start + cfg.heartbeat;
    let beat_due = |now: Instant, next_beat: &mut Instant| {
        if now >= *next_beat {
            *next_beat = now + cfg.heartbeat;
            true
        } else {
            false
        }
    };

    // Phase 1: spin.
    let spin_until = match cfg.strategy {
        WaitStrategy::Spin => None,
        WaitStrategy::SpinThenPark { spin } => Some(start + spin),
        WaitStrategy::Park => Some(start),
    };
    if spin_until != Some(start) {
        let backoff = Backoff::new();
        let mut n: u32 = 0;
        loop {
            n = n.wrapping_add(1);
            // Read the clock every iteration once backoff yields (a yield
            // costs far more), every few iterations while it spins.
            if backoff.is_completed() || n % SPINS_PER_CLOCK_READ == 0 {
                let now = Instant::now();
                let beat = beat_due(now, &mut next_beat);
                if let Some(r) = poll(beat) {
                    return Some(r);
                }
                if deadline.is_some_and(|d| now >= d) {
                    return None;
                }
                if spin_until.is_some_and(|s| now >= s) {
                    break;
                }
            } else if let Some(r) = poll(false) {
                return Some(r);
            }
            counts.spins += 1;
            match cfg.strategy {
                WaitStrategy::Spin => spin_loop(),
                // Backoff yields through std, which loom cannot see.
                _ if cfg!(loom) || backoff.is_completed() => yield_now(),
                _ => backoff.snooze(),
            }
        }
    }

    // Phase 2: park. Publish the spinning done so far first (the handle
    // stores the same total again when the call returns).
    if counts.spins > 0 {
        own_stats.spin_rounds.store(
            own_stats
                .spin_rounds
                .load(Relaxed)
                .wrapping_add(counts.spins),
            Relaxed,
        );
    }
    loop {
        let now = Instant::now();
        let beat = beat_due(now, &mut next_beat);
        // ORDERING: Acquire; pairs with the Release bump in `notify`. Read
        // before announcing, so a bump after this read makes FUTEX_WAIT
        // return at once (see the module docs).
        let ev = own.event.load(Acquire);
        own.parked.store(1, Relaxed);
        // FENCE F1: pairs with F2 in `notify`. Orders the `parked` store
        // before the ring re-check in `poll`.
        fence(SeqCst);
        if let Some(r) = poll(beat) {
            own.parked.store(0, Relaxed);
            return Some(r);
        }
        let now = Instant::now();
        let mut timeout = next_beat.saturating_duration_since(now);
        if let Some(d) = deadline {
            if now >= d {
                own.parked.store(0, Relaxed);
                return None;
            }
            timeout = timeout.min(d - now);
        }
        counts.futex_waits += 1;
        // Published before sleeping, so that an inspector sees the wait
        // while it lasts. Single writer: load + store, no RMW.
        own_stats
            .futex_waits
            .store(own_stats.futex_waits.load(Relaxed).wrapping_add(1), Relaxed);
        match own
            .event
            .wait(ev, Some(timeout.max(Duration::from_micros(1))))
        {
            WaitOutcome::Woken | WaitOutcome::TimedOut | WaitOutcome::Interrupted => {}
        }
    }
}

/// Called by a publisher after storing its index: wakes the peer if it is
/// parked. Returns whether a wake was issued.
#[inline]
pub(crate) fn notify(peer: &ControlLine) -> bool {
    // FENCE F2: pairs with F1 in `block`. Orders the index store just made
    // before the `parked` load below.
    fence(SeqCst);
    if peer.parked.load(Relaxed) == 0 {
        return false;
    }
    wake(peer);
    true
}

#[cold]
fn wake(peer: &ControlLine) {
    // ORDERING: Release; pairs with the Acquire `event` load in `block`, so
    // a waiter that reads this bump also sees the index stored before it.
    peer.event.fetch_add(1, Release);
    peer.event.wake_all();
}
