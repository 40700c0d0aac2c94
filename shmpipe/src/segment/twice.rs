//! A segment's slot area mapped twice, back to back, so that a message
//! running across the end of the ring is one run of addresses
//! (`docs/design.md` §2, "The wrap").
//!
//! ```text
//! reservation:  | header | slot area | slot area again |
//! file offset:    0        offset      offset..offset+area (a second time)
//! ```
//!
//! One `mmap(PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS)` reserves the whole
//! range (aligned to the page size, which huge pages need), then the
//! segment is mapped over it with `MAP_FIXED|MAP_SHARED`: the header and
//! area at the start, the area again right after. System V cannot map at a
//! file offset, so there the whole segment is attached (`shmat` with
//! `SHM_REMAP`) at `start + area` first and then at `start`: the second
//! attach covers the first one's header, and what remains of the first is
//! its slot area, right after the second's. The whole reservation is
//! unmapped with one `munmap` on drop (it unmaps System V attaches too, as
//! `shmdt` would).

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use rustix::io::Errno;
use rustix::mm::{self, MapFlags, ProtFlags};

/// The reserved range holding both mappings, unmapped as a whole on drop.
#[derive(Debug)]
pub(crate) struct Twice {
    base: NonNull<u8>,
    /// Bytes reserved: `offset + 2 * area`.
    reserved: usize,
    /// Bytes of the first mapping (`offset + area`), what the segment's
    /// `len` reports.
    primary: usize,
}

// SAFETY: the range is plain shared memory owned by this value; all
// concurrent access to it goes through atomics or the ring protocol.
unsafe impl Send for Twice {}
// SAFETY: as above; `&Twice` only hands out the address.
unsafe impl Sync for Twice {}

/// What to map twice: `offset` bytes of header, then `area` bytes mapped
/// twice; both multiples of `align` (the page size).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) offset: usize,
    pub(crate) area: usize,
    pub(crate) align: usize,
    pub(crate) read_only: bool,
    pub(crate) populate: bool,
}

impl Plan {
    fn prot(&self) -> ProtFlags {
        if self.read_only {
            ProtFlags::READ
        } else {
            ProtFlags::READ | ProtFlags::WRITE
        }
    }

    fn reserved(&self) -> Result<usize, Errno> {
        self.area
            .checked_mul(2)
            .and_then(|a| a.checked_add(self.offset))
            .ok_or(Errno::NOMEM)
    }
}

impl Twice {
    /// Reserves `plan.reserved()` bytes of address space, aligned to
    /// `plan.align`, with nothing accessible in it yet.
    fn reserve(plan: &Plan) -> Result<Twice, Errno> {
        if plan.area == 0
            || !plan.align.is_power_of_two()
            || plan.offset % plan.align != 0
            || plan.area % plan.align != 0
        {
            return Err(Errno::INVAL);
        }
        let reserved = plan.reserved()?;
        let base_page = rustix::param::page_size();
        let slack = plan.align.saturating_sub(base_page);
        let want = reserved.checked_add(slack).ok_or(Errno::NOMEM)?;
        // SAFETY: a new private, inaccessible anonymous mapping at an
        // address the kernel picks; it overlaps nothing of ours.
        let p = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                want,
                ProtFlags::empty(),
                MapFlags::PRIVATE,
            )
        }?;
        let start = p as usize;
        let aligned = (start + plan.align - 1) & !(plan.align - 1);
        let (head, tail) = (aligned - start, want - (aligned - start) - reserved);
        // SAFETY: both trimmed pieces lie inside the reservation just made
        // and are whole base pages (the slack is a multiple of them); nothing
        // else uses them.
        unsafe {
            if head > 0 {
                let _ = mm::munmap(p, head);
            }
            if tail > 0 {
                let _ = mm::munmap((aligned + reserved) as *mut _, tail);
            }
        }
        Ok(Twice {
            base: NonNull::new(aligned as *mut u8).ok_or(Errno::NOMEM)?,
            reserved,
            primary: plan.offset + plan.area,
        })
    }

    /// Maps `fd` (at least `offset + area` bytes) as the plan says.
    pub(crate) fn map_fd(fd: BorrowedFd<'_>, plan: &Plan) -> Result<Twice, Errno> {
        let t = Twice::reserve(plan)?;
        let mut flags = MapFlags::SHARED | MapFlags::FIXED;
        if plan.populate {
            flags |= MapFlags::POPULATE;
        }
        let second = t.base.as_ptr().wrapping_add(t.primary);
        // SAFETY: both targets lie inside `t`'s reservation, which this
        // process made and nothing else uses, so MAP_FIXED replaces only
        // it; offsets and lengths are multiples of the page size (checked
        // in `reserve`). On error `t` is dropped and unmaps everything.
        unsafe {
            mm::mmap(t.base.as_ptr().cast(), t.primary, plan.prot(), flags, fd, 0)?;
            mm::mmap(
                second.cast(),
                plan.area,
                plan.prot(),
                flags,
                fd,
                plan.offset as u64,
            )?;
        }
        Ok(t)
    }

    /// Attaches the System V segment `id`, whose attached size is
    /// exactly `offset + area`, as the plan says.
    pub(crate) fn attach_sysv(id: i32, plan: &Plan) -> Result<Twice, Errno> {
        let t = Twice::reserve(plan)?;
        let mut flags = libc::SHM_REMAP;
        if plan.read_only {
            flags |= libc::SHM_RDONLY;
        }
        for at in [plan.area, 0] {
            let addr = t.base.as_ptr().wrapping_add(at);
            // SAFETY: the attach covers `addr .. addr + offset + area`,
            // inside `t`'s reservation (`at + offset + area <= reserved`),
            // which this process made and nothing else uses, so SHM_REMAP
            // replaces only it. The address is aligned to the page size.
            let p = unsafe { libc::shmat(id, addr.cast(), flags) };
            if p as isize == -1 {
                return Err(Errno::from_raw_os_error(
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                ));
            }
        }
        Ok(t)
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Bytes of the first mapping (header and area).
    pub(crate) fn len(&self) -> usize {
        self.primary
    }
}

