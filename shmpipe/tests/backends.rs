//! One conformance suite, run against every backend (`shm`, `file`,
//! `memfd`, `sysv`), each with base pages and with huge pages.
//!
//! Every case maps the ring twice (as two processes would) plus once more
//! raw, to corrupt it from outside. Huge-page cases need a reserved pool and,
//! for `shm` and `file`, a hugetlbfs mount (`SHMPIPE_HUGETLBFS` or any in
//! `/proc/mounts`): without them they print why and skip, unless
//! `SHMPIPE_TEST_HUGEPAGES=require`, which turns the skip into a failure.

// Tests may use std atomics; the loom rule is for the library.
#![allow(clippy::disallowed_types)]

mod common;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use common::*;
use shmpipe::{Backend, Error, HugePages, Ring, RingBuilder, Side, TryRecvError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Shm,
    File,
    Memfd,
    SysV,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pages {
    Base,
    Huge,
}

const HUGE: u64 = 2 << 20;

/// Huge-page cases run one at a time, so the pool arithmetic they check is
/// not disturbed by each other.
static HUGE_LOCK: Mutex<()> = Mutex::new(());

fn meminfo(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn hugetlbfs_mount() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SHMPIPE_HUGETLBFS") {
        return Some(PathBuf::from(d));
    }
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 3 && f[2] == "hugetlbfs" && !f[3].contains("pagesize=1G"))
            .then(|| PathBuf::from(f[1]))
    })
}

/// `Ok` if huge pages can be tested for `kind`; the reason otherwise.
fn huge_ready(kind: Kind) -> Result<(), String> {
    let free = meminfo("HugePages_Free").saturating_sub(meminfo("HugePages_Rsvd"));
    if free < 4 {
        return Err(format!(
            "only {free} free huge pages (reserve some: echo 64 > /proc/sys/vm/nr_hugepages)"
        ));
    }
    if matches!(kind, Kind::Shm | Kind::File) && hugetlbfs_mount().is_none() {
        return Err(
            "no hugetlbfs mount (mount -t hugetlbfs none DIR, or set SHMPIPE_HUGETLBFS)".into(),
        );
    }
    Ok(())
}

/// Whether huge-page cases must run (CI) rather than skip.
fn huge_required() -> bool {
    std::env::var("SHMPIPE_TEST_HUGEPAGES").as_deref() == Ok("require")
}

/// A ring under test: created once, opened a second time, plus a raw
/// writable mapping of its bytes.
struct Subject {
    kind: Kind,
    pages: Pages,
    a: Ring,
    b: Ring,
    raw: RawMap,
    addr: Option<String>,
    _cleanup: Option<Cleanup>,
    _lock: Option<std::sync::MutexGuard<'static, ()>>,
}

impl Subject {
    /// `None` when the case is skipped (the reason is printed).
    fn new(kind: Kind, pages: Pages, slots: u64, slot_size: u64) -> Option<Subject> {
        Subject::with(kind, pages, slots, slot_size, true)
    }

