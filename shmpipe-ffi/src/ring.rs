//! `shmpipe_ring_*`: creating, opening, inspecting and removing rings, and
//! claiming their sides.

use std::ffi::{c_char, c_int, CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

use shmpipe::{Backend, HugePages, Ring, RingBuilder, RingInfo, SideInfo, SideState, WaitStrategy};

use crate::guard::{guard, guard_value, guard_void, nanos, store, Fail};
use crate::*;

/// A mapped ring (opaque). Made by `shmpipe_ring_create*` or
/// `shmpipe_ring_open*`, freed by `shmpipe_ring_close`.
pub struct shmpipe_ring {
    ring: Ring,
    /// `shm:NAME`, `file:PATH`, `sysv:KEY`, `memfd:NAME`, ...
    address: CString,
    /// Why huge pages were preferred and not used, as the creator saw it.
    fallback: Option<CString>,
}

/// Options for creating or opening a ring. Start from
/// `shmpipe_options_default()` and change the fields you need; the
/// geometry fields (`slots` to `reclaim_stale`, `message_limit`,
/// `payload_align`) apply only when creating, and when opening with
/// `check_geometry`.
///
/// ABI: the struct is not versioned. Fields are only ever added at its
/// end (this version added `open_or_create` to `payload_align`); a program
/// built against an older `shmpipe.h` must be rebuilt before it runs with
/// a library that has more fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct shmpipe_options {
    /// Number of slots: a power of two, at most 2^32 (default 1024).
    pub slots: u64,
    /// Bytes per slot, including its 16-byte header: a multiple of 64, at
    /// most 1 GiB (default 256). Ignored when `max_message` is not 0.
    pub slot_size: u64,
    /// If not 0: the slot size becomes the smallest that carries messages
    /// of `max_message` bytes in one slot (default 0). Larger messages still
    /// go, over several slots, up to `message_limit`.
    pub max_message: u64,
    /// `SHMPIPE_HUGE_PAGES_NEVER` (default), `_PREFER` or `_REQUIRE`.
    pub huge_pages: c_int,
    /// Huge page size in bytes (2 MiB or 1 GiB); 0: the system default.
    pub huge_page_size: u64,
    /// Permission bits of a new segment, applied exactly whatever the
    /// umask (default 0600: owner only).
    pub mode: u32,
    /// Non-zero: pre-fault every page when mapping (default 0).
    pub populate: c_int,
    /// Non-zero: lock the pages in memory with `mlock` (default 0).
    pub lock_memory: c_int,
    /// Non-zero: creating over an existing ring whose creator and holders
    /// are all dead replaces it (default 0: `SHMPIPE_ALREADY_EXISTS`).
    pub reclaim_stale: c_int,
    /// Non-zero: remove the ring's name once the created ring handle and
    /// every handle claimed from it are closed (default 0: the ring stays
    /// until `shmpipe_ring_remove`).
    pub unlink_on_close: c_int,
    /// How blocking calls wait: `SHMPIPE_WAIT_SPIN_THEN_PARK` (default),
    /// `SHMPIPE_WAIT_SPIN` or `SHMPIPE_WAIT_PARK`. Applies to the handles
    /// claimed through this ring handle, in this process.
    pub wait: c_int,
    /// With `SHMPIPE_WAIT_SPIN_THEN_PARK`: how long to spin before sleeping,
    /// in nanoseconds (default 50000).
    pub spin_ns: u64,
    /// How often a blocked call checks that its peer lives, in nanoseconds
    /// (default 100 ms; at least 1 ms).
    pub heartbeat_ns: u64,
    /// How long opening waits for a creator still initialising the ring, in
    /// nanoseconds (default 1 s).
    pub open_timeout_ns: u64,
    /// Non-zero: `shmpipe_ring_create_with` and `shmpipe_ring_open_with`
    /// open the ring if it exists and create it if not, as
    /// `shmpipe_ring_open_or_create` (default 0).
    pub open_or_create: c_int,
    /// If not 0: opening waits up to this many nanoseconds for a ring that
    /// does not exist yet (a client started before its server), looking
    /// again every few milliseconds, then fails with `SHMPIPE_NOT_FOUND`
    /// (default 0: `SHMPIPE_NOT_FOUND` at once).
    pub wait_for_creation_ns: u64,
    /// Non-zero: opening (and `open_or_create` finding a ring) refuses a
    /// ring whose slot count or slot size differs from `slots` and
    /// `slot_size` (or the slot size `max_message` gives) with
    /// `SHMPIPE_GEOMETRY_MISMATCH`; `shmpipe_last_error()` names both
    /// geometries (default 0: any geometry is opened; read it with
    /// `shmpipe_ring_info`).
    pub check_geometry: c_int,
    /// The largest message the ring accepts, over any number of
    /// consecutive slots; 0: what the ring holds (`slots * slot_size - 16`,
    /// the default). Above that, creating fails with
    /// `SHMPIPE_INVALID_ARGUMENT`.
    pub message_limit: u64,
    /// Every payload starts at a multiple of this many bytes: a power of
    /// two from 8 to 4096 (above 64 it must divide the slot size); 0: 16,
    /// the default.
    pub payload_align: u64,
}

