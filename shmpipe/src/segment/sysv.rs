//! System V shared memory: `shmget(2)`, `shmat(2)`, `shmdt(2)`,
//! `shmctl(2)`, and `ftok(3)` keys. rustix does not wrap these, so this is
//! the one module that calls them through `libc`.
//!
//! A System V segment has a fixed size from `shmget`, cannot be truncated by
//! a peer, and with `SHM_HUGETLB` comes from the huge page pool. It lives
//! until removed with `IPC_RMID` and the last process detaches.
//!
//! # References
//!  - [shmget(2)](https://man7.org/linux/man-pages/man2/shmget.2.html)
//!  - [shmop(2)](https://man7.org/linux/man-pages/man2/shmop.2.html)
//!  - [shmctl(2)](https://man7.org/linux/man-pages/man2/shmctl.2.html)

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::ptr::NonNull;

use rustix::io::Errno;

use super::huge::{huge_error, Pages};
use super::{bad_size, hugetlbfs, round_up, Backend, Memory, Segment, SegmentOptions};
use crate::address::SysvKey;
use crate::error::Error;

/// `SHM_HUGE_SHIFT` from `<linux/shm.h>` (not in the libc crate): the huge
/// page size, as log2, goes in bits 26..31 of the `shmget` flags.
const SHM_HUGE_SHIFT: i32 = 26;

fn errno() -> Errno {
    Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// The numeric key for an address: the literal, or `ftok(path, id)`.
pub(crate) fn key_of(key: &SysvKey) -> Result<i32, Errno> {
    match key {
        SysvKey::Key(k) => Ok(*k),
        SysvKey::Ftok { path, id } => {
            let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::INVAL)?;
            // SAFETY: `c` is a valid NUL-terminated string for the call.
            let k = unsafe { libc::ftok(c.as_ptr(), libc::c_int::from(*id)) };
            if k == -1 {
                Err(errno())
            } else {
                Ok(k)
            }
        }
    }
}

/// `shmget(key, len, IPC_CREAT | IPC_EXCL | mode [| SHM_HUGETLB | size])`:
/// a new segment, never an existing one.
pub(crate) fn create(key: i32, len: usize, mode: u32, huge: Option<u64>) -> Result<i32, Errno> {
    let mut flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as i32;
    if let Some(size) = huge {
        flags |= libc::SHM_HUGETLB | ((size.trailing_zeros() as i32) << SHM_HUGE_SHIFT);
    }
    // SAFETY: shmget takes no pointers.
    let id = unsafe { libc::shmget(key, len, flags) };
    if id == -1 {
        Err(errno())
    } else {
        Ok(id)
    }
}

/// `shmget(key, 0, 0)`: the id of an existing segment.
pub(crate) fn open(key: i32) -> Result<i32, Errno> {
    // SAFETY: shmget takes no pointers.
    let id = unsafe { libc::shmget(key, 0, 0) };
    if id == -1 {
        Err(errno())
    } else {
        Ok(id)
    }
}

/// What `shmctl(IPC_STAT)` reports about a segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    /// Size given to `shmget`.
    pub(crate) size: u64,
    /// Processes attached now (`shm_nattch`).
    pub(crate) nattch: u64,
    /// Permission bits.
    pub(crate) mode: u32,
    /// The owner's user id.
    pub(crate) uid: u32,
    /// The creator's process id (`shm_cpid`), recorded by the kernel.
    pub(crate) cpid: u32,
}

/// `shmctl(id, IPC_STAT)`.
pub(crate) fn stat(id: i32) -> Result<Stat, Errno> {
    // SAFETY: shmid_ds is plain data; all-zero is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds for the kernel to fill.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } == -1 {
        return Err(errno());
    }
    Ok(Stat {
        size: ds.shm_segsz as u64,
        nattch: ds.shm_nattch as u64,
        mode: u32::from(ds.shm_perm.mode) & 0o777,
        uid: ds.shm_perm.uid,
        cpid: ds.shm_cpid as u32,
    })
}

