//! What the coordinator and its peer processes say to each other.
//!
//! The coordinator (`shmpipe bench`) starts every peer as `shmpipe
//! bench-peer --run-id PID --spec JSON`, where the JSON is a [`PeerSpec`]:
//! which channel to open ([`Link`]), what to do on it ([`Job`]) and how
//! large the messages are. A peer prints `ready` on its stdout once its end
//! of the channel is open, then one JSON line, its [`Report`], and exits 0;
//! on failure it prints the reason on stderr and exits non-zero.

use serde::{Deserialize, Serialize};

/// A way to move messages between two processes: one row family of the
/// table.
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
pub enum Mechanism {
    /// shmpipe, both sides busy-spinning (`WaitStrategy::Spin`).
    ShmpipeSpin,
    /// shmpipe's default: spin for 50 µs, then sleep on a futex.
    ShmpipeSpinPark,
    /// shmpipe, sleeping on the futex at once (`WaitStrategy::Park`).
    ShmpipePark,
    /// shmpipe (default waiting) on huge pages.
    ShmpipeHuge,
    /// An anonymous pipe (`pipe2`).
    Pipe,
    /// A UNIX stream socket pair.
    UnixStream,
    /// A UNIX seqpacket socket pair.
    UnixSeqpacket,
    /// A UNIX datagram socket pair (not run unless asked for).
    UnixDgram,
    /// A POSIX message queue (`mq_open`).
    PosixMq,
    /// A System V message queue (`msgget`).
    SysvMq,
}

impl Mechanism {
    /// Every mechanism, in table order.
    pub const ALL: [Mechanism; 10] = [
        Mechanism::ShmpipeSpin,
        Mechanism::ShmpipeSpinPark,
        Mechanism::ShmpipePark,
        Mechanism::ShmpipeHuge,
        Mechanism::Pipe,
        Mechanism::UnixStream,
        Mechanism::UnixSeqpacket,
        Mechanism::UnixDgram,
        Mechanism::PosixMq,
        Mechanism::SysvMq,
    ];

    /// The mechanisms run when none are named (all but `unix-dgram`, which
    /// measures the same as `unix-seqpacket` on Linux).
    pub fn defaults() -> Vec<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .filter(|&m| m != Mechanism::UnixDgram)
            .collect()
    }

    /// The name used on the command line, in the table and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ShmpipeSpin => "shmpipe-spin",
            Mechanism::ShmpipeSpinPark => "shmpipe-spin-park",
            Mechanism::ShmpipePark => "shmpipe-park",
            Mechanism::ShmpipeHuge => "shmpipe-huge",
            Mechanism::Pipe => "pipe",
            Mechanism::UnixStream => "unix-stream",
            Mechanism::UnixSeqpacket => "unix-seqpacket",
            Mechanism::UnixDgram => "unix-dgram",
            Mechanism::PosixMq => "posix-mq",
            Mechanism::SysvMq => "sysv-mq",
        }
    }

    /// Whether this is one of the shmpipe variants.
    pub fn is_shmpipe(self) -> bool {
        matches!(
            self,
            Mechanism::ShmpipeSpin
                | Mechanism::ShmpipeSpinPark
                | Mechanism::ShmpipePark
                | Mechanism::ShmpipeHuge
        )
    }

    /// How the shmpipe variants wait; `None` for the others.
    pub fn wait(self) -> Option<Wait> {
        match self {
            Mechanism::ShmpipeSpin => Some(Wait::Spin),
            Mechanism::ShmpipeSpinPark | Mechanism::ShmpipeHuge => Some(Wait::SpinPark),
            Mechanism::ShmpipePark => Some(Wait::Park),
            _ => None,
        }
    }
}

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

/// How a shmpipe peer's blocking calls wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// `WaitStrategy::Spin`.
    Spin,
    /// `WaitStrategy::DEFAULT`.
    SpinPark,
    /// `WaitStrategy::Park`.
    Park,
}

/// How messages are delimited on a file descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// A byte stream (pipe, stream socket): every message is exactly
    /// `msg_size` bytes, written and read in full.
    Stream,
    /// One message per `write`/`read` (seqpacket and datagram sockets).
    Packet,
}

/// The peer's end of the channel. File descriptors are inherited from the
/// coordinator under the same numbers; names are opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Link {
    /// shmpipe rings by address: the one to send on, the one to receive
    /// from.
    Ring {
        tx: Option<String>,
        rx: Option<String>,
        wait: Wait,
    },
    /// Inherited descriptors: pipe ends or sockets (`tx` and `rx` may be
    /// the same socket).
    Fd {
        tx: Option<i32>,
        rx: Option<i32>,
        framing: Framing,
    },
    /// POSIX message queues by name.
    PosixMq {
        tx: Option<String>,
        rx: Option<String>,
    },
    /// One System V message queue; each direction uses its own message
    /// type.
    SysvMq {
        id: i32,
        tx_type: Option<i64>,
        rx_type: Option<i64>,
    },
    /// Floor: one cache line in an inherited memfd, written by both sides
    /// (`side` 0 starts, 1 answers).
    CacheLine { fd: i32, side: u8 },
    /// Floor: one message buffer and a flag in an inherited memfd.
    Handoff { fd: i32, tx: bool },
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
    /// Sleep `idle_ns`, then send the end marker.
    IdleSend { idle_ns: u64 },
    /// Block in a receive until the end marker; report CPU time used.
    IdleRecv,
}

/// Everything a peer process needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSpec {
    pub link: Link,
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
pub enum Report {
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
    /// CPU time used while blocked over `wall_ns` of wall-clock time.
    Cpu { cpu_ns: u64, wall_ns: u64 },
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
            link: Link::Ring {
                tx: Some("shm:a".into()),
                rx: None,
                wait: Wait::SpinPark,
            },
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
        let r = Report::Rate {
            messages: 5,
            elapsed_ns: 7,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"kind":"rate","messages":5,"elapsed_ns":7}"#);
    }

    #[test]
    fn names_match_clap() {
        use clap::ValueEnum;
        for m in Mechanism::ALL {
            assert_eq!(m.to_possible_value().unwrap().get_name(), m.name());
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.name())
            );
        }
        for w in Workload::ALL {
            assert_eq!(w.to_possible_value().unwrap().get_name(), w.name());
        }
    }
}
