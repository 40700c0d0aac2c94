//! The untrusted-mapping harness, shared by `tests/untrusted.rs` (proptest,
//! stable toolchain) and `fuzz/fuzz_targets/untrusted_mapping.rs`
//! (libFuzzer): it turns arbitrary bytes into a segment image and a script
//! of operations, and drives the real open, receive, borrow, batch, send,
//! info and CLI-report paths while flipping bytes of the mapping between
//! them.
//!
//! The promise under test: whatever the bytes, every call returns a value or
//! a typed error; no panic, no out-of-bounds access (the fuzzer runs with
//! AddressSanitizer), no hang (every wait has a zero timeout), and every
//! length handed out fits the geometry.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use shmpipe::{Error, RingBuilder, TryRecvError};

/// Reads values from the fuzz input; yields zeros once it runs out.
pub struct Input<'a>(&'a [u8]);

impl Input<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    pub fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A raw, writable view of the segment: the hostile peer.
struct Raw {
    ptr: *mut u8,
    len: usize,
}

impl Raw {
    fn new(fd: &OwnedFd, len: usize) -> Raw {
        // SAFETY: a fresh shared mapping of the whole memfd.
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
        .expect("mmap");
        Raw { ptr: p.cast(), len }
    }

    /// Writes `v` at `off` (8-aligned, wrapped into the segment).
    fn poke(&self, off: u64, v: u64) {
        let off = (off as usize % self.len) & !7;
        // SAFETY: in bounds and aligned; racing the library on purpose (it
        // reads the mapping only through atomics and volatile loads).
        unsafe { self.ptr.add(off).cast::<u64>().write_volatile(v) }
    }

    /// Writes `bytes` at `off` (wrapped into the segment).
    fn write(&self, off: u64, bytes: &[u8]) {
        let off = off as usize % self.len;
        let n = bytes.len().min(self.len - off);
        // SAFETY: `off + n <= len`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(off), n) }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len) };
    }
}

/// Offsets worth aiming at (layout v3): the header fields (geometry,
/// payload placement, message limit, wrap mode, type line), indices,
/// claims and the first slot's length, commit and extent words (fragment
/// marks and lengths).
const HOT: [u64; 16] = [
    0x00, 0x08, 0x10, 0x18, 0x28, 0x30, 0x50, 0x58, 0x60, 0x68, 0x80, 0x100, 0x180, 0x200, 0x400,
    0x408,
];

fn target(input: &mut Input<'_>) -> u64 {
    let sel = input.u8();
    if sel < 192 {
        HOT[(sel % 16) as usize] + u64::from(input.u8() % 8) * 8 * u64::from(sel >= 128)
    } else {
        u64::from(input.u16())
    }
}

fn value(input: &mut Input<'_>) -> u64 {
    match input.u8() % 8 {
        0 => 0,
        1 => u64::MAX,
        2 => u64::from(input.u8()),
        3 => 1 << (input.u8() % 64),
        4 => u64::from(input.u16()) << 32,
        _ => input.u64(),
    }
}