/// The default options (1024 slots of 256 bytes, base pages, mode 0600,
/// spin 50 µs then park, 100 ms heartbeat, 1 s open timeout).
#[no_mangle]
pub extern "C" fn shmpipe_options_default() -> shmpipe_options {
    // Plain constants: cannot panic, so no guard is needed to keep an
    // unwind from leaving.
    shmpipe_options {
        slots: shmpipe::DEFAULT_SLOTS,
        slot_size: shmpipe::DEFAULT_SLOT_SIZE,
        max_message: 0,
        huge_pages: SHMPIPE_HUGE_PAGES_NEVER,
        huge_page_size: 0,
        mode: 0o600,
        populate: 0,
        lock_memory: 0,
        reclaim_stale: 0,
        unlink_on_close: 0,
        wait: SHMPIPE_WAIT_SPIN_THEN_PARK,
        spin_ns: 50_000,
        heartbeat_ns: 100_000_000,
        open_timeout_ns: 1_000_000_000,
        open_or_create: 0,
        wait_for_creation_ns: 0,
        check_geometry: 0,
        message_limit: 0,
        payload_align: 0,
    }
}

impl shmpipe_options {
    pub(crate) fn builder(&self) -> Result<RingBuilder, Fail> {
        let mut b = RingBuilder::new();
        b.slots(self.slots).slot_size(self.slot_size);
        if self.max_message != 0 {
            b.max_message(self.max_message);
        }
        // The options always carry a geometry (the defaults at least): it
        // is checked on open only when asked for.
        b.accept_any_geometry(self.check_geometry == 0);
        if self.message_limit != 0 {
            b.message_limit(self.message_limit);
        }
        if self.payload_align != 0 {
            b.payload_align(self.payload_align);
        }
        if let Some(d) = nanos(self.wait_for_creation_ns) {
            b.wait_for_creation(d);
        }
        b.huge_pages(match self.huge_pages {
            SHMPIPE_HUGE_PAGES_NEVER => HugePages::Never,
            SHMPIPE_HUGE_PAGES_PREFER => HugePages::Prefer,
            SHMPIPE_HUGE_PAGES_REQUIRE => HugePages::Require,
            other => {
                return Err(Fail::new(
                    SHMPIPE_INVALID_ARGUMENT,
                    format!(
                        "shmpipe_options.huge_pages is {other}: use SHMPIPE_HUGE_PAGES_NEVER, \
                         _PREFER or _REQUIRE"
                    ),
                ))
            }
        });
        if self.huge_page_size != 0 {
            b.huge_page_size(self.huge_page_size);
        }
        b.mode(self.mode)
            .populate(self.populate != 0)
            .lock_memory(self.lock_memory != 0)
            .reclaim_stale(self.reclaim_stale != 0)
            .unlink_on_drop(self.unlink_on_close != 0);
        b.wait_strategy(match self.wait {
            SHMPIPE_WAIT_SPIN_THEN_PARK => WaitStrategy::SpinThenPark {
                spin: std::time::Duration::from_nanos(self.spin_ns),
            },
            SHMPIPE_WAIT_SPIN => WaitStrategy::Spin,
            SHMPIPE_WAIT_PARK => WaitStrategy::Park,
            other => {
                return Err(Fail::new(
                    SHMPIPE_INVALID_ARGUMENT,
                    format!(
                        "shmpipe_options.wait is {other}: use SHMPIPE_WAIT_SPIN_THEN_PARK, \
                         SHMPIPE_WAIT_SPIN or SHMPIPE_WAIT_PARK"
                    ),
                ))
            }
        });
        if let Some(d) = nanos(self.heartbeat_ns) {
            b.heartbeat(d);
        }
        if let Some(d) = nanos(self.open_timeout_ns) {
            b.open_timeout(d);
        }
        Ok(b)
    }
}

