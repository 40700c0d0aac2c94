//! [`Listener`] and [`connect`]: a server that any number of clients
//! connect to, each getting its own private [`Duplex`].
//!
//! The listener is a UNIX stream socket in the file system; its file mode
//! (0600 by default) decides who may connect. For each client the server
//! makes two memfd rings (sealed against shrinking and growing), claims its
//! sides, and passes both descriptors over the socket (`SCM_RIGHTS`); the
//! client validates and maps them, claims the other sides and
//! acknowledges. The socket is used for nothing else: once connected, the
//! two processes talk through shared memory only. The handshake, and who
//! checks what, is in `docs/design.md` ("Listener handshake").
//!
//! # References
//!  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html):
//!    `SO_PEERCRED`, `SCM_RIGHTS`, socket file permissions
//!  - [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html): seals

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{self as rfs, FileType, FlockOperation, Mode, OFlags, SealFlags};
use rustix::io::Errno;
use rustix::net::{
    self, sockopt, AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use crate::duplex::Duplex;
use crate::error::Error;
use crate::readiness::SetLink;
use crate::ring::RingBuilder;

/// Sent by the server first: protocol name and version.
const HELLO: [u8; 8] = *b"SHMPIPE1";
/// Sent by the client last, once it holds its sides of both rings.
const ACK: [u8; 8] = *b"SHMPIPEA";
/// Default bound on each step of the handshake, both ends.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `bind` waits for another binder in the same directory.
const DIR_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest socket path (`sun_path` holds 108 bytes with the NUL).
const SUN_PATH_MAX: usize = 107;

/// Who is at the other end of a connection, as the kernel recorded it when
/// the socket connected (`SO_PEERCRED`): not something the peer can forge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerCred {
    /// Process id.
    pub pid: u32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The socket path for a listener address:
///
/// | address | path |
/// |---|---|
/// | `unix:PATH` or anything with a `/` | that path |
/// | a bare `NAME` (letters, digits, `.`, `_`, `-`) | `/dev/shm/shmpipe-NAME.sock` |
///
/// # Errors
///
/// [`Error::InvalidAddress`] for an empty or too long path or a bad name.
///
/// ```
/// use shmpipe::listener_path;
///
/// assert_eq!(listener_path("calc")?, std::path::Path::new("/dev/shm/shmpipe-calc.sock"));
/// assert_eq!(listener_path("unix:/run/app.sock")?, std::path::Path::new("/run/app.sock"));
/// assert!(listener_path("a b").is_err());
/// # Ok::<(), shmpipe::Error>(())
/// ```
pub fn listener_path(address: &str) -> Result<PathBuf, Error> {
    let bad = |reason: &str| Error::InvalidAddress {
        input: address.to_owned(),
        reason: reason.to_owned(),
    };
    let path = if let Some(p) = address.strip_prefix("unix:") {
        PathBuf::from(p)
    } else if address.contains('/') {
        PathBuf::from(address)
    } else {
        let ok = !address.is_empty()
            && !address.starts_with('.')
            && address
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(bad(
                "a listener name is letters, digits, `.`, `_` and `-` (not first `.`); \
                 or give a path (`unix:PATH`)",
            ));
        }
        PathBuf::from(format!("/dev/shm/shmpipe-{address}.sock"))
    };
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(bad("a socket path must be non-empty and have no NUL byte"));
    }
    if bytes.len() > SUN_PATH_MAX {
        return Err(bad("a UNIX socket path is at most 107 bytes"));
    }
    Ok(path)
}

fn label(path: &Path) -> String {
    path.display().to_string()
}

fn io_err(op: &'static str, path: &Path, e: Errno) -> Error {
    Error::Io {
        op,
        target: label(path),
        source: e.into(),
    }
}

fn handshake_err(address: &str, reason: impl Into<String>) -> Error {
    Error::Handshake {
        address: address.to_owned(),
        reason: reason.into(),
    }
}

/// Configures a [`Listener`]: the socket's mode, the rings each client
/// gets, the handshake timeout.
///
/// # Examples
///
/// ```
/// use shmpipe::{ListenerBuilder, RingBuilder};
///
/// # let path = format!("/tmp/shmpipe-doc-lb-{}.sock", std::process::id());
/// let mut rings = RingBuilder::new();
/// rings.slots(64).max_message(4000);
/// let listener = ListenerBuilder::new().rings(rings).mode(0o660).bind(&path)?;
/// assert_eq!(listener.path(), std::path::Path::new(&path));
/// # Ok::<(), shmpipe::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ListenerBuilder {
    rings: RingBuilder,
    mode: u32,
    backlog: i32,
    handshake_timeout: Duration,
}

