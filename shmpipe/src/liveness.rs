//! Process identity and liveness: whether the process holding a claim (a
//! peer, or a ring's creator) still runs.
//!
//! A side's claim in the header records the holder's pid *and* its start
//! time (`/proc/PID/stat` field 22, clock ticks after boot). A peer counts as
//! alive only if a process with that pid exists, is not a zombie, and
//! started at that time; so a zombie (dead, not yet reaped) counts as dead,
//! and so does an unrelated process that was given the recycled pid.
//! `kill(pid, 0)` alone gets both wrong.
//!
//! Once a holder has been verified, the watcher keeps a pidfd for it
//! (`pidfd_open(2)`, Linux 5.3): the pidfd refers to that very process, so
//! later checks are one `poll(2)` with a zero timeout, which reports the
//! process's exit (zombie included) and cannot be fooled by pid reuse.
//! Without pidfd support the watcher re-reads `/proc/PID/stat` each time.
//!
//! Why not the alternatives (see `docs/design.md`): a robust mutex belongs
//! to a *thread*, but handles are `Send` and may outlive the thread that
//! claimed; a `flock` belongs to an open file description, which `fork` and
//! fd passing share (a false "alive"), and memfd and System V segments have
//! no lock file to take.
//!
//! Both processes must share a PID namespace.

use std::os::fd::OwnedFd;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use crate::layout::{Claim, START_MASK};

/// What `/proc/PID/stat` says about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z`, `X`, ...
    pub(crate) state: u8,
    /// Field 22: start time in clock ticks after boot.
    pub(crate) start: u64,
}

/// Parses the contents of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the *last* `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Fields 4..=21 come next; field 22 is the 19th after the state.
    let start = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start })
}

/// Reads `/proc/PID/stat`; `None` if the process does not exist (or `/proc`
/// is not mounted).
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// This process's identity as recorded in a claim: its pid and start time.
/// The start time is 0 where `/proc` cannot be read.
pub(crate) fn current() -> (u32, u64) {
    let pid = std::process::id();
    #[cfg(any(loom, miri))]
    let start = 0;
    #[cfg(not(any(loom, miri)))]
    let start = proc_stat(pid).map_or(0, |s| s.start);
    (pid, start)
}

/// Whether a process matches a claim's identity: it exists, it is not a
/// zombie, and (when both are known) its start time matches.
fn matches(pid: u32, start: u64) -> Option<bool> {
    let stat = proc_stat(pid)?;
    if matches!(stat.state, b'Z' | b'X' | b'x') {
        return Some(false);
    }
    // Claims keep the low bits of the start time.
    Some(start == 0 || stat.start & START_MASK == start & START_MASK)
}

/// Tracks whether the holder of a claim is alive, caching a pidfd for the
/// holder it last verified.
#[derive(Debug, Default)]
pub(crate) struct ProcessWatch {
    /// The claim word verified last, and the pidfd for its process.
    verified: Option<(u64, Option<OwnedFd>)>,
}

impl ProcessWatch {
    /// Whether the process holding `claim` is alive.
    pub(crate) fn is_alive(&mut self, claim: Claim) -> bool {
        let (me, my_start) = current_cached();
        if claim.pid() == me && (claim.start() == my_start & START_MASK || my_start == 0) {
            return true;
        }
        if let Some((word, fd)) = &self.verified {
            if *word == claim.0 {
                return match fd {
                    Some(fd) => !pidfd_exited(fd),
                    None => matches(claim.pid(), claim.start()).unwrap_or(false),
                };
            }
        }
        self.verified = None;
        let pid = claim.pid();
        let Some(raw) = Pid::from_raw(pid as i32) else {
            return false; // pid 0 or out of range: nobody
        };
        let fd = match pidfd_open(raw, PidfdFlags::empty()) {
            Ok(fd) => Some(fd),
            Err(Errno::SRCH) => return false,
            // ENOSYS (old kernel), EPERM (seccomp), EMFILE: fall back to /proc.
            Err(_) => None,
        };
        // Verify the identity *after* opening the pidfd: if this process is
        // the claimant now, the pidfd refers to the claimant forever.
        let alive = match matches(pid, claim.start()) {
            Some(m) => m,
            // No /proc entry: dead, unless /proc is unusable and the pidfd
            // says it still runs.
            None => fd.as_ref().is_some_and(|fd| !pidfd_exited(fd)),
        };
        if alive {
            self.verified = Some((claim.0, fd));
        }
        alive
    }
}

/// Whether the process behind `fd` has exited (a zombie counts).
fn pidfd_exited(fd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    match poll(&mut fds, Some(&rustix::time::Timespec::default())) {
        Ok(n) => n > 0 && fds[0].revents().intersects(PollFlags::IN | PollFlags::HUP),
        Err(_) => false,
    }
}

/// [`current`], cached per process (and refreshed after `fork`).
pub(crate) fn current_cached() -> (u32, u64) {
    // A process-local cache, not protocol state: loom need not model it.
    #[allow(clippy::disallowed_types)]
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    // Packed pid (high 24 bits) and start (low 40 bits); 0 = not yet read.
    #[allow(clippy::disallowed_types)]
    static CACHE: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    let packed = CACHE.load(Relaxed);
    if packed != 0 && (packed >> 40) as u32 == pid {
        return (pid, packed & ((1 << 40) - 1));
    }
    let (pid, start) = current();
    CACHE.store((u64::from(pid) << 40) | (start & ((1 << 40) - 1)), Relaxed);
    (pid, start & ((1 << 40) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let line = "1234 (a) b) (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, b'S');
        assert_eq!(s.start, 987654);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[cfg(not(miri))]
    #[test]
    fn self_is_alive_and_bogus_pids_are_not() {
        let (pid, start) = current();
        assert_eq!(pid, std::process::id());
        assert!(start > 0);
        let mut w = ProcessWatch::default();
        use crate::layout::{Claim, STATE_ATTACHED};
        assert!(w.is_alive(Claim::new(STATE_ATTACHED, pid, start)));
        // pid 1 exists but started long before us: a "recycled" identity.
        assert!(!w.is_alive(Claim::new(STATE_ATTACHED, 1, start + 12345)));
        // A pid above pid_max exists nowhere.
        assert!(!w.is_alive(Claim::new(STATE_ATTACHED, 4_194_303, 1)));
    }
}
