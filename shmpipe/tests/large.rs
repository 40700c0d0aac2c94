//! Messages larger than a slot: random sizes from 0 to the limit,
//! byte-identical through every send and receive call, across the wrap;
//! zero-copy reservations of any length; payload alignment.

mod common;

use common::*;
use shmpipe::{RingBuilder, TryRecvError, TrySendError};

/// `try_send` on a ring nobody else writes to: on a ring that pads at the
/// wrap a message that does not fit before the end may come back `Full`
/// with a PAD published; the consumer's next receive skips it (finding
/// nothing else) and the retry fits.
fn send_padded(tx: &mut shmpipe::Producer, rx: &mut shmpipe::Consumer, msg: &[u8]) {
    for _ in 0..2 {
        match tx.try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => {
                assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty), "a PAD only")
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    panic!("still full after the PAD was released");
}

fn body(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (mix(seq ^ (i as u64) << 20) >> 11) as u8)
        .collect()
}

/// Random lengths, mostly multi-slot, through `try_send` and the four
/// receive calls in turn; the ring pads at the wrap.
#[test]
fn random_sizes_round_trip_byte_identical() {
    let ring = RingBuilder::new()
        .slots(16)
        .slot_size(256)
        .create_in_process()
        .unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let limit = tx.message_limit();
    assert_eq!(limit, 16 * 256 - 16);
    let mut buf = vec![0u8; limit];
    let n = scaled(3000);
    for seq in 0..n {
        let len = match seq % 7 {
            0 => 0,
            1 => limit,
            2 => 240,
            3 => 241,
            _ => (mix(seq) % (limit as u64 + 1)) as usize,
        };
        let msg = body(seq, len);
        send_padded(&mut tx, &mut rx, &msg);
        let got = match seq % 4 {
            0 => {
                let k = rx.try_recv(&mut buf).unwrap();
                buf[..k].to_vec()
            }
            1 => rx.try_recv_vec().unwrap(),
            2 => rx.try_borrow().unwrap().to_vec(),
            _ => {
                let mut got = Vec::new();
                while got.is_empty() {
                    rx.try_recv_batch(4, |m| got.push(m.to_vec())).unwrap();
                }
                assert_eq!(got.len(), 1);
                got.pop().unwrap()
            }
        };
        assert_eq!(got.len(), len, "seq {seq}");
        assert!(got == msg, "seq {seq}: bytes differ");
    }
    assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty));
    assert_eq!(rx.stats().messages, n);
    assert_eq!(tx.stats().messages, n);
}

/// A stream of mixed sizes between two threads, blocking calls on both
/// sides, several messages in flight.
#[test]
fn threads_stream_mixed_sizes() {
    let ring = RingBuilder::new()
        .slots(32)
        .slot_size(128)
        .message_limit(2000)
        .create_in_process()
        .unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let n = scaled(20_000);
    with_watchdog(std::time::Duration::from_secs(120), move || {
        let t = std::thread::spawn(move || {
            for seq in 0..n {
                let len = (mix(seq) % 2001) as usize;
                tx.send(body(seq, len)).unwrap();
            }
        });
        for seq in 0..n {
            let len = (mix(seq) % 2001) as usize;
            let got = if seq % 2 == 0 {
                rx.recv_vec_deadline(None).unwrap()
            } else {
                rx.borrow().unwrap().to_vec()
            };
            assert!(got == body(seq, len), "seq {seq}");
        }
        t.join().unwrap();
    });
}

#[test]
fn reserve_len_is_one_slice_and_commits_once() {
    let ring = RingBuilder::new()
        .slots(8)
        .slot_size(256)
        .create_in_process()
        .unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for round in 0..40u64 {
        let len = 100 + (mix(round) % 1800) as usize;
        if tx.try_reserve_len(len).is_err() {
            assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty), "a PAD only");
        }
        let mut slot = tx.try_reserve_len(len).unwrap();
        assert_eq!(slot.capacity(), len);
        // Dirty the whole reservation, then commit less of it: the slots
        // after the message must not read as committed.
        slot.fill(0xff);
        let used = len / 2;
        slot[..used].copy_from_slice(&body(round, used));
        slot.commit(used);
        assert_eq!(rx.try_borrow().unwrap().to_vec(), body(round, used));
        assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty), "round {round}");
    }
    // Too large, and a reservation dropped unpublished.
    assert!(matches!(
        tx.try_reserve_len(8 * 256),
        Err(TrySendError::TooLarge {
            len: 2048,
            max: 2032,
            ..
        })
    ));
    {
        let _unpublished = tx.try_reserve_len(1000).unwrap();
    }
    assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty));
}