    /// As `new`, choosing whether the creator maps the slot area twice
    /// (`RingBuilder::double_map`).
    fn with(
        kind: Kind,
        pages: Pages,
        slots: u64,
        slot_size: u64,
        double_map: bool,
    ) -> Option<Subject> {
        let lock = if pages == Pages::Huge {
            let guard = HUGE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(why) = huge_ready(kind) {
                if huge_required() {
                    panic!("huge pages required (SHMPIPE_TEST_HUGEPAGES=require) but {why}");
                }
                eprintln!("skipped {kind:?} with huge pages: {why}");
                return None;
            }
            Some(guard)
        } else {
            None
        };
        let mut b = RingBuilder::new();
        b.slots(slots).slot_size(slot_size).double_map(double_map);
        if pages == Pages::Huge {
            b.huge_pages(HugePages::Require).populate(true);
        }
        let (a, addr, cleanup) = match kind {
            Kind::Memfd => {
                let name = unique("conf-memfd").replace("shm:", "");
                (
                    b.create_memfd(&name).unwrap(),
                    Some(format!("memfd:{name}")),
                    None,
                )
            }
            _ => {
                let addr = match kind {
                    Kind::Shm => unique("conf"),
                    Kind::File => {
                        let dir = if pages == Pages::Huge {
                            hugetlbfs_mount().unwrap()
                        } else {
                            std::env::temp_dir()
                        };
                        let name = unique("conf").replace("shm:", "");
                        format!("file:{}", dir.join(name).display())
                    }
                    Kind::SysV => {
                        let key = 0x5300_0000 | (std::process::id() & 0xffff) << 8;
                        static N: std::sync::atomic::AtomicU32 =
                            std::sync::atomic::AtomicU32::new(1);
                        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        format!("sysv:{:#x}", key | (n & 0xff))
                    }
                    Kind::Memfd => unreachable!(),
                };
                let cleanup = Cleanup(addr.clone());
                let ring = b
                    .create(&addr)
                    .unwrap_or_else(|e| panic!("create {addr}: {e}"));
                (ring, Some(addr), Some(cleanup))
            }
        };
        let second = match kind {
            Kind::Memfd => {
                let fd: OwnedFd = a.fd().unwrap().try_clone_to_owned().unwrap();
                Ring::from_fd(fd).unwrap()
            }
            _ => Ring::open(addr.as_deref().unwrap()).unwrap(),
        };
        let raw = RawMap::of(&a);
        Some(Subject {
            kind,
            pages,
            a,
            b: second,
            raw,
            addr,
            _cleanup: cleanup,
            _lock: lock,
        })
    }

    /// What this ring's mappings are called in `/proc/self/smaps`.
    fn smaps_name(&self) -> String {
        let info = self.a.info();
        match self.kind {
            Kind::Shm | Kind::File => format!("{} ", info.path.unwrap().display()),
            Kind::Memfd => format!("/{} ", self.addr.as_deref().unwrap()),
            Kind::SysV => {
                let key = self
                    .addr
                    .as_deref()
                    .unwrap()
                    .strip_prefix("sysv:0x")
                    .unwrap();
                format!("/SYSV{:0>8} ", key)
            }
        }
    }

    /// Opens the ring afresh (a third process would), to see corruption.
    fn reopen(&self) -> Result<Ring, Error> {
        let mut b = RingBuilder::new();
        b.open_timeout(Duration::from_millis(50));
        match self.kind {
            Kind::Memfd => b.open_fd(self.a.fd().unwrap().try_clone_to_owned().unwrap()),
            _ => b.open(self.addr.as_deref().unwrap()),
        }
    }
}

/// `KernelPageSize` of every mapping in this process whose smaps header
/// line contains `name`: the kernel's own word on the page size.
fn smaps_page_sizes(name: &str) -> Vec<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut sizes = Vec::new();
    let mut matching = false;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.split('-').all(|h| u64::from_str_radix(h, 16).is_ok()) {
            matching = format!("{line} ").contains(name);
            continue;
        }
        if matching {
            if let Some(kb) = line.strip_prefix("KernelPageSize:") {
                sizes.push(
                    kb.split_whitespace()
                        .next()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                        * 1024,
                );
            }
        }
    }
    sizes
}

/// A raw read-write mapping of a ring's segment, through its own mmap or
/// shmat: how a buggy or hostile process sees the bytes.
struct RawMap {
    ptr: *mut u8,
    len: usize,
    sysv: bool,
}

