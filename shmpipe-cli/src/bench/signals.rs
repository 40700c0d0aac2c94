//! Ctrl-C (and `SIGTERM`, `SIGHUP`) during a benchmark run.
//!
//! The handler only records the signal and writes one byte to a self-pipe
//! (both async-signal-safe). The coordinator polls the pipe's read end
//! together with its children's output, so it notices at once, kills its
//! children, removes every segment and queue it created (drop guards),
//! restores any limit it raised and exits with `128 + signal`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
// A plain flag shared with a signal handler; `AtomicI32` is not on the
// loom list in clippy.toml, and the loom shim is for the library.
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};

use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::Signal;

use super::sys;

/// The signal caught, or 0. Relaxed: it carries no other data, and the
/// self-pipe is what wakes the coordinator.
static CAUGHT: AtomicI32 = AtomicI32::new(0);
/// Write end of the self-pipe, or -1 before `install`. Never closed once
/// set, so the handler can always write to it.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: i32) {
    CAUGHT.store(sig, Relaxed);
    let fd = WAKE_FD.load(Relaxed);
    if fd >= 0 {
        // SAFETY: `fd` is the self-pipe's write end, which is never closed
        // after `install` stored it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        // A full pipe (EAGAIN: it is non-blocking) already holds a wakeup.
        let _ = rustix::io::write(fd, &[1]);
    }
}

/// The read end of the self-pipe: readable once a signal was caught.
#[derive(Debug)]
pub struct Signals {
    rx: OwnedFd,
}

impl Signals {
    /// Installs the handler for `SIGINT`, `SIGTERM` and `SIGHUP`.
    pub fn install() -> io::Result<Signals> {
        let (rx, tx) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // The write end lives as long as the process (see WAKE_FD).
        let old = WAKE_FD.swap(tx.into_raw_fd(), Relaxed);
        debug_assert_eq!(old, -1, "signal handlers installed twice");
        for sig in [Signal::INT, Signal::TERM, Signal::HUP] {
            sys::set_signal_handler(sig.as_raw(), on_signal)?;
        }
        Ok(Signals { rx })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }
}

/// The signal caught since `install`, if any.
pub fn caught() -> Option<i32> {
    match CAUGHT.load(Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// The signal's name, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        s if s == Signal::HUP.as_raw() => "SIGHUP",
        s if s == Signal::INT.as_raw() => "SIGINT",
        s if s == Signal::TERM.as_raw() => "SIGTERM",
        _ => "a signal",
    }
}