#[test]
fn a_message_of_the_whole_ring_waits_for_an_empty_ring() {
    let ring = RingBuilder::new()
        .slots(4)
        .slot_size(64)
        .create_in_process()
        .unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let whole = body(1, 4 * 64 - 16);
    tx.try_send(b"a").unwrap();
    // Needs every slot: full until the consumer has read "a", then it pads
    // to the end of the ring and needs slot 0 onwards to be free.
    assert!(matches!(tx.try_send(&whole), Err(TrySendError::Full(_))));
    assert_eq!(rx.try_recv_vec().unwrap(), b"a");
    match tx.try_send(&whole) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty), "a PAD only");
            tx.try_send(&whole).unwrap();
        }
        Err(e) => panic!("{e:?}"),
    }
    assert!(rx.try_recv_vec().unwrap() == whole);
}

#[test]
fn payloads_are_aligned_as_asked() {
    for align in [8u64, 16, 32, 64, 128, 4096] {
        let ring = RingBuilder::new()
            .slots(8)
            .slot_size(8192)
            .payload_align(align)
            .create_in_process()
            .unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        assert_eq!(rx.payload_align() as u64, align);
        assert_eq!(ring.info().payload_offset, align.max(16));
        for seq in 0..20u64 {
            let len = (mix(seq) % 20_000) as usize;
            send_padded(&mut tx, &mut rx, &body(seq, len));
            let m = rx.try_borrow().unwrap();
            assert_eq!(m.as_ptr() as usize % align as usize, 0, "align {align}");
            assert!(*m == body(seq, len)[..]);
        }
    }
    assert!(RingBuilder::new()
        .payload_align(24)
        .create_in_process()
        .is_err());
    assert!(RingBuilder::new()
        .slot_size(192)
        .payload_align(128)
        .create_in_process()
        .is_err());
}

/// A memfd ring whose slot area is one page is mapped twice: a
/// `try_reserve_len` that runs past the last slot is one writable slice
/// (no PAD), its bytes past the end land in slot 0 on, and `try_borrow`
/// hands the message back as one slice; payload alignment holds across the
/// wrap. The same on a padded ring goes to slot 0 after a PAD.
#[test]
fn reserve_len_and_borrow_cross_the_wrap_when_mapped_twice() {
    for double_map in [true, false] {
        let ring = RingBuilder::new()
            .slots(16)
            .slot_size(256)
            .double_map(double_map)
            .create_memfd("large-wrap")
            .unwrap();
        assert_eq!(ring.info().contiguous_wrap, double_map);
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        // Move to slot 14 (of 0..16), learning where slot 0's payload is.
        let slot0 = {
            tx.try_send(b"first").unwrap();
            rx.try_borrow().unwrap().as_ptr() as usize
        };
        for _ in 1..14 {
            tx.try_send(b"x").unwrap();
            rx.try_recv_vec().unwrap();
        }
        assert_eq!(tx.position(), 14);
        // 1000 bytes take 4 slots: 14, 15, then 0 and 1 again.
        let msg = body(7, 1000);
        let r = tx.try_reserve_len(msg.len());
        // Every slot is free: it fits at once. (A padded ring published a
        // PAD over slots 14-15 first; the consumer skips it.)
        let mut slot = r.unwrap();
        let at = slot.as_ptr() as usize;
        slot.copy_from_slice(&msg);
        slot.commit(msg.len());
        let got = rx.try_borrow().unwrap();
        assert!(*got == msg[..]);
        assert_eq!(
            got.as_ptr() as usize,
            at,
            "the consumer reads it where it was written"
        );
        assert_eq!(at % 16, 0, "aligned across the wrap too");
        if double_map {
            assert_eq!(
                at,
                slot0 + 14 * 256,
                "at slot 14, running past the area's end"
            );
            assert!(at + msg.len() > slot0 - 16 + 16 * 256);
        } else {
            assert_eq!(at, slot0, "after the PAD, at slot 0");
        }
        drop(got);
        assert_eq!(rx.try_recv_vec(), Err(TryRecvError::Empty));
    }
}
