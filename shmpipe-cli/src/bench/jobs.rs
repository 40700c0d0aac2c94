//! `shmpipe bench-peer`: one side of one benchmark case, in its own
//! process. The family its link names opens its end of the channel; then
//! it prints `ready`, runs its job (the same code for every mechanism) and
//! prints its [`PeerReport`] as one JSON line.
//!
//! Every message carries its sequence number in its first 8 bytes (the
//! rest is filled once), and every receiver checks it, so a mechanism can
//! never look fast by losing, duplicating or reordering messages. Wake-up
//! messages also carry the sender's `CLOCK_MONOTONIC` time in bytes 8..16.

use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use rustix::thread::CpuSet;
use rustix::time::{clock_gettime, ClockId};

use super::endpoint::{get_u64, put_u64, Endpoint, PeerError};
use super::floor;
use super::mechanisms::family_of;
use super::protocol::{Job, PeerReport, PeerSpec, END};
use super::{MAX_MSG, MIN_MSG};
use crate::fail::{exit, CmdResult, Failure};

/// Messages between clock reads in the streaming loops.
const CLOCK_EVERY: u64 = 64;
/// Wake-up samples sent first and not recorded (the first wake of a
/// process also pays for faulting in its code).
const WAKE_WARMUP: u64 = 2;
/// How long a wake-up sender waits for a shmpipe consumer to park before
/// sending anyway (and counting the sample as not parked).
pub const PARK_PATIENCE: Duration = Duration::from_millis(100);

/// Nanoseconds on `CLOCK_MONOTONIC`, the clock both peers share.
#[inline]
pub fn now_ns() -> u64 {
    ts_ns(clock_gettime(ClockId::Monotonic))
}

fn ts_ns(t: rustix::time::Timespec) -> u64 {
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Pins the calling process to `cpu`.
pub fn pin(cpu: usize) -> Result<(), PeerError> {
    if cpu >= CpuSet::MAX_CPU {
        return Err(PeerError(format!("CPU {cpu} is out of range")));
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .map_err(|e| PeerError(format!("pinning to CPU {cpu}: {e}")))
}

/// Entry point of `shmpipe bench-peer`.
pub fn main(spec_json: &str) -> CmdResult {
    let spec: PeerSpec = serde_json::from_str(spec_json)
        .map_err(|e| Failure::usage(format!("bad --spec (this command is internal): {e}")))?;
    if !(MIN_MSG..=MAX_MSG).contains(&spec.msg_size) {
        return Err(Failure::usage(format!(
            "message size {} is outside {MIN_MSG}..={MAX_MSG}",
            spec.msg_size
        )));
    }
    if matches!(spec.job, Job::Wake { .. } | Job::Woken) && spec.msg_size < 16 {
        return Err(Failure::usage(
            "wake-up messages carry a time: they need at least 16 bytes",
        ));
    }
    let kind = spec.link.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    let r = spec.cpu.map_or(Ok(()), pin).and_then(|()| {
        if kind == floor::KIND {
            floor::serve(&spec)
        } else {
            match family_of(kind) {
                Some(f) => f.serve(&spec),
                None => Err(PeerError(format!(
                    "no mechanism family has links of kind `{kind}` (this command is internal)"
                ))),
            }
        }
    });
    r.map_err(|e| Failure::new(exit::ERROR, e))
}

/// Prints one line on stdout for the coordinator.
fn say(line: &str) -> Result<(), PeerError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| PeerError(format!("writing to the coordinator: {e}")))
}

/// Runs `spec`'s job on the end a family opened: says `ready`, runs the
/// job, prints the report.
pub fn serve<E: Endpoint>(ep: Result<E, PeerError>, spec: &PeerSpec) -> Result<(), PeerError> {
    let mut ep = ep.map_err(PeerError::context("opening the channel"))?;
    say("ready")?;
    let report = run_job(&mut ep, &spec.job, spec.msg_size)?;
    let line = serde_json::to_string(&report).map_err(PeerError::new)?;
    say(&line)
}

fn run_job<E: Endpoint>(ep: &mut E, job: &Job, size: usize) -> Result<PeerReport, PeerError> {
    match *job {
        Job::Stream { duration_ns } => stream(ep, size, duration_ns),
        Job::Drain { warmup_ns } => drain(ep, size, warmup_ns),
        Job::Ping {
            duration_ns,
            warmup_ns,
        } => ping(ep, size, duration_ns, warmup_ns),
        Job::Echo => echo(ep),
        Job::Wake {
            samples,
            gap_ns,
            await_parked,
        } => wake(ep, size, samples, gap_ns, await_parked),
        Job::Woken => woken(ep),
        Job::IdleSend { idle_ns } => {
            std::thread::sleep(IDLE_SETTLE);
            put_u64(ep.out(), 0, 0);
            ep.send(size)?;
            std::thread::sleep(IDLE_SETTLE + Duration::from_nanos(idle_ns) + IDLE_MARGIN);
            finish(ep, size)?;
            Ok(PeerReport::Sent {
                messages: 1,
                unparked: 0,
            })
        }
        Job::IdleRecv { window_ns } => idle_recv(ep, window_ns),
    }
}

