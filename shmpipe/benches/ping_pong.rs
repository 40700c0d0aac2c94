//! Round trips of 64-byte messages between two processes over two shm
//! rings, busy-spinning and with the default spin-then-park waiting.
//!
//! The bench re-executes its own binary as the echoing peer (selected by
//! an environment variable), so the two sides are separate processes with
//! separate mappings, as in real use. Each iteration is one round trip:
//! `send` a numbered ping, `recv` its pong, check the number.
//!
//! ```text
//! cargo bench --bench ping_pong
//! ```

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use shmpipe::{Ring, RingBuilder, WaitStrategy};

/// Set in the echoing child: `PING_ADDR PONG_ADDR STRATEGY`.
const CHILD_ENV: &str = "SHMPIPE_BENCH_PING_PONG_ECHO";
const MSG: usize = 64;

fn strategy(name: &str) -> WaitStrategy {
    match name {
        "spin" => WaitStrategy::Spin,
        _ => WaitStrategy::DEFAULT,
    }
}

/// The echoing peer: sends every ping back until the pinger goes away.
fn echo(spec: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut parts = spec.split(' ');
    let (Some(ping), Some(pong), Some(wait)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("bad {CHILD_ENV}: {spec:?}").into());
    };
    let mut rx = Ring::open(ping)?.consumer()?;
    let mut tx = Ring::open(pong)?.producer()?;
    rx.set_wait_strategy(strategy(wait));
    tx.set_wait_strategy(strategy(wait));
    let mut buf = [0u8; MSG];
    loop {
        match rx.recv(&mut buf) {
            Ok(n) => tx.send(&buf[..n]).map_err(|e| e.map(drop))?,
            Err(e) if e.is_disconnected() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Kills and reaps the echoing child if the bench ends early.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // Normally it has exited: the pinger closed its ring.
            std::thread::sleep(Duration::from_millis(100));
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
            }
        }
        let _ = self.0.wait();
    }
}

fn ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping-pong, 2 processes, 64 B");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for wait in ["spin", "spin-then-park"] {
        let pid = std::process::id();
        let ping = format!("shm:shmpipe-bench-pingpong-{pid}-{wait}-a");
        let pong = format!("shm:shmpipe-bench-pingpong-{pid}-{wait}-b");
        let mut b = RingBuilder::new();
        b.slots(64).max_message(MSG as u64).unlink_on_drop(true);
        let (ping_ring, pong_ring) = match (b.create(ping.as_str()), b.create(pong.as_str())) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                eprintln!(
                    "ping_pong: cannot create rings: {:?} {:?}",
                    a.err(),
                    b.err()
                );
                return;
            }
        };
        let mut tx = ping_ring.producer().expect("ping producer");
        let mut rx = pong_ring.consumer().expect("pong consumer");
        tx.set_wait_strategy(strategy(wait));
        rx.set_wait_strategy(strategy(wait));
        let exe = std::env::current_exe().expect("own executable");
        let child = Command::new(exe)
            .env(CHILD_ENV, format!("{ping} {pong} {wait}"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start the echoing peer");
        let _peer = Peer(child);
        let mut msg = [0xA5u8; MSG];
        let mut buf = [0u8; MSG];
        let mut seq = 0u64;
        group.bench_function(BenchmarkId::new("round trip", wait), |bench| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    msg[..8].copy_from_slice(&seq.to_le_bytes());
                    tx.send(&msg[..]).expect("send ping");
                    let n = rx.recv(&mut buf).expect("receive pong");
                    assert_eq!((n, &buf[..8]), (MSG, &seq.to_le_bytes()[..]));
                    seq += 1;
                }
                start.elapsed()
            });
        });
        // Closing the ping ring ends the echo loop; the guard reaps it.
        drop(tx);
    }
    group.finish();
}

criterion_group!(benches, ping_pong);

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        if let Err(e) = echo(&spec) {
            eprintln!("ping_pong echo: {e}");
            std::process::exit(1);
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
