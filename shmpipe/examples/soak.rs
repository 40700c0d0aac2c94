//! Soak run: a billion self-checking messages from one process to another,
//! with periodic consumer stalls that force the producer to park, mixing
//! every send and receive path. Reports messages lost, duplicated,
//! reordered or corrupted (all must be 0) and the rate, and sleeps that
//! ended by their (60 s) timeout instead of a wake: lost wake-ups, which
//! must be 0 too. It is the long form of the `bursts_lose_no_wakeup` test.
//!
//! ```text
//! cargo run --release --example soak                       # 1e9 messages
//! cargo run --release --example soak -- --messages 100000000 --stall-every 5000000 --stall-ms 20
//! ```

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shmpipe::{Ring, RingBuilder};

/// Far longer than any stall: a sleep that times out was never woken.
const HEARTBEAT: Duration = Duration::from_secs(60);

struct Opts {
    messages: u64,
    stall_every: u64,
    stall_ms: u64,
    slots: u64,
}

fn parse() -> Result<(Opts, Option<String>), String> {
    let mut o = Opts {
        messages: 1_000_000_000,
        stall_every: 20_000_000,
        stall_ms: 10,
        slots: 1024,
    };
    let mut consume = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match a.as_str() {
            "--messages" => o.messages = num("--messages")?,
            "--stall-every" => o.stall_every = num("--stall-every")?.max(1),
            "--stall-ms" => o.stall_ms = num("--stall-ms")?,
            "--slots" => o.slots = num("--slots")?,
            "--consume" => consume = args.next(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((o, consume))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Message `seq`: 8-byte sequence number, 8-byte checksum, then 0..=40
/// payload bytes derived from `seq`.
fn fill(seq: u64, buf: &mut [u8]) -> usize {
    let extra = (mix(seq) % 41) as usize;
    let mut h = mix(seq ^ 0xABCD);
    for (i, b) in buf[16..16 + extra].iter_mut().enumerate() {
        *b = (h >> ((i % 8) * 8)) as u8;
        if i % 8 == 7 {
            h = mix(h);
        }
    }
    let sum = checksum(&buf[16..16 + extra]) ^ seq;
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&sum.to_le_bytes());
    16 + extra
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

#[derive(Default)]
struct Tally {
    received: u64,
    lost: u64,
    duplicated: u64,
    corrupted: u64,
}

impl Tally {
    fn check(&mut self, expected: &mut u64, msg: &[u8]) {
        self.received += 1;
        if msg.len() < 16 {
            self.corrupted += 1;
            return;
        }
        let seq = u64::from_le_bytes(msg[..8].try_into().unwrap());
        let sum = u64::from_le_bytes(msg[8..16].try_into().unwrap());
        if sum != checksum(&msg[16..]) ^ seq || msg.len() != 16 + (mix(seq) % 41) as usize {
            self.corrupted += 1;
        }
        match seq.cmp(expected) {
            std::cmp::Ordering::Equal => *expected += 1,
            std::cmp::Ordering::Greater => {
                self.lost += seq - *expected;
                *expected = seq + 1;
            }
            std::cmp::Ordering::Less => self.duplicated += 1,
        }
    }
}

fn consume(addr: &str, o: &Opts) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Ring::open(addr)?;
    let mut rx = ring.consumer()?;
    rx.set_heartbeat(HEARTBEAT);
    let mut buf = vec![0u8; rx.max_message()];
    let mut t = Tally::default();
    let mut expected = 0u64;
    let mut stalls = 0u64;
    let mut next_stall = o.stall_every;
    let start = Instant::now();
    while expected < o.messages {
        if t.received >= next_stall {
            // Stall: the producer fills the ring and parks.
            std::thread::sleep(Duration::from_millis(o.stall_ms));
            stalls += 1;
            next_stall += o.stall_every;
        }
        match (t.received / 4096) % 3 {
            0 => {
                let n = rx.recv(&mut buf).map_err(|e| format!("recv: {e}"))?;
                t.check(&mut expected, &buf[..n]);
            }
            1 => {
                let m = rx.borrow().map_err(|e| format!("borrow: {e}"))?;
                t.check(&mut expected, &m);
            }
            _ => {
                rx.recv_batch_deadline(64, None, |m| t.check(&mut expected, m))
                    .map_err(|e| format!("batch: {e}"))?;
            }
        }
        if t.lost > 0 || t.corrupted > 0 {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let s = rx.stats();
    println!(
        "{} {} {} {} {secs} {stalls} {} {} {}",
        t.received,
        t.lost,
        t.duplicated,
        t.corrupted,
        s.futex_waits,
        s.futex_wakes,
        s.wait_timeouts
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (o, consume_addr) = parse()?;
    if let Some(addr) = consume_addr {
        return consume(&addr, &o);
    }
    let addr = format!("shm:shmpipe-soak-{}", std::process::id());
    let ring = RingBuilder::new()
        .slots(o.slots)
        .slot_size(64)
        .unlink_on_drop(true)
        .create(&addr)?;
    println!(
        "soak: {} messages of 16-56 bytes through {} slots, consumer stalls {} ms every {} messages",
        o.messages, o.slots, o.stall_ms, o.stall_every
    );
    let child = Command::new(std::env::current_exe()?)
        .args([
            "--consume",
            &addr,
            "--messages",
            &o.messages.to_string(),
            "--stall-every",
            &o.stall_every.to_string(),
            "--stall-ms",
            &o.stall_ms.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut tx = ring.producer()?;
    tx.set_heartbeat(HEARTBEAT);
    let mut buf = [0u8; 56];
    let mut seq = 0u64;
    let start = Instant::now();
    let mut last_report = Instant::now();
    while seq < o.messages {
        match (seq / 4096) % 3 {
            0 => {
                let n = fill(seq, &mut buf);
                tx.send(&buf[..n]).map_err(|e| e.map(drop))?;
                seq += 1;
            }
            1 => {
                let mut slot = tx.reserve().map_err(|e| e.map(drop))?;
                let n = fill(seq, &mut slot);
                slot.commit(n);
                seq += 1;
            }
            _ => {
                let want = (o.messages - seq).min(64) as usize;
                let mut batch = tx
                    .reserve_batch_deadline(want, None)
                    .map_err(|e| e.map(drop))?;
                while batch.push_with(|b| fill(seq, b)) {
                    seq += 1;
                }
                batch.commit();
            }
        }
        if seq % (1 << 24) == 0 && last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  {seq} sent ({:.1} M msg/s)",
                seq as f64 / start.elapsed().as_secs_f64() / 1e6
            );
            last_report = Instant::now();
        }
    }
    let ps = tx.stats();
    drop(tx);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("consumer failed: {}", out.status).into());
    }
    let report = String::from_utf8(out.stdout)?;
    let f: Vec<&str> = report.split_whitespace().collect();
    let (received, lost, dup, corrupt): (u64, u64, u64, u64) =
        (f[0].parse()?, f[1].parse()?, f[2].parse()?, f[3].parse()?);
    let secs: f64 = f[4].parse()?;
    println!(
        "received   {received} messages in {secs:.1} s ({:.1} M msg/s)",
        received as f64 / secs / 1e6
    );
    println!("lost       {lost}");
    println!("duplicated {dup}");
    println!("corrupted  {corrupt}");
    println!(
        "parking    consumer stalled {} times; producer found the ring full {} times and slept {} times; consumer slept {} times",
        f[5], ps.stalls, ps.futex_waits, f[6]
    );
    let timeouts = ps.wait_timeouts + f[8].parse::<u64>()?;
    println!("late wakes {timeouts} (sleeps that ended by their timeout, not a wake)");
    if lost + dup + corrupt + timeouts > 0 || received != o.messages {
        return Err("SOAK FAILED".into());
    }
    println!("OK");
    Ok(())
}
