//! The handle API in one process: heap rings and shared-memory rings, with
//! the producer and consumer on two threads where it matters. These tests
//! make no cross-process assumptions, so Miri and ThreadSanitizer run the
//! heap ones.

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use shmpipe::{
    Consumer, Producer, RecvError, Ring, RingBuilder, SendError, TryRecvError, TrySendError,
    WaitStrategy,
};

fn heap(slots: u64, slot_size: u64) -> Ring {
    RingBuilder::new()
        .slots(slots)
        .slot_size(slot_size)
        .create_in_process()
        .unwrap()
}

fn pair(ring: &Ring) -> (Producer, Consumer) {
    (ring.producer().unwrap(), ring.consumer().unwrap())
}

fn count(n: u64) -> u64 {
    if cfg!(miri) {
        n.min(200)
    } else {
        n
    }
}

#[test]
fn fifo_order_across_many_wraps() {
    let ring = heap(4, 64);
    let (mut tx, mut rx) = pair(&ring);
    let mut buf = [0u8; 56];
    for i in 0..count(1000u64) {
        tx.try_send(i.to_le_bytes()).unwrap();
        if i % 3 == 0 {
            tx.try_send((i + 1_000_000).to_le_bytes()).unwrap();
            assert_eq!(rx.try_recv(&mut buf).unwrap(), 8);
            assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), i);
            assert_eq!(rx.try_recv(&mut buf).unwrap(), 8);
            assert_eq!(
                u64::from_le_bytes(buf[..8].try_into().unwrap()),
                i + 1_000_000
            );
        } else {
            assert_eq!(rx.try_recv(&mut buf).unwrap(), 8);
            assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), i);
        }
    }
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Empty));
}

#[test]
fn full_and_empty_hand_back_and_count() {
    let ring = heap(2, 64);
    let (mut tx, mut rx) = pair(&ring);
    assert!(rx.is_empty() && tx.is_empty());
    tx.try_send(b"a").unwrap();
    tx.try_send(b"b").unwrap();
    assert!(tx.is_full() && rx.is_full());
    assert_eq!(tx.len(), 2);
    let v = vec![1u8, 2, 3];
    match tx.try_send(v) {
        Err(TrySendError::Full(v)) => assert_eq!(v, [1, 2, 3]),
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.try_recv_vec().unwrap(), b"a");
    assert_eq!(rx.try_recv_vec().unwrap(), b"b");
    assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty));
    assert_eq!(tx.stats().messages, 2);
    assert_eq!(tx.stats().bytes, 2);
    assert_eq!(tx.stats().stalls, 1);
    assert_eq!(rx.stats().messages, 2);
    assert_eq!(rx.stats().stalls, 1);
    let info = ring.info();
    assert_eq!(info.producer.stats.messages, 2);
    assert_eq!(info.consumer.stats.stalls, 1);
    assert_eq!((info.head, info.tail), (2, 2));
}

#[test]
fn too_large_is_refused_whole() {
    // 2 slots of 64 bytes hold one message of up to 2 x 64 - 16 bytes.
    let ring = heap(2, 64);
    let (mut tx, mut rx) = pair(&ring);
    assert_eq!(tx.max_message(), 48);
    assert_eq!(tx.message_limit(), 112);
    let big = vec![7u8; 113];
    match tx.try_send(&big) {
        // Borrowed: nothing to hand back (the caller has it).
        Err(TrySendError::TooLarge {
            msg: (),
            len: 113,
            max: 112,
        }) => {}
        other => panic!("{other:?}"),
    }
    match tx.send_timeout(big.clone(), Duration::from_millis(1)) {
        Err(
            e @ SendError::TooLarge {
                len: 113, max: 112, ..
            },
        ) => {
            let text = e.to_string();
            assert!(text.contains("113") && text.contains("112"), "{text}");
            assert!(text.contains("RingBuilder::message_limit"), "{text}");
            assert_eq!(e.into_inner(), big);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty));
    tx.try_send(&big[..112]).unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), &big[..112]);
    tx.try_send(&big[..48]).unwrap();
    assert_eq!(rx.try_recv_vec().unwrap().len(), 48);
}

#[test]
fn small_buffer_leaves_the_message_in_place() {
    let ring = heap(2, 64);
    let (mut tx, mut rx) = pair(&ring);
    tx.try_send(b"0123456789").unwrap();
    let mut small = [0u8; 4];
    assert_eq!(
        rx.try_recv(&mut small),
        Err(TryRecvError::BufferTooSmall { needed: 10 })
    );
    let mut buf = [0u8; 10];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 10);
    assert_eq!(&buf, b"0123456789");
}

#[test]
fn empty_messages_are_messages() {
    let ring = heap(4, 64);
    let (mut tx, mut rx) = pair(&ring);
    tx.try_send([]).unwrap();
    tx.try_send(b"x").unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 0);
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 1);
}