/// The options behind `opts`, or the defaults for NULL.
///
/// # Safety
///
/// `opts` is NULL or points to a valid `shmpipe_options`.
pub(crate) unsafe fn options(opts: *const shmpipe_options) -> shmpipe_options {
    // SAFETY: NULL or valid, by the caller's contract.
    match unsafe { opts.as_ref() } {
        Some(o) => *o,
        None => shmpipe_options_default(),
    }
}

/// The UTF-8 text of a C string argument.
///
/// # Safety
///
/// `s` is NULL or a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn text<'a>(s: *const c_char, what: &str) -> Result<&'a str, Fail> {
    if s.is_null() {
        return Err(Fail::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let s = unsafe { CStr::from_ptr(s) };
    s.to_str().map_err(|_| {
        Fail::new(
            SHMPIPE_INVALID_ARGUMENT,
            format!("`{what}` is not valid UTF-8: {}", s.to_string_lossy()),
        )
    })
}

/// Checks `out` and boxes `ring` into a handle.
fn hand_out(ring: Ring, out: *mut *mut shmpipe_ring) -> Result<(), Fail> {
    let info = ring.info();
    let handle = Box::new(shmpipe_ring {
        address: CString::new(info.address).unwrap_or_default(),
        fallback: info
            .huge_page_fallback
            .map(|f| CString::new(f).unwrap_or_default()),
        ring,
    });
    // SAFETY: the callers checked `out` for NULL; it is valid for a write by
    // the public functions' contract.
    unsafe { out.write(Box::into_raw(handle)) };
    Ok(())
}

fn check_out<T>(out: *mut *mut T) -> Result<(), Fail> {
    if out.is_null() {
        return Err(Fail::null("out"));
    }
    // SAFETY: non-NULL and valid for writes by the callers' contract; NULL
    // until a handle is made, so a failed call leaves no dangling pointer.
    unsafe { out.write(ptr::null_mut()) };
    Ok(())
}

/// Creates a ring at `address` (`shm:NAME` or `NAME`, `file:PATH`,
/// `sysv:KEY`, `sysv:PATH:ID`) with `slots` slots (a power of two) for
/// messages of up to `max_message` bytes, and the default options. An
/// existing ring is never clobbered (`SHMPIPE_ALREADY_EXISTS`).
///
/// On success `*out` is a new ring handle, to be closed with
/// `shmpipe_ring_close`; on failure it is NULL.
///
/// # Safety
///
/// `address` is NULL or a NUL-terminated string; `out` is NULL or valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_create(
    address: *const c_char,
    slots: u64,
    max_message: u64,
    out: *mut *mut shmpipe_ring,
) -> c_int {
    let mut opts = shmpipe_options_default();
    opts.slots = slots;
    opts.max_message = max_message;
    // SAFETY: forwarded contract; `opts` is a local.
    unsafe { shmpipe_ring_create_with(address, &opts, out) }
}

/// Creates a ring at `address` with the options `opts` (NULL: the
/// defaults). See `shmpipe_ring_create`.
///
/// # Safety
///
/// `address` is NULL or a NUL-terminated string; `opts` is NULL or valid;
/// `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_create_with(
    address: *const c_char,
    opts: *const shmpipe_options,
    out: *mut *mut shmpipe_ring,
) -> c_int {
    guard(|| {
        check_out(out)?;
        // SAFETY: forwarded contract.
        let address = unsafe { text(address, "address") }?;
        // SAFETY: forwarded contract.
        let o = unsafe { options(opts) };
        let b = o.builder()?;
        let ring = if o.open_or_create != 0 {
            b.open_or_create(address)?
        } else {
            b.create(address)?
        };
        hand_out(ring, out)
    })
}

