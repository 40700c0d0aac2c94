//! Loom models of the wake protocol: the real blocking calls with
//! `WaitStrategy::Park` (no spinning), the futex modelled by a loom `Mutex`
//! and `Condvar`. A lost wakeup shows up as a deadlock: every thread blocked.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_wake
//! ```
#![cfg(loom)]

use loom::thread;
use shmpipe::{RecvError, RingBuilder, SendError, WaitStrategy};

fn ring(slots: u64) -> shmpipe::Ring {
    RingBuilder::new()
        .slots(slots)
        .slot_size(64)
        .wait_strategy(WaitStrategy::Park)
        .create_in_process()
        .unwrap()
}

/// The consumer parks on an empty ring; the producer's publishes wake it.
#[test]
fn consumer_parks_and_producer_wakes_it() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let consumer = thread::spawn(move || {
            let mut buf = [0u8; 8];
            for i in 0..2u8 {
                let n = rx.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &[i]);
            }
            rx
        });
        for i in 0..2u8 {
            tx.try_send([i]).unwrap();
        }
        let rx = consumer.join().unwrap();
        drop((tx, rx));
    });
}

/// The producer parks on a full ring; the consumer's release wakes it.
#[test]
fn producer_parks_on_full_and_consumer_wakes_it() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let producer = thread::spawn(move || {
            tx.send([1u8]).unwrap();
            tx.send([2u8]).unwrap(); // parks until the consumer frees the slot
            tx
        });
        let mut buf = [0u8; 8];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[1]);
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[2]);
        drop(producer.join().unwrap());
    });
}

/// The producer closes while the consumer is parked: the consumer drains
/// what was committed, then sees `Disconnected`.
#[test]
fn producer_closes_while_consumer_parked() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let consumer = thread::spawn(move || {
            let mut buf = [0u8; 8];
            assert_eq!(rx.recv(&mut buf), Ok(1));
            assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
        });
        tx.try_send([7u8]).unwrap();
        drop(tx);
        consumer.join().unwrap();
    });
}

/// The consumer closes while the producer is parked on a full ring: the
/// producer's send fails with `Disconnected`, handing the message back.
#[test]
fn consumer_closes_while_producer_parked() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx = ring.producer().unwrap();
        let rx = ring.consumer().unwrap();
        tx.try_send([1u8]).unwrap();
        let producer = thread::spawn(move || match tx.send([2u8]) {
            Err(SendError::Disconnected(m)) => assert_eq!(m, [2u8]),
            other => panic!("{other:?}"),
        });
        drop(rx);
        producer.join().unwrap();
    });
}
