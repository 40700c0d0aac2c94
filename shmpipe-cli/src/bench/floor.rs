//! The physical floors: what two processes sharing memory cannot beat,
//! measured in the same run, by the same workload code, as shmpipe.
//!
//! - **Cache-line round trip**: two processes bounce one cache line of a
//!   shared memfd through an atomic ([`CacheLineEnd`]). Run as a ping-pong,
//!   timed per sample exactly like every mechanism's ping-pong.
//! - **Hand-off**: the producer copies the message into one shared buffer
//!   and raises a flag; the consumer copies it out and lowers the flag
//!   ([`HandoffEnd`]). The same two copies shmpipe makes, with no ring:
//!   run as a throughput stream, timed like every mechanism's.
//! - **memcpy**: one core copying messages into a ring-sized area
//!   ([`memcpy_rate`]), in-process.

// Floors are bare atomics in shared memory, on purpose outside the
// library's loom shim (clippy.toml's list is for the library's protocol).
#![allow(clippy::disallowed_types)]

use std::hint::black_box;
use std::io;
use std::os::fd::OwnedFd;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The floors run between two peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    CacheLine,
    Handoff,
}

/// A floor peer's end: the inherited memfd, and which side it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "floor", rename_all = "kebab-case")]
pub enum FloorLink {
    /// One cache line, written by both sides (`side` 0 starts, 1
    /// answers).
    CacheLine { fd: i32, side: u8 },
    /// One message buffer and a flag.
    Handoff { fd: i32, tx: bool },
}

/// Creates a floor's channel: one memfd both peers inherit.
pub fn channel(floor: Floor, size: usize) -> Result<Channel, String> {
    let mut ch = Channel::default();
    let fd = create_memfd(floor_len(size)).map_err(|e| format!("floor memfd: {e}"))?;
    let n = ch.keep(fd);
    ch.pass_consumer.push(n);
    ch.pass_producer.push(n);
    let (p, c) = match floor {
        Floor::CacheLine => (
            FloorLink::CacheLine { fd: n, side: 0 },
            FloorLink::CacheLine { fd: n, side: 1 },
        ),
        Floor::Handoff => (
            FloorLink::Handoff { fd: n, tx: true },
            FloorLink::Handoff { fd: n, tx: false },
        ),
    };
    ch.links(KIND, &p, &c);
    Ok(ch)
}

/// In the peer process: opens a floor's end and runs the job on it.
pub fn serve(spec: &PeerSpec) -> Result<(), PeerError> {
    let size = spec.msg_size;
    match parse_link(&spec.link)? {
        FloorLink::CacheLine { fd, side } => jobs::serve(CacheLineEnd::open(fd, side, size), spec),
        FloorLink::Handoff { fd, tx } => jobs::serve(HandoffEnd::open(fd, tx, size), spec),
    }
}

/// Where the message buffer starts in a hand-off mapping: past the flag's
/// line and its adjacent-line prefetch partner, so the two never share a
/// 128-byte pair.
const BUF_OFFSET: usize = 256;

/// Bytes of memfd a floor with `msg_size`-byte messages needs.
fn floor_len(msg_size: usize) -> usize {
    (BUF_OFFSET + msg_size).next_multiple_of(4096)
}

/// A memfd of `len` bytes for a floor, close-on-exec (the coordinator
/// clears that for the children it passes it to).
fn create_memfd(len: usize) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create("shmpipe-bench-floor", MemfdFlags::CLOEXEC)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    Ok(fd)
}

/// A peer's own mapping of a floor memfd.
struct FloorMap {
    map: MmapRaw,
}

impl FloorMap {
    /// Maps inherited descriptor `fd`, which must hold `min_len` bytes.
    fn open(fd: i32, min_len: usize) -> Result<FloorMap, PeerError> {
        let fd = adopt_fd(fd, &[FileType::RegularFile])?;
        let len = rustix::fs::fstat(&fd)?.st_size as usize;
        if len < min_len {
            return Err(PeerError(format!(
                "floor memfd holds {len} bytes, needs {min_len}"
            )));
        }
        let map = MmapOptions::new().len(len).populate().map_raw(&fd)?;
        Ok(FloorMap { map })
    }

    /// The atomic word at the start of the mapping.
    fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned and at least 8 bytes long
        // (checked in `open`); it lives as long as `self`, and the other
        // process touches the word only atomically.
        unsafe { &*self.map.as_mut_ptr().cast::<AtomicU64>() }
    }

    /// The message buffer of a hand-off mapping.
    fn buf(&self) -> *mut u8 {
        // SAFETY: `open` checked the mapping holds BUF_OFFSET + msg_size.
        unsafe { self.map.as_mut_ptr().add(BUF_OFFSET) }
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
fn spin_until<T>(mut f: impl FnMut() -> Option<T>) -> T {
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
    map: FloorMap,
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
            map: FloorMap::open(fd, 8)?,
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
            .word()
            .store(seq << 2 | 2 | self.side, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let from_peer = 2 | (self.side ^ 1);
        let word = self.map.word();
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
// Hand-off
// ---------------------------------------------------------------------------

/// One end of the hand-off floor: a flag word (0 = empty, `n + 1` = holds
/// an `n`-byte message) and one message buffer in a shared memfd.
pub struct HandoffEnd {
    map: FloorMap,
    cap: usize,
    tx: bool,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl HandoffEnd {
    pub fn open(fd: i32, tx: bool, size: usize) -> Result<HandoffEnd, PeerError> {
        Ok(HandoffEnd {
            map: FloorMap::open(fd, BUF_OFFSET + size)?,
            cap: size,
            tx,
            out: vec![FILL; size],
            inb: vec![0; size],
        })
    }
}

impl Endpoint for HandoffEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        if !self.tx {
            return Err(PeerError::new("this hand-off end receives"));
        }
        let flag = self.map.word();
        // ORDERING: Acquire; pairs with the consumer's Release store of 0
        // in `recv`: its copy out of the buffer happens before we
        // overwrite it.
        spin_until(|| (flag.load(Ordering::Acquire) == 0).then_some(()));
        let len = len.min(self.cap);
        // SAFETY: the buffer holds `cap` bytes and is ours until we raise
        // the flag (the consumer reads it only while the flag is set).
        unsafe { ptr::copy_nonoverlapping(self.out.as_ptr(), self.map.buf(), len) };
        // ORDERING: Release; pairs with the consumer's Acquire load in
        // `recv`, publishing the copy above.
        flag.store(len as u64 + 1, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        if self.tx {
            return Err(PeerError::new("this hand-off end sends"));
        }
        let flag = self.map.word();
        // ORDERING: Acquire; pairs with the producer's Release store in
        // `send`: its copy into the buffer is visible.
        let f = spin_until(|| {
            let f = flag.load(Ordering::Acquire);
            (f != 0).then_some(f)
        });
        let n = (f - 1) as usize;
        if n > self.cap {
            return Err(PeerError(format!("hand-off flag {f} exceeds the buffer")));
        }
        // SAFETY: the flag is set, so the producer does not write the
        // buffer until we lower it; `n <= cap` bytes are in bounds of both.
        unsafe { ptr::copy_nonoverlapping(self.map.buf(), self.inb.as_mut_ptr(), n) };
        // ORDERING: Release; pairs with the producer's Acquire load in
        // `send`: our copy-out happens before it overwrites the buffer.
        flag.store(0, Ordering::Release);
        Ok(&self.inb[..n])
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
