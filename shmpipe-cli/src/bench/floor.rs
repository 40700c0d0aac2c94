//! The physical floors: what two processes sharing memory cannot beat,
//! measured in the same run, by the same workload code, as shmpipe.
//!
//! - **Cache-line round trip**: two processes bounce one cache line of a
//!   shared memfd through an atomic ([`CacheLineEnd`]). Run as a ping-pong,
//!   timed per sample exactly like every mechanism's ping-pong.
//! - **memcpy**: one core copying messages into a ring-sized area
//!   ([`memcpy_rate`]), in-process.
//! - **The machine state of each case**: a quick cache-line probe between
//!   two pinned threads of the coordinator ([`probe_cacheline`]), taken
//!   right before and right after every throughput and ping-pong case, so
//!   that a state change inside a repetition is seen.
//!
//! The bare ring, the reference every shmpipe row is divided by, is a
//! mechanism (`mechanisms/bare_ring.rs`) that shares this file's mapping
//! and spinning helpers.

// Floors are bare atomics in shared memory, on purpose outside the
// library's loom shim (clippy.toml's list is for the library's protocol).
#![allow(clippy::disallowed_types)]

use std::hint::black_box;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FileType, MemfdFlags};
use serde::{Deserialize, Serialize};

use super::endpoint::{adopt_fd, Endpoint, PeerError, FILL};
use super::jobs;
use super::mechanisms::{parse_link, Channel};
use super::protocol::{PeerSpec, END};

/// The `kind` of a floor's links.
pub const KIND: &str = "floor";

/// The cache-line floor's end: the inherited memfd, and which side it is
/// (0 starts, 1 answers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLineLink {
    pub fd: i32,
    pub side: u8,
}

/// Creates the cache-line floor's channel: one memfd both peers inherit.
pub fn cacheline_channel() -> Result<Channel, String> {
    let mut ch = Channel::default();
    let fd = create_memfd(4096).map_err(|e| format!("floor memfd: {e}"))?;
    let n = ch.keep(fd);
    ch.pass_consumer.push(n);
    ch.pass_producer.push(n);
    ch.links(
        KIND,
        &CacheLineLink { fd: n, side: 0 },
        &CacheLineLink { fd: n, side: 1 },
    );
    Ok(ch)
}

/// In the peer process: opens the cache-line floor's end and runs the
/// job on it.
pub fn serve(spec: &PeerSpec) -> Result<(), PeerError> {
    let l: CacheLineLink = parse_link(&spec.link)?;
    jobs::serve(CacheLineEnd::open(l.fd, l.side, spec.msg_size), spec)
}

/// A memfd of `len` bytes for a floor or the bare ring, close-on-exec
/// (the coordinator clears that for the children it passes it to).
pub fn create_memfd(len: usize) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("shmpipe-bench-floor", MemfdFlags::CLOEXEC)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    Ok(fd)
}

/// A peer's own mapping of an inherited memfd.
pub struct SharedMap {
    map: MmapRaw,
}

impl SharedMap {
    /// Maps inherited descriptor `fd`, which must hold `min_len` bytes.
    pub fn open(fd: i32, min_len: usize) -> Result<SharedMap, PeerError> {
        let fd = adopt_fd(fd, &[FileType::RegularFile])?;
        let len = rustix::fs::fstat(&fd)?.st_size as usize;
        if len < min_len {
            return Err(PeerError(format!(
                "floor memfd holds {len} bytes, needs {min_len}"
            )));
        }
        let map = MmapOptions::new().len(len).populate().map_raw(&fd)?;
        Ok(SharedMap { map })
    }

    /// The atomic word at byte `offset`, which must be a multiple of 8
    /// below the length `open` checked.
    pub fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.map.len());
        // SAFETY: the mapping is page-aligned and holds `offset + 8` bytes
        // (asserted above), so the word is aligned and in bounds; it lives
        // as long as `self`, and the other process touches it only
        // atomically.
        unsafe { &*self.map.as_mut_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// The start of the mapping.
    pub fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }
}

