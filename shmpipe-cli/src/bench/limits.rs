//! Message-queue limits: creating the queues a case needs, raising the
//! kernel's limits for the run where that is allowed (and saying so), and
//! restoring every limit raised when the run ends, however it ends short of
//! `SIGKILL`.
//!
//! - POSIX: `fs.mqueue.msgsize_max` and `msg_max` cap a queue's message
//!   size and depth (a process with `CAP_SYS_RESOURCE` may exceed them up
//!   to the kernel's hard limits), and `RLIMIT_MSGQUEUE` caps the bytes of
//!   all of a user's queues.
//! - System V: `kernel.msgmax` caps a message's size for everyone;
//!   `kernel.msgmnb` is a new queue's byte capacity, which `IPC_SET` can
//!   raise per queue with `CAP_SYS_RESOURCE`.

use std::io;
use std::path::Path;

use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use super::sys::{self, PosixMq};

const MQ_MSGSIZE_MAX: &str = "/proc/sys/fs/mqueue/msgsize_max";
const MQ_MSG_MAX: &str = "/proc/sys/fs/mqueue/msg_max";
const SYSV_MSGMAX: &str = "/proc/sys/kernel/msgmax";
const SYSV_MSGMNB: &str = "/proc/sys/kernel/msgmnb";

/// The depth of the queues: enough messages in flight that the queue is
/// rarely the bottleneck (a pipe holds 64 KiB), at most 64.
pub fn queue_depth(msg_size: usize) -> usize {
    ((512 << 10) / msg_size).clamp(8, 64)
}

fn sysctl_name(path: &str) -> String {
    path.trim_start_matches("/proc/sys/").replace('/', ".")
}

fn read_sysctl(path: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {text:?}")))
}

/// A system setting changed for the run.
#[derive(Debug)]
struct Raised {
    path: &'static str,
    from: u64,
    to: u64,
}

/// The limits this run has raised; restored on drop.
#[derive(Debug)]
pub struct Limits {
    allowed: bool,
    raised: Vec<Raised>,
    notes: Vec<String>,
}

impl Limits {
    /// `allowed`: whether system settings may be changed for the run.
    pub fn new(allowed: bool) -> Limits {
        Limits {
            allowed,
            raised: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// What was changed, for the report.
    pub fn notes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .raised
            .iter()
            .map(|r| {
                format!(
                    "{} raised from {} to {} for the run (restored afterwards)",
                    sysctl_name(r.path),
                    r.from,
                    r.to
                )
            })
            .collect();
        v.extend(self.notes.iter().cloned());
        v
    }

    fn why_not(&self) -> &'static str {
        if !self.allowed {
            "left alone: --no-raise-limits"
        } else if rustix::process::geteuid().is_root() {
            "and raising it failed"
        } else {
            "raising it needs root"
        }
    }

    /// Raises the sysctl at `path` to at least `want`; whether it now is.
    fn raise(&mut self, path: &'static str, want: u64) -> bool {
        let Ok(cur) = read_sysctl(path) else {
            return false;
        };
        if cur >= want {
            return true;
        }
        if !self.allowed || std::fs::write(path, want.to_string()).is_err() {
            return false;
        }
        match self.raised.iter_mut().find(|r| r.path == path) {
            Some(r) => r.to = want,
            None => self.raised.push(Raised {
                path,
                from: cur,
                to: want,
            }),
        }
        true
    }

    /// Raises this process's `RLIMIT_MSGQUEUE` to at least `bytes`.
    fn raise_rlimit(&mut self, bytes: u64) -> bool {
        let cur = getrlimit(Resource::Msgqueue);
        if cur.current.is_none_or(|c| c >= bytes) {
            return true;
        }
        let max = match cur.maximum {
            Some(m) if m < bytes => Some(bytes),
            m => m,
        };
        let new = Rlimit {
            current: Some(bytes),
            maximum: max,
        };
        if setrlimit(Resource::Msgqueue, new).is_err() {
            return false;
        }
        self.notes.push(format!(
            "RLIMIT_MSGQUEUE of the benchmark raised to {bytes} bytes (this process only)"
        ));
        true
    }

