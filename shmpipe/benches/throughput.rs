//! Streaming between two threads over a real shared mapping (a memfd
//! ring, `MAP_SHARED`), per message size, three ways:
//!
//! - `copy`: `try_send` / `try_recv`, one message per call, copied in and
//!   out;
//! - `batch`: `try_reserve_batch` + `push` / `try_recv_batch`, one index
//!   store per batch of up to 64 messages;
//! - `zero-copy`: `try_reserve` + `commit` / `try_borrow`, the producer
//!   writing only the 8-byte sequence number in place and the consumer
//!   reading it in place: the ring's own cost, without the payload copies.
//!
//! The consumer checks every sequence number. Timing follows rtrb's
//! `benches/push_pop.rs`: `iter_custom`, both threads released by a
//! `Barrier`, the consumer's clock. Throughput is in payload bytes copied
//! (messages for zero-copy, which copies none).
//!
//! ```text
//! cargo bench --bench throughput
//! cargo bench --bench throughput -- '64 B'     # one size
//! ```

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shmpipe::{Consumer, Producer, RingBuilder};

const SIZES: [usize; 5] = [8, 64, 512, 4096, 65536];
const BATCH: usize = 64;

/// A memfd ring for `size`-byte messages, shaped as `shmpipe bench` shapes
/// it (at most 512 KiB, 4 to 4096 slots), and its two ends.
fn ring(size: usize) -> (Producer, Consumer) {
    let slot = (size as u64 + 8).next_multiple_of(64);
    let fit = ((512u64 << 10) / slot).max(1);
    let slots = (1u64 << (63 - fit.leading_zeros())).clamp(4, 4096);
    let ring = RingBuilder::new()
        .slots(slots)
        .slot_size(slot)
        .populate(true)
        .create_memfd("shmpipe-bench-throughput")
        .expect("create a memfd ring");
    let tx = ring.producer().expect("producer");
    let rx = ring.consumer().expect("consumer");
    (tx, rx)
}

fn seq_of(m: &[u8]) -> u64 {
    u64::from_le_bytes(m[..8].try_into().expect("8 bytes"))
}

#[derive(Clone, Copy)]
enum Mode {
    Copy,
    Batch,
    ZeroCopy,
}

/// Sends messages `0..n` with `mode`; spins while the ring is full.
fn produce(tx: &mut Producer, mode: Mode, size: usize, n: u64) {
    let mut msg = vec![0xA5u8; size];
    let mut seq = 0;
    while seq < n {
        let sent = match mode {
            Mode::Copy => {
                msg[..8].copy_from_slice(&seq.to_le_bytes());
                tx.try_send(&msg[..]).is_ok()
            }
            Mode::Batch => match tx.try_reserve_batch(BATCH) {
                Ok(mut batch) => {
                    while seq < n && batch.remaining() > 0 {
                        msg[..8].copy_from_slice(&seq.to_le_bytes());
                        // The slot is reserved: this cannot fail.
                        let _ = batch.push(&msg[..]);
                        seq += 1;
                    }
                    batch.commit();
                    continue;
                }
                Err(_) => false,
            },
            Mode::ZeroCopy => match tx.try_reserve() {
                Ok(mut slot) => {
                    slot[..8].copy_from_slice(&seq.to_le_bytes());
                    slot.commit(size);
                    true
                }
                Err(_) => false,
            },
        };
        if sent {
            seq += 1;
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Receives and checks messages `0..n`; spins while the ring is empty.
fn consume(rx: &mut Consumer, mode: Mode, size: usize, n: u64) {
    let mut buf = vec![0u8; size];
    let mut next = 0;
    while next < n {
        let got = match mode {
            Mode::Copy => match rx.try_recv(&mut buf) {
                Ok(len) => {
                    assert_eq!((seq_of(&buf), len), (next, size));
                    next += 1;
                    true
                }
                Err(_) => false,
            },
            Mode::Batch => {
                let k = rx.try_recv_batch(BATCH, |m| {
                    buf[..m.len()].copy_from_slice(m);
                    assert_eq!(seq_of(&buf), next);
                    next += 1;
                });
                k.is_ok_and(|k| k > 0)
            }
            Mode::ZeroCopy => match rx.try_borrow() {
                Ok(m) => {
                    assert_eq!(seq_of(&m), next);
                    black_box(m.len());
                    next += 1;
                    true
                }
                Err(_) => false,
            },
        };
        if !got {
            std::hint::spin_loop();
        }
    }
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("two threads, memfd ring");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for size in SIZES {
        for (name, mode) in [
            ("copy", Mode::Copy),
            ("batch", Mode::Batch),
            ("zero-copy", Mode::ZeroCopy),
        ] {
            // Zero-copy moves no payload: count messages, not bytes.
            group.throughput(match mode {
                Mode::ZeroCopy => Throughput::Elements(1),
                _ => Throughput::Bytes(size as u64),
            });
            let id = BenchmarkId::new(name, format!("{size} B"));
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let (mut tx, mut rx) = ring(size);
                    let barrier = Arc::new(Barrier::new(2));
                    let go = Arc::clone(&barrier);
                    let producer = thread::spawn(move || {
                        go.wait();
                        produce(&mut tx, mode, size, iters);
                    });
                    barrier.wait();
                    let start = Instant::now();
                    consume(&mut rx, mode, size, iters);
                    let elapsed = start.elapsed();
                    producer.join().expect("producer thread");
                    elapsed
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