/// Spin iterations (tens of microseconds) after which a floor's wait
/// starts yielding the CPU. A peer on another CPU answers long before
/// this; a peer sharing our CPU (an oversubscribed machine) gets to run
/// at once instead of after a scheduler tick, so the floor stays the best
/// two processes can do rather than a measure of time slices.
const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// Spins until `f` returns `Some`.
#[inline]
pub fn spin_until<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let mut spins = 0u32;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if spins < SPINS_BEFORE_YIELD {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

fn seq_of(msg: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&msg[..8]);
    u64::from_le_bytes(b)
}

// ---------------------------------------------------------------------------
// Cache-line round trip
// ---------------------------------------------------------------------------

/// One end of the cache-line floor. The shared word holds the last
/// sequence number sent and who sent it: `seq << 2 | 2 | side` (0 = never
/// written). A send is one store; a receive spins until the word holds a
/// value from the other side. Only the 8-byte sequence number travels.
pub struct CacheLineEnd {
    map: SharedMap,
    side: u64,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl CacheLineEnd {
    pub fn open(fd: i32, side: u8, size: usize) -> Result<CacheLineEnd, PeerError> {
        if side > 1 {
            return Err(PeerError(format!("cache-line side {side} is not 0 or 1")));
        }
        Ok(CacheLineEnd {
            map: SharedMap::open(fd, 8)?,
            side: u64::from(side),
            out: vec![FILL; size],
            inb: vec![FILL; size],
        })
    }
}

impl Endpoint for CacheLineEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    #[inline]
    fn send(&mut self, _len: usize) -> Result<(), PeerError> {
        let seq = seq_of(&self.out);
        // ORDERING: Release; pairs with the peer's Acquire load in `recv`
        // (nothing else is published, so this only keeps the floor a
        // proper hand-off; on x86 it is a plain store either way).
        self.map
            .word(0)
            .store(seq << 2 | 2 | self.side, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let from_peer = 2 | (self.side ^ 1);
        let word = self.map.word(0);
        // ORDERING: Acquire; pairs with the peer's Release store in `send`.
        let v = spin_until(|| {
            let v = word.load(Ordering::Acquire);
            (v & 3 == from_peer).then_some(v)
        });
        let seq = if v >> 2 == END >> 2 { END } else { v >> 2 };
        self.inb[..8].copy_from_slice(&seq.to_le_bytes());
        // No stale value can match: the peer writes its next value only
        // after receiving ours, which overwrites the word first.
        Ok(&self.inb[..])
    }
}

// ---------------------------------------------------------------------------
// memcpy
// ---------------------------------------------------------------------------

/// Single-core copy bandwidth for `size`-byte messages, in bytes per
/// second: one hot source message copied into the payload of successive
/// slots of a ring of `slots` slots of `slot_size` bytes (as a producer
/// fills a ring), for about `duration`.
pub fn memcpy_rate(size: usize, slots: usize, slot_size: usize, duration: Duration) -> f64 {
    let slots = slots.max(1);
    let stride = slot_size.max(size + SLOT_HEADER);
    // Fault the area in before timing.
    let mut dst = vec![1u8; slots * stride];
    // Place the source half a page away from the destinations' page
    // offsets: a load whose address matches an earlier store's in its low
    // 12 bits waits for it (4K aliasing), which can halve memcpy speed
    // and would make this floor depend on where malloc put the buffers.
    let mut src_buf = vec![FILL; size + 4096];
    let want = (dst.as_ptr() as usize + SLOT_HEADER + 2048) % 4096;
    let skip = (want + 4096 - src_buf.as_ptr() as usize % 4096) % 4096;
    let src = &mut src_buf[skip..skip + size];
    let mut copies: u64 = 0;
    let mut slot = 0;
    let start = Instant::now();
    let mut elapsed;
    loop {
        for _ in 0..64 {
            let off = slot * stride + SLOT_HEADER;
            dst[off..off + size].copy_from_slice(black_box(&src[..]));
            slot += 1;
            if slot == slots {
                slot = 0;
            }
        }
        black_box(&mut dst);
        copies += 64;
        elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
    }
    (copies * size as u64) as f64 / elapsed.as_secs_f64()
}

/// Bytes before a slot's payload (its length word), as in shmpipe's layout.
const SLOT_HEADER: usize = 8;

/// Batches of [`PROBE_BATCH`] round trips in one [`probe_cacheline`].
const PROBE_BATCHES: usize = 32;
/// Round trips timed together (one clock read per batch, not per trip).
const PROBE_BATCH: u64 = 16;
/// A probe still unfinished after this (a thread that did not get its
/// CPU) gives no reading.
const PROBE_LIMIT: Duration = Duration::from_millis(200);
/// The word the asking thread stores to tell the answering one to stop.
const PROBE_STOP: u64 = u64::MAX;

/// One cache line of its own for the probe's word.
#[repr(align(128))]
struct ProbeLine(AtomicU64);

/// A quick reading of the machine state, taken by the coordinator right
/// before and right after every throughput and ping-pong case: one cache
/// line bounced between two threads of this process pinned to the
/// producer's and the consumer's CPUs (`cpus`: producer, consumer), 512
/// round trips in batches of 16; the median batch's mean round trip, in
/// nanoseconds. A fraction of a millisecond (the per-repetition floor, a
/// ping-pong between two processes, takes the whole case duration), and
/// the same placement: which two physical CPUs the pair of vCPUs sits on,
/// whichever process runs there.
///
/// `None` when no reading could be taken: a CPU refused, or a thread that
/// did not run within [`PROBE_LIMIT`].
pub fn probe_cacheline(cpus: (usize, usize)) -> Option<f64> {
    let line = ProbeLine(AtomicU64::new(0));
    let word = &line.0;
    // Set by a thread that could not pin itself: it still answers (so
    // neither side waits for the deadline), and the reading is dropped.
    let unpinned = std::sync::atomic::AtomicBool::new(false);
    let deadline = Instant::now() + PROBE_LIMIT;
    // Waits until the word satisfies `f`, or the deadline (checked every
    // 1024 polls) passes, or the other side said stop.
    let wait = |f: &dyn Fn(u64) -> bool| -> Option<u64> {
        let mut polls = 0u32;
        loop {
            // ORDERING: Acquire; pairs with the other thread's Release
            // store below (nothing else is published through the word, the
            // ordering is only that of a real hand-off).
            let v = word.load(Ordering::Acquire);
            if v == PROBE_STOP {
                return None;
            }
            if f(v) {
                return Some(v);
            }
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(1024) && Instant::now() >= deadline {
                return None;
            }
            std::hint::spin_loop();
        }
    };
    thread::scope(|s| {
        let answer = s.spawn(|| {
            if jobs::pin(cpus.1).is_err() {
                unpinned.store(true, Ordering::Relaxed);
            }
            while let Some(v) = wait(&|v| v % 2 == 1) {
                // ORDERING: Release; pairs with the asker's Acquire load.
                word.store(v + 1, Ordering::Release);
            }
        });
        let ask = s.spawn(|| {
            if jobs::pin(cpus.0).is_err() {
                unpinned.store(true, Ordering::Relaxed);
            }
            let r = (|| {
                let mut means = Vec::with_capacity(PROBE_BATCHES);
                let mut v = 0u64;
                // One batch untimed: both threads running, the line warm.
                for b in 0..=PROBE_BATCHES {
                    let t0 = Instant::now();
                    for _ in 0..PROBE_BATCH {
                        // ORDERING: Release; pairs with the answerer's
                        // Acquire load.
                        word.store(v + 1, Ordering::Release);
                        v = wait(&|w| w == v + 2)?;
                    }
                    if b > 0 {
                        means.push(t0.elapsed().as_nanos() as f64 / PROBE_BATCH as f64);
                    }
                }
                Some(means)
            })();
            // ORDERING: Release; pairs with the answerer's Acquire load.
            word.store(PROBE_STOP, Ordering::Release);
            r
        });
        let means = ask.join().ok().flatten();
        let _ = answer.join();
        // Relaxed: both threads were joined, which orders their stores.
        if unpinned.load(Ordering::Relaxed) {
            return None;
        }
        let mut means = means?;
        means.sort_by(f64::total_cmp);
        means.get(means.len() / 2).copied()
    })
}
