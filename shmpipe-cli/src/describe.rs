//! How rings are shown: aligned text for people, JSON for machines.
//!
//! The JSON schema is documented in `docs/cli.md`; fields are only ever
//! added, never renamed or removed.

use serde::Serialize;
use shmpipe::{Error, RingInfo, SideInfo, SideState, Stats, WakeBarrier};

/// `4 KiB`, `2 MiB`, `1.5 GiB`, `100 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// JSON form of a side.
#[derive(Serialize)]
pub struct SideJson {
    /// `vacant`, `attached`, `closed` or `invalid`.
    pub state: &'static str,
    pub pid: Option<u32>,
    pub alive: Option<bool>,
    pub parked: bool,
    /// The barrier this side's waits pay: `membarrier` (its peer publishes
    /// with no fence) or `fence` (symmetric fallback).
    pub wake_barrier: String,
    pub stats: StatsJson,
}

#[derive(Serialize)]
pub struct StatsJson {
    pub messages: u64,
    pub bytes: u64,
    pub stalls: u64,
    pub futex_waits: u64,
    pub futex_wakes: u64,
    pub spin_rounds: u64,
    pub wait_timeouts: u64,
}

impl From<&Stats> for StatsJson {
    fn from(s: &Stats) -> Self {
        StatsJson {
            messages: s.messages,
            bytes: s.bytes,
            stalls: s.stalls,
            futex_waits: s.futex_waits,
            futex_wakes: s.futex_wakes,
            spin_rounds: s.spin_rounds,
            wait_timeouts: s.wait_timeouts,
        }
    }
}

impl From<&SideInfo> for SideJson {
    fn from(s: &SideInfo) -> Self {
        let (state, pid, alive) = match s.state {
            SideState::Vacant => ("vacant", None, None),
            SideState::Attached { pid, alive } => ("attached", Some(pid), Some(alive)),
            SideState::Closed { pid } => ("closed", Some(pid), None),
            _ => ("invalid", None, None),
        };
        SideJson {
            state,
            pid,
            alive,
            parked: s.parked,
            wake_barrier: s.barrier.to_string(),
            stats: (&s.stats).into(),
        }
    }
}

/// JSON form of a ring (`inspect --json`, one entry of `list --json`).
#[derive(Serialize)]
pub struct RingJson {
    pub address: String,
    /// `ok`, `stale` (creator and holders dead), `corrupt`, `incompatible`
    /// (another layout version), `uninitialized` or `unreadable`.
    pub status: &'static str,
    /// For any status but `ok` and `stale`: what is wrong.
    pub error: Option<String>,
    /// For `corrupt`: the field, the value found and the rule.
    pub corrupt_field: Option<CorruptJson>,
    pub backend: Option<String>,
    pub path: Option<String>,
    pub sysv_id: Option<i32>,
    pub attach_count: Option<u64>,
    pub mode: Option<String>,
    pub page_size: Option<u64>,
    pub huge_page_fallback: Option<String>,
    pub slots: Option<u64>,
    pub slot_size: Option<u64>,
    pub max_message: Option<u64>,
    pub total_len: Option<u64>,
    pub mapped_len: Option<u64>,
    pub head: Option<u64>,
    pub tail: Option<u64>,
    /// Messages waiting (`tail - head`).
    pub len: Option<u64>,
    /// `len / slots`.
    pub fill: Option<f64>,
    pub creator_pid: Option<u32>,
    pub creator_alive: Option<bool>,
    pub producer: Option<SideJson>,
    pub consumer: Option<SideJson>,
}

#[derive(Serialize)]
pub struct CorruptJson {
    pub field: &'static str,
    pub found: u64,
    pub expected: String,
}

/// Whether nobody alive created or holds the ring.
pub fn is_stale(info: &RingInfo) -> bool {
    let live = |s: &SideInfo| matches!(s.state, SideState::Attached { alive: true, .. });
    !info.creator_alive && !live(&info.producer) && !live(&info.consumer)
}

/// The status word and message for a ring that could not be opened.
pub fn error_status(e: &Error) -> &'static str {
    match e {
        Error::Corrupt { .. } | Error::BadMagic { .. } => "corrupt",
        Error::VersionMismatch { .. } => "incompatible",
        Error::NotInitialized { .. } => "uninitialized",
        _ => "unreadable",
    }
}

