//! Creating and opening rings: [`RingBuilder`] and [`Ring`], and the
//! administrative calls (list, remove, fd passing).
//!
//! ```text
//! mod.rs             RingBuilder (create, open), Ring (handles, list, remove, fds)
//! geometry_check.rs  which geometry an opener asked for, and the check on open
//! open_or_create.rs  open_or_create and wait_for_creation: racing processes
//! ```

mod geometry_check;
mod open_or_create;

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::address::{Address, AsAddress};
use crate::error::Error;
use crate::fingerprint::TypeFingerprint;
use crate::handles::{Consumer, Producer, TypedConsumer, TypedProducer};
use crate::info::{RingInfo, SideState};
use crate::layout::{
    Geometry, DEFAULT_PAYLOAD_ALIGN, FLAG_REMOVED, HEADER_LEN, MAGIC, SLOT_ALIGN, SLOT_HEADER,
};
use crate::mapping::{self, Mapping};
use crate::notify::Notifier;
use crate::reclaim::{self, Reclaim, Staleness};
use crate::segment::{self, Backend, HugePages, Segment, SegmentOptions};
use crate::side::Side;
use crate::sync::Ordering::Relaxed;
use crate::wake::{self, WaitConfig, WaitStrategy};
use geometry_check::Asked;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Default number of slots.
pub const DEFAULT_SLOTS: u64 = 1024;
/// Default slot size in bytes (240-byte messages in one slot).
pub const DEFAULT_SLOT_SIZE: u64 = 256;

/// Configures and creates (or opens) a ring.
///
/// # Examples
///
/// ```
/// use shmpipe::RingBuilder;
///
/// let name = format!("shm:doc-builder-{}", std::process::id());
/// let ring = RingBuilder::new()
///     .slots(256)
///     .max_message(1000) // slot size 1024: 1008-byte payload in one slot
///     .unlink_on_drop(true)
///     .create(&name)?;
/// assert_eq!(ring.info().slot_size, 1024);
/// assert_eq!(ring.info().max_message, 1008);
/// // Larger messages take several slots, up to what the ring holds.
/// assert_eq!(ring.info().message_limit, 256 * 1024 - 16);
/// # Ok::<(), shmpipe::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RingBuilder {
    slots: u64,
    slot_size: u64,
    seg: SegmentOptions,
    wait: WaitConfig,
    unlink_on_drop: bool,
    reclaim: bool,
    asked: Asked,
    wait_for_creation: Option<Duration>,
    payload_align: u64,
    message_limit: Option<u64>,
    fingerprint: Option<TypeFingerprint>,
}

impl Default for RingBuilder {
    fn default() -> Self {
        RingBuilder::new()
    }
}

impl RingBuilder {
    /// A builder with the defaults: 1024 slots of 256 bytes, mode `0600`,
    /// spin-then-park waiting, 100 ms heartbeat, 1 s open timeout.
    pub fn new() -> RingBuilder {
        RingBuilder {
            slots: DEFAULT_SLOTS,
            slot_size: DEFAULT_SLOT_SIZE,
            seg: mapping::segment_options(),
            wait: WaitConfig::default(),
            unlink_on_drop: false,
            reclaim: false,
            asked: Asked::default(),
            wait_for_creation: None,
            payload_align: DEFAULT_PAYLOAD_ALIGN as u64,
            message_limit: None,
            fingerprint: None,
        }
    }

    /// Whether to back the ring with huge pages (default
    /// [`HugePages::Never`]). Per backend: `shm:` rings with huge pages
    /// live on a hugetlbfs mount (POSIX shm's tmpfs has none; the name
    /// stays the same), memfd rings use `MFD_HUGETLB`, System V rings
    /// `SHM_HUGETLB`, and `file:` rings get huge pages when the path is on
    /// hugetlbfs.
    ///
    /// The pages must be reserved beforehand (as root:
    /// `echo 64 > /proc/sys/vm/nr_hugepages`); with
    /// [`HugePages::Require`] an empty pool is an
    /// [`Error::HugePagesUnavailable`] that says so.
    pub fn huge_pages(&mut self, policy: HugePages) -> &mut Self {
        self.seg.huge = policy;
        self
    }

    /// The huge page size to ask for, in bytes (2 MiB or 1 GiB, where the
    /// kernel offers it); default: the system's default huge page size.
    pub fn huge_page_size(&mut self, bytes: u64) -> &mut Self {
        self.seg.huge_size = Some(bytes);
        self
    }

    /// Locks the ring's pages in memory (`mlock`), so they are never
    /// swapped out. Needs a large enough `ulimit -l` or `CAP_IPC_LOCK`.
    pub fn lock_memory(&mut self, yes: bool) -> &mut Self {
        self.seg.lock = yes;
        self
    }

