//! Loom model of the index protocol: the real `Producer`/`Consumer` code on
//! a heap ring of 2 slots, across a wrap.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_ring
//! ```
#![cfg(loom)]

use loom::thread;
use shmpipe::{RingBuilder, TryRecvError, TrySendError, WaitStrategy};

fn ring(slots: u64) -> shmpipe::Ring {
    RingBuilder::new()
        .slots(slots)
        .slot_size(64)
        .wait_strategy(WaitStrategy::Park)
        .create_in_process()
        .unwrap()
}

/// Three messages through two slots: the third reuses slot 0 only after
/// the consumer has released it. A missing Release/Acquire pair shows up as
/// a causality violation on the slot's cell, a lost or torn message as a
/// failed assertion.
#[test]
fn publish_consume_across_a_wrap() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let producer = thread::spawn(move || {
            for i in 0..3u8 {
                let mut msg = [i; 3];
                loop {
                    match tx.try_send(msg) {
                        Ok(()) => break,
                        Err(TrySendError::Full(m)) => {
                            msg = m;
                            thread::yield_now();
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        });
        let mut buf = [0u8; 8];
        for i in 0..3u8 {
            loop {
                match rx.try_recv(&mut buf) {
                    Ok(n) => {
                        assert_eq!(&buf[..n], &[i; 3]);
                        break;
                    }
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
    });
}

/// The zero-copy paths across a wrap: reserve/commit against borrow/drop.
#[test]
fn zero_copy_across_a_wrap() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let producer = thread::spawn(move || {
            for i in 0..3u8 {
                loop {
                    match tx.try_reserve() {
                        Ok(mut slot) => {
                            slot[0] = i;
                            slot.commit(1);
                            break;
                        }
                        Err(TrySendError::Full(())) => thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        });
        for i in 0..3u8 {
            loop {
                match rx.try_borrow() {
                    Ok(msg) => {
                        assert_eq!(&*msg, &[i]);
                        break;
                    }
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        producer.join().unwrap();
    });
}

/// Retries `try_send` of `msg` while the ring is full (a `Full` may have
/// published a PAD first: the retry goes after it).
fn send_retrying(tx: &mut shmpipe::Producer, msg: &[u8]) {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => thread::yield_now(),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// A one-slot message, then two 2-slot messages through 4 slots: the
/// second 2-slot message does not fit before the end of the ring, so the
/// producer publishes a PAD over slot 3 and writes the message into slots
/// 0 and 1 once the consumer has released them. Every slot of a multi-slot
/// message is tracked (not just its first), so a consumer reading any of
/// them while the producer writes it is a causality violation.
#[test]
fn multi_slot_message_and_pad_across_a_wrap() {
    loom::model(|| {
        let ring = ring(4);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        // 64-byte slots carry 48 bytes alone; 100 bytes take two.
        let msgs: [(u8, usize); 3] = [(1, 10), (2, 100), (3, 100)];
        let producer = thread::spawn(move || {
            for (b, len) in msgs {
                send_retrying(&mut tx, &vec![b; len]);
            }
        });
        let mut buf = [0u8; 256];
        for (b, len) in msgs {
            loop {
                match rx.try_recv(&mut buf) {
                    Ok(n) => {
                        assert_eq!(n, len);
                        assert!(buf[..n].iter().all(|&x| x == b), "message {b} torn");
                        break;
                    }
                    // Nothing yet, or only the PAD (released, skipped).
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
    });
}

/// Zero-copy multi-slot messages across a wrap without a PAD: three
/// 2-slot reservations (`try_reserve_len`) through 4 slots, borrowed in
/// place; the third reuses slots 0 and 1, whose inner commit word the
/// consumer zeroed when it released the first.
#[test]
fn reserve_len_and_borrow_multi_slot_across_a_wrap() {
    loom::model(|| {
        let ring = ring(4);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let producer = thread::spawn(move || {
            for b in 1..=3u8 {
                loop {
                    match tx.try_reserve_len(100) {
                        Ok(mut slot) => {
                            slot.fill(b);
                            slot.commit(100);
                            break;
                        }
                        Err(TrySendError::Full(())) => thread::yield_now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        });
        for b in 1..=3u8 {
            loop {
                match rx.try_borrow() {
                    Ok(msg) => {
                        assert_eq!(msg.len(), 100);
                        assert!(msg.iter().all(|&x| x == b), "message {b} torn");
                        break;
                    }
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        producer.join().unwrap();
    });
}
