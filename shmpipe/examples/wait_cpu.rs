//! What one blocking wait costs the waiting thread in CPU time: going to
//! sleep, sleeping, and waking for one message, in every way a consumer can
//! wait, next to a pipe reader doing the same.
//!
//! A child process (pinned to CPU 0) sends one message every `GAP_MS`
//! milliseconds; the consumer (pinned to CPU 1) is asleep long before each
//! one arrives, and its thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) is
//! read around each wait. The ways of waiting:
//!
//! - `pipe`: a blocking `read(2)` of the child's stdout (the reference);
//! - `park`: `Consumer::recv` with `WaitStrategy::Park` (a futex sleep);
//! - `fd`: `arm`, `poll(2)` on `readiness_fd`, `try_recv`;
//! - `waitset`: `WaitSet::wait` over the ring alone (`futex_waitv`);
//! - `waitset-epoll`: the same set made with `WaitSet::with_epoll`.
//!
//! ```text
//! cargo run --release -p shmpipe --example wait_cpu [-- WAITS [GAP_MS]]
//! ```
//!
//! It prints the median and the minimum per way; `docs/benchmarks.md` has
//! the figures and how they compare with `shmpipe bench -w idle-cpu`.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::thread::{sched_setaffinity, CpuSet};
use rustix::time::{clock_gettime, ClockId};
use shmpipe::{Consumer, Ring, RingBuilder, TryRecvError, WaitSet, WaitStrategy};

const WAYS: [&str; 5] = ["pipe", "park", "fd", "waitset", "waitset-epoll"];

type Error = Box<dyn std::error::Error>;

fn thread_cpu_ns() -> u64 {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Pins this thread to `cpu` where there is such a CPU (best effort).
fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu);
    let _ = sched_setaffinity(None, &set);
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        return child(&args[2..]);
    }
    let waits: usize = args.get(1).map_or(Ok(6), |a| a.parse())?;
    let gap_ms: u64 = args.get(2).map_or(Ok(500), |a| a.parse())?;
    pin(1);
    println!("{waits} waits per way, one message every {gap_ms} ms; thread CPU per wait:");
    for way in WAYS {
        let mut v = measure(way, waits, gap_ms, &args[0])?;
        v.sort_unstable();
        println!(
            "  {way:<14} p50 {:>6.1} µs   min {:>6.1} µs",
            v[v.len() / 2] as f64 / 1e3,
            v[0] as f64 / 1e3
        );
    }
    Ok(())
}

/// The sender: `waits + 1` messages (the first one before any wait is
/// timed), `gap_ms` apart, on the pipe (its stdout) or the ring.
fn child(args: &[String]) -> Result<(), Error> {
    pin(0);
    let (way, waits, gap_ms) = (&args[0], args[1].parse::<usize>()?, args[2].parse()?);
    let gap = Duration::from_millis(gap_ms);
    if way == "pipe" {
        let mut out = std::io::stdout().lock();
        for _ in 0..=waits {
            std::thread::sleep(gap);
            out.write_all(b"x")?;
            out.flush()?;
        }
        return Ok(());
    }
    let ring = Ring::open(args[3].as_str())?;
    let mut tx = ring.producer()?;
    tx.set_wait_strategy(WaitStrategy::Park);
    for _ in 0..=waits {
        std::thread::sleep(gap);
        tx.send(b"x")?;
    }
    Ok(())
}

/// The consumer's side of one way: the thread CPU time of each wait.
fn measure(way: &str, waits: usize, gap_ms: u64, exe: &str) -> Result<Vec<u64>, Error> {
    let mut cmd = Command::new(exe);
    cmd.args(["child", way, &waits.to_string(), &gap_ms.to_string()]);
    let mut times = Vec::with_capacity(waits);
    if way == "pipe" {
        let mut child = cmd.stdout(Stdio::piped()).spawn()?;
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let mut b = [0u8; 1];
        out.read_exact(&mut b)?;
        for _ in 0..waits {
            let t0 = thread_cpu_ns();
            out.read_exact(&mut b)?;
            times.push(thread_cpu_ns() - t0);
        }
        child.wait()?;
        return Ok(times);
    }
    let addr = format!("shm:/shmpipe-wait-cpu-{}-{way}", std::process::id());
    let ring = RingBuilder::new().slots(8).create(addr.as_str())?;
    let mut rx = ring.consumer()?;
    rx.set_wait_strategy(WaitStrategy::Park);
    let mut child = cmd.arg(&addr).spawn()?;
    let mut buf = [0u8; 64];
    // The first message: every one-time setup (the peer's pidfd, the death
    // watcher, a descriptor) happens before the timed waits.
    rx.recv(&mut buf)?;
    let result = match way {
        "park" => timed(waits, &mut times, || {
            rx.recv(&mut buf).map(drop).map_err(Into::into)
        }),
        "fd" => timed(waits, &mut times, || recv_fd(&mut rx, &mut buf)),
        _ => {
            let mut set = if way == "waitset" {
                WaitSet::new()?
            } else {
                WaitSet::with_epoll()?
            };
            let t = set.add_consumer(rx)?;
            let mut ready = Vec::new();
            timed(waits, &mut times, || loop {
                match set.consumer(t).ok_or("no member")?.try_recv(&mut buf) {
                    Ok(_) => return Ok(()),
                    Err(TryRecvError::Empty) => {}
                    Err(e) => return Err(e.into()),
                }
                set.wait(None, &mut ready)?;
            })
        }
    };
    child.wait()?;
    drop(ring);
    let _ = Ring::remove(addr.as_str(), true);
    result.map(|()| times)
}

/// Runs `wait` `waits` times, timing each on the thread's CPU clock.
fn timed(
    waits: usize,
    times: &mut Vec<u64>,
    mut wait: impl FnMut() -> Result<(), Error>,
) -> Result<(), Error> {
    for _ in 0..waits {
        let t0 = thread_cpu_ns();
        wait()?;
        times.push(thread_cpu_ns() - t0);
    }
    Ok(())
}

/// One receive through the readiness descriptor, as an event loop makes it.
fn recv_fd(rx: &mut Consumer, buf: &mut [u8]) -> Result<(), Error> {
    loop {
        match rx.try_recv(buf) {
            Ok(_) => return Ok(()),
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        if rx.arm()? {
            let fd = rx.readiness_fd()?;
            let mut fds = [PollFd::new(&fd, PollFlags::IN)];
            poll(&mut fds, None)?;
        }
    }
}
