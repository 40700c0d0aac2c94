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

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    bind, recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};

fn address(id: u64) -> Result<SocketAddrUnix, Errno> {
    SocketAddrUnix::new_abstract_name(format!("shmpipe-notify-{id:016x}").as_bytes())
}

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

/// The receiving end: a bound, non-blocking datagram socket.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    fd: OwnedFd,
    id: u64,
}

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

impl AsFd for NotifySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The sending end: an unbound datagram socket, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    fd: Option<OwnedFd>,
}

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

#[cfg(all(test, not(miri)))]
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