impl RawMap {
    fn of(ring: &Ring) -> RawMap {
        let info = ring.info();
        if let Some(id) = info.sysv_id {
            // SAFETY: attaching an existing segment at a kernel-chosen address.
            let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
            assert_ne!(p as isize, -1, "shmat");
            return RawMap {
                ptr: p.cast(),
                len: info.mapped_len as usize,
                sysv: true,
            };
        }
        let fd: OwnedFd = match (&info.path, ring.fd()) {
            (Some(path), _) if info.backend != Backend::Memfd => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap()
                .into(),
            (_, Some(fd)) => fd.try_clone_to_owned().unwrap(),
            _ => panic!("no way to map {info:?}"),
        };
        let len = info.mapped_len as usize;
        // SAFETY: a new shared mapping of the whole segment (whole pages).
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd.as_fd(),
                0,
            )
        }
        .unwrap();
        RawMap {
            ptr: p.cast(),
            len,
            sysv: false,
        }
    }

    fn put_u64(&self, off: usize, v: u64) {
        assert!(off + 8 <= self.len);
        // SAFETY: in bounds and 8-aligned; racing the library on purpose is
        // the point of this mapping (the library only uses atomics/volatile).
        unsafe { self.ptr.add(off).cast::<u64>().write_volatile(v) }
    }

    fn get_u64(&self, off: usize) -> u64 {
        // SAFETY: as above.
        unsafe { self.ptr.add(off).cast::<u64>().read_volatile() }
    }

    fn put_u32(&self, off: usize, v: u32) {
        assert!(off + 4 <= self.len);
        // SAFETY: as above.
        unsafe { self.ptr.add(off).cast::<u32>().write_volatile(v) }
    }
}

impl Drop for RawMap {
    fn drop(&mut self) {
        if self.sysv {
            // SAFETY: detaching our own attachment.
            unsafe { libc::shmdt(self.ptr.cast()) };
        } else {
            // SAFETY: unmapping our own mapping.
            let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
        }
    }
}

// -------------------------------------------------------------------------
// Behaviours
// -------------------------------------------------------------------------

fn stream(s: &Subject) {
    let mut tx = s.a.producer().unwrap();
    let mut rx = s.b.consumer().unwrap();
    let max = tx.max_message();
    let n = 50_000u64;
    with_watchdog(Duration::from_secs(120), move || {
        let t = thread::spawn(move || {
            let mut buf = vec![0u8; max];
            for seq in 0..n {
                let len = fill_msg(3, seq, max, &mut buf);
                tx.send(&buf[..len]).unwrap();
            }
        });
        let mut buf = vec![0u8; max];
        for seq in 0..n {
            let len = rx.recv(&mut buf).unwrap();
            check_msg(3, seq, max, &buf[..len]).unwrap();
        }
        t.join().unwrap();
    });
}

fn zero_copy(s: &Subject) {
    let mut tx = s.a.producer().unwrap();
    let mut rx = s.b.consumer().unwrap();
    let max = tx.max_message();
    for seq in 0..1000u64 {
        let mut slot = tx.try_reserve().unwrap();
        let len = fill_msg(4, seq, max, &mut slot);
        slot.commit(len);
        let msg = rx.try_borrow().unwrap();
        check_msg(4, seq, max, &msg).unwrap();
    }
}

fn batch(s: &Subject) {
    let mut tx = s.a.producer().unwrap();
    let mut rx = s.b.consumer().unwrap();
    let max = tx.max_message();
    let (mut sent, mut got) = (0u64, 0u64);
    while got < 2000 {
        let mut b = tx.try_reserve_batch(5).unwrap();
        while b.push_with(|buf| fill_msg(5, sent, max, buf)) {
            sent += 1;
        }
        b.commit();
        rx.try_recv_batch(7, |m| {
            check_msg(5, got, max, m).unwrap();
            got += 1;
        })
        .unwrap();
    }
}

fn validation(s: &Subject) {
    // Header: slot_count (offset 0x18) made not a power of two.
    let saved = s.raw.get_u64(0x18);
    s.raw.put_u64(0x18, 3);
    match s.reopen() {
        Err(Error::Corrupt { corruption, .. }) => assert_eq!(corruption.field, "slot_count"),
        other => panic!("{:?}: expected Corrupt slot_count, got {other:?}", s.kind),
    }
    s.raw.put_u64(0x18, saved);
    // Magic.
    let magic = s.raw.get_u64(0);
    s.raw.put_u64(0, 0xdead_beef);
    assert!(matches!(s.reopen(), Err(Error::BadMagic { .. })));
    s.raw.put_u64(0, magic);
    s.reopen().unwrap();
    // Data path: a slot length beyond the payload capacity.
    let mut tx = s.a.producer().unwrap();
    let mut rx = s.b.consumer().unwrap();
    tx.try_send(b"x").unwrap();
    // Slot 0 is at `slots_offset` (meta + 0x60): one page on a ring mapped
    // twice, 0x400 otherwise.
    let slot0 = s.raw.get_u64(0x60) as usize;
    let double = s.a.info().contiguous_wrap;
    assert_eq!(slot0, if double { 4096 } else { 0x400 }, "{:?}", s.kind);
    s.raw.put_u32(slot0, (1 << 30) - 1);
    assert!(matches!(rx.try_recv_vec(), Err(TryRecvError::Corrupt(c)) if c.field == "slot length"));
    s.raw.put_u32(slot0, 3 << 30);
    assert!(matches!(rx.try_recv_vec(), Err(TryRecvError::Corrupt(c)) if c.field == "slot mark"));
    s.raw.put_u32(slot0, 1);
    assert_eq!(rx.try_recv_vec().unwrap(), b"x");
}