#[test]
fn zero_copy_commit_and_abandon() {
    let ring = heap(2, 128);
    let (mut tx, mut rx) = pair(&ring);
    {
        let mut slot = tx.try_reserve().unwrap();
        assert_eq!(slot.capacity(), 112);
        slot[..5].copy_from_slice(b"draft");
        // Dropped without commit: nothing is published.
    }
    assert!(rx.try_borrow().unwrap_err().is_empty());
    let mut slot = tx.try_reserve().unwrap();
    slot[..4].copy_from_slice(b"real");
    slot.commit(4);
    {
        let msg = rx.try_borrow().unwrap();
        assert_eq!(&*msg, b"real");
        // Still held: the slot is not released yet.
        assert_eq!(tx.len(), 1);
    }
    assert_eq!(tx.len(), 0);
    assert_eq!(rx.stats().messages, 1);
}

#[test]
#[should_panic(expected = "exceeds the slot's capacity")]
fn committing_past_the_slot_panics() {
    let ring = heap(2, 64);
    let mut tx = ring.producer().unwrap();
    tx.try_reserve().unwrap().commit(57);
}

#[test]
fn batches_publish_once_and_partially() {
    let ring = heap(8, 64);
    let (mut tx, mut rx) = pair(&ring);
    let mut batch = tx.try_reserve_batch(5).unwrap();
    assert_eq!(batch.capacity(), 5);
    for i in 0..3u8 {
        batch.push([i; 3]).unwrap();
    }
    assert!(batch.push_with(|b| {
        b[..2].copy_from_slice(b"zz");
        2
    }));
    assert_eq!(batch.len(), 4);
    assert_eq!(batch.remaining(), 1);
    assert!(matches!(
        batch.push([0u8; 100]),
        Err(TrySendError::TooLarge { max: 48, .. })
    ));
    // Nothing is visible before the commit.
    assert_eq!(rx.len(), 0);
    assert_eq!(batch.commit(), 4);
    assert_eq!(rx.len(), 4);
    // An abandoned batch publishes nothing.
    {
        let mut batch = tx.try_reserve_batch(10).unwrap();
        assert_eq!(batch.capacity(), 4, "only 4 slots are free");
        batch.push(b"lost").unwrap();
    }
    let mut seen = Vec::new();
    assert_eq!(rx.try_recv_batch(3, |m| seen.push(m.to_vec())).unwrap(), 3);
    assert_eq!(rx.try_recv_batch(3, |m| seen.push(m.to_vec())).unwrap(), 1);
    assert_eq!(seen, [vec![0; 3], vec![1; 3], vec![2; 3], b"zz".to_vec()]);
    assert!(rx.try_recv_batch(3, |_| ()).unwrap_err().is_empty());
    // A full batch refuses more pushes.
    let mut batch = tx.try_reserve_batch(1).unwrap();
    batch.push(b"a").unwrap();
    assert!(matches!(batch.push(b"b"), Err(TrySendError::Full(_))));
    assert!(!batch.push_with(|_| unreachable!()));
    batch.commit();
}

#[test]
fn producer_drop_drains_then_disconnects() {
    let ring = heap(4, 64);
    let (mut tx, mut rx) = pair(&ring);
    tx.try_send(b"1").unwrap();
    tx.try_send(b"2").unwrap();
    drop(tx);
    let mut buf = [0u8; 8];
    assert_eq!(rx.recv(&mut buf).unwrap(), 1);
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 1);
    assert_eq!(rx.try_recv(&mut buf), Err(TryRecvError::Disconnected));
    assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    assert!(rx.try_borrow().unwrap_err().is_disconnected());
    // A new producer reconnects the ring.
    let mut tx = ring.producer().unwrap();
    tx.try_send(b"3").unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), b"3");
}

#[test]
fn consumer_drop_fails_sends_with_the_message() {
    let ring = heap(4, 64);
    let (mut tx, rx) = pair(&ring);
    drop(rx);
    match tx.try_send(b"m".to_vec()) {
        Err(TrySendError::Disconnected(m)) => assert_eq!(m, b"m"),
        other => panic!("{other:?}"),
    }
    match tx.send(b"n".to_vec()) {
        Err(SendError::Disconnected(m)) => assert_eq!(m, b"n"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        tx.try_reserve(),
        Err(TrySendError::Disconnected(()))
    ));
}

#[test]
fn a_consumer_that_left_before_the_producer_came_does_not_disconnect_it() {
    let ring = heap(4, 64);
    drop(ring.consumer().unwrap());
    let mut tx = ring.producer().unwrap();
    tx.try_send(b"for the next consumer").unwrap();
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), b"for the next consumer");
    drop(rx);
    // This consumer was here while the producer was: now it disconnects.
    assert!(tx.try_send(b"x").unwrap_err().is_disconnected());
}

#[test]
fn sending_before_any_consumer_is_buffered() {
    let ring = heap(4, 64);
    let mut tx = ring.producer().unwrap();
    tx.try_send(b"early").unwrap();
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), b"early");
}

