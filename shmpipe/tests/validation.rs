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
const PAYLOAD_OFFSET: u64 = 80;
const PAYLOAD_ALIGN: u64 = 84;
const MESSAGE_LIMIT: u64 = 88;
const SLOTS_OFFSET: u64 = 96;
const WRAP_MODE: u64 = 104;
const META_RESERVED: u64 = 108;
const TYPE_SIZE: u64 = 128;
const TYPE_HASH: u64 = 136;
const TYPE_ALIGN: u64 = 144;
const TYPE_NAME: u64 = 152;
const TAIL: u64 = 256;
const HEAD: u64 = 384;
const PRODUCER_CLAIM: u64 = 512;
const SLOTS: u64 = 1024;
/// Offset of the payload in a slot (the default alignment, 16).
const PAYLOAD_AT: u64 = 16;

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
    assert_eq!(f.get_u64(VERSION) & 0xffff_ffff, 3);
    assert_eq!(f.get_u64(VERSION) >> 32, 2, "init_state READY");
    assert_eq!(f.get_u64(HEADER_LEN), SLOTS);
    assert_eq!(f.get_u64(SLOT_COUNT), 8);
    assert_eq!(f.get_u64(SLOT_SIZE), 128);
    assert_eq!(f.get_u64(PAYLOAD), 112);
    assert_eq!(f.get_u64(TOTAL_LEN), SLOTS + 8 * 128);
    assert_eq!(f.get_u64(PAGE_SIZE), 4096);
    assert_eq!(f.get_u64(PAYLOAD_OFFSET), 16 | (16 << 32), "offset, align");
    assert_eq!(f.get_u64(MESSAGE_LIMIT), 8 * 128 - 16);
    assert_eq!(f.get_u64(SLOTS_OFFSET), SLOTS);
    assert_eq!(f.get_u64(WRAP_MODE), 0, "pads at the wrap, reserved zero");
    assert_eq!(f.get_u64(TYPE_SIZE) | f.get_u64(TYPE_HASH), 0, "untyped");
    let info = f.open().unwrap().info();
    assert_eq!((info.payload_align, info.payload_offset), (16, 16));
    assert_eq!(info.message_limit, 8 * 128 - 16);
    assert!(!info.contiguous_wrap);
    assert_eq!(info.fingerprint, None);
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
                expected: 3,
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
    let mut buf = [0u8; 112];
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
fn a_pacing_consumer_validates_the_tail_it_reads() {
    // A consumer that takes 16 messages in a row by their commit words,
    // never finding the ring empty, reads `tail` to pace itself (see
    // `Consumer::set_pacing`): a hostile `tail` there is `Corrupt`, and
    // with pacing off the same stream never reads it.
    for pacing in [true, false] {
        let f = Fixture::new();
        let ring = f.open().unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        assert!(rx.pacing());
        rx.set_pacing(pacing);
        assert_eq!(rx.pacing(), pacing);
        let mut buf = [0u8; 112];
        for i in 0..15u64 {
            tx.try_send(&i.to_le_bytes()).unwrap();
            assert_eq!(rx.try_recv(&mut buf).unwrap(), 8);
            assert_eq!(buf[..8], i.to_le_bytes());
        }
        tx.try_send(&15u64.to_le_bytes()).unwrap();
        f.put_u64(TAIL, 16 + 8 + 3);
        match rx.try_recv(&mut buf) {
            Err(TryRecvError::Corrupt(c)) if pacing => {
                assert_eq!(c.field, "tail");
                assert_eq!(c.found, 27);
            }
            Ok(8) if !pacing => assert_eq!(buf[..8], 15u64.to_le_bytes()),
            other => panic!("pacing {pacing}: {other:?}"),
        }
    }
}

#[test]
fn a_forged_tail_never_redelivers_last_laps_slots() {
    // `tail` moved a whole lap ahead (the most the index check allows),
    // over slots that still hold the last lap's messages. Whichever call
    // reads it (a pacing single receive, a batch), the message really
    // committed is delivered and the first stale slot is `Corrupt`, by its
    // commit word: never a message delivered twice.
    for batch in [false, true] {
        let f = Fixture::new();
        let ring = f.open().unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut buf = [0u8; 112];
        for i in 0..15u64 {
            tx.try_send(&i.to_le_bytes()).unwrap();
            assert_eq!(rx.try_recv(&mut buf).unwrap(), 8);
        }
        tx.try_send(&15u64.to_le_bytes()).unwrap();
        f.put_u64(TAIL, 15 + 8);
        let mut got = Vec::new();
        let err = loop {
            let r = if batch {
                rx.try_recv_batch(8, |m| got.push(u64::from_le_bytes(m.try_into().unwrap())))
                    .map(|_| ())
            } else {
                rx.try_recv(&mut buf)
                    .map(|_| got.push(u64::from_le_bytes(buf[..8].try_into().unwrap())))
            };
            if let Err(e) = r {
                break e;
            }
        };
        assert_eq!(got, [15], "batch {batch}");
        match err {
            TryRecvError::Corrupt(c) => assert_eq!(c.field, "commit word", "batch {batch}"),
            other => panic!("batch {batch}: {other:?}"),
        }
        assert_eq!(rx.position(), 16);
    }
}