    /// When creating over an existing ring, replace it if it is stale:
    /// its creator and every process that held a side are dead. A ring
    /// with a live creator, producer or consumer is never replaced, and a
    /// segment that is not a shmpipe ring never touched (default `false`:
    /// an existing name is always [`Error::AlreadyExists`], and
    /// [`open_or_create`](Self::open_or_create) opens whatever is there).
    /// Any number of processes may reclaim the same name at once: one
    /// removes the stale ring, and no ring created meanwhile is removed.
    pub fn reclaim_stale(&mut self, yes: bool) -> &mut Self {
        self.reclaim = yes;
        self
    }

    /// Number of slots: a power of two, at most 2^32. Opening then
    /// requires a ring of that many slots ([`Error::GeometryMismatch`]
    /// otherwise; see [`accept_any_geometry`](Self::accept_any_geometry)).
    pub fn slots(&mut self, slots: u64) -> &mut Self {
        self.slots = slots;
        self.asked.slots = true;
        self
    }

    /// Bytes per slot, including its 16-byte header: a multiple of 64, at
    /// most 1 GiB. The largest message in one slot is `slot_size` less the
    /// payload offset (16 bytes, or the payload alignment if larger);
    /// larger messages take several consecutive slots. Opening then
    /// requires a ring of exactly this slot size.
    pub fn slot_size(&mut self, bytes: u64) -> &mut Self {
        self.slot_size = bytes;
        self.asked.slot_size = true;
        self
    }

    /// Sets the slot size to the smallest that carries messages of
    /// `bytes` bytes in one slot (the fast path: one slot, one commit).
    /// Larger messages still go, over several slots, up to
    /// [`message_limit`](Self::message_limit). Opening then requires a ring
    /// of exactly that slot size: the one this builder would create, so
    /// that whichever of several [`open_or_create`](Self::open_or_create)
    /// callers wins, the ring is the same.
    pub fn max_message(&mut self, bytes: u64) -> &mut Self {
        self.slot_size = Geometry::slot_size_for(bytes);
        self.asked.slot_size = true;
        self
    }

    /// The geometry to create when [`slots`](Self::slots) and
    /// [`slot_size`](Self::slot_size) are not given, without requiring it
    /// of a ring that is opened (for tools with defaults of their own:
    /// `shmpipe send` creates 128 x 64 KiB but opens any ring). A later
    /// `slots`, `slot_size` or `max_message` call overrides it and is
    /// checked.
    pub fn default_geometry(&mut self, slots: u64, slot_size: u64) -> &mut Self {
        if !self.asked.slots {
            self.slots = slots;
        }
        if !self.asked.slot_size {
            self.slot_size = slot_size;
        }
        self
    }

