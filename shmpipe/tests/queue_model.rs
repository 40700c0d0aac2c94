//! Property test (stable toolchain, run by `cargo test`): random sequences
//! of operations on a ring agree with a `VecDeque` model: nothing lost,
//! duplicated, reordered or truncated. `PROPTEST_CASES` raises the number
//! of cases for long runs.

use std::collections::VecDeque;

use proptest::prelude::*;
use shmpipe::{RingBuilder, TryRecvError, TrySendError};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Debug)]
enum Op {
    Send(usize),
    Recv(usize),
    ReserveCommit(usize),
    ReserveAbandon(usize),
    Borrow,
    Batch(Vec<usize>, bool),
    Drain(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..130).prop_map(Op::Send),
        (0usize..130).prop_map(Op::Recv),
        (0usize..113).prop_map(Op::ReserveCommit),
        (0usize..113).prop_map(Op::ReserveAbandon),
        Just(Op::Borrow),
        (proptest::collection::vec(0usize..121, 0..6), any::<bool>())
            .prop_map(|(v, c)| Op::Batch(v, c)),
        (0usize..6).prop_map(Op::Drain),
    ]
}

fn msg(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n as usize * 31 + i) as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    #[test]
    fn operations_agree_with_a_queue(slots_log in 0u32..4, ops in proptest::collection::vec(op(), 1..80)) {
        let slots = 1u64 << slots_log;
        // One slot per message (the limit is one slot's payload), so that
        // the queue model counts slots exactly; multi-slot messages and
        // padding have their own model in `large_messages_agree_with_a_queue`.
        let ring = RingBuilder::new()
            .slots(slots)
            .slot_size(128)
            .message_limit(112)
            .create_in_process()
            .unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let max = tx.max_message();
        prop_assert_eq!(tx.message_limit(), max);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut n = 0u64;
        for op in ops {
            let full = model.len() == slots as usize;
            match op {
                Op::Send(len) => {
                    let m = msg(n, len);
                    n += 1;
                    match tx.try_send(&m) {
                        Ok(()) => { prop_assert!(len <= max && !full); model.push_back(m); }
                        Err(TrySendError::TooLarge { max: mx, .. }) => prop_assert!(len > max && mx == max),
                        Err(TrySendError::Full(_)) => prop_assert!(full && len <= max),
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
                Op::Recv(cap) => {
                    let mut buf = vec![0u8; cap];
                    match rx.try_recv(&mut buf) {
                        Ok(k) => {
                            let want = model.pop_front().unwrap();
                            prop_assert_eq!(&buf[..k], &want[..]);
                        }
                        Err(TryRecvError::Empty) => prop_assert!(model.is_empty()),
                        Err(TryRecvError::BufferTooSmall { needed }) => {
                            prop_assert_eq!(needed, model.front().unwrap().len());
                            prop_assert!(needed > cap);
                        }
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
                Op::ReserveCommit(len) | Op::ReserveAbandon(len) => {
                    let commit = matches!(op, Op::ReserveCommit(_));
                    match tx.try_reserve() {
                        Ok(mut slot) => {
                            prop_assert!(!full);
                            let m = msg(n, len);
                            n += 1;
                            slot[..len].copy_from_slice(&m);
                            if commit {
                                slot.commit(len);
                                model.push_back(m);
                            }
                        }
                        Err(TrySendError::Full(())) => prop_assert!(full),
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
                Op::Borrow => match rx.try_borrow() {
                    Ok(m) => prop_assert_eq!(&*m, &model.pop_front().unwrap()[..]),
                    Err(TryRecvError::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e:?}"),
                },
                Op::Batch(lens, commit) => match tx.try_reserve_batch(lens.len()) {
                    Ok(mut batch) => {
                        let free = slots as usize - model.len();
                        prop_assert_eq!(batch.capacity(), lens.len().max(1).min(free));
                        let mut pushed = Vec::new();
                        for len in lens {
                            let m = msg(n, len);
                            n += 1;
                            if batch.push(&m).is_ok() {
                                pushed.push(m);
                            }
                        }
                        prop_assert_eq!(batch.len(), pushed.len());
                        if commit {
                            prop_assert_eq!(batch.commit(), pushed.len());
                            model.extend(pushed);
                        }
                    }
                    Err(TrySendError::Full(())) => prop_assert!(full),
                    Err(e) => prop_assert!(false, "{e:?}"),
                },
                Op::Drain(k) => {
                    let mut got = Vec::new();
                    match rx.try_recv_batch(k, |m| got.push(m.to_vec())) {
                        Ok(c) => {
                            prop_assert_eq!(c, got.len());
                            prop_assert_eq!(c, k.min(model.len()));
                            for m in got {
                                prop_assert_eq!(m, model.pop_front().unwrap());
                            }
                        }
                        Err(TryRecvError::Empty) => prop_assert!(model.is_empty()),
                        Err(e) => prop_assert!(false, "{e:?}"),
                    }
                }
            }
            prop_assert_eq!(tx.len(), model.len());
            prop_assert_eq!(rx.len(), model.len());
        }
    }

    /// Random lengths up to the ring-wide limit, sent and received one at
    /// a time: whatever fits is delivered byte-identical, in order; a
    /// `Full` send leaves at most a PAD behind, which a receive skips.
    #[test]
    fn large_messages_agree_with_a_queue(
        slots_log in 1u32..5,
        lens in proptest::collection::vec(0usize..2048, 1..60),
    ) {
        let slots = 1u64 << slots_log;
        let ring = RingBuilder::new().slots(slots).slot_size(128).create_in_process().unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let limit = tx.message_limit();
        prop_assert_eq!(limit as u64, slots * 128 - 16);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        for (n, len) in lens.into_iter().enumerate() {
            let m = msg(n as u64, len);
            match tx.try_send(&m) {
                Ok(()) => model.push_back(m),
                Err(TrySendError::TooLarge { len: l, max, .. }) => {
                    prop_assert!(l == len && len > limit && max == limit)
                }
                Err(TrySendError::Full(_)) => {
                    // Drain everything, then it must fit.
                    while let Some(want) = model.pop_front() {
                        prop_assert_eq!(rx.try_recv_vec().unwrap(), want);
                    }
                    prop_assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty));
                    // The retry may publish a PAD to the end of the ring and
                    // find the slots from 0 on still behind it: a receive
                    // skips the PAD, and then the message fits.
                    if let Err(TrySendError::Full(_)) = tx.try_send(&m) {
                        prop_assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty));
                        tx.try_send(&m).unwrap();
                    }
                    model.push_back(m);
                }
                Err(e) => prop_assert!(false, "{e:?}"),
            }
            if n % 3 == 0 {
                if let Some(want) = model.pop_front() {
                    prop_assert_eq!(&*rx.try_borrow().unwrap(), &want[..]);
                }
            }
        }
        while let Some(want) = model.pop_front() {
            prop_assert_eq!(rx.try_recv_vec().unwrap(), want);
        }
        prop_assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty));
    }
}
