//! Notifications: how a publisher makes a waiting side's descriptor
//! readable, across unrelated processes, on every backend.
//!
//! A side that wants to wait on a descriptor (epoll, `WaitSet`, tokio)
//! makes an [`Inbox`] of two descriptors and writes their names into its
//! control line; while it waits it sets `PARKED_NOTIFY` in its `parked`
//! word, and a publisher that sees the bit writes one byte to one of them:
//!
//! - **a pipe**, the fast one (a pipe's wake-up costs 1.0x a pipe's; the
//!   datagram's 1.3x to 1.4x, `docs/benchmarks.md`). Its name is the read
//!   end's descriptor number and the pipe's inode number (`notify_pipe`,
//!   `notify_pipe_ino`); the publisher opens `/proc/<pid>/fd/<n>` once and
//!   keeps the file. It does so only where everyone who can write the
//!   segment (and so choose the name) could write to the waiter's pipes
//!   anyway: the segment is the publisher's user's alone (mode without group
//!   or other write bits) or in this process ([`Notifier::new`]). It opens
//!   the name with `O_PATH` first (no device's `open` runs), checks that it
//!   is an anonymous pipe (the pipe file system's device) with the
//!   published inode, and only then reopens that file `O_RDWR |
//!   O_NONBLOCK`: never blocking, and a reader itself, so a write never
//!   raises `SIGPIPE` after the waiter closed its end.
//! - **a UNIX datagram socket** bound to an abstract-namespace name made of
//!   64 random bits, `shmpipe-notify-<hex>` (`notify_id`), where the pipe
//!   cannot be used: the segment is shared with other users (or a memfd,
//!   which anyone may have been handed), `/proc` is not mounted or refuses
//!   (another user, a non-dumpable process), or the peer is an older
//!   build. Abstract names need no file (nothing to clean up, works for
//!   memfd and System V rings alike) and vanish with the socket. Anyone in
//!   the network namespace may send to the name: a stray datagram is a
//!   spurious wake-up, never a message (the ring is re-checked). The name is
//!   chosen and bound before it is published, so nobody can take it first.
//!
//! Both processes must share a PID namespace (claims name pids) and, for
//! the socket, a network namespace (`docs/design.md` §7).
//!
//! # References
//!  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html), "Abstract sockets"
//!  - [proc_pid_fd(5)](https://man7.org/linux/man-pages/man5/proc_pid_fd.5.html)
//!  - [fifo(7)](https://man7.org/linux/man-pages/man7/fifo.7.html): "opening a
//!    FIFO for reading and writing [...] will succeed on Linux"
//!
//! Under `cfg(loom)` the inbox is modelled (`mod model`): a loom-visible
//! "notification pending" flag per inbox and one condvar that every waiter
//! sleeps on, so that loom checks the `PARKED_NOTIFY` protocol with the real
//! handle code (`tests/loom_notify.rs`).

#[cfg(not(loom))]
use std::collections::hash_map::RandomState;
#[cfg(not(loom))]
use std::hash::{BuildHasher, Hasher};
#[cfg(not(loom))]
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
#[cfg(not(loom))]
use std::sync::OnceLock;

#[cfg(not(loom))]
use rustix::fs::{fstat, open, FileType, Mode, OFlags};
#[cfg(not(loom))]
use rustix::io::{read, write, Errno};
#[cfg(not(loom))]
use rustix::net::{
    bind, recv, sendto, socket_with, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
#[cfg(not(loom))]
use rustix::pipe::{pipe_with, PipeFlags};

use crate::layout::{Claim, ControlLine};
use crate::sync::Ordering::{Acquire, Relaxed};

#[cfg(loom)]
pub(crate) use model::{wait_until, Inbox, Notifier};

/// Where a waiting side takes its notifications, as read from its control
/// line by a publisher that consumed its `PARKED_NOTIFY` bit. Every field
/// was written by another process: the socket name is only ever sent to,
/// and the pipe is used only after the checks in [`Notifier::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    /// The socket's name (`notify_id`; 0: none).
    pub(crate) socket: u64,
    /// The waiter's pid (from its claim; 0: none).
    pub(crate) pid: u32,
    /// Its pipe's read end, plus one (`notify_pipe`; 0: none).
    pub(crate) pipe_fd: u32,
    /// Its pipe's inode number (`notify_pipe_ino`).
    pub(crate) pipe_ino: u64,
}