impl Default for ListenerBuilder {
    fn default() -> Self {
        ListenerBuilder::new()
    }
}

impl ListenerBuilder {
    /// Defaults: mode 0600, the default [`RingBuilder`] for each client's
    /// two rings, backlog 128, 5 s handshake timeout.
    pub fn new() -> ListenerBuilder {
        ListenerBuilder {
            rings: RingBuilder::new(),
            mode: 0o600,
            backlog: 128,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// Permission bits of the socket file (default `0o600`: only this user
    /// may connect). Connecting needs write permission: `0o660` admits the
    /// group, `0o666` everyone. Applied exactly, whatever the umask, before
    /// the socket accepts anything.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Geometry, huge pages and wait settings of the two memfd rings each
    /// client gets (their mode and address do not apply).
    pub fn rings(&mut self, rings: RingBuilder) -> &mut Self {
        self.rings = rings;
        self
    }

    /// Pending connections the kernel queues before `connect` blocks
    /// (default 128).
    pub fn backlog(&mut self, backlog: u32) -> &mut Self {
        self.backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self
    }

    /// How long an accept waits for a client to finish its handshake
    /// (default 5 s); a client that takes longer is dropped.
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Binds a listener at `address` (see [`listener_path`]).
    ///
    /// A socket left at the path by a listener that died (after a
    /// `SIGKILL`) is reclaimed: nothing accepts on it, so it is removed
    /// and bound again. Binders in one directory take turns (a `flock` on
    /// the directory), so two never both reclaim. Nothing else is ever
    /// replaced: not a live listener, not another user's socket, not a
    /// FIFO, file or symbolic link.
    ///
    /// Put the socket in a directory that others cannot write, or a sticky
    /// one such as `/dev/shm` or `/tmp` (where nobody else can remove or
    /// replace it).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`], [`Error::InvalidConfig`] (mode),
    /// [`Error::ListenerInUse`], [`Error::NotASocket`],
    /// [`Error::PermissionDenied`] or [`Error::Io`].
    pub fn bind(&self, address: impl AsRef<str>) -> Result<Listener, Error> {
        if self.mode > 0o777 {
            return Err(Error::config(
                "mode",
                u64::from(self.mode),
                "must be permission bits, 0 to 0777 (octal)",
            ));
        }
        let path = listener_path(address.as_ref())?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let _turn = DirLock::take(&dir)?;
        let addr = SocketAddrUnix::new(path.as_path()).map_err(|e| io_err("bind", &path, e))?;
        let mut reclaimed = false;
        let fd = loop {
            let fd = net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )
            .map_err(|e| io_err("socket", &path, e))?;
            match net::bind(&fd, &addr) {
                Ok(()) => break fd,
                Err(Errno::ADDRINUSE) if !reclaimed => {
                    probe_stale(&path)?;
                    match rfs::unlink(&path) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(Errno::ACCESS | Errno::PERM) => return Err(denied("bind", &path)),
                        Err(e) => return Err(io_err("unlink", &path, e)),
                    }
                    reclaimed = true;
                }
                Err(Errno::ADDRINUSE) => {
                    return Err(Error::ListenerInUse {
                        address: label(&path),
                        pid: None,
                    })
                }
                Err(Errno::ACCESS | Errno::PERM) => return Err(denied("bind", &path)),
                Err(Errno::NOENT) => {
                    return Err(Error::NotFound {
                        address: label(&dir),
                    })
                }
                Err(e) => return Err(io_err("bind", &path, e)),
            }
        };
        // Not listening yet: until `listen`, every connect is refused, so
        // the umask's mode never admits anyone.
        let setup = || -> Result<(u64, u64), Error> {
            rfs::chmod(&path, Mode::from_raw_mode(self.mode))
                .map_err(|e| io_err("chmod", &path, e))?;
            let st = rfs::lstat(&path).map_err(|e| io_err("lstat", &path, e))?;
            net::listen(&fd, self.backlog).map_err(|e| io_err("listen", &path, e))?;
            Ok((st.st_dev, st.st_ino))
        };
        let id = match setup() {
            Ok(id) => id,
            Err(e) => {
                let _ = rfs::unlink(&path);
                return Err(e);
            }
        };
        Ok(Listener {
            fd,
            path,
            id,
            rings: self.rings.clone(),
            handshake_timeout: self.handshake_timeout,
            failed: 0,
            set: None,
        })
    }
}