/// Creates a ring in an anonymous memfd named `name` (the name is only a
/// label, shown in `/proc/PID/fd`). A child made by `fork` inherits the
/// mapping and may claim a side of the same handle; an unrelated process
/// gets it by `shmpipe_ring_fd` passed over a UNIX socket and
/// `shmpipe_ring_open_fd`. `opts` may be NULL (the defaults).
///
/// # Safety
///
/// As `shmpipe_ring_create_with`.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_create_memfd(
    name: *const c_char,
    opts: *const shmpipe_options,
    out: *mut *mut shmpipe_ring,
) -> c_int {
    guard(|| {
        check_out(out)?;
        // SAFETY: forwarded contract.
        let name = unsafe { text(name, "name") }?;
        // SAFETY: forwarded contract.
        let ring = unsafe { options(opts) }.builder()?.create_memfd(name)?;
        hand_out(ring, out)
    })
}

/// Creates a ring in this process's memory, for threads of one process (the
/// ring code is the same as for shared memory; nothing is named or mapped).
/// `opts` may be NULL (the defaults).
///
/// # Safety
///
/// `opts` is NULL or valid; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_create_in_process(
    opts: *const shmpipe_options,
    out: *mut *mut shmpipe_ring,
) -> c_int {
    guard(|| {
        check_out(out)?;
        // SAFETY: forwarded contract.
        let ring = unsafe { options(opts) }.builder()?.create_in_process()?;
        hand_out(ring, out)
    })
}

/// Opens the existing ring at `address`, validating its header (its
/// geometry comes from the ring).
///
/// # Safety
///
/// `address` is NULL or a NUL-terminated string; `out` is NULL or valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_open(
    address: *const c_char,
    out: *mut *mut shmpipe_ring,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmpipe_ring_open_with(address, ptr::null(), out) }
}

/// Opens the existing ring at `address` with the wait, heartbeat, open
/// timeout and `wait_for_creation_ns` settings of `opts` (NULL: the
/// defaults). The geometry fields are ignored unless `check_geometry` is
/// set (then a ring of another geometry is `SHMPIPE_GEOMETRY_MISMATCH`);
/// with `open_or_create` set, a missing ring is created from them.
///
/// # Safety
///
/// As `shmpipe_ring_create_with`.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_open_with(
    address: *const c_char,
    opts: *const shmpipe_options,
    out: *mut *mut shmpipe_ring,
) -> c_int {
    guard(|| {
        check_out(out)?;
        // SAFETY: forwarded contract.
        let address = unsafe { text(address, "address") }?;
        // SAFETY: forwarded contract.
        let o = unsafe { options(opts) };
        let b = o.builder()?;
        let ring = if o.open_or_create != 0 {
            b.open_or_create(address)?
        } else {
            b.open(address)?
        };
        hand_out(ring, out)
    })
}

/// Opens the ring at `address` if it exists, or creates it from `opts`
/// (NULL: the defaults) if not, so that peers can start in any order: of
/// any number of processes calling this at once on one name, exactly one
/// creates the ring (`shmpipe_ring_created` says which) and the others open
/// that same ring, waiting for its creator to finish initialising it (up
/// to `open_timeout_ns`). A ring that exists is opened as it is, checked
/// against the options' geometry when `check_geometry` is set
/// (`SHMPIPE_GEOMETRY_MISMATCH`); with `reclaim_stale` a stale one (its
/// creator and every holder dead) is replaced instead.
///
/// Returns `SHMPIPE_OK`, the statuses of `shmpipe_ring_create_with` (never
/// `SHMPIPE_ALREADY_EXISTS`) and `shmpipe_ring_open_with`, or
/// `SHMPIPE_NOT_FOUND` when the ring vanished between creating and
/// opening it many times in a row.
///
/// # Safety
///
/// As `shmpipe_ring_create_with`.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_open_or_create(
    address: *const c_char,
    opts: *const shmpipe_options,
    out: *mut *mut shmpipe_ring,
) -> c_int {
    guard(|| {
        check_out(out)?;
        // SAFETY: forwarded contract.
        let address = unsafe { text(address, "address") }?;
        // SAFETY: forwarded contract.
        let ring = unsafe { options(opts) }
            .builder()?
            .open_or_create(address)?;
        hand_out(ring, out)
    })
}

