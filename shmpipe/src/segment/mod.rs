//! Shared memory segments: where a ring's bytes live.
//!
//! Each backend turns an address into a mapped region that another process
//! can map too. Nothing above this module makes a system call on a segment:
//! the ring sees a base pointer, a length and a page size.
//!
//! | backend | module | named by | huge pages through |
//! |---|---|---|---|
//! | POSIX shm | `posix_shm` | `shm:NAME` | a hugetlbfs mount (tmpfs has none), same name |
//! | file | `file` | `file:PATH` | the path being on hugetlbfs |
//! | memfd | `memfd` | its fd | `MFD_HUGETLB` |
//! | System V | `sysv` | `sysv:KEY`, `sysv:PATH:ID` | `SHM_HUGETLB` |
//! | heap | `heap` | nothing | (never) |
//!
//! A ring whose slot area is whole pages is mapped with that area twice,
//! back to back ([`Segment::map_twice`], `twice.rs`), for every backend
//! but the heap.
//!
//! Huge-page mappings are always whole huge pages long (memmap2 leaks a
//! mapping whose length is not), never `MAP_NORESERVE` (a dry pool would
//! then raise `SIGBUS` on first touch instead of failing the map with
//! `ENOMEM`), and `ENOMEM` becomes [`Error::HugePagesUnavailable`] with the
//! remedy.

mod exclusive;
pub(crate) mod fdpass;
mod file;
mod heap;
mod huge;
pub(crate) mod hugetlbfs;
mod memfd;
mod posix_shm;
pub(crate) mod sysv;
mod twice;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{self as rfs, FileType};
use rustix::io::Errno;

use crate::address::{Address, SysvKey};
use crate::error::{Corruption, Error, Expected};
use huge::{huge_error, plan};

pub(crate) use exclusive::{lock_for_reclaim, TryReclaim};
pub(crate) use heap::HeapBlock;

/// `HUGETLBFS_MAGIC` from `<linux/magic.h>` (rustix does not define it).
pub(crate) const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// Which kind of shared memory backs a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// POSIX shared memory (`shm_open`), under `/dev/shm`, or on a
    /// hugetlbfs mount when it has huge pages.
    PosixShm,
    /// A regular file, possibly on a hugetlbfs mount.
    File,
    /// An anonymous memfd (`memfd_create`).
    Memfd,
    /// System V shared memory (`shmget`).
    SysV,
    /// Process-local heap memory (tests, Miri, in-process use).
    Heap,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::PosixShm => "posix-shm",
            Backend::File => "file",
            Backend::Memfd => "memfd",
            Backend::SysV => "sysv",
            Backend::Heap => "heap",
        })
    }
}

/// Whether a ring's memory comes from huge pages (2 MiB or 1 GiB) instead
/// of base pages, for far fewer TLB misses on large rings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HugePages {
    /// Base pages only (a `file:` path on hugetlbfs still gets huge pages:
    /// the path decides).
    #[default]
    Never,
    /// Huge pages if the system can provide them, base pages otherwise;
    /// [`RingInfo::huge_page_fallback`](crate::RingInfo::huge_page_fallback)
    /// says why it fell back.
    Prefer,
    /// Huge pages or an error ([`Error::HugePagesUnavailable`]) saying what
    /// to set up.
    Require,
}

/// How a segment is created or opened. Filled in by
/// [`RingBuilder`](crate::RingBuilder).
#[derive(Clone, Debug)]
pub(crate) struct SegmentOptions {
    /// Permission bits for a new segment (applied exactly, not masked by the
    /// umask).
    pub(crate) mode: u32,
    /// How long an opener waits for a creator that has created the name but
    /// not yet sized or initialised it.
    pub(crate) open_timeout: Duration,
    /// Pre-fault every page at map time.
    pub(crate) populate: bool,
    /// Lock the pages in memory (`mlock`).
    pub(crate) lock: bool,
    /// Map read-only (inspection).
    pub(crate) read_only: bool,
    pub(crate) huge: HugePages,
    /// Requested huge page size; `None`: the system default.
    pub(crate) huge_size: Option<u64>,
    /// The smallest segment that can hold a ring (its header): a shorter
    /// one is still being sized by its creator, or is not a ring. Set by
    /// the layer that knows the layout.
    pub(crate) min_len: u64,
    /// The largest segment a ring may have; a longer one is corruption.
    pub(crate) max_len: u64,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            mode: 0o600,
            open_timeout: Duration::from_secs(1),
            populate: false,
            lock: false,
            read_only: false,
            huge: HugePages::Never,
            huge_size: None,
            min_len: 0,
            max_len: u64::MAX,
        }
    }
}

