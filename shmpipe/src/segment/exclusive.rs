//! Who may remove a segment's name while others race to create it: the
//! creator's lock, held from creation on, and the lock a reclaimer takes
//! before it judges a ring stale and removes it.
//!
//! For a segment with a file (`shm:` and `file:`), both are `flock(2)`s on
//! the file: the creator holds `LOCK_SH` on the descriptor it created the
//! file with (for as long as it keeps the segment), a reclaimer takes
//! `LOCK_EX | LOCK_NB` on a descriptor of its own. So
//!
//! - a reclaimer never removes a ring whose creator still holds it
//!   (creating, initialising or using it), nor one another reclaimer is
//!   judging (its `LOCK_EX` fails: the caller opens, or retries);
//! - a reclaimer removes the name only if it still names the very file it
//!   locked and judged (device and inode compared again), so it cannot hit
//!   a ring created meanwhile under the same name;
//! - a creator that was not quick enough to lock its new file (a reclaimer
//!   removed it first) sees that the name no longer names its file and
//!   reports [`Error::AlreadyExists`]: the name belongs to the ring created
//!   after it.
//!
//! A lock belongs to an open file description, which `fork` and fd passing
//! share: a forked child that keeps the creator's descriptor makes the ring
//! look held. That errs on the safe side (the ring is not reclaimed), and
//! liveness itself is never judged by locks (see `crate::liveness`).
//!
//! A System V segment has no file and `shmctl(IPC_RMID)` takes the id, not
//! the key: a reclaimer removes by the id it judged, which names that one
//! segment only (a new segment under the key has another id).
//!
//! # References
//!  - [flock(2)](https://man7.org/linux/man-pages/man2/flock.2.html)

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::fs::{self as rfs, FileType, FlockOperation};
use rustix::io::Errno;

use super::{file, posix_shm, sysv, Segment};
use crate::address::Address;
use crate::error::Error;

impl Segment {
    /// The creator's lock: `LOCK_SH` on the descriptor that created the
    /// file, polled for up to `timeout` (a reclaimer may hold `LOCK_EX` on
    /// it for a moment), then a check that `address` still names this
    /// segment. Nothing to do for segments without a file.
    pub(super) fn hold_creator_lock(
        &self,
        address: &Address,
        timeout: Duration,
    ) -> Result<(), Error> {
        let (Some(fd), Some(_)) = (self.fd(), self.path()) else {
            return Ok(());
        };
        let label = address.to_string();
        let deadline = Instant::now() + timeout;
        let mut sleep = Duration::from_micros(100);
        loop {
            match rfs::flock(fd, FlockOperation::NonBlockingLockShared) {
                Ok(()) => break,
                Err(Errno::WOULDBLOCK) | Err(Errno::INTR) if Instant::now() < deadline => {
                    std::thread::sleep(sleep);
                    sleep = (sleep * 2).min(Duration::from_millis(10));
                }
                Err(Errno::WOULDBLOCK) => return Err(Error::AlreadyExists { address: label }),
                Err(e) => return Err(Error::from_errno("flock", &label, e)),
            }
        }
        if !super::still_names(address, self) {
            // A reclaimer took our fresh file for a stale one and removed
            // it; the name is free or someone else's now.
            return Err(Error::AlreadyExists { address: label });
        }
        Ok(())
    }
}

/// What a reclaimer holds while it judges a ring: the lock on its file, or
/// the System V id.
#[derive(Debug)]
pub(crate) struct ReclaimLock {
    address: Address,
    held: Held,
}

#[derive(Debug)]
enum Held {
    File { fd: OwnedFd, path: PathBuf },
    SysV { id: i32 },
}

/// The outcome of trying to lock a name for reclaiming.
#[derive(Debug)]
pub(crate) enum TryReclaim {
    /// Locked: judge the ring, then [`ReclaimLock::unlink`] it if stale.
    Locked(ReclaimLock),
    /// Its creator holds it, or another reclaimer is judging it.
    Busy,
    /// Nothing is there any more.
    Gone,
}

/// Locks the segment `address` names for reclaiming (see the module docs).
/// Refuses a symlink or anything but a regular file, as every open does.
pub(crate) fn lock_for_reclaim(address: &Address) -> Result<TryReclaim, Error> {
    let label = address.to_string();
    let path = match address {
        Address::Shm(name) => match posix_shm::find(name) {
            Some(p) => p,
            None => return Ok(TryReclaim::Gone),
        },
        Address::File(p) => p.clone(),
        Address::SysV(key) => {
            let k = sysv::sysv_key(key, &label)?;
            return match sysv::open(k) {
                Ok(id) => Ok(TryReclaim::Locked(ReclaimLock {
                    address: address.clone(),
                    held: Held::SysV { id },
                })),
                Err(Errno::NOENT) => Ok(TryReclaim::Gone),
                Err(e) => Err(Error::from_errno("shmget", &label, e)),
            };
        }
    };
    let fd = match file::open(&path, true) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(TryReclaim::Gone),
        Err(e) => return Err(Error::from_errno("open", &label, e)),
    };
    let st = rfs::fstat(&fd).map_err(|e| Error::from_errno("fstat", &label, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Error::NotARegularFile { address: label });
    }
    match rfs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => return Ok(TryReclaim::Busy),
        Err(e) => return Err(Error::from_errno("flock", &label, e)),
    }
    Ok(TryReclaim::Locked(ReclaimLock {
        address: address.clone(),
        held: Held::File { fd, path },
    }))
}

impl ReclaimLock {
    /// Whether the address still names the locked segment.
    pub(crate) fn still_named(&self) -> bool {
        match &self.held {
            Held::File { fd, path } => match (rfs::fstat(fd.as_fd()), rfs::lstat(path)) {
                (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
                _ => false,
            },
            Held::SysV { id } => match &self.address {
                Address::SysV(key) => sysv::key_of(key).and_then(sysv::open) == Ok(*id),
                _ => false,
            },
        }
    }

    /// The kernel's record of who created a System V segment
    /// (`shm_cpid`); `None` for files.
    pub(crate) fn sysv_creator(&self) -> Option<u32> {
        match self.held {
            Held::SysV { id } => sysv::stat(id).ok().map(|s| s.cpid),
            Held::File { .. } => None,
        }
    }

    /// Removes the name if it still names the locked segment. `Ok(false)`:
    /// it names another one now (or nothing), which is left alone.
    pub(crate) fn unlink(self) -> Result<bool, Error> {
        let label = self.address.to_string();
        if !self.still_named() {
            return Ok(false);
        }
        match &self.held {
            Held::File { path, .. } => match rfs::unlink(path) {
                Ok(()) => Ok(true),
                Err(Errno::NOENT) => Ok(false),
                Err(e) => Err(Error::from_errno("remove", &label, e)),
            },
            Held::SysV { id } => match sysv::remove(*id) {
                Ok(()) => Ok(true),
                // Removed by someone else first.
                Err(Errno::INVAL | Errno::IDRM) => Ok(false),
                Err(e) => Err(Error::from_errno("remove", &label, e)),
            },
        }
        // The lock goes with the descriptor, after the name.
    }
}