fn claims(s: &Subject) {
    let tx = s.a.producer().unwrap();
    match s.b.producer() {
        Err(Error::AlreadyClaimed {
            side: Side::Producer,
            pid,
            ..
        }) => assert_eq!(pid, std::process::id()),
        other => panic!("{other:?}"),
    }
    drop(tx);
    let _tx = s.b.producer().unwrap();
    let _rx = s.a.consumer().unwrap();
    assert!(s.b.consumer().is_err());
}

fn page_size(s: &Subject) {
    let expected = match s.pages {
        Pages::Base => 4096,
        Pages::Huge => HUGE,
    };
    for ring in [&s.a, &s.b] {
        let info = ring.info();
        assert_eq!(info.page_size, expected, "{:?} {:?}", s.kind, s.pages);
        assert_eq!(info.mapped_len % expected, 0, "whole pages");
        assert!(info.huge_page_fallback.is_none());
    }
    // The kernel agrees, for each of our mappings of the segment (two
    // rings and the raw map).
    let name = s.smaps_name();
    let kernel = smaps_page_sizes(&name);
    assert!(
        kernel.len() >= 3,
        "{:?}: mappings of {name} in smaps: {kernel:?}",
        s.kind
    );
    assert!(
        kernel.iter().all(|&k| k == expected),
        "{:?} {:?}: smaps KernelPageSize {kernel:?}, expected {expected}",
        s.kind,
        s.pages
    );
    if s.kind == Kind::SysV {
        assert!(
            s.a.info().attach_count.unwrap() >= 3,
            "a, b and the raw map"
        );
    }
    let info = s.a.info();
    eprintln!(
        "page size: {:?} with {:?} pages: {} bytes (smaps KernelPageSize {:?}), {} bytes mapped",
        s.kind, s.pages, info.page_size, kernel[0], info.mapped_len
    );
}

