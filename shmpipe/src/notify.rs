//! Notification sockets: how a publisher makes a waiting side's descriptor
//! readable, across unrelated processes, on every backend.
//!
//! A side that wants to wait on a descriptor (epoll, `WaitSet`, tokio)
//! binds a UNIX datagram socket to an abstract-namespace name made of 64
//! random bits, `shmpipe-notify-<hex>`, and writes the number into its
//! control line (`notify_id`). While it waits it sets `PARKED_NOTIFY` in its
//! `parked` word; a publisher that sees the bit sends a one-byte datagram
//! to that name, which makes the socket readable. Abstract names need no
//! file (nothing to clean up, works for memfd and System V rings alike) and
//! vanish with the socket. Anyone in the network namespace may send to
//! the name: a stray datagram is a spurious wake-up, never a message (the
//! ring is re-checked). The name is chosen and bound before it is
//! published, so nobody can take it first.
//!
//! Both processes must share a network namespace, as they share a PID
//! namespace (`docs/design.md` §7).
//!
//! # References
//!  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html), "Abstract sockets"

//!
//! Under `cfg(loom)` the socket is modelled (`mod model`): a
//! loom-visible "datagram pending" flag per socket and one condvar that
//! every waiter sleeps on, so that loom checks the `PARKED_NOTIFY`
//! protocol with the real handle code (`tests/loom_notify.rs`).

#[cfg(not(loom))]
use std::collections::hash_map::RandomState;
#[cfg(not(loom))]
use std::hash::{BuildHasher, Hasher};
#[cfg(not(loom))]
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

#[cfg(not(loom))]
use rustix::io::Errno;
#[cfg(not(loom))]
use rustix::net::{
    bind, recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};

#[cfg(loom)]
pub(crate) use model::{wait_until, Notifier, NotifySocket};

#[cfg(not(loom))]
fn address(id: u64) -> Result<SocketAddrUnix, Errno> {
    SocketAddrUnix::new_abstract_name(format!("shmpipe-notify-{id:016x}").as_bytes())
}

#[cfg(not(loom))]
fn random_id() -> u64 {
    // RandomState is seeded from the OS per process; mix in the pid and the
    // clock so that ids also differ across forks of one process.
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() | 1 // never 0, which means "no socket"
}

#[cfg(not(loom))]
/// The receiving end: a bound, non-blocking datagram socket.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    fd: OwnedFd,
    id: u64,
}

#[cfg(not(loom))]
impl NotifySocket {
    /// Binds a socket to a fresh random name.
    pub(crate) fn bind() -> Result<NotifySocket, Errno> {
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        for _ in 0..8 {
            let id = random_id();
            match bind(&fd, &address(id)?) {
                Ok(()) => return Ok(NotifySocket { fd, id }),
                Err(Errno::ADDRINUSE) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Errno::ADDRINUSE)
    }

    /// The name to publish in the control line.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Reads every queued datagram, so that the socket is readable again
    /// only after the next notification.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 16];
        while recv(&self.fd, &mut buf, RecvFlags::DONTWAIT).is_ok() {}
    }
}

#[cfg(not(loom))]
impl AsFd for NotifySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(not(loom))]
/// The sending end: an unbound datagram socket, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    fd: Option<OwnedFd>,
}

#[cfg(not(loom))]
impl Notifier {
    /// Sends one byte to the socket named `id`, without blocking. Errors are
    /// ignored: a full queue means the socket is readable already, and a
    /// missing one means its side stopped waiting.
    pub(crate) fn send(&mut self, id: u64) {
        if id == 0 {
            return;
        }
        if self.fd.is_none() {
            self.fd = socket_with(
                AddressFamily::UNIX,
                SocketType::DGRAM,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )
            .ok();
        }
        let (Some(fd), Ok(addr)) = (&self.fd, address(id)) else {
            return;
        };
        let _ = sendto(fd, &[1], SendFlags::DONTWAIT, &addr);
    }
}

/// The loom model of the notification sockets.
///
/// A socket is a "datagram pending" flag (a loom `AtomicBool` in a table
/// indexed by the socket's id); sending sets it, draining clears it, and a
/// descriptor is readable while it is set. Every waiter (a handle's
/// descriptor, a `WaitSet`) sleeps on one condvar and re-checks its flags
/// under its mutex; a sender sets the flag, then takes and drops the mutex
/// before notifying (as the futex model does), so no wake-up is lost
/// between a waiter's check and its sleep. Spurious wake-ups are harmless
/// (waiters re-check), as with real epoll.
#[cfg(loom)]
mod model {
    use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use loom::sync::{Condvar, Mutex};
    use rustix::io::Errno;

    /// Sockets a model may bind (ids are 1-based indices).
    const SOCKETS: usize = 8;

    struct Table {
        pending: [AtomicBool; SOCKETS],
        next_id: AtomicU64,
        lock: Mutex<()>,
        readable: Condvar,
    }

    loom::lazy_static! {
        static ref TABLE: Table = Table {
            pending: [(); SOCKETS].map(|_| AtomicBool::new(false)),
            next_id: AtomicU64::new(1),
            lock: Mutex::new(()),
            readable: Condvar::new(),
        };
    }

    fn flag(id: u64) -> Option<&'static AtomicBool> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        TABLE.pending.get(i)
    }

    /// A modelled socket: its id names its flag.
    #[derive(Debug)]
    pub(crate) struct NotifySocket {
        id: u64,
    }

    impl NotifySocket {
        pub(crate) fn bind() -> Result<NotifySocket, Errno> {
            let id = TABLE.next_id.fetch_add(1, SeqCst);
            if flag(id).is_none() {
                return Err(Errno::ADDRINUSE);
            }
            Ok(NotifySocket { id })
        }

        pub(crate) fn id(&self) -> u64 {
            self.id
        }

        pub(crate) fn drain(&self) {
            if let Some(f) = flag(self.id) {
                f.store(false, SeqCst);
            }
        }

        /// Whether a datagram is pending (the descriptor is readable).
        pub(crate) fn pending(&self) -> bool {
            flag(self.id).is_some_and(|f| f.load(SeqCst))
        }
    }

    /// The sending end.
    #[derive(Debug, Default)]
    pub(crate) struct Notifier {}

    impl Notifier {
        pub(crate) fn send(&mut self, id: u64) {
            let Some(f) = flag(id) else { return };
            f.store(true, SeqCst);
            drop(TABLE.lock.lock().unwrap());
            TABLE.readable.notify_all();
        }
    }

    /// Sleeps until `ready()` (evaluated under the model's mutex) is true:
    /// the model of `poll`/`epoll_wait` on notification sockets.
    pub(crate) fn wait_until(mut ready: impl FnMut() -> bool) {
        let mut guard = TABLE.lock.lock().unwrap();
        while !ready() {
            guard = TABLE.readable.wait(guard).unwrap();
        }
    }
}

#[cfg(all(test, not(miri), not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_notification_makes_the_socket_readable_once() {
        let s = NotifySocket::bind().unwrap();
        let mut n = Notifier::default();
        let readable = |s: &NotifySocket| {
            let mut fds = [rustix::event::PollFd::new(s, rustix::event::PollFlags::IN)];
            rustix::event::poll(&mut fds, Some(&rustix::time::Timespec::default())).unwrap() == 1
        };
        assert!(!readable(&s));
        n.send(s.id());
        n.send(s.id());
        assert!(readable(&s));
        s.drain();
        assert!(!readable(&s));
        n.send(0); // no socket: nothing happens
        n.send(s.id() ^ 2); // a name nobody bound: ignored
    }
}
