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
//! Huge-page mappings are always whole huge pages long (memmap2 leaks a
//! mapping whose length is not), never `MAP_NORESERVE` (a dry pool would
//! then raise `SIGBUS` on first touch instead of failing the map with
//! `ENOMEM`), and `ENOMEM` becomes [`Error::HugePagesUnavailable`] with the
//! remedy.

pub(crate) mod fdpass;
mod file;
mod heap;
pub(crate) mod hugetlbfs;
mod memfd;
mod posix_shm;
pub(crate) mod sysv;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{self as rfs, FileType};
use rustix::io::Errno;

use crate::address::{Address, SysvKey};
use crate::error::{Corruption, Error, Expected};
use crate::ring::layout::{HEADER_LEN, MAX_TOTAL_LEN};

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
        }
    }
}

enum Memory {
    Mapped(memmap2::MmapRaw),
    SysV(sysv::Attach),
    Heap(HeapBlock),
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

/// What to ask the kernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pages {
    Base,
    Huge { size: u64, required: bool },
}

fn huge_error(label: &str, reason: String) -> Error {
    Error::HugePagesUnavailable {
        address: label.to_owned(),
        reason,
    }
}

/// Resolves the huge-page policy into a request, or a fallback reason.
fn plan(opts: &SegmentOptions, label: &str) -> Result<(Pages, Option<String>), Error> {
    let required = match opts.huge {
        HugePages::Never => return Ok((Pages::Base, None)),
        HugePages::Prefer => false,
        HugePages::Require => true,
    };
    let size = match opts.huge_size {
        Some(s) if !s.is_power_of_two() || s < 1 << 16 => {
            return Err(Error::config(
                "huge page size",
                s,
                "must be a power of two such as 2097152 (2 MiB) or 1073741824 (1 GiB)",
            ))
        }
        Some(s) => s,
        None => hugetlbfs::default_size().unwrap_or(2 << 20),
    };
    let offered = hugetlbfs::supported_sizes();
    if !offered.contains(&size) {
        let list: Vec<String> = offered.iter().map(|s| hugetlbfs::pretty(*s)).collect();
        let reason = if list.is_empty() {
            "this kernel offers no huge pages (no /sys/kernel/mm/hugepages)".to_owned()
        } else {
            format!(
                "this kernel offers no huge pages of {} (it offers {})",
                hugetlbfs::pretty(size),
                list.join(", ")
            )
        };
        if required {
            return Err(huge_error(label, reason));
        }
        return Ok((Pages::Base, Some(reason)));
    }
    Ok((Pages::Huge { size, required }, None))
}

