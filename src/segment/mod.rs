//! Shared memory segments: where a ring's bytes live.
//!
//! Each backend turns an address into a mapped region that another process
//! can map too. Nothing above this module makes a system call on a segment:
//! the ring sees a base pointer, a length and a page size.
//!
//! | backend | module | named by | reached by another process through |
//! |---|---|---|---|
//! | POSIX shm | `posix_shm` | `shm:NAME` | the name, `/dev/shm/NAME` |
//! | file | `file` | `file:PATH` | the path (hugetlbfs mount: huge pages) |
//! | memfd | `memfd` | its fd | fork, or `SCM_RIGHTS` fd passing |
//! | heap | `heap` | nothing | the same process only (tests, Miri, loom) |

mod file;
mod heap;
mod memfd;
mod posix_shm;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::fs::{self as rfs, FileType};
use rustix::io::Errno;

use crate::address::Address;
use crate::error::Error;

pub(crate) use heap::HeapBlock;

/// `HUGETLBFS_MAGIC` from `<linux/magic.h>` (rustix does not define it).
pub(crate) const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// Which kind of shared memory backs a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// POSIX shared memory (`shm_open`), under `/dev/shm`.
    PosixShm,
    /// A regular file, possibly on a hugetlbfs mount.
    File,
    /// An anonymous memfd (`memfd_create`).
    Memfd,
    /// Process-local heap memory (tests, Miri, in-process use).
    Heap,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::PosixShm => "posix-shm",
            Backend::File => "file",
            Backend::Memfd => "memfd",
            Backend::Heap => "heap",
        })
    }
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
    /// Map read-only (inspection).
    pub(crate) read_only: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            mode: 0o600,
            open_timeout: Duration::from_secs(1),
            populate: false,
            read_only: false,
        }
    }
}

enum Memory {
    Mapped(memmap2::MmapRaw),
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
        match address {
            Address::Shm(name) => {
                let fd = posix_shm::create(name, opts.mode)
                    .map_err(|e| Error::from_errno("create", &label, e))?;
                Self::finish_create(fd, min_len, opts, Backend::PosixShm, &label).inspect_err(
                    |_| {
                        let _ = posix_shm::unlink(name);
                    },
                )
            }
            Address::File(path) => {
                let fd = file::create(path, opts.mode)
                    .map_err(|e| Error::from_errno("create", &label, e))?;
                Self::finish_create(fd, min_len, opts, Backend::File, &label).inspect_err(|_| {
                    let _ = rfs::unlink(path);
                })
            }
            Address::SysV(_) => Err(Error::Unsupported {
                address: label,
                what: "System V shared memory (not built into this version)",
            }),
        }
    }

    /// Creates an anonymous memfd segment of at least `min_len` bytes,
    /// sealed against shrinking and growing.
    pub(crate) fn create_memfd(
        name: &str,
        min_len: u64,
        opts: &SegmentOptions,
    ) -> Result<Segment, Error> {
        let label = format!("memfd:{name}");
        let fd = memfd::create(name).map_err(|e| Error::from_errno("memfd_create", &label, e))?;
        let seg = Self::finish_create(fd, min_len, opts, Backend::Memfd, &label)?;
        if let Some(fd) = &seg.fd {
            memfd::seal(fd).map_err(|e| Error::from_errno("seal", &label, e))?;
        }
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
        })
    }

    fn finish_create(
        fd: OwnedFd,
        min_len: u64,
        opts: &SegmentOptions,
        backend: Backend,
        label: &str,
    ) -> Result<Segment, Error> {
        let page_size = fd_page_size(fd.as_fd(), label)?;
        let len = round_up(min_len, page_size as u64)
            .ok_or_else(|| Error::config("ring size", min_len, "overflows"))?;
        rfs::ftruncate(&fd, len).map_err(|e| Error::from_errno("ftruncate", label, e))?;
        Self::map(fd, len, page_size, opts, backend, label)
    }

    /// Opens the existing segment at `address` and maps all of it.
    pub(crate) fn open(address: &Address, opts: &SegmentOptions) -> Result<Segment, Error> {
        let label = address.to_string();
        let (fd, backend) = match address {
            Address::Shm(name) => (
                posix_shm::open(name, opts.read_only)
                    .map_err(|e| Error::from_errno("open", &label, e))?,
                Backend::PosixShm,
            ),
            Address::File(path) => (
                file::open(path, opts.read_only)
                    .map_err(|e| Error::from_errno("open", &label, e))?,
                Backend::File,
            ),
            Address::SysV(_) => {
                return Err(Error::Unsupported {
                    address: label,
                    what: "System V shared memory (not built into this version)",
                })
            }
        };
        Self::open_fd(fd, opts, backend, &label)
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
            if size >= crate::ring::layout::HEADER_LEN as u64 {
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
        if len > crate::ring::layout::MAX_TOTAL_LEN + (1 << 30) {
            return Err(Error::Corrupt {
                address: label.to_owned(),
                corruption: crate::error::Corruption {
                    field: "segment size",
                    found: len,
                    expected: crate::error::Expected::Range {
                        min: crate::ring::layout::HEADER_LEN as u64,
                        max: crate::ring::layout::MAX_TOTAL_LEN,
                    },
                },
            });
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
        .map_err(|e| Error::io("mmap", label, e))?;
        Ok(Segment {
            memory: Memory::Mapped(map),
            page_size,
            backend,
            fd: Some(fd),
            read_only: opts.read_only,
        })
    }

    /// First byte of the mapping (page-aligned).
    pub(crate) fn base(&self) -> *mut u8 {
        match &self.memory {
            Memory::Mapped(m) => m.as_mut_ptr(),
            Memory::Heap(h) => h.as_ptr(),
        }
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        match &self.memory {
            Memory::Mapped(m) => m.len(),
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
}

/// Whether `address` still names `segment` (same device and inode), so that
/// removing the name cannot hit a segment someone else re-created there.
pub(crate) fn still_names(address: &Address, segment: &Segment) -> bool {
    let Some(fd) = segment.fd() else {
        return false;
    };
    let path = match address {
        Address::Shm(name) => std::path::PathBuf::from(format!("/dev/shm/{name}")),
        Address::File(path) => path.clone(),
        Address::SysV(_) => return false,
    };
    match (rfs::fstat(fd), rfs::lstat(&path)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// Removes the name of the segment at `address`. Processes that have it
/// mapped keep their mapping; the memory is freed when the last one unmaps.
pub(crate) fn unlink(address: &Address) -> Result<(), Error> {
    let label = address.to_string();
    match address {
        Address::Shm(name) => {
            posix_shm::unlink(name).map_err(|e| Error::from_errno("remove", &label, e))
        }
        Address::File(path) => {
            rfs::unlink(path).map_err(|e| Error::from_errno("remove", &label, e))
        }
        Address::SysV(_) => Err(Error::Unsupported {
            address: label,
            what: "System V shared memory (not built into this version)",
        }),
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