/// `shmctl(id, IPC_RMID)`: the segment is destroyed once the last process
/// detaches; its key is free at once.
pub(crate) fn remove(id: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID ignores the buffer argument.
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } == -1 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// An attached segment, detached (`shmdt`) on drop.
#[derive(Debug)]
pub(crate) struct Attach {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: the attachment is a plain address range owned by this value; all
// concurrent access to it goes through atomics or the ring protocol.
unsafe impl Send for Attach {}
// SAFETY: as above; `&Attach` only hands out the address.
unsafe impl Sync for Attach {}

impl Attach {
    /// `shmat(id, NULL, read_only ? SHM_RDONLY : 0)`; `len` is the
    /// segment's size from `stat`.
    pub(crate) fn new(id: i32, len: usize, read_only: bool) -> Result<Attach, Errno> {
        let flags = if read_only { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel choose where to attach.
        let p = unsafe { libc::shmat(id, std::ptr::null(), flags) };
        if p as isize == -1 {
            return Err(errno());
        }
        let addr = NonNull::new(p.cast::<u8>()).ok_or(Errno::FAULT)?;
        Ok(Attach { addr, len })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Attach {
    fn drop(&mut self) {
        // SAFETY: `addr` came from shmat and is detached only here.
        unsafe { libc::shmdt(self.addr.as_ptr().cast()) };
    }
}

/// A segment listed in `/proc/sysvipc/shm`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listed {
    pub(crate) key: i32,
    pub(crate) size: u64,
    /// Permission bits.
    pub(crate) mode: u32,
    /// The owner's user id.
    pub(crate) uid: u32,
}

/// Every System V segment this process can see.
pub(crate) fn list() -> Vec<Listed> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let key = f.next()?.parse::<i64>().ok()? as i32;
            // key shmid perms size cpid lpid nattch uid gid ...
            let _id = f.next()?;
            let mode = u32::from_str_radix(f.next()?, 8).ok()? & 0o777;
            let size = f.next()?.parse().ok()?;
            let uid = f.nth(3)?.parse().ok()?;
            Some(Listed {
                key,
                size,
                mode,
                uid,
            })
        })
        .collect()
}
impl Segment {
    pub(super) fn create_sysv(
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
            match create(k, len as usize, opts.mode, Some(size)) {
                Ok(id) => return Segment::attach_new(id, len, size as usize, opts, label),
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
        let id = create(k, len as usize, opts.mode, None)
            .map_err(|e| Error::from_errno("shmget", label, e))?;
        Segment::attach_new(id, len, base as usize, opts, label)
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
        let attached = Attach::new(id, len as usize, false)
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
                    populate: false,
                    lock: false,
                };
                seg.prepare(opts, label)?;
                Ok(seg)
            });
        if attached.is_err() {
            let _ = remove(id);
        }
        attached
    }

    /// Opens the System V segment with `key`.
    pub(super) fn open_sysv(
        key: &SysvKey,
        opts: &SegmentOptions,
        label: &str,
    ) -> Result<Segment, Error> {
        let k = sysv_key(key, label)?;
        let id = open(k).map_err(|e| Error::from_errno("shmget", label, e))?;
        let st = stat(id).map_err(|e| Error::from_errno("shmctl", label, e))?;
        if st.size < opts.min_len || st.size > opts.max_len.saturating_add(1 << 30) {
            return Err(bad_size(label, st.size, opts));
        }
        let a = Attach::new(id, st.size as usize, opts.read_only)
            .map_err(|e| Error::from_errno("shmat", label, e))?;
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
            populate: false,
            lock: false,
        };
        seg.prepare(opts, label)?;
        Ok(seg)
    }
}

pub(super) fn sysv_key(key: &SysvKey, label: &str) -> Result<i32, Error> {
    key_of(key).map_err(|e| match (e, key) {
        (Errno::NOENT, SysvKey::Ftok { path, .. }) => Error::InvalidAddress {
            input: label.to_owned(),
            reason: format!("the ftok path {} does not exist", path.display()),
        },
        _ => Error::from_errno("ftok", label, e),
    })
}