/// Runs one case. Panics only on a broken promise.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let valid_start = input.u8() & 1 == 0;
    let (fd, len): (OwnedFd, usize) = if valid_start {
        // A real ring (random geometry), then mutated.
        let slots = 1u64 << (input.u8() % 5);
        let slot_size = 64 * (1 + u64::from(input.u8() % 4));
        let ring = RingBuilder::new()
            .slots(slots)
            .slot_size(slot_size)
            .create_memfd("fuzz")
            .expect("create a valid ring");
        let len = ring.info().mapped_len as usize;
        // Put some real messages in.
        let mut tx = ring.producer().expect("producer");
        for i in 0..input.u8() % 6 {
            let _ = tx.try_send(vec![i; usize::from(input.u8()) % 64]);
        }
        drop(tx);
        let fd = ring.fd().unwrap().try_clone_to_owned().unwrap();
        (fd, len)
    } else {
        // Arbitrary bytes as the whole image.
        let len = 4096 * (1 + usize::from(input.u8() % 3));
        let fd = rustix::fs::memfd_create("fuzz-raw", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, len as u64).unwrap();
        (fd, len)
    };
    let raw = Raw::new(&fd, len);
    if !valid_start {
        let n = usize::from(input.u16()) % 2048;
        raw.write(0, input.bytes(n));
    }
    for _ in 0..input.u8() % 8 {
        let (t, v) = (target(&mut input), value(&mut input));
        raw.poke(t, v);
    }

    let mut b = RingBuilder::new();
    b.open_timeout(Duration::ZERO);
    let ring = match b.open_fd(fd.try_clone().unwrap()) {
        Ok(r) => r,
        Err(e) => {
            check_error(&e);
            return;
        }
    };
    let info = ring.info();
    exercise_reports(&info);
    // A message may take several slots: the bound is the ring-wide limit.
    let max = info.message_limit as usize;
    let mut rx = match ring.consumer() {
        Ok(rx) => Some(rx),
        Err(e) => {
            check_error(&e);
            None
        }
    };
    let mut tx = None;
    let mut buf = vec![0u8; max + 64];
    while !input.is_empty() {
        match input.u8() % 10 {
            0 | 1 => {
                if let Some(rx) = rx.as_mut() {
                    let cap = usize::from(input.u16()) % (max + 64 + 1);
                    match rx.try_recv(&mut buf[..cap]) {
                        Ok(n) => assert!(n <= max && n <= cap, "length {n} beyond {max}/{cap}"),
                        Err(TryRecvError::BufferTooSmall { needed }) => {
                            assert!(needed > cap && needed <= max)
                        }
                        Err(_) => {}
                    }
                }
            }
            2 => {
                if let Some(rx) = rx.as_mut() {
                    if let Ok(m) = rx.try_borrow() {
                        assert!(m.len() <= max);
                        // Read every byte while the peer may change them.
                        let sum: u64 = m.iter().map(|&x| u64::from(x)).sum();
                        std::hint::black_box(sum);
                    }
                }
            }
            3 => {
                if let Some(rx) = rx.as_mut() {
                    let k = usize::from(input.u8() % 8);
                    let _ = rx.try_recv_batch(k, |m| assert!(m.len() <= max));
                }
            }
            4 | 5 => {
                // The hostile peer strikes between reads.
                let (t, v) = (target(&mut input), value(&mut input));
                raw.poke(t, v);
            }
            6 => {
                if tx.is_none() {
                    tx = ring.producer().map_err(|e| check_error(&e)).ok();
                }
                if let Some(tx) = tx.as_mut() {
                    let n = usize::from(input.u16()) % (max + 2);
                    let _ = tx.try_send(&buf[..n.min(buf.len())]);
                    if let Ok(mut batch) = tx.try_reserve_batch(usize::from(input.u8() % 4)) {
                        let _ = batch.push(&buf[..n.min(max)]);
                        batch.commit();
                    }
                }
            }
            7 => {
                if let Some(rx) = rx.as_mut() {
                    let _ = rx.recv_timeout(&mut buf, Duration::ZERO);
                    // Typed receives: any bytes are a valid `[u64; N]`, and
                    // a message of another length is an error, not a value.
                    if let Ok(v) = rx.try_recv_value::<[u64; 3]>() {
                        std::hint::black_box(v);
                    }
                    if let Ok(v) = rx.try_borrow_value::<[u64; 2]>() {
                        std::hint::black_box(v.iter().fold(0u64, |a, &x| a ^ x));
                    }
                    let _ = (rx.len(), rx.is_empty(), rx.is_full(), rx.peer_alive());
                }
            }
            8 => exercise_reports(&ring.info()),
            _ => {
                // A second opener sees the mutated header.
                if let Err(e) = b.open_fd(fd.try_clone().unwrap()) {
                    check_error(&e);
                }
            }
        }
    }
}

/// Errors are typed and their messages render.
fn check_error(e: &Error) {
    let text = e.to_string();
    assert!(!text.is_empty());
    if let Error::Corrupt { corruption, .. } = e {
        assert!(!corruption.field.is_empty());
    }
}

/// The CLI's readers: `inspect` text and JSON for this ring.
fn exercise_reports(info: &shmpipe::RingInfo) {
    let text = shmpipe_cli::describe::info_text(info);
    assert!(text.contains("geometry"));
    let json = serde_json::to_string(&shmpipe_cli::describe::RingJson::from_info(info)).unwrap();
    assert!(json.starts_with('{'));
}
