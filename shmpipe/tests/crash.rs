//! Crash injection: SIGKILL a producer or consumer child at random moments,
//! hundreds of times, and check that the survivor sees exactly a prefix of
//! the committed sequence (no torn, lost or duplicated message), learns of
//! the death, and that a fresh process takes the side over and continues
//! the sequence.
//!
//! Children publish what they are doing in a shared "phase" word, so the
//! test can tell (and print) how many kills landed inside a reserved but
//! uncommitted slot, inside a half-filled batch, or while a consumer held a
//! borrowed slot.
//!
//! `SHMPIPE_CRASH_ITERATIONS` sets the kills per mode (default 70: 210
//! producer kills and 210 consumer kills per run).

// Tests may use std atomics; the loom rule is for the library.
#![allow(clippy::disallowed_types)]

mod common;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use shmpipe::{RecvError, Ring, RingBuilder, SendError, SideState, WaitStrategy};

const SEED: u64 = 0xC4A5;

/// Phases a child publishes.
const PHASE_IDLE: u32 = 1;
const PHASE_RESERVED: u32 = 2;
const PHASE_IN_BATCH: u32 = 3;
const PHASE_HOLDING_BORROW: u32 = 4;
const PHASE_NAMES: [&str; 5] = [
    "before starting",
    "between messages or blocked",
    "inside reserve-before-commit",
    "inside a half-filled batch",
    "holding a borrowed slot",
];

