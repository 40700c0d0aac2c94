//! A handle's readiness descriptor: one fd that epoll, poll, mio and
//! tokio's `AsyncFd` can watch, readable when the handle should try again.
//!
//! What makes a waiting handle's descriptor readable is three descriptors:
//! the handle's notification inbox (`notify.rs`: a pipe and a socket, one of
//! which a publisher writes a byte to when the handle announced
//! `PARKED_NOTIFY`) and, once a peer was verified, the peer's pidfd
//! (readable when the peer's process exits). They are registered in up to
//! two epoll sets:
//!
//! - the handle's own epoll instance, made when `readiness_fd()` is first
//!   called: an epoll fd is itself readable while any of its members is, so
//!   one descriptor covers "the peer published", "the peer closed"
//!   (closing publishes) and "the peer died";
//! - a `WaitSet`'s epoll, directly (a flat set: no nested epoll fd between
//!   the set and the inbox), under keys that name the member and the
//!   descriptor's kind ([`SetLink`]).
//!
//! The peer's pidfd changes when a new peer claims the side;
//! [`Readiness::watch_peer`] replaces it in both sets.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::event::epoll;
use rustix::io::Errno;

use crate::notify::Inbox;

/// Which of a member's descriptors an epoll event in a `WaitSet` is for
/// (the low bits of its key; the member's slot is above them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum SourceKind {
    /// The member's notification inbox (its pipe or its socket).
    Inbox = 0,
    /// The member's peer's pidfd.
    PeerPidfd = 1,
    /// A member that is a descriptor itself: a listener's socket.
    Listener = 2,
    // A new kind of descriptor takes the next value; two bits leave room
    // for one more.
}

impl SourceKind {
    /// Bits of a key taken by the kind.
    pub(crate) const BITS: u32 = 2;
}

/// A `WaitSet`'s epoll instance and the slot a member has in it.
#[derive(Clone, Debug)]
#[cfg_attr(loom, allow(dead_code))] // loom models no epoll
pub(crate) struct SetLink {
    pub(crate) epoll: Arc<OwnedFd>,
    pub(crate) slot: usize,
}

#[cfg_attr(loom, allow(dead_code))]
impl SetLink {
    /// The epoll key of this member's descriptor of `kind`.
    pub(crate) fn key(&self, kind: SourceKind) -> u64 {
        ((self.slot as u64) << SourceKind::BITS) | kind as u64
    }

    /// Adds `fd` under the key for `kind` (level-triggered, readable).
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, kind: SourceKind) -> Result<(), Errno> {
        epoll::add(
            &*self.epoll,
            fd,
            epoll::EventData::new_u64(self.key(kind)),
            epoll::EventFlags::IN,
        )
    }

    /// Removes `fd`: the same descriptor number that was added (epoll keys
    /// its entries by file and number; a dup names another entry).
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) {
        let _ = epoll::delete(&*self.epoll, fd);
    }
}

/// The notification inbox and the epoll sets it is registered in.
#[derive(Debug)]
#[cfg_attr(loom, allow(dead_code))] // loom models no epoll and no pidfd
pub(crate) struct Readiness {
    inbox: Inbox,
    /// The handle's own epoll instance (`readiness_fd`), made on first use.
    epoll: Option<OwnedFd>,
    /// The claim word of the peer whose pidfd is registered, and our dup.
    peer: Option<(u64, OwnedFd)>,
    /// The `WaitSet` this handle is a member of.
    set: Option<SetLink>,
}

impl Readiness {
    /// Makes the notification inbox; no epoll instance yet.
    pub(crate) fn new() -> Result<Readiness, Errno> {
        Ok(Readiness {
            inbox: Inbox::new()?,
            epoll: None,
            peer: None,
            set: None,
        })
    }

    /// The socket's name publishers send to (`ControlLine::notify_id`).
    pub(crate) fn id(&self) -> u64 {
        self.inbox.id()
    }

    /// The pipe's names (`ControlLine::notify_pipe`, `notify_pipe_ino`).
    pub(crate) fn pipe_id(&self) -> (u32, u64) {
        self.inbox.pipe_id()
    }

