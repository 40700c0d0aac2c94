//! Event-loop integration across processes: the readiness descriptor, a
//! `WaitSet` over 64 rings fed by 64 producer processes, prompt notice of a
//! `kill -9`ed peer in every waiting mode, and no descriptor leaks.
//! (The tokio tests are in `tests/tokio.rs`.)

mod common;

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use rustix::process::{kill_process, Pid, Signal};
use shmpipe::{RecvError, Ring, RingBuilder, Token, TryRecvError, WaitSet, WaitStrategy};

fn main() -> ExitCode {
    if let Ok(role) = std::env::var("SHMPIPE_TEST_ROLE") {
        return match role.as_str() {
            "produce" => produce(),
            "attach" => attach(),
            other => {
                eprintln!("unknown role {other}");
                ExitCode::FAILURE
            }
        };
    }
    let mut args = Arguments::from_args();
    // One at a time: the leak test counts this process's descriptors, which
    // the other tests' children and pipes would disturb.
    args.test_threads = Some(1);
    let trials = vec![
        Trial::test("waitset_over_64_producer_processes", || {
            waitset_64(WaitSet::new()?, true)
        }),
        Trial::test("waitset_over_64_producer_processes_on_descriptors", || {
            waitset_64(WaitSet::with_epoll()?, false)
        }),
        Trial::test("waitset_members_added_and_removed", waitset_add_remove),
        Trial::test("readiness_fd_in_poll", readiness_fd_in_poll),
        Trial::test(
            "peer_death_is_noticed_promptly_in_every_mode",
            death_in_every_mode,
        ),
        Trial::test("no_descriptor_leaks", no_descriptor_leaks),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

/// Child: sends `SHMPIPE_COUNT` messages `<index>:<n>` with random pauses.
fn produce() -> ExitCode {
    let ring = Ring::open(var("SHMPIPE_ADDR")).unwrap();
    let mut tx = ring.producer().unwrap();
    let index: u64 = var("SHMPIPE_INDEX").parse().unwrap();
    let count: u64 = var("SHMPIPE_COUNT").parse().unwrap();
    for n in 0..count {
        let pause = mix(index * 1000 + n) % 3000;
        std::thread::sleep(Duration::from_micros(pause));
        if tx.send(format!("{index}:{n}")).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Child: claims the producer side and waits to be killed.
fn attach() -> ExitCode {
    let ring = Ring::open(var("SHMPIPE_ADDR")).unwrap();
    let _tx = ring.producer().unwrap();
    println!("attached");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn ring(tag: &str) -> Result<(String, Cleanup, Ring), Failed> {
    let addr = unique(tag);
    let cleanup = Cleanup(addr.clone());
    let ring = RingBuilder::new().slots(16).slot_size(64).create(&addr)?;
    Ok((addr, cleanup, ring))
}

/// `futex`: whether the set is expected to sleep in `futex_waitv` (every
/// member a ring whose producer's death is watched).
fn waitset_64(mut set: WaitSet, futex: bool) -> Result<(), Failed> {
    const N: u64 = 64;
    let count = scaled(20);
    let mut rings = Vec::new();
    let mut tokens = HashMap::new();
    let mut children = Vec::new();
    for i in 0..N {
        let (addr, c, ring) = ring(&format!("ws{i}"))?;
        let t = set.add_consumer(ring.consumer()?)?;
        tokens.insert(t, i);
        children.push(spawn_child(
            "produce",
            &[
                ("SHMPIPE_ADDR", addr),
                ("SHMPIPE_INDEX", i.to_string()),
                ("SHMPIPE_COUNT", count.to_string()),
            ],
        ));
        rings.push((c, ring));
    }
    let mut next = vec![0u64; N as usize];
    let mut done = 0;
    let mut ready = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut futex_waits = 0;
    while done < N {
        set.wait(Some(deadline), &mut ready)?;
        futex_waits += u64::from(set.last_wait_used_futexes());
        if ready.is_empty() {
            return Err(format!("timed out; received {next:?}").into());
        }
        for &t in &ready {
            let i = tokens[&t];
            let rx = set.consumer(t).ok_or("a token names no consumer")?;
            loop {
                match rx.try_recv_vec() {
                    Ok(m) => {
                        let text = String::from_utf8(m)?;
                        let want = format!("{i}:{}", next[i as usize]);
                        if text != want {
                            return Err(format!("token {t:?}: got {text}, want {want}").into());
                        }
                        next[i as usize] += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        if next[i as usize] != count {
                            return Err(
                                format!("{i} disconnected after {}", next[i as usize]).into()
                            );
                        }
                        set.remove(t);
                        done += 1;
                        break;
                    }
                    Err(e) => return Err(format!("{i}: {e}").into()),
                }
            }
        }
    }
    for mut c in children {
        if !wait_child(&mut c, Duration::from_secs(10)).success() {
            return Err("a producer failed".into());
        }
    }
    if !set.is_empty() {
        return Err("members left".into());
    }
    if futex != (futex_waits > 0) {
        return Err(format!("{futex_waits} waits slept on futexes (expected: {futex})").into());
    }
    Ok(())
}

fn waitset_add_remove() -> Result<(), Failed> {
    let (_a, _ca, a) = ring("wsa")?;
    let (_b, _cb, b) = ring("wsb")?;
    let (mut ta, mut tb) = (a.producer()?, b.producer()?);
    let mut set = WaitSet::new()?;
    let ka = set.add_consumer(a.consumer()?)?;
    let mut ready = Vec::new();
    // Nothing ready: the deadline ends the wait.
    let t0 = Instant::now();
    set.wait(Some(t0 + Duration::from_millis(30)), &mut ready)?;
    if !ready.is_empty() || t0.elapsed() < Duration::from_millis(25) {
        return Err(format!("spurious readiness {ready:?}").into());
    }
    // A producer in another thread publishes while the set sleeps.
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        ta.try_send(b"a1").unwrap();
        ta
    });
    set.wait(Some(Instant::now() + Duration::from_secs(5)), &mut ready)?;
    if ready != [ka] {
        return Err(format!("expected [{ka:?}], got {ready:?}").into());
    }
    let mut ta = sender.join().unwrap();
    // Remove a, add b: only b's messages wake the set.
    let rx_a = match set.remove(ka) {
        Some(shmpipe::Member::Consumer(c)) => c,
        other => return Err(format!("remove gave {other:?}").into()),
    };
    let kb = set.add_consumer(b.consumer()?)?;
    ta.try_send(b"a2").unwrap();
    tb.try_send(b"b1").unwrap();
    set.wait(Some(Instant::now() + Duration::from_secs(5)), &mut ready)?;
    if ready != [kb] {
        return Err(format!("expected [{kb:?}], got {ready:?}").into());
    }
    assert_eq!(set.consumer(kb).unwrap().try_recv_vec()?, b"b1");
    drop(rx_a);
    // A producer member: ready when its ring has room.
    let (_c, _cc, c) = ring("wsc")?;
    let mut rx_c = c.consumer()?;
    let mut tx_c = c.producer()?;
    for i in 0..16u8 {
        tx_c.try_send([i])?;
    }
    let kc = set.add_producer(tx_c)?;
    set.wait(Some(Instant::now() + Duration::from_millis(20)), &mut ready)?;
    if ready.contains(&kc) {
        return Err("a full producer reported ready".into());
    }
    rx_c.try_recv_vec()?;
    set.wait(Some(Instant::now() + Duration::from_secs(5)), &mut ready)?;
    if !ready.contains(&kc) {
        return Err(format!("the producer's free slot went unnoticed: {ready:?}").into());
    }
    Ok(())
}

fn readable_within(fd: i32, ms: i32) -> bool {
    let mut fds = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd for the call.
    unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) == 1 }
}

/// On a `0600` shm ring the producer writes to the consumer's pipe; on a
/// memfd ring (whose descriptor anyone may have been handed) it sends to
/// the consumer's socket instead. Both make the descriptor readable.
fn readiness_fd_in_poll() -> Result<(), Failed> {
    let (_a, _c, shm) = ring("fd")?;
    readiness_fd_in_poll_on(&shm)?;
    let memfd = RingBuilder::new()
        .slots(16)
        .slot_size(64)
        .create_memfd("shmpipe-test-fd")?;
    readiness_fd_in_poll_on(&memfd)
}

fn readiness_fd_in_poll_on(ring: &Ring) -> Result<(), Failed> {
    let mut tx = ring.producer()?;
    let mut rx = ring.consumer()?;
    let fd = rx.readiness_fd()?.as_raw_fd();
    if !rx.arm()? {
        return Err("an empty ring is not ready".into());
    }
    if readable_within(fd, 20) {
        return Err("readable before anything was sent".into());
    }
    tx.try_send(b"x")?;
    if !readable_within(fd, 1000) {
        return Err("a publish did not make the descriptor readable".into());
    }
    assert_eq!(rx.try_recv_vec()?, b"x");
    // The call that finds the ring empty empties the descriptor.
    assert!(matches!(rx.try_recv_vec(), Err(TryRecvError::Empty)));
    if readable_within(fd, 0) {
        return Err("still readable after a call found the ring empty".into());
    }
    // Unarmed, a busy pair signals nothing.
    tx.try_send(b"y")?;
    if readable_within(fd, 20) {
        return Err("readable although the consumer had not armed".into());
    }
    assert!(!rx.arm()?, "a message is waiting: arm says do not wait");
    assert_eq!(rx.try_recv_vec()?, b"y");
    // Closing signals too.
    assert!(rx.arm()?);
    drop(tx);
    if !readable_within(fd, 1000) {
        return Err("the producer's close did not signal".into());
    }
    assert!(matches!(rx.try_recv_vec(), Err(TryRecvError::Disconnected)));
    Ok(())
}

/// How long a blocked consumer takes to learn its producer was killed, in
/// each way of waiting.
fn death_in_every_mode() -> Result<(), Failed> {
    let kills = scaled(10);
    let mut report = Vec::new();
    for mode in ["futex", "descriptor", "waitset", "waitset-epoll"] {
        let mut times = Vec::new();
        for _ in 0..kills {
            let (addr, _c, ring) = ring(&format!("death-{mode}"))?;
            let mut child = spawn_child("attach", &[("SHMPIPE_ADDR", addr)]);
            let mut line = String::new();
            {
                use std::io::BufRead;
                let out = child.0.stdout.as_mut().unwrap();
                std::io::BufReader::new(out).read_line(&mut line)?;
            }
            let mut rx = ring.consumer()?;
            rx.set_wait_strategy(WaitStrategy::Park);
            let pid = child.id();
            let killer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                let t = Instant::now();
                kill_process(Pid::from_raw(pid as i32).unwrap(), Signal::KILL).unwrap();
                t
            });
            let limit = Instant::now() + Duration::from_secs(5);
            let outcome = match mode {
                "futex" => rx.recv_deadline(&mut [0u8; 64], limit).map(|_| ()),
                "descriptor" => {
                    let fd = rx.readiness_fd()?.as_raw_fd();
                    loop {
                        match rx.arm() {
                            Ok(true) => {
                                if !readable_within(fd, 5000) {
                                    break Err(RecvError::Timeout);
                                }
                            }
                            Ok(false) => {}
                            Err(e) => break Err(e),
                        }
                    }
                }
                _ => {
                    let mut set = if mode == "waitset" {
                        WaitSet::new()?
                    } else {
                        WaitSet::with_epoll()?
                    };
                    let t = set.add_consumer(rx)?;
                    let mut ready = Vec::new();
                    // A first wait that times out leaves the member armed:
                    // the next one does not re-arm it, so the death must
                    // come through the pidfd registered in the set (or,
                    // sleeping on futexes, the death watcher's wake).
                    set.wait(Some(Instant::now() + Duration::from_millis(1)), &mut ready)?;
                    if !ready.is_empty() {
                        return Err(format!("ready before the kill: {ready:?}").into());
                    }
                    if set.last_wait_used_futexes() != (mode == "waitset") {
                        return Err(format!("{mode}: slept the wrong way").into());
                    }
                    loop {
                        set.wait(Some(limit), &mut ready)?;
                        if ready.is_empty() {
                            break Err(RecvError::Timeout);
                        }
                        let rx = set.consumer(t).unwrap();
                        if let Err(e) = rx.arm() {
                            break Err(e);
                        }
                    }
                }
            };
            let noticed = Instant::now();
            let killed = killer.join().unwrap();
            let _ = child.wait();
            match outcome {
                Err(RecvError::PeerDied { pid: p }) if p == pid => {}
                other => return Err(format!("{mode}: expected PeerDied, got {other:?}").into()),
            }
            times.push(noticed.saturating_duration_since(killed));
        }
        times.sort();
        let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        report.push(format!(
            "{mode}: p50 {:?}, p99 {:?}, max {:?} over {} kills",
            p(0.5),
            p(0.99),
            times[times.len() - 1],
            times.len()
        ));
        if times[times.len() - 1] > Duration::from_secs(1) {
            return Err(format!(
                "{mode}: death noticed only after {:?}",
                times[times.len() - 1]
            )
            .into());
        }
    }
    eprintln!("death noticed after SIGKILL: {}", report.join("; "));
    Ok(())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn no_descriptor_leaks() -> Result<(), Failed> {
    let (_a, _c, ring) = ring("leak")?;
    let cycles = scaled(10_000);
    let warm = {
        let mut rx = ring.consumer()?;
        rx.readiness_fd()?;
        drop(rx);
        open_fds()
    };
    for i in 0..cycles {
        let mut tx = ring.producer()?;
        let mut rx = ring.consumer()?;
        rx.readiness_fd()?;
        tx.readiness_fd()?;
        if i % 4 == 0 {
            let mut set = WaitSet::new()?;
            let t: Token = set.add_consumer(rx)?;
            set.add_producer(tx)?;
            let mut ready = Vec::new();
            set.wait(Some(Instant::now()), &mut ready)?;
            drop(set.remove(t));
        } else {
            rx.arm()?;
            tx.try_send(b"x").ok();
            rx.try_recv_vec().ok();
        }
    }
    let after = open_fds();
    if after > warm + 2 {
        return Err(format!("{cycles} cycles: {warm} descriptors before, {after} after").into());
    }
    eprintln!("{cycles} create/drop cycles: {warm} descriptors before, {after} after");
    Ok(())
}
