//! Every public error type.
//!
//! Setup and administration (creating, opening, claiming, removing a ring)
//! return [`Error`], whose `Display` says what happened *and what to do*.
//! The data path returns small per-operation enums in the style of
//! `crossbeam-channel`: a failed send hands an owned message back
//! ([`TrySendError`], [`SendError`]; a borrowed one stays with the caller,
//! so that `?` works on it); a failed receive says why
//! ([`TryRecvError`], [`RecvError`]).
//!
//! Anything read from the shared mapping may have been written by a buggy or
//! hostile process; when it breaks a rule the error is [`Corruption`], which
//! names the field, the value found and the rule it broke.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::fingerprint::TypeFingerprint;
use crate::side::Side;

/// The rule a corrupted shared field broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// Exactly this value.
    Exactly(u64),
    /// A value in `min..=max`.
    Range {
        /// Smallest value allowed.
        min: u64,
        /// Largest value allowed.
        max: u64,
    },
    /// A power of two.
    PowerOfTwo,
    /// A non-zero multiple of this value.
    MultipleOf(u64),
    /// Another rule, described in words.
    Rule(&'static str),
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Expected::Exactly(v) => write!(f, "expected exactly {v}"),
            Expected::Range { min, max } => write!(f, "expected a value in {min}..={max}"),
            Expected::PowerOfTwo => f.write_str("expected a power of two"),
            Expected::MultipleOf(m) => write!(f, "expected a non-zero multiple of {m}"),
            Expected::Rule(r) => write!(f, "expected {r}"),
        }
    }
}

/// A field of the shared mapping that holds a value no correct peer writes.
///
/// Returned when opening a ring (inside [`Error::Corrupt`]) and on the data
/// path (`Corrupt` variants), never a panic or an out-of-bounds access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The field, as named in `docs/design.md` (for example `tail`).
    pub field: &'static str,
    /// The value found in the mapping.
    pub found: u64,
    /// The rule it broke.
    pub expected: Expected,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shared field `{}` holds {}, {}",
            self.field, self.found, self.expected
        )
    }
}

impl std::error::Error for Corruption {}

/// A ring's shape: how many slots, and how many bytes each (its 16-byte
/// slot header included). Found in [`Error::GeometryMismatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Number of slots.
    pub slots: u64,
    /// Bytes per slot, the 16-byte slot header included.
    pub slot_size: u64,
}

impl Geometry {
    /// The largest message one slot of this size carries at the default
    /// payload alignment (16), in bytes; a larger
    /// [`payload_align`](crate::RingBuilder::payload_align) takes more.
    pub fn max_message(&self) -> u64 {
        // The slot header's size, `layout::SLOT_HEADER` (checked there).
        self.slot_size.saturating_sub(16)
    }
}

impl fmt::Display for Geometry {
    /// `1024 slots x 4096 bytes (4080-byte messages)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} slots x {} bytes ({}-byte messages)",
            self.slots,
            self.slot_size,
            self.max_message()
        )
    }
}

