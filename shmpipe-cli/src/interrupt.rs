//! `SIGINT`, `SIGTERM` and `SIGHUP` during `send` and `recv`.
//!
//! The handler only records the signal (an async-signal-safe atomic
//! store). It is installed without `SA_RESTART`, so a blocked read or
//! write returns `EINTR`; every wait of `send` and `recv` is also bounded
//! (a poll or a ring deadline of [`POLL`]), so the command notices the
//! signal within that interval wherever it waits, closes its side, removes
//! a ring nothing can use any more, and then dies by the same signal
//! ([`die`]): the shell reports `128 + signal` (130 for Ctrl-C), and a
//! script that runs it stops as it would for any other killed command.

use std::io;
use std::time::Duration;
// A plain flag shared with a signal handler; `AtomicI32` is not on the
// loom list in clippy.toml, and the loom shim is for the library.
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};

/// The longest a wait of `send` or `recv` goes without checking for a
/// signal.
pub const POLL: Duration = Duration::from_millis(50);

/// How often `send` and `recv` check, while they wait, that their peer is
/// alive. Each wait lasts at most [`POLL`] and starts its own heartbeat, so
/// this must be shorter for the check to happen at all.
pub const HEARTBEAT: Duration = Duration::from_millis(20);

/// The signal caught, or 0. Relaxed: it carries no other data; readers
/// poll it.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Relaxed);
}

/// Installs the handler for `SIGINT`, `SIGTERM` and `SIGHUP`, except for a
/// signal this process was started ignoring (a background job of a script
/// ignores `SIGINT`, `nohup` ignores `SIGHUP`): that one stays ignored.
pub fn install() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: an all-zero `sigaction` is a valid value for the kernel
        // to overwrite.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only queries the current one into `old`.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if old.sa_sigaction == libc::SIG_IGN {
            continue;
        }
        // SAFETY: an all-zero `sigaction` is a valid value (no flags, empty
        // mask), filled in below before use.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // No SA_RESTART: blocking reads and writes return EINTR.
        sa.sa_flags = 0;
        // SAFETY: `sa.sa_mask` is a valid, writable sigset_t.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is initialised and its handler only does an atomic
        // store, which is async-signal-safe.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal caught since [`install`], if any.
pub fn caught() -> Option<i32> {
    match CAUGHT.load(Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// Ends the process by `sig` with its default action (`SIGPIPE` too, which
/// the Rust runtime ignores), so that the parent sees a process killed by
/// that signal, as it would for `cat`. Exits with `128 + sig` if the
/// signal does not end the process.
pub fn die(sig: i32) -> ! {
    // SAFETY: resetting a disposition to SIG_DFL, unblocking the signal and
    // raising it are plain system calls with valid arguments; nothing in
    // this process relies on the old handler any more.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

/// The signal's name, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGPIPE => "SIGPIPE",
        _ => "a signal",
    }
}
