//! Loom models of the descriptor sleeper (`PARKED_NOTIFY`): the real
//! `arm`/`try_*` calls and the real `WaitSet::wait`, with the notification
//! socket modelled under `cfg(loom)` (`notify.rs`: a "datagram pending"
//! flag per socket and a condvar standing in for `poll`/`epoll_wait`). The
//! protocol checked: the waiter sets `PARKED_NOTIFY`, pays the heavy
//! barrier, re-checks the ring, then sleeps; the publisher stores its
//! index, pays its barrier, and if it finds the bit, clears it and sends
//! one datagram. A lost wake-up shows up as a deadlock.
//!
//! The `WaitSet` models also run with the set sleeping on its members'
//! futex words (`futex_waitv`, modelled in `sync/futex.rs` by one condvar
//! that every futex wake notifies): each member reads `event`, sets
//! `PARKED_FUTEX`, the set pays one heavy barrier and re-checks them all,
//! then sleeps until a word differs from the value read before its
//! announcement.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_notify
//! ```
#![cfg(loom)]

use loom::thread;
use shmpipe::{Consumer, Producer, RingBuilder, SendError, TryRecvError, TrySendError, WaitSet};

fn ring(slots: u64) -> shmpipe::Ring {
    RingBuilder::new()
        .slots(slots)
        .slot_size(64)
        .create_in_process()
        .unwrap()
}

/// An event loop's receive: `try_recv`, and on `Empty` arm and wait for
/// the descriptor.
fn recv_via_descriptor(rx: &mut Consumer) -> Result<u8, TryRecvError> {
    let mut buf = [0u8; 8];
    loop {
        match rx.try_recv(&mut buf) {
            Ok(_) => return Ok(buf[0]),
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(e),
        }
        if rx.arm().unwrap() {
            rx.loom_wait_readiness();
        }
    }
}

/// The consumer waits on its descriptor; the producer's publishes signal
/// it.
#[test]
fn descriptor_consumer_is_signalled() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let consumer = thread::spawn(move || {
            for i in 0..2u8 {
                assert_eq!(recv_via_descriptor(&mut rx), Ok(i));
            }
            rx
        });
        for i in 0..2u8 {
            tx.try_send([i]).unwrap();
        }
        drop((tx, consumer.join().unwrap()));
    });
}

/// The producer waits on its descriptor for room; the consumer, parked on
/// its futex in between, frees the slot: both kinds of sleeper at once.
#[test]
fn descriptor_producer_is_signalled_by_a_futex_consumer() {
    loom::model(|| {
        let ring = ring(1);
        let mut tx: Producer = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        rx.set_wait_strategy(shmpipe::WaitStrategy::Park);
        let producer = thread::spawn(move || {
            for i in 0..2u8 {
                loop {
                    match tx.try_send([i]) {
                        Ok(()) => break,
                        Err(TrySendError::Full(_)) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                    if tx.arm().unwrap() {
                        tx.loom_wait_readiness();
                    }
                }
            }
            tx
        });
        let mut buf = [0u8; 8];
        for i in 0..2u8 {
            assert_eq!(rx.recv(&mut buf), Ok(1));
            assert_eq!(buf[0], i);
        }
        drop(producer.join().unwrap());
    });
}

/// The producer closes while the consumer waits on its descriptor: closing
/// signals it, and it sees the message, then `Disconnected`.
#[test]
fn producer_closes_while_descriptor_consumer_waits() {
    loom::model(|| {
        let ring = ring(2);
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let consumer = thread::spawn(move || {
            assert_eq!(recv_via_descriptor(&mut rx), Ok(7));
            assert_eq!(
                recv_via_descriptor(&mut rx),
                Err(TryRecvError::Disconnected)
            );
        });
        tx.try_send([7u8]).unwrap();
        drop(tx);
        consumer.join().unwrap();
    });
}

/// A `WaitSet` of two rings fed by one producer thread, `a`, `b`, then
/// `a` again: the set handles only the members it was told about, so `b`
/// stays armed across a wait that reported `a` (no re-arm) and its publish
/// must still be signalled, while `a`, disarmed by its receive, is re-armed
/// by the next wait and its second publish signalled.
///
/// Run twice: the set sleeping on its members' futex words (the model of
/// `futex_waitv`), and on their descriptors.
fn waitset_member_stays_armed_across_waits(new_set: fn() -> WaitSet, futex: bool) {
    loom::model(move || {
        let (a, b) = (ring(2), ring(2));
        let (mut tx_a, mut tx_b) = (a.producer().unwrap(), b.producer().unwrap());
        let mut set = new_set();
        let ta = set.add_consumer(a.consumer().unwrap()).unwrap();
        let tb = set.add_consumer(b.consumer().unwrap()).unwrap();
        let producer = thread::spawn(move || {
            tx_a.try_send([1u8]).unwrap();
            tx_b.try_send([2u8]).unwrap();
            tx_a.try_send([3u8]).unwrap();
            (tx_a, tx_b)
        });
        let mut got = Vec::new();
        let mut ready = Vec::new();
        while got.len() < 3 {
            set.wait(None, &mut ready).unwrap();
            assert_eq!(set.last_wait_used_futexes(), futex);
            for &t in &ready {
                let rx = set.consumer(t).unwrap();
                while let Ok(m) = rx.try_recv_vec() {
                    got.push((t, m[0]));
                }
            }
        }
        // Two rings: nothing orders `a`'s publish before `b`'s for the
        // consumer, so either may be reported first.
        got.sort();
        assert_eq!(got, [(ta, 1), (ta, 3), (tb, 2)]);
        drop(producer.join().unwrap());
    });
}

#[test]
fn waitset_member_stays_armed_across_waits_on_futexes() {
    waitset_member_stays_armed_across_waits(|| WaitSet::new().unwrap(), true);
}

#[test]
fn waitset_member_stays_armed_across_waits_on_descriptors() {
    waitset_member_stays_armed_across_waits(|| WaitSet::with_epoll().unwrap(), false);
}

/// A `WaitSet` producer member: the ring is full, the consumer thread
/// frees a slot, and the set reports the producer (on futexes, then on
/// descriptors).
fn waitset_producer_member_is_signalled(new_set: fn() -> WaitSet) {
    loom::model(move || {
        let r = ring(1);
        let mut tx = r.producer().unwrap();
        let mut rx = r.consumer().unwrap();
        tx.try_send([1u8]).unwrap();
        let mut set = new_set();
        let t = set.add_producer(tx).unwrap();
        let consumer = thread::spawn(move || {
            assert_eq!(rx.try_recv_vec().unwrap(), [1]);
            rx
        });
        let mut ready = Vec::new();
        loop {
            set.wait(None, &mut ready).unwrap();
            match set.producer(t).unwrap().try_send([2u8]) {
                Ok(()) => break,
                Err(TrySendError::Full(_)) => {}
                Err(e) => panic!("{:?}", SendError::from(e)),
            }
        }
        drop(consumer.join().unwrap());
    });
}

#[test]
fn waitset_producer_member_is_signalled_on_futexes() {
    waitset_producer_member_is_signalled(|| WaitSet::new().unwrap());
}

#[test]
fn waitset_producer_member_is_signalled_on_descriptors() {
    waitset_producer_member_is_signalled(|| WaitSet::with_epoll().unwrap());
}