fn denied(op: &'static str, path: &Path) -> Error {
    let st = rfs::lstat(path).ok();
    Error::PermissionDenied {
        address: label(path),
        op,
        owner: st.as_ref().map(|s| s.st_uid),
        mode: st.map(|s| s.st_mode & 0o7777),
    }
}

/// Checks that the socket at `path` (which exists) is a stale listener's:
/// `Ok` if nothing accepts on it, the typed error otherwise.
fn probe_stale(path: &Path) -> Result<(), Error> {
    let st = match rfs::lstat(path) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_err("lstat", path, e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(Error::NotASocket {
            address: label(path),
        });
    }
    let probe = net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(|e| io_err("socket", path, e))?;
    let addr = SocketAddrUnix::new(path).map_err(|e| io_err("connect", path, e))?;
    match net::connect(&probe, &addr) {
        // Nobody listens: a dead listener's socket.
        Err(Errno::CONNREFUSED | Errno::NOENT) => Ok(()),
        Ok(()) => Err(Error::ListenerInUse {
            address: label(path),
            pid: sockopt::socket_peercred(&probe)
                .ok()
                .map(|c| c.pid.as_raw_nonzero().get() as u32),
        }),
        // A full backlog: someone listens.
        Err(Errno::AGAIN | Errno::INPROGRESS) => Err(Error::ListenerInUse {
            address: label(path),
            pid: None,
        }),
        Err(Errno::ACCESS | Errno::PERM) => Err(denied("bind", path)),
        Err(e) => Err(io_err("connect", path, e)),
    }
}

/// An exclusive `flock` on a directory, so that binders in it take turns
/// between finding a stale socket and binding anew.
struct DirLock(OwnedFd);

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock, Error> {
        let fd = rfs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT => Error::NotFound {
                address: label(dir),
            },
            Errno::ACCESS | Errno::PERM => denied("bind", dir),
            e => io_err("open", dir, e),
        })?;
        let deadline = Instant::now() + DIR_LOCK_TIMEOUT;
        loop {
            match rfs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(DirLock(fd)),
                Err(Errno::WOULDBLOCK | Errno::INTR) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(io_err("flock", dir, e)),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = rfs::flock(&self.0, FlockOperation::Unlock);
    }
}

