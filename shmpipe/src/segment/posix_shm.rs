//! POSIX shared memory: `shm_open(3)` under `/dev/shm`.
//!
//! # References
//!  - [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html)
//!  - [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html)

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{self as rfs, Mode};
use rustix::io::Errno;
use rustix::shm;

/// Where Linux keeps POSIX shared-memory objects.
pub(super) const DIR: &str = "/dev/shm";

/// The file behind the object `name`.
pub(super) fn path(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(name)
}

/// `O_NOFOLLOW`, passed through rustix's `shm::open` (which accepts external
/// bits): `/dev/shm` is world-writable, so a symlink planted there must not
/// redirect us to another file.
fn nofollow() -> shm::OFlags {
    shm::OFlags::from_bits_retain(rfs::OFlags::NOFOLLOW.bits())
}

/// `shm_open(name, O_CREAT | O_EXCL | O_RDWR, mode)`, then `fchmod` so the
/// mode is exactly `mode` whatever the umask.
pub(super) fn create(name: &str, mode: u32) -> Result<OwnedFd, Errno> {
    let fd = shm::open(
        name,
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR | nofollow(),
        Mode::from_raw_mode(mode),
    )?;
    if let Err(e) = rfs::fchmod(&fd, Mode::from_raw_mode(mode)) {
        let _ = shm::unlink(name);
        return Err(e);
    }
    Ok(fd)
}

/// `shm_open(name, O_RDWR | O_NOFOLLOW)` (or `O_RDONLY`).
pub(super) fn open(name: &str, read_only: bool) -> Result<OwnedFd, Errno> {
    let access = if read_only {
        shm::OFlags::RDONLY
    } else {
        shm::OFlags::RDWR
    };
    shm::open(name, access | nofollow(), Mode::empty())
}

/// `shm_unlink(name)`.
pub(super) fn unlink(name: &str) -> Result<(), Errno> {
    shm::unlink(name)
}