    /// Creates POSIX queue `name` for `depth` messages of `size` bytes,
    /// raising limits as needed. Returns the queue and, if the depth had
    /// to be reduced, a note saying so; or why it cannot be had.
    pub fn posix_mq(
        &mut self,
        name: &str,
        depth: usize,
        size: usize,
    ) -> Result<(PosixMq, Option<String>), String> {
        let mut depth = depth;
        let mut note = None;
        for _ in 0..4 {
            let e = match PosixMq::create(name, depth, size) {
                Ok(q) => return Ok((q, note)),
                Err(e) => e,
            };
            match Errno::from_io_error(&e) {
                Some(Errno::INVAL) => {
                    let size_max = read_sysctl(MQ_MSGSIZE_MAX).unwrap_or(0);
                    let msg_max = read_sysctl(MQ_MSG_MAX).unwrap_or(0);
                    let mut changed = false;
                    if size as u64 > size_max {
                        if !self.raise(MQ_MSGSIZE_MAX, size as u64) {
                            return Err(format!(
                                "{size}-byte messages exceed fs.mqueue.msgsize_max = \
                                 {size_max} ({})",
                                self.why_not()
                            ));
                        }
                        changed = true;
                    }
                    if depth as u64 > msg_max {
                        if self.raise(MQ_MSG_MAX, depth as u64) {
                            changed = true;
                        } else if msg_max >= 1 {
                            depth = msg_max as usize;
                            note = Some(format!(
                                "queue depth limited to {depth} by fs.mqueue.msg_max ({})",
                                self.why_not()
                            ));
                            changed = true;
                        }
                    }
                    if !changed {
                        return Err(format!("mq_open: {e}"));
                    }
                }
                Some(Errno::MFILE) => {
                    // Kernel accounting: the messages plus per-message
                    // bookkeeping; twice the payload is ample.
                    let want = 2 * (depth * size) as u64 + (64 << 10);
                    if !self.raise_rlimit(want) {
                        return Err(format!(
                            "a queue of {depth} x {size} bytes exceeds RLIMIT_MSGQUEUE ({})",
                            self.why_not()
                        ));
                    }
                }
                _ => return Err(format!("mq_open: {e}")),
            }
        }
        Err(format!("mq_open {name}: limits could not be satisfied"))
    }

    /// Creates a System V queue with key `key` (or a private one if the key
    /// is taken) able to hold `depth` messages of `size` bytes, raising
    /// limits as needed. Returns its id and an optional note.
    pub fn sysv_mq(
        &mut self,
        key: i32,
        depth: usize,
        size: usize,
    ) -> Result<(i32, Option<String>), String> {
        let msgmax = read_sysctl(SYSV_MSGMAX).map_err(|e| format!("System V queues: {e}"))?;
        if size as u64 > msgmax && !self.raise(SYSV_MSGMAX, size as u64) {
            return Err(format!(
                "{size}-byte messages exceed kernel.msgmax = {msgmax} ({})",
                self.why_not()
            ));
        }
        // A new queue's capacity is kernel.msgmnb; above it, IPC_SET needs
        // CAP_SYS_RESOURCE, which a root in a container may lack, so raise
        // the default first where allowed.
        let want = (depth * size) as u64;
        let mnb = read_sysctl(SYSV_MSGMNB).unwrap_or(0);
        if want > mnb {
            self.raise(SYSV_MSGMNB, want);
        }
        let id = match sys::sysv_create(key) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => sys::sysv_create(0),
            r => r,
        }
        .map_err(|e| format!("msgget: {e}"))?;
        let have = sys::sysv_qbytes(id).unwrap_or(0);
        if want <= have {
            return Ok((id, None));
        }
        match sys::sysv_set_qbytes(id, want) {
            Ok(()) => Ok((id, None)),
            Err(_) if have >= size as u64 => Ok((
                id,
                Some(format!(
                    "queue capacity limited to {have} bytes by kernel.msgmnb ({})",
                    self.why_not()
                )),
            )),
            Err(e) => {
                let _ = sys::sysv_remove(id);
                Err(format!(
                    "a {size}-byte message does not fit a queue of kernel.msgmnb = {have} \
                     bytes ({}; IPC_SET: {e})",
                    self.why_not()
                ))
            }
        }
    }
}

impl Drop for Limits {
    fn drop(&mut self) {
        for r in self.raised.iter().rev() {
            // Put back only our own value: if something else changed it
            // since, leave theirs.
            if read_sysctl(r.path).is_ok_and(|v| v == r.to) && Path::new(r.path).exists() {
                let _ = std::fs::write(r.path, r.from.to_string());
            }
        }
    }
}