/// Random sizes from 0 to the message limit, byte-identical, through a
/// producer on one mapping and a consumer on another, many laps of the
/// ring. On a ring mapped twice some messages cross the end of the ring,
/// and each is still one slice, running on through the second mapping; on
/// a padded ring none crosses.
fn large_across_wrap(s: &Subject) {
    let info = s.a.info();
    let double = info.contiguous_wrap;
    assert_eq!(s.b.info().contiguous_wrap, double, "both mappings agree");
    let (slots, slot_size, offset) = (
        info.slots as usize,
        info.slot_size as usize,
        info.payload_offset as usize,
    );
    let mut tx = s.a.producer().unwrap();
    let mut rx = s.b.consumer().unwrap();
    let limit = tx.message_limit();
    assert_eq!(limit, slots * slot_size - offset);
    // Huge-page rings carry messages up to 2 MiB: fewer of them still
    // make several hundred laps of crossings.
    let n = scaled(if s.pages == Pages::Huge { 200 } else { 1500 });
    // Cheap enough for 2 MiB messages in a debug build; differs per
    // message and per position.
    let body = move |seq: u64, len: usize| -> Vec<u8> {
        let salt = mix(seq);
        (0..len as u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(salt) >> 56) as u8)
            .collect()
    };
    let len_of = move |seq: u64| match seq % 5 {
        0 => limit,
        1 => 0,
        _ => (mix(seq + 77) % (limit as u64 + 1)) as usize,
    };
    let crossed = with_watchdog(Duration::from_secs(120), move || {
        let t = thread::spawn(move || {
            for seq in 0..n {
                tx.send(body(seq, len_of(seq))).unwrap();
            }
        });
        // Where slot 0's payload is in the consumer's mapping, learned
        // from the first message (position 0, slot 0).
        let mut slot0: Option<usize> = None;
        let mut crossed = 0u64;
        for seq in 0..n {
            let len = len_of(seq);
            let msg = rx.borrow().unwrap();
            assert_eq!(msg.len(), len, "seq {seq}");
            assert!(*msg == body(seq, len)[..], "seq {seq}: bytes differ");
            let at = msg.as_ptr() as usize;
            let base = *slot0.get_or_insert(at);
            let index = (at - base) / slot_size;
            assert!(index < slots && (at - base) % slot_size == 0, "seq {seq}");
            let used = (len + offset).div_ceil(slot_size);
            if index + used > slots {
                // One slice past the end of the first mapping of the area.
                assert!(double, "seq {seq}: a padded ring never crosses");
                assert!(at + len > base - offset + slots * slot_size);
                crossed += 1;
            }
        }
        t.join().unwrap();
        crossed
    });
    eprintln!(
        "{:?} {:?} double_map={double}: {n} messages up to {limit} B, {crossed} across the wrap",
        s.kind, s.pages
    );
    if double {
        assert!(crossed > 0, "some messages cross the wrap");
    }
}

/// `/proc/self/smaps` shows a double-mapped ring's two mappings; dropping
/// the rings unmaps every one of them.
fn mapped_twice_and_unmapped(kind: Kind, pages: Pages, slots: u64, slot_size: u64) {
    let Some(s) = Subject::new(kind, pages, slots, slot_size) else {
        return;
    };
    assert!(s.a.info().contiguous_wrap && s.b.info().contiguous_wrap);
    let name = s.smaps_name();
    let mappings = smaps_page_sizes(&name).len();
    // a and b, at least two mappings each, and the raw map.
    assert!(mappings >= 5, "{kind:?}: {mappings} mappings of {name}");
    drop(s);
    assert_eq!(
        smaps_page_sizes(&name),
        Vec::<u64>::new(),
        "{kind:?}: all unmapped"
    );
}

/// Huge pages really come out of the pool while mapped.
fn huge_pool_drops(kind: Kind) {
    let before = meminfo("HugePages_Free");
    let Some(s) = Subject::new(kind, Pages::Huge, 1024, 4096) else {
        return;
    };
    let during = meminfo("HugePages_Free");
    let pages = s.a.info().mapped_len / HUGE;
    eprintln!("{kind:?}: HugePages_Free {before} -> {during} with {pages} page(s) mapped");
    assert!(
        during < before,
        "{kind:?}: HugePages_Free did not drop ({before} -> {during})"
    );
    drop(s);
}

macro_rules! conformance {
    ($module:ident, $kind:expr, $pages:expr) => {
        mod $module {
            use super::*;

            fn subject() -> Option<Subject> {
                Subject::new($kind, $pages, 16, 256)
            }

            #[test]
            fn stream() {
                if let Some(s) = subject() {
                    super::stream(&s);
                }
            }

            #[test]
            fn zero_copy() {
                if let Some(s) = subject() {
                    super::zero_copy(&s);
                }
            }

            #[test]
            fn batch() {
                if let Some(s) = subject() {
                    super::batch(&s);
                }
            }

            #[test]
            fn validation() {
                if let Some(s) = subject() {
                    super::validation(&s);
                }
            }

            #[test]
            fn claims() {
                if let Some(s) = subject() {
                    super::claims(&s);
                }
            }

            #[test]
            fn page_size() {
                if let Some(s) = subject() {
                    super::page_size(&s);
                }
            }

            /// A slot area of one page (base) or one huge page.
            fn wrap_geometry() -> (u64, u64) {
                match $pages {
                    Pages::Base => (16, 256),
                    Pages::Huge => (512, 4096),
                }
            }

            #[test]
            fn large_across_wrap_double_mapped() {
                let (slots, size) = wrap_geometry();
                if let Some(s) = Subject::with($kind, $pages, slots, size, true) {
                    assert!(s.a.info().contiguous_wrap);
                    super::large_across_wrap(&s);
                }
            }

            #[test]
            fn large_across_wrap_padded() {
                let (slots, size) = wrap_geometry();
                if let Some(s) = Subject::with($kind, $pages, slots, size, false) {
                    assert!(!s.a.info().contiguous_wrap);
                    super::large_across_wrap(&s);
                }
            }

            #[test]
            fn mapped_twice_and_unmapped() {
                let (slots, size) = wrap_geometry();
                super::mapped_twice_and_unmapped($kind, $pages, slots, size);
            }
        }
    };
}