impl RingJson {
    pub fn from_info(info: &RingInfo) -> RingJson {
        let len = info.len();
        RingJson {
            address: info.address.clone(),
            status: if is_stale(info) { "stale" } else { "ok" },
            error: None,
            corrupt_field: None,
            backend: Some(info.backend.to_string()),
            path: info.path.as_ref().map(|p| p.display().to_string()),
            sysv_id: info.sysv_id,
            attach_count: info.attach_count,
            mode: info.mode.map(|m| format!("{m:04o}")),
            page_size: Some(info.page_size),
            huge_page_fallback: info.huge_page_fallback.clone(),
            slots: Some(info.slots),
            slot_size: Some(info.slot_size),
            max_message: Some(info.max_message),
            total_len: Some(info.total_len),
            mapped_len: Some(info.mapped_len),
            head: Some(info.head),
            tail: Some(info.tail),
            len,
            fill: len.map(|l| l as f64 / info.slots as f64),
            creator_pid: Some(info.creator_pid),
            creator_alive: Some(info.creator_alive),
            producer: Some((&info.producer).into()),
            consumer: Some((&info.consumer).into()),
        }
    }

    pub fn from_error(address: String, e: &Error) -> RingJson {
        let corrupt_field = match e {
            Error::Corrupt { corruption, .. } => Some(CorruptJson {
                field: corruption.field,
                found: corruption.found,
                expected: corruption.expected.to_string(),
            }),
            _ => None,
        };
        RingJson {
            address,
            status: error_status(e),
            error: Some(e.to_string()),
            corrupt_field,
            backend: None,
            path: None,
            sysv_id: None,
            attach_count: None,
            mode: None,
            page_size: None,
            huge_page_fallback: None,
            slots: None,
            slot_size: None,
            max_message: None,
            total_len: None,
            mapped_len: None,
            head: None,
            tail: None,
            len: None,
            fill: None,
            creator_pid: None,
            creator_alive: None,
            producer: None,
            consumer: None,
        }
    }
}

/// One side in words: `pid 123 (alive, parked)`.
pub fn side_text(s: &SideInfo) -> String {
    let mut t = match s.state {
        SideState::Vacant => "none yet".to_owned(),
        SideState::Attached { pid, alive: true } => format!("pid {pid} (alive)"),
        SideState::Attached { pid, alive: false } => {
            format!("pid {pid} (DEAD: its side can be taken over)")
        }
        SideState::Closed { pid } => format!("closed (last held by pid {pid})"),
        SideState::Invalid { state } => format!("INVALID claim state {state}"),
        _ => "unknown".to_owned(),
    };
    if matches!(s.state, SideState::Attached { .. }) {
        t.push_str(match s.barrier {
            WakeBarrier::Membarrier => ", waits pay membarrier",
            _ => ", waits need a fence per publish",
        });
    }
    if s.parked {
        t.push_str(", parked in the kernel");
    }
    t
}

/// Counters in words.
pub fn stats_text(s: &Stats, verb: &str, stall: &str) -> String {
    format!(
        "{} {verb} ({}), {} times found {stall}, {} futex waits, {} wakes sent, {} spins",
        s.messages,
        bytes(s.bytes),
        s.stalls,
        s.futex_waits,
        s.futex_wakes,
        s.spin_rounds
    )
}

/// The full human description of a ring, for `create` and `inspect`.
pub fn info_text(info: &RingInfo) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<14} {v}\n"));
    let backend = match &info.path {
        Some(p) => format!("{} ({})", info.backend, p.display()),
        None => info.backend.to_string(),
    };
    line("backend", backend);
    if let Some(id) = info.sysv_id {
        let attached = info
            .attach_count
            .map_or(String::new(), |n| format!(", {n} attached"));
        line("sysv id", format!("{id}{attached}"));
    }
    if let Some(m) = info.mode {
        line("mode", format!("{m:04o}"));
    }
    line("page size", bytes(info.page_size));
    if let Some(why) = &info.huge_page_fallback {
        line("huge pages", format!("not used: {why}"));
    }
    line(
        "geometry",
        format!(
            "{} slots x {} (messages up to {} B)",
            info.slots,
            bytes(info.slot_size),
            info.max_message
        ),
    );
    line(
        "size",
        format!(
            "{} used, {} mapped ({} pages)",
            bytes(info.total_len),
            bytes(info.mapped_len),
            info.mapped_len / info.page_size.max(1)
        ),
    );
    let fill = match info.len() {
        Some(n) => format!(
            "{n} waiting ({:.1}% full)",
            100.0 * n as f64 / info.slots as f64
        ),
        None => "INCONSISTENT (tail < head or beyond capacity)".to_owned(),
    };
    line(
        "head / tail",
        format!("{} / {}: {fill}", info.head, info.tail),
    );
    line(
        "creator",
        format!(
            "pid {} ({})",
            info.creator_pid,
            if info.creator_alive {
                "alive"
            } else {
                "exited"
            }
        ),
    );
    line("producer", side_text(&info.producer));
    line("consumer", side_text(&info.consumer));
    line("sent", stats_text(&info.producer.stats, "messages", "full"));
    line(
        "received",
        stats_text(&info.consumer.stats, "messages", "empty"),
    );
    if is_stale(info) {
        line(
            "status",
            "stale: its creator and holders are gone (remove it with `shmpipe rm`, or \
             create over it with --reclaim)"
                .to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(100), "100 B");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(2 << 20), "2 MiB");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