/// 1 if this ring handle created the ring (`shmpipe_ring_create*`, or the
/// winner of `shmpipe_ring_open_or_create`), 0 if it opened an existing one
/// or `ring` is NULL.
///
/// # Safety
///
/// `ring` is NULL or a live ring handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_created(ring: *const shmpipe_ring) -> c_int {
    guard_value(0, || {
        // SAFETY: NULL or live, by the contract.
        unsafe { ring.as_ref() }.map_or(0, |r| c_int::from(r.ring.created()))
    })
}

/// Opens the ring behind the file descriptor `fd` (a memfd received over a
/// socket or inherited). The descriptor is duplicated: the caller keeps
/// `fd` and closes it when it likes. `opts` as for `shmpipe_ring_open_with`.
///
/// # Safety
///
/// `opts` is NULL or valid; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_open_fd(
    fd: c_int,
    opts: *const shmpipe_options,
    out: *mut *mut shmpipe_ring,
) -> c_int {
    guard(|| {
        check_out(out)?;
        // SAFETY: fcntl(F_GETFD) on any integer is harmless; it tells
        // whether `fd` is an open descriptor before it is borrowed.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Fail::new(
                SHMPIPE_INVALID_ARGUMENT,
                format!("file descriptor {fd} is not open"),
            ));
        }
        // SAFETY: `fd` is open (checked above) and stays open for this call;
        // it is only duplicated, never closed here.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let owned = borrowed
            .try_clone_to_owned()
            .map_err(|e| Fail::new(SHMPIPE_IO, format!("duplicating descriptor {fd}: {e}")))?;
        // SAFETY: forwarded contract.
        let ring = unsafe { options(opts) }.builder()?.open_fd(owned)?;
        hand_out(ring, out)
    })
}

/// Checks a ring handle pointer.
///
/// # Safety
///
/// `ring` is NULL or a live handle from this library.
unsafe fn ring_ref<'a>(ring: *const shmpipe_ring) -> Result<&'a shmpipe_ring, Fail> {
    // SAFETY: NULL or live, by the caller's contract.
    unsafe { ring.as_ref() }.ok_or_else(|| Fail::null("ring"))
}

/// Stores the file descriptor behind the ring in `*fd` (memfd, POSIX shm
/// and file rings; `SHMPIPE_UNSUPPORTED` for System V). The descriptor is
/// owned by the ring handle: do not close it, and `dup` it to keep it past
/// `shmpipe_ring_close`.
///
/// # Safety
///
/// `ring` is NULL or a live ring handle; `fd` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_fd(ring: *const shmpipe_ring, fd: *mut c_int) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let r = unsafe { ring_ref(ring) }?;
        if fd.is_null() {
            return Err(Fail::null("fd"));
        }
        match r.ring.fd() {
            // SAFETY: non-NULL, valid for a write by the contract.
            Some(f) => unsafe { fd.write(f.as_raw_fd()) },
            None => {
                return Err(Fail::new(
                    SHMPIPE_UNSUPPORTED,
                    format!(
                        "ring {} has no file descriptor",
                        r.address.to_string_lossy()
                    ),
                ))
            }
        }
        Ok(())
    })
}

/// The ring's address (`shm:NAME`, `file:PATH`, `sysv:KEY`, `memfd:NAME`),
/// owned by the ring handle and valid until `shmpipe_ring_close`; NULL for
/// a NULL ring.
///
/// # Safety
///
/// `ring` is NULL or a live ring handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_address(ring: *const shmpipe_ring) -> *const c_char {
    guard_value(ptr::null(), || {
        // SAFETY: forwarded contract.
        match unsafe { ring.as_ref() } {
            Some(r) => r.address.as_ptr(),
            None => ptr::null(),
        }
    })
}

/// Why huge pages were preferred (`SHMPIPE_HUGE_PAGES_PREFER`) but not
/// used, as the creating process saw it; NULL if they were used, not asked
/// for, or `ring` is NULL. Owned by the ring handle, valid until
/// `shmpipe_ring_close`.
///
/// # Safety
///
/// `ring` is NULL or a live ring handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_huge_page_fallback(
    ring: *const shmpipe_ring,
) -> *const c_char {
    guard_value(ptr::null(), || {
        // SAFETY: forwarded contract.
        match unsafe { ring.as_ref() }.and_then(|r| r.fallback.as_ref()) {
            Some(f) => f.as_ptr(),
            None => ptr::null(),
        }
    })
}

