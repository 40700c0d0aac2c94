//! Turning repetitions into figures: medians, spread, ratios to the bare
//! ring, to the floor and to shmpipe, each repetition's machine state; and printing them as a table or as JSON. The table is
//! rendered from the same [`Output`] that `--json` prints, so the two
//! never disagree. The schema is documented in `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::config::Config;
use super::coord::{Measured, Results, Samples};
use super::mechanisms::{Group, Mechanism};
use super::protocol::{Workload, LATENCY_MSG};

/// The machine the run was on.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    /// Logical CPUs online.
    pub cores: usize,
    /// CPUs this process may run on.
    pub usable_cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// Whether the CPU reports running under a hypervisor.
    pub virtualized: bool,
}

impl Machine {
    pub fn detect() -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_owned())
        };
        let cores = info
            .lines()
            .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
            .count();
        let usable = rustix::thread::sched_getaffinity(None).map_or(0, |s| s.count() as usize);
        Machine {
            cpu_model: field("model name").unwrap_or_else(|| "unknown".to_owned()),
            cores: if cores > 0 { cores } else { usable },
            usable_cpus: usable,
            kernel: rustix::system::uname()
                .release()
                .to_string_lossy()
                .into_owned(),
            virtualized: field("flags")
                .is_some_and(|f| f.split_whitespace().any(|x| x == "hypervisor")),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Pinning {
    pub producer_cpu: usize,
    pub consumer_cpu: usize,
}

/// The settings of the run.
#[derive(Debug, Serialize)]
pub struct ConfigOut {
    pub command: String,
    pub reps: u32,
    pub quick: bool,
    pub mechanisms: Vec<&'static str>,
    pub workloads: Vec<&'static str>,
    pub sizes: Vec<usize>,
    pub duration_ms: f64,
    pub warmup_ms: f64,
    pub wakeup_samples: u64,
    pub wakeup_gap_ms: f64,
    pub idle_ms: f64,
    /// `null`: not pinned, the scheduler places the processes.
    pub pinning: Option<Pinning>,
}

/// Floors for one message size.
#[derive(Debug, Serialize)]
pub struct FloorSize {
    pub msg_size: usize,
    pub memcpy_bytes_per_sec: Option<f64>,
    pub memcpy_spread: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct FloorOut {
    /// p50 of the two-process cache-line round trip (median over reps).
    pub cacheline_rtt_ns: Option<f64>,
    pub cacheline_rtt_p99_ns: Option<f64>,
    pub cacheline_rtt_spread: Option<f64>,
    /// Each repetition's cache-line round trip, and the machine state it
    /// says.
    pub cacheline_per_rep: Vec<RepState>,
    pub sizes: Vec<FloorSize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The cache-line round trip that opened one repetition.
#[derive(Debug, Serialize)]
pub struct RepState {
    /// 1-based.
    pub rep: u32,
    /// `null` where the floor failed in that repetition.
    pub p50_ns: Option<f64>,
    /// `"near"` or `"far"` (see [`machine_state`]); `null` with `p50_ns`.
    pub state: Option<&'static str>,
}

/// A cache-line round trip (p50, clock reads included) below this is the
/// near state: the two vCPUs of the machine this was written on measured
/// 80-130 ns near and 360-410 ns far.
pub const NEAR_BELOW_NS: f64 = 250.0;

/// `"near"` or `"far"`: where the two processes' CPUs sat in a
/// repetition, from its cache-line round trip.
pub fn machine_state(cacheline_p50_ns: f64) -> &'static str {
    if cacheline_p50_ns < NEAR_BELOW_NS {
        "near"
    } else {
        "far"
    }
}

#[derive(Debug, Serialize)]
pub struct GeometryOut {
    pub slots: u64,
    pub slot_size: u64,
    pub page_size: u64,
}

/// One row: a mechanism under a workload at a message size.
#[derive(Debug, Serialize)]
pub struct ResultOut {
    pub mechanism: &'static str,
    pub workload: &'static str,
    pub msg_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Repetitions that produced figures.
    pub reps: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_fraction: Option<f64>,
    /// idle-cpu: voluntary context switches per second of all the parked
    /// consumer's threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wakeups_per_sec: Option<f64>,
    /// idle-cpu: CPU time of the consumer's whole idle wait (going to
    /// sleep, the parked time, waking for the end marker), in ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_cpu_ns: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_floor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_bare_ring: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shmpipe_gain: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shmpipe_spin_gain: Option<f64>,
    /// The typed rows: against their raw-byte twin ([`untyped_twin`]) in
    /// the same repetition, as `vs_bare_ring` is against the bare ring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_untyped: Option<f64>,
    /// `vs_bare_ring` over only the repetitions in the near, and in the far,
    /// machine state: by the probes of this case and of its bare-ring case
    /// ([`ResultOut::states`]) where either was probed (every probe taken
    /// reads that state), else by [`machine_state`] of the repetition's
    /// cache-line round trip. Absent where no repetition was in that state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_bare_ring_near: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_bare_ring_far: Option<f64>,
    /// Per repetition, the machine state of this case by the quick probes
    /// right before and right after it: `"near"`, `"far"`, `"mixed"` (the
    /// two differ: the state changed during the case) or `null` (not
    /// probed: unpinned, or a workload without a bare-ring ratio). Empty
    /// when no repetition was probed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<Option<&'static str>>,
    /// wakeup: the shmpipe rows against the row their target names
    /// ([`wakeup_reference`]) in the same repetition (p50 ratio).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_wakeup_reference: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geometry: Option<GeometryOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Everything `--json` prints.
#[derive(Debug, Serialize)]
pub struct Output {
    pub shmpipe_version: &'static str,
    pub machine: Machine,
    pub config: ConfigOut,
    pub floor: FloorOut,
    pub results: Vec<ResultOut>,
    /// Mechanisms that could not run at all on this machine, and why:
    /// their results say `unavailable`, the table leaves them out and
    /// says why once, in its notes.
    pub skipped: BTreeMap<&'static str, String>,
    pub notes: Vec<String>,
}

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// `(max - min) / median`: 0 for one repetition, 0.5 when the best and
/// worst repetitions differ by half the typical value; 0 when every
/// repetition measured the same (a parked consumer's 0 CPU included), none
/// when the median is 0 but the repetitions differ.
pub fn spread(v: &[f64]) -> Option<f64> {
    let m = median(v)?;
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    if max == min {
        return Some(0.0);
    }
    (m > 0.0).then(|| (max - min) / m)
}

/// The headline figure of a measurement: msgs/s, p50 ns or CPU fraction.
fn primary(m: &Measured) -> f64 {
    match *m {
        Measured::Rate { msgs_per_sec, .. } => msgs_per_sec,
        Measured::Latency { p50_ns, .. } => p50_ns,
        Measured::Cpu { fraction, .. } => fraction,
    }
}

fn collect(cell: &Samples, f: impl Fn(&Measured) -> Option<f64>) -> Vec<f64> {
    cell.per_rep.iter().flatten().filter_map(f).collect()
}

/// Median over repetitions of `f(row, reference)` where both were
/// measured in the same repetition.
/// The raw-byte row a typed row is compared with: the same ring, the same
/// waiting, the same 64 bytes, through the untyped calls.
pub fn untyped_twin(m: Mechanism) -> Option<Mechanism> {
    match m {
        Mechanism::ShmpipeTyped => Some(Mechanism::ShmpipeAligned),
        Mechanism::ShmpipeTypedInPlace => Some(Mechanism::ShmpipeAlignedInPlace),
        _ => None,
    }
}

/// The row a shmpipe wake-up row is held against: a pipe for the futex
/// and descriptor sleepers, one futex sleeper for a `WaitSet` of 64, a
/// tokio `UnixStream` for the tokio consumer.
pub fn wakeup_reference(m: Mechanism) -> Option<Mechanism> {
    match m {
        Mechanism::ShmpipeSpinPark | Mechanism::ShmpipePark | Mechanism::ShmpipeFd => {
            Some(Mechanism::Pipe)
        }
        Mechanism::ShmpipeWaitset | Mechanism::ShmpipeWaitsetEpoll => Some(Mechanism::ShmpipePark),
        Mechanism::ShmpipeTokio => Some(Mechanism::TokioUnix),
        _ => None,
    }
}

fn paired(
    row: &Samples,
    reference: Option<&Samples>,
    f: impl Fn(&Measured, &Measured) -> Option<f64>,
) -> Option<f64> {
    paired_where(row, reference, |_| true, f)
}

/// [`paired`] over the repetitions `keep` (by index) says.
fn paired_where(
    row: &Samples,
    reference: Option<&Samples>,
    keep: impl Fn(usize) -> bool,
    f: impl Fn(&Measured, &Measured) -> Option<f64>,
) -> Option<f64> {
    let r = reference?;
    let v: Vec<f64> = row
        .per_rep
        .iter()
        .zip(&r.per_rep)
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .filter_map(|(_, (a, b))| f(a.as_ref()?, b.as_ref()?))
        .collect();
    median(&v)
}

/// Whether repetition `i` ran in the machine state `state` (`"near"`,
/// `"far"`), from its cache-line round trip.
fn rep_in_state(cacheline: &Samples, i: usize, state: &str) -> bool {
    cacheline
        .per_rep
        .get(i)
        .and_then(|m| p50(m.as_ref()?))
        .is_some_and(|ns| machine_state(ns) == state)
}

/// The machine state of repetition `i` of a case by its probes: `"near"`
/// or `"far"` when the probe before and the one after agree, `"mixed"`
/// when they do not; `None` where it was not probed or measured nothing.
fn case_state(cell: &Samples, i: usize) -> Option<&'static str> {
    cell.per_rep.get(i)?.as_ref()?;
    let (before, after) = (*cell.probes.get(i)?)?;
    let (a, b) = (machine_state(before), machine_state(after));
    Some(if a == b { a } else { "mixed" })
}

/// Whether repetition `i` of `row` and of its `reference` both ran in
/// `state`: by the probes of whichever of the two cases were probed (a
/// case during which the state changed is in neither state), by the
/// repetition's cache-line round trip where neither was.
fn pair_in_state(
    row: &Samples,
    reference: Option<&Samples>,
    cacheline: &Samples,
    i: usize,
    state: &str,
) -> bool {
    let probed = [case_state(row, i), reference.and_then(|r| case_state(r, i))];
    if probed.iter().all(Option::is_none) {
        return rep_in_state(cacheline, i, state);
    }
    probed.iter().flatten().all(|s| *s == state)
}

/// `paired` over the repetitions in which `row` and `reference` both ran
/// near, and over those in which both ran far ([`pair_in_state`]).
fn by_state(
    row: &Samples,
    reference: Option<&Samples>,
    cacheline: &Samples,
    f: impl Fn(&Measured, &Measured) -> Option<f64>,
) -> (Option<f64>, Option<f64>) {
    let f = &f;
    let state = |s: &str| {
        paired_where(
            row,
            reference,
            |i| pair_in_state(row, reference, cacheline, i, s),
            f,
        )
    };
    (state("near"), state("far"))
}

fn rate_bytes(m: &Measured) -> Option<f64> {
    match *m {
        Measured::Rate { bytes_per_sec, .. } => Some(bytes_per_sec),
        _ => None,
    }
}

fn rate_msgs(m: &Measured) -> Option<f64> {
    match *m {
        Measured::Rate { msgs_per_sec, .. } => Some(msgs_per_sec),
        _ => None,
    }
}

fn p50(m: &Measured) -> Option<f64> {
    match *m {
        Measured::Latency { p50_ns, .. } => Some(p50_ns),
        _ => None,
    }
}

/// Builds the output of a run.
pub fn summarise(cfg: &Config, res: &Results, machine: Machine) -> Output {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let config = ConfigOut {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        reps: cfg.reps,
        quick: cfg.quick,
        mechanisms: cfg.mechanisms.iter().map(|m| m.name()).collect(),
        workloads: cfg.workloads.iter().map(|w| w.name()).collect(),
        sizes: cfg.sizes.clone(),
        duration_ms: ms(cfg.duration),
        warmup_ms: ms(cfg.warmup()),
        wakeup_samples: cfg.wakeup_samples,
        wakeup_gap_ms: ms(cfg.wakeup_gap),
        idle_ms: ms(cfg.idle),
        pinning: cfg.cpus.map(|(p, c)| Pinning {
            producer_cpu: p,
            consumer_cpu: c,
        }),
    };

    let cl = collect(&res.cacheline, p50);
    let mut floor_errors: Vec<String> = res.cacheline.errors.clone();
    floor_errors.dedup();
    let sizes = res
        .memcpy
        .iter()
        .map(|(&size, per_rep)| {
            let mc: Vec<f64> = per_rep.iter().flatten().copied().collect();
            FloorSize {
                msg_size: size,
                memcpy_bytes_per_sec: median(&mc),
                memcpy_spread: spread(&mc),
            }
        })
        .collect();
    let cacheline_per_rep = res
        .cacheline
        .per_rep
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = m.as_ref().and_then(p50);
            RepState {
                rep: i as u32 + 1,
                p50_ns: p,
                state: p.map(machine_state),
            }
        })
        .collect();
    let floor = FloorOut {
        cacheline_rtt_ns: median(&cl),
        cacheline_rtt_p99_ns: median(&collect(&res.cacheline, |m| match *m {
            Measured::Latency { p99_ns, .. } => Some(p99_ns),
            _ => None,
        })),
        cacheline_rtt_spread: spread(&cl),
        cacheline_per_rep,
        sizes,
        errors: floor_errors,
    };

    let mut results = Vec::new();
    for (&(w, size, mech), cell) in &res.cases {
        results.push(row(res, w, size, mech, cell));
    }
    Output {
        shmpipe_version: env!("CARGO_PKG_VERSION"),
        machine,
        config,
        floor,
        results,
        skipped: res
            .skipped
            .iter()
            .map(|(m, why)| (m.name(), why.clone()))
            .collect(),
        notes: res.notes.clone(),
    }
}

