//! Typed messages: a cache-line-aligned struct across two processes, in
//! place and copied, with its address checked; the type fingerprint
//! checked on attach; alignment and size refused when a typed handle is
//! made; a peer sending messages of the wrong length.
//!
//! Harness-less: the test binary re-executes itself as the peer
//! (`SHMPIPE_TEST_ROLE`). Run with `cargo test -p shmpipe --test typed`.

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use shmpipe::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use shmpipe::{
    Corruption, Error, Expected, Ring, RingBuilder, TryRecvError, TypeFingerprint,
    MIN_PAYLOAD_ALIGN,
};

/// One cache line: a sequence number, a checksum of the rest, and data.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
struct Tick {
    seq: u64,
    sum: u64,
    data: [u64; 6],
}

impl Tick {
    fn new(seq: u64) -> Tick {
        let mut data = [0u64; 6];
        let mut s = mix(seq);
        for d in &mut data {
            s = mix(s);
            *d = s;
        }
        Tick {
            seq,
            sum: checksum(&data),
            data,
        }
    }

    fn check(&self, expected: u64) -> Result<(), String> {
        if self.seq != expected {
            return Err(format!("expected tick {expected}, got {}", self.seq));
        }
        if *self != Tick::new(expected) {
            return Err(format!("tick {expected} is torn or corrupt: {self:?}"));
        }
        Ok(())
    }
}

fn checksum(data: &[u64]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &d| {
        (h ^ d).wrapping_mul(0x100_0000_01b3)
    })
}

/// Same size as a `Tick`, less alignment, another name.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy)]
#[repr(C)]
struct Other {
    words: [u64; 8],
}

/// A `Tick`'s alignment, but twice its size.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy)]
#[repr(C, align(64))]
struct Wide {
    lines: [[u8; 64]; 2],
}

const TICKS: u64 = 200_000;

