//! The wake protocol: how a side with nothing to do sleeps in the kernel,
//! and how its peer wakes it without a system call when nobody sleeps.
//!
//! Each side has a control line with a `parked` word and an `event` futex
//! word. The consumer sleeps on its own `event` waiting for data; the
//! producer sleeps on its own `event` waiting for space. The state of one
//! direction, seen from the waiter `W` and the publisher `P`:
//!
//! ```text
//! parked | W is ...                          | P after publishing
//! -------+-----------------------------------+-------------------------------
//!   0    | running (or spinning)             | barrier B2; sees 0: no syscall
//!   1    | announced: between its barrier B1 | barrier B2; sees 1: bumps
//!        | and its re-check, or inside       | `event` and FUTEX_WAKEs; W's
//!        | FUTEX_WAIT(event, ev)             | wait returns (or fails with
//!        |                                   | EAGAIN because event != ev)
//! ```
//!
//! Waiter `W` (`block`): read `ev = event` (Acquire), store `parked = 1`,
//! **barrier B1**, re-check the ring, then `FUTEX_WAIT(event, ev,
//! timeout)`. Publisher `P` (`notify`): store the index (Release), **barrier
//! B2**, load `parked`; if set, bump `event` (Release) and `FUTEX_WAKE`.
//!
//! B1 and B2 are a store→load handshake (Dekker): each side's store must be
//! visible before its load. Symmetric mode: both are `fence(SeqCst)`.
//! Asymmetric mode (both processes registered for membarrier): B2 is a
//! compiler fence, free on a busy path, and B1 is
//! `membarrier(GLOBAL_EXPEDITED)`, which runs a full barrier on P's CPU
//! (or finds P between context switches, which are barriers). Each side
//! declares in its control line (`needs_fence`) whether its waits pay the
//! heavy barrier; a publisher skips its fence only for a peer that does.
//!
//! No wakeup is lost. The two barriers are ordered (membarrier acts as a
//! `fence(SeqCst)` executed on P's thread at a point between P's store and
//! P's load, or before P's store, or after P's load). If B2's effect comes
//! first, W's re-check after B1 sees P's index store and W does not sleep.
//! If B1 comes first, P's load after B2 sees `parked = 1`, so P bumps
//! `event`; W read `ev` before B1, so either W's `FUTEX_WAIT` finds `event
//! != ev` and returns at once, or W is already asleep and P's wake reaches
//! it. Every sleep also has a timeout, so even a peer that breaks the
//! protocol costs at most one heartbeat, never a hang. `docs/design.md` §7
//! has the full argument, including the membarrier substitution.
//!
//! While both sides are busy `parked` stays 0 and publishing costs a
//! compiler fence (or one fence) and one load of a read-mostly line: no
//! system call.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use crate::layout::{ControlLine, StatsLine, PARKED_FUTEX, PARKED_NOTIFY};
use crate::notify::{self, Notifier};
use crate::sync::Ordering::{Acquire, Relaxed, Release};
use crate::sync::{barrier, spin_loop, yield_now, WaitOutcome};

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
    /// Spin for `spin`, then sleep on a futex until woken. The spinning
    /// is plain (no system call) where this process may run on two CPUs or
    /// more; on one, it backs off and yields, so that a peer sharing the
    /// CPU gets it.
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
    pub(crate) timeouts: u64,
}

/// Iterations between clock reads while busy-spinning.
const SPINS_PER_CLOCK_READ: u32 = 64;

/// Plain spins before the first clock read (about 1-3 µs).
const QUICK_SPINS: u32 = 64;

/// Whether this process may run on more than one CPU (its affinity mask and
/// cgroup quota, read once): then a spinning side never yields, since its
/// peer has a CPU of its own; on one CPU, spinning without yielding would
/// keep the peer off it for the whole spin budget.
fn several_cpus() -> bool {
    static SEVERAL: OnceLock<bool> = OnceLock::new();
    *SEVERAL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// What one poll of the ring inside [`block`] must do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Poll {
    /// Also check whether the peer is alive (once per heartbeat).
    pub(crate) check_peer: bool,
    /// Re-read the shared index instead of relying on a cached value or a
    /// slot's commit word: the re-check after announcing a sleep, which the
    /// no-lost-wakeup argument is about.
    pub(crate) thorough: bool,
}

impl Poll {
    const QUICK: Poll = Poll {
        check_peer: false,
        thorough: false,
    };
}

