//! Starting peer processes and waiting for them without spinning.
//!
//! Each peer is this executable re-run as `shmpipe bench-peer`, with the
//! channel's descriptors inherited (their close-on-exec flag cleared in
//! the child only) and `PR_SET_PDEATHSIG = SIGKILL`, so a peer never
//! outlives a coordinator killed outright. The coordinator sleeps in
//! `poll(2)` on the peers' stdout and stderr and on the signal self-pipe:
//! it wakes when a peer says something, exits, or Ctrl-C is pressed.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::{Errno, FdFlags};
use rustix::process::Signal;
use rustix::time::Timespec;

use super::protocol::{PeerReport, PeerSpec};
use super::signals::{self, Signals};

/// Why waiting stopped early.
#[derive(Debug)]
pub enum Stop {
    /// Ctrl-C (or SIGTERM/SIGHUP): the run must end.
    Signal(i32),
    /// The case overran its time limit.
    Timeout,
}

/// A running peer process and what it has said so far.
#[derive(Debug)]
pub struct PeerProc {
    role: &'static str,
    child: Child,
    out: Option<ChildStdout>,
    err: Option<ChildStderr>,
    out_buf: Vec<u8>,
    err_buf: Vec<u8>,
    status: Option<ExitStatus>,
}

impl PeerProc {
    /// Starts `exe bench-peer --run-id RUN --spec JSON`, passing the
    /// descriptors `pass` (which the caller keeps open until this returns).
    pub fn spawn(
        exe: &Path,
        role: &'static str,
        run_id: u32,
        spec: &PeerSpec,
        pass: &[RawFd],
    ) -> io::Result<PeerProc> {
        let json = serde_json::to_string(spec).map_err(io::Error::other)?;
        let mut cmd = Command::new(exe);
        cmd.arg("bench-peer")
            .arg("--run-id")
            .arg(run_id.to_string())
            .arg("--spec")
            .arg(json)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let fds: Vec<RawFd> = pass.to_vec();
        let parent = rustix::process::getpid();
        // SAFETY: the closure runs in the forked child before exec. It
        // only reads the vector moved into it and makes raw system calls
        // (fcntl, prctl, getppid), all async-signal-safe; it allocates
        // nothing (errors convert from an errno without allocating). The
        // descriptors are open: the caller keeps them open across spawn.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &fds {
                    rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(fd), FdFlags::empty())?;
                }
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
                // The coordinator may have died before the line above.
                if rustix::process::getppid() != Some(parent) {
                    return Err(Errno::SRCH.into());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        Ok(PeerProc {
            role,
            out: child.stdout.take(),
            err: child.stderr.take(),
            child,
            out_buf: Vec::new(),
            err_buf: Vec::new(),
            status: None,
        })
    }

    fn lines(&self) -> impl Iterator<Item = &str> {
        let text = std::str::from_utf8(&self.out_buf).unwrap_or("");
        // Only complete lines count.
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete.lines()
    }

    /// Whether the peer said it is ready.
    pub fn is_ready(&self) -> bool {
        self.lines().next() == Some("ready")
    }

    /// Whether both of its output pipes are closed (it has exited).
    pub fn is_done(&self) -> bool {
        self.out.is_none() && self.err.is_none()
    }

    /// What it printed on stderr, for a failure message.
    fn complaint(&self) -> String {
        let text = String::from_utf8_lossy(&self.err_buf);
        let text = text.trim();
        let text = text.strip_prefix("shmpipe: ").unwrap_or(text);
        text.to_owned()
    }

    /// Reaps the peer and returns its report, or why there is none.
    pub fn finish(&mut self) -> Result<PeerReport, String> {
        let status = match self.status {
            Some(s) => s,
            None => {
                let s = self
                    .child
                    .wait()
                    .map_err(|e| format!("waiting for the {}: {e}", self.role))?;
                self.status = Some(s);
                s
            }
        };
        if !status.success() {
            let why = self.complaint();
            return Err(if why.is_empty() {
                format!("the {} {status}", self.role)
            } else {
                format!("{} failed: {why}", self.role)
            });
        }
        let line = self
            .lines()
            .nth(1)
            .ok_or_else(|| format!("the {} exited without a report", self.role))?;
        serde_json::from_str(line).map_err(|e| format!("bad report from the {}: {e}", self.role))
    }

    /// Kills (SIGKILL) and reaps the peer if it is still running.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for PeerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads what is available on a pipe into `buf`; `false` at end of file
/// or on error (the pipe is then dropped by the caller).
fn drain_pipe(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                // A peer says a few lines; cap what a broken one can make
                // us hold.
                if buf.len() < 1 << 20 {
                    buf.extend_from_slice(&chunk[..n]);
                }
                return true;
            }
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

/// Waits until `done(peers)` holds, collecting the peers' output; stops
/// early on a signal or at `deadline`.
pub fn wait_until(
    peers: &mut [&mut PeerProc],
    signals: &Signals,
    deadline: Instant,
    done: impl Fn(&[&mut PeerProc]) -> bool,
) -> Result<(), Stop> {
    loop {
        if let Some(sig) = signals::caught() {
            return Err(Stop::Signal(sig));
        }
        if done(peers) {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Stop::Timeout);
        }
        // Which pipes are open: (peer index, is stdout).
        let mut which = Vec::with_capacity(peers.len() * 2);
        let mut ready = {
            let mut fds = vec![PollFd::from_borrowed_fd(signals.fd(), PollFlags::IN)];
            for (i, p) in peers.iter().enumerate() {
                if let Some(o) = &p.out {
                    fds.push(PollFd::new(o, PollFlags::IN));
                    which.push((i, true));
                }
                if let Some(e) = &p.err {
                    fds.push(PollFd::new(e, PollFlags::IN));
                    which.push((i, false));
                }
            }
            if which.is_empty() {
                // Everyone exited and `done` still does not hold: nothing
                // more can happen.
                return Ok(());
            }
            let left = (deadline - now).min(Duration::from_secs(1));
            let ts = Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
            fds.iter()
                .skip(1)
                .map(|f| !f.revents().is_empty())
                .collect::<Vec<bool>>()
        };
        for (k, &(i, stdout)) in which.iter().enumerate() {
            if !std::mem::take(&mut ready[k]) {
                continue;
            }
            let p = &mut *peers[i];
            if stdout {
                let keep = p
                    .out
                    .as_ref()
                    .is_some_and(|o| drain_pipe(o.as_fd(), &mut p.out_buf));
                if !keep {
                    p.out = None;
                }
            } else {
                let keep = p
                    .err
                    .as_ref()
                    .is_some_and(|e| drain_pipe(e.as_fd(), &mut p.err_buf));
                if !keep {
                    p.err = None;
                }
            }
        }
    }
}