    /// Under loom there is no descriptor (the inbox is a model).
    #[cfg(loom)]
    pub(crate) fn fd(&mut self) -> Result<BorrowedFd<'_>, Errno> {
        Err(Errno::NOSYS)
    }

    /// Under loom: remembers the set (which checks [`pending`](Self::pending)).
    #[cfg(loom)]
    pub(crate) fn join(&mut self, link: SetLink) -> Result<(), Errno> {
        self.set = Some(link);
        Ok(())
    }

    #[cfg(loom)]
    pub(crate) fn leave(&mut self) {
        self.set = None;
    }

    /// Under loom: pidfds are not modelled (the models' rings are in one
    /// process, whose handles never watch a pidfd).
    #[cfg(loom)]
    pub(crate) fn watch_peer(&mut self, _claim: u64, _pidfd: BorrowedFd<'_>) {}

    /// Under loom: whether the modelled inbox holds a notification.
    #[cfg(loom)]
    pub(crate) fn pending(&self) -> bool {
        self.inbox.pending()
    }

    /// The handle's own readiness descriptor, made on first use.
    #[cfg(not(loom))]
    pub(crate) fn fd(&mut self) -> Result<BorrowedFd<'_>, Errno> {
        if self.epoll.is_none() {
            let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
            for fd in self.inbox.fds() {
                epoll::add(
                    &epoll,
                    fd,
                    epoll::EventData::new_u64(SourceKind::Inbox as u64),
                    epoll::EventFlags::IN,
                )?;
            }
            if let Some((_, pidfd)) = &self.peer {
                epoll::add(
                    &epoll,
                    pidfd.as_fd(),
                    epoll::EventData::new_u64(SourceKind::PeerPidfd as u64),
                    epoll::EventFlags::IN,
                )?;
            }
            self.epoll = Some(epoll);
        }
        Ok(self.epoll.as_ref().expect("made above").as_fd())
    }

    /// Registers the inbox (and the peer's pidfd, once known) in a
    /// `WaitSet`'s epoll; replaces a previous set.
    #[cfg(not(loom))]
    pub(crate) fn join(&mut self, link: SetLink) -> Result<(), Errno> {
        self.leave();
        let [pipe, socket] = self.inbox.fds();
        let joined = link.add(pipe, SourceKind::Inbox).and_then(|()| {
            link.add(socket, SourceKind::Inbox)
                .inspect_err(|_| link.delete(pipe))
        });
        joined?;
        if let Some((_, pidfd)) = &self.peer {
            if let Err(e) = link.add(pidfd.as_fd(), SourceKind::PeerPidfd) {
                link.delete(pipe);
                link.delete(socket);
                return Err(e);
            }
        }
        self.set = Some(link);
        Ok(())
    }

    /// Takes the descriptors out of the `WaitSet`'s epoll, if in one.
    #[cfg(not(loom))]
    pub(crate) fn leave(&mut self) {
        if let Some(link) = self.set.take() {
            for fd in self.inbox.fds() {
                link.delete(fd);
            }
            if let Some((_, pidfd)) = &self.peer {
                link.delete(pidfd.as_fd());
            }
        }
    }

    /// Makes the descriptor (and the set) also readable when the peer
    /// holding claim word `claim` exits; replaces the previous peer's
    /// pidfd.
    #[cfg(not(loom))]
    pub(crate) fn watch_peer(&mut self, claim: u64, pidfd: BorrowedFd<'_>) {
        if self.peer.as_ref().is_some_and(|(c, _)| *c == claim) {
            return;
        }
        if let Some((_, old)) = self.peer.take() {
            if let Some(epoll) = &self.epoll {
                let _ = epoll::delete(epoll, &old);
            }
            if let Some(link) = &self.set {
                link.delete(old.as_fd());
            }
        }
        let Ok(own) = rustix::io::fcntl_dupfd_cloexec(pidfd, 0) else {
            return;
        };
        let own_ok = self.epoll.as_ref().map_or(true, |epoll| {
            epoll::add(
                epoll,
                own.as_fd(),
                epoll::EventData::new_u64(SourceKind::PeerPidfd as u64),
                epoll::EventFlags::IN,
            )
            .is_ok()
        });
        let set_ok = self.set.as_ref().map_or(true, |link| {
            link.add(own.as_fd(), SourceKind::PeerPidfd).is_ok()
        });
        if own_ok && set_ok {
            self.peer = Some((claim, own));
        } else {
            // Not watched: the handle's checks of its peer still notice
            // the death (at the next wake-up or heartbeat).
            if let Some(epoll) = &self.epoll {
                let _ = epoll::delete(epoll, &own);
            }
            if let Some(link) = &self.set {
                link.delete(own.as_fd());
            }
        }
    }

    /// Consumes the notifications received so far.
    pub(crate) fn drain(&self) {
        self.inbox.drain();
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        // Closing the descriptors would remove them from the set's epoll
        // too, but only once no other process holds them; be explicit.
        self.leave();
    }
}