    /// Opens a ring of whatever geometry it has, even when this builder was
    /// given [`slots`](Self::slots), [`slot_size`](Self::slot_size) or
    /// [`max_message`](Self::max_message) (default `false`: such a builder
    /// refuses another geometry with [`Error::GeometryMismatch`]). Read the
    /// geometry from [`Ring::info`].
    ///
    /// ```
    /// use shmpipe::{Error, RingBuilder};
    ///
    /// # let name = format!("shm:doc-any-geometry-{}", std::process::id());
    /// let _ring = RingBuilder::new().slots(4).unlink_on_drop(true).create(&name)?;
    /// let mut b = RingBuilder::new();
    /// b.slots(1024);
    /// assert!(matches!(b.open(&name), Err(Error::GeometryMismatch { .. })));
    /// let opened = b.accept_any_geometry(true).open(&name)?;
    /// assert_eq!(opened.info().slots, 4);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn accept_any_geometry(&mut self, yes: bool) -> &mut Self {
        self.asked.any = yes;
        self
    }

    /// The largest message the ring accepts, over any number of slots
    /// (default: what the ring holds, `slots x slot_size - 16`). A larger
    /// limit than the ring holds is an [`Error::InvalidConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new()
    ///     .slots(64)
    ///     .slot_size(4096)
    ///     .message_limit(100_000)
    ///     .create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send(vec![7u8; 100_000])?; // 25 slots, committed as one
    /// assert_eq!(rx.try_recv_vec()?.len(), 100_000);
    /// assert!(tx.try_send(vec![0u8; 100_001]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn message_limit(&mut self, bytes: u64) -> &mut Self {
        self.message_limit = Some(bytes);
        self
    }

    /// Every payload starts at an address that is a multiple of `align`
    /// (default 16): a power of two from 8 to 4096. Above 64 the slot size
    /// must be a multiple of it. The payload offset in a slot is
    /// `max(16, align)`, so alignments above 16 cost that many bytes of
    /// each slot.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shmpipe::RingBuilder::new()
    ///     .slots(8)
    ///     .slot_size(256)
    ///     .payload_align(64)
    ///     .create_in_process()?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// assert_eq!(rx.payload_align(), 64);
    /// tx.try_send([1u8; 100])?;
    /// let msg = rx.try_borrow()?;
    /// assert_eq!(msg.as_ptr() as usize % 64, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn payload_align(&mut self, align: u64) -> &mut Self {
        self.payload_align = align;
        self
    }

    /// The message type the ring carries (`None`: untyped bytes, the
    /// default). `create` records it in the header; `open` refuses a ring
    /// recorded with an incompatible type ([`Error::IncompatibleType`]).
    /// Used by the typed API; an untyped open never checks.
    #[doc(hidden)]
    pub fn fingerprint(&mut self, fingerprint: Option<TypeFingerprint>) -> &mut Self {
        self.fingerprint = fingerprint;
        self
    }

    /// Permission bits of a new segment (default `0o600`: owner only).
    /// Applied exactly, whatever the umask.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.seg.mode = mode;
        self
    }

    /// Pre-faults every page when mapping, so the first messages pay no
    /// page faults.
    pub fn populate(&mut self, yes: bool) -> &mut Self {
        self.seg.populate = yes;
        self
    }

    /// How long `open` waits for a creator that has not finished
    /// initialising the ring (default 1 s).
    pub fn open_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.seg.open_timeout = timeout;
        self
    }

    /// How the handles' blocking calls wait (default
    /// [`WaitStrategy::DEFAULT`]).
    pub fn wait_strategy(&mut self, strategy: WaitStrategy) -> &mut Self {
        self.wait.strategy = strategy;
        self
    }

    /// How often a blocked handle checks that its peer lives (default
    /// 100 ms).
    pub fn heartbeat(&mut self, interval: Duration) -> &mut Self {
        self.wait.heartbeat = interval.max(Duration::from_millis(1));
        self
    }

    /// Removes the ring's name when the created [`Ring`] and every handle
    /// from it are dropped (default `false`: the ring outlives its
    /// creator until removed).
    pub fn unlink_on_drop(&mut self, yes: bool) -> &mut Self {
        self.unlink_on_drop = yes;
        self
    }

    /// Creates the ring for messages of type `T`: records `T`'s
    /// [`TypeFingerprint`] (named by [`core::any::type_name`]) in the header,
    /// so that typed handles for another type are refused
    /// ([`Error::IncompatibleType`]); aligns every payload for `T` (a
    /// [`payload_align`](Self::payload_align) of at least `align_of::<T>()`);
    /// and sizes the slots to carry one `T` each (the slot header, 16 bytes
    /// or the alignment if larger, plus `size_of::<T>()`, rounded up to 64
    /// bytes or to the alignment above 64). Set the slot size or the
    /// alignment after this call to change them.
    ///
    /// Untyped handles ([`Ring::producer`], [`Ring::consumer`]) still open
    /// the ring and see each `T` as its bytes.
    ///
    /// On a builder used to [`open`](Self::open) a ring, this makes the
    /// open itself check the type, strictly: a ring created for another
    /// type, or for none, is [`Error::IncompatibleType`]. (Typed handles
    /// made from any [`Ring`] also accept an untyped ring; see
    /// [`Ring::typed_producer`].)
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::{Error, RingBuilder};
    ///
    /// let ring = RingBuilder::new().slots(8).message_type::<[u64; 4]>().create_in_process()?;
    /// assert_eq!(ring.info().slot_size, 64); // the smallest that holds one
    /// assert_eq!(ring.info().max_message, 48); // less its 16-byte header
    /// let mut tx = ring.typed_producer::<[u64; 4]>()?;
    /// tx.try_send(&[1, 2, 3, 4])?;
    /// assert!(matches!(
    ///     ring.typed_consumer::<[u32; 8]>(),
    ///     Err(Error::IncompatibleType { .. }) // same size, another type
    /// ));
    /// assert_eq!(ring.typed_consumer::<[u64; 4]>()?.try_recv()?, [1, 2, 3, 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn message_type<T>(&mut self) -> &mut Self {
        self.message_type_as::<T>(TypeFingerprint::of::<T>())
    }

    /// Like [`message_type`](Self::message_type), under an explicit name:
    /// the same in every build and wherever `T` is defined (see
    /// [`TypeFingerprint`]). Typed handles then name it too
    /// ([`Ring::typed_producer_named`], [`Ring::typed_consumer_named`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::RingBuilder;
    ///
    /// let ring = RingBuilder::new()
    ///     .message_type_named::<u64>("feed::Seq/1")
    ///     .create_in_process()?;
    /// assert!(ring.typed_consumer::<u64>().is_err()); // named otherwise
    /// let _rx = ring.typed_consumer_named::<u64>("feed::Seq/1")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn message_type_named<T>(&mut self, name: &str) -> &mut Self {
        self.message_type_as::<T>(TypeFingerprint::named::<T>(name))
    }

    fn message_type_as<T>(&mut self, fp: TypeFingerprint) -> &mut Self {
        self.fingerprint = Some(fp);
        // Aligned for `T` (never less than asked for before), and one `T`
        // per slot: the payload offset is the 16-byte slot header rounded
        // up to the alignment; slots are multiples of 64 bytes, and of the
        // alignment above that.
        let align = (core::mem::align_of::<T>() as u64).max(self.payload_align);
        self.payload_align = align;
        let offset = align.max(SLOT_HEADER as u64);
        let unit = align.max(SLOT_ALIGN as u64);
        let size = (core::mem::size_of::<T>() as u64).max(1);
        self.slot_size = offset
            .saturating_add(size)
            .div_ceil(unit)
            .saturating_mul(unit);
        self
    }

    fn geometry(&self) -> Result<Geometry, Error> {
        if self.seg.mode > 0o777 {
            return Err(Error::config(
                "mode",
                u64::from(self.seg.mode),
                "must be permission bits, 0 to 0777 (octal)",
            ));
        }
        Geometry::with_layout(
            self.slots,
            self.slot_size,
            self.payload_align,
            self.message_limit,
        )
    }

    /// Refuses a ring recorded with another message type than the one this
    /// builder expects (if any).
    fn check_type(&self, mapping: &Mapping) -> Result<(), Error> {
        let Some(expected) = &self.fingerprint else {
            return Ok(());
        };
        match &mapping.fingerprint {
            Some(found) if expected.compatible(found) => Ok(()),
            found => Err(Error::IncompatibleType {
                address: mapping.label.clone(),
                expected: Box::new(expected.clone()),
                found: found.clone().map(Box::new),
            }),
        }
    }

    /// Creates a new ring at `address` (`shm:NAME`, `file:PATH`, ...).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`], [`Error::InvalidConfig`],
    /// [`Error::AlreadyExists`] (an existing ring is never clobbered),
    /// [`Error::PermissionDenied`], [`Error::Symlink`] or [`Error::Io`].
    pub fn create(&self, address: impl AsAddress) -> Result<Ring, Error> {
        let address = address.to_address()?;
        let geometry = self.geometry()?;
        self.create_at(&address, geometry)
    }

    /// `create` for a parsed address and a checked geometry.
    fn create_at(&self, address: &Address, geometry: Geometry) -> Result<Ring, Error> {
        let address = address.clone();
        let total = geometry.total_len().expect("checked by Geometry::new");
        let segment = match Segment::create(&address, total, &self.seg) {
            Err(Error::AlreadyExists { .. }) if self.reclaim => match reclaim::reclaim(&address)? {
                // O_EXCL decides among all who found the name free.
                Reclaim::Free => Segment::create(&address, total, &self.seg)?,
                Reclaim::Busy | Reclaim::Live(Staleness::Creator | Staleness::Stale) => {
                    return Err(Error::AlreadyExists {
                        address: address.to_string(),
                    })
                }
                Reclaim::Live(Staleness::Held(side, pid)) => {
                    return Err(Error::InUse {
                        address: address.to_string(),
                        side,
                        pid,
                    })
                }
            },
            r => r?,
        };
        let label = address.to_string();
        let mut mapping = match Mapping::init(
            segment,
            geometry,
            label,
            Some(address.clone()),
            self.fingerprint.clone(),
        ) {
            Ok(s) => s,
            Err(e) => {
                let _ = segment::unlink(&address);
                return Err(e);
            }
        };
        mapping.unlink_on_drop = self.unlink_on_drop;
        Ok(Ring {
            mapping: Arc::new(mapping),
            wait: self.wait,
            created: true,
        })
    }

    /// Creates a ring in an anonymous memfd. Share it with a child by
    /// `fork` or with any process by passing [`Ring::fd`] over a UNIX
    /// socket; the receiver calls [`Ring::from_fd`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] or [`Error::Io`].
    pub fn create_memfd(&self, name: &str) -> Result<Ring, Error> {
        let geometry = self.geometry()?;
        let total = geometry.total_len().expect("checked by Geometry::new");
        let segment = Segment::create_memfd(name, total, &self.seg)?;
        let mapping = Mapping::init(
            segment,
            geometry,
            format!("memfd:{name}"),
            None,
            self.fingerprint.clone(),
        )?;
        Ok(Ring {
            mapping: Arc::new(mapping),
            wait: self.wait,
            created: true,
        })
    }

    /// Creates a ring in this process's heap, for threads of one process.
    /// The ring code is the same as for shared memory.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`].
    pub fn create_in_process(&self) -> Result<Ring, Error> {
        let geometry = self.geometry()?;
        let total = geometry.total_len().expect("checked by Geometry::new");
        #[cfg(not(loom))]
        let segment = Segment::create_heap(total)?;
        #[cfg(loom)]
        let segment = Segment::create_heap(total - geometry.slots_offset as u64)?;
        let mapping = Mapping::init(
            segment,
            geometry,
            "heap".to_owned(),
            None,
            self.fingerprint.clone(),
        )?;
        Ok(Ring {
            mapping: Arc::new(mapping),
            wait: self.wait,
            created: true,
        })
    }

    /// Opens an existing ring with this builder's open timeout and wait
    /// settings. A builder given [`slots`](Self::slots),
    /// [`slot_size`](Self::slot_size) or [`max_message`](Self::max_message)
    /// refuses a ring of another geometry; with
    /// [`wait_for_creation`](Self::wait_for_creation) it waits for a ring
    /// that does not exist yet.
    ///
    /// # Errors
    ///
    /// As [`Ring::open`], and [`Error::GeometryMismatch`],
    /// [`Error::NotCreated`] (with `wait_for_creation`, instead of
    /// `NotFound`).
    pub fn open(&self, address: impl AsAddress) -> Result<Ring, Error> {
        let address = address.to_address()?;
        let ring = self.open_waiting(&address)?;
        self.check_geometry(&ring)?;
        Ok(ring)
    }

    /// One attempt to open the ring at `address`, no geometry check.
    fn open_once(&self, address: &Address) -> Result<Ring, Error> {
        let segment = Segment::open(address, &self.seg)?;
        let mapping = Mapping::attach(
            segment,
            address.to_string(),
            Some(address.clone()),
            self.seg.open_timeout,
        )?;
        self.check_type(&mapping)?;
        Ok(Ring {
            mapping: Arc::new(mapping),
            wait: self.wait,
            created: false,
        })
    }

    /// Opens a ring from a file descriptor (a memfd from
    /// [`Ring::fd`] received over a socket or inherited), checking its
    /// geometry as [`open`](Self::open) does.
    ///
    /// # Errors
    ///
    /// As [`Ring::open`], and [`Error::GeometryMismatch`].
    pub fn open_fd(&self, fd: OwnedFd) -> Result<Ring, Error> {
        let segment = Segment::from_fd(fd, &self.seg)?;
        let label = match segment.backend() {
            Backend::Memfd => "memfd".to_owned(),
            _ => "fd".to_owned(),
        };
        let mapping = Mapping::attach(segment, label, None, self.seg.open_timeout)?;
        self.check_type(&mapping)?;
        let ring = Ring {
            mapping: Arc::new(mapping),
            wait: self.wait,
            created: false,
        };
        self.check_geometry(&ring)?;
        Ok(ring)
    }

    /// Opens an existing ring read-only, for inspection: [`Ring::info`]
    /// works, claiming a side does not.
    ///
    /// # Errors
    ///
    /// As [`Ring::open`].
    pub fn open_read_only(&self, address: impl AsAddress) -> Result<Ring, Error> {
        let address = address.to_address()?;
        let mut seg = self.seg.clone();
        seg.read_only = true;
        let segment = Segment::open(&address, &seg)?;
        let mapping = Mapping::attach(
            segment,
            address.to_string(),
            Some(address),
            seg.open_timeout,
        )?;
        self.check_type(&mapping)?;
        Ok(Ring {
            mapping: Arc::new(mapping),
            wait: self.wait,
            created: false,
        })
    }
}