/// A server's listening socket: [`accept`](Self::accept) clients, each
/// with its own [`Duplex`].
///
/// Dropping it removes the socket file (if it is still the one bound).
///
/// # Examples
///
/// ```
/// use shmpipe::{connect, Listener};
///
/// # let path = format!("/tmp/shmpipe-doc-listener-{}.sock", std::process::id());
/// let mut listener = Listener::bind(&path)?;
/// let client = std::thread::spawn({
///     let path = path.clone();
///     move || {
///         let mut conn = connect(&path).unwrap(); // in another process, usually
///         conn.send(b"hello").unwrap();
///         let mut buf = [0u8; 64];
///         let n = conn.recv(&mut buf).unwrap();
///         buf[..n].to_vec()
///     }
/// });
/// let mut conn = listener.accept()?;
/// assert_eq!(conn.peer_cred().pid, std::process::id());
/// let mut buf = [0u8; 64];
/// let n = conn.recv(&mut buf)?;
/// conn.send(buf[..n].to_ascii_uppercase())?;
/// assert_eq!(client.join().unwrap(), b"HELLO");
/// drop(listener);
/// assert!(!std::path::Path::new(&path).exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of the socket file we bound: drop removes the path
    /// only while it still names that file.
    id: (u64, u64),
    rings: RingBuilder,
    handshake_timeout: Duration,
    failed: u64,
    /// The wait set this listener's socket is registered in, if any.
    pub(crate) set: Option<SetLink>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("path", &self.path)
            .field("failed_handshakes", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds a listener at `address` with the defaults (mode 0600, default
    /// rings); see [`ListenerBuilder::bind`].
    ///
    /// # Errors
    ///
    /// As [`ListenerBuilder::bind`].
    pub fn bind(address: impl AsRef<str>) -> Result<Listener, Error> {
        ListenerBuilder::new().bind(address)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many clients were dropped because their handshake failed (they
    /// hung up, timed out or sent something else).
    pub fn failed_handshakes(&self) -> u64 {
        self.failed
    }

    /// Accepts the next client, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`try_accept`](Self::try_accept).
    pub fn accept(&mut self) -> Result<Connection, Error> {
        loop {
            if let Some(c) = self.accept_deadline(None)? {
                return Ok(c);
            }
        }
    }

    /// Accepts the next client, waiting at most `timeout`; `None` if none
    /// came.
    ///
    /// # Errors
    ///
    /// As [`try_accept`](Self::try_accept).
    pub fn accept_timeout(&mut self, timeout: Duration) -> Result<Option<Connection>, Error> {
        self.accept_deadline(Instant::now().checked_add(timeout))
    }

    /// Accepts the next client, waiting until `deadline` (`None`: as long
    /// as it takes); `None` if none came in time.
    ///
    /// # Errors
    ///
    /// As [`try_accept`](Self::try_accept).
    pub fn accept_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Connection>, Error> {
        loop {
            if let Some(c) = self.try_accept()? {
                return Ok(Some(c));
            }
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    let left = d - now;
                    Some(rustix::time::Timespec {
                        tv_sec: left.as_secs() as i64,
                        tv_nsec: i64::from(left.subsec_nanos()),
                    })
                }
            };
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(io_err("poll", &self.path, e)),
            }
        }
    }

    /// Accepts a client if one is waiting, without waiting for one; `None`
    /// if none is.
    ///
    /// The handshake with a waiting client takes one round trip over the
    /// socket (bounded by [`ListenerBuilder::handshake_timeout`]). A client
    /// whose handshake fails is dropped and counted
    /// ([`failed_handshakes`](Self::failed_handshakes)); the call goes on
    /// to the next.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `accept` fails (for example out of descriptors),
    /// or the errors of [`RingBuilder::create_memfd`] making the rings.
    pub fn try_accept(&mut self) -> Result<Option<Connection>, Error> {
        loop {
            let sock = match net::accept_with(&self.fd, SocketFlags::CLOEXEC) {
                Ok(s) => s,
                Err(Errno::AGAIN) => return Ok(None),
                Err(Errno::INTR | Errno::CONNABORTED) => continue,
                Err(e) => return Err(io_err("accept", &self.path, e)),
            };
            match self.handshake(sock) {
                Ok(c) => return Ok(Some(c)),
                Err(Error::Handshake { .. }) => self.failed += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's side of the handshake on a fresh connection.
    fn handshake(&mut self, sock: OwnedFd) -> Result<Connection, Error> {
        let who = "client";
        let peer = peer_cred(&sock).map_err(|e| handshake_err(who, e))?;
        set_timeouts(&sock, self.handshake_timeout).map_err(|e| handshake_err(who, e))?;
        // The server makes both rings and holds its sides before the
        // client sees them: the client can take only the other two.
        let up = self.rings.create_memfd("shmpipe-up")?;
        let down = self.rings.create_memfd("shmpipe-down")?;
        let duplex = Duplex::from_rings(&down, &up)?;
        send_all(&sock, &HELLO).map_err(|e| handshake_err(who, format!("sending hello: {e}")))?;
        for ring in [&up, &down] {
            ring.send_fd(&sock)
                .map_err(|e| handshake_err(who, format!("passing a ring: {e}")))?;
        }
        let mut ack = [0u8; 8];
        recv_exact(&sock, &mut ack)
            .map_err(|e| handshake_err(who, format!("waiting for its acknowledgement: {e}")))?;
        if ack != ACK {
            return Err(handshake_err(
                who,
                format!("expected acknowledgement {ACK:?}, got {ack:?}"),
            ));
        }
        Ok(Connection { duplex, peer })
    }
}

/// The listening socket (non-blocking; readable when a client waits), for
/// your own poll loop; accept with [`try_accept`](Listener::try_accept).
impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Still listening here, so no one can have bound the path anew: if
        // it names our socket, it is ours to remove.
        if let Ok(st) = rfs::lstat(&self.path) {
            if (st.st_dev, st.st_ino) == self.id {
                let _ = rfs::unlink(&self.path);
            }
        }
    }
}

/// One end of a connection made by [`Listener::accept`] or [`connect`]: a
/// private [`Duplex`] (it derefs to one) and who is at the other end.
///
/// A peer that dies is reported by the duplex like any dead peer
/// (`PeerDied`), at once.
#[derive(Debug)]
pub struct Connection {
    duplex: Duplex,
    peer: PeerCred,
}

impl Connection {
    /// The other end's process, user and group, as the kernel recorded
    /// them when the socket connected.
    pub fn peer_cred(&self) -> PeerCred {
        self.peer
    }

    /// The duplex, without the credentials (for a [`WaitSet`](crate::WaitSet),
    /// or to split it).
    pub fn into_duplex(self) -> Duplex {
        self.duplex
    }
}

impl Deref for Connection {
    type Target = Duplex;
    fn deref(&self) -> &Duplex {
        &self.duplex
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Duplex {
        &mut self.duplex
    }
}

/// Connects to the listener at `address` (see [`listener_path`]) and
/// returns this client's private duplex, with default wait settings.
///
/// # Errors
///
/// As [`connect_with`].
pub fn connect(address: impl AsRef<str>) -> Result<Connection, Error> {
    connect_with(&RingBuilder::new(), address)
}

/// Connects to the listener at `address` with `builder`'s wait settings
/// for the two rings (their geometry is the server's). Each step of the
/// handshake waits at most 5 s.
///
/// Everything the server sends is checked: its greeting, that each
/// descriptor is a memfd sealed against shrinking (so that it cannot be
/// truncated under the mapping), and each ring's header, as
/// [`Ring::open`](crate::Ring::open) does.
///
/// # Errors
///
/// [`Error::NoListener`] (no socket, or nothing listening),
/// [`Error::PermissionDenied`] (the socket's mode keeps this user out),
/// [`Error::Handshake`], the errors of [`Ring::from_fd`](crate::Ring::from_fd) for a bad ring,
/// or [`Error::Io`].
pub fn connect_with(builder: &RingBuilder, address: impl AsRef<str>) -> Result<Connection, Error> {
    let path = listener_path(address.as_ref())?;
    let who = label(&path);
    let sock = net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| io_err("socket", &path, e))?;
    let addr = SocketAddrUnix::new(path.as_path()).map_err(|e| io_err("connect", &path, e))?;
    loop {
        match net::connect(&sock, &addr) {
            Ok(()) => break,
            Err(Errno::INTR) => continue,
            Err(Errno::NOENT | Errno::CONNREFUSED) => {
                return Err(Error::NoListener { address: who });
            }
            Err(Errno::ACCESS | Errno::PERM) => return Err(denied("connect", &path)),
            Err(e) => return Err(io_err("connect", &path, e)),
        }
    }
    let peer = peer_cred(&sock).map_err(|e| handshake_err(&who, e))?;
    set_timeouts(&sock, HANDSHAKE_TIMEOUT).map_err(|e| handshake_err(&who, e))?;
    let mut hello = [0u8; 8];
    recv_exact(&sock, &mut hello)
        .map_err(|e| handshake_err(&who, format!("waiting for its greeting: {e}")))?;
    if hello != HELLO {
        return Err(handshake_err(
            &who,
            format!("not a shmpipe listener (greeting {hello:?}, expected {HELLO:?})"),
        ));
    }
    let mut rings = Vec::with_capacity(2);
    for which in ["client-to-server", "server-to-client"] {
        let fd = crate::segment::fdpass::recv(sock.as_fd())
            .map_err(|e| handshake_err(&who, format!("receiving the {which} ring: {e}")))?;
        check_sealed(&fd)
            .map_err(|reason| handshake_err(&who, format!("{which} ring {reason}")))?;
        rings.push(builder.open_fd(fd)?);
    }
    let duplex = Duplex::from_rings(&rings[0], &rings[1])?;
    send_all(&sock, &ACK).map_err(|e| handshake_err(&who, format!("acknowledging: {e}")))?;
    Ok(Connection { duplex, peer })
}

/// A ring descriptor from the server must be a memfd that can never
/// shrink: otherwise the server could truncate it and fault this process
/// (`SIGBUS`) on its next access.
fn check_sealed(fd: &OwnedFd) -> Result<(), String> {
    match rfs::fcntl_get_seals(fd) {
        Ok(seals) if seals.contains(SealFlags::SHRINK) => Ok(()),
        Ok(seals) => Err(format!(
            "is not sealed against shrinking (seals {:#x})",
            seals.bits()
        )),
        Err(e) => Err(format!("is not a sealable memfd ({e})")),
    }
}

fn peer_cred(sock: &OwnedFd) -> Result<PeerCred, String> {
    let c = sockopt::socket_peercred(sock).map_err(|e| format!("SO_PEERCRED: {e}"))?;
    Ok(PeerCred {
        pid: c.pid.as_raw_nonzero().get() as u32,
        uid: c.uid.as_raw(),
        gid: c.gid.as_raw(),
    })
}

fn set_timeouts(sock: &OwnedFd, t: Duration) -> Result<(), String> {
    for id in [sockopt::Timeout::Recv, sockopt::Timeout::Send] {
        sockopt::set_socket_timeout(sock, id, Some(t)).map_err(|e| format!("SO_*TIMEO: {e}"))?;
    }
    Ok(())
}

/// Sends all of `buf` (no `SIGPIPE` if the peer is gone).
fn send_all(sock: &OwnedFd, mut buf: &[u8]) -> Result<(), String> {
    while !buf.is_empty() {
        match net::send(sock, buf, SendFlags::NOSIGNAL) {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => buf = &buf[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Err("timed out".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes.
fn recv_exact(sock: &OwnedFd, buf: &mut [u8]) -> Result<(), String> {
    let mut got = 0;
    while got < buf.len() {
        match net::recv(sock, &mut buf[got..], RecvFlags::empty()) {
            Ok((0, _)) => return Err("connection closed".into()),
            Ok((n, _)) => got += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Err("timed out".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> String {
        format!("/tmp/shmpipe-unit-{tag}-{}.sock", std::process::id())
    }

    #[test]
    fn a_fifo_at_the_path_is_refused_not_opened() {
        let path = tmp("fifo");
        let _ = std::fs::remove_file(&path);
        rfs::mknodat(
            rfs::CWD,
            path.as_str(),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(
            Listener::bind(&path),
            Err(Error::NotASocket { .. })
        ));
        // A client gets a typed error too, at once.
        assert!(matches!(connect(&path), Err(Error::NoListener { .. })));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_live_listener_is_not_replaced() {
        let path = tmp("live");
        let l = Listener::bind(&path).unwrap();
        match Listener::bind(&path) {
            Err(Error::ListenerInUse { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected ListenerInUse, got {other:?}"),
        }
        // The probe's connection is dropped, not returned as a client.
        let mut l = l;
        assert!(l.try_accept().unwrap().is_none());
        assert_eq!(l.failed_handshakes(), 1);
        drop(l);
        assert!(!Path::new(&path).exists());
    }

    #[test]
    fn a_client_that_never_acknowledges_is_dropped_after_the_timeout() {
        let path = tmp("mute");
        let mut l = ListenerBuilder::new()
            .handshake_timeout(Duration::from_millis(50))
            .bind(&path)
            .unwrap();
        // Connects, then neither reads nor answers.
        let mute = std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert!(l.try_accept().unwrap().is_none());
        assert_eq!(l.failed_handshakes(), 1);
        drop(mute);
    }

    #[test]
    fn a_server_passing_unsealed_files_is_refused() {
        use std::io::Write;
        let path = tmp("unsealed");
        let ring_file = format!(
            "file:/tmp/shmpipe-unit-unsealed-{}.ring",
            std::process::id()
        );
        let ring = RingBuilder::new().slots(4).create(&ring_file).unwrap();
        let plain = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = plain.accept().unwrap();
            s.write_all(&HELLO).unwrap();
            // A regular file: it could be truncated under the client.
            ring.send_fd(&s).unwrap();
            // The client may already have refused the first and hung up.
            let _ = ring.send_fd(&s);
            let mut b = [0u8; 8];
            let _ = std::io::Read::read(&mut s, &mut b);
        });
        match connect(&path) {
            Err(Error::Handshake { reason, .. }) => {
                assert!(reason.contains("not a sealable memfd"), "{reason}")
            }
            other => panic!("expected a handshake error, got {other:?}"),
        }
        server.join().unwrap();
        std::fs::remove_file(&path).unwrap();
        crate::Ring::remove(ring_file.as_str(), true).unwrap();
    }

    #[test]
    fn names_map_to_dev_shm() {
        assert_eq!(
            listener_path("a.b-c_1").unwrap(),
            Path::new("/dev/shm/shmpipe-a.b-c_1.sock")
        );
        assert!(listener_path("").is_err());
        assert!(listener_path(".hidden").is_err());
        assert!(listener_path(&format!("/{}", "x".repeat(200))).is_err());
    }
}