impl Address {
    /// Reads the waiter's names from its control line.
    pub(crate) fn read(line: &ControlLine) -> Address {
        // ORDERING: Acquire; pairs with the Release store of `notify_id` in
        // `Holder::readiness`, which the waiter makes after the pipe's names.
        let socket = line.notify_id.load(Acquire);
        // The model has no pipe: loading its names there would only
        // multiply the executions loom explores (each Relaxed load may
        // return an older value).
        if cfg!(loom) {
            return Address {
                socket,
                pid: 0,
                pipe_fd: 0,
                pipe_ino: 0,
            };
        }
        Address {
            socket,
            // Relaxed: ordered after the Acquire above.
            pid: Claim(line.claim.load(Relaxed)).pid(),
            pipe_fd: line.notify_pipe.load(Relaxed),
            pipe_ino: line.notify_pipe_ino.load(Relaxed),
        }
    }
}

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
/// The receiving end: a non-blocking pipe and a bound, non-blocking
/// datagram socket. Both are readable once notified.
#[derive(Debug)]
pub(crate) struct Inbox {
    socket: OwnedFd,
    id: u64,
    pipe_read: OwnedFd,
    /// Held so that the read end never reports a hang-up (no writer left).
    _pipe_write: OwnedFd,
    pipe_ino: u64,
}

#[cfg(not(loom))]
impl Inbox {
    /// Makes the pipe and binds the socket to a fresh random name.
    pub(crate) fn new() -> Result<Inbox, Errno> {
        let (pipe_read, pipe_write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let pipe_ino = fstat(&pipe_read)?.st_ino;
        let socket = socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        for _ in 0..8 {
            let id = random_id();
            match bind(&socket, &address(id)?) {
                Ok(()) => {
                    return Ok(Inbox {
                        socket,
                        id,
                        pipe_read,
                        _pipe_write: pipe_write,
                        pipe_ino,
                    })
                }
                Err(Errno::ADDRINUSE) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Errno::ADDRINUSE)
    }

    /// The socket's name, to publish in the control line (`notify_id`).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The pipe's names, to publish in the control line: the read end's
    /// descriptor number plus one (`notify_pipe`), and the inode number
    /// (`notify_pipe_ino`).
    pub(crate) fn pipe_id(&self) -> (u32, u64) {
        let fd = u32::try_from(self.pipe_read.as_raw_fd()).map_or(0, |fd| fd.saturating_add(1));
        (fd, self.pipe_ino)
    }

    /// The two descriptors to watch.
    pub(crate) fn fds(&self) -> [BorrowedFd<'_>; 2] {
        [self.pipe_read.as_fd(), self.socket.as_fd()]
    }

    /// Reads every queued notification, so that neither descriptor is
    /// readable again before the next one.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        // One read takes every byte queued, up to the buffer.
        while read(&self.pipe_read, &mut buf).is_ok_and(|n| n == buf.len()) {}
        while recv(&self.socket, &mut buf, RecvFlags::DONTWAIT).is_ok() {}
    }
}

#[cfg(not(loom))]
/// The sending end: the waiter's pipe, opened on first use and kept while
/// its names stay the same, or an unbound datagram socket, made on first
/// use.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    /// Whether waiters' pipes may be used (see [`Notifier::new`]).
    pipes: bool,
    /// The pipe last opened, under the names it was opened for (`None`:
    /// they could not be used; not retried until they change).
    pipe: Option<(Address, Option<OwnedFd>)>,
    socket: Option<OwnedFd>,
}

#[cfg(not(loom))]
impl Notifier {
    /// A notifier that writes to waiters' pipes only when `pipes`: when
    /// every process that can write the segment's control lines (and so
    /// choose the pipe's name) could already write to any pipe this
    /// process's user can reach (the segment is this user's alone, or in
    /// this process). Otherwise a hostile peer could make this process
    /// write a byte into a pipe of somebody else's choosing.
    pub(crate) fn new(pipes: bool) -> Notifier {
        Notifier {
            pipes,
            ..Notifier::default()
        }
    }

