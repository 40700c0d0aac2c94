//! A regular file as the segment: any file system, and huge pages when the
//! file lives on a hugetlbfs mount.
//!
//! The final path component is never followed if it is a symbolic link
//! (`O_NOFOLLOW`; `O_CREAT | O_EXCL` refuses one as well).

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags, CWD};
use rustix::io::Errno;

/// `open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)`,
/// then `fchmod` so the mode is exactly `mode` whatever the umask.
pub(super) fn create(path: &Path, mode: u32) -> Result<OwnedFd, Errno> {
    let fd = rfs::openat(
        CWD,
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    if let Err(e) = rfs::fchmod(&fd, Mode::from_raw_mode(mode)) {
        let _ = rfs::unlink(path);
        return Err(e);
    }
    Ok(fd)
}

/// `open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)` (or `O_RDONLY`).
pub(super) fn open(path: &Path, read_only: bool) -> Result<OwnedFd, Errno> {
    let access = if read_only {
        OFlags::RDONLY
    } else {
        OFlags::RDWR
    };
    rfs::openat(
        CWD,
        path,
        access | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}