impl Drop for Twice {
    fn drop(&mut self) {
        // SAFETY: the range is this value's own reservation and everything
        // mapped into it; nothing points into it once its owner is dropped.
        // Its ends are aligned to the page size, so no huge-page mapping is
        // split (that would fail with EINVAL and leak it).
        let _ = unsafe { mm::munmap(self.base.as_ptr().cast(), self.reserved) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(not(miri))]
    use std::os::fd::AsFd;

    #[cfg(not(miri))]
    fn maps_overlapping(base: usize, len: usize) -> usize {
        let text = std::fs::read_to_string("/proc/self/maps").unwrap();
        text.lines()
            .filter(|l| {
                let r = l.split_whitespace().next().unwrap();
                let (a, b) = r.split_once('-').unwrap();
                let (a, b) = (
                    usize::from_str_radix(a, 16).unwrap(),
                    usize::from_str_radix(b, 16).unwrap(),
                );
                a < base + len && b > base
            })
            .count()
    }

    // Miri cannot make memfds or shared mappings.
    #[cfg(not(miri))]
    #[test]
    fn second_half_mirrors_the_area_and_drop_unmaps_all() {
        let page = rustix::param::page_size();
        let fd = rustix::fs::memfd_create("twice-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 3 * page as u64).unwrap();
        let plan = Plan {
            offset: page,
            area: 2 * page,
            align: page,
            read_only: false,
            populate: false,
        };
        let t = Twice::map_fd(fd.as_fd(), &plan).unwrap();
        let (base, reserved) = (t.as_ptr() as usize, t.reserved);
        assert_eq!(reserved, 5 * page);
        // SAFETY: all inside the two mappings just made.
        unsafe {
            let p = t.as_ptr();
            p.add(page).write_volatile(7);
            p.add(3 * page - 1).write_volatile(9);
            assert_eq!(p.add(3 * page).read_volatile(), 7);
            assert_eq!(p.add(5 * page - 1).read_volatile(), 9);
            p.add(4 * page).write_volatile(5);
            assert_eq!(p.add(2 * page).read_volatile(), 5);
        }
        assert!(maps_overlapping(base, reserved) >= 2);
        drop(t);
        assert_eq!(maps_overlapping(base, reserved), 0, "all unmapped");
    }

    #[test]
    fn bad_plans_are_refused() {
        let page = rustix::param::page_size();
        let bad = Plan {
            offset: 100,
            area: page,
            align: page,
            read_only: false,
            populate: false,
        };
        assert_eq!(Twice::reserve(&bad).unwrap_err(), Errno::INVAL);
        let empty = Plan {
            offset: page,
            area: 0,
            ..bad
        };
        assert_eq!(Twice::reserve(&empty).unwrap_err(), Errno::INVAL);
    }
}