/// An error creating, opening, claiming, inspecting or removing a ring.
///
/// The `Display` text names the ring and says what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The address string is malformed.
    InvalidAddress {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A geometry or option value is out of range.
    InvalidConfig {
        /// The option (`slots`, `slot_size`, `mode`, ...).
        what: &'static str,
        /// The value given.
        value: u64,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// Creating a ring whose name is taken.
    AlreadyExists {
        /// The ring's address.
        address: String,
    },
    /// Opening or removing a ring that does not exist.
    NotFound {
        /// The ring's address.
        address: String,
    },
    /// The operating system refused access to the segment.
    PermissionDenied {
        /// The ring's address.
        address: String,
        /// What was attempted (`open`, `create`, `remove`, `read`, ...).
        op: &'static str,
        /// The segment's owner (user id), where known ([`Ring::list`](crate::Ring::list)).
        owner: Option<u32>,
        /// The segment's permission bits, where known.
        mode: Option<u32>,
    },
    /// The address names a symbolic link; shmpipe never follows one at the
    /// final path component.
    Symlink {
        /// The ring's address.
        address: String,
    },
    /// The segment is not a regular file or shared-memory object.
    NotARegularFile {
        /// The ring's address.
        address: String,
    },
    /// The creator did not finish initialising the header in time.
    NotInitialized {
        /// The ring's address.
        address: String,
        /// How long the opener waited.
        waited: Duration,
    },
    /// The segment does not start with shmpipe's magic number.
    BadMagic {
        /// The ring's address.
        address: String,
        /// The value found where the magic should be.
        found: u64,
    },
    /// The segment was written by an incompatible version of shmpipe.
    VersionMismatch {
        /// The ring's address.
        address: String,
        /// The layout version in the segment.
        found: u32,
        /// The layout version this build speaks.
        expected: u32,
    },
    /// The ring was created for another message type than the one this
    /// open expects (its type fingerprint differs), or for none.
    IncompatibleType {
        /// The ring's address.
        address: String,
        /// The type this side was built for.
        expected: Box<TypeFingerprint>,
        /// The type recorded in the ring; `None` for an untyped ring.
        found: Option<Box<TypeFingerprint>>,
    },
    /// A header field breaks the layout rules.
    Corrupt {
        /// The ring's address.
        address: String,
        /// Which field, what value, which rule.
        corruption: Corruption,
    },
    /// The ring exists with another geometry than the builder asked for
    /// ([`RingBuilder::slots`](crate::RingBuilder::slots),
    /// [`slot_size`](crate::RingBuilder::slot_size) or
    /// [`max_message`](crate::RingBuilder::max_message)); see
    /// [`RingBuilder::accept_any_geometry`](crate::RingBuilder::accept_any_geometry).
    GeometryMismatch {
        /// The ring's address.
        address: String,
        /// The geometry asked for (a dimension the builder was not given is
        /// the one found).
        expected: Geometry,
        /// The ring's geometry.
        found: Geometry,
    },
    /// No ring appeared at the address within the time
    /// [`RingBuilder::wait_for_creation`](crate::RingBuilder::wait_for_creation)
    /// allowed.
    NotCreated {
        /// The ring's address.
        address: String,
        /// How long the opener waited.
        waited: Duration,
    },
    /// [`RingBuilder::open_or_create`](crate::RingBuilder::open_or_create)
    /// found the ring, then lost it, again and again: other processes keep
    /// removing or replacing it.
    Vanished {
        /// The ring's address.
        address: String,
        /// How many times it tried to create or open it.
        attempts: u32,
    },
    /// The requested side of the ring is held by a live process.
    AlreadyClaimed {
        /// The ring's address.
        address: String,
        /// The side asked for.
        side: Side,
        /// The process holding it.
        pid: u32,
    },
    /// The ring was removed ([`Ring::remove`](crate::Ring::remove)): its
    /// sides can no longer be claimed.
    Removed {
        /// The ring's address.
        address: String,
    },
    /// The ring still has a live producer or consumer and removal was not
    /// forced.
    InUse {
        /// The ring's address.
        address: String,
        /// The live side.
        side: Side,
        /// Its process.
        pid: u32,
    },
    /// Huge pages were required and could not be had.
    HugePagesUnavailable {
        /// The ring's address.
        address: String,
        /// What went wrong and how to fix it.
        reason: String,
    },
    /// This operation does not apply to this backend.
    Unsupported {
        /// The ring's address.
        address: String,
        /// What was attempted.
        what: &'static str,
    },
    /// Connecting to a listener whose socket is missing, or a stale
    /// socket whose server is gone.
    NoListener {
        /// The socket's path.
        address: String,
    },
    /// Binding a listener where a live one is already bound.
    ListenerInUse {
        /// The socket's path.
        address: String,
        /// The live listener's process, where the kernel said.
        pid: Option<u32>,
    },
    /// Something other than a UNIX socket (a FIFO, a file, a symbolic link,
    /// ...) is at a listener's path: it is never replaced or opened.
    NotASocket {
        /// The path.
        address: String,
    },
    /// The other end of a listener connection broke the handshake (sent
    /// something else, timed out or went away).
    Handshake {
        /// The socket's path, or `listener` on the server side.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// A typed handle's message type needs more alignment than the ring
    /// gives its payloads.
    Misaligned {
        /// The ring's address.
        address: String,
        /// The handle's type.
        type_name: String,
        /// The alignment the type needs, in bytes.
        type_align: usize,
        /// The alignment of the ring's payloads, in bytes.
        ring_align: usize,
    },
    /// A typed handle's message type is larger than the ring's message
    /// limit.
    TypeTooLarge {
        /// The ring's address.
        address: String,
        /// The handle's type.
        type_name: String,
        /// The type's size in bytes.
        size: usize,
        /// The ring's message limit in bytes.
        max: usize,
    },
    /// Any other failed system call.
    Io {
        /// The operation (`shm_open`, `ftruncate`, `mmap`, ...).
        op: &'static str,
        /// The ring's address or path.
        target: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl Error {
    /// Maps an errno from a call on `address` to the most specific variant.
    pub(crate) fn from_errno(op: &'static str, address: &str, e: rustix::io::Errno) -> Error {
        use rustix::io::Errno;
        let address = address.to_owned();
        match e {
            Errno::EXIST => Error::AlreadyExists { address },
            Errno::NOENT => Error::NotFound { address },
            Errno::ACCESS | Errno::PERM => Error::PermissionDenied {
                address,
                op,
                owner: None,
                mode: None,
            },
            Errno::LOOP => Error::Symlink { address },
            // A directory opened for writing, a UNIX socket, a device node
            // without a driver.
            Errno::ISDIR | Errno::NXIO | Errno::NODEV => Error::NotARegularFile { address },
            _ => Error::Io {
                op,
                target: address,
                source: e.into(),
            },
        }
    }

    pub(crate) fn io(op: &'static str, target: &str, source: io::Error) -> Error {
        Error::Io {
            op,
            target: target.to_owned(),
            source,
        }
    }

    pub(crate) fn config(what: &'static str, value: u64, reason: &'static str) -> Error {
        Error::InvalidConfig {
            what,
            value,
            reason,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidAddress { input, reason } => write!(
                f,
                "invalid ring address `{input}`: {reason} \
                 (expected shm:NAME, file:PATH, sysv:KEY or sysv:PATH:ID)"
            ),
            Error::InvalidConfig {
                what,
                value,
                reason,
            } => write!(f, "invalid {what} {value}: {reason}"),
            Error::AlreadyExists { address } => write!(
                f,
                "ring `{address}` already exists: open it instead, or remove it first \
                 with `shmpipe rm {address}`"
            ),
            Error::NotFound { address } => write!(
                f,
                "no ring at `{address}`: create it first (`shmpipe create {address}`), \
                 or check the name with `shmpipe list`"
            ),
            Error::PermissionDenied {
                address,
                op,
                owner,
                mode,
            } => {
                write!(f, "permission denied to {op} `{address}`")?;
                match (owner, mode) {
                    (Some(u), Some(m)) => write!(f, " (owner uid {u}, mode {m:04o})")?,
                    (Some(u), None) => write!(f, " (owner uid {u})")?,
                    _ => {}
                }
                if *op == "connect" {
                    f.write_str(
                        ": the listener's socket mode keeps other users out (0600 by \
                         default); have the server widen it with `ListenerBuilder::mode` \
                         (for example 0o660 for its group), or run as its user",
                    )
                } else if *op == "bind" {
                    f.write_str(
                        ": the directory is not writable, or another user's socket is at \
                         that path; choose a path in a directory you own",
                    )
                } else if *op == "remove" {
                    f.write_str(
                        ": only its owner or root can remove it (in /dev/shm, which is \
                         sticky, also for a ring others may read and write)",
                    )
                } else {
                    f.write_str(
                        ": it belongs to another user or its mode forbids access; to share a \
                         ring, create it with a wider `--mode` (for example 0660), or have \
                         its owner `chmod` it",
                    )
                }
            }
            Error::Symlink { address } => write!(
                f,
                "`{address}` is a symbolic link: shmpipe never follows a symlink at the final \
                 path component; name the real file instead"
            ),
            Error::NotARegularFile { address } => write!(
                f,
                "`{address}` is not a regular file or shared-memory object: refusing to map it"
            ),
            Error::NotInitialized { address, waited } => write!(
                f,
                "ring `{address}` was not initialised within {waited:?}: its creator may have \
                 died while creating it; remove it with `shmpipe rm --force {address}` and \
                 create it again"
            ),
            Error::BadMagic { address, found } => write!(
                f,
                "`{address}` is not a shmpipe ring (found magic {found:#018x}): refusing to \
                 touch it; check the address"
            ),
            Error::VersionMismatch {
                address,
                found,
                expected,
            } => write!(
                f,
                "ring `{address}` has layout version {found}, but this build of shmpipe speaks \
                 version {expected}: use the same shmpipe version on both sides, or recreate \
                 the ring"
            ),
            Error::IncompatibleType {
                address,
                expected,
                found: Some(found),
            } => write!(
                f,
                "ring `{address}` carries {found}, but this side expects {expected}: build both \
                 sides with the same message type, or open the ring with the type it was \
                 created for (a type is named by its path, `core::any::type_name`, unless \
                 named explicitly: define it in a crate both programs use, or give both sides \
                 the same explicit name, `message_type_named` and `typed_*_named`)"
            ),
            Error::IncompatibleType {
                address,
                expected,
                found: None,
            } => write!(
                f,
                "ring `{address}` was created untyped (raw bytes), but this side expects \
                 {expected}: create the ring with the typed API, or open it untyped"
            ),
            Error::Corrupt {
                address,
                corruption,
            } => write!(
                f,
                "ring `{address}` is corrupt: {corruption}; remove it with \
                 `shmpipe rm --force {address}` and create it again"
            ),
            Error::GeometryMismatch {
                address,
                expected,
                found,
            } => write!(
                f,
                "ring `{address}` exists with {found}, not the {expected} asked for: open it \
                 without asking for a geometry (`accept_any_geometry(true)`; CLI: drop \
                 --slots/--slot-size) to use it as it is, or remove it first \
                 (`shmpipe rm {address}`) and create it again"
            ),
            Error::NotCreated { address, waited } => write!(
                f,
                "no ring appeared at `{address}` within {waited:?}: start the process that \
                 creates it, wait longer, or check the name with `shmpipe list`"
            ),
            Error::Vanished { address, attempts } => write!(
                f,
                "ring `{address}` was removed or replaced {attempts} times while this process \
                 tried to open or create it: find the process that keeps removing it \
                 (`shmpipe rm`, a reclaiming creator), then try again"
            ),
            Error::AlreadyClaimed { address, side, pid } => write!(
                f,
                "the {side} side of ring `{address}` is held by live process {pid}: a ring has \
                 one producer and one consumer; stop that process or use another ring"
            ),
            Error::Removed { address } => write!(
                f,
                "ring `{address}` was removed (`shmpipe rm --force`): open or create it \
                 again by name"
            ),
            Error::InUse { address, side, pid } => write!(
                f,
                "ring `{address}` is in use by its {side} (live process {pid}): stop it first, \
                 or remove the ring anyway with `shmpipe rm --force {address}`"
            ),
            Error::HugePagesUnavailable { address, reason } => {
                write!(f, "huge pages unavailable for ring `{address}`: {reason}")
            }
            Error::Unsupported { address, what } => {
                write!(f, "{what} is not supported for ring `{address}`")
            }
            Error::NoListener { address } => write!(
                f,
                "no listener at `{address}` (no socket there, or a stale one whose server \
                 died): start the server first, or check the path"
            ),
            Error::ListenerInUse { address, pid } => {
                write!(f, "a live listener is bound at `{address}`")?;
                if let Some(pid) = pid {
                    write!(f, " (process {pid})")?;
                }
                f.write_str(": stop it first, or bind another path")
            }
            Error::NotASocket { address } => write!(
                f,
                "`{address}` exists and is not a UNIX socket: refusing to replace or use it; \
                 remove it, or choose another path"
            ),
            Error::Handshake { address, reason } => write!(
                f,
                "connection handshake with `{address}` failed: {reason}; check that both \
                 sides run the same shmpipe version and that the peer is not stuck"
            ),
            Error::Misaligned {
                address,
                type_name,
                type_align,
                ring_align,
            } => write!(
                f,
                "`{type_name}` needs {type_align}-byte alignment, but ring `{address}` aligns \
                 its payloads to {ring_align} bytes: create the ring for this type \
                 (`RingBuilder::message_type`, which aligns for it) or with a `payload_align` \
                 of at least {type_align}; or receive copies (`Consumer::recv_value`), which \
                 need no alignment"
            ),
            Error::TypeTooLarge {
                address,
                type_name,
                size,
                max,
            } => write!(
                f,
                "`{type_name}` is {size} bytes, but ring `{address}` carries messages of at most \
                 {max} bytes: create the ring for this type (`RingBuilder::message_type`, which \
                 sizes its slots for it), or with a `message_limit` of at least {size} (more \
                 slots or larger ones)"
            ),
            Error::Io { op, target, source } => write!(f, "{op} `{target}` failed: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Corrupt { corruption, .. } => Some(corruption),
            _ => None,
        }
    }
}

/// Why a non-blocking send ([`Producer::try_send`](crate::Producer::try_send)
/// and the `try_reserve*` calls) failed. An owned message is handed back, a
/// borrowed one is not (`T` is `()`), as for [`SendError`].
#[derive(Clone, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The ring is full; try again once the consumer has made room.
    Full(T),
    /// The consumer has dropped its handle; nothing more will be read.
    Disconnected(T),
    /// The ring is full and was removed ([`Ring::remove`](crate::Ring::remove)):
    /// nothing will make room.
    Removed(T),
    /// The message is larger than the ring's message limit.
    TooLarge {
        /// The message.
        msg: T,
        /// The message's length in bytes.
        len: usize,
        /// The ring's message limit in bytes.
        max: usize,
    },
    /// The consumer's shared index breaks the protocol.
    Corrupt {
        /// The message.
        msg: T,
        /// What is wrong.
        corruption: Corruption,
    },
}

/// Why a blocking send (`send`, `send_timeout`, `send_deadline` and the
/// blocking `reserve*` calls) failed.
///
/// An owned message (`Vec<u8>`, `String`, `Box<[u8]>`, ...) is handed back
/// as `T`. A borrowed one (`&[u8]`, `&Vec<u8>`, `b"..."`) is not: `T` is
/// `()`, so the error borrows nothing, is `'static`, and `?` boxes it (see
/// [`Message`](crate::Message)):
///
/// ```
/// use std::error::Error;
/// use shmpipe::{Producer, RingBuilder};
///
/// fn f(tx: &mut Producer) -> Result<(), Box<dyn Error>> {
///     let local = vec![1u8, 2, 3];
///     tx.send(&local[..])?;
///     tx.send_timeout(&local[..], std::time::Duration::from_millis(10))?;
///     tx.send_deadline(&local, std::time::Instant::now())?;
///     tx.try_send(&local[..])?;
///     Ok(())
/// }
/// # let ring = RingBuilder::new().slots(8).create_in_process()?;
/// # let mut tx = ring.producer()?;
/// # f(&mut tx)?;
/// # Ok::<(), Box<dyn Error>>(())
/// ```
///
/// (A `From<SendError<&[u8]>> for Box<dyn Error>` cannot do this: it would
/// overlap std's `impl<E: Error> From<E> for Box<dyn Error>`. To box an
/// error that carries an owned message, `e.map(drop)` drops it.)
#[derive(Clone, PartialEq, Eq)]
pub enum SendError<T> {
    /// The deadline passed with the ring still full. Never returned by the
    /// calls without a deadline.
    Timeout(T),
    /// The consumer has dropped its handle; nothing more will be read.
    Disconnected(T),
    /// The ring was removed ([`Ring::remove`](crate::Ring::remove)) while
    /// this call waited for room.
    Removed(T),
    /// The consumer process died without dropping its handle.
    PeerDied {
        /// The message.
        msg: T,
        /// The dead consumer's process id.
        pid: u32,
    },
    /// The message is larger than the ring's message limit.
    TooLarge {
        /// The message.
        msg: T,
        /// The message's length in bytes.
        len: usize,
        /// The ring's message limit in bytes.
        max: usize,
    },
    /// The consumer's shared index breaks the protocol.
    Corrupt {
        /// The message.
        msg: T,
        /// What is wrong.
        corruption: Corruption,
    },
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(m) | TrySendError::Disconnected(m) | TrySendError::Removed(m) => m,
            TrySendError::TooLarge { msg, .. } | TrySendError::Corrupt { msg, .. } => msg,
        }
    }

    /// Whether the ring was full (the only transient failure).
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the consumer has gone away.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }

    /// Converts the message inside, keeping the reason; for example
    /// `e.map(drop)` gives a `'static` error that `?` can box.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> TrySendError<U> {
        match self {
            TrySendError::Full(m) => TrySendError::Full(f(m)),
            TrySendError::Disconnected(m) => TrySendError::Disconnected(f(m)),
            TrySendError::Removed(m) => TrySendError::Removed(f(m)),
            TrySendError::TooLarge { msg, len, max } => TrySendError::TooLarge {
                msg: f(msg),
                len,
                max,
            },
            TrySendError::Corrupt { msg, corruption } => TrySendError::Corrupt {
                msg: f(msg),
                corruption,
            },
        }
    }
}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Timeout(m) | SendError::Disconnected(m) | SendError::Removed(m) => m,
            SendError::PeerDied { msg, .. }
            | SendError::TooLarge { msg, .. }
            | SendError::Corrupt { msg, .. } => msg,
        }
    }

    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendError::Timeout(_))
    }

    /// Whether the consumer has gone away, gracefully or by dying.
    pub fn is_disconnected(&self) -> bool {
        matches!(
            self,
            SendError::Disconnected(_) | SendError::PeerDied { .. }
        )
    }

    /// Converts the message inside, keeping the reason; for example
    /// `e.map(drop)` gives a `'static` error that `?` can box.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> SendError<U> {
        match self {
            SendError::Timeout(m) => SendError::Timeout(f(m)),
            SendError::Disconnected(m) => SendError::Disconnected(f(m)),
            SendError::Removed(m) => SendError::Removed(f(m)),
            SendError::PeerDied { msg, pid } => SendError::PeerDied { msg: f(msg), pid },
            SendError::TooLarge { msg, len, max } => SendError::TooLarge {
                msg: f(msg),
                len,
                max,
            },
            SendError::Corrupt { msg, corruption } => SendError::Corrupt {
                msg: f(msg),
                corruption,
            },
        }
    }
}