fn row(res: &Results, w: Workload, size: usize, mech: Mechanism, cell: &Samples) -> ResultOut {
    let ok = cell.per_rep.iter().flatten().count();
    let mut out = ResultOut {
        mechanism: mech.name(),
        workload: w.name(),
        msg_size: size,
        unavailable: None,
        reps: ok,
        msgs_per_sec: None,
        bytes_per_sec: None,
        p50_ns: None,
        p99_ns: None,
        p999_ns: None,
        max_ns: None,
        cpu_fraction: None,
        wakeups_per_sec: None,
        wait_cpu_ns: None,
        spread: None,
        vs_floor: None,
        vs_bare_ring: None,
        shmpipe_gain: None,
        shmpipe_spin_gain: None,
        vs_untyped: None,
        vs_wakeup_reference: None,
        vs_bare_ring_near: None,
        vs_bare_ring_far: None,
        states: if cell.probes.iter().any(Option::is_some) {
            (0..cell.per_rep.len())
                .map(|i| case_state(cell, i))
                .collect()
        } else {
            Vec::new()
        },
        geometry: cell.shape.map(|(g, page)| GeometryOut {
            slots: g.slots,
            slot_size: g.slot_size,
            page_size: page,
        }),
        notes: cell.notes.iter().cloned().collect(),
    };
    if ok == 0 {
        out.unavailable = Some(
            cell.errors
                .first()
                .cloned()
                .unwrap_or_else(|| "not run".to_owned()),
        );
        return out;
    }
    if !cell.errors.is_empty() {
        out.notes.push(format!(
            "{} of {} repetitions failed; first: {}",
            cell.errors.len(),
            cell.per_rep.len(),
            cell.errors[0]
        ));
    }
    let pick = |f: fn(&Measured) -> Option<f64>| median(&collect(cell, f));
    out.spread = spread(&collect(cell, |m| Some(primary(m))));
    let reference = |m: Mechanism| res.cases.get(&(w, size, m));
    let bare = reference(Mechanism::BareRing);
    let group = mech.entry().group;
    match w {
        Workload::Throughput => {
            out.msgs_per_sec = pick(rate_msgs);
            out.bytes_per_sec = pick(rate_bytes);
            if group == Group::Shmpipe {
                let ratio = |a: &Measured, b: &Measured| Some(rate_msgs(a)? / rate_msgs(b)?);
                out.vs_bare_ring = paired(cell, bare, ratio);
                (out.vs_bare_ring_near, out.vs_bare_ring_far) =
                    by_state(cell, bare, &res.cacheline, ratio);
                out.vs_untyped = untyped_twin(mech).and_then(|t| paired(cell, reference(t), ratio));
            } else if group == Group::Other {
                let gain = |a: &Measured, b: &Measured| Some(rate_msgs(b)? / rate_msgs(a)?);
                out.shmpipe_gain = paired(cell, reference(Mechanism::ShmpipeSpinPark), gain);
                out.shmpipe_spin_gain = paired(cell, reference(Mechanism::ShmpipeSpin), gain);
            }
        }
        Workload::Pingpong | Workload::Wakeup => {
            out.p50_ns = pick(p50);
            out.p99_ns = pick(|m| match *m {
                Measured::Latency { p99_ns, .. } => Some(p99_ns),
                _ => None,
            });
            out.p999_ns = pick(|m| match *m {
                Measured::Latency { p999_ns, .. } => Some(p999_ns),
                _ => None,
            });
            out.max_ns = pick(|m| match *m {
                Measured::Latency { max_ns, .. } => Some(max_ns),
                _ => None,
            });
            if group != Group::Other {
                if w == Workload::Pingpong {
                    out.vs_floor =
                        paired(cell, Some(&res.cacheline), |a, b| Some(p50(a)? / p50(b)?));
                }
                let ratio = |a: &Measured, b: &Measured| Some(p50(a)? / p50(b)?);
                if group == Group::Shmpipe && w == Workload::Pingpong {
                    out.vs_bare_ring = paired(cell, bare, ratio);
                    (out.vs_bare_ring_near, out.vs_bare_ring_far) =
                        by_state(cell, bare, &res.cacheline, ratio);
                    out.vs_untyped =
                        untyped_twin(mech).and_then(|t| paired(cell, reference(t), ratio));
                }
                if w == Workload::Wakeup {
                    out.vs_wakeup_reference =
                        wakeup_reference(mech).and_then(|t| paired(cell, reference(t), ratio));
                }
            } else {
                let gain = |a: &Measured, b: &Measured| Some(p50(a)? / p50(b)?);
                out.shmpipe_gain = paired(cell, reference(Mechanism::ShmpipeSpinPark), gain);
                if w == Workload::Pingpong {
                    out.shmpipe_spin_gain = paired(cell, reference(Mechanism::ShmpipeSpin), gain);
                }
            }
        }
        Workload::IdleCpu => {
            out.cpu_fraction = pick(|m| match *m {
                Measured::Cpu { fraction, .. } => Some(fraction),
                _ => None,
            });
            out.wait_cpu_ns = pick(|m| match *m {
                Measured::Cpu { wait_cpu_ns, .. } => Some(wait_cpu_ns),
                _ => None,
            });
            out.wakeups_per_sec = pick(|m| match *m {
                Measured::Cpu {
                    wakeups_per_sec, ..
                } => Some(wakeups_per_sec),
                _ => None,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------

/// `12.3 M`, `456 k`: a rate with an SI prefix.
fn si(v: f64) -> String {
    let (x, p) = if v >= 1e9 {
        (v / 1e9, " G")
    } else if v >= 1e6 {
        (v / 1e6, " M")
    } else if v >= 1e3 {
        (v / 1e3, " k")
    } else {
        (v, " ")
    };
    format!("{}{p}", sig3(x))
}

/// Three significant digits.
fn sig3(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn bytes_rate(v: f64) -> String {
    format!("{}B/s", si(v))
}

/// `162 ns`, `24.1 µs`, `1.20 ms`.
fn dur(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{} s", sig3(ns / 1e9))
    } else if ns >= 1e6 {
        format!("{} ms", sig3(ns / 1e6))
    } else if ns >= 1e3 {
        format!("{} µs", sig3(ns / 1e3))
    } else {
        format!("{ns:.0} ns")
    }
}

fn size(b: usize) -> String {
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), f)
}

fn ratio(v: Option<f64>) -> String {
    opt(v, |x| format!("{}x", sig3(x)))
}

/// Renders the table.
pub fn table(o: &Output) -> String {
    let mut t = String::new();
    let m = &o.machine;
    let c = &o.config;
    let _ = writeln!(
        t,
        "shmpipe bench: {} ({} CPUs{}), Linux {}",
        m.cpu_model,
        m.cores,
        if m.virtualized {
            ", virtual machine"
        } else {
            ""
        },
        m.kernel
    );
    let pin = match &c.pinning {
        Some(p) => format!(
            "producer pinned to CPU {}, consumer to CPU {}",
            p.producer_cpu, p.consumer_cpu
        ),
        None => "producer and consumer not pinned (the scheduler places them)".to_owned(),
    };
    let _ = writeln!(
        t,
        "{} repetitions, mechanisms interleaved in each; {pin}",
        c.reps
    );
    let _ = writeln!(
        t,
        "Figures: medians over repetitions. spread = (max - min) / median. x bare: shmpipe against \
         the bare ring\n(msgs/s ratio, higher is better; latency ratio, lower is better), x floor: \
         against the cache-line\nround trip, shmpipe gain: how many times better \
         shmpipe-spin-park did; each ratio taken within one\nrepetition, then the median."
    );

    // Rows of the mechanisms that could not run at all are left out; the
    // notes say why, once.
    let results = |w: Workload| {
        o.results
            .iter()
            .filter(move |r| r.workload == w.name() && !o.skipped.contains_key(r.mechanism))
    };
    let runs = |w: Workload| c.workloads.contains(&w.name());
    // One width for the mechanism column of every table: the longest name
    // shown (at least the header's).
    let nw = o
        .results
        .iter()
        .map(|r| r.mechanism.len())
        .chain([18])
        .max()
        .unwrap_or(18);
    // Rows against the row they are compared with (`against`: the
    // reference, `value`: the ratio), as one line under a table.
    let against_line = |t: &mut String,
                        w: Workload,
                        what: &str,
                        against: fn(Mechanism) -> Option<Mechanism>,
                        value: fn(&ResultOut) -> Option<f64>| {
        let pairs: Vec<String> = results(w)
            .filter_map(|r| {
                let m = <Mechanism as clap::ValueEnum>::from_str(r.mechanism, false).ok()?;
                let other = against(m)?;
                let v = value(r)?;
                Some(format!(
                    "{} {} {}",
                    r.mechanism,
                    ratio(Some(v)),
                    other.name()
                ))
            })
            .collect();
        if !pairs.is_empty() {
            let _ = writeln!(t, "  {what}: {}", pairs.join(", "));
        }
    };
    // `x bare` split by machine state, under a workload's table.
    let states_line = |t: &mut String, w: Workload| {
        let probed = results(w).any(|r| !r.states.is_empty());
        let reps = |state: &str| {
            o.floor
                .cacheline_per_rep
                .iter()
                .filter(|r| r.state == Some(state))
                .count()
        };
        let part = |state: &str, v: fn(&ResultOut) -> Option<f64>| {
            let rows: Vec<String> = results(w)
                .filter_map(|r| {
                    let x = v(r)?;
                    let sz = if w == Workload::Throughput {
                        format!(" {}", size(r.msg_size))
                    } else {
                        String::new()
                    };
                    Some(format!("{}{sz} {}", r.mechanism, ratio(Some(x))))
                })
                .collect();
            if rows.is_empty() {
                format!("{state}: no repetition")
            } else if probed {
                format!("{state}: {}", rows.join(", "))
            } else {
                format!("{state} ({} reps): {}", reps(state), rows.join(", "))
            }
        };
        if results(w).any(|r| r.vs_bare_ring.is_some()) {
            let _ = writeln!(
                t,
                "  x bare by machine state (median of that state's repetitions): {}; {}",
                part("near", |r| r.vs_bare_ring_near),
                part("far", |r| r.vs_bare_ring_far)
            );
        }
        if probed {
            let tally = |state: &str| {
                results(w)
                    .flat_map(|r| &r.states)
                    .filter(|s| **s == Some(state))
                    .count()
            };
            let _ = writeln!(
                t,
                "  machine state of each case, probed right before and after it: {} near, {} far, \
                 {} changed during the case (left out of both lines above)",
                tally("near"),
                tally("far"),
                tally("mixed")
            );
        }
    };
    // The typed rows against their raw twins, under a workload's table.
    let typed_line = |t: &mut String, w: Workload| {
        against_line(
            t,
            w,
            "typed against raw bytes on the same ring, same repetition (msgs/s or p50 ratio)",
            untyped_twin,
            |r| r.vs_untyped,
        );
    };

    // Floors.
    let f = &o.floor;
    let _ = writeln!(
        t,
        "\nPhysical floors (two processes over one shared mapping)"
    );
    {
        let _ = writeln!(
            t,
            "  cache-line round trip through one atomic: p50 {}, p99 {}  (spread {})",
            opt(f.cacheline_rtt_ns, dur),
            opt(f.cacheline_rtt_p99_ns, dur),
            opt(f.cacheline_rtt_spread, |x| format!("{x:.2}"))
        );
    }
    let states: Vec<String> = f
        .cacheline_per_rep
        .iter()
        .map(|r| match (r.p50_ns, r.state) {
            (Some(p), Some(st)) => format!("{}: {} {st}", r.rep, dur(p)),
            _ => format!("{}: failed", r.rep),
        })
        .collect();
    if !states.is_empty() {
        let _ = writeln!(
            t,
            "  per repetition (machine state; near below {}): {}",
            dur(NEAR_BELOW_NS),
            states.join(", ")
        );
    }
    if !f.sizes.is_empty() {
        let mc: Vec<String> = f
            .sizes
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    size(s.msg_size),
                    opt(s.memcpy_bytes_per_sec, bytes_rate)
                )
            })
            .collect();
        let _ = writeln!(t, "  memcpy, one core, per message size: {}", mc.join(", "));
    }
    for e in &f.errors {
        let _ = writeln!(t, "  floor failed: {e}");
    }

    let unavailable = |r: &ResultOut| r.unavailable.as_ref().map(|u| format!("unavailable: {u}"));

    if runs(Workload::Throughput) {
        let _ = writeln!(
            t,
            "\nThroughput, one way (the producer copies each message in, the consumer copies it \
             out and checks it)"
        );
        let _ = writeln!(
            t,
            "  {:>9}  {:<nw$} {:>10} {:>12} {:>7} {:>8} {:>13}",
            "msg size", "mechanism", "msgs/s", "bytes/s", "spread", "x bare", "shmpipe gain"
        );
        let mut last = None;
        for r in results(Workload::Throughput) {
            let sz = if last == Some(r.msg_size) {
                String::new()
            } else {
                size(r.msg_size)
            };
            last = Some(r.msg_size);
            match unavailable(r) {
                Some(u) => {
                    let _ = writeln!(t, "  {sz:>9}  {:<nw$} {u}", r.mechanism);
                }
                None => {
                    let _ = writeln!(
                        t,
                        "  {sz:>9}  {:<nw$} {:>10} {:>12} {:>7} {:>8} {:>13}",
                        r.mechanism,
                        opt(r.msgs_per_sec, si),
                        opt(r.bytes_per_sec, bytes_rate),
                        opt(r.spread, |x| format!("{x:.2}")),
                        ratio(r.vs_bare_ring),
                        ratio(r.shmpipe_gain),
                    );
                }
            }
        }
        let geos: Vec<String> = results(Workload::Throughput)
            .filter(|r| r.mechanism == Mechanism::ShmpipeSpinPark.name())
            .filter_map(|r| {
                r.geometry.as_ref().map(|g| {
                    format!(
                        "{}: {} x {}",
                        size(r.msg_size),
                        g.slots,
                        size(g.slot_size as usize)
                    )
                })
            })
            .collect();
        if !geos.is_empty() {
            let _ = writeln!(t, "  rings (slots x slot size): {}", geos.join(", "));
        }
        states_line(&mut t, Workload::Throughput);
        typed_line(&mut t, Workload::Throughput);
    }

    let latency_table = |t: &mut String, w: Workload, floor: bool| {
        let _ = write!(
            t,
            "  {:<nw$} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "mechanism", "p50", "p99", "p99.9", "max", "spread"
        );
        if floor {
            let _ = write!(t, " {:>8} {:>8}", "x floor", "x bare");
        }
        let _ = writeln!(t, " {:>13}", "shmpipe gain");
        for r in results(w) {
            if let Some(u) = unavailable(r) {
                let _ = writeln!(t, "  {:<nw$} {u}", r.mechanism);
                continue;
            }
            let _ = write!(
                t,
                "  {:<nw$} {:>9} {:>9} {:>9} {:>9} {:>7}",
                r.mechanism,
                opt(r.p50_ns, dur),
                opt(r.p99_ns, dur),
                opt(r.p999_ns, dur),
                opt(r.max_ns, dur),
                opt(r.spread, |x| format!("{x:.2}")),
            );
            if floor {
                let _ = write!(t, " {:>8} {:>8}", ratio(r.vs_floor), ratio(r.vs_bare_ring));
            }
            let _ = writeln!(t, " {:>13}", ratio(r.shmpipe_gain));
        }
    };
    if runs(Workload::Pingpong) {
        let _ = writeln!(
            t,
            "\nPing-pong round trip, {LATENCY_MSG}-byte messages (timed per round trip by the \
             initiator)"
        );
        latency_table(&mut t, Workload::Pingpong, true);
        states_line(&mut t, Workload::Pingpong);
        typed_line(&mut t, Workload::Pingpong);
    }
    if runs(Workload::Wakeup) {
        let _ = writeln!(
            t,
            "\nWake-up latency: from the producer's publish to a blocked consumer running \
             ({} samples, {LATENCY_MSG} B)",
            c.wakeup_samples
        );
        latency_table(&mut t, Workload::Wakeup, false);
        against_line(
            &mut t,
            Workload::Wakeup,
            "against the reference, same repetition (p50 ratio, median over repetitions)",
            wakeup_reference,
            |r| r.vs_wakeup_reference,
        );
    }
    if runs(Workload::IdleCpu) {
        let _ = writeln!(
            t,
            "\nIdle consumer, parked with nothing to receive (after a first wait that did \
             any one-time setup): CPU of all its threads over {} from 50 ms into the wait, \
             their voluntary context switches, and the CPU of the whole wait (going to \
             sleep, parked, woken)",
            dur(c.idle_ms * 1e6)
        );
        let _ = writeln!(
            t,
            "  {:<nw$} {:>12} {:>10} {:>10} {:>7}",
            "mechanism", "% of a core", "wakeups/s", "one wait", "spread"
        );
        for r in results(Workload::IdleCpu) {
            match unavailable(r) {
                Some(u) => {
                    let _ = writeln!(t, "  {:<nw$} {u}", r.mechanism);
                }
                None => {
                    let _ = writeln!(
                        t,
                        "  {:<nw$} {:>12} {:>10} {:>10} {:>7}",
                        r.mechanism,
                        opt(r.cpu_fraction, |x| format!("{:.4} %", x * 100.0)),
                        opt(r.wakeups_per_sec, |x| format!("{x:.1}")),
                        opt(r.wait_cpu_ns, dur),
                        opt(r.spread, |x| format!("{x:.2}")),
                    );
                }
            }
        }
    }

    let mut notes: Vec<String> = o
        .skipped
        .iter()
        .map(|(m, why)| format!("{m} not run: {why}"))
        .collect();
    notes.extend(o.notes.iter().cloned());
    for r in o
        .results
        .iter()
        .filter(|r| !o.skipped.contains_key(r.mechanism))
    {
        for n in &r.notes {
            notes.push(format!(
                "{} {} {}: {n}",
                r.mechanism,
                r.workload,
                size(r.msg_size)
            ));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(t, "\nNotes");
        for n in notes {
            let _ = writeln!(t, "  - {n}");
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(spread(&[2.0]), Some(0.0));
        assert_eq!(spread(&[1.0, 2.0, 3.0]), Some(1.0));
        assert_eq!(spread(&[0.0, 0.0, 0.0]), Some(0.0));
        assert_eq!(spread(&[0.0, 0.0, 1.0]), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(si(41_234_567.0), "41.2 M");
        assert_eq!(si(999.0), "999 ");
        assert_eq!(bytes_rate(2.5e9), "2.50 GB/s");
        assert_eq!(dur(162.4), "162 ns");
        assert_eq!(dur(24_100.0), "24.1 µs");
        assert_eq!(dur(1_200_000.0), "1.20 ms");
        assert_eq!(size(65536), "64 KiB");
        assert_eq!(size(8), "8 B");
        assert_eq!(ratio(Some(31.4)), "31.4x");
        assert_eq!(ratio(None), "-");
    }

    fn rates(v: &[f64], probes: Vec<Option<(f64, f64)>>) -> Samples {
        Samples {
            per_rep: v
                .iter()
                .map(|&r| {
                    Some(Measured::Rate {
                        msgs_per_sec: r,
                        bytes_per_sec: r,
                    })
                })
                .collect(),
            probes,
            ..Samples::default()
        }
    }

    #[test]
    fn per_state_ratios_pair_cases_by_their_probes() {
        let near = Some((120.0, 130.0));
        let far = Some((360.0, 380.0));
        let changed = Some((120.0, 370.0));
        // Every repetition's floor said near; the probes say otherwise.
        let cacheline = Samples {
            per_rep: vec![
                Some(Measured::Latency {
                    p50_ns: 120.0,
                    p99_ns: 0.0,
                    p999_ns: 0.0,
                    max_ns: 0.0,
                    samples: 1,
                });
                4
            ],
            ..Samples::default()
        };
        let bare = rates(&[10.0, 10.0, 10.0, 10.0], vec![near, far, near, far]);
        let row = rates(&[12.0, 5.0, 8.0, 7.0], vec![near, far, changed, None]);
        assert_eq!(case_state(&row, 0), Some("near"));
        assert_eq!(case_state(&row, 2), Some("mixed"));
        assert_eq!(case_state(&row, 3), None);
        assert_eq!(case_state(&row, 9), None);
        // A repetition that measured nothing has no state.
        let mut failed = rates(&[1.0, 1.0], vec![near, far]);
        failed.per_rep[1] = None;
        assert_eq!(case_state(&failed, 0), Some("near"));
        assert_eq!(case_state(&failed, 1), None);
        let ratio = |a: &Measured, b: &Measured| Some(rate_msgs(a)? / rate_msgs(b)?);
        let by = |state: &'static str| {
            paired_where(
                &row,
                Some(&bare),
                |i| pair_in_state(&row, Some(&bare), &cacheline, i, state),
                ratio,
            )
        };
        // Near: repetition 0 (both probed near); far: 1 (both far) and 3
        // (only the bare ring was probed: far, whatever the floor said);
        // repetition 2 changed state and is in neither.
        assert_eq!(by("near"), Some(1.2));
        assert_eq!(by("far"), Some((0.5 + 0.7) / 2.0));
        // With no probe on either side, the floor of the repetition says.
        let unprobed = rates(&[9.0, 9.0, 9.0, 9.0], Vec::new());
        assert!(pair_in_state(&unprobed, None, &cacheline, 1, "near"));
        assert!(!pair_in_state(&unprobed, None, &cacheline, 1, "far"));
        assert!(pair_in_state(&unprobed, Some(&bare), &cacheline, 1, "far"));
    }
}
