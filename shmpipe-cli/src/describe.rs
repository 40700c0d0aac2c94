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

/// A user's name from `/etc/passwd`, or the number for one without a name.
pub fn user(uid: u32) -> String {
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|t| {
        t.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            f.next()?;
            (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
    });
    name.unwrap_or_else(|| uid.to_string())
}

/// `1 message`, `2 messages`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whether a ring is used, or what is left in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Its creator or a side's holder is alive.
    InUse,
    /// Nobody alive holds it, its producer closed, and messages wait for a
    /// reader.
    Finished { waiting: u64 },
    /// Nobody alive holds it, its producer died or never came, and messages
    /// wait for a reader.
    Abandoned { waiting: u64 },
    /// Nothing is left that anyone could want: nobody alive created or
    /// holds it, and no message waits.
    Stale,
}

impl Status {
    /// The JSON `status` word.
    pub fn word(self) -> &'static str {
        match self {
            Status::InUse => "ok",
            Status::Finished { .. } => "finished",
            Status::Abandoned { .. } => "abandoned",
            Status::Stale => "stale",
        }
    }

    /// The status in words, for `list`: `finished, 1 message waiting`.
    pub fn text(self) -> String {
        match self {
            Status::InUse | Status::Stale => self.word().to_owned(),
            Status::Finished { waiting } | Status::Abandoned { waiting } => format!(
                "{}, {} waiting",
                self.word(),
                plural(waiting, "message", "messages")
            ),
        }
    }
}