/// Counters kept by one side of a ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct shmpipe_stats {
    /// Messages sent (producer) or received (consumer).
    pub messages: u64,
    /// Payload bytes sent or received.
    pub bytes: u64,
    /// Operations that found the ring full (producer) or empty (consumer).
    pub stalls: u64,
    /// Times this side slept on its futex.
    pub futex_waits: u64,
    /// Times this side woke its sleeping peer.
    pub futex_wakes: u64,
    /// Spin iterations spent waiting before sleeping.
    pub spin_rounds: u64,
}

/// One side of a ring, in `shmpipe_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct shmpipe_side_info {
    /// `SHMPIPE_SIDE_VACANT`, `_ATTACHED`, `_CLOSED` or `_INVALID`.
    pub state: c_int,
    /// The holder's (or last holder's) process id; 0 if none.
    pub pid: u32,
    /// Non-zero if the holder's process is alive (zombies count as dead).
    pub alive: c_int,
    /// Non-zero if this side sleeps (or is about to sleep) on its futex.
    pub parked: c_int,
    /// Its counters.
    pub stats: shmpipe_stats,
}

/// A snapshot of a ring, from `shmpipe_ring_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct shmpipe_info {
    /// `SHMPIPE_BACKEND_POSIX_SHM`, `_FILE`, `_MEMFD`, `_SYSV`, `_HEAP` or
    /// `_OTHER`.
    pub backend: c_int,
    /// Permission bits of the segment; -1 if unknown.
    pub mode: i32,
    /// The System V segment id; -1 for other backends.
    pub sysv_id: i32,
    /// Non-zero if huge pages were preferred and not used
    /// (`shmpipe_ring_huge_page_fallback` says why).
    pub huge_page_fallback: c_int,
    /// Page size of the mapping in bytes (the huge page size when it has
    /// huge pages).
    pub page_size: u64,
    /// Bytes mapped (the segment, rounded up to whole pages).
    pub mapped_len: u64,
    /// Header plus slots, in bytes.
    pub total_len: u64,
    /// Number of slots.
    pub slots: u64,
    /// Bytes per slot, including the 16-byte slot header.
    pub slot_size: u64,
    /// Largest message in one slot, in bytes.
    pub max_message: u64,
    /// The consumer's position (messages released).
    pub head: u64,
    /// The producer's position (messages committed); `tail - head`
    /// messages are waiting.
    pub tail: u64,
    /// The process that created the ring.
    pub creator_pid: u32,
    /// Non-zero if that process is alive.
    pub creator_alive: c_int,
    /// The producer side.
    pub producer: shmpipe_side_info,
    /// The consumer side.
    pub consumer: shmpipe_side_info,
    /// Largest message the ring accepts, over any number of slots.
    pub message_limit: u64,
    /// Every payload starts at a multiple of this many bytes.
    pub payload_align: u64,
}

fn side_info(s: &SideInfo) -> shmpipe_side_info {
    let (state, pid, alive) = match s.state {
        SideState::Vacant => (SHMPIPE_SIDE_VACANT, 0, false),
        SideState::Attached { pid, alive } => (SHMPIPE_SIDE_ATTACHED, pid, alive),
        SideState::Closed { pid } => (SHMPIPE_SIDE_CLOSED, pid, false),
        _ => (SHMPIPE_SIDE_INVALID, 0, false),
    };
    shmpipe_side_info {
        state,
        pid,
        alive: c_int::from(alive),
        parked: c_int::from(s.parked),
        stats: shmpipe_stats {
            messages: s.stats.messages,
            bytes: s.stats.bytes,
            stalls: s.stats.stalls,
            futex_waits: s.stats.futex_waits,
            futex_wakes: s.stats.futex_wakes,
            spin_rounds: s.stats.spin_rounds,
        },
    }
}