    /// Writes one byte to the waiter at `to`, without blocking: to its pipe
    /// where it can, else to its socket. Errors are ignored: a full pipe or
    /// queue means the descriptor is readable already, and a missing socket
    /// means its side stopped waiting.
    pub(crate) fn send(&mut self, to: &Address) {
        if self.pipes && to.pipe_fd != 0 && to.pid != 0 {
            if self.pipe.as_ref().map(|(a, _)| a) != Some(to) {
                self.pipe = Some((*to, open_pipe(to)));
            }
            if let Some((_, Some(file))) = &self.pipe {
                match write(file, &[1]) {
                    Ok(_) | Err(Errno::AGAIN) => return,
                    Err(_) => self.pipe = Some((*to, None)),
                }
            }
        }
        self.send_datagram(to.socket);
    }

    fn send_datagram(&mut self, id: u64) {
        if id == 0 {
            return;
        }
        if self.socket.is_none() {
            self.socket = socket_with(
                AddressFamily::UNIX,
                SocketType::DGRAM,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )
            .ok();
        }
        let (Some(fd), Ok(addr)) = (&self.socket, address(id)) else {
            return;
        };
        let _ = sendto(fd, &[1], SendFlags::DONTWAIT, &addr);
    }
}

/// Opens the waiter's pipe named by `to` for writing, if it is one:
/// `/proc/<pid>/fd/<n>` with `O_PATH` (which runs no device's `open` and
/// never blocks), checked to be an anonymous pipe with the published inode,
/// then that file reopened `O_RDWR | O_NONBLOCK`. `None` when anything
/// differs or is refused.
#[cfg(not(loom))]
fn open_pipe(to: &Address) -> Option<OwnedFd> {
    let pipefs = pipe_device()?;
    let is_the_pipe = |fd: &OwnedFd| {
        fstat(fd).is_ok_and(|st| {
            FileType::from_raw_mode(st.st_mode) == FileType::Fifo
                && st.st_dev == pipefs
                && st.st_ino == to.pipe_ino
        })
    };
    let fd = to.pipe_fd - 1;
    let path = open(
        format!("/proc/{}/fd/{fd}", to.pid),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    if !is_the_pipe(&path) {
        return None;
    }
    let file = open(
        format!("/proc/self/fd/{}", path.as_raw_fd()),
        OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    is_the_pipe(&file).then_some(file)
}

/// The device number of the pipe file system (every anonymous pipe's
/// `st_dev`), learned once from a pipe of our own.
#[cfg(not(loom))]
fn pipe_device() -> Option<u64> {
    static DEVICE: OnceLock<Option<u64>> = OnceLock::new();
    *DEVICE.get_or_init(|| {
        let (r, _w) = pipe_with(PipeFlags::CLOEXEC).ok()?;
        fstat(&r).ok().map(|st| st.st_dev)
    })
}

/// The loom model of the inboxes.
///
/// An inbox is a "notification pending" flag (a loom `AtomicBool` in a
/// table indexed by the inbox's id, which stands for its socket's name);
/// sending sets it, draining clears it, and a descriptor is readable while
/// it is set. Every waiter (a handle's
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

    use super::Address;

    /// Inboxes a model may make (ids are 1-based indices).
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

    /// A modelled inbox: its id names its flag.
    #[derive(Debug)]
    pub(crate) struct Inbox {
        id: u64,
    }

    impl Inbox {
        pub(crate) fn new() -> Result<Inbox, Errno> {
            let id = TABLE.next_id.fetch_add(1, SeqCst);
            if flag(id).is_none() {
                return Err(Errno::ADDRINUSE);
            }
            Ok(Inbox { id })
        }

        /// No pipe in the model: the socket's name stands for the inbox.
        pub(crate) fn pipe_id(&self) -> (u32, u64) {
            (0, 0)
        }

        pub(crate) fn id(&self) -> u64 {
            self.id
        }

        pub(crate) fn drain(&self) {
            if let Some(f) = flag(self.id) {
                f.store(false, SeqCst);
            }
        }

        /// Whether a notification is pending (the descriptor is readable).
        pub(crate) fn pending(&self) -> bool {
            flag(self.id).is_some_and(|f| f.load(SeqCst))
        }
    }

    /// The sending end.
    #[derive(Debug, Default)]
    pub(crate) struct Notifier {}

    impl Notifier {
        pub(crate) fn new(_pipes: bool) -> Notifier {
            Notifier {}
        }

        pub(crate) fn send(&mut self, to: &Address) {
            let Some(f) = flag(to.socket) else { return };
            f.store(true, SeqCst);
            drop(TABLE.lock.lock().unwrap());
            TABLE.readable.notify_all();
        }
    }

    /// Sleeps until `ready()` (evaluated under the model's mutex) is true:
    /// the model of `poll`/`epoll_wait` on inboxes.
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
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::time::Timespec;

    fn readable(fd: BorrowedFd<'_>) -> bool {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        poll(&mut fds, Some(&Timespec::default())).unwrap() == 1
    }

    fn address_of(inbox: &Inbox, with_pipe: bool) -> Address {
        let (pipe_fd, pipe_ino) = inbox.pipe_id();
        Address {
            socket: inbox.id(),
            pid: std::process::id(),
            pipe_fd: if with_pipe { pipe_fd } else { 0 },
            pipe_ino,
        }
    }

    #[test]
    fn a_notification_makes_the_socket_readable_once() {
        let inbox = Inbox::new().unwrap();
        let [pipe, socket] = inbox.fds();
        let mut n = Notifier::new(false);
        assert!(!readable(socket));
        n.send(&address_of(&inbox, true)); // pipes not allowed: the socket
        n.send(&address_of(&inbox, true));
        assert!(readable(socket));
        assert!(!readable(pipe));
        inbox.drain();
        assert!(!readable(socket));
        n.send(&Address {
            socket: 0,
            pid: 0,
            pipe_fd: 0,
            pipe_ino: 0,
        }); // nothing happens
        n.send(&Address {
            socket: inbox.id() ^ 2,
            ..address_of(&inbox, false)
        }); // nobody: ignored
        assert!(!readable(socket));
    }

    #[test]
    fn a_notification_goes_to_the_pipe_where_allowed() {
        let inbox = Inbox::new().unwrap();
        let [pipe, socket] = inbox.fds();
        let mut n = Notifier::new(true);
        for _ in 0..3 {
            n.send(&address_of(&inbox, true));
            assert!(readable(pipe));
            assert!(!readable(socket));
            inbox.drain();
            assert!(!readable(pipe));
        }
        // Without a pipe name (an older peer): the socket.
        n.send(&address_of(&inbox, false));
        assert!(readable(socket));
        inbox.drain();
        assert!(!readable(socket) && !readable(pipe));
    }

    #[test]
    fn a_pipe_name_that_is_not_the_pipe_falls_back_to_the_socket() {
        let inbox = Inbox::new().unwrap();
        let [pipe, socket] = inbox.fds();
        let mut n = Notifier::new(true);
        let (pipe_fd, pipe_ino) = inbox.pipe_id();
        // A regular file of ours, named where the pipe should be: never
        // written (a hostile peer's name), the socket is used instead.
        let file = tempfile_in_proc();
        let file_fd = u32::try_from(file.as_raw_fd()).unwrap() + 1;
        let file_ino = fstat(&file).unwrap().st_ino;
        let wrong = [
            (file_fd, file_ino),     // not a pipe
            (pipe_fd, pipe_ino ^ 1), // the pipe, another inode number
            (u32::MAX, pipe_ino),    // no such descriptor
        ];
        for (pipe_fd, pipe_ino) in wrong {
            n.send(&Address {
                pipe_fd,
                pipe_ino,
                ..address_of(&inbox, true)
            });
            assert!(readable(socket), "fell back to the socket");
            assert!(!readable(pipe));
            inbox.drain();
        }
        assert_eq!(
            fstat(&file).unwrap().st_size,
            0,
            "nothing written to the file"
        );
        // Another process's number: a pid that is not ours names another
        // table (here: no process at all).
        n.send(&Address {
            pid: u32::MAX >> 10,
            ..address_of(&inbox, true)
        });
        assert!(readable(socket) && !readable(pipe));
    }

    /// An empty regular file, open read-write (unlinked at once).
    fn tempfile_in_proc() -> OwnedFd {
        let path = std::env::temp_dir().join(format!("shmpipe-notify-test-{}", std::process::id()));
        let fd = open(
            &path,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        rustix::fs::unlink(&path).unwrap();
        fd
    }
}
