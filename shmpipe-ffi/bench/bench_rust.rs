//! The Rust side of the FFI benchmark: the same shape as `bench_c.c`, with
//! the `shmpipe` crate called directly (`make -C shmpipe-ffi bench` runs
//! both, interleaved, and reports the ratio).
//!
//! ```text
//! bench_rust stream N      64 B messages parent -> forked child
//! bench_rust pingpong N    64 B round trips parent -> child -> parent
//! ```
//!
//! Both processes busy-spin (`WaitStrategy::Spin`), the parent pinned to
//! CPU 0 and the child to CPU 1, one `send`/`recv` call per message.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::exit;
use std::time::Instant;

use shmpipe::{RecvError, Ring, RingBuilder, WaitStrategy};

const MSG: usize = 64;

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only touch that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn ring(name: &str) -> Ring {
    RingBuilder::new()
        .slots(1024)
        .max_message(MSG as u64)
        .wait_strategy(WaitStrategy::Spin)
        .create_memfd(name)
        .expect("creating a ring")
}

/// Forks; `true` in the child.
fn fork() -> bool {
    // SAFETY: this program has a single thread, so the child may keep
    // running Rust code after fork.
    match unsafe { libc::fork() } {
        -1 => panic!("fork failed: {}", std::io::Error::last_os_error()),
        0 => true,
        _ => false,
    }
}

fn reap() {
    // SAFETY: waits for any child; no pointer but a NULL status.
    unsafe { libc::wait(std::ptr::null_mut()) };
}

fn stream(n: u64) {
    let r = ring("bench-stream");
    let (mut parent_end, mut child_end) = UnixStream::pair().expect("socketpair");
    if fork() {
        pin(1);
        let mut rx = r.consumer().expect("consumer");
        let mut buf = [0u8; MSG];
        rx.recv(&mut buf).expect("recv");
        let t0 = Instant::now();
        for _ in 1..n {
            rx.recv(&mut buf).expect("recv");
        }
        let rate = (n - 1) as f64 / t0.elapsed().as_secs_f64();
        child_end.write_all(&rate.to_ne_bytes()).expect("report");
        drop(rx);
        exit(0);
    }
    pin(0);
    let mut tx = r.producer().expect("producer");
    let msg = [7u8; MSG];
    for _ in 0..n {
        tx.send(&msg).expect("send");
    }
    let mut bytes = [0u8; 8];
    parent_end.read_exact(&mut bytes).expect("result");
    reap();
    println!("stream_msgs_per_s {:.0}", f64::from_ne_bytes(bytes));
}

fn pingpong(n: u64) {
    let (there, back) = (ring("bench-ping"), ring("bench-pong"));
    if fork() {
        pin(1);
        let mut rx = there.consumer().expect("consumer");
        let mut tx = back.producer().expect("producer");
        let mut buf = [0u8; MSG];
        loop {
            match rx.recv(&mut buf) {
                Ok(len) => tx.send(&buf[..len]).expect("send"),
                Err(RecvError::Disconnected) => exit(0),
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    pin(0);
    let mut tx = there.producer().expect("producer");
    let mut rx = back.consumer().expect("consumer");
    let warmup = n / 10;
    let mut samples = Vec::with_capacity(n as usize);
    let msg = [7u8; MSG];
    let mut buf = [0u8; MSG];
    for i in 0..warmup + n {
        let t0 = Instant::now();
        tx.send(&msg).expect("send");
        rx.recv(&mut buf).expect("recv");
        if i >= warmup {
            samples.push(t0.elapsed().as_nanos() as u64);
        }
    }
    drop(tx);
    reap();
    samples.sort_unstable();
    println!("pingpong_p50_ns {}", samples[samples.len() / 2]);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = match args.get(2).and_then(|s| s.parse().ok()) {
        Some(n) if n >= 2 => n,
        _ => {
            eprintln!("usage: bench_rust stream|pingpong N");
            exit(2);
        }
    };
    match args[1].as_str() {
        "stream" => stream(n),
        "pingpong" => pingpong(n),
        _ => exit(2),
    }
}