conformance!(shm_base, Kind::Shm, Pages::Base);
conformance!(shm_huge, Kind::Shm, Pages::Huge);
conformance!(file_base, Kind::File, Pages::Base);
conformance!(file_huge, Kind::File, Pages::Huge);
conformance!(memfd_base, Kind::Memfd, Pages::Base);
conformance!(memfd_huge, Kind::Memfd, Pages::Huge);
conformance!(sysv_base, Kind::SysV, Pages::Base);
conformance!(sysv_huge, Kind::SysV, Pages::Huge);

#[test]
fn huge_pages_leave_the_pool_while_mapped() {
    for kind in [Kind::Shm, Kind::File, Kind::Memfd, Kind::SysV] {
        huge_pool_drops(kind);
    }
}

/// More huge pages than are free: `Require` says what to do, `Prefer`
/// falls back to base pages and says why. Works whether or not a pool is
/// reserved (with none, any ring is "too big").
#[test]
fn require_fails_clearly_and_prefer_falls_back() {
    let _g = HUGE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let free = meminfo("HugePages_Free").saturating_sub(meminfo("HugePages_Rsvd"));
    // One more 2 MiB page than is free, in 1 MiB slots.
    let slots = ((free + 1) * 2).next_power_of_two();
    let mut builder = RingBuilder::new();
    builder.slots(slots).slot_size(1 << 20);
    type Create = Box<dyn Fn(&RingBuilder) -> Result<Ring, Error>>;
    let mut cases: Vec<(&str, Create)> = vec![
        (
            "memfd",
            Box::new(|b: &RingBuilder| b.create_memfd("too-big")),
        ),
        (
            "sysv",
            Box::new(|b: &RingBuilder| {
                b.create(format!(
                    "sysv:{:#x}",
                    0x5400_0000 | std::process::id() & 0xffff
                ))
            }),
        ),
    ];
    if hugetlbfs_mount().is_some() {
        cases.push((
            "shm",
            Box::new(|b: &RingBuilder| b.create(unique("too-big"))),
        ));
    }
    for (what, create) in &cases {
        builder.huge_pages(HugePages::Require);
        match create(&builder) {
            Err(e @ Error::HugePagesUnavailable { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("nr_hugepages") || msg.contains("hugetlb_shm_group"),
                    "{what}: the error says what to do: {msg}"
                );
                eprintln!("{what}, Require: {msg}");
            }
            other => panic!(
                "{what}: expected HugePagesUnavailable, got {:?}",
                other.map(|r| r.info())
            ),
        }
        builder.huge_pages(HugePages::Prefer);
        let ring = create(&builder).unwrap_or_else(|e| panic!("{what}: Prefer failed: {e}"));
        let info = ring.info();
        assert_eq!(info.page_size, 4096, "{what}: fell back to base pages");
        let why = info
            .huge_page_fallback
            .clone()
            .expect("the fallback is explained");
        eprintln!("{what}, Prefer: fell back because {why}");
        if let Some(a) = ring.address() {
            Ring::remove(a, true).unwrap();
        }
    }
}

