//! `SIGINT`, `SIGTERM` and `SIGHUP` during `send` and `recv`.
//!
//! The handler records the signal (an async-signal-safe atomic store) and
//! writes a byte to a self-pipe ([`wake_fd`]), both async-signal-safe. It
//! is installed without `SA_RESTART`, so a blocked read or write returns
//! `EINTR`; every wait of `send` and `recv` is one `poll(2)` that also
//! watches the self-pipe, so the command notices the signal at once
//! wherever it waits, with no periodic wake-up while idle. It then closes
//! its side, removes a ring nothing can use any more, and dies by the
//! same signal ([`die`]): the shell reports `128 + signal` (130 for
//! Ctrl-C), and a script that runs it stops as it would for any other
//! killed command.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;
// Plain values shared with a signal handler; `AtomicI32` is not on the
// loom list in clippy.toml, and the loom shim is for the library.
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};

/// The signal caught, or 0. Relaxed: it carries no other data; readers
/// check it after every wake-up.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// The self-pipe's write end, or -1 before [`install`]. Relaxed: it is
/// stored once, before the handler that loads it is installed
/// (`sigaction` is a system call, which orders the two).
static WAKE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// The self-pipe's read end, readable once a signal was caught; the write
/// end is leaked with it (it lives as long as the process).
static WAKE_READ: OnceLock<OwnedFd> = OnceLock::new();

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Relaxed);
    let fd = WAKE_WRITE.load(Relaxed);
    if fd >= 0 {
        // SAFETY: `__errno_location` returns this thread's errno, valid
        // for the thread's life; `write` is async-signal-safe, and `fd`
        // is the self-pipe's write end, never closed. Saving and restoring
        // errno keeps the interrupted code's errno intact. A full pipe
        // (EAGAIN) is already readable, which is all a waiter needs.
        unsafe {
            let errno = libc::__errno_location();
            let saved = *errno;
            let _ = libc::write(fd, [1u8].as_ptr().cast(), 1);
            *errno = saved;
        }
    }
}

/// Makes the self-pipe (non-blocking, close-on-exec), once.
fn self_pipe() -> io::Result<()> {
    if WAKE_READ.get().is_some() {
        return Ok(());
    }
    let flags = rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC;
    let (read, write) = rustix::pipe::pipe_with(flags)?;
    // The handler writes to it for the rest of the process.
    let write = std::os::fd::IntoRawFd::into_raw_fd(write);
    WAKE_WRITE.store(write, Relaxed);
    let _ = WAKE_READ.set(read);
    Ok(())
}

/// A descriptor that becomes readable when [`install`]'s handler catches a
/// signal (and stays readable): watch it in every wait, then check
/// [`caught`]. `None` before [`install`].
pub fn wake_fd() -> Option<BorrowedFd<'static>> {
    WAKE_READ.get().map(|fd| fd.as_fd())
}

/// Installs the handler for `SIGINT`, `SIGTERM` and `SIGHUP`, except for a
/// signal this process was started ignoring (a background job of a script
/// ignores `SIGINT`, `nohup` ignores `SIGHUP`): that one stays ignored.
pub fn install() -> io::Result<()> {
    self_pipe()?;
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
        // store and a `write`, which are async-signal-safe.
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
