//! Creating and opening rings: [`RingBuilder`], [`Ring`] and [`RingInfo`].

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use crate::address::Address;
use crate::error::{Error, Role};
use crate::handles::{Consumer, Producer, Stats};
use crate::peer::PeerWatch;
use crate::ring::layout::{
    Claim, RingHeader, HEADER_LEN, STATE_ATTACHED, STATE_CLOSED, STATE_VACANT,
};
use crate::ring::{self, Geometry, RingRef};
use crate::segment::{self, Backend, HugePages, Segment, SegmentOptions};
use crate::sync::Ordering::Relaxed;
use crate::sync::SlotTracker;
use crate::wake::{WaitConfig, WaitStrategy};

/// Default number of slots.
pub const DEFAULT_SLOTS: u64 = 1024;
/// Default slot size in bytes (248-byte messages).
pub const DEFAULT_SLOT_SIZE: u64 = 256;

/// What one process knows about a mapped ring; shared by its [`Ring`] and
/// handles through an `Arc`, so the mapping lives as long as any of them.
pub(crate) struct Shared {
    /// Validated pointers and geometry (process-local copies).
    pub(crate) ring: RingRef,
    /// Slot-access tracking for loom (zero-sized otherwise).
    pub(crate) tracker: SlotTracker,
    /// The address as shown in errors (`shm:x`, `memfd:x`, `heap`).
    pub(crate) label: String,
    /// In-process ring: both sides live in this process, no liveness checks.
    pub(crate) process_local: bool,
    pub(crate) geometry: Geometry,
    pub(crate) page_size: u64,
    pub(crate) address: Option<Address>,
    unlink_on_drop: bool,
    segment: Segment,
    #[cfg(loom)]
    _header: Box<RingHeader>,
}

// SAFETY: `Shared` owns the mapping its `RingRef` points into and never
// hands out mutable access to it; every shared field is atomic, and the slots
// are only touched by the single producer and single consumer under the
// head/tail protocol, whichever threads those handles move to.
unsafe impl Send for Shared {}
// SAFETY: as above; `&Shared` only exposes atomics and the raw pointers.
unsafe impl Sync for Shared {}

impl Shared {
    /// Creates the header in a fresh, zero-filled segment.
    fn init(
        segment: Segment,
        geometry: Geometry,
        label: String,
        address: Option<Address>,
    ) -> Result<Shared, Error> {
        let page_size = segment.page_size();
        let process_local = segment.backend() == Backend::Heap;
        #[cfg(not(loom))]
        {
            let base = NonNull::new(segment.base()).expect("mappings are never null");
            let hdr = base.cast::<RingHeader>();
            // SAFETY: the segment is at least `total_len` bytes (the caller
            // sized it so), page-aligned, zero-filled and ours alone until
            // `init_header` publishes it; all-zero bytes are a valid
            // RingHeader (atomics only).
            let ring = unsafe {
                let slots = base.add(HEADER_LEN);
                RingRef::new(hdr, slots, geometry)
            };
            ring::init_header(
                ring.header(),
                geometry,
                page_size,
                crate::peer::current_cached(),
            );
            Ok(Shared {
                ring,
                tracker: SlotTracker::new(geometry.slot_count as usize),
                label,
                process_local,
                geometry,
                page_size: page_size as u64,
                address,
                unlink_on_drop: false,
                segment,
            })
        }
        #[cfg(loom)]
        {
            // Loom atomics cannot live in raw memory: the header goes on
            // the heap, the slots stay in the segment.
            let _ = (process_local, &address);
            let header = Box::new(RingHeader::default());
            let hdr = NonNull::from(&*header);
            let slots = NonNull::new(segment.base()).expect("heap blocks are never null");
            // SAFETY: the boxed header and the segment are owned by the
            // returned Shared and never moved out of it.
            let ring = unsafe { RingRef::new(hdr, slots, geometry) };
            ring::init_header(ring.header(), geometry, page_size, (0, 0));
            Ok(Shared {
                ring,
                tracker: SlotTracker::new(geometry.slot_count as usize),
                label,
                process_local: true,
                geometry,
                page_size: page_size as u64,
                address: None,
                unlink_on_drop: false,
                segment,
                _header: header,
            })
        }
    }

