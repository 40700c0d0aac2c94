//! Anonymous memory files: `memfd_create(2)`.
//!
//! A memfd has no name in the file system; another process gets it by
//! `fork` or by fd passing over a UNIX socket. It is sealed against
//! shrinking and growing once sized, so a peer holding the fd cannot
//! truncate it under our mapping (which would raise `SIGBUS` on access).
//!
//! # References
//!  - [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, MemfdFlags, SealFlags};
use rustix::io::Errno;

use super::huge::{huge_error, is_huge_shortage, plan, Pages};
use super::{hugetlbfs, Backend, Segment, SegmentOptions};
use crate::error::Error;

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`, plus
/// `MFD_HUGETLB` and the size flag for huge pages of `huge` bytes.
pub(super) fn create(name: &str, huge: Option<u64>) -> Result<OwnedFd, Errno> {
    let mut flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    match huge {
        None => {}
        Some(s) if s == 2 << 20 => flags |= MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB,
        Some(s) if s == 1 << 30 => flags |= MemfdFlags::HUGETLB | MemfdFlags::HUGE_1GB,
        // MFD_HUGE_SHIFT is 26: log2 of the size in bits 26..31.
        Some(s) => {
            flags |= MemfdFlags::HUGETLB | MemfdFlags::from_bits_retain(s.trailing_zeros() << 26)
        }
    }
    rfs::memfd_create(name, flags)
}

/// Seals the size and the seal set: `F_SEAL_SHRINK | F_SEAL_GROW |
/// F_SEAL_SEAL`.
pub(super) fn seal(fd: &OwnedFd) -> Result<(), Errno> {
    rfs::fcntl_add_seals(fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
}

/// Whether `fd` is a memfd (it answers `F_GET_SEALS` and its `/proc` link
/// starts with `/memfd:`).
pub(super) fn is_memfd(fd: BorrowedFd<'_>) -> bool {
    if rfs::fcntl_get_seals(fd).is_err() {
        return false;
    }
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    std::fs::read_link(link)
        .map(|p| p.to_string_lossy().starts_with("/memfd:"))
        .unwrap_or(false)
}

impl Segment {
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
            let attempt = create(name, Some(size))
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
                    Segment::finish_create(fd, min_len, opts, Backend::Memfd, &label, Some(size))
                });
            match attempt {
                Ok(seg) => return Segment::seal_memfd(seg, &label),
                Err(e) => match is_huge_shortage(&e) {
                    Some(reason) if !required => fallback = Some(reason.to_owned()),
                    _ => return Err(e),
                },
            }
        }
        let fd = create(name, None).map_err(|e| Error::from_errno("memfd_create", &label, e))?;
        let mut seg = Segment::finish_create(fd, min_len, opts, Backend::Memfd, &label, None)?;
        seg.huge_fallback = fallback;
        Segment::seal_memfd(seg, &label)
    }

    fn seal_memfd(seg: Segment, label: &str) -> Result<Segment, Error> {
        if let Some(fd) = &seg.fd {
            seal(fd).map_err(|e| Error::from_errno("seal", label, e))?;
        }
        Ok(seg)
    }

    /// Maps a segment from a file descriptor (a memfd received over a
    /// socket, inherited across fork, or any shared-memory fd).
    pub(crate) fn from_fd(fd: OwnedFd, opts: &SegmentOptions) -> Result<Segment, Error> {
        let label = format!("fd:{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let backend = if is_memfd(fd.as_fd()) {
            Backend::Memfd
        } else {
            Backend::File
        };
        Segment::open_fd(fd, opts, backend, &label)
    }
}