/// Whether an error means "no huge pages to be had" (so `Prefer` may fall
/// back), as opposed to a failure that would hit base pages too.
fn is_huge_shortage(e: &Error) -> Option<&str> {
    match e {
        Error::HugePagesUnavailable { reason, .. } => Some(reason),
        _ => None,
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
        Ok(seg)
    }

    fn create_shm(
        name: &str,
        min_len: u64,
        opts: &SegmentOptions,
        pages: Pages,
        label: &str,
        fallback: &mut Option<String>,
    ) -> Result<Segment, Error> {
        let mounts = hugetlbfs::mounts();
        let exists_on_huge = mounts.iter().any(|(d, _)| rfs::lstat(d.join(name)).is_ok());
        if let Pages::Huge { size, required } = pages {
            match mounts.iter().find(|(_, s)| *s == size) {
                Some((dir, _)) => {
                    if exists_on_huge || rfs::lstat(posix_shm::path(name)).is_ok() {
                        return Err(Error::AlreadyExists {
                            address: label.to_owned(),
                        });
                    }
                    let path = dir.join(name);
                    match Self::create_at(
                        &path,
                        min_len,
                        opts,
                        Backend::PosixShm,
                        label,
                        Some(size),
                    ) {
                        Ok(seg) => return Ok(seg),
                        Err(e) => match is_huge_shortage(&e) {
                            Some(reason) if !required => *fallback = Some(reason.to_owned()),
                            _ => return Err(e),
                        },
                    }
                }
                None => {
                    let reason = hugetlbfs::mount_remedy(size);
                    if required {
                        return Err(huge_error(label, reason));
                    }
                    *fallback = Some(reason);
                }
            }
        }
        if exists_on_huge {
            return Err(Error::AlreadyExists {
                address: label.to_owned(),
            });
        }
        let fd = posix_shm::create(name, opts.mode)
            .map_err(|e| Error::from_errno("create", label, e))?;
        let mut seg = Self::finish_create(fd, min_len, opts, Backend::PosixShm, label, None)
            .inspect_err(|_| {
                let _ = posix_shm::unlink(name);
            })?;
        seg.path = Some(posix_shm::path(name));
        Ok(seg)
    }

    fn create_file(
        path: &Path,
        min_len: u64,
        opts: &SegmentOptions,
        pages: Pages,
        label: &str,
        fallback: &mut Option<String>,
    ) -> Result<Segment, Error> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let on_huge = hugetlbfs::page_size_at(parent);
        if let (Pages::Huge { size, required }, None) = (pages, on_huge) {
            let reason = format!(
                "{} is not on a hugetlbfs mount, so it gets base pages; {}",
                parent.display(),
                hugetlbfs::mount_remedy(size)
            );
            if required {
                return Err(huge_error(label, reason));
            }
            *fallback = Some(reason);
        }
        Self::create_at(path, min_len, opts, Backend::File, label, on_huge)
    }

    /// Creates a file at `path` (on hugetlbfs when `huge` is set) and maps it.
    fn create_at(
        path: &Path,
        min_len: u64,
        opts: &SegmentOptions,
        backend: Backend,
        label: &str,
        huge: Option<u64>,
    ) -> Result<Segment, Error> {
        let fd =
            file::create(path, opts.mode).map_err(|e| Error::from_errno("create", label, e))?;
        let mut seg =
            Self::finish_create(fd, min_len, opts, backend, label, huge).inspect_err(|_| {
                let _ = rfs::unlink(path);
            })?;
        seg.path = Some(path.to_owned());
        Ok(seg)
    }

    /// Creates an anonymous memfd segment of at least `min_len` bytes,
    /// sealed against shrinking and growing.
    pub(crate) fn create_memfd(
        name: &str,
        min_len: u64,
        opts: &SegmentOptions,
    ) -> Result<Segment, Error> {
        let label = format!("memfd:{name}");
        let (pages, mut fallback) = plan(opts, &label)?;
        if let Pages::Huge { size, required } = pages {
            let attempt = memfd::create(name, Some(size))
                .map_err(|e| {
                    huge_error(
                        &label,
                        format!(
                            "memfd_create(MFD_HUGETLB, {}) failed: {e}",
                            hugetlbfs::pretty(size)
                        ),
                    )
                })
                .and_then(|fd| {
                    Self::finish_create(fd, min_len, opts, Backend::Memfd, &label, Some(size))
                });
            match attempt {
                Ok(seg) => return Self::seal(seg, &label),
                Err(e) => match is_huge_shortage(&e) {
                    Some(reason) if !required => fallback = Some(reason.to_owned()),
                    _ => return Err(e),
                },
            }
        }
        let fd =
            memfd::create(name, None).map_err(|e| Error::from_errno("memfd_create", &label, e))?;
        let mut seg = Self::finish_create(fd, min_len, opts, Backend::Memfd, &label, None)?;
        seg.huge_fallback = fallback;
        Self::seal(seg, &label)
    }

    fn seal(seg: Segment, label: &str) -> Result<Segment, Error> {
        if let Some(fd) = &seg.fd {
            memfd::seal(fd).map_err(|e| Error::from_errno("seal", label, e))?;
        }
        Ok(seg)
    }

    fn create_sysv(
        key: &SysvKey,
        min_len: u64,
        opts: &SegmentOptions,
        pages: Pages,
        label: &str,
        fallback: &mut Option<String>,
    ) -> Result<Segment, Error> {
        let k = sysv_key(key, label)?;
        let base = rustix::param::page_size() as u64;
        if let Pages::Huge { size, required } = pages {
            let len = round_up(min_len, size)
                .ok_or_else(|| Error::config("ring size", min_len, "overflows"))?;
            match sysv::create(k, len as usize, opts.mode, Some(size)) {
                Ok(id) => return Self::attach_new(id, len, size as usize, opts, label),
                Err(Errno::EXIST) => {
                    return Err(Error::AlreadyExists {
                        address: label.to_owned(),
                    })
                }
                Err(e) => {
                    let reason = match e {
                        Errno::NOMEM => hugetlbfs::pool_remedy(size, len / size),
                        Errno::PERM => hugetlbfs::sysv_perm_remedy(),
                        other => format!("shmget(SHM_HUGETLB) failed: {other}"),
                    };
                    if required {
                        return Err(huge_error(label, reason));
                    }
                    *fallback = Some(reason);
                }
            }
        }
        let len = round_up(min_len, base)
            .ok_or_else(|| Error::config("ring size", min_len, "overflows"))?;
        let id = sysv::create(k, len as usize, opts.mode, None)
            .map_err(|e| Error::from_errno("shmget", label, e))?;
        Self::attach_new(id, len, base as usize, opts, label)
    }

    /// Attaches a System V segment this process just created; removes it
    /// again if that fails.
    fn attach_new(
        id: i32,
        len: u64,
        page_size: usize,
        opts: &SegmentOptions,
        label: &str,
    ) -> Result<Segment, Error> {
        let attached = sysv::Attach::new(id, len as usize, false)
            .map_err(|e| Error::from_errno("shmat", label, e))
            .and_then(|a| {
                let mut seg = Segment {
                    memory: Memory::SysV(a),
                    page_size,
                    backend: Backend::SysV,
                    fd: None,
                    read_only: false,
                    path: None,
                    sysv_id: Some(id),
                    huge_fallback: None,
                };
                seg.prepare(opts, label)?;
                Ok(seg)
            });
        if attached.is_err() {
            let _ = sysv::remove(id);
        }
        attached
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
            Address::Shm(name) => match posix_shm::open(name, opts.read_only) {
                Ok(fd) => {
                    let mut seg = Self::open_fd(fd, opts, Backend::PosixShm, &label)?;
                    seg.path = Some(posix_shm::path(name));
                    Ok(seg)
                }
                // Not in /dev/shm: a huge-page `shm:` ring lives on hugetlbfs.
                Err(Errno::NOENT) => {
                    for (dir, _) in hugetlbfs::mounts() {
                        let path = dir.join(name);
                        match file::open(&path, opts.read_only) {
                            Ok(fd) => {
                                let mut seg = Self::open_fd(fd, opts, Backend::PosixShm, &label)?;
                                seg.path = Some(path);
                                return Ok(seg);
                            }
                            Err(Errno::NOENT) => continue,
                            Err(e) => return Err(Error::from_errno("open", &label, e)),
                        }
                    }
                    Err(Error::NotFound { address: label })
                }
                Err(e) => Err(Error::from_errno("open", &label, e)),
            },
            Address::File(path) => {
                let fd = file::open(path, opts.read_only)
                    .map_err(|e| Error::from_errno("open", &label, e))?;
                let mut seg = Self::open_fd(fd, opts, Backend::File, &label)?;
                seg.path = Some(path.clone());
                Ok(seg)
            }
            Address::SysV(key) => {
                let k = sysv_key(key, &label)?;
                let id = sysv::open(k).map_err(|e| Error::from_errno("shmget", &label, e))?;
                let st = sysv::stat(id).map_err(|e| Error::from_errno("shmctl", &label, e))?;
                if st.size < HEADER_LEN as u64 || st.size > MAX_TOTAL_LEN + (1 << 30) {
                    return Err(bad_size(&label, st.size));
                }
                let a = sysv::Attach::new(id, st.size as usize, opts.read_only)
                    .map_err(|e| Error::from_errno("shmat", &label, e))?;
                // Nothing in System V says whether a segment is hugetlb: ask
                // the kernel how it mapped it.
                let page_size = hugetlbfs::mapping_page_size(a.as_ptr() as usize)
                    .unwrap_or(rustix::param::page_size() as u64);
                let mut seg = Segment {
                    memory: Memory::SysV(a),
                    page_size: page_size as usize,
                    backend: Backend::SysV,
                    fd: None,
                    read_only: opts.read_only,
                    path: None,
                    sysv_id: Some(id),
                    huge_fallback: None,
                };
                seg.prepare(opts, &label)?;
                Ok(seg)
            }
        }
    }

    /// Maps a segment from a file descriptor (a memfd received over a
    /// socket, inherited across fork, or any shared-memory fd).
    pub(crate) fn from_fd(fd: OwnedFd, opts: &SegmentOptions) -> Result<Segment, Error> {
        let label = format!("fd:{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let backend = if memfd::is_memfd(fd.as_fd()) {
            Backend::Memfd
        } else {
            Backend::File
        };
        Self::open_fd(fd, opts, backend, &label)
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
            if size >= HEADER_LEN as u64 {
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
        if len > MAX_TOTAL_LEN + (1 << 30) {
            return Err(bad_size(label, len));
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
        };
        seg.prepare(opts, label)?;
        Ok(seg)
    }

    /// Applies `lock` (and `populate` where the map call could not).
    fn prepare(&mut self, opts: &SegmentOptions, label: &str) -> Result<(), Error> {
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
        }
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        match &self.memory {
            Memory::Mapped(m) => m.len(),
            Memory::SysV(a) => a.len(),
            Memory::Heap(h) => h.len(),
        }
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

    /// Processes attached to a System V segment (`shm_nattch`).
    pub(crate) fn attach_count(&self) -> Option<u64> {
        self.sysv_id
            .and_then(|id| sysv::stat(id).ok())
            .map(|s| s.nattch)
    }
}