/// A mapped ring. Take its [`producer`](Ring::producer) or
/// [`consumer`](Ring::consumer) side (one of each per ring, across all
/// processes), or read its [`info`](Ring::info).
///
/// Dropping the `Ring` keeps handles taken from it working; the mapping
/// goes when the last of them is dropped.
pub struct Ring {
    mapping: Arc<Mapping>,
    wait: WaitConfig,
    created: bool,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("address", &self.mapping.label)
            .field("slots", &self.mapping.geometry.slot_count)
            .field("slot_size", &self.mapping.geometry.slot_size)
            .finish_non_exhaustive()
    }
}

impl Ring {
    /// Opens an existing ring with the default options.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::PermissionDenied`], [`Error::Symlink`],
    /// [`Error::NotInitialized`] (the creator did not finish in time),
    /// [`Error::BadMagic`], [`Error::VersionMismatch`], [`Error::Corrupt`]
    /// or [`Error::Io`].
    pub fn open(address: impl AsAddress) -> Result<Ring, Error> {
        RingBuilder::new().open(address)
    }

    /// Opens a ring from a file descriptor; see [`RingBuilder::open_fd`].
    ///
    /// # Errors
    ///
    /// As [`Ring::open`].
    pub fn from_fd(fd: OwnedFd) -> Result<Ring, Error> {
        RingBuilder::new().open_fd(fd)
    }