fn main() -> ExitCode {
    if let Ok(role) = std::env::var("SHMPIPE_TEST_ROLE") {
        return run_role(&role);
    }
    let args = Arguments::from_args();
    // Miri runs the in-process trials (`cargo +nightly miri test --test
    // typed`); it cannot start the child processes of the others.
    let child = |t: Trial| t.with_ignored_flag(cfg!(miri));
    let trials = vec![
        child(Trial::test(
            "align64_struct_across_processes_copied",
            || across_processes("copy"),
        )),
        child(Trial::test(
            "align64_struct_across_processes_in_place",
            || across_processes("in-place"),
        )),
        child(Trial::test(
            "fingerprint_mismatch_across_processes",
            fingerprint_mismatch_across_processes,
        )),
        Trial::test(
            "fingerprint_mismatch_names_both_types",
            fingerprint_mismatch,
        ),
        Trial::test("explicit_names_are_checked", explicit_names),
        child(Trial::test(
            "a_typed_builder_open_is_strict",
            typed_builder_open,
        )),
        child(Trial::test(
            "untyped_handles_open_a_typed_ring",
            untyped_open_of_typed_ring,
        )),
        Trial::test(
            "typed_handles_on_an_untyped_ring",
            typed_open_of_untyped_ring,
        ),
        Trial::test(
            "more_alignment_than_the_ring_is_refused",
            misaligned_refused,
        ),
        Trial::test(
            "a_type_larger_than_the_message_limit_is_refused",
            too_large_refused,
        ),
        Trial::test(
            "a_type_larger_than_a_slot_spans_slots_across_the_wrap",
            spans_slots,
        ),
        child(Trial::test(
            "hostile_producer_sends_wrong_lengths",
            hostile_wrong_lengths,
        )),
        Trial::test("plain_handle_value_calls", plain_handle_values),
        Trial::test(
            "byte_guards_over_two_slots_dropped_by_value",
            byte_guards_over_slots,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

fn run_role(role: &str) -> ExitCode {
    let result = match role {
        "consume-ticks" => consume_ticks(),
        "open-as-other" => open_as_other(),
        "send-wrong-lengths" => send_wrong_lengths(),
        other => Err(format!("unknown role {other}")),
    };
    child_exit(role, result)
}

/// Parent: creates a ring for `Tick`, starts the consumer child and sends
/// `TICKS` ticks through it (copied, or written in place), checking the
/// address of every slot it writes; the child checks every tick and the
/// address of every one it borrows.
fn across_processes(mode: &'static str) -> Result<(), Failed> {
    let addr = unique("typed");
    let _cleanup = Cleanup(addr.clone());
    let ring = RingBuilder::new()
        .slots(64)
        .message_type::<Tick>()
        .create(&addr)?;
    assert_eq!(ring.message_type(), Some(TypeFingerprint::of::<Tick>()));
    let count = scaled(TICKS);
    let mut child = spawn_child(
        "consume-ticks",
        &[
            ("SHMPIPE_TEST_ADDR", addr.clone()),
            ("SHMPIPE_TEST_COUNT", count.to_string()),
            ("SHMPIPE_TEST_MODE", mode.to_owned()),
        ],
    );
    let mut tx = ring.typed_producer::<Tick>()?;
    assert!(tx.untyped().payload_align() >= 64);
    tx.untyped_mut()
        .wait_for_consumer(Some(Instant::now() + Duration::from_secs(30)))?;
    for seq in 0..count {
        match mode {
            "copy" => tx.send(&Tick::new(seq))?,
            _ => {
                let mut slot = tx.reserve()?;
                let at = &*slot as *const Tick as usize;
                if at % 64 != 0 {
                    return Err(format!("slot for tick {seq} at {at:#x}, not 64-aligned").into());
                }
                *slot = Tick::new(seq);
                slot.commit();
            }
        }
    }
    drop(tx);
    let (out, status) = child.output()?;
    if !status.success() {
        return Err(format!("consumer child failed ({status}): {out}").into());
    }
    if out != format!("ok {count}") {
        return Err(format!("consumer child said `{out}`").into());
    }
    Ok(())
}

/// Child: receives every tick (copied or in place) until the producer
/// closes, checking each one and, in place, its address.
fn consume_ticks() -> Result<(), String> {
    let addr = var("SHMPIPE_TEST_ADDR");
    let count: u64 = var("SHMPIPE_TEST_COUNT")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let in_place = var("SHMPIPE_TEST_MODE") == "in-place";
    let ring = Ring::open(addr.as_str()).map_err(|e| e.to_string())?;
    let mut rx = ring.typed_consumer::<Tick>().map_err(|e| e.to_string())?;
    let mut seq = 0;
    loop {
        let r = if in_place {
            rx.borrow().map(|t| {
                let at = &*t as *const Tick as usize;
                if at % 64 != 0 {
                    eprintln!("tick {seq} borrowed at {at:#x}, not 64-aligned");
                    std::process::exit(3);
                }
                *t
            })
        } else {
            rx.recv()
        };
        match r {
            Ok(t) => t.check(seq)?,
            Err(e) if e.is_disconnected() => break,
            Err(e) => return Err(format!("after {seq} ticks: {e}")),
        }
        seq += 1;
    }
    if seq != count {
        return Err(format!("received {seq} ticks, expected {count}"));
    }
    println!("ok {seq}");
    Ok(())
}

/// A ring created for `Tick` by this process, opened by another process
/// for `Other` (same size, another alignment and name): refused there with
/// both fingerprints in the message.
fn fingerprint_mismatch_across_processes() -> Result<(), Failed> {
    let addr = unique("typed-fp");
    let _cleanup = Cleanup(addr.clone());
    let _ring = RingBuilder::new()
        .slots(8)
        .message_type::<Tick>()
        .create(&addr)?;
    let mut child = spawn_child("open-as-other", &[("SHMPIPE_TEST_ADDR", addr.clone())]);
    let (out, status) = child.output()?;
    if !status.success() {
        return Err(format!("child failed ({status}): {out}").into());
    }
    let tick = TypeFingerprint::of::<Tick>().to_string();
    let other = TypeFingerprint::of::<Other>().to_string();
    for want in [tick.as_str(), other.as_str(), "Other", addr.as_str()] {
        if !out.contains(want) {
            return Err(format!("the child's error `{out}` does not mention `{want}`").into());
        }
    }
    Ok(())
}

/// Child: opens the ring for `Other` and prints the error it must get.
fn open_as_other() -> Result<(), String> {
    let addr = var("SHMPIPE_TEST_ADDR");
    let ring = Ring::open(addr.as_str()).map_err(|e| e.to_string())?;
    match ring.typed_consumer::<Other>() {
        Err(e @ Error::IncompatibleType { .. }) => {
            println!("{e}");
            Ok(())
        }
        Err(e) => Err(format!("expected IncompatibleType, got {e}")),
        Ok(_) => Err("a ring for Tick opened for Other".to_owned()),
    }
}

fn fingerprint_mismatch() -> Result<(), Failed> {
    let ring = RingBuilder::new()
        .slots(8)
        .message_type::<Tick>()
        .create_in_process()?;
    // Another size and name; the same size and another name.
    for err in [
        ring.typed_producer::<Wide>().map(drop).unwrap_err(),
        ring.typed_consumer::<Other>().map(drop).unwrap_err(),
        ring.typed_consumer::<[u8; 64]>().map(drop).unwrap_err(),
    ] {
        let Error::IncompatibleType {
            ref expected,
            found: Some(ref found),
            ..
        } = err
        else {
            return Err(format!("expected IncompatibleType, got {err:?}").into());
        };
        assert_eq!(**found, TypeFingerprint::of::<Tick>());
        assert!(!expected.compatible(found));
        let text = err.to_string();
        assert!(text.contains(&found.to_string()), "{text}");
        assert!(text.contains(&expected.to_string()), "{text}");
        assert!(text.contains("typed::Tick"), "{text}");
    }
    // Refused before claiming: the sides are still free.
    let _tx = ring.typed_producer::<Tick>()?;
    let _rx = ring.typed_consumer::<Tick>()?;
    Ok(())
}

fn explicit_names() -> Result<(), Failed> {
    let ring = RingBuilder::new()
        .slots(8)
        .message_type_named::<Tick>("feed::Tick/1")
        .create_in_process()?;
    assert_eq!(
        ring.message_type(),
        Some(TypeFingerprint::named::<Tick>("feed::Tick/1"))
    );
    // The compiler's name is another name; so is another version.
    assert!(matches!(
        ring.typed_producer::<Tick>(),
        Err(Error::IncompatibleType { .. })
    ));
    assert!(matches!(
        ring.typed_producer_named::<Tick>("feed::Tick/2"),
        Err(Error::IncompatibleType { .. })
    ));
    // The same name for another layout is another fingerprint too.
    assert!(matches!(
        ring.typed_producer_named::<Other>("feed::Tick/1"),
        Err(Error::IncompatibleType { .. })
    ));
    let mut tx = ring.typed_producer_named::<Tick>("feed::Tick/1")?;
    let mut rx = ring.typed_consumer_named::<Tick>("feed::Tick/1")?;
    tx.try_send(&Tick::new(9))?;
    rx.try_recv()?.check(9)?;
    Ok(())
}

fn untyped_open_of_typed_ring() -> Result<(), Failed> {
    let addr = unique("typed-bytes");
    let _cleanup = Cleanup(addr.clone());
    let ring = RingBuilder::new()
        .slots(8)
        .message_type::<Tick>()
        .create(&addr)?;
    let mut tx = ring.typed_producer::<Tick>()?;
    tx.try_send(&Tick::new(1))?;
    // Another process (here, another mapping) reads bytes.
    let opened = Ring::open(addr.as_str())?;
    assert_eq!(opened.message_type(), Some(TypeFingerprint::of::<Tick>()));
    let mut rx = opened.consumer()?;
    let bytes = rx.try_recv_vec()?;
    assert_eq!(bytes, Tick::new(1).as_bytes());
    Ok(())
}

/// `RingBuilder::message_type` before `open`: the open checks the type,
/// and an untyped ring is refused too.
fn typed_builder_open() -> Result<(), Failed> {
    let (typed, plain) = (unique("typed-open"), unique("typed-open-plain"));
    let _cleanup = (Cleanup(typed.clone()), Cleanup(plain.clone()));
    RingBuilder::new()
        .slots(8)
        .message_type::<Tick>()
        .create(&typed)?;
    RingBuilder::new().slots(8).create(&plain)?;
    let ring = RingBuilder::new().message_type::<Tick>().open(&typed)?;
    drop(ring.typed_consumer::<Tick>()?);
    match RingBuilder::new().message_type::<Other>().open(&typed) {
        Err(Error::IncompatibleType { found: Some(f), .. }) => {
            assert_eq!(*f, TypeFingerprint::of::<Tick>())
        }
        other => return Err(format!("expected IncompatibleType, got {other:?}").into()),
    }
    match RingBuilder::new().message_type::<Tick>().open(&plain) {
        Err(e @ Error::IncompatibleType { found: None, .. }) => {
            assert!(e.to_string().contains("untyped"), "{e}")
        }
        other => return Err(format!("expected IncompatibleType, got {other:?}").into()),
    }
    Ok(())
}

fn typed_open_of_untyped_ring() -> Result<(), Failed> {
    // Bytes rings carry no type: typed handles check size and alignment
    // only, and each message's length.
    let ring = RingBuilder::new().slots(8).create_in_process()?;
    assert_eq!(ring.message_type(), None);
    let mut rx = ring.typed_consumer::<u64>()?;
    let mut tx = ring.producer()?;
    tx.try_send(7u64.to_ne_bytes())?;
    assert_eq!(rx.try_recv()?, 7);
    Ok(())
}

fn misaligned_refused() -> Result<(), Failed> {
    // A ring of bytes large enough for a Tick, aligned for less.
    let plain = RingBuilder::new()
        .slots(8)
        .max_message(64)
        .create_in_process()?;
    let ring_align = plain.producer()?.payload_align();
    assert!(ring_align >= MIN_PAYLOAD_ALIGN);
    if ring_align >= 64 {
        return Err(
            format!("the default payload alignment is {ring_align}: test needs less").into(),
        );
    }
    for err in [
        plain.typed_producer::<Tick>().map(drop).unwrap_err(),
        plain.typed_consumer::<Tick>().map(drop).unwrap_err(),
    ] {
        match err {
            Error::Misaligned {
                type_align: 64,
                ring_align: r,
                ..
            } if r == ring_align => {
                let text = err.to_string();
                assert!(text.contains("message_type"), "{text}");
            }
            other => return Err(format!("expected Misaligned, got {other:?}").into()),
        }
    }
    // Refused before claiming: both sides are still free.
    let _p = plain.producer()?;
    let _c = plain.consumer()?;
    // Copies need no alignment: the plain handles send and receive Ticks.
    let (mut p, mut c) = (_p, _c);
    p.try_send_value(&Tick::new(4))?;
    c.try_recv_value::<Tick>()?.check(4)?;
    Ok(())
}

fn too_large_refused() -> Result<(), Failed> {
    let ring = RingBuilder::new()
        .slots(8)
        .max_message(64)
        .create_in_process()?;
    let max = ring.info().message_limit as usize;
    match ring.typed_producer::<[u8; 4096]>() {
        Err(
            ref e @ Error::TypeTooLarge {
                size: 4096, max: m, ..
            },
        ) if m == max => assert!(e.to_string().contains("message_type"), "{e}"),
        other => return Err(format!("expected TypeTooLarge, got {other:?}").into()),
    }
    // The plain handles' calls say TooLarge for the same.
    let mut tx = ring.producer()?;
    assert!(matches!(
        tx.try_send_value(&[0u8; 4096]),
        Err(shmpipe::TrySendError::TooLarge { .. })
    ));
    assert!(matches!(
        tx.try_reserve_value::<[u8; 4096]>(),
        Err(shmpipe::TrySendError::TooLarge { .. })
    ));
    Ok(())
}

/// A `Wide` (128 bytes, align 64) over 64-byte payloads: each takes two
/// slots, in place and copied, across the end of the ring many times.
fn spans_slots() -> Result<(), Failed> {
    let ring = RingBuilder::new()
        .slots(8)
        .slot_size(128)
        .payload_align(64)
        .create_in_process()?;
    assert_eq!(ring.info().max_message, 64);
    let mut tx = ring.typed_producer::<Wide>()?;
    let mut rx = ring.typed_consumer::<Wide>()?;
    for i in 0..50u8 {
        let mut slot = tx.try_reserve()?;
        assert_eq!(&*slot as *const Wide as usize % 64, 0);
        slot.lines = [[i; 64], [!i; 64]];
        slot.commit();
        tx.try_send(&Wide {
            lines: [[i ^ 0x55; 64], [i; 64]],
        })?;
        let a = rx.try_borrow()?;
        assert_eq!(&*a as *const Wide as usize % 64, 0);
        assert_eq!(a.lines, [[i; 64], [!i; 64]]);
        drop(a);
        assert_eq!(rx.try_recv()?.lines, [[i ^ 0x55; 64], [i; 64]]);
    }
    Ok(())
}

/// The byte guards the typed ones wrap, over two slots, dropped by value:
/// releasing a message over several slots writes into what was its payload
/// (the later slots' commit words), so a guard must hold no reference to it
/// then (Miri checks this).
fn byte_guards_over_slots() -> Result<(), Failed> {
    let ring = RingBuilder::new()
        .slots(8)
        .slot_size(128)
        .payload_align(64)
        .create_in_process()?;
    let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    for i in 0..20u8 {
        let mut slot = tx.try_reserve_len(100)?;
        slot.fill(i);
        slot.commit(100);
        let m = rx.try_borrow()?;
        assert_eq!(&*m, &[i; 100][..]);
        drop(m);
    }
    // Reserved over three slots, committed in one: the reservation's later
    // commit words, inside its bytes, are zeroed before publishing.
    for i in 0..20u8 {
        let mut slot = tx.reserve_len(300)?;
        slot.fill(!i);
        slot.commit(40);
        assert_eq!(&*rx.try_borrow()?, &[!i; 40][..]);
    }
    Ok(())
}

/// The lengths the hostile child sends before one good tick.
const WRONG_LENGTHS: [usize; 4] = [0, 12, 63, 65];

/// A producer in another process sends messages of the wrong length into
/// a ring for `Tick`: the typed consumer gets a typed error for each, copy
/// or in place, the message stays until read as bytes, and the good tick
/// after them arrives intact.
fn hostile_wrong_lengths() -> Result<(), Failed> {
    let addr = unique("typed-hostile");
    let _cleanup = Cleanup(addr.clone());
    let ring = RingBuilder::new()
        .slots(8)
        .message_type::<Tick>()
        .create(&addr)?;
    let mut rx = ring.typed_consumer::<Tick>()?;
    let mut child = spawn_child("send-wrong-lengths", &[("SHMPIPE_TEST_ADDR", addr.clone())]);
    let status = wait_child(&mut child, Duration::from_secs(60));
    if !status.success() {
        return Err(format!("hostile child failed: {status}").into());
    }
    for len in WRONG_LENGTHS {
        let want = TryRecvError::Corrupt(Corruption {
            field: "slot length",
            found: len as u64,
            expected: Expected::Exactly(64),
        });
        assert_eq!(rx.try_recv().map(drop), Err(want));
        assert_eq!(rx.try_borrow().map(drop), Err(want));
        // Still there: skip it as bytes.
        assert_eq!(rx.untyped_mut().try_recv_vec()?.len(), len);
    }
    let t = rx.recv_deadline(Instant::now() + Duration::from_secs(10))?;
    t.check(77)?;
    Ok(())
}

/// Child: opens the ring untyped and sends wrong lengths, then a tick.
fn send_wrong_lengths() -> Result<(), String> {
    let addr = var("SHMPIPE_TEST_ADDR");
    let ring = Ring::open(addr.as_str()).map_err(|e| e.to_string())?;
    let mut tx = ring.producer().map_err(|e| e.to_string())?;
    for len in WRONG_LENGTHS {
        tx.send(vec![0xa5u8; len]).map_err(|e| e.to_string())?;
    }
    tx.send_value(&Tick::new(77)).map_err(|e| e.to_string())?;
    Ok(())
}

/// The plain handles' typed calls for types every ring aligns for.
fn plain_handle_values() -> Result<(), Failed> {
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Pair {
        a: u64,
        b: u64,
    }
    let ring = RingBuilder::new().slots(4).create_in_process()?;
    let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    for round in 0..10u64 {
        // A reservation dropped publishes nothing.
        {
            let _uncommitted = tx.try_reserve_value::<Pair>()?;
        }
        assert!(rx.is_empty());
        // Four slots: fill the ring, every call in turn, across the wrap.
        tx.try_send_value(&Pair { a: round, b: 1 })?;
        tx.send_value(&Pair { a: round, b: 2 })?;
        let mut slot = tx.try_reserve_value::<Pair>()?;
        slot.zero();
        slot.a = round;
        slot.b = 3;
        slot.commit();
        let mut slot = tx.reserve_value_deadline::<Pair>(Instant::now())?;
        *slot = Pair { a: round, b: 4 };
        slot.commit();
        assert!(tx
            .try_send_value(&Pair { a: 0, b: 0 })
            .unwrap_err()
            .is_full());
        assert_eq!(rx.try_recv_value::<Pair>()?, Pair { a: round, b: 1 });
        assert_eq!(rx.recv_value::<Pair>()?, Pair { a: round, b: 2 });
        {
            let v = rx.try_borrow_value::<Pair>()?;
            assert_eq!(*v, Pair { a: round, b: 3 });
            assert_eq!(&*v as *const Pair as usize % MIN_PAYLOAD_ALIGN, 0);
        }
        let v = rx.borrow_value_deadline::<Pair>(Instant::now())?;
        assert_eq!(*v, Pair { a: round, b: 4 });
        drop(v);
        assert!(rx.try_recv_value::<Pair>().unwrap_err().is_empty());
    }
    assert_eq!(tx.stats().messages, 40);
    assert_eq!(rx.stats().messages, 40);
    Ok(())
}