impl<T> From<TrySendError<T>> for SendError<T> {
    /// Converts a non-`Full` try-error; `Full` becomes `Timeout`.
    fn from(e: TrySendError<T>) -> Self {
        match e {
            TrySendError::Full(m) => SendError::Timeout(m),
            TrySendError::Disconnected(m) => SendError::Disconnected(m),
            TrySendError::Removed(m) => SendError::Removed(m),
            TrySendError::TooLarge { msg, len, max } => SendError::TooLarge { msg, len, max },
            TrySendError::Corrupt { msg, corruption } => SendError::Corrupt { msg, corruption },
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
            TrySendError::Removed(_) => f.write_str("Removed(..)"),
            TrySendError::TooLarge { len, max, .. } => {
                write!(f, "TooLarge {{ len: {len}, max: {max}, .. }}")
            }
            TrySendError::Corrupt { corruption, .. } => {
                write!(f, "Corrupt {{ corruption: {corruption:?}, .. }}")
            }
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Timeout(_) => f.write_str("Timeout(..)"),
            SendError::Disconnected(_) => f.write_str("Disconnected(..)"),
            SendError::Removed(_) => f.write_str("Removed(..)"),
            SendError::PeerDied { pid, .. } => write!(f, "PeerDied {{ pid: {pid}, .. }}"),
            SendError::TooLarge { len, max, .. } => {
                write!(f, "TooLarge {{ len: {len}, max: {max}, .. }}")
            }
            SendError::Corrupt { corruption, .. } => {
                write!(f, "Corrupt {{ corruption: {corruption:?}, .. }}")
            }
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full ring"),
            TrySendError::Disconnected(_) => {
                f.write_str("sending on a ring whose consumer has disconnected")
            }
            TrySendError::Removed(_) => f.write_str(
                "the ring was removed (`shmpipe rm --force`) while full: nothing will read it",
            ),
            TrySendError::TooLarge { len, max, .. } => write!(
                f,
                "message of {len} bytes is larger than the ring's message limit of {max} \
                 bytes: create the ring with a larger message limit (RingBuilder::message_limit, \
                 up to slots x slot size - 16), more slots (RingBuilder::slots) or a larger \
                 slot size (RingBuilder::slot_size)"
            ),
            TrySendError::Corrupt { corruption, .. } => {
                write!(f, "the consumer corrupted the ring: {corruption}")
            }
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Timeout(_) => f.write_str("timed out sending on a full ring"),
            SendError::Disconnected(_) => {
                f.write_str("sending on a ring whose consumer has disconnected")
            }
            SendError::Removed(_) => f.write_str(
                "the ring was removed (`shmpipe rm --force`) while full: nothing will read it",
            ),
            SendError::PeerDied { pid, .. } => write!(
                f,
                "the consumer (process {pid}) died: a new consumer can claim the ring"
            ),
            SendError::TooLarge { len, max, .. } => write!(
                f,
                "message of {len} bytes is larger than the ring's message limit of {max} \
                 bytes: create the ring with a larger message limit (RingBuilder::message_limit, \
                 up to slots x slot size - 16), more slots (RingBuilder::slots) or a larger \
                 slot size (RingBuilder::slot_size)"
            ),
            SendError::Corrupt { corruption, .. } => {
                write!(f, "the consumer corrupted the ring: {corruption}")
            }
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}
impl<T> std::error::Error for SendError<T> {}

/// Why a non-blocking receive (`try_recv*`, `try_borrow`) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message is waiting.
    Empty,
    /// The producer dropped its handle and every message it committed has
    /// been received.
    Disconnected,
    /// The ring is empty and was removed ([`Ring::remove`](crate::Ring::remove)):
    /// nothing will arrive.
    Removed,
    /// The next message does not fit the buffer given. It stays in the ring:
    /// receive it again with a buffer of at least `needed` bytes.
    BufferTooSmall {
        /// The message's length.
        needed: usize,
    },
    /// The producer's shared index or a slot length breaks the protocol.
    Corrupt(Corruption),
}

/// Why a blocking receive (`recv`, `recv_timeout`, `recv_deadline`,
/// `borrow*`) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The deadline passed with the ring still empty. Never returned by the
    /// calls without a deadline.
    Timeout,
    /// The producer dropped its handle and every message it committed has
    /// been received.
    Disconnected,
    /// The ring was removed ([`Ring::remove`](crate::Ring::remove)) while
    /// this call waited for a message.
    Removed,
    /// The producer process died without dropping its handle; every message
    /// it committed has been received.
    PeerDied {
        /// The dead producer's process id.
        pid: u32,
    },
    /// The next message does not fit the buffer given. It stays in the ring.
    BufferTooSmall {
        /// The message's length.
        needed: usize,
    },
    /// The producer's shared index or a slot length breaks the protocol.
    Corrupt(Corruption),
}

