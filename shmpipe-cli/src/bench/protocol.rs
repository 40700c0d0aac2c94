//! What the coordinator and its peer processes say to each other.
//!
//! The coordinator (`shmpipe bench`) starts every peer as `shmpipe
//! bench-peer --run-id PID --spec JSON`, where the JSON is a [`PeerSpec`]:
//! which channel to open (a link: a JSON object whose `kind` names the
//! family that reads the rest, see `mechanisms/`), what to do on it
//! ([`Job`]) and how large the messages are. A peer prints `ready` on its
//! stdout once its end of the channel is open, then one JSON line, its
//! [`PeerReport`], and exits 0; on failure it prints the reason on stderr
//! and exits non-zero.

use serde::{Deserialize, Serialize};

/// What is measured.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// One-way streaming: messages/s and bytes/s, per message size.
    Throughput,
    /// Round trips of 64-byte messages: p50, p99, p99.9, max.
    Pingpong,
    /// Time from a publish to a blocked consumer running.
    Wakeup,
    /// CPU used by a consumer blocked with nothing to receive.
    IdleCpu,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 4] = [
        Workload::Throughput,
        Workload::Pingpong,
        Workload::Wakeup,
        Workload::IdleCpu,
    ];

    /// The name used on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Throughput => "throughput",
            Workload::Pingpong => "pingpong",
            Workload::Wakeup => "wakeup",
            Workload::IdleCpu => "idle-cpu",
        }
    }
}

/// What a peer does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "kebab-case")]
pub enum Job {
    /// Send numbered messages for `duration_ns`, then the end marker.
    Stream { duration_ns: u64 },
    /// Receive and check numbered messages until the end marker; report
    /// the rate after `warmup_ns`.
    Drain { warmup_ns: u64 },
    /// Time round trips for `duration_ns` after `warmup_ns`, then send the
    /// end marker.
    Ping { duration_ns: u64, warmup_ns: u64 },
    /// Send every message received straight back, until the end marker.
    Echo,
    /// `samples` times: sleep `gap_ns` (and, with `await_parked`, until the
    /// consumer is asleep), then send the time.
    Wake {
        samples: u64,
        gap_ns: u64,
        await_parked: bool,
    },
    /// Receive timestamps and record how late each arrived.
    Woken,
    /// Sleep [`IDLE_SETTLE`](super::jobs::IDLE_SETTLE), send one message
    /// (the receiver's first wait, which does any one-time setup), sleep
    /// `idle_ns` and [`IDLE_MARGIN`](super::jobs::IDLE_MARGIN), then send
    /// the end marker.
    IdleSend { idle_ns: u64 },
    /// Receive the first message, then block in a receive until the end
    /// marker; report the CPU time and wake-ups of the receiving process
    /// over `window_ns` of that wait, from [`IDLE_SETTLE`](super::jobs::IDLE_SETTLE)
    /// after it began (it is parked by then), and the CPU time of the
    /// whole wait.
    IdleRecv { window_ns: u64 },
}

/// Everything a peer process needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSpec {
    /// `{"kind": FAMILY, ...}`: what the family needs to open this end.
    pub link: serde_json::Value,
    pub job: Job,
    /// Every message is exactly this long (at least 8 bytes; 16 for the
    /// wake-up jobs, whose messages also carry a time).
    pub msg_size: usize,
    /// Pin to this CPU first.
    pub cpu: Option<usize>,
}

/// What a peer found, printed as one JSON line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PeerReport {
    /// A sending side finished: how many messages it sent, and how many
    /// wake-up samples it had to send without seeing the consumer asleep.
    Sent { messages: u64, unparked: u64 },
    /// Messages received in the measured window.
    Rate { messages: u64, elapsed_ns: u64 },
    /// A latency distribution, in nanoseconds.
    Latency {
        samples: u64,
        p50_ns: u64,
        p99_ns: u64,
        p999_ns: u64,
        max_ns: u64,
    },
    /// CPU time used while parked over `wall_ns` of wall-clock time, and
    /// the voluntary context switches of all the receiver's threads in
    /// that time (each a wake-up); the CPU time of the whole wait.
    Cpu {
        cpu_ns: u64,
        wall_ns: u64,
        wakeups: u64,
        wait_cpu_ns: u64,
    },
}

/// The sequence number that ends a stream.
pub const END: u64 = u64::MAX;

/// The message size of the latency and idle workloads.
pub const LATENCY_MSG: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_through_json() {
        let spec = PeerSpec {
            link: serde_json::json!({"kind": "ring", "tx": "shm:a", "rx": null, "wait": "spin-park"}),
            job: Job::Wake {
                samples: 3,
                gap_ns: 1000,
                await_parked: true,
            },
            msg_size: 64,
            cpu: Some(1),
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<PeerSpec>(&json).unwrap(), spec);
        let r = PeerReport::Rate {
            messages: 5,
            elapsed_ns: 7,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"kind":"rate","messages":5,"elapsed_ns":7}"#);
    }

    #[test]
    fn names_match_clap() {
        use clap::ValueEnum;
        for w in Workload::ALL {
            assert_eq!(w.to_possible_value().unwrap().get_name(), w.name());
        }
    }
}