/// How a parked side sleeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sleep {
    /// This process pays the heavy barrier before sleeping
    /// (`sync::barrier::asymmetric`).
    pub(crate) asymmetric: bool,
    /// Every sleep ends at the next heartbeat at the latest (the peer's
    /// death is not otherwise noticed, or the protocol runs symmetric).
    pub(crate) bounded: bool,
}

/// Waits until `poll` returns `Some`, or `deadline` passes (`None`).
///
/// `poll` re-checks the ring as [`Poll`] says. `own` is the waiting side's
/// control line; `sleep` says which barrier it pays and whether sleeps end
/// at heartbeats.
pub(crate) fn block<T>(
    own: &ControlLine,
    own_stats: &StatsLine,
    cfg: &WaitConfig,
    sleep: Sleep,
    deadline: Option<Instant>,
    counts: &mut WaitStats,
    mut poll: impl FnMut(Poll) -> Option<T>,
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
                if let Some(r) = poll(Poll::QUICK) {
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
        // Plain spinning for `SpinThenPark` too, where there are CPUs
        // enough: measured, the backoff's growing pauses and its
        // `sched_yield`s cost a busy default-strategy stream a fifth of its
        // throughput (docs/benchmarks.md), and every yield is a system
        // call.
        let plain = cfg.strategy == WaitStrategy::Spin || (!cfg!(loom) && several_cpus());
        let backoff = Backoff::new();
        let mut n: u32 = 0;
        loop {
            n = n.wrapping_add(1);
            // Read the clock every iteration once backoff yields (a yield
            // costs far more), every few iterations while it spins.
            if backoff.is_completed() || n % SPINS_PER_CLOCK_READ == 0 {
                let now = Instant::now();
                let beat = beat_due(now, &mut next_beat);
                if let Some(r) = poll(Poll {
                    check_peer: beat,
                    thorough: false,
                }) {
                    return Some(r);
                }
                if deadline.is_some_and(|d| now >= d) {
                    return None;
                }
                if spin_until.is_some_and(|s| now >= s) {
                    break;
                }
            } else if let Some(r) = poll(Poll::QUICK) {
                return Some(r);
            }
            counts.spins += 1;
            if plain {
                spin_loop();
            } else if cfg!(loom) || backoff.is_completed() {
                // Backoff yields through std, which loom cannot see.
                yield_now();
            } else {
                backoff.snooze();
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
        own.parked.fetch_or(PARKED_FUTEX, Relaxed);
        // BARRIER B1 (heavy): pairs with B2 in `notify`. Orders the `parked`
        // store before the ring re-check in `poll`; in asymmetric mode it
        // also promotes the publisher's compiler fence B2 to a full barrier
        // (membarrier). The result is unused: every sleep below is bounded
        // by the heartbeat either way.
        let _ = barrier::waiter(sleep.asymmetric);
        if let Some(r) = poll(Poll {
            check_peer: beat,
            thorough: true,
        }) {
            own.parked.fetch_and(!PARKED_FUTEX, Relaxed);
            return Some(r);
        }
        let now = Instant::now();
        // Unbounded sleeps (a death watcher covers the peer, and both sides
        // run the asymmetric protocol) end only by a wake or the deadline.
        let mut timeout = sleep
            .bounded
            .then(|| next_beat.saturating_duration_since(now));
        if let Some(d) = deadline {
            if now >= d {
                own.parked.fetch_and(!PARKED_FUTEX, Relaxed);
                return None;
            }
            timeout = Some(timeout.map_or(d - now, |t| t.min(d - now)));
        }
        counts.futex_waits += 1;
        // Published before sleeping, so that an inspector sees the wait
        // while it lasts. Single writer: load + store, no RMW.
        own_stats
            .futex_waits
            .store(own_stats.futex_waits.load(Relaxed).wrapping_add(1), Relaxed);
        match own
            .event
            .wait(ev, timeout.map(|t| t.max(Duration::from_micros(1))))
        {
            WaitOutcome::TimedOut => {
                counts.timeouts += 1;
                own_stats.wait_timeouts.store(
                    own_stats.wait_timeouts.load(Relaxed).wrapping_add(1),
                    Relaxed,
                );
            }
            WaitOutcome::Woken | WaitOutcome::Interrupted => {}
        }
        // Look before announcing again: a wake almost always means the
        // ring has what we wait for, and the announcement's heavy barrier
        // (a membarrier) is only needed before the next sleep. The waker
        // consumed the announcement (`notify`); after a timeout `parked`
        // is still set, and at worst the peer wakes a side that is already
        // awake.
        if let Some(r) = poll(Poll {
            check_peer: false,
            thorough: true,
        }) {
            own.parked.fetch_and(!PARKED_FUTEX, Relaxed);
            return Some(r);
        }
    }
}

/// Called by a publisher after storing its index: wakes the peer if it is
/// parked on its futex. `asymmetric` says whether this process runs the
/// asymmetric protocol (`sync::barrier::asymmetric`). Returns the peer's
/// `parked` bits (0 in the busy case): `PARKED_FUTEX` means a futex wake
/// was issued here, `PARKED_NOTIFY` that the caller must signal the peer's
/// notification inbox.
#[inline(always)]
pub(crate) fn notify(peer: &ControlLine, asymmetric: bool) -> u32 {
    // Relaxed: a mode the peer wrote once when it claimed its side; it sits
    // on the line the `parked` load below reads anyway.
    let light = asymmetric && peer.needs_fence.load(Relaxed) == 0;
    // BARRIER B2 (light): pairs with B1 in `block`. Orders the index store
    // just made before the `parked` load below: a compiler fence when the
    // peer pays membarrier before sleeping, `fence(SeqCst)` otherwise.
    barrier::publisher(light);
    let parked = peer.parked.load(Relaxed);
    if parked == 0 {
        return 0;
    }
    if parked & PARKED_FUTEX != 0 {
        return wake_announced(peer, parked);
    }
    parked
}

/// Consumes the peer's `PARKED_FUTEX` announcement and wakes it: one
/// `FUTEX_WAKE` per announcement, however many messages are published
/// before the woken side runs (it is slow to: a membarrier, a wake-up).
/// Whoever clears the bit wakes; a racing second publisher finds it clear
/// and needs not, as the woken side re-checks everything, and re-announces
/// (barrier B1 and all) before it sleeps again. Returns `parked` without
/// `PARKED_FUTEX` when another cleared it first.
#[cold]
fn wake_announced(peer: &ControlLine, parked: u32) -> u32 {
    // Relaxed: the decision to wake is all it carries; the bump in `wake`
    // is what the waiter's W1 pairs with.
    let was = peer.parked.fetch_and(!PARKED_FUTEX, Relaxed);
    if was & PARKED_FUTEX == 0 {
        return parked & !PARKED_FUTEX;
    }
    // The deliberate bug the loom models must catch (`.ci/run`): the
    // announcement consumed, nobody woken. It shows that the models reach
    // this step with the waiter depending on it.
    if !cfg!(shmpipe_bug = "consume_without_wake") {
        wake(peer);
    }
    parked
}

/// [`notify`], and also signals the peer's notification inbox when it
/// waits on its readiness descriptor. Returns whether it was asleep on its
/// futex.
#[inline(always)]
pub(crate) fn notify_any(peer: &ControlLine, asymmetric: bool, notifier: &mut Notifier) -> bool {
    let parked = notify(peer, asymmetric);
    if parked & PARKED_NOTIFY != 0 {
        signal_descriptor(peer, notifier);
    }
    parked & PARKED_FUTEX != 0
}

/// Consumes the peer's `PARKED_NOTIFY` announcement and signals its
/// notification inbox: one byte per announcement, however many
/// messages are published while the peer stays announced (a `WaitSet`
/// member stays announced across waits until something happens to it).
/// Whoever clears the bit sends; a racing second publisher (a closing or
/// claiming process, a remover) finds it clear and sends nothing, which is
/// enough: one byte makes the inbox readable.
#[cold]
fn signal_descriptor(peer: &ControlLine, notifier: &mut Notifier) {
    // ORDERING: Acquire; pairs with the Release `fetch_or` of the waiter's
    // announcement (`Holder::announce`), so the socket name stored before
    // it is visible.
    let was = peer.parked.fetch_and(!PARKED_NOTIFY, Acquire);
    if was & PARKED_NOTIFY != 0 {
        notifier.send(&notify::Address::read(peer));
    }
}

#[cold]
fn wake(peer: &ControlLine) {
    // ORDERING: Release; pairs with the Acquire `event` load in `block`, so
    // a waiter that reads this bump also sees the index stored before it.
    peer.event.fetch_add(1, Release);
    peer.event.wake_all();
}
