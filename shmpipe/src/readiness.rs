//! A handle's readiness descriptor: one fd that epoll, poll, mio and
//! tokio's `AsyncFd` can watch, readable when the handle should try again.
//!
//! It is an epoll instance holding two descriptors: the handle's
//! notification socket (`notify.rs`: a publisher sends it a datagram when
//! the handle announced `PARKED_NOTIFY`) and, once a peer was verified, the
//! peer's pidfd (readable when the peer's process exits). An epoll fd is
//! itself readable while any of its members is, so one descriptor covers
//! "the peer published", "the peer closed" (closing publishes) and "the
//! peer died".

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::epoll;
use rustix::io::Errno;

use crate::notify::NotifySocket;

/// The descriptor and what is registered in it.
#[derive(Debug)]
pub(crate) struct Readiness {
    epoll: OwnedFd,
    socket: NotifySocket,
    /// The claim word of the peer whose pidfd is registered, and our dup.
    peer: Option<(u64, OwnedFd)>,
    /// `PARKED_NOTIFY` is set in our control line: the next operation
    /// clears it and drains the socket.
    pub(crate) armed: bool,
}

impl Readiness {
    pub(crate) fn new() -> Result<Readiness, Errno> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let socket = NotifySocket::bind()?;
        epoll::add(
            &epoll,
            socket.as_fd(),
            epoll::EventData::new_u64(0),
            epoll::EventFlags::IN,
        )?;
        Ok(Readiness {
            epoll,
            socket,
            peer: None,
            armed: false,
        })
    }

    /// The name publishers send to (`ControlLine::notify_id`).
    pub(crate) fn id(&self) -> u64 {
        self.socket.id()
    }

    /// Makes the descriptor also readable when the peer holding claim word
    /// `claim` exits; replaces the previous peer's pidfd.
    pub(crate) fn watch_peer(&mut self, claim: u64, pidfd: BorrowedFd<'_>) {
        if self.peer.as_ref().is_some_and(|(c, _)| *c == claim) {
            return;
        }
        if let Some((_, old)) = self.peer.take() {
            let _ = epoll::delete(&self.epoll, &old);
        }
        let Ok(own) = rustix::io::fcntl_dupfd_cloexec(pidfd, 0) else {
            return;
        };
        if epoll::add(
            &self.epoll,
            own.as_fd(),
            epoll::EventData::new_u64(1),
            epoll::EventFlags::IN,
        )
        .is_ok()
        {
            self.peer = Some((claim, own));
        }
    }

    /// Consumes the notifications received so far.
    pub(crate) fn drain(&self) {
        self.socket.drain();
    }
}

impl AsFd for Readiness {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}