/// The ring's [`Status`].
pub fn status(info: &RingInfo) -> Status {
    let live = |s: &SideInfo| matches!(s.state, SideState::Attached { alive: true, .. });
    if info.creator_alive || live(&info.producer) || live(&info.consumer) {
        return Status::InUse;
    }
    // Inconsistent indices: what waits is unknown, so not stale either.
    let waiting = info.len().unwrap_or(u64::MAX);
    match (waiting, info.producer.state) {
        (0, _) => Status::Stale,
        (waiting, SideState::Closed { .. }) => Status::Finished { waiting },
        (waiting, _) => Status::Abandoned { waiting },
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
    /// `ok` (in use), `finished` or `abandoned` (nobody holds it, messages
    /// wait), `stale` (nothing left anyone could want), `corrupt`,
    /// `incompatible` (another layout version), `uninitialized`, `missing`,
    /// `denied`, `exists`, `invalid` or `unreadable`.
    pub status: &'static str,
    /// For an error status: what is wrong, and what to do.
    pub error: Option<String>,
    /// For an error status: the command's exit code.
    pub exit_code: Option<u8>,
    /// The segment's owner: a user name (`root`), or the uid for a user
    /// without one.
    pub owner: Option<String>,
    /// The owner's user id.
    pub uid: Option<u32>,
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
    /// The largest message over any number of slots.
    pub message_limit: Option<u64>,
    /// Every payload's address is a multiple of this.
    pub payload_align: Option<u64>,
    /// Whether messages cross the end of the ring as one slice (double
    /// mapping) rather than the producer padding there.
    pub contiguous_wrap: Option<bool>,
    /// The message type the ring was created for, if typed.
    pub message_type: Option<String>,
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

/// Whether nothing is left in the ring that anyone could want: nobody
/// alive created or holds it, and no message waits.
pub fn is_stale(info: &RingInfo) -> bool {
    status(info) == Status::Stale
}

/// The status word for a ring that could not be opened (or created).
pub fn error_status(e: &Error) -> &'static str {
    match e {
        Error::Corrupt { .. } | Error::BadMagic { .. } => "corrupt",
        Error::VersionMismatch { .. } => "incompatible",
        Error::NotInitialized { .. } => "uninitialized",
        Error::NotFound { .. } => "missing",
        Error::PermissionDenied { .. } => "denied",
        Error::AlreadyExists { .. } | Error::AlreadyClaimed { .. } | Error::InUse { .. } => {
            "exists"
        }
        Error::InvalidAddress { .. } | Error::InvalidConfig { .. } => "invalid",
        _ => "unreadable",
    }
}

impl RingJson {
    pub fn from_info(info: &RingInfo) -> RingJson {
        let len = info.len();
        RingJson {
            address: info.address.clone(),
            status: status(info).word(),
            error: None,
            exit_code: None,
            owner: info.owner.map(user),
            uid: info.owner,
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
            message_limit: Some(info.message_limit),
            payload_align: Some(info.payload_align),
            contiguous_wrap: Some(info.contiguous_wrap),
            message_type: info.fingerprint.as_ref().map(ToString::to_string),
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

    /// A failed command as JSON: `status` from the error, its message and
    /// exit code.
    pub fn from_failure(
        address: String,
        status: &'static str,
        f: &crate::fail::Failure,
    ) -> RingJson {
        let mut j = RingJson::from_error(
            address,
            &Error::NotFound {
                address: String::new(),
            },
        );
        j.status = status;
        j.error = Some(f.message.clone());
        j.exit_code = Some(f.code);
        j
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
        let (uid, mode) = match e {
            Error::PermissionDenied { owner, mode, .. } => (*owner, *mode),
            _ => (None, None),
        };
        RingJson {
            address,
            status: error_status(e),
            error: Some(e.to_string()),
            exit_code: Some(crate::fail::Failure::from_ref(e).code),
            owner: uid.map(user),
            uid,
            corrupt_field,
            backend: None,
            path: None,
            sysv_id: None,
            attach_count: None,
            mode: mode.map(|m| format!("{m:04o}")),
            page_size: None,
            huge_page_fallback: None,
            slots: None,
            slot_size: None,
            max_message: None,
            message_limit: None,
            payload_align: None,
            contiguous_wrap: None,
            message_type: None,
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
pub fn stats_text(s: &Stats, stall: &str) -> String {
    format!(
        "{} ({}), {} found {stall}, {}, {} sent, {}",
        plural(s.messages, "message", "messages"),
        bytes(s.bytes),
        plural(s.stalls, "time", "times"),
        plural(s.futex_waits, "futex wait", "futex waits"),
        plural(s.futex_wakes, "wake", "wakes"),
        plural(s.spin_rounds, "spin", "spins")
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
            "{} slots x {} (messages up to {} B in one slot, {} B in all)",
            info.slots,
            bytes(info.slot_size),
            info.max_message,
            info.message_limit
        ),
    );
    line(
        "payload",
        format!(
            "aligned to {} B; {}",
            info.payload_align,
            if info.contiguous_wrap {
                "messages cross the wrap (slot area mapped twice)"
            } else {
                "padded at the wrap"
            }
        ),
    );
    if let Some(t) = &info.fingerprint {
        line("message type", t.to_string());
    }
    line(
        "size",
        format!(
            "{} used, {} mapped ({})",
            bytes(info.total_len),
            bytes(info.mapped_len),
            plural(info.mapped_len / info.page_size.max(1), "page", "pages")
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
    line("sent", stats_text(&info.producer.stats, "full"));
    line("received", stats_text(&info.consumer.stats, "empty"));
    match status(info) {
        Status::InUse => {}
        Status::Stale => line(
            "status",
            "stale: its creator and holders are gone and no message waits (remove it with \
             `shmpipe rm`, or create over it with --reclaim)"
                .to_owned(),
        ),
        st @ (Status::Finished { .. } | Status::Abandoned { .. }) => line(
            "status",
            format!(
                "{}: nobody holds it; `shmpipe recv {}` reads {} (`shmpipe rm` keeps it \
                 unless --force)",
                st.text(),
                info.address,
                if st.word() == "finished" {
                    "them"
                } else {
                    "them (its producer died or never came: use --resume)"
                }
            ),
        ),
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

    #[test]
    fn plurals() {
        let mut s = Stats::default();
        assert_eq!(
            stats_text(&s, "full"),
            "0 messages (0 B), 0 times found full, 0 futex waits, 0 wakes sent, 0 spins"
        );
        s.messages = 1;
        s.stalls = 1;
        s.futex_waits = 1;
        s.futex_wakes = 1;
        s.spin_rounds = 1;
        assert_eq!(
            stats_text(&s, "full"),
            "1 message (0 B), 1 time found full, 1 futex wait, 1 wake sent, 1 spin"
        );
    }
}
