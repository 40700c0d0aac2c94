//! POSIX shared memory: `shm_open(3)` under `/dev/shm`, or a file of the
//! same name on a hugetlbfs mount when the ring has huge pages (tmpfs has
//! none). This backend's create, open and unlink.
//!
//! # References
//!  - [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html)
//!  - [shm_overview(7)](https://man7.org/linux/man-pages/man7/shm_overview.7.html)

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{self as rfs, Mode};
use rustix::io::Errno;
use rustix::shm;

use super::huge::{huge_error, is_huge_shortage, Pages};
use super::{file, hugetlbfs, Backend, Segment, SegmentOptions};
use crate::error::Error;

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

/// `O_NONBLOCK`, passed the same way: `/dev/shm` is world-writable, so a
/// FIFO or device node planted there must not make the open wait (a
/// read-only open of a FIFO blocks until a writer comes). The caller
/// refuses anything but a regular file by `fstat` before using the fd;
/// on a regular file the flag changes nothing.
fn nonblock() -> shm::OFlags {
    shm::OFlags::from_bits_retain(rfs::OFlags::NONBLOCK.bits())
}

/// `shm_open(name, O_RDWR | O_NOFOLLOW | O_NONBLOCK)` (or `O_RDONLY`).
pub(super) fn open(name: &str, read_only: bool) -> Result<OwnedFd, Errno> {
    let access = if read_only {
        shm::OFlags::RDONLY
    } else {
        shm::OFlags::RDWR
    };
    shm::open(name, access | nofollow() | nonblock(), Mode::empty())
}

/// `shm_unlink(name)`.
pub(super) fn unlink(name: &str) -> Result<(), Errno> {
    shm::unlink(name)
}

impl Segment {
    /// Creates the `shm:` segment `name`: on a hugetlbfs mount of the
    /// requested page size when `pages` asks for huge pages, in `/dev/shm`
    /// otherwise (or as the fallback of `HugePages::Prefer`).
    pub(super) fn create_shm(
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
                    if exists_on_huge || rfs::lstat(path(name)).is_ok() {
                        return Err(Error::AlreadyExists {
                            address: label.to_owned(),
                        });
                    }
                    let path = dir.join(name);
                    match Segment::create_at(
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
        let fd = create(name, opts.mode).map_err(|e| Error::from_errno("create", label, e))?;
        let mut seg = Segment::finish_create(fd, min_len, opts, Backend::PosixShm, label, None)
            .inspect_err(|_| {
                let _ = unlink(name);
            })?;
        seg.path = Some(path(name));
        Ok(seg)
    }

    /// Opens the `shm:` segment `name`: in `/dev/shm`, or on a hugetlbfs
    /// mount where a huge-page ring of that name lives.
    pub(super) fn open_shm(
        name: &str,
        opts: &SegmentOptions,
        label: &str,
    ) -> Result<Segment, Error> {
        match open(name, opts.read_only) {
            Ok(fd) => {
                let mut seg = Segment::open_fd(fd, opts, Backend::PosixShm, label)?;
                seg.path = Some(path(name));
                Ok(seg)
            }
            // Not in /dev/shm: a huge-page `shm:` ring lives on hugetlbfs.
            Err(Errno::NOENT) => {
                for (dir, _) in hugetlbfs::mounts() {
                    let path = dir.join(name);
                    match file::open(&path, opts.read_only) {
                        Ok(fd) => {
                            let mut seg = Segment::open_fd(fd, opts, Backend::PosixShm, label)?;
                            seg.path = Some(path);
                            return Ok(seg);
                        }
                        Err(Errno::NOENT) => continue,
                        Err(e) => return Err(Error::from_errno("open", label, e)),
                    }
                }
                Err(Error::NotFound {
                    address: label.to_owned(),
                })
            }
            Err(e) => Err(Error::from_errno("open", label, e)),
        }
    }
}

/// Removes the name `name`: in `/dev/shm`, or on the hugetlbfs mount that
/// holds it.
pub(super) fn unlink_any(name: &str, label: &str) -> Result<(), Error> {
    match unlink(name) {
        Err(Errno::NOENT) => {
            for (dir, _) in hugetlbfs::mounts() {
                match rfs::unlink(dir.join(name)) {
                    Ok(()) => return Ok(()),
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(Error::from_errno("remove", label, e)),
                }
            }
            Err(Error::NotFound {
                address: label.to_owned(),
            })
        }
        r => r.map_err(|e| Error::from_errno("remove", label, e)),
    }
}

/// The file behind the `shm:` name `name`, wherever it lives, if it exists.
pub(super) fn find(name: &str) -> Option<PathBuf> {
    let p = path(name);
    if rfs::lstat(&p).is_ok() {
        return Some(p);
    }
    hugetlbfs::mounts()
        .into_iter()
        .map(|(d, _)| d.join(name))
        .find(|p| rfs::lstat(p).is_ok())
}