fn info(i: &RingInfo) -> shmpipe_info {
    shmpipe_info {
        backend: match i.backend {
            Backend::PosixShm => SHMPIPE_BACKEND_POSIX_SHM,
            Backend::File => SHMPIPE_BACKEND_FILE,
            Backend::Memfd => SHMPIPE_BACKEND_MEMFD,
            Backend::SysV => SHMPIPE_BACKEND_SYSV,
            Backend::Heap => SHMPIPE_BACKEND_HEAP,
            _ => SHMPIPE_BACKEND_OTHER,
        },
        mode: i.mode.and_then(|m| i32::try_from(m).ok()).unwrap_or(-1),
        sysv_id: i.sysv_id.unwrap_or(-1),
        huge_page_fallback: c_int::from(i.huge_page_fallback.is_some()),
        page_size: i.page_size,
        mapped_len: i.mapped_len,
        total_len: i.total_len,
        slots: i.slots,
        slot_size: i.slot_size,
        max_message: i.max_message,
        head: i.head,
        tail: i.tail,
        creator_pid: i.creator_pid,
        creator_alive: c_int::from(i.creator_alive),
        producer: side_info(&i.producer),
        consumer: side_info(&i.consumer),
        message_limit: i.message_limit,
        payload_align: i.payload_align,
    }
}

/// Fills `*out` with a snapshot of the ring's geometry, indices, sides and
/// counters (what `shmpipe inspect` shows).
///
/// # Safety
///
/// `ring` is NULL or a live ring handle; `out` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_info(
    ring: *const shmpipe_ring,
    out: *mut shmpipe_info,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let r = unsafe { ring_ref(ring) }?;
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        // SAFETY: non-NULL, valid for a write by the contract.
        unsafe { out.write(info(&r.ring.info())) };
        Ok(())
    })
}

/// Claims the producer side of the ring: `*out` becomes a producer handle,
/// to be closed with `shmpipe_producer_close`. One producer per ring
/// across all processes (`SHMPIPE_ALREADY_CLAIMED`); a side left by a dead
/// process is taken over. The producer stays valid after
/// `shmpipe_ring_close`.
///
/// # Safety
///
/// `ring` is NULL or a live ring handle; `out` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_producer(
    ring: *const shmpipe_ring,
    out: *mut *mut shmpipe_producer,
) -> c_int {
    guard(|| {
        check_out(out)?;
        // SAFETY: forwarded contract.
        let r = unsafe { ring_ref(ring) }?;
        let p = shmpipe_producer::new(r.ring.producer()?);
        // SAFETY: `out` checked non-NULL above, valid by the contract.
        unsafe { out.write(p) };
        Ok(())
    })
}

/// Claims the consumer side of the ring; as `shmpipe_ring_producer`. Close
/// it with `shmpipe_consumer_close`.
///
/// # Safety
///
/// As `shmpipe_ring_producer`.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_consumer(
    ring: *const shmpipe_ring,
    out: *mut *mut shmpipe_consumer,
) -> c_int {
    guard(|| {
        check_out(out)?;
        // SAFETY: forwarded contract.
        let r = unsafe { ring_ref(ring) }?;
        let c = shmpipe_consumer::new(r.ring.consumer()?);
        // SAFETY: `out` checked non-NULL above, valid by the contract.
        unsafe { out.write(c) };
        Ok(())
    })
}

/// Removes the ring at `address`. Refuses (`SHMPIPE_IN_USE`) while a live
/// process holds its producer or consumer, unless `force` is non-zero.
/// Never removes a segment that is not a shmpipe ring. Processes that have
/// it mapped keep working; new ones can no longer open it.
///
/// # Safety
///
/// `address` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_remove(address: *const c_char, force: c_int) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let address = unsafe { text(address, "address") }?;
        Ring::remove(address, force != 0)?;
        Ok(())
    })
}

/// Closes the ring handle. Producer and consumer handles claimed from it
/// keep working; the mapping goes when the last of them is closed. NULL is
/// ignored.
///
/// # Safety
///
/// `ring` is NULL or a live ring handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_ring_close(ring: *mut shmpipe_ring) {
    guard_void(|| {
        if !ring.is_null() {
            // SAFETY: a live handle from `Box::into_raw` in `hand_out`,
            // given up by the caller.
            drop(unsafe { Box::from_raw(ring) });
        }
        Ok(())
    });
}

/// Writes `value` to `*out` for the optional out-parameters.
///
/// # Safety
///
/// `out` is NULL or valid for a write.
pub(crate) unsafe fn store_len(out: *mut usize, value: usize) {
    // SAFETY: forwarded contract.
    unsafe { store(out, value) }
}
