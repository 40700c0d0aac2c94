//! Streams messages from one process to another through a shared-memory
//! ring and prints messages/s and GB/s.
//!
//! ```text
//! cargo run --release --example stream                 # 64 B and 64 KiB messages
//! cargo run --release --example stream -- 64 1000000   # SIZE COUNT [SLOTS]
//! cargo run --release --example stream -- --huge       # ring in 2 MiB pages
//! ```
//!
//! The parent creates the ring and produces; it re-executes itself as the
//! consumer, which opens the ring by name, copies every message out, checks
//! the sequence numbers and reports its receive rate (first message to
//! last).

use std::process::{Command, Stdio};
use std::time::Instant;

use shmpipe::{HugePages, Ring, RingBuilder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--consume") {
        return consume(&args[1], args[2].parse()?);
    }
    let huge = args.iter().any(|a| a == "--huge");
    args.retain(|a| a != "--huge");
    let runs: Vec<(usize, u64, Option<u64>)> = match args.as_slice() {
        [size, count] => vec![(size.parse()?, count.parse()?, None)],
        [size, count, slots] => vec![(size.parse()?, count.parse()?, Some(slots.parse()?))],
        [] => vec![(64, 20_000_000, None), (65_528, 300_000, None)],
        _ => return Err("usage: stream [SIZE COUNT [SLOTS]]".into()),
    };
    println!(
        "{:>10} {:>7} {:>10} {:>8} {:>12} {:>9} {:>14} {:>8}",
        "msg size", "slots", "messages", "pages", "seconds", "M msg/s", "GB/s", "parks"
    );
    for (size, count, slots) in runs {
        run(size, count, slots.unwrap_or_else(|| slots_for(size)), huge)?;
    }
    Ok(())
}

/// Slots for a message size: about 1 MiB of ring, at least 16 slots.
fn slots_for(size: usize) -> u64 {
    ((1u64 << 20) / (size as u64 + 64))
        .clamp(16, 4096)
        .next_power_of_two()
}

fn run(size: usize, count: u64, slots: u64, huge: bool) -> Result<(), Box<dyn std::error::Error>> {
    let addr = format!("shm:shmpipe-example-stream-{}", std::process::id());
    let ring = RingBuilder::new()
        .slots(slots)
        .max_message(size.max(8) as u64)
        .huge_pages(if huge {
            HugePages::Require
        } else {
            HugePages::Never
        })
        .populate(true)
        .unlink_on_drop(true)
        .create(&addr)?;
    let page = ring.info().page_size;
    let child = Command::new(std::env::current_exe()?)
        .args(["--consume", &addr, &count.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut tx = ring.producer()?;
    let mut msg = vec![0xA5u8; size.max(8)];
    for seq in 0..count {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        tx.send(&msg[..]).map_err(|e| e.map(drop))?;
    }
    drop(tx);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("consumer failed: {}", out.status).into());
    }
    let report = String::from_utf8(out.stdout)?;
    let mut it = report.split_whitespace();
    let secs: f64 = it.next().ok_or("no report")?.parse()?;
    let parks: u64 = it.next().ok_or("no report")?.parse()?;
    let rate = count as f64 / secs;
    println!(
        "{:>8} B {:>7} {:>10} {:>6}KiB {:>12.3} {:>9.2} {:>14.2} {:>8}",
        size,
        slots,
        count,
        page / 1024,
        secs,
        rate / 1e6,
        rate * size as f64 / 1e9,
        parks
    );
    Ok(())
}

fn consume(addr: &str, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Ring::open(addr)?;
    let mut rx = ring.consumer()?;
    let mut buf = vec![0u8; rx.max_message()];
    let mut start = None;
    for seq in 0..count {
        let n = rx.recv(&mut buf)?;
        start.get_or_insert_with(Instant::now);
        let got = u64::from_le_bytes(buf[..8].try_into()?);
        if got != seq || n < 8 {
            return Err(format!("expected message {seq}, got {got} ({n} bytes)").into());
        }
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("{secs} {}", rx.stats().futex_waits);
    Ok(())
}