impl From<TryRecvError> for RecvError {
    /// Converts a non-`Empty` try-error; `Empty` becomes `Timeout`.
    fn from(e: TryRecvError) -> Self {
        match e {
            TryRecvError::Empty => RecvError::Timeout,
            TryRecvError::Disconnected => RecvError::Disconnected,
            TryRecvError::Removed => RecvError::Removed,
            TryRecvError::BufferTooSmall { needed } => RecvError::BufferTooSmall { needed },
            TryRecvError::Corrupt(c) => RecvError::Corrupt(c),
        }
    }
}

impl TryRecvError {
    /// Whether the ring was empty (the only transient failure).
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Whether the producer has gone away and everything was received.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl RecvError {
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvError::Timeout)
    }

    /// Whether the producer has gone away, gracefully or by dying, and
    /// everything it committed was received.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvError::Disconnected | RecvError::PeerDied { .. })
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty ring"),
            TryRecvError::Disconnected => {
                f.write_str("receiving on an empty ring whose producer has disconnected")
            }
            TryRecvError::Removed => f.write_str(
                "the ring was removed (`shmpipe rm --force`) while empty: nothing will arrive",
            ),
            TryRecvError::BufferTooSmall { needed } => write!(
                f,
                "the next message is {needed} bytes, larger than the buffer given; it stays \
                 in the ring"
            ),
            TryRecvError::Corrupt(c) => write!(f, "the producer corrupted the ring: {c}"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Timeout => f.write_str("timed out receiving on an empty ring"),
            RecvError::Disconnected => {
                f.write_str("receiving on an empty ring whose producer has disconnected")
            }
            RecvError::Removed => f.write_str(
                "the ring was removed (`shmpipe rm --force`) while empty: nothing will arrive",
            ),
            RecvError::PeerDied { pid } => write!(
                f,
                "the producer (process {pid}) died; every message it committed was received"
            ),
            RecvError::BufferTooSmall { needed } => write!(
                f,
                "the next message is {needed} bytes, larger than the buffer given; it stays \
                 in the ring"
            ),
            RecvError::Corrupt(c) => write!(f, "the producer corrupted the ring: {c}"),
        }
    }
}

impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvError {}

/// Why a request/response call ([`Client::call`](crate::Client::call)) or
/// serving one ([`Duplex::try_serve`](crate::Duplex::try_serve)) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// The deadline passed, before the request went out or before its
    /// reply came. A late reply is skipped by the next call.
    Timeout,
    /// The peer closed its end of the duplex.
    Disconnected,
    /// The peer's process died.
    PeerDied {
        /// Its process id.
        pid: u32,
    },
    /// A ring of the duplex was removed.
    Removed,
    /// The request or reply, with its 8-byte id, is larger than a slot.
    TooLarge {
        /// Its length without the id.
        len: usize,
        /// The largest that fits.
        max: usize,
    },
    /// The reply does not fit the buffer given (it was consumed).
    BufferTooSmall {
        /// The reply's length.
        needed: usize,
    },
    /// The peer sent something that is not a message of the protocol: a
    /// message shorter than its id, or a reply to a call not yet made.
    BadMessage {
        /// What is wrong.
        reason: &'static str,
        /// The offending value (a length or an id).
        found: u64,
    },
    /// A ring's shared state breaks the protocol.
    Corrupt(Corruption),
}

impl CallError {
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, CallError::Timeout)
    }

    /// Whether the peer has gone away, gracefully or by dying.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, CallError::Disconnected | CallError::PeerDied { .. })
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => f.write_str("the call timed out; its late reply will be skipped"),
            CallError::Disconnected => f.write_str("the peer closed the connection"),
            CallError::PeerDied { pid } => {
                write!(f, "the peer (process {pid}) died: connect again")
            }
            CallError::Removed => f.write_str("a ring of the connection was removed"),
            CallError::TooLarge { len, max } => write!(
                f,
                "a {len}-byte message does not fit: at most {max} bytes (a slot less the \
                 8-byte id); give the server's rings a larger `max_message`"
            ),
            CallError::BufferTooSmall { needed } => write!(
                f,
                "the {needed}-byte reply does not fit the buffer given; pass a larger one"
            ),
            CallError::BadMessage { reason, found } => write!(
                f,
                "the peer broke the request/response protocol: {reason} (found {found}); \
                 drop the connection"
            ),
            CallError::Corrupt(c) => write!(f, "the peer corrupted a ring: {c}"),
        }
    }
}