#[test]
fn unsupported_huge_page_size_is_explained() {
    let r = RingBuilder::new()
        .huge_pages(HugePages::Require)
        .huge_page_size(1 << 40)
        .create_memfd("x");
    match r {
        Err(e @ Error::HugePagesUnavailable { .. }) => {
            assert!(e.to_string().contains("offers"), "{e}");
        }
        other => panic!("{:?}", other.map(|r| r.info())),
    }
    assert!(matches!(
        RingBuilder::new()
            .huge_pages(HugePages::Require)
            .huge_page_size(3 << 20)
            .create_memfd("x"),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn file_require_off_hugetlbfs_is_refused_before_creating() {
    let path = std::env::temp_dir().join(format!("shmpipe-not-huge-{}", std::process::id()));
    let addr = format!("file:{}", path.display());
    match RingBuilder::new()
        .huge_pages(HugePages::Require)
        .create(&addr)
    {
        Err(e @ Error::HugePagesUnavailable { .. }) => assert!(e.to_string().contains("hugetlbfs")),
        other => panic!("{:?}", other.map(|r| r.info())),
    }
    assert!(!path.exists());
}

#[test]
fn sysv_ftok_addresses_and_removal() {
    let dir = std::env::temp_dir().join(format!("shmpipe-ftok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = format!("sysv:{}:7", dir.display());
    let _c = Cleanup(addr.clone());
    let ring = RingBuilder::new().slots(8).create(&addr).unwrap();
    let info = ring.info();
    assert_eq!(info.backend, Backend::SysV);
    assert_eq!(info.mode, Some(0o600));
    let other = Ring::open(&addr).unwrap();
    assert_eq!(other.info().sysv_id, info.sysv_id);
    assert!(other.info().attach_count.unwrap() >= 2);
    assert!(matches!(
        RingBuilder::new().create(&addr),
        Err(Error::AlreadyExists { .. })
    ));
    let _tx = ring.producer().unwrap();
    assert!(matches!(
        Ring::remove(&addr, false),
        Err(Error::InUse { .. })
    ));
    Ring::remove(&addr, true).unwrap();
    assert!(matches!(Ring::open(&addr), Err(Error::NotFound { .. })));
    // Mapped rings keep working after IPC_RMID.
    assert_eq!(other.info().slots, 8);
    let missing = format!("sysv:{}/nope:1", dir.display());
    assert!(matches!(
        Ring::open(&missing),
        Err(Error::InvalidAddress { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reclaim_replaces_only_stale_rings() {
    let addr = unique("reclaim");
    let _c = Cleanup(addr.clone());
    let mut b = RingBuilder::new();
    b.slots(8).reclaim_stale(true);
    // Created by this live process: not stale.
    let first = RingBuilder::new().slots(4).create(&addr).unwrap();
    assert!(matches!(b.create(&addr), Err(Error::AlreadyExists { .. })));
    drop(first);
    // Created by a process that has exited, nobody attached: stale.
    let status = std::process::Command::new("true").status().unwrap();
    assert!(status.success());
    let path = format!("/dev/shm/{}", addr.strip_prefix("shm:").unwrap());
    patch_creator(&path, dead_pid());
    let ring = b.create(&addr).unwrap();
    assert_eq!(ring.info().slots, 8);
    // A live producer keeps it.
    patch_creator(&path, dead_pid());
    let _tx = ring.producer().unwrap();
    assert!(matches!(
        b.create(&addr),
        Err(Error::InUse {
            side: Side::Producer,
            ..
        })
    ));
    // Foreign files are never touched.
    let foreign = unique("reclaim-foreign");
    let fpath = format!("/dev/shm/{}", foreign.strip_prefix("shm:").unwrap());
    std::fs::write(&fpath, vec![7u8; 8192]).unwrap();
    let _f = Cleanup(foreign.clone());
    assert!(matches!(b.create(&foreign), Err(Error::BadMagic { .. })));
    assert_eq!(std::fs::read(&fpath).unwrap(), vec![7u8; 8192]);
}

/// A pid that belonged to a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// Rewrites the creator identity in a ring's header (offset 0x40 pid,
/// 0x48 start time) as if another process had created it.
fn patch_creator(path: &str, pid: u32) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&pid.to_le_bytes(), 0x40).unwrap();
    f.write_all_at(&1u64.to_le_bytes(), 0x48).unwrap();
    let _ = f.as_raw_fd();
}