#[test]
fn a_pad_at_the_first_slot_is_corruption() {
    // No producer pads at slot 0 (a message always fits from there). A
    // PAD there would let a hostile producer make the consumer release
    // lap after lap, one store each: refused instead, nothing released.
    let f = Fixture::new();
    let ring = f.open().unwrap();
    let mut rx = ring.consumer().unwrap();
    f.put_u64(SLOTS + 8, 8); // extent: the whole ring
    f.put_u32(SLOTS, 2 << 30); // the PAD mark
    f.put_u32(SLOTS + 4, 1); // slot 0's commit word for position 0
    let mut buf = [0u8; 112];
    match rx.try_recv(&mut buf) {
        Err(TryRecvError::Corrupt(c)) => assert_eq!(c.field, "pad length"),
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.position(), 0);
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
            assert_eq!(c.expected, Expected::Range { min: 0, max: 112 });
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
    f.file.write_all_at(msg, slot + PAYLOAD_AT).unwrap();
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
    let mut buf = [0u8; 112];
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

// Layout v3: the payload placement, the message limit, the wrap mode and
// the type fingerprint, each corrupted alone.

#[test]
fn bad_payload_alignment() {
    let f = Fixture::new();
    for bad in [0u32, 4, 24, 8192] {
        f.put_u32(PAYLOAD_ALIGN, bad);
        assert_eq!(f.expect_corrupt("payload_align").found, u64::from(bad));
    }
    // 256 is a power of two but does not divide the 128-byte slots.
    f.put_u32(PAYLOAD_ALIGN, 256);
    f.expect_corrupt("payload_align");
    f.put_u32(PAYLOAD_ALIGN, 16);
    f.open().unwrap();
}

#[test]
fn bad_payload_offset() {
    let f = Fixture::new();
    for bad in [0u32, 8, 17, 32, 4096] {
        f.put_u32(PAYLOAD_OFFSET, bad);
        let c = f.expect_corrupt("payload_offset");
        assert_eq!(
            (c.found, c.expected),
            (u64::from(bad), Expected::Exactly(16))
        );
    }
    // A consistent alignment of 64 with an offset of 64 is fine, but the
    // payload capacity must agree.
    f.put_u32(PAYLOAD_ALIGN, 64);
    f.put_u32(PAYLOAD_OFFSET, 64);
    f.expect_corrupt("payload_capacity");
    f.put_u64(PAYLOAD, 64);
    f.expect_corrupt("message_limit");
    f.put_u64(MESSAGE_LIMIT, 8 * 128 - 64);
    let info = f.open().unwrap().info();
    assert_eq!((info.payload_align, info.max_message), (64, 64));
}

#[test]
fn bad_message_limit() {
    let f = Fixture::new();
    f.put_u64(MESSAGE_LIMIT, 8 * 128 - 15);
    let c = f.expect_corrupt("message_limit");
    assert_eq!(
        c.expected,
        Expected::Range {
            min: 0,
            max: 8 * 128 - 16
        }
    );
    f.put_u64(MESSAGE_LIMIT, u64::MAX);
    f.expect_corrupt("message_limit");
    f.put_u64(MESSAGE_LIMIT, 100);
    assert_eq!(f.open().unwrap().info().message_limit, 100);
}

#[test]
fn bad_wrap_mode_and_slots_offset() {
    let f = Fixture::new();
    f.put_u32(WRAP_MODE, 2);
    f.expect_corrupt("wrap_mode");
    // Double mapping needs a slot area of whole pages (8 x 128 is not).
    f.put_u32(WRAP_MODE, 1);
    f.expect_corrupt("slots_offset");
    f.put_u32(WRAP_MODE, 0);
    f.put_u64(SLOTS_OFFSET, 4096);
    let c = f.expect_corrupt("slots_offset");
    assert_eq!(c.expected, Expected::Exactly(SLOTS));
    f.put_u64(SLOTS_OFFSET, SLOTS);
    f.put_u32(META_RESERVED, 1);
    f.expect_corrupt("meta reserved");
}

#[test]
fn bad_type_fingerprint() {
    let f = Fixture::new();
    // A type with no hash, or a non-power-of-two alignment.
    f.put_u64(TYPE_SIZE, 64);
    f.expect_corrupt("type_align");
    f.put_u64(TYPE_HASH, 0xfeed);
    f.put_u32(TYPE_ALIGN, 3);
    f.expect_corrupt("type_align");
    f.put_u32(TYPE_ALIGN, 64);
    // A name that is not UTF-8, or not zero-padded.
    f.file.write_all_at(&[0xff, 0xfe], TYPE_NAME).unwrap();
    f.expect_corrupt("type_name");
    f.file.write_all_at(b"Tick\0x", TYPE_NAME).unwrap();
    f.expect_corrupt("type_name");
    f.file.write_all_at(b"Tick\0\0", TYPE_NAME).unwrap();
    let fp = f.open().unwrap().info().fingerprint.unwrap();
    assert_eq!(fp, shmpipe::TypeFingerprint::new(64, 64, 0xfeed, "Tick"));
}

#[test]
fn a_fingerprint_mismatch_is_refused_on_open() {
    use shmpipe::TypeFingerprint;
    let addr = unique("typed");
    let _cleanup = Cleanup(addr.clone());
    let tick = TypeFingerprint::new(64, 64, 0xabc, "Tick");
    RingBuilder::new()
        .slots(8)
        .fingerprint(Some(tick.clone()))
        .create(&addr)
        .unwrap();
    // The same type, and an untyped open, are fine.
    RingBuilder::new()
        .fingerprint(Some(tick.clone()))
        .open(&addr)
        .unwrap();
    assert_eq!(
        Ring::open(&addr).unwrap().info().fingerprint,
        Some(tick.clone())
    );
    let other = TypeFingerprint::new(64, 64, 0xdef, "Tick");
    match RingBuilder::new()
        .fingerprint(Some(other.clone()))
        .open(&addr)
    {
        Err(e @ Error::IncompatibleType { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&tick.to_string()) && text.contains(&other.to_string()));
            assert!(text.contains("same message type"), "{text}");
            if let Error::IncompatibleType {
                expected, found, ..
            } = e
            {
                assert_eq!((*expected, found.map(|f| *f)), (other, Some(tick)));
            }
        }
        other => panic!("{other:?}"),
    }
    // A typed open of an untyped ring.
    let plain = unique("untyped");
    let _cleanup2 = Cleanup(plain.clone());
    RingBuilder::new().slots(8).create(&plain).unwrap();
    match RingBuilder::new()
        .fingerprint(Some(TypeFingerprint::new(8, 8, 1, "u64")))
        .open(&plain)
    {
        Err(e @ Error::IncompatibleType { found: None, .. }) => {
            assert!(e.to_string().contains("untyped"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// Writes a multi-slot header (FIRST mark, length) at slot `pos` with its
/// commit word, as a hostile or broken producer might.
fn forge_first(f: &Fixture, pos: u64, word: u32, extent: u64) {
    let slot = SLOTS + (pos % 8) * 128;
    f.put_u64(slot + 8, extent);
    f.put_u32(slot, word);
    f.put_u32(slot + 4, (pos + 1) as u32);
}

#[test]
fn hostile_fragment_marks_are_corruption() {
    let f = Fixture::new();
    let ring = f.open().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut buf = vec![0u8; 4096];
    let cases: [(u32, u64, &str); 7] = [
        // A FIRST mark on a message that fits one slot.
        (1 << 30, 112, "message length"),
        (1 << 30, 0, "message length"),
        // Longer than the limit, longer than the ring.
        (1 << 30, 8 * 128 - 15, "message length"),
        (1 << 30, u64::MAX, "message length"),
        // Length bits beside a mark.
        ((1 << 30) | 5, 200, "slot length"),
        // The reserved mark.
        (3 << 30, 200, "slot mark"),
        // A PAD that does not reach the end of the ring.
        (2 << 30, 3, "pad length"),
    ];
    for (word, extent, field) in cases {
        forge_first(&f, 0, word, extent);
        match rx.try_recv(&mut buf) {
            Err(TryRecvError::Corrupt(c)) => assert_eq!(c.field, field, "{word:#x} {extent}"),
            other => panic!("{word:#x} {extent}: {other:?}"),
        }
        assert!(matches!(rx.try_borrow(), Err(TryRecvError::Corrupt(_))));
        assert!(matches!(
            rx.try_recv_batch(8, |_| panic!()),
            Err(TryRecvError::Corrupt(_))
        ));
    }
    // A message that would cross the end of a ring that pads at the wrap.
    let f = Fixture::new();
    let ring = f.open().unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for _ in 0..6 {
        tx.try_send(b"x").unwrap();
        rx.try_recv(&mut buf).unwrap();
    }
    drop(tx);
    forge_first(&f, 6, 1 << 30, 300); // 3 slots from slot 6
    match rx.try_recv(&mut buf) {
        Err(TryRecvError::Corrupt(c)) => assert_eq!(c.field, "message length"),
        other => panic!("{other:?}"),
    }
    // A well-formed forged one is delivered (no way to tell it apart).
    forge_first(&f, 6, 2 << 30, 2);
    forge_first(&f, 8, 1 << 30, 300);
    f.file
        .write_all_at(&[9u8; 300], SLOTS + PAYLOAD_AT)
        .unwrap();
    assert_eq!(rx.try_recv_vec().unwrap(), vec![9u8; 300]);
    assert_eq!(rx.position(), 11);
}
