//! Untrusted memory: corrupt one shared field at a time through a second
//! handle on the segment (the file under /dev/shm), then open or read, and
//! expect the matching typed error, never a panic or an out-of-bounds read.
//!
//! The byte offsets below are the documented layout (docs/design.md) for
//! x86-64; this file doubles as a regression test of that layout.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::*;
use shmpipe::{Error, Expected, Ring, RingBuilder, TryRecvError, TrySendError};

const MAGIC: u64 = 0;
const VERSION: u64 = 8;
const INIT_STATE: u64 = 12;
const HEADER_LEN: u64 = 16;
const SLOT_COUNT: u64 = 24;
const SLOT_SIZE: u64 = 32;
const PAYLOAD: u64 = 40;
const TOTAL_LEN: u64 = 48;
const PAGE_SIZE: u64 = 56;
const CREATOR_PID: u64 = 64;
const FLAGS: u64 = 68;
const TAIL: u64 = 128;
const HEAD: u64 = 256;
const PRODUCER_CLAIM: u64 = 384;
const SLOTS: u64 = 896;

struct Fixture {
    addr: String,
    file: std::fs::File,
    _cleanup: Cleanup,
}

impl Fixture {
    /// A ring of 8 slots of 128 bytes, and a raw handle on its bytes.
    fn new() -> Fixture {
        let addr = unique("valid");
        let cleanup = Cleanup(addr.clone());
        RingBuilder::new()
            .slots(8)
            .slot_size(128)
            .create(&addr)
            .unwrap();
        let path = format!("/dev/shm/{}", addr.strip_prefix("shm:").unwrap());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        Fixture {
            addr,
            file,
            _cleanup: cleanup,
        }
    }

    fn put_u64(&self, off: u64, v: u64) {
        self.file.write_all_at(&v.to_le_bytes(), off).unwrap();
    }

    fn put_u32(&self, off: u64, v: u32) {
        self.file.write_all_at(&v.to_le_bytes(), off).unwrap();
    }

    fn get_u64(&self, off: u64) -> u64 {
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, off).unwrap();
        u64::from_le_bytes(b)
    }

    fn open(&self) -> Result<Ring, Error> {
        RingBuilder::new()
            .open_timeout(Duration::from_millis(50))
            .open(&self.addr)
    }

    fn expect_corrupt(&self, field: &str) -> shmpipe::Corruption {
        match self.open() {
            Err(Error::Corrupt { corruption, .. }) if corruption.field == field => corruption,
            other => panic!("expected Corrupt {{ field: {field} }}, got {other:?}"),
        }
    }
}

#[test]
fn layout_offsets_match_the_design_doc() {
    let f = Fixture::new();
    assert_eq!(f.get_u64(MAGIC).to_le_bytes(), *b"shmpipe\0");
    assert_eq!(f.get_u64(VERSION) & 0xffff_ffff, 2);
    assert_eq!(f.get_u64(VERSION) >> 32, 2, "init_state READY");
    assert_eq!(f.get_u64(HEADER_LEN), SLOTS);
    assert_eq!(f.get_u64(SLOT_COUNT), 8);
    assert_eq!(f.get_u64(SLOT_SIZE), 128);
    assert_eq!(f.get_u64(PAYLOAD), 120);
    assert_eq!(f.get_u64(TOTAL_LEN), SLOTS + 8 * 128);
    assert_eq!(f.get_u64(PAGE_SIZE), 4096);
    f.open().unwrap();
}

#[test]
fn reserved_flag_bits_are_corruption() {
    let f = Fixture::new();
    f.put_u32(FLAGS, 0x7fff_ffff);
    let c = f.expect_corrupt("flags");
    assert_eq!(c.found, 0x7fff_ffff);
    f.put_u32(FLAGS, 0);
    f.open().unwrap();
}

#[test]
fn a_creator_pid_beyond_any_pid_max_is_corruption() {
    let f = Fixture::new();
    f.put_u32(CREATOR_PID, u32::MAX);
    let c = f.expect_corrupt("creator_pid");
    assert_eq!(c.found, u64::from(u32::MAX));
    assert_eq!(
        c.expected,
        Expected::Range {
            min: 0,
            max: (1 << 22) - 1
        }
    );
    // The largest pid Linux can hand out is fine.
    f.put_u32(CREATOR_PID, (1 << 22) - 1);
    f.open().unwrap();
}