    /// Validates the header of an existing segment.
    #[cfg(not(loom))]
    fn attach(
        segment: Segment,
        label: String,
        address: Option<Address>,
        open_timeout: Duration,
    ) -> Result<Shared, Error> {
        let base = NonNull::new(segment.base()).expect("mappings are never null");
        if segment.len() < HEADER_LEN {
            return Err(Error::NotInitialized {
                address: label,
                waited: open_timeout,
            });
        }
        let hdr = base.cast::<RingHeader>();
        // SAFETY: the mapping is at least HEADER_LEN bytes and page-aligned;
        // every RingHeader field is an atomic, valid for any bit pattern,
        // and lives as long as `segment`, which the returned Shared owns.
        let hdr_ref: &RingHeader = unsafe { hdr.as_ref() };
        ring::wait_ready(hdr_ref, &label, open_timeout)?;
        let (geometry, page_size) = ring::read_geometry(hdr_ref, segment.len(), &label)?;
        // SAFETY: `read_geometry` checked that header and slots fit inside
        // the mapping; the segment is owned by the returned Shared.
        let ring = unsafe { RingRef::new(hdr, base.add(HEADER_LEN), geometry) };
        let process_local = segment.backend() == Backend::Heap;
        Ok(Shared {
            ring,
            tracker: SlotTracker::new(geometry.slot_count as usize),
            label,
            process_local,
            geometry,
            page_size,
            address,
            unlink_on_drop: false,
            segment,
        })
    }

    #[cfg(loom)]
    fn attach(
        _segment: Segment,
        label: String,
        _address: Option<Address>,
        _open_timeout: Duration,
    ) -> Result<Shared, Error> {
        Err(Error::Unsupported {
            address: label,
            what: "opening a shared segment under loom",
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            if let Some(addr) = &self.address {
                // Remove the name only if it still names our segment (it may
                // have been removed and re-created by someone else).
                if segment::still_names(addr, &self.segment) {
                    let _ = segment::unlink(addr);
                }
            }
        }
    }
}

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
///     .max_message(1000) // slot size 1024: 1016-byte payload
///     .unlink_on_drop(true)
///     .create(&name)?;
/// assert_eq!(ring.info().slot_size, 1024);
/// assert_eq!(ring.info().max_message, 1016);
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
            seg: SegmentOptions::default(),
            wait: WaitConfig::default(),
            unlink_on_drop: false,
            reclaim: false,
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
    /// an existing name is always [`Error::AlreadyExists`]).
    pub fn reclaim_stale(&mut self, yes: bool) -> &mut Self {
        self.reclaim = yes;
        self
    }

    /// Number of slots: a power of two, at most 2^32.
    pub fn slots(&mut self, slots: u64) -> &mut Self {
        self.slots = slots;
        self
    }

    /// Bytes per slot, including its 8-byte length header: a multiple of
    /// 64, at most 1 GiB. The largest message is `slot_size - 8`.
    pub fn slot_size(&mut self, bytes: u64) -> &mut Self {
        self.slot_size = bytes;
        self
    }

