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