#[test]
fn bad_magic() {
    let f = Fixture::new();
    f.put_u64(MAGIC, 0x1234_5678);
    match f.open() {
        Err(
            e @ Error::BadMagic {
                found: 0x1234_5678, ..
            },
        ) => {
            assert!(e.to_string().contains("not a shmpipe ring"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn version_mismatch() {
    let f = Fixture::new();
    f.put_u32(VERSION, 99);
    match f.open() {
        Err(
            e @ Error::VersionMismatch {
                found: 99,
                expected: 2,
                ..
            },
        ) => assert!(e.to_string().contains("same shmpipe version")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn half_initialised_header_times_out() {
    let f = Fixture::new();
    f.put_u32(INIT_STATE, 1);
    match f.open() {
        Err(Error::NotInitialized { waited, .. }) => assert!(waited >= Duration::from_millis(50)),
        other => panic!("{other:?}"),
    }
    // Zero-filled (the creator died before writing anything).
    f.put_u64(MAGIC, 0);
    f.put_u32(INIT_STATE, 0);
    assert!(matches!(f.open(), Err(Error::NotInitialized { .. })));
}

#[test]
fn bad_init_state() {
    let f = Fixture::new();
    f.put_u32(INIT_STATE, 7);
    f.expect_corrupt("init_state");
}

#[test]
fn bad_header_len() {
    let f = Fixture::new();
    f.put_u64(HEADER_LEN, 64);
    let c = f.expect_corrupt("header_len");
    assert_eq!(c.found, 64);
    assert_eq!(c.expected, Expected::Exactly(SLOTS));
}

#[test]
fn bad_slot_count() {
    let f = Fixture::new();
    for bad in [0, 3, 1 << 40] {
        f.put_u64(SLOT_COUNT, bad);
        assert_eq!(f.expect_corrupt("slot_count").found, bad);
    }
}

#[test]
fn bad_slot_size() {
    let f = Fixture::new();
    for bad in [0, 100, 1 << 31] {
        f.put_u64(SLOT_SIZE, bad);
        assert_eq!(f.expect_corrupt("slot_size").found, bad);
    }
}

#[test]
fn bad_payload_capacity() {
    let f = Fixture::new();
    f.put_u64(PAYLOAD, 4000);
    f.expect_corrupt("payload_capacity");
}

#[test]
fn geometry_larger_than_the_segment() {
    let f = Fixture::new();
    // A consistent header claiming 1024 slots in a segment made for 8.
    f.put_u64(SLOT_COUNT, 1024);
    f.put_u64(TOTAL_LEN, SLOTS + 1024 * 128);
    let c = f.expect_corrupt("total_len");
    assert_eq!(c.found, SLOTS + 1024 * 128);
    // And an inconsistent one.
    f.put_u64(SLOT_COUNT, 8);
    f.put_u64(TOTAL_LEN, 5);
    f.expect_corrupt("total_len");
}

#[test]
fn bad_page_size() {
    let f = Fixture::new();
    f.put_u64(PAGE_SIZE, 3000);
    f.expect_corrupt("page_size");
}

#[test]
fn truncated_segment() {
    let f = Fixture::new();
    f.file.set_len(100).unwrap();
    assert!(matches!(f.open(), Err(Error::NotInitialized { .. })));
}

#[test]
fn not_a_ring_at_all() {
    let f = Fixture::new();
    let junk: Vec<u8> = (0..4096u32).map(|i| (mix(i as u64) >> 7) as u8).collect();
    f.file.write_all_at(&junk, 0).unwrap();
    assert!(matches!(f.open(), Err(Error::BadMagic { .. })));
}

#[test]
fn corrupt_tail_on_the_data_path() {
    let f = Fixture::new();
    let ring = f.open().unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_send(b"ok").unwrap();
    let mut buf = [0u8; 120];
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 2);
    // tail beyond head + capacity. A caught-up single receive polls the
    // next slot's commit word, not `tail`: it sees nothing ready. Every
    // call that reads `tail` (batches, the re-check before sleeping)
    // reports the corruption.
    f.put_u64(TAIL, 1 + 8 + 5);
    for _ in 0..2 {
        assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
        match rx.try_recv_batch(4, |_| panic!("no message is valid")) {
            Err(TryRecvError::Corrupt(c)) => {
                assert_eq!(c.field, "tail");
                assert_eq!(c.found, 14);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(rx.try_borrow(), Err(TryRecvError::Empty)));
    assert!(matches!(
        rx.recv_timeout(&mut buf, Duration::from_millis(10)),
        Err(shmpipe::RecvError::Corrupt(_))
    ));
    // tail moving backwards (below a value the consumer has read; a tail
    // behind head by less than a lap is not corruption in itself: the
    // consumer may read a message by its commit word before the producer's
    // tail store is seen).
    f.put_u64(TAIL, 1);
    assert!(matches!(
        rx.try_recv_batch(4, |_| panic!("nothing is waiting")),
        Err(TryRecvError::Empty)
    ));
    f.put_u64(TAIL, 0);
    assert!(matches!(
        rx.try_recv_batch(4, |_| panic!("no message is valid")),
        Err(TryRecvError::Corrupt(c)) if c.field == "tail"
    ));
    // A new consumer refuses the inconsistent indices outright.
    drop(rx);
    f.put_u64(TAIL, 1000);
    assert!(matches!(ring.consumer(), Err(Error::Corrupt { .. })));
}

#[test]
fn corrupt_slot_length_on_the_data_path() {
    let f = Fixture::new();
    let ring = f.open().unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.try_send(b"first").unwrap();
    tx.try_send(b"second").unwrap();
    // Slot 1's length word claims more than a slot holds.
    f.put_u32(SLOTS + 128, 100_000);
    let mut buf = vec![0u8; 1 << 20];
    let mut got = Vec::new();
    // The good message is delivered; the bad one is reported next.
    assert_eq!(rx.try_recv_batch(8, |m| got.push(m.to_vec())).unwrap(), 1);
    assert_eq!(got, [b"first".to_vec()]);
    match rx.try_recv(&mut buf) {
        Err(TryRecvError::Corrupt(c)) => {
            assert_eq!(c.field, "slot length");
            assert_eq!(c.found, 100_000);
            assert_eq!(c.expected, Expected::Range { min: 0, max: 120 });
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(rx.try_borrow(), Err(TryRecvError::Corrupt(_))));
    assert!(matches!(rx.try_recv_vec(), Err(TryRecvError::Corrupt(_))));
}

#[test]
fn corrupt_head_seen_by_the_producer() {
    let f = Fixture::new();
    let ring = f.open().unwrap();
    let mut tx = ring.producer().unwrap();
    for i in 0..8u8 {
        tx.try_send([i]).unwrap();
    }
    // head beyond tail: the consumer claims to have read unwritten slots.
    f.put_u64(HEAD, 20);
    match tx.try_send(*b"x") {
        Err(TrySendError::Corrupt { msg, corruption }) => {
            assert_eq!(&msg, b"x");
            assert_eq!(corruption.field, "head");
            assert_eq!(corruption.found, 20);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupt_claim_state() {
    let f = Fixture::new();
    f.put_u64(PRODUCER_CLAIM, u64::MAX);
    let ring = f.open().unwrap();
    match ring.producer() {
        Err(Error::Corrupt { corruption, .. }) => assert_eq!(corruption.field, "claim state"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ring.info().producer.state,
        shmpipe::SideState::Invalid { state: 3 }
    ));
}

/// Writes message `msg` into the slot for `pos` as a producer would, up to
/// and including its commit word, without storing `tail`: what a producer
/// killed between the two stores leaves behind.
fn commit_without_tail(f: &Fixture, pos: u64, msg: &[u8]) {
    let slot = SLOTS + (pos % 8) * 128;
    f.file.write_all_at(msg, slot + 8).unwrap();
    f.put_u32(slot, msg.len() as u32);
    f.put_u32(slot + 4, (pos + 1) as u32);
}

#[test]
fn a_message_committed_without_its_tail_store_is_delivered_once() {
    // The consumer reads it by its commit word before any producer
    // returns; the next producer takes it into the stream and continues.
    let f = Fixture::new();
    let ring = f.open().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut buf = [0u8; 120];
    commit_without_tail(&f, 0, b"orphan");
    assert_eq!(f.get_u64(TAIL), 0);
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"orphan");
    let mut tx = ring.producer().unwrap();
    assert_eq!(tx.position(), 1, "the new producer continues after it");
    assert_eq!(f.get_u64(TAIL), 1);
    tx.try_send(b"next").unwrap();
    assert_eq!(rx.try_recv(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"next");
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));

    // Two orphans, none read yet: the next producer takes both.
    drop(tx);
    commit_without_tail(&f, 2, b"two");
    commit_without_tail(&f, 3, b"three");
    let tx = ring.producer().unwrap();
    assert_eq!(tx.position(), 4);
    let mut got = Vec::new();
    rx.try_recv_batch(8, |m| got.push(m.to_vec())).unwrap();
    assert_eq!(got, [b"two".to_vec(), b"three".to_vec()]);
    // A commit word for a later lap's position is "not yet", never a
    // message: the slot for position 4 (slot 4) claims position 12.
    commit_without_tail(&f, 12, b"future");
    assert!(matches!(rx.try_recv(&mut buf), Err(TryRecvError::Empty)));
}

#[test]
fn a_consumer_ahead_of_uncommitted_slots_is_corruption_for_the_next_producer() {
    // head past tail with no commit words behind it: nobody committed what
    // the consumer claims to have read.
    let f = Fixture::new();
    let ring = f.open().unwrap();
    f.put_u64(HEAD, 2);
    match ring.producer() {
        Err(Error::Corrupt { corruption, .. }) => assert_eq!(corruption.field, "tail"),
        other => panic!("{other:?}"),
    }
}