enum Memory {
    Mapped(memmap2::MmapRaw),
    SysV(sysv::Attach),
    Heap(HeapBlock),
    /// The slot area mapped a second time right after the first
    /// ([`Segment::map_twice`]).
    Twice(twice::Twice),
}

/// A mapped segment. Unmapped on drop; the name (if any) outlives it until
/// [`unlink`] removes it.
pub(crate) struct Segment {
    memory: Memory,
    page_size: usize,
    backend: Backend,
    fd: Option<OwnedFd>,
    read_only: bool,
    path: Option<PathBuf>,
    sysv_id: Option<i32>,
    huge_fallback: Option<String>,
    /// Pre-fault pages when (re)mapping (`SegmentOptions::populate`).
    populate: bool,
    /// The pages are locked (`SegmentOptions::lock`): lock them again
    /// after remapping.
    lock: bool,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("backend", &self.backend)
            .field("len", &self.len())
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

fn io_errno(e: &std::io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

impl Segment {
    /// Creates a new segment at `address` of at least `min_len` bytes
    /// (rounded up to whole pages). Fails with [`Error::AlreadyExists`] if
    /// the name is taken; never touches an existing segment.
    pub(crate) fn create(
        address: &Address,
        min_len: u64,
        opts: &SegmentOptions,
    ) -> Result<Segment, Error> {
        let label = address.to_string();
        let (pages, mut fallback) = plan(opts, &label)?;
        let mut seg = match address {
            Address::Shm(name) => {
                Self::create_shm(name, min_len, opts, pages, &label, &mut fallback)
            }
            Address::File(path) => {
                Self::create_file(path, min_len, opts, pages, &label, &mut fallback)
            }
            Address::SysV(key) => {
                Self::create_sysv(key, min_len, opts, pages, &label, &mut fallback)
            }
        }?;
        seg.huge_fallback = fallback;
        // From here until this segment is dropped no reclaimer removes the
        // name (see `exclusive`).
        seg.hold_creator_lock(address, opts.open_timeout)?;
        Ok(seg)
    }

    /// Process-local memory of at least `min_len` bytes, zero-filled.
    pub(crate) fn create_heap(min_len: u64) -> Result<Segment, Error> {
        let len = usize::try_from(min_len)
            .map_err(|_| Error::config("ring size", min_len, "does not fit in memory"))?;
        let block = HeapBlock::zeroed(len)
            .ok_or_else(|| Error::config("ring size", min_len, "heap allocation failed"))?;
        Ok(Segment {
            memory: Memory::Heap(block),
            page_size: heap::ALIGN,
            backend: Backend::Heap,
            fd: None,
            read_only: false,
            path: None,
            sysv_id: None,
            huge_fallback: None,
            populate: false,
            lock: false,
        })
    }

    /// Sizes a new fd-backed segment and maps it. `huge` is the huge page
    /// size when the fd is hugetlb memory.
    fn finish_create(
        fd: OwnedFd,
        min_len: u64,
        opts: &SegmentOptions,
        backend: Backend,
        label: &str,
        huge: Option<u64>,
    ) -> Result<Segment, Error> {
        let page_size = match huge {
            Some(size) => size as usize,
            None => fd_page_size(fd.as_fd(), label)?,
        };
        let len = round_up(min_len, page_size as u64)
            .ok_or_else(|| Error::config("ring size", min_len, "overflows"))?;
        rfs::ftruncate(&fd, len).map_err(|e| match (e, huge) {
            (Errno::NOMEM | Errno::NOSPC, Some(size)) => {
                huge_error(label, hugetlbfs::pool_remedy(size, len / size))
            }
            _ => Error::from_errno("ftruncate", label, e),
        })?;
        Self::map(fd, len, page_size, opts, backend, label)
    }

    /// Opens the existing segment at `address` and maps all of it.
    pub(crate) fn open(address: &Address, opts: &SegmentOptions) -> Result<Segment, Error> {
        let label = address.to_string();
        match address {
            Address::Shm(name) => Self::open_shm(name, opts, &label),
            Address::File(path) => Self::open_file(path, opts, &label),
            Address::SysV(key) => Self::open_sysv(key, opts, &label),
        }
    }

    fn open_fd(
        fd: OwnedFd,
        opts: &SegmentOptions,
        backend: Backend,
        label: &str,
    ) -> Result<Segment, Error> {
        let deadline = Instant::now() + opts.open_timeout;
        let len = loop {
            let st = rfs::fstat(&fd).map_err(|e| Error::from_errno("fstat", label, e))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(Error::NotARegularFile {
                    address: label.to_owned(),
                });
            }
            let size = u64::try_from(st.st_size).unwrap_or(0);
            if size >= opts.min_len.max(1) {
                break size;
            }
            // The creator made the name but has not sized it yet.
            if Instant::now() >= deadline {
                return Err(Error::NotInitialized {
                    address: label.to_owned(),
                    waited: opts.open_timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if len > opts.max_len.saturating_add(1 << 30) {
            return Err(bad_size(label, len, opts));
        }
        let page_size = fd_page_size(fd.as_fd(), label)?;
        Self::map(fd, len, page_size, opts, backend, label)
    }

    fn map(
        fd: OwnedFd,
        len: u64,
        page_size: usize,
        opts: &SegmentOptions,
        backend: Backend,
        label: &str,
    ) -> Result<Segment, Error> {
        // Huge-page memory must be mapped in whole huge pages: memmap2's
        // Drop silently leaks a mapping whose length is not a multiple.
        let len = round_up(len, page_size as u64)
            .ok_or_else(|| Error::config("ring size", len, "overflows"))?;
        let len_usize = usize::try_from(len)
            .map_err(|_| Error::config("ring size", len, "does not fit in memory"))?;
        let mut mo = memmap2::MmapOptions::new();
        mo.len(len_usize);
        if opts.populate {
            mo.populate();
        }
        let map = if opts.read_only {
            mo.map_raw_read_only(&fd)
        } else {
            mo.map_raw(&fd)
        }
        .map_err(|e| {
            if io_errno(&e) == Some(Errno::NOMEM) && page_size > rustix::param::page_size() {
                let size = page_size as u64;
                huge_error(label, hugetlbfs::pool_remedy(size, len / size))
            } else {
                Error::io("mmap", label, e)
            }
        })?;
        let mut seg = Segment {
            memory: Memory::Mapped(map),
            page_size,
            backend,
            fd: Some(fd),
            read_only: opts.read_only,
            path: None,
            sysv_id: None,
            huge_fallback: None,
            populate: false,
            lock: false,
        };
        seg.prepare(opts, label)?;
        Ok(seg)
    }

    /// Applies `lock` (and `populate` where the map call could not).
    fn prepare(&mut self, opts: &SegmentOptions, label: &str) -> Result<(), Error> {
        self.populate = opts.populate;
        self.lock = opts.lock;
        let (ptr, len) = (self.base().cast::<core::ffi::c_void>(), self.len());
        if opts.populate && matches!(self.memory, Memory::SysV(_)) && !opts.read_only {
            // SAFETY: the range is this segment's own attachment;
            // MADV_POPULATE_WRITE faults pages in without changing them.
            let r =
                unsafe { rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxPopulateWrite) };
            if let Err(e) = r {
                if e == Errno::NOMEM && self.page_size > rustix::param::page_size() {
                    let size = self.page_size as u64;
                    return Err(huge_error(
                        label,
                        hugetlbfs::pool_remedy(size, len as u64 / size),
                    ));
                }
                // EINVAL: kernel older than 5.14; the pages fault in on use.
            }
        }
        if opts.lock {
            // SAFETY: the range is this segment's own mapping, which lives
            // as long as `self`; locking does not change its contents.
            unsafe { rustix::mm::mlock(ptr, len) }.map_err(|e| Error::Io {
                op: "mlock (raise the locked-memory limit with `ulimit -l`, or grant CAP_IPC_LOCK)",
                target: label.to_owned(),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    /// First byte of the mapping (page-aligned).
    pub(crate) fn base(&self) -> *mut u8 {
        match &self.memory {
            Memory::Mapped(m) => m.as_mut_ptr(),
            Memory::SysV(a) => a.as_ptr(),
            Memory::Heap(h) => h.as_ptr(),
            Memory::Twice(t) => t.as_ptr(),
        }
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        match &self.memory {
            Memory::Mapped(m) => m.len(),
            Memory::SysV(a) => a.len(),
            Memory::Heap(h) => h.len(),
            Memory::Twice(t) => t.len(),
        }
    }

    /// Maps the `area` bytes at `offset` (the slot area) a second time,
    /// right after the first mapping of them, so that `base() + offset`
    /// starts `2 * area` bytes of which the second half mirrors the first.
    /// `offset` and `area` must be multiples of the page size, and
    /// `offset + area` at most the segment as mapped now (for System V,
    /// exactly all of it); `len()` becomes `offset + area`. The old mapping is
    /// replaced (pointers into it become invalid); on error it stays.
    ///
    /// Errors: `NOTSUP` for heap memory, `INVAL` for a shape that cannot be
    /// mapped twice, and whatever `mmap`/`shmat` report.
    pub(crate) fn map_twice(&mut self, offset: usize, area: usize) -> Result<(), Errno> {
        let plan = twice::Plan {
            offset,
            area,
            align: self.page_size,
            read_only: self.read_only,
            populate: self.populate,
        };
        let primary = offset.checked_add(area).ok_or(Errno::INVAL)?;
        let mapped = match &self.memory {
            Memory::Mapped(m) if m.len() >= primary => {
                let fd = self.fd.as_ref().ok_or(Errno::NOTSUP)?;
                twice::Twice::map_fd(fd.as_fd(), &plan)?
            }
            // shmat maps the whole segment: it must be exactly header and
            // area, or the second attach would reach past the reservation.
            Memory::SysV(a)
                if round_up(a.len() as u64, self.page_size as u64) == Some(primary as u64) =>
            {
                twice::Twice::attach_sysv(self.sysv_id.ok_or(Errno::NOTSUP)?, &plan)?
            }
            Memory::Mapped(_) | Memory::SysV(_) => return Err(Errno::INVAL),
            Memory::Heap(_) | Memory::Twice(_) => return Err(Errno::NOTSUP),
        };
        self.memory = Memory::Twice(mapped);
        if self.lock {
            // SAFETY: the first mapping of this segment's own pages (the
            // second maps the same pages, so they are locked through this
            // one; locking both would count them twice against
            // RLIMIT_MEMLOCK). Locking does not change their contents.
            unsafe { rustix::mm::mlock(self.base().cast(), self.len()) }?;
        }
        Ok(())
    }

    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Whether the mapping is read-only.
    pub(crate) fn read_only(&self) -> bool {
        self.read_only
    }

    /// Where the segment lives in the file system, if anywhere.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The System V id, for System V segments.
    pub(crate) fn sysv_id(&self) -> Option<i32> {
        self.sysv_id
    }

    /// Why huge pages were asked for (`Prefer`) but not used.
    pub(crate) fn huge_fallback(&self) -> Option<&str> {
        self.huge_fallback.as_deref()
    }

    /// Permission bits of the segment.
    pub(crate) fn mode(&self) -> Option<u32> {
        if let Some(id) = self.sysv_id {
            return sysv::stat(id).ok().map(|s| s.mode);
        }
        let st = rfs::fstat(self.fd()?).ok()?;
        Some(st.st_mode & 0o777)
    }

    /// The owner's user id.
    pub(crate) fn owner(&self) -> Option<u32> {
        if let Some(id) = self.sysv_id {
            return sysv::stat(id).ok().map(|s| s.uid);
        }
        Some(rfs::fstat(self.fd()?).ok()?.st_uid)
    }

    /// Whether only this process's user can write the segment: it is in
    /// this process, or owned by our effective user with no group or
    /// other write bit. A memfd never is (whoever holds its descriptor can
    /// map it, whatever its mode). Decides whether a publisher may write to
    /// a waiter's pipe by the name in its control line (`notify.rs`).
    pub(crate) fn writable_by_owner_only(&self) -> bool {
        match self.backend {
            Backend::Heap => true,
            Backend::Memfd => false,
            Backend::PosixShm | Backend::File | Backend::SysV => {
                self.owner() == Some(rustix::process::geteuid().as_raw())
                    && self.mode().is_some_and(|mode| mode & 0o022 == 0)
            }
        }
    }

    /// Processes attached to a System V segment (`shm_nattch`).
    pub(crate) fn attach_count(&self) -> Option<u64> {
        self.sysv_id
            .and_then(|id| sysv::stat(id).ok())
            .map(|s| s.nattch)
    }
}

fn bad_size(label: &str, size: u64, opts: &SegmentOptions) -> Error {
    Error::Corrupt {
        address: label.to_owned(),
        corruption: Corruption {
            field: "segment size",
            found: size,
            expected: Expected::Range {
                min: opts.min_len,
                max: opts.max_len,
            },
        },
    }
}

/// Removes the name of the segment at `address`. Processes that have it
/// mapped keep their mapping; the memory is freed when the last one unmaps.
pub(crate) fn unlink(address: &Address) -> Result<(), Error> {
    let label = address.to_string();
    match address {
        Address::Shm(name) => posix_shm::unlink_any(name, &label),
        Address::File(path) => {
            rfs::unlink(path).map_err(|e| Error::from_errno("remove", &label, e))
        }
        Address::SysV(key) => {
            let k = sysv::sysv_key(key, &label)?;
            let id = sysv::open(k).map_err(|e| Error::from_errno("remove", &label, e))?;
            sysv::remove(id).map_err(|e| Error::from_errno("remove", &label, e))
        }
    }
}

/// Whether `address` still names `segment` (same device and inode, or the
/// same System V id), so that removing the name cannot hit a segment
/// someone else re-created there.
pub(crate) fn still_names(address: &Address, segment: &Segment) -> bool {
    if let Address::SysV(key) = address {
        return match (sysv::key_of(key).and_then(sysv::open), segment.sysv_id) {
            (Ok(id), Some(ours)) => id == ours,
            _ => false,
        };
    }
    let (Some(fd), Some(path)) = (segment.fd(), segment.path()) else {
        return false;
    };
    match (rfs::fstat(fd), rfs::lstat(path)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// Every address that might hold a ring: regular files in `/dev/shm` and on
/// hugetlbfs mounts (as `shm:` names), and keyed System V segments. Nothing
/// is opened here; callers check each candidate's magic.
pub(crate) fn candidates(min_len: u64) -> Vec<Address> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from(posix_shm::DIR)];
    dirs.extend(hugetlbfs::mounts().into_iter().map(|(d, _)| d));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            if let Ok(a @ Address::Shm(_)) = Address::parse(&format!("shm:{name}")) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    for s in sysv::list() {
        if s.key != 0 && s.size >= min_len {
            out.push(Address::SysV(SysvKey::Key(s.key)));
        }
    }
    out
}

/// Refuses an address whose file is a symbolic link or not a regular file
/// (a FIFO, socket, directory or device planted where a ring should be),
/// without opening it. A missing file passes (the caller reports it).
pub(crate) fn check_regular(address: &Address) -> Result<(), Error> {
    let path = match address {
        Address::Shm(name) => match posix_shm::find(name) {
            Some(p) => p,
            None => return Ok(()),
        },
        Address::File(p) => p.clone(),
        Address::SysV(_) => return Ok(()),
    };
    let label = address.to_string();
    match rfs::lstat(&path) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Ok(()),
            FileType::Symlink => Err(Error::Symlink { address: label }),
            _ => Err(Error::NotARegularFile { address: label }),
        },
        Err(_) => Ok(()),
    }
}

/// The owner and permission bits of a candidate this process may not read
/// (its `open` or `shmctl(IPC_STAT)` is refused), so that a listing can show
/// it as `ipcs` does; `None` for one that is readable, missing, shorter than
/// `min_len` or not a regular file.
pub(crate) fn denied(address: &Address, min_len: u64) -> Option<(u32, u32)> {
    let refused = |e: Errno| matches!(e, Errno::ACCESS | Errno::PERM);
    match address {
        Address::Shm(_) | Address::File(_) => {
            let path = match address {
                Address::Shm(name) => posix_shm::find(name)?,
                Address::File(p) => p.clone(),
                Address::SysV(_) => unreachable!(),
            };
            let st = rfs::lstat(&path).ok()?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
                || (st.st_size as u64) < min_len
            {
                return None;
            }
            match file::open(&path, true) {
                Err(e) if refused(e) => Some((st.st_uid, st.st_mode & 0o7777)),
                _ => None,
            }
        }
        Address::SysV(key) => {
            let k = sysv::key_of(key).ok()?;
            match sysv::open(k).and_then(sysv::stat) {
                Err(e) if refused(e) => sysv::list()
                    .into_iter()
                    .find(|s| s.key == k && s.size >= min_len)
                    .map(|s| (s.uid, s.mode)),
                _ => None,
            }
        }
    }
}

/// Reads the first bytes of a candidate without mapping it (a file another
/// process truncates cannot raise `SIGBUS` in a read): `None` if it cannot be
/// read or is shorter than the header.
pub(crate) fn peek_magic(address: &Address, min_len: u64) -> Option<u64> {
    match address {
        Address::Shm(_) | Address::File(_) => {
            let path = match address {
                Address::Shm(name) => posix_shm::find(name)?,
                Address::File(p) => p.clone(),
                Address::SysV(_) => unreachable!(),
            };
            let fd = file::open(&path, true).ok()?;
            let st = rfs::fstat(&fd).ok()?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
                || (st.st_size as u64) < min_len.max(8)
            {
                return None;
            }
            if hugetlbfs::page_size_at(&path).is_some() {
                // hugetlbfs has no read(2): map the first huge page read-only.
                let map = memmap2::MmapOptions::new()
                    .len(st.st_size as usize)
                    .map_raw_read_only(&fd)
                    .ok()?;
                // SAFETY: the mapping is at least 8 bytes (checked above) and
                // page-aligned; an aligned u64 read of its start.
                return Some(unsafe { map.as_ptr().cast::<u64>().read_volatile() });
            }
            let mut buf = [0u8; 8];
            let n = rustix::io::pread(&fd, &mut buf, 0).ok()?;
            (n == 8).then(|| u64::from_le_bytes(buf))
        }
        Address::SysV(key) => {
            let id = sysv::open(sysv::key_of(key).ok()?).ok()?;
            let st = sysv::stat(id).ok()?;
            if st.size < min_len.max(8) {
                return None;
            }
            let a = sysv::Attach::new(id, st.size as usize, true).ok()?;
            // SAFETY: the attachment is at least 8 bytes (checked above) and
            // page-aligned.
            Some(unsafe { a.as_ptr().cast::<u64>().read_volatile() })
        }
    }
}

/// The page size backing `fd`: the huge page size on hugetlbfs (and for a
/// hugetlb memfd), the base page size elsewhere.
fn fd_page_size(fd: BorrowedFd<'_>, label: &str) -> Result<usize, Error> {
    let base = rustix::param::page_size();
    match rfs::fstatfs(fd) {
        #[allow(clippy::unnecessary_cast)]
        Ok(st) if st.f_type as i64 == HUGETLBFS_MAGIC => {
            let bsize = st.f_bsize as u64;
            if bsize.is_power_of_two() && bsize >= base as u64 {
                Ok(bsize as usize)
            } else {
                Ok(base)
            }
        }
        Ok(_) => Ok(base),
        Err(Errno::NOSYS) => Ok(base),
        Err(e) => Err(Error::from_errno("fstatfs", label, e)),
    }
}

/// `v` rounded up to a multiple of `to` (a power of two), or `None` on
/// overflow.
pub(crate) fn round_up(v: u64, to: u64) -> Option<u64> {
    debug_assert!(to.is_power_of_two());
    Some(v.checked_add(to - 1)? & !(to - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(round_up(0, 4096), Some(0));
        assert_eq!(round_up(1, 4096), Some(4096));
        assert_eq!(round_up(4096, 4096), Some(4096));
        assert_eq!(round_up(4097, 2 << 20), Some(2 << 20));
        assert_eq!(round_up(u64::MAX, 4096), None);
    }
}