fn bad_size(label: &str, size: u64) -> Error {
    Error::Corrupt {
        address: label.to_owned(),
        corruption: Corruption {
            field: "segment size",
            found: size,
            expected: Expected::Range {
                min: HEADER_LEN as u64,
                max: MAX_TOTAL_LEN,
            },
        },
    }
}

fn sysv_key(key: &SysvKey, label: &str) -> Result<i32, Error> {
    sysv::key_of(key).map_err(|e| match (e, key) {
        (Errno::NOENT, SysvKey::Ftok { path, .. }) => Error::InvalidAddress {
            input: label.to_owned(),
            reason: format!("the ftok path {} does not exist", path.display()),
        },
        _ => Error::from_errno("ftok", label, e),
    })
}

/// Removes the name of the segment at `address`. Processes that have it
/// mapped keep their mapping; the memory is freed when the last one unmaps.
pub(crate) fn unlink(address: &Address) -> Result<(), Error> {
    let label = address.to_string();
    match address {
        Address::Shm(name) => match posix_shm::unlink(name) {
            Err(Errno::NOENT) => {
                for (dir, _) in hugetlbfs::mounts() {
                    match rfs::unlink(dir.join(name)) {
                        Ok(()) => return Ok(()),
                        Err(Errno::NOENT) => continue,
                        Err(e) => return Err(Error::from_errno("remove", &label, e)),
                    }
                }
                Err(Error::NotFound { address: label })
            }
            r => r.map_err(|e| Error::from_errno("remove", &label, e)),
        },
        Address::File(path) => {
            rfs::unlink(path).map_err(|e| Error::from_errno("remove", &label, e))
        }
        Address::SysV(key) => {
            let k = sysv_key(key, &label)?;
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
pub(crate) fn candidates() -> Vec<Address> {
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
        if s.key != 0 && s.size >= HEADER_LEN as u64 {
            out.push(Address::SysV(SysvKey::Key(s.key)));
        }
    }
    out
}

/// Reads the first bytes of a candidate without mapping it (a file another
/// process truncates cannot raise `SIGBUS` in a read): `None` if it cannot be
/// read or is shorter than the header.
pub(crate) fn peek_magic(address: &Address) -> Option<u64> {
    match address {
        Address::Shm(_) | Address::File(_) => {
            let path = match address {
                Address::Shm(name) => {
                    let p = posix_shm::path(name);
                    if rfs::lstat(&p).is_ok() {
                        p
                    } else {
                        hugetlbfs::mounts()
                            .into_iter()
                            .map(|(d, _)| d.join(name))
                            .find(|p| rfs::lstat(p).is_ok())?
                    }
                }
                Address::File(p) => p.clone(),
                Address::SysV(_) => unreachable!(),
            };
            let fd = file::open(&path, true).ok()?;
            let st = rfs::fstat(&fd).ok()?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
                || (st.st_size as u64) < HEADER_LEN as u64
            {
                return None;
            }
            if hugetlbfs::page_size_at(&path).is_some() {
                // hugetlbfs has no read(2): map the first huge page read-only.
                let map = memmap2::MmapOptions::new()
                    .len(st.st_size as usize)
                    .map_raw_read_only(&fd)
                    .ok()?;
                // SAFETY: the mapping is at least HEADER_LEN bytes and
                // page-aligned; an unaligned-free u64 read of its start.
                return Some(unsafe { map.as_ptr().cast::<u64>().read_volatile() });
            }
            let mut buf = [0u8; 8];
            let n = rustix::io::pread(&fd, &mut buf, 0).ok()?;
            (n == 8).then(|| u64::from_le_bytes(buf))
        }
        Address::SysV(key) => {
            let id = sysv::open(sysv::key_of(key).ok()?).ok()?;
            let st = sysv::stat(id).ok()?;
            if st.size < HEADER_LEN as u64 {
                return None;
            }
            let a = sysv::Attach::new(id, st.size as usize, true).ok()?;
            // SAFETY: the attachment is at least HEADER_LEN bytes and
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

    #[cfg(not(miri))] // reads /sys
    #[test]
    fn plans() {
        let mut o = SegmentOptions::default();
        assert_eq!(plan(&o, "x").unwrap(), (Pages::Base, None));
        o.huge = HugePages::Require;
        o.huge_size = Some(3 << 20);
        assert!(matches!(plan(&o, "x"), Err(Error::InvalidConfig { .. })));
        o.huge_size = Some(1 << 40);
        assert!(matches!(
            plan(&o, "x"),
            Err(Error::HugePagesUnavailable { .. })
        ));
        o.huge = HugePages::Prefer;
        let (p, why) = plan(&o, "x").unwrap();
        assert_eq!(p, Pages::Base);
        assert!(why.unwrap().contains("no huge pages of"));
    }
}