impl std::error::Error for CallError {}

impl<T> From<SendError<T>> for CallError {
    fn from(e: SendError<T>) -> Self {
        match e {
            SendError::Timeout(_) => CallError::Timeout,
            SendError::Disconnected(_) => CallError::Disconnected,
            SendError::Removed(_) => CallError::Removed,
            SendError::PeerDied { pid, .. } => CallError::PeerDied { pid },
            SendError::TooLarge { max, .. } => CallError::TooLarge { len: max + 1, max },
            SendError::Corrupt { corruption, .. } => CallError::Corrupt(corruption),
        }
    }
}

impl<T> From<TrySendError<T>> for CallError {
    /// `Full` becomes `Timeout` (a deadline already past).
    fn from(e: TrySendError<T>) -> Self {
        CallError::from(SendError::from(e))
    }
}

impl From<RecvError> for CallError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Timeout => CallError::Timeout,
            RecvError::Disconnected => CallError::Disconnected,
            RecvError::Removed => CallError::Removed,
            RecvError::PeerDied { pid } => CallError::PeerDied { pid },
            RecvError::BufferTooSmall { needed } => CallError::BufferTooSmall { needed },
            RecvError::Corrupt(c) => CallError::Corrupt(c),
        }
    }
}

impl From<TryRecvError> for CallError {
    /// `Empty` becomes `Timeout` (a deadline already past).
    fn from(e: TryRecvError) -> Self {
        CallError::from(RecvError::from(e))
    }
}
