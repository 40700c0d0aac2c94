//! The run's settings, from the command line, and the ring geometry per
//! message size.

use std::time::Duration;

use rustix::thread::CpuSet;

use super::mechanisms::Mechanism;
use super::protocol::Workload;
use super::BenchArgs;
use crate::fail::Failure;

/// The message sizes streamed when none are given.
pub const DEFAULT_SIZES: [usize; 5] = [8, 64, 512, 4096, 65536];

/// A ring's shape: slot count and slot size (8-byte header included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingShape {
    pub slots: u64,
    pub slot_size: u64,
}

/// Most bytes of ring: one core's L2 on the machine this was tuned on
/// (512 KiB per core, AMD Zen 3), so that the slots stay in cache while
/// both sides work. With 64 KiB messages a 256 KiB ring streamed 1.6-2x
/// faster than a 1 MiB one.
const RING_BYTES: u64 = 512 << 10;

/// The ring for `msg_size`-byte messages: the smallest slot that holds
/// them, and the largest power-of-two number of slots (4 to 4096) that
/// keeps the ring within 512 KiB.
pub fn ring_shape(msg_size: usize) -> RingShape {
    let slot_size = (msg_size as u64 + 8).next_multiple_of(64);
    let fit = (RING_BYTES / slot_size).max(1);
    let slots = (1u64 << (63 - fit.leading_zeros())).clamp(4, 4096);
    RingShape { slots, slot_size }
}

/// Everything that shapes a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub mechanisms: Vec<Mechanism>,
    pub workloads: Vec<Workload>,
    pub sizes: Vec<usize>,
    /// (producer CPU, consumer CPU); `None`: not pinned (`--no-pin`, or
    /// a single usable CPU).
    pub cpus: Option<(usize, usize)>,
    pub reps: u32,
    /// Sending time of each throughput case, and measured time of each
    /// ping-pong case.
    pub duration: Duration,
    pub wakeup_samples: u64,
    /// Pause before each wake-up sample (the consumer falls asleep).
    pub wakeup_gap: Duration,
    pub idle: Duration,
    pub quick: bool,
    pub json: bool,
    /// `--report DIR`.
    pub report: Option<std::path::PathBuf>,
    pub raise_limits: bool,
}

impl Config {
    /// Settles the defaults and checks what clap cannot.
    pub fn from_args(a: BenchArgs) -> Result<Config, Failure> {
        let q = a.quick;
        let mut mechanisms = if a.mechanisms.is_empty() {
            Mechanism::defaults()
        } else {
            a.mechanisms
        };
        // The reference runs whenever its workloads do, not as a row of
        // its own choosing.
        mechanisms.retain(|&m| m != Mechanism::BareRing);
        mechanisms.sort();
        mechanisms.dedup();
        let mut workloads = if a.workloads.is_empty() {
            Workload::ALL.to_vec()
        } else {
            a.workloads
        };
        workloads.sort();
        workloads.dedup();
        let mut sizes = if a.sizes.is_empty() {
            DEFAULT_SIZES.to_vec()
        } else {
            a.sizes
        };
        sizes.sort_unstable();
        sizes.dedup();
        let allowed = rustix::thread::sched_getaffinity(None)
            .map_err(|e| Failure::new(1, format!("reading this process's CPUs: {e}")))?;
        let usable: Vec<usize> = (0..CpuSet::MAX_CPU)
            .filter(|&i| allowed.is_set(i))
            .collect();
        let cpus = match a.cpus {
            _ if a.no_pin => None,
            Some((p, c)) => {
                for (who, cpu) in [("producer", p), ("consumer", c)] {
                    if !usable.contains(&cpu) {
                        let list: Vec<String> = usable.iter().map(|i| i.to_string()).collect();
                        return Err(Failure::usage(format!(
                            "--cpus: the {who} CPU {cpu} is not available (this process may \
                             use CPUs {}; --no-pin leaves placement to the scheduler)",
                            list.join(",")
                        )));
                    }
                }
                Some((p, c))
            }
            // Pinned by default: the first two CPUs this process may use.
            None => match usable[..] {
                [p, c, ..] => Some((p, c)),
                _ => None,
            },
        };
        Ok(Config {
            mechanisms,
            workloads,
            sizes,
            cpus,
            reps: a.reps.unwrap_or(if q { 3 } else { 5 }),
            duration: a
                .duration
                .unwrap_or(Duration::from_millis(if q { 60 } else { 400 })),
            wakeup_samples: a.wakeup_samples.unwrap_or(if q { 40 } else { 200 }),
            wakeup_gap: Duration::from_millis(1),
            idle: a
                .idle
                .unwrap_or(Duration::from_millis(if q { 200 } else { 2000 })),
            quick: q,
            json: a.json,
            report: a.report,
            raise_limits: !a.no_raise_limits,
        })
    }

    /// The warm-up before a throughput or ping-pong case is timed.
    pub fn warmup(&self) -> Duration {
        self.duration / 4
    }
}

/// Parses `--cpus P,C`.
pub fn parse_cpus(s: &str) -> Result<(usize, usize), String> {
    let (p, c) = s
        .split_once(',')
        .ok_or_else(|| format!("expected PRODUCER,CONSUMER CPU numbers, got `{s}`"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{x}` is not a CPU number"))
    };
    Ok((num(p)?, num(c)?))
}

/// Parses a message size in bytes, with an optional `k`/`K` (KiB) suffix.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, mult) = match t.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1024),
        None => (t, 1),
    };
    let n = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size in bytes"))?;
    if !(super::MIN_MSG..=super::MAX_MSG).contains(&n) {
        return Err(format!(
            "{n} bytes is outside {}..={} (a message carries an 8-byte sequence number)",
            super::MIN_MSG,
            super::MAX_MSG
        ));
    }
    Ok(n)
}

/// Parses a duration: a number with `us`, `ms` or `s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("`{s}` needs a unit: us, ms or s (e.g. 250ms)"));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration"))?;
    let secs = v * unit;
    if !secs.is_finite() || secs <= 0.0 || secs > 3600.0 {
        return Err(format!("`{s}` is not between 1us and 1 hour"));
    }
    Ok(Duration::from_secs_f64(secs).max(Duration::from_micros(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_per_size() {
        let g = |s| {
            let g = ring_shape(s);
            (g.slots, g.slot_size)
        };
        assert_eq!(g(8), (4096, 64));
        assert_eq!(g(64), (4096, 128));
        assert_eq!(g(512), (512, 576));
        assert_eq!(g(4096), (64, 4160));
        assert_eq!(g(65536), (4, 65600));
        assert_eq!(g(1 << 20), (4, (1 << 20) + 64));
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_cpus("0,1"), Ok((0, 1)));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("a,1").is_err());
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert!(parse_size("4").is_err());
        assert!(parse_size("2048k").is_err());
        assert!(parse_size("x").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("2h").is_err());
    }
}
