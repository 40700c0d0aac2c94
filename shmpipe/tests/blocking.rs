//! Blocking calls across processes: futex parking, idle CPU, disconnection
//! and peer death (`kill -9`) with takeover by a new process.
//!
//! Messages carry their ring position as sequence number, so a stream
//! resumed by a new producer or consumer must continue with no gap and no
//! duplicate.

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use rustix::process::{kill_process, Pid, Signal};
use shmpipe::{RecvError, Ring, RingBuilder, SendError, SideState, WaitStrategy};

fn main() -> ExitCode {
    if let Ok(role) = std::env::var("SHMPIPE_TEST_ROLE") {
        return run_role(&role);
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("blocking_stream_with_a_parked_consumer", blocking_stream),
        Trial::test("bursts_lose_no_wakeup", bursts_lose_no_wakeup),
        Trial::test("idle_parked_consumer_costs_no_cpu", idle_cpu),
        Trial::test(
            "producer_killed_while_blocked_on_full",
            producer_killed_blocked,
        ),
        Trial::test("producer_killed_mid_stream", producer_killed_mid_stream),
        Trial::test(
            "consumer_killed_while_producer_blocked",
            consumer_killed_blocked,
        ),
        Trial::test(
            "consumer_killed_holding_a_borrow",
            consumer_killed_holding_borrow,
        ),
        Trial::test(
            "consumer_exit_disconnects_producer",
            consumer_exit_disconnects,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

// ---------------------------------------------------------------------------
// Child roles
// ---------------------------------------------------------------------------

fn run_role(role: &str) -> ExitCode {
    let result = match role {
        "produce" => produce(),
        "consume" => consume(),
        other => Err(format!("unknown role {other}")),
    };
    child_exit(role, result)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap())
        .unwrap_or(default)
}

fn strategy_from_env() -> WaitStrategy {
    match std::env::var("SHMPIPE_STRATEGY").as_deref() {
        Ok("spin") => WaitStrategy::Spin,
        Ok("park") => WaitStrategy::Park,
        _ => WaitStrategy::DEFAULT,
    }
}

/// Produces messages numbered by ring position: `SHMPIPE_COUNT` of them (0:
/// forever), in bursts of `SHMPIPE_BURST` with `SHMPIPE_PAUSE_US` between.
fn produce() -> Result<(), String> {
    let ring = Ring::open(var("SHMPIPE_ADDR")).map_err(|e| e.to_string())?;
    let mut tx = ring.producer().map_err(|e| e.to_string())?;
    tx.set_wait_strategy(strategy_from_env());
    tx.set_heartbeat(Duration::from_millis(env_u64("SHMPIPE_HEARTBEAT_MS", 100)));
    let seed = env_u64("SHMPIPE_SEED", 1);
    let count = env_u64("SHMPIPE_COUNT", 0);
    let burst = env_u64("SHMPIPE_BURST", 0);
    let pause = Duration::from_micros(env_u64("SHMPIPE_PAUSE_US", 0));
    let max = tx.max_message();
    let mut buf = vec![0u8; max];
    let mut sent = 0u64;
    while count == 0 || sent < count {
        let seq = tx.position();
        let len = fill_msg(seed, seq, max, &mut buf);
        tx.send(&buf[..len])
            .map_err(|e| format!("send {seq}: {e}"))?;
        sent += 1;
        if burst > 0 && sent % burst == 0 {
            std::thread::sleep(pause);
        }
    }
    Ok(())
}

/// Consumes and checks messages from the ring's position onwards:
/// `SHMPIPE_COUNT` of them (0: until the end of the stream). With
/// `SHMPIPE_HANG_AFTER=N` it stops reading after N messages and holds the
/// ring; with `SHMPIPE_BORROW_HANG=N` it borrows message N and hangs
/// holding it. Prints `FIRST LAST+1` on success.
fn consume() -> Result<(), String> {
    let ring = Ring::open(var("SHMPIPE_ADDR")).map_err(|e| e.to_string())?;
    let mut rx = ring.consumer().map_err(|e| e.to_string())?;
    rx.set_wait_strategy(strategy_from_env());
    let seed = env_u64("SHMPIPE_SEED", 1);
    let count = env_u64("SHMPIPE_COUNT", 0);
    let hang_after = env_u64("SHMPIPE_HANG_AFTER", u64::MAX);
    let borrow_hang = env_u64("SHMPIPE_BORROW_HANG", u64::MAX);
    let max = rx.max_message();
    let first = rx.position();
    let mut received = 0u64;
    loop {
        if received == hang_after {
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        if count != 0 && received == count {
            break;
        }
        let seq = rx.position();
        match rx.borrow() {
            Ok(msg) => {
                check_msg(seed, seq, max, &msg)?;
                if received == borrow_hang {
                    let _held = msg;
                    loop {
                        std::thread::sleep(Duration::from_secs(60));
                    }
                }
            }
            Err(RecvError::Disconnected) if count == 0 => break,
            Err(e) => return Err(format!("borrow {seq}: {e}")),
        }
        received += 1;
    }
    println!("{first} {}", rx.position());
    Ok(())
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Result<(), Failed> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn sigkill(pid: u32) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), Signal::KILL).unwrap();
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    // Fields 14 (utime) and 15 (stime), counted from field 3 at index 0.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ring(tag: &str, slots: u64) -> Result<(String, Cleanup, Ring), Failed> {
    let addr = unique(tag);
    let cleanup = Cleanup(addr.clone());
    let ring = RingBuilder::new()
        .slots(slots)
        .slot_size(128)
        .create(&addr)?;
    Ok((addr, cleanup, ring))
}

fn child_env(addr: &str, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![("SHMPIPE_ADDR", addr.to_owned())];
    for (k, v) in extra {
        let k: &'static str = Box::leak(k.to_string().into_boxed_str());
        env.push((k, v.to_string()));
    }
    env
}

/// Receives and checks messages `from..to` (by position).
fn recv_range(rx: &mut shmpipe::Consumer, seed: u64, to: u64) -> Result<(), Failed> {
    let max = rx.max_message();
    let mut buf = vec![0u8; max];
    while rx.position() < to {
        let seq = rx.position();
        let n = rx.recv(&mut buf).map_err(|e| format!("recv {seq}: {e}"))?;
        check_msg(seed, seq, max, &buf[..n])?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

fn blocking_stream() -> Result<(), Failed> {
    let (addr, _c, ring) = ring("parked", 256)?;
    let count = scaled(1_000_000);
    let mut child = spawn_child(
        "produce",
        &child_env(
            &addr,
            &[
                ("SHMPIPE_COUNT", &count.to_string()),
                ("SHMPIPE_BURST", "2000"),
                ("SHMPIPE_PAUSE_US", "2000"),
            ],
        ),
    );
    let mut rx = ring.consumer()?;
    recv_range(&mut rx, 1, count)?;
    let mut buf = [0u8; 128];
    match rx.recv_timeout(&mut buf, Duration::from_secs(30)) {
        Err(RecvError::Disconnected) => {}
        other => return Err(format!("expected Disconnected, got {other:?}").into()),
    }
    let stats = rx.stats();
    let bursts = count / 2000;
    eprintln!(
        "consumer: {} messages, {} futex waits over {bursts} pauses, {} spin rounds",
        stats.messages, stats.futex_waits, stats.spin_rounds
    );
    if stats.futex_waits < bursts / 4 {
        return Err(format!(
            "the consumer slept only {} times in {bursts} pauses",
            stats.futex_waits
        )
        .into());
    }
    let producer_wakes = ring.info().producer.stats.futex_wakes;
    if producer_wakes == 0 {
        return Err("the producer never woke the consumer".into());
    }
    if !wait_child(&mut child, Duration::from_secs(30)).success() {
        return Err("producer child failed".into());
    }
    Ok(())
}

/// The asymmetric wake protocol under stress: both sides park at once
/// (`WaitStrategy::Park`) thousands of times, the consumer between the
/// producer's bursts and the producer on a full ring while the consumer
/// pauses, with a heartbeat far longer than any pause. Every sleep must end
/// by a wake: one that ends by its timeout is a lost (late) wake-up.
/// `SHMPIPE_TEST_SCALE` lengthens it; the soak example runs it for 10^8+.
fn bursts_lose_no_wakeup() -> Result<(), Failed> {
    let (addr, _c, ring) = ring("bursts", 64)?;
    let count = scaled(200_000);
    let mut child = spawn_child(
        "produce",
        &child_env(
            &addr,
            &[
                ("SHMPIPE_COUNT", &count.to_string()),
                ("SHMPIPE_BURST", "150"),
                ("SHMPIPE_PAUSE_US", "100"),
                ("SHMPIPE_STRATEGY", "park"),
                ("SHMPIPE_HEARTBEAT_MS", "20000"),
            ],
        ),
    );
    let mut rx = ring.consumer()?;
    rx.set_wait_strategy(WaitStrategy::Park);
    rx.set_heartbeat(Duration::from_secs(20));
    let max = rx.max_message();
    let mut buf = vec![0u8; max];
    while rx.position() < count {
        let seq = rx.position();
        let n = rx.recv(&mut buf).map_err(|e| format!("recv {seq}: {e}"))?;
        check_msg(1, seq, max, &buf[..n])?;
        // Pause now and then, so that the producer fills the ring and parks.
        if seq % 1000 == 999 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    if !wait_child(&mut child, Duration::from_secs(60)).success() {
        return Err("producer child failed".into());
    }
    let consumer = rx.stats();
    let producer = ring.info().producer.stats;
    eprintln!(
        "{count} messages: consumer slept {} times ({} timed out), producer slept {} times \
         ({} timed out); wakes sent: producer {}, consumer {}; barrier: producer {}, consumer {}",
        consumer.futex_waits,
        consumer.wait_timeouts,
        producer.futex_waits,
        producer.wait_timeouts,
        producer.futex_wakes,
        consumer.futex_wakes,
        ring.info().producer.barrier,
        ring.info().consumer.barrier,
    );
    if consumer.futex_waits < count / 150 / 4 || producer.futex_waits < count / 1000 / 4 {
        return Err("the sides did not park often enough to test anything".into());
    }
    if consumer.wait_timeouts != 0 || producer.wait_timeouts != 0 {
        return Err(format!(
            "lost wake-ups: {} consumer and {} producer sleeps ended by their 20 s timeout",
            consumer.wait_timeouts, producer.wait_timeouts
        )
        .into());
    }
    Ok(())
}

fn idle_cpu() -> Result<(), Failed> {
    // CPU ticks of an idle consumer child over one second, for a strategy.
    let measure = |strategy: &str| -> Result<u64, Failed> {
        let (addr, _c, ring) = ring("idle", 16)?;
        let _tx = ring.producer()?; // attached and alive, but silent
        let mut child = spawn_child(
            "consume",
            &child_env(&addr, &[("SHMPIPE_STRATEGY", strategy)]),
        );
        let pid = child.id();
        wait_until(
            "the consumer to attach",
            Duration::from_secs(20),
            || matches!(ring.info().consumer.state, SideState::Attached { pid: p, .. } if p == pid),
        )?;
        if strategy != "spin" {
            wait_until("the consumer to park", Duration::from_secs(20), || {
                ring.info().consumer.parked
            })?;
        }
        std::thread::sleep(Duration::from_millis(100));
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_ticks(pid) - before;
        child.kill()?;
        child.wait()?;
        Ok(used)
    };
    let parked = measure("default")?;
    let spinning = measure("spin")?;
    eprintln!("CPU ticks over 1 s idle: spin-then-park {parked}, busy-spin {spinning}");
    if spinning < 20 {
        return Err(format!(
            "the spinning consumer got only {spinning} ticks; machine overloaded?"
        )
        .into());
    }
    if parked * 10 > spinning {
        return Err(format!(
            "a parked consumer used {parked} ticks, more than a tenth of a spinning one ({spinning})"
        )
        .into());
    }
    Ok(())
}

fn producer_killed_blocked() -> Result<(), Failed> {
    let (addr, _c, ring) = ring("pkill-full", 16)?;
    let mut child = spawn_child("produce", &child_env(&addr, &[]));
    let pid = child.id();
    wait_until(
        "the producer to fill the ring and park",
        Duration::from_secs(20),
        || {
            let i = ring.info();
            i.tail == 16 && i.producer.parked
        },
    )?;
    let mut rx = ring.consumer()?;
    assert!(rx.peer_alive());
    assert_eq!(rx.peer_pid(), Some(pid));
    sigkill(pid);
    let killed = Instant::now();
    recv_range(&mut rx, 1, 16)?;
    let mut buf = [0u8; 128];
    match rx.recv(&mut buf) {
        Err(RecvError::PeerDied { pid: p }) if p == pid => {}
        other => return Err(format!("expected PeerDied {{ pid: {pid} }}, got {other:?}").into()),
    }
    let noticed = killed.elapsed();
    eprintln!("producer death noticed {noticed:?} after SIGKILL");
    if noticed > Duration::from_secs(1) {
        return Err(format!("death noticed only after {noticed:?}").into());
    }
    assert!(!rx.peer_alive());
    child.wait()?;
    // A new producer takes over and continues the numbering.
    let mut child2 = spawn_child("produce", &child_env(&addr, &[("SHMPIPE_COUNT", "100")]));
    // Until it claims, the dead one's PeerDied stands; wait for the new one.
    assert_eq!(rx.recv(&mut buf), Err(RecvError::PeerDied { pid }));
    let pid2 = rx
        .wait_for_producer(Some(Instant::now() + Duration::from_secs(20)))
        .map_err(|e| format!("waiting for a new producer: {e}"))?;
    assert_eq!(pid2, child2.id());
    recv_range(&mut rx, 1, 116)?;
    assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    assert!(wait_child(&mut child2, Duration::from_secs(30)).success());
    Ok(())
}

fn producer_killed_mid_stream() -> Result<(), Failed> {
    let (addr, _c, ring) = ring("pkill-stream", 64)?;
    let mut child = spawn_child("produce", &child_env(&addr, &[]));
    let pid = child.id();
    let mut rx = ring.consumer()?;
    recv_range(&mut rx, 1, 50_000)?;
    sigkill(pid);
    let killed = Instant::now();
    // Drain everything committed before the kill; nothing is torn.
    let max = rx.max_message();
    let mut buf = vec![0u8; max];
    let died = loop {
        let seq = rx.position();
        match rx.recv(&mut buf) {
            Ok(n) => check_msg(1, seq, max, &buf[..n])?,
            Err(RecvError::PeerDied { pid: p }) if p == pid => break killed.elapsed(),
            Err(e) => return Err(format!("at {seq}: {e}").into()),
        }
    };
    eprintln!(
        "drained up to {}; death noticed {died:?} after SIGKILL",
        rx.position()
    );
    if died > Duration::from_secs(1) {
        return Err(format!("death noticed only after {died:?}").into());
    }
    child.wait()?;
    let resume = rx.position();
    let mut child2 = spawn_child("produce", &child_env(&addr, &[("SHMPIPE_COUNT", "1000")]));
    rx.wait_for_producer(Some(Instant::now() + Duration::from_secs(20)))
        .map_err(|e| format!("waiting for a new producer: {e}"))?;
    recv_range(&mut rx, 1, resume + 1000)?;
    assert_eq!(rx.recv(&mut buf), Err(RecvError::Disconnected));
    assert!(wait_child(&mut child2, Duration::from_secs(30)).success());
    Ok(())
}

fn consumer_killed_blocked() -> Result<(), Failed> {
    let (addr, _c, ring) = ring("ckill-full", 16)?;
    let mut child = spawn_child(
        "consume",
        &child_env(&addr, &[("SHMPIPE_HANG_AFTER", "10")]),
    );
    let pid = child.id();
    let mut tx = ring.producer()?;
    let max = tx.max_message();
    let mut buf = vec![0u8; max];
    wait_until(
        "the consumer to attach",
        Duration::from_secs(20),
        || matches!(ring.info().consumer.state, SideState::Attached { pid: p, .. } if p == pid),
    )?;
    let mut killed_at = None;
    std::thread::scope(|s| -> Result<(), Failed> {
        let killer = s.spawn(|| -> Result<Instant, Failed> {
            wait_until(
                "the producer to park on a full ring",
                Duration::from_secs(20),
                || {
                    let i = ring.info();
                    i.head == 10 && i.tail == 26 && i.producer.parked
                },
            )?;
            sigkill(pid);
            Ok(Instant::now())
        });
        let outcome = loop {
            let seq = tx.position();
            let len = fill_msg(1, seq, max, &mut buf);
            // Owned, so that the failed send hands it back.
            match tx.send(buf[..len].to_vec()) {
                Ok(()) => continue,
                Err(e) => break e,
            }
        };
        let killed = killer.join().unwrap()?;
        killed_at = Some(killed);
        match outcome {
            SendError::PeerDied { pid: p, msg } if p == pid => {
                assert_eq!(msg.len(), msg_len(1, 26, max), "the message is handed back");
            }
            other => return Err(format!("expected PeerDied, got {other:?}").into()),
        }
        let noticed = killed.elapsed();
        eprintln!("consumer death noticed {noticed:?} after SIGKILL");
        if noticed > Duration::from_secs(1) {
            return Err(format!("death noticed only after {noticed:?}").into());
        }
        Ok(())
    })?;
    assert!(killed_at.is_some());
    assert!(!tx.peer_alive());
    child.wait()?;
    // A new consumer takes over from position 10 (the dead one released 10).
    let mut child2 = spawn_child("consume", &child_env(&addr, &[]));
    tx.wait_for_consumer(Some(Instant::now() + Duration::from_secs(20)))
        .map_err(|e| format!("waiting for a new consumer: {e}"))?;
    while tx.position() < 126 {
        let seq = tx.position();
        let len = fill_msg(1, seq, max, &mut buf);
        tx.send(&buf[..len])
            .map_err(|e| format!("send {seq}: {e}"))?;
    }
    drop(tx);
    let out = child2.0.wait_with_output_taken()?;
    if out.0 != "10 126" {
        return Err(format!("new consumer read {:?}, expected 10..126", out.0).into());
    }
    Ok(())
}

fn consumer_killed_holding_borrow() -> Result<(), Failed> {
    let (addr, _c, ring) = ring("ckill-borrow", 16)?;
    let mut tx = ring.producer()?;
    let max = tx.max_message();
    let mut buf = vec![0u8; max];
    for _ in 0..8 {
        let seq = tx.position();
        let len = fill_msg(1, seq, max, &mut buf);
        tx.try_send(&buf[..len])?;
    }
    let mut child = spawn_child(
        "consume",
        &child_env(&addr, &[("SHMPIPE_BORROW_HANG", "5")]),
    );
    let pid = child.id();
    wait_until(
        "the consumer to release 5 messages",
        Duration::from_secs(20),
        || ring.info().head == 5,
    )?;
    std::thread::sleep(Duration::from_millis(50)); // now holding message 5
    sigkill(pid);
    child.wait()?;
    // Message 5 was never released: the next consumer gets it again.
    let mut child2 = spawn_child("consume", &child_env(&addr, &[]));
    drop(tx);
    let out = child2.0.wait_with_output_taken()?;
    if out.0 != "5 8" {
        return Err(format!("new consumer read {:?}, expected 5..8", out.0).into());
    }
    Ok(())
}

fn consumer_exit_disconnects() -> Result<(), Failed> {
    let (addr, _c, ring) = ring("cexit", 16)?;
    let mut child = spawn_child("consume", &child_env(&addr, &[("SHMPIPE_COUNT", "100")]));
    let mut tx = ring.producer()?;
    let max = tx.max_message();
    let mut buf = vec![0u8; max];
    let err = loop {
        let seq = tx.position();
        let len = fill_msg(1, seq, max, &mut buf);
        if let Err(e) = tx.send(&buf[..len]) {
            break e;
        }
    };
    assert!(matches!(err, SendError::Disconnected(_)), "{err:?}");
    assert!(wait_child(&mut child, Duration::from_secs(30)).success());
    Ok(())
}

trait TakeOutput {
    /// Waits for the child and returns its trimmed stdout and status.
    fn wait_with_output_taken(&mut self) -> Result<(String, std::process::ExitStatus), Failed>;
}

impl TakeOutput for std::process::Child {
    fn wait_with_output_taken(&mut self) -> Result<(String, std::process::ExitStatus), Failed> {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut stdout) = self.stdout.take() {
            stdout.read_to_string(&mut out)?;
        }
        let status = self.wait()?;
        if !status.success() {
            return Err(format!("child failed: {status}").into());
        }
        Ok((out.trim().to_owned(), status))
    }
}