    /// Sets the slot size to the smallest that carries messages of
    /// `bytes` bytes.
    pub fn max_message(&mut self, bytes: u64) -> &mut Self {
        self.slot_size = Geometry::slot_size_for(bytes);
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

    fn geometry(&self) -> Result<Geometry, Error> {
        if self.seg.mode > 0o777 {
            return Err(Error::config(
                "mode",
                u64::from(self.seg.mode),
                "must be permission bits, 0 to 0777 (octal)",
            ));
        }
        Geometry::new(self.slots, self.slot_size)
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
        let total = geometry.total_len().expect("checked by Geometry::new");
        let segment = match Segment::create(&address, total, &self.seg) {
            Err(Error::AlreadyExists { .. }) if self.reclaim => {
                match staleness(&address)? {
                    Staleness::Stale => {}
                    Staleness::Creator => {
                        return Err(Error::AlreadyExists {
                            address: address.to_string(),
                        })
                    }
                    Staleness::Held(role, pid) => {
                        return Err(Error::InUse {
                            address: address.to_string(),
                            role,
                            pid,
                        })
                    }
                }
                match segment::unlink(&address) {
                    // Someone else reclaimed it first: fine, O_EXCL decides.
                    Ok(()) | Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
                Segment::create(&address, total, &self.seg)?
            }
            r => r?,
        };
        let label = address.to_string();
        let mut shared = match Shared::init(segment, geometry, label, Some(address.clone())) {
            Ok(s) => s,
            Err(e) => {
                let _ = segment::unlink(&address);
                return Err(e);
            }
        };
        shared.unlink_on_drop = self.unlink_on_drop;
        Ok(Ring {
            shared: Arc::new(shared),
            wait: self.wait,
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
        let shared = Shared::init(segment, geometry, format!("memfd:{name}"), None)?;
        Ok(Ring {
            shared: Arc::new(shared),
            wait: self.wait,
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
        let segment = Segment::create_heap(total - HEADER_LEN as u64)?;
        let shared = Shared::init(segment, geometry, "heap".to_owned(), None)?;
        Ok(Ring {
            shared: Arc::new(shared),
            wait: self.wait,
        })
    }

    /// Opens an existing ring with this builder's open timeout and wait
    /// settings (its geometry comes from the ring).
    ///
    /// # Errors
    ///
    /// As [`Ring::open`].
    pub fn open(&self, address: impl AsAddress) -> Result<Ring, Error> {
        let address = address.to_address()?;
        let segment = Segment::open(&address, &self.seg)?;
        let shared = Shared::attach(
            segment,
            address.to_string(),
            Some(address),
            self.seg.open_timeout,
        )?;
        Ok(Ring {
            shared: Arc::new(shared),
            wait: self.wait,
        })
    }

    /// Opens a ring from a file descriptor (a memfd from
    /// [`Ring::fd`] received over a socket or inherited).
    ///
    /// # Errors
    ///
    /// As [`Ring::open`].
    pub fn open_fd(&self, fd: OwnedFd) -> Result<Ring, Error> {
        let segment = Segment::from_fd(fd, &self.seg)?;
        let label = match segment.backend() {
            Backend::Memfd => "memfd".to_owned(),
            _ => "fd".to_owned(),
        };
        let shared = Shared::attach(segment, label, None, self.seg.open_timeout)?;
        Ok(Ring {
            shared: Arc::new(shared),
            wait: self.wait,
        })
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
        let shared = Shared::attach(
            segment,
            address.to_string(),
            Some(address),
            seg.open_timeout,
        )?;
        Ok(Ring {
            shared: Arc::new(shared),
            wait: self.wait,
        })
    }
}

/// Anything that names a ring: an [`Address`] or a string to parse.
pub trait AsAddress {
    /// The address.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] for a malformed string.
    fn to_address(&self) -> Result<Address, Error>;
}

impl AsAddress for Address {
    fn to_address(&self) -> Result<Address, Error> {
        Ok(self.clone())
    }
}

impl AsAddress for &Address {
    fn to_address(&self) -> Result<Address, Error> {
        Ok((*self).clone())
    }
}

impl<S: AsRef<str> + ?Sized> AsAddress for S {
    fn to_address(&self) -> Result<Address, Error> {
        Address::parse(self.as_ref())
    }
}

/// A mapped ring. Take its [`producer`](Ring::producer) or
/// [`consumer`](Ring::consumer) side (one of each per ring, across all
/// processes), or read its [`info`](Ring::info).
///
/// Dropping the `Ring` keeps handles taken from it working; the mapping
/// goes when the last of them is dropped.
pub struct Ring {
    shared: Arc<Shared>,
    wait: WaitConfig,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("address", &self.shared.label)
            .field("slots", &self.shared.geometry.slot_count)
            .field("slot_size", &self.shared.geometry.slot_size)
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
        Producer::new(Arc::clone(&self.shared), self.wait)
    }

    /// Claims the consumer side.
    ///
    /// # Errors
    ///
    /// As [`producer`](Self::producer).
    pub fn consumer(&self) -> Result<Consumer, Error> {
        self.check_writable()?;
        Consumer::new(Arc::clone(&self.shared), self.wait)
    }

    fn check_writable(&self) -> Result<(), Error> {
        if self.shared.segment_read_only() {
            return Err(Error::Unsupported {
                address: self.shared.label.clone(),
                what: "claiming a side of a ring opened read-only",
            });
        }
        Ok(())
    }

    /// The ring's address, if it has one (memfd and heap rings do not).
    pub fn address(&self) -> Option<&Address> {
        self.shared.address.as_ref()
    }

    /// The file descriptor behind the ring (for passing a memfd to another
    /// process), if it has one.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.shared.segment.fd()
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
        let Some(fd) = self.shared.segment.fd() else {
            return Err(Error::Unsupported {
                address: self.shared.label.clone(),
                what: "passing the descriptor of a ring that has none",
            });
        };
        segment::fdpass::send(socket.as_fd(), fd)
            .map_err(|e| Error::from_errno("sendmsg", &self.shared.label, e))
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
    /// [`RingInfo`] or the error opening it (corruption, permissions).
    /// Anything else is ignored, never opened for writing.
    pub fn list() -> Vec<(Address, Result<RingInfo, Error>)> {
        let mut b = RingBuilder::new();
        b.open_timeout(Duration::from_millis(50));
        segment::candidates()
            .into_iter()
            .filter(|a| segment::peek_magic(a) == Some(crate::ring::layout::MAGIC))
            .map(|a| {
                let info = b.open_read_only(&a).map(|r| r.info());
                (a, info)
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
        match &self.shared.address {
            Some(a) => segment::unlink(a),
            None => Err(Error::Unsupported {
                address: self.shared.label.clone(),
                what: "removing the name of an anonymous ring",
            }),
        }
    }

    /// Removes the ring at `address`. Refuses while a producer or consumer
    /// process holding it is alive, or while the ring is corrupt, unless
    /// `force`. Never removes a segment that is not a shmpipe ring (one
    /// whose first bytes are another magic), forced or not.
    ///
    /// # Errors
    ///
    /// [`Error::BadMagic`], [`Error::NotFound`], and without `force`
    /// [`Error::InUse`] and the other errors of [`Ring::open`].
    pub fn remove(address: impl AsAddress, force: bool) -> Result<(), Error> {
        let address = address.to_address()?;
        match segment::peek_magic(&address) {
            Some(0) | Some(crate::ring::layout::MAGIC) | None => {}
            Some(found) => {
                return Err(Error::BadMagic {
                    address: address.to_string(),
                    found,
                })
            }
        }
        if !force {
            let mut b = RingBuilder::new();
            b.open_timeout(Duration::from_millis(100));
            let ring = b.open_read_only(&address)?;
            let info = ring.info();
            for (role, side) in [
                (Role::Producer, &info.producer),
                (Role::Consumer, &info.consumer),
            ] {
                if let SideState::Attached { pid, alive: true } = side.state {
                    return Err(Error::InUse {
                        address: address.to_string(),
                        role,
                        pid,
                    });
                }
            }
        }
        segment::unlink(&address)
    }

    /// A snapshot of the ring's geometry, indices, sides and counters.
    pub fn info(&self) -> RingInfo {
        let s = &*self.shared;
        let hdr = s.ring.header();
        // Relaxed throughout: a snapshot for people and tools; no data is
        // read on the strength of these values.
        let head = hdr.head.load(Relaxed);
        let tail = hdr.tail.load(Relaxed);
        let side = |ctl: &crate::ring::layout::Control, stats| {
            let claim = Claim(ctl.claim.load(Relaxed));
            let state = match claim.state() {
                STATE_VACANT => SideState::Vacant,
                STATE_ATTACHED => SideState::Attached {
                    pid: claim.pid(),
                    alive: s.process_local || PeerWatch::default().is_alive(claim),
                },
                STATE_CLOSED => SideState::Closed { pid: claim.pid() },
                other => SideState::Invalid { state: other },
            };
            SideInfo {
                state,
                parked: ctl.parked.load(Relaxed) != 0,
                stats: Stats::load(stats),
            }
        };
        let creator_pid = hdr.meta.creator_pid.load(Relaxed);
        let creator_start = hdr.meta.creator_start.load(Relaxed);
        let creator_alive = creator_pid != 0
            && (s.process_local
                || PeerWatch::default().is_alive(Claim::new(
                    STATE_ATTACHED,
                    creator_pid,
                    creator_start,
                )));
        RingInfo {
            address: s.label.clone(),
            backend: s.segment.backend(),
            path: s.segment.path().map(PathBuf::from),
            sysv_id: s.segment.sysv_id(),
            attach_count: s.segment.attach_count(),
            mode: s.segment.mode(),
            page_size: s.page_size,
            huge_page_fallback: s.segment.huge_fallback().map(str::to_owned),
            mapped_len: s.segment.len() as u64,
            slots: s.geometry.slot_count,
            slot_size: s.geometry.slot_size as u64,
            max_message: s.geometry.payload_capacity() as u64,
            total_len: s.geometry.total_len().unwrap_or(0),
            creator_pid,
            creator_alive,
            head,
            tail,
            producer: side(&hdr.producer, &hdr.producer_stats),
            consumer: side(&hdr.consumer, &hdr.consumer_stats),
        }
    }
}

impl Shared {
    fn segment_read_only(&self) -> bool {
        self.segment.read_only()
    }
}

/// Who holds one side of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SideState {
    /// Nobody has held it yet.
    Vacant,
    /// A process holds it. `alive` is false if it died without releasing
    /// it (the side can then be taken over).
    Attached {
        /// The holder's process id.
        pid: u32,
        /// Whether that process is still running (zombies count as dead).
        alive: bool,
    },
    /// The last holder dropped its handle.
    Closed {
        /// The last holder's process id.
        pid: u32,
    },
    /// The claim word holds a state no correct process writes.
    Invalid {
        /// The state found.
        state: u64,
    },
}

/// One side's state and counters, in [`RingInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SideInfo {
    /// Who holds it.
    pub state: SideState,
    /// Whether it is asleep (or about to sleep) on its futex.
    pub parked: bool,
    /// Its counters.
    pub stats: Stats,
}

/// A snapshot of a ring, from [`Ring::info`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingInfo {
    /// The ring's address (`shm:x`, `file:/p`, `memfd:x`, `heap`).
    pub address: String,
    /// What backs it.
    pub backend: Backend,
    /// Where it lives in the file system (`/dev/shm/NAME`, a hugetlbfs
    /// path, a file), if anywhere.
    pub path: Option<PathBuf>,
    /// The System V segment id, for System V rings.
    pub sysv_id: Option<i32>,
    /// Processes attached to a System V segment (`shm_nattch`).
    pub attach_count: Option<u64>,
    /// Permission bits of the segment (`0o600`, ...), when known.
    pub mode: Option<u32>,
    /// The page size of the mapping in bytes: the huge page size for
    /// hugetlbfs files, hugetlb memfds and `SHM_HUGETLB` segments, the base
    /// page size otherwise (`KernelPageSize` in `/proc/self/smaps` agrees;
    /// the tests check it there).
    pub page_size: u64,
    /// Why huge pages were preferred but not used ([`HugePages::Prefer`]
    /// falling back), as seen by the process that created the ring.
    pub huge_page_fallback: Option<String>,
    /// Bytes mapped (the segment, rounded up to whole pages).
    pub mapped_len: u64,
    /// Number of slots.
    pub slots: u64,
    /// Bytes per slot, including the 8-byte length header.
    pub slot_size: u64,
    /// Largest message in bytes.
    pub max_message: u64,
    /// Header plus slots, in bytes.
    pub total_len: u64,
    /// The process that created the ring.
    pub creator_pid: u32,
    /// Whether that process is still alive.
    pub creator_alive: bool,
    /// The consumer's position (messages released).
    pub head: u64,
    /// The producer's position (messages committed).
    pub tail: u64,
    /// The producer side.
    pub producer: SideInfo,
    /// The consumer side.
    pub consumer: SideInfo,
}

impl RingInfo {
    /// Messages waiting (`tail - head`), or `None` if the indices are
    /// inconsistent.
    pub fn len(&self) -> Option<u64> {
        self.tail
            .checked_sub(self.head)
            .filter(|&n| n <= self.slots)
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// Who, if anyone, keeps an existing ring alive.
enum Staleness {
    /// Its creator and every holder are dead (or it never got a header).
    Stale,
    /// Its creator lives.
    Creator,
    /// A side is held by a live process.
    Held(Role, u32),
}

/// Decides whether the ring at `address` may be reclaimed. Never says
/// `Stale` for a segment that is not a shmpipe ring (that is `BadMagic`).
fn staleness(address: &Address) -> Result<Staleness, Error> {
    let opts = SegmentOptions {
        read_only: true,
        open_timeout: Duration::from_millis(100),
        ..SegmentOptions::default()
    };
    let segment = match Segment::open(address, &opts) {
        Ok(s) => s,
        // Never sized past the header: its creator died before writing one.
        Err(Error::NotInitialized { .. }) => return Ok(Staleness::Stale),
        Err(e) => return Err(e),
    };
    staleness_of(&segment, &address.to_string())
}

#[cfg(not(loom))]
fn staleness_of(segment: &Segment, label: &str) -> Result<Staleness, Error> {
    let base = NonNull::new(segment.base()).expect("mappings are never null");
    // SAFETY: `Segment::open` guarantees at least HEADER_LEN bytes; every
    // header field is an atomic, valid for any bit pattern, and the mapping
    // outlives this function.
    let hdr: &RingHeader = unsafe { base.cast::<RingHeader>().as_ref() };
    // A creator that is still initialising gets a moment to finish; either
    // way only the identities below decide.
    match ring::wait_ready(hdr, label, Duration::from_millis(100)) {
        Ok(()) | Err(Error::NotInitialized { .. }) => {}
        Err(e) => return Err(e),
    }
    let creator = hdr.meta.creator_pid.load(Relaxed);
    let start = hdr.meta.creator_start.load(Relaxed);
    if creator != 0 && PeerWatch::default().is_alive(Claim::new(STATE_ATTACHED, creator, start)) {
        return Ok(Staleness::Creator);
    }
    for (role, ctl) in [
        (Role::Producer, &hdr.producer),
        (Role::Consumer, &hdr.consumer),
    ] {
        // Relaxed: only the identity is needed; liveness comes from the OS.
        let c = Claim(ctl.claim.load(Relaxed));
        if c.state() == STATE_ATTACHED && PeerWatch::default().is_alive(c) {
            return Ok(Staleness::Held(role, c.pid()));
        }
    }
    Ok(Staleness::Stale)
}

#[cfg(loom)]
fn staleness_of(_segment: &Segment, _label: &str) -> Result<Staleness, Error> {
    Ok(Staleness::Stale)
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
                role: Role::Producer,
                ..
            })
        ));
        drop(p);
        let _p = ring.producer().unwrap();
        let _c = ring.consumer().unwrap();
        assert!(ring.consumer().is_err());
        let me = crate::peer::current_cached().0;
        assert!(matches!(
            ring.info().producer.state,
            SideState::Attached { pid, alive: true } if pid == me
        ));
    }
}