fn main() -> ExitCode {
    if let Ok(role) = std::env::var("SHMPIPE_TEST_ROLE") {
        let r = match role.as_str() {
            "crash-producer" => crash_producer(),
            "crash-consumer" => crash_consumer(),
            "crash-large-producer" => crash_large_producer(),
            other => Err(format!("unknown role {other}")),
        };
        return child_exit(&role, r);
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("producer_killed_at_random_moments", producer_crashes),
        Trial::test("consumer_killed_at_random_moments", consumer_crashes),
        Trial::test(
            "producer_killed_inside_multi_slot_messages",
            large_producer_crashes,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

fn iterations() -> u64 {
    std::env::var("SHMPIPE_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(70)
}

/// A shared 4-byte phase word in a file under /dev/shm.
struct Phase {
    map: memmap2::MmapMut,
}

impl Phase {
    fn create(path: &str) -> Phase {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        f.set_len(64).unwrap();
        Phase::map(f)
    }

    fn open(path: &str) -> Phase {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        Phase::map(f)
    }

    fn map(f: std::fs::File) -> Phase {
        // SAFETY: a private test file that only these processes use through
        // atomic accesses.
        let map = unsafe { memmap2::MmapMut::map_mut(&f) }.unwrap();
        Phase { map }
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: the mapping is 64 bytes, page-aligned, and lives as long
        // as `self`.
        unsafe { &*(self.map.as_ptr() as *const AtomicU32) }
    }

    fn set(&self, p: u32) {
        self.word().store(p, Relaxed);
    }

    fn get(&self) -> u32 {
        self.word().load(Relaxed)
    }
}

/// A busy pause of about `us` microseconds, widening the window a kill can
/// land in.
fn pause(us: u64) {
    let until = Instant::now() + Duration::from_micros(us);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

fn crash_producer() -> Result<(), String> {
    let ring = Ring::open(var("SHMPIPE_ADDR")).map_err(|e| e.to_string())?;
    let phase = Phase::open(&var("SHMPIPE_PHASE"));
    let mode = var("SHMPIPE_MODE");
    let count: u64 = var("SHMPIPE_COUNT").parse().unwrap();
    let mut tx = ring.producer().map_err(|e| e.to_string())?;
    tx.set_heartbeat(Duration::from_millis(5));
    let max = tx.max_message();
    let mut buf = vec![0u8; max];
    let start = tx.position();
    phase.set(PHASE_IDLE);
    while count == 0 || tx.position() - start < count {
        let seq = tx.position();
        match mode.as_str() {
            "copy" => {
                let len = fill_msg(SEED, seq, max, &mut buf);
                tx.send(&buf[..len]).map_err(|e| e.to_string())?;
            }
            "reserve" => {
                let mut slot = tx.reserve().map_err(|e| e.to_string())?;
                phase.set(PHASE_RESERVED);
                // Write the message in two halves with a pause between.
                let len = fill_msg(SEED, seq, max, &mut buf);
                slot[..len / 2].copy_from_slice(&buf[..len / 2]);
                pause(20);
                slot[len / 2..len].copy_from_slice(&buf[len / 2..len]);
                slot.commit(len);
                phase.set(PHASE_IDLE);
            }
            "batch" => {
                let mut batch = tx
                    .reserve_batch_deadline(8, None)
                    .map_err(|e| e.to_string())?;
                phase.set(PHASE_IN_BATCH);
                let mut next = seq;
                while batch.push_with(|b| fill_msg(SEED, next, max, b)) {
                    next += 1;
                    pause(5);
                }
                batch.commit();
                phase.set(PHASE_IDLE);
            }
            other => return Err(format!("unknown mode {other}")),
        }
    }
    Ok(())
}

fn crash_consumer() -> Result<(), String> {
    let ring = Ring::open(var("SHMPIPE_ADDR")).map_err(|e| e.to_string())?;
    let phase = Phase::open(&var("SHMPIPE_PHASE"));
    let mode = var("SHMPIPE_MODE");
    let mut rx = ring.consumer().map_err(|e| e.to_string())?;
    rx.set_heartbeat(Duration::from_millis(5));
    rx.set_wait_strategy(WaitStrategy::DEFAULT);
    let max = rx.max_message();
    let first = rx.position();
    let mut buf = vec![0u8; max];
    phase.set(PHASE_IDLE);
    loop {
        let seq = rx.position();
        let r = match mode.as_str() {
            "copy" => rx
                .recv(&mut buf)
                .map(|n| check_msg(SEED, seq, max, &buf[..n])),
            "borrow" => rx.borrow().map(|m| {
                phase.set(PHASE_HOLDING_BORROW);
                let ok = check_msg(SEED, seq, max, &m);
                pause(20);
                drop(m);
                phase.set(PHASE_IDLE);
                ok
            }),
            "batch" => {
                let mut ok = Ok(());
                let mut next = seq;
                rx.recv_batch_deadline(16, None, |m| {
                    if ok.is_ok() {
                        ok = check_msg(SEED, next, max, m);
                    }
                    next += 1;
                })
                .map(|_| ok)
            }
            other => return Err(format!("unknown mode {other}")),
        };
        match r {
            // A violation exits at once with status 1: the parent, which
            // expects SIGKILL or a clean end, fails the test.
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    println!("{first} {}", rx.position());
    Ok(())
}

// ---------------------------------------------------------------------------
// Parent
// ---------------------------------------------------------------------------

struct Fixture {
    addr: String,
    phase_path: String,
    phase: Phase,
    ring: Ring,
    _cleanup: Cleanup,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.phase_path);
    }
}

fn fixture(tag: &str) -> Result<Fixture, Failed> {
    let addr = unique(tag);
    let cleanup = Cleanup(addr.clone());
    let ring = RingBuilder::new().slots(16).slot_size(256).create(&addr)?;
    let phase_path = format!("/dev/shm/{}-phase", addr.strip_prefix("shm:").unwrap());
    let phase = Phase::create(&phase_path);
    Ok(Fixture {
        addr,
        phase_path,
        phase,
        ring,
        _cleanup: cleanup,
    })
}

fn spawn(f: &Fixture, role: &str, mode: &str, count: u64) -> ChildGuard {
    f.phase.set(0);
    spawn_child(
        role,
        &[
            ("SHMPIPE_ADDR", f.addr.clone()),
            ("SHMPIPE_PHASE", f.phase_path.clone()),
            ("SHMPIPE_MODE", mode.to_owned()),
            ("SHMPIPE_COUNT", count.to_string()),
        ],
    )
}

fn wait_claimed(f: &Fixture, pid: u32, producer: bool) -> Result<(), Failed> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = f.ring.info();
        let side = if producer {
            info.producer
        } else {
            info.consumer
        };
        if matches!(side.state, SideState::Attached { pid: p, .. } if p == pid)
            && f.phase.get() != 0
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("child {pid} never claimed its side").into());
        }
        std::thread::yield_now();
    }
}

fn sigkill(pid: u32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
}

/// Random delay in microseconds, from the iteration number.
fn jitter(i: u64, max_us: u64) -> Duration {
    Duration::from_micros(mix(i ^ 0x5eed) % max_us)
}

fn producer_crashes() -> Result<(), Failed> {
    let f = fixture("crash-p")?;
    let mut rx = f.ring.consumer()?;
    rx.set_heartbeat(Duration::from_millis(5));
    let max = rx.max_message();
    let mut buf = vec![0u8; max];
    let mut landed = [0u64; 5];
    let mut kills = 0u64;
    let n = iterations();
    for i in 0..3 * n {
        let mode = ["copy", "reserve", "batch"][(i % 3) as usize];
        let mut child = spawn(&f, "crash-producer", mode, 0);
        let pid = child.id();
        wait_claimed(&f, pid, true)?;
        // Consume for a random while, checking every message.
        let until = Instant::now() + jitter(i, 3000);
        while Instant::now() < until {
            let seq = rx.position();
            match rx.recv_timeout(&mut buf, Duration::from_micros(200)) {
                Ok(n) => check_msg(SEED, seq, max, &buf[..n])?,
                Err(RecvError::Timeout) => {}
                Err(e) => return Err(format!("iteration {i}: {e}").into()),
            }
        }
        landed[f.phase.get() as usize % 5] += 1;
        sigkill(pid);
        kills += 1;
        // Reap only every other child, so zombies are exercised too.
        if i % 2 == 0 {
            child.wait()?;
        }
        let killed = Instant::now();
        // Drain exactly the committed prefix, then learn of the death.
        loop {
            let seq = rx.position();
            match rx.recv(&mut buf) {
                Ok(n) => check_msg(SEED, seq, max, &buf[..n])
                    .map_err(|e| format!("iteration {i} ({mode}): {e}"))?,
                Err(RecvError::PeerDied { pid: p }) if p == pid => break,
                Err(e) => return Err(format!("iteration {i} ({mode}): {e}").into()),
            }
        }
        if killed.elapsed() > Duration::from_secs(1) {
            return Err(
                format!("iteration {i}: death noticed after {:?}", killed.elapsed()).into(),
            );
        }
        drop(child);
    }
    // A final producer continues the sequence and ends it cleanly.
    let resume = rx.position();
    let mut last = spawn(&f, "crash-producer", "copy", 500);
    // Until it claims, the last dead producer's PeerDied stands.
    rx.wait_for_producer(Some(Instant::now() + Duration::from_secs(20)))
        .map_err(|e| format!("waiting for the final producer: {e}"))?;
    loop {
        let seq = rx.position();
        match rx.recv(&mut buf) {
            Ok(n) => check_msg(SEED, seq, max, &buf[..n])?,
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(format!("final producer: {e}").into()),
        }
    }
    assert!(wait_child(&mut last, Duration::from_secs(30)).success());
    assert_eq!(rx.position(), resume + 500);
    eprintln!(
        "{kills} producer kills; {} messages received, all intact and in order; kills landed: {}",
        rx.position(),
        describe(&landed)
    );
    Ok(())
}

fn consumer_crashes() -> Result<(), Failed> {
    let f = fixture("crash-c")?;
    let mut tx = f.ring.producer()?;
    tx.set_heartbeat(Duration::from_millis(5));
    let max = tx.max_message();
    let mut buf = vec![0u8; max];
    let mut landed = [0u64; 5];
    let mut kills = 0u64;
    let n = iterations();
    for i in 0..3 * n {
        let mode = ["copy", "borrow", "batch"][(i % 3) as usize];
        let mut child = spawn(&f, "crash-consumer", mode, 0);
        let pid = child.id();
        wait_claimed(&f, pid, false)?;
        // Produce for a random while.
        let until = Instant::now() + jitter(i, 3000);
        while Instant::now() < until {
            let seq = tx.position();
            let len = fill_msg(SEED, seq, max, &mut buf);
            match tx.send_timeout(&buf[..len], Duration::from_micros(200)) {
                Ok(()) | Err(SendError::Timeout(_)) => {}
                Err(e) => return Err(format!("iteration {i}: {e:?}").into()),
            }
        }
        landed[f.phase.get() as usize % 5] += 1;
        sigkill(pid);
        kills += 1;
        if i % 2 == 0 {
            child.wait()?;
        }
        let killed = Instant::now();
        // Fill the ring: the blocked send must report the death.
        loop {
            let seq = tx.position();
            let len = fill_msg(SEED, seq, max, &mut buf);
            match tx.send(&buf[..len]) {
                Ok(()) => {}
                Err(SendError::PeerDied { pid: p, .. }) if p == pid => break,
                Err(e) => return Err(format!("iteration {i} ({mode}): {e:?}").into()),
            }
        }
        if killed.elapsed() > Duration::from_secs(1) {
            return Err(
                format!("iteration {i}: death noticed after {:?}", killed.elapsed()).into(),
            );
        }
        let status = child.wait()?;
        use std::os::unix::process::ExitStatusExt;
        if status.signal() != Some(9) {
            return Err(format!(
                "iteration {i} ({mode}): the consumer found a violation ({status})"
            )
            .into());
        }
    }
    // A final consumer resumes at the first unreleased message and checks
    // everything up to the end of the stream.
    let mut last = spawn(&f, "crash-consumer", "copy", 0);
    let total = tx.position();
    drop(tx);
    let (report, status) = last.output()?;
    if !status.success() {
        return Err(format!("final consumer failed: {status}").into());
    }
    let end: u64 = report.split_whitespace().nth(1).unwrap_or("0").parse()?;
    if end != total {
        return Err(format!("final consumer ended at {end}, producer wrote {total}").into());
    }
    eprintln!(
        "{kills} consumer kills; {total} messages, every released one checked in order; kills landed: {}",
        describe(&landed)
    );
    Ok(())
}

fn describe(landed: &[u64; 5]) -> String {
    landed
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(p, n)| format!("{n} {}", PHASE_NAMES[p]))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Multi-slot messages
// ---------------------------------------------------------------------------

/// A multi-slot message (2 to 12 slots of the 16 x 256 ring) that names the
/// position its producer started it at, so that the consumer can tell a
/// whole message from a torn one: length and bytes follow from it.
fn large_msg(p: u64) -> Vec<u8> {
    let len = 300 + (mix(p ^ 0x1a76e) % 2700) as usize;
    let mut m = p.to_le_bytes().to_vec();
    m.extend((8..len).map(|i| (mix(p ^ (i as u64) << 24) >> 9) as u8));
    m
}

fn crash_large_producer() -> Result<(), String> {
    let ring = Ring::open(var("SHMPIPE_ADDR")).map_err(|e| e.to_string())?;
    let phase = Phase::open(&var("SHMPIPE_PHASE"));
    let count: u64 = var("SHMPIPE_COUNT").parse().unwrap();
    let mut tx = ring.producer().map_err(|e| e.to_string())?;
    tx.set_heartbeat(Duration::from_millis(5));
    phase.set(PHASE_IDLE);
    let mut sent = 0u64;
    while count == 0 || sent < count {
        let msg = large_msg(tx.position());
        if sent % 2 == 0 {
            tx.send(&msg).map_err(|e| e.to_string())?;
        } else {
            // In place, in two halves with a pause between: kills land
            // with part of the message written.
            // (A PAD the reservation publishes moves where the message
            // lands, not what it says.)
            let mut slot = tx.reserve_len(msg.len()).map_err(|e| e.to_string())?;
            phase.set(PHASE_RESERVED);
            let half = msg.len() / 2;
            slot[..half].copy_from_slice(&msg[..half]);
            pause(20);
            slot[half..].copy_from_slice(&msg[half..]);
            slot.commit(msg.len());
            phase.set(PHASE_IDLE);
        }
        sent += 1;
    }
    Ok(())
}

fn check_large(msg: &[u8], last: &mut Option<u64>) -> Result<(), String> {
    if msg.len() < 8 {
        return Err(format!("a torn message of {} bytes", msg.len()));
    }
    let p = u64::from_le_bytes(msg[..8].try_into().unwrap());
    if msg != large_msg(p) {
        return Err(format!("message from position {p} is torn or corrupt"));
    }
    if last.is_some_and(|l| p <= l) {
        return Err(format!("message from position {p} after one from {last:?}"));
    }
    *last = Some(p);
    Ok(())
}

fn large_producer_crashes() -> Result<(), Failed> {
    let f = fixture("crash-l")?;
    // 16 x 256 B is one page of slots: the ring is mapped twice, so the
    // multi-slot messages killed mid-write also cross the end of the ring.
    if !f.ring.info().contiguous_wrap {
        return Err("the fixture ring should be mapped twice".into());
    }
    let mut rx = f.ring.consumer()?;
    rx.set_heartbeat(Duration::from_millis(5));
    let mut buf = vec![0u8; rx.message_limit()];
    let mut last = None;
    let (mut kills, mut got) = (0u64, 0u64);
    let mut landed = [0u64; 5];
    for i in 0..iterations() {
        let mut child = spawn(&f, "crash-large-producer", "large", 0);
        let pid = child.id();
        wait_claimed(&f, pid, true)?;
        let until = Instant::now() + jitter(i, 3000);
        while Instant::now() < until {
            match rx.recv_timeout(&mut buf, Duration::from_micros(200)) {
                Ok(n) => {
                    check_large(&buf[..n], &mut last).map_err(|e| format!("iteration {i}: {e}"))?;
                    got += 1;
                }
                Err(RecvError::Timeout) => {}
                Err(e) => return Err(format!("iteration {i}: {e}").into()),
            }
        }
        landed[f.phase.get() as usize % 5] += 1;
        sigkill(pid);
        kills += 1;
        if i % 2 == 0 {
            child.wait()?;
        }
        // Whole messages only, then the death.
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    check_large(&buf[..n], &mut last).map_err(|e| format!("iteration {i}: {e}"))?;
                    got += 1;
                }
                Err(RecvError::PeerDied { pid: p }) if p == pid => break,
                Err(e) => return Err(format!("iteration {i}: {e}").into()),
            }
        }
        drop(child);
    }
    // A new producer continues after whatever the last one left half done.
    let mut final_producer = spawn(&f, "crash-large-producer", "large", 200);
    rx.wait_for_producer(Some(Instant::now() + Duration::from_secs(20)))
        .map_err(|e| format!("waiting for the final producer: {e}"))?;
    let mut after = 0u64;
    loop {
        match rx.recv(&mut buf) {
            Ok(n) => {
                check_large(&buf[..n], &mut last)?;
                after += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(format!("final producer: {e}").into()),
        }
    }
    assert!(wait_child(&mut final_producer, Duration::from_secs(30)).success());
    assert_eq!(after, 200);
    eprintln!(
        "{kills} kills inside multi-slot streams; {got} messages before them, all whole; \
         kills landed: {}",
        describe(&landed)
    );
    Ok(())
}
