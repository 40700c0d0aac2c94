//! Anonymous memory files: `memfd_create(2)`.
//!
//! A memfd has no name in the file system; another process gets it by
//! `fork` or by fd passing over a UNIX socket. It is sealed against
//! shrinking and growing once sized, so a peer holding the fd cannot
//! truncate it under our mapping (which would raise `SIGBUS` on access).
//!
//! # References
//!  - [memfd_create(2)](https://man7.org/linux/man-pages/man2/memfd_create.2.html)

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, MemfdFlags, SealFlags};
use rustix::io::Errno;

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
