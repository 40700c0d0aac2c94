//! A regular file as the segment: any file system, and huge pages when the
//! file lives on a hugetlbfs mount.
//!
//! The final path component is never followed if it is a symbolic link
//! (`O_NOFOLLOW`; `O_CREAT | O_EXCL` refuses one as well), and no open
//! waits on a FIFO or device node (`O_NONBLOCK`, then `fstat`).

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags, CWD};
use rustix::io::Errno;

use super::huge::{huge_error, Pages};
use super::{hugetlbfs, Backend, Segment, SegmentOptions};
use crate::error::Error;

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

/// `open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)` (or
/// `O_RDONLY`). `O_NONBLOCK` keeps a FIFO or device node at the path from
/// making the open wait; the caller refuses anything but a regular file by
/// `fstat` before using the fd, and on a regular file the flag changes
/// nothing.
pub(super) fn open(path: &Path, read_only: bool) -> Result<OwnedFd, Errno> {
    let access = if read_only {
        OFlags::RDONLY
    } else {
        OFlags::RDWR
    };
    rfs::openat(
        CWD,
        path,
        access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

impl Segment {
    pub(super) fn create_file(
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
        Segment::create_at(path, min_len, opts, Backend::File, label, on_huge)
    }

    /// Creates a file at `path` (on hugetlbfs when `huge` is set) and maps it.
    pub(super) fn create_at(
        path: &Path,
        min_len: u64,
        opts: &SegmentOptions,
        backend: Backend,
        label: &str,
        huge: Option<u64>,
    ) -> Result<Segment, Error> {
        let fd = create(path, opts.mode).map_err(|e| Error::from_errno("create", label, e))?;
        let mut seg =
            Segment::finish_create(fd, min_len, opts, backend, label, huge).inspect_err(|_| {
                let _ = rfs::unlink(path);
            })?;
        seg.path = Some(path.to_owned());
        Ok(seg)
    }

    /// Opens the `file:` segment at `path`.
    pub(super) fn open_file(
        path: &Path,
        opts: &SegmentOptions,
        label: &str,
    ) -> Result<Segment, Error> {
        let fd = open(path, opts.read_only).map_err(|e| Error::from_errno("open", label, e))?;
        let mut seg = Segment::open_fd(fd, opts, Backend::File, label)?;
        seg.path = Some(path.to_owned());
        Ok(seg)
    }
}
