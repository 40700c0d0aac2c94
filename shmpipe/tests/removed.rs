//! `Ring::remove` marks the ring removed and wakes both sides: a blocked
//! receive or send returns `Removed` within one wake-up, with either wait
//! strategy, and a side of a removed ring cannot be claimed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shmpipe::{Error, RecvError, Ring, RingBuilder, SendError, WaitStrategy};

/// How long a woken side may take to return: one wake-up, with slack for a
/// loaded machine, far below the 10 s heartbeat the rings get here, so only
/// the wake-up can end the wait in time.
const PROMPT: Duration = Duration::from_millis(500);

fn strategies() -> [WaitStrategy; 2] {
    [
        WaitStrategy::Park,
        WaitStrategy::SpinThenPark {
            spin: Duration::from_micros(50),
        },
    ]
}

#[test]
fn a_blocked_receive_returns_removed() {
    for strategy in strategies() {
        let addr = unique("removed-recv");
        let _c = Cleanup(addr.clone());
        let ring = RingBuilder::new()
            .slots(4)
            .wait_strategy(strategy)
            .heartbeat(Duration::from_secs(10))
            .create(&addr)
            .unwrap();
        let _tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let waiter = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let r = rx.recv_timeout(&mut buf, Duration::from_secs(20));
            (r, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(200)); // parked by now
        let removed_at = Instant::now();
        Ring::remove(&addr, true).unwrap();
        let (r, returned_at) = waiter.join().unwrap();
        assert_eq!(r, Err(RecvError::Removed), "{strategy:?}");
        let took = returned_at - removed_at;
        eprintln!("{strategy:?}: returned {took:?} after the removal");
        assert!(
            took < PROMPT,
            "{strategy:?}: returned {took:?} after removal"
        );
        assert!(matches!(ring.consumer(), Err(Error::Removed { .. })));
        assert!(matches!(ring.producer(), Err(Error::Removed { .. })));
    }
}

#[test]
fn a_blocked_send_on_a_full_ring_returns_removed() {
    for strategy in strategies() {
        let addr = unique("removed-send");
        let _c = Cleanup(addr.clone());
        let ring = RingBuilder::new()
            .slots(2)
            .wait_strategy(strategy)
            .heartbeat(Duration::from_secs(10))
            .create(&addr)
            .unwrap();
        let _rx = ring.consumer().unwrap();
        let mut tx = ring.producer().unwrap();
        tx.try_send(b"1").unwrap();
        tx.try_send(b"2").unwrap();
        let waiter = std::thread::spawn(move || {
            // Owned, so that the failed send hands it back.
            let r = tx.send_timeout(b"3".to_vec(), Duration::from_secs(20));
            (r, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(200));
        let removed_at = Instant::now();
        Ring::remove(&addr, true).unwrap();
        let (r, returned_at) = waiter.join().unwrap();
        match r {
            Err(SendError::Removed(m)) => assert_eq!(m, b"3"),
            other => panic!("{strategy:?}: {other:?}"),
        }
        let took = returned_at - removed_at;
        eprintln!("{strategy:?}: returned {took:?} after the removal");
        assert!(
            took < PROMPT,
            "{strategy:?}: returned {took:?} after removal"
        );
    }
}

#[test]
fn removal_refused_marks_nothing() {
    let addr = unique("removed-refused");
    let _c = Cleanup(addr.clone());
    let ring = RingBuilder::new().slots(4).create(&addr).unwrap();
    let mut tx = ring.producer().unwrap();
    assert!(matches!(
        Ring::remove(&addr, false),
        Err(Error::InUse { .. })
    ));
    // Still a working ring.
    tx.try_send(b"x").unwrap();
    let mut rx = Ring::open(&addr).unwrap().consumer().unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), b"x");
}