#[test]
fn timeouts_and_past_deadlines() {
    let ring = heap(1, 64);
    let (mut tx, mut rx) = pair(&ring);
    let mut buf = [0u8; 64];
    for strategy in [
        WaitStrategy::Spin,
        WaitStrategy::Park,
        WaitStrategy::DEFAULT,
    ] {
        rx.set_wait_strategy(strategy);
        tx.set_wait_strategy(strategy);
        let t = std::time::Instant::now();
        let d = Duration::from_millis(if cfg!(miri) { 5 } else { 30 });
        assert_eq!(rx.recv_timeout(&mut buf, d), Err(RecvError::Timeout));
        assert!(t.elapsed() >= d, "{strategy:?} returned early");
        // A deadline in the past returns at once.
        let past = std::time::Instant::now() - Duration::from_secs(1);
        assert_eq!(rx.recv_deadline(&mut buf, past), Err(RecvError::Timeout));
        assert!(rx.borrow_deadline(past).unwrap_err().is_timeout());
        tx.try_send(b"x").unwrap();
        let t = std::time::Instant::now();
        assert!(tx.send_timeout(b"y", d).unwrap_err().is_timeout());
        assert!(t.elapsed() >= d);
        assert!(tx.reserve_deadline(past).unwrap_err().is_timeout());
        // A past deadline still takes what is ready.
        assert_eq!(rx.recv_deadline(&mut buf, past).unwrap(), 1);
    }
}

/// A producer that finds the ring full waits, while it spins, for more than
/// one free slot (a refill: see `Producer::send`); it must still go on with
/// the one slot a consumer frees before waiting on the producer itself.
#[test]
fn full_ring_send_takes_a_lone_free_slot() {
    let ring = heap(64, 64);
    let (mut tx, mut rx) = pair(&ring);
    for strategy in [WaitStrategy::Spin, WaitStrategy::DEFAULT] {
        tx.set_wait_strategy(strategy);
        rx.set_wait_strategy(strategy);
        for i in 0..64u8 {
            tx.try_send(&[i][..]).unwrap();
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let consumer = thread::spawn(move || {
            let mut buf = [0u8; 64];
            // One slot freed, then nothing until the blocked send returns.
            assert_eq!(rx.recv(&mut buf).unwrap(), 1);
            done_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the send into the one free slot returned");
            for _ in 0..64 {
                rx.recv(&mut buf).unwrap();
            }
            rx
        });
        tx.send(b"into the freed slot").unwrap();
        done_tx.send(()).unwrap();
        rx = consumer.join().unwrap();
    }
}

fn stream_threads(ring: Ring, messages: u64, strategy: WaitStrategy) {
    let (mut tx, mut rx) = pair(&ring);
    tx.set_wait_strategy(strategy);
    rx.set_wait_strategy(strategy);
    let max = tx.max_message();
    let seed = 42;
    let producer = thread::spawn(move || {
        let mut buf = vec![0u8; max];
        for seq in 0..messages {
            let len = fill_msg(seed, seq, max, &mut buf);
            tx.send(&buf[..len]).unwrap();
        }
    });
    let mut buf = vec![0u8; max];
    for seq in 0..messages {
        let n = rx.recv(&mut buf).unwrap();
        check_msg(seed, seq, max, &buf[..n]).unwrap();
    }
    producer.join().unwrap();
    assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
}

#[test]
fn threads_stream_through_a_heap_ring() {
    with_watchdog(Duration::from_secs(120), || {
        stream_threads(heap(8, 128), count(200_000), WaitStrategy::DEFAULT)
    });
}

#[test]
fn threads_stream_with_park_at_once() {
    with_watchdog(Duration::from_secs(120), || {
        stream_threads(heap(2, 64), count(20_000), WaitStrategy::Park)
    });
}

#[cfg(not(miri))]
#[test]
fn threads_stream_through_shared_memory() {
    let addr = unique("threads");
    let _c = Cleanup(addr.clone());
    let ring = RingBuilder::new()
        .slots(16)
        .slot_size(256)
        .create(&addr)
        .unwrap();
    // The consumer maps the segment a second time, at another address.
    let reader = Ring::open(&addr).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), reader.consumer().unwrap());
    let max = tx.max_message();
    with_watchdog(Duration::from_secs(120), move || {
        let producer = thread::spawn(move || {
            let mut buf = vec![0u8; max];
            for seq in 0..200_000 {
                let len = fill_msg(7, seq, max, &mut buf);
                tx.send(&buf[..len]).unwrap();
            }
        });
        let mut buf = vec![0u8; max];
        for seq in 0..200_000 {
            let n = rx.recv(&mut buf).unwrap();
            check_msg(7, seq, max, &buf[..n]).unwrap();
        }
        producer.join().unwrap();
    });
}

#[test]
fn handles_are_send_but_not_clone() {
    fn assert_send<T: Send>() {}
    assert_send::<Producer>();
    assert_send::<Consumer>();
    // `Producer: !Clone` is checked by the compile_fail doctest on
    // `Producer`.
}