    /// Claims the producer side.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyClaimed`] while another live process (or handle)
    /// holds it; a side left by a dead process is taken over.
    /// [`Error::Corrupt`] if the shared indices are inconsistent.
    pub fn producer(&self) -> Result<Producer, Error> {
        self.check_writable()?;
        Producer::new(Arc::clone(&self.mapping), self.wait)
    }

    /// Claims the consumer side.
    ///
    /// # Errors
    ///
    /// As [`producer`](Self::producer).
    pub fn consumer(&self) -> Result<Consumer, Error> {
        self.check_writable()?;
        Consumer::new(Arc::clone(&self.mapping), self.wait)
    }

    /// Claims the producer side for messages of type `T`, named by
    /// [`core::any::type_name`].
    ///
    /// Checks, before claiming: that the ring was created for `T`
    /// ([`RingBuilder::message_type`]) or for no type at all (an untyped
    /// ring carries bytes, and a typed handle on it checks only size and
    /// alignment); that a `T` fits a slot; and that the ring aligns its
    /// payloads for `T`, so that in-place writes hand out an aligned
    /// `&mut T` whatever alignment `T` needs.
    ///
    /// # Errors
    ///
    /// [`Error::IncompatibleType`] (the ring was created for another type),
    /// [`Error::TypeTooLarge`], [`Error::Misaligned`], and those of
    /// [`producer`](Self::producer).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::{Error, RingBuilder};
    /// use shmpipe::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
    ///
    /// #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    /// #[repr(C, align(64))]
    /// struct Line([u8; 64]);
    ///
    /// // An untyped ring aligns payloads less than a `Line` needs.
    /// let plain = RingBuilder::new().slots(4).max_message(64).create_in_process()?;
    /// assert!(matches!(plain.typed_producer::<Line>(), Err(Error::Misaligned { .. })));
    ///
    /// let ring = RingBuilder::new().slots(4).message_type::<Line>().create_in_process()?;
    /// let mut tx = ring.typed_producer::<Line>()?;
    /// let mut slot = tx.try_reserve()?;
    /// assert_eq!(&*slot as *const Line as usize % 64, 0);
    /// slot.0 = [7; 64];
    /// slot.commit();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn typed_producer<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
    ) -> Result<TypedProducer<T>, Error> {
        self.typed_producer_as(TypeFingerprint::of::<T>())
    }

    /// Like [`typed_producer`](Self::typed_producer), for a ring created
    /// with [`RingBuilder::message_type_named`] under `name`.
    ///
    /// # Errors
    ///
    /// As [`typed_producer`](Self::typed_producer).
    pub fn typed_producer_named<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
        name: &str,
    ) -> Result<TypedProducer<T>, Error> {
        self.typed_producer_as(TypeFingerprint::named::<T>(name))
    }

    fn typed_producer_as<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
        fp: TypeFingerprint,
    ) -> Result<TypedProducer<T>, Error> {
        self.check_type::<T>(fp)?;
        Ok(TypedProducer::new(self.producer()?))
    }

    /// Claims the consumer side for messages of type `T`; checked as for
    /// [`typed_producer`](Self::typed_producer).
    ///
    /// # Errors
    ///
    /// As [`typed_producer`](Self::typed_producer).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::{Error, RingBuilder};
    ///
    /// let ring = RingBuilder::new().slots(4).message_type::<u64>().create_in_process()?;
    /// ring.producer()?.try_send_value(&42u64)?; // untyped handles work too
    /// let mut rx = ring.typed_consumer::<u64>()?;
    /// assert_eq!(rx.try_recv()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn typed_consumer<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
    ) -> Result<TypedConsumer<T>, Error> {
        self.typed_consumer_as(TypeFingerprint::of::<T>())
    }

    /// Like [`typed_consumer`](Self::typed_consumer), for a ring created
    /// with [`RingBuilder::message_type_named`] under `name`.
    ///
    /// # Errors
    ///
    /// As [`typed_producer`](Self::typed_producer).
    pub fn typed_consumer_named<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
        name: &str,
    ) -> Result<TypedConsumer<T>, Error> {
        self.typed_consumer_as(TypeFingerprint::named::<T>(name))
    }

    fn typed_consumer_as<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &self,
        fp: TypeFingerprint,
    ) -> Result<TypedConsumer<T>, Error> {
        self.check_type::<T>(fp)?;
        Ok(TypedConsumer::new(self.consumer()?))
    }

    /// The message type the ring was created for
    /// ([`RingBuilder::message_type`]); `None` for a ring of bytes.
    pub fn message_type(&self) -> Option<TypeFingerprint> {
        self.mapping.fingerprint.clone()
    }

    /// May a typed handle for `T` (fingerprint `fp`, whose name is the
    /// type's name in errors) be made?
    fn check_type<T>(&self, fp: TypeFingerprint) -> Result<(), Error> {
        let address = || self.mapping.label.clone();
        // An untyped ring carries bytes: a typed handle on it checks size
        // and alignment here and each message's length on receipt.
        if let Some(found) = &self.mapping.fingerprint {
            if !fp.compatible(found) {
                return Err(Error::IncompatibleType {
                    address: address(),
                    expected: Box::new(fp),
                    found: Some(Box::new(found.clone())),
                });
            }
        }
        let view = &self.mapping.view;
        let (size, max) = (core::mem::size_of::<T>(), view.message_limit() as usize);
        if size > max {
            return Err(Error::TypeTooLarge {
                address: address(),
                type_name: fp.name,
                size,
                max,
            });
        }
        let (type_align, ring_align) = (core::mem::align_of::<T>(), view.payload_align());
        if type_align > ring_align {
            return Err(Error::Misaligned {
                address: address(),
                type_name: fp.name,
                type_align,
                ring_align,
            });
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<(), Error> {
        if self.mapping.view.header().is_removed() {
            return Err(Error::Removed {
                address: self.mapping.label.clone(),
            });
        }
        if self.mapping.segment_read_only() {
            return Err(Error::Unsupported {
                address: self.mapping.label.clone(),
                what: "claiming a side of a ring opened read-only",
            });
        }
        Ok(())
    }

    /// Whether this process created the ring with this value (`create*`,
    /// or [`open_or_create`](RingBuilder::open_or_create) when it won the
    /// race), rather than opening an existing one.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The ring's address, if it has one (memfd and heap rings do not).
    pub fn address(&self) -> Option<&Address> {
        self.mapping.address.as_ref()
    }

    /// The file descriptor behind the ring (for passing a memfd to another
    /// process), if it has one.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.mapping.segment.fd()
    }

    /// Sends the ring's file descriptor over a connected UNIX socket
    /// (`SCM_RIGHTS`), so that an unrelated process can open the ring with
    /// [`Ring::receive_fd`]. This is how a memfd ring, which has no name,
    /// reaches another process.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for rings without a descriptor (System V,
    /// heap), or the error from `sendmsg`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use shmpipe::{Ring, RingBuilder};
    ///
    /// let ring = RingBuilder::new().slots(8).create_memfd("passed")?;
    /// let (a, b) = UnixStream::pair()?;
    /// ring.send_fd(&a)?;
    /// let received = Ring::receive_fd(&b)?; // in the other process
    /// ring.producer()?.try_send(b"hi")?;
    /// assert_eq!(received.consumer()?.try_recv_vec()?, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_fd(&self, socket: impl AsFd) -> Result<(), Error> {
        let Some(fd) = self.mapping.segment.fd() else {
            return Err(Error::Unsupported {
                address: self.mapping.label.clone(),
                what: "passing the descriptor of a ring that has none",
            });
        };
        segment::fdpass::send(socket.as_fd(), fd)
            .map_err(|e| Error::from_errno("sendmsg", &self.mapping.label, e))
    }

    /// Receives a ring's descriptor sent with [`Ring::send_fd`] and opens
    /// the ring (validating it like [`Ring::open`]).
    ///
    /// # Errors
    ///
    /// The error from `recvmsg`, or those of [`Ring::open`].
    pub fn receive_fd(socket: impl AsFd) -> Result<Ring, Error> {
        let fd = segment::fdpass::recv(socket.as_fd())
            .map_err(|e| Error::from_errno("recvmsg", "socket", e))?;
        Ring::from_fd(fd)
    }

    /// Every shmpipe ring this process can see on the host: POSIX shm
    /// names (in `/dev/shm` and on hugetlbfs mounts) and keyed System V
    /// segments whose first bytes are shmpipe's magic, each with its
    /// [`RingInfo`] or the error opening it (corruption). Like `ipcs`, it
    /// also shows the candidates it may not read (large enough to be a
    /// ring), as [`Error::PermissionDenied`] with their owner and mode,
    /// since whether they are rings cannot be told. Anything else is
    /// ignored, never opened for writing.
    pub fn list() -> Vec<(Address, Result<RingInfo, Error>)> {
        let mut b = RingBuilder::new();
        b.open_timeout(Duration::from_millis(50));
        let min = HEADER_LEN as u64;
        segment::candidates(min)
            .into_iter()
            .filter_map(|a| {
                if segment::peek_magic(&a, min) == Some(MAGIC) {
                    let info = b.open_read_only(&a).map(|r| r.info());
                    return Some((a, info));
                }
                let (owner, mode) = segment::denied(&a, min)?;
                let e = Error::PermissionDenied {
                    address: a.to_string(),
                    op: "read",
                    owner: Some(owner),
                    mode: Some(mode),
                };
                Some((a, Err(e)))
            })
            .collect()
    }

    /// Removes the ring's name now. Processes that have it mapped keep
    /// working; new ones can no longer open it.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for rings without a name, or the error from
    /// the system.
    pub fn unlink(&self) -> Result<(), Error> {
        match &self.mapping.address {
            Some(a) => segment::unlink(a),
            None => Err(Error::Unsupported {
                address: self.mapping.label.clone(),
                what: "removing the name of an anonymous ring",
            }),
        }
    }

    /// Removes the ring at `address`. Refuses while a producer or consumer
    /// process holding it is alive, or while the ring is corrupt, unless
    /// `force`. Never removes a segment that is not a shmpipe ring (one
    /// whose first bytes are another magic, or a symbolic link, FIFO,
    /// socket, directory or device node), forced or not.
    ///
    /// Once the name is gone the ring is marked removed in its header and
    /// both sides are woken: every blocked call on it returns `Removed`
    /// ([`RecvError::Removed`](crate::RecvError::Removed),
    /// [`SendError::Removed`](crate::SendError::Removed)) within one
    /// wake-up, and claiming a side of it [`Error::Removed`].
    ///
    /// ```
    /// use shmpipe::{RecvError, Ring, RingBuilder};
    ///
    /// # let name = format!("shm:doc-remove-{}", std::process::id());
    /// let ring = RingBuilder::new().slots(8).create(&name)?;
    /// let mut rx = ring.consumer()?;
    /// let mut tx = ring.producer()?;
    /// Ring::remove(&name, true)?; // forced: both sides are alive
    /// let mut buf = [0u8; 64];
    /// assert_eq!(rx.recv(&mut buf), Err(RecvError::Removed));
    /// # drop(tx);
    /// # Ok::<(), shmpipe::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BadMagic`], [`Error::Symlink`], [`Error::NotARegularFile`],
    /// [`Error::NotFound`], and without `force`
    /// [`Error::InUse`] and the other errors of [`Ring::open`].
    pub fn remove(address: impl AsAddress, force: bool) -> Result<(), Error> {
        let address = address.to_address()?;
        // Never unlink a planted FIFO, socket, directory, device or symlink.
        segment::check_regular(&address)?;
        match segment::peek_magic(&address, HEADER_LEN as u64) {
            Some(0) | Some(MAGIC) | None => {}
            Some(found) => {
                return Err(Error::BadMagic {
                    address: address.to_string(),
                    found,
                })
            }
        }
        // Mapped for writing, to mark it removed once the name is gone;
        // best effort (a corrupt ring or one this user may only remove
        // cannot be marked).
        let mut b = RingBuilder::new();
        b.open_timeout(Duration::from_millis(100));
        let writable = b.open(&address).ok();
        if !force {
            let ring = match &writable {
                Some(r) => r.info(),
                None => b.open_read_only(&address)?.info(),
            };
            let info = ring;
            for (side, side_info) in [
                (Side::Producer, &info.producer),
                (Side::Consumer, &info.consumer),
            ] {
                if let SideState::Attached { pid, alive: true } = side_info.state {
                    return Err(Error::InUse {
                        address: address.to_string(),
                        side,
                        pid,
                    });
                }
            }
        }
        segment::unlink(&address)?;
        if let Some(ring) = writable {
            // Both sides' blocked calls return `Removed` within one wake-up.
            let hdr = ring.mapping.view.header();
            // Relaxed: the barrier B2 in each `notify` below (a full
            // `fence(SeqCst)`: `asymmetric` false, this process runs neither
            // side) orders it before the `parked` loads (see
            // `RingHeader::is_removed`).
            hdr.meta.flags.fetch_or(FLAG_REMOVED, Relaxed);
            let mut notifier = Notifier::default();
            for line in [&hdr.producer, &hdr.consumer] {
                wake::notify_any(line, false, &mut notifier);
            }
        }
        Ok(())
    }

    /// A snapshot of the ring's geometry, indices, sides and counters.
    pub fn info(&self) -> RingInfo {
        RingInfo::read(&self.mapping)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn heap_ring_claims_are_exclusive() {
        let ring = RingBuilder::new().slots(4).create_in_process().unwrap();
        let p = ring.producer().unwrap();
        assert!(matches!(
            ring.producer(),
            Err(Error::AlreadyClaimed {
                side: Side::Producer,
                ..
            })
        ));
        drop(p);
        let _p = ring.producer().unwrap();
        let _c = ring.consumer().unwrap();
        assert!(ring.consumer().is_err());
        let me = crate::liveness::current_cached().0;
        assert!(matches!(
            ring.info().producer.state,
            SideState::Attached { pid, alive: true } if pid == me
        ));
    }
}