/// Sends the end marker.
fn finish<E: Endpoint>(ep: &mut E, size: usize) -> Result<(), PeerError> {
    put_u64(ep.out(), 0, END);
    ep.send(size)
        .map_err(PeerError::context("sending the end marker"))
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 1 hour at 3 significant digits; these bounds are valid.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

fn latency(h: &Histogram<u64>) -> PeerReport {
    PeerReport::Latency {
        samples: h.len(),
        p50_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
    }
}

/// Throughput sender: numbered messages as fast as the channel takes them.
fn stream<E: Endpoint>(ep: &mut E, size: usize, duration_ns: u64) -> Result<PeerReport, PeerError> {
    let end = now_ns().saturating_add(duration_ns);
    let mut seq = 0u64;
    loop {
        ep.send_seq(seq, size)?;
        seq += 1;
        if seq.is_multiple_of(CLOCK_EVERY) && now_ns() >= end {
            break;
        }
    }
    finish(ep, size)?;
    Ok(PeerReport::Sent {
        messages: seq,
        unparked: 0,
    })
}

/// Throughput receiver: checks every message's number and length, and
/// times the messages after `warmup_ns` up to the end marker.
fn drain<E: Endpoint>(ep: &mut E, size: usize, warmup_ns: u64) -> Result<PeerReport, PeerError> {
    let mut expected = 0u64;
    let mut first_at = 0u64;
    // (messages received, time) when the measured window opened.
    let mut window: Option<(u64, u64)> = None;
    loop {
        let (seq, len) = ep.recv_seq()?;
        if seq == END {
            break;
        }
        if seq != expected || len != size {
            return Err(PeerError(format!(
                "expected message {expected} of {size} bytes, got message {seq} of {len} bytes"
            )));
        }
        expected += 1;
        if expected == 1 {
            first_at = now_ns();
        } else if window.is_none() && expected.is_multiple_of(CLOCK_EVERY) {
            let now = now_ns();
            if now - first_at >= warmup_ns {
                window = Some((expected, now));
            }
        }
    }
    let end = now_ns();
    if expected < 2 {
        return Err(PeerError(format!(
            "only {expected} messages arrived: nothing to time"
        )));
    }
    // A window holding less than half of the stream means the stream
    // stalled (a descheduled peer): time all of it instead.
    let (n0, t0) = match window {
        Some((n0, t0)) if expected - n0 >= (expected - 1) / 2 => (n0, t0),
        _ => (1, first_at),
    };
    Ok(PeerReport::Rate {
        messages: expected - n0,
        elapsed_ns: end.saturating_sub(t0).max(1),
    })
}

/// Ping-pong initiator: times each round trip, as the floor's is timed.
fn ping<E: Endpoint>(
    ep: &mut E,
    size: usize,
    duration_ns: u64,
    warmup_ns: u64,
) -> Result<PeerReport, PeerError> {
    let mut hist = histogram();
    let warm_until = now_ns().saturating_add(warmup_ns);
    let end = warm_until.saturating_add(duration_ns);
    let mut seq = 0u64;
    loop {
        let t0 = now_ns();
        ep.send_seq(seq, size)?;
        let (got, _) = ep.recv_seq()?;
        let t1 = now_ns();
        if got != seq {
            return Err(PeerError(format!("sent ping {seq}, got pong {got}")));
        }
        if t0 >= warm_until {
            hist.saturating_record(t1 - t0);
        }
        seq += 1;
        if t1 >= end {
            break;
        }
    }
    finish(ep, size)?;
    Ok(latency(&hist))
}

/// Ping-pong responder: sends each message's number straight back in a
/// message of the same length.
fn echo<E: Endpoint>(ep: &mut E) -> Result<PeerReport, PeerError> {
    let mut n = 0u64;
    loop {
        let (seq, len) = ep.recv_seq()?;
        if seq == END {
            return Ok(PeerReport::Sent {
                messages: n,
                unparked: 0,
            });
        }
        ep.send_seq(seq, len)?;
        n += 1;
    }
}

/// Wake-up sender: lets the receiver fall asleep, then sends the time.
fn wake<E: Endpoint>(
    ep: &mut E,
    size: usize,
    samples: u64,
    gap_ns: u64,
    await_parked: bool,
) -> Result<PeerReport, PeerError> {
    let mut unparked = 0;
    for seq in 0..samples + WAKE_WARMUP {
        std::thread::sleep(Duration::from_nanos(gap_ns));
        if await_parked {
            let give_up = now_ns() + PARK_PATIENCE.as_nanos() as u64;
            while ep.peer_parked() == Some(false) {
                if now_ns() > give_up {
                    unparked += 1;
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        let out = ep.out();
        put_u64(out, 0, seq);
        put_u64(out, 8, now_ns());
        ep.send(size)?;
    }
    finish(ep, size)?;
    Ok(PeerReport::Sent {
        messages: samples + WAKE_WARMUP,
        unparked,
    })
}

/// Wake-up receiver: how long after its sending each message is in hand.
fn woken<E: Endpoint>(ep: &mut E) -> Result<PeerReport, PeerError> {
    let mut hist = histogram();
    let mut expected = 0;
    loop {
        let msg = ep.recv()?;
        let now = now_ns();
        let seq = get_u64(msg, 0)?;
        if seq == END {
            break;
        }
        let sent = get_u64(msg, 8)?;
        if seq != expected {
            return Err(PeerError(format!("expected message {expected}, got {seq}")));
        }
        expected += 1;
        if seq >= WAKE_WARMUP {
            hist.saturating_record(now.saturating_sub(sent));
        }
    }
    if hist.is_empty() {
        return Err(PeerError::new("no wake-up sample arrived"));
    }
    Ok(latency(&hist))
}

/// How long the idle sender waits before its first message: long enough
/// for the receiver to be asleep in its first wait, which pays the one-time
/// costs (a readiness descriptor, a pidfd, the death watcher's
/// registration, a runtime's first poll) outside the measured window.
pub const IDLE_SETTLE: Duration = Duration::from_millis(50);

/// How much longer than the receiver's window the idle sender waits
/// before its end marker, so that the window closes before the receiver
/// wakes (even on a loaded machine).
pub const IDLE_MARGIN: Duration = Duration::from_millis(200);

/// Idle receiver: the steady state of a blocked consumer. After a first
/// message (its first wait did any one-time setup) it blocks again; a
/// measuring thread, [`IDLE_SETTLE`] into that wait (the consumer is
/// parked by then), samples the run time and voluntary context switches of
/// every other thread of the process (death watcher and runtime threads
/// included) over `window_ns`. Also the CPU time of the whole wait: going
/// to sleep, the window, and waking for the end marker.
fn idle_recv<E: Endpoint>(ep: &mut E, window_ns: u64) -> Result<PeerReport, PeerError> {
    let first = get_u64(ep.recv()?, 0)?;
    if first != 0 {
        return Err(PeerError(format!(
            "expected the idle sender's first message, got message {first}"
        )));
    }
    let window = Duration::from_nanos(window_ns);
    let meter = std::thread::Builder::new()
        .name("idle-meter".into())
        .spawn(move || -> Result<(u64, u64, u64), PeerError> {
            let me = rustix::thread::gettid().as_raw_nonzero().get().to_string();
            std::thread::sleep(IDLE_SETTLE);
            let (run0, sw0) = others(&me)?;
            let t0 = now_ns();
            std::thread::sleep(window);
            let (run1, sw1) = others(&me)?;
            let wall = now_ns().saturating_sub(t0).max(1);
            Ok((run1.saturating_sub(run0), sw1.saturating_sub(sw0), wall))
        })
        .map_err(|e| PeerError(format!("starting the measuring thread: {e}")))?;
    let cpu0 = ts_ns(clock_gettime(ClockId::ThreadCPUTime));
    let msg = ep.recv()?;
    let cpu1 = ts_ns(clock_gettime(ClockId::ThreadCPUTime));
    let seq = get_u64(msg, 0)?;
    let (cpu_ns, wakeups, wall_ns) = meter
        .join()
        .map_err(|_| PeerError::new("the measuring thread panicked"))??;
    if seq != END {
        return Err(PeerError(format!(
            "expected only the end marker, got message {seq}"
        )));
    }
    Ok(PeerReport::Cpu {
        cpu_ns,
        wall_ns,
        wakeups,
        wait_cpu_ns: cpu1.saturating_sub(cpu0),
    })
}

/// The run time (ns, `/proc/self/task/*/schedstat`) and voluntary context
/// switches (`/proc/self/task/*/status`) of every thread of this process
/// but the one named `except`, so far.
fn others(except: &str) -> Result<(u64, u64), PeerError> {
    let (mut run, mut switches) = (0, 0);
    let tasks = std::fs::read_dir("/proc/self/task")
        .map_err(|e| PeerError(format!("reading /proc/self/task: {e}")))?;
    for t in tasks.flatten() {
        if t.file_name().to_str() == Some(except) {
            continue;
        }
        // A thread that exited in between has no files any more.
        let Ok(stat) = std::fs::read_to_string(t.path().join("schedstat")) else {
            continue;
        };
        run += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        switches += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok((run, switches))
}
