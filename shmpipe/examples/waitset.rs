//! One consumer, several producer processes, one thread: a `WaitSet` over
//! all the rings. Each producer (this program re-run as a child) sends its
//! numbered messages at its own pace; the consumer sleeps until any ring
//! has something, drains it, and stops when every producer has closed.
//!
//! ```text
//! cargo run --release --example waitset            # 4 producers
//! cargo run --release --example waitset -- 16      # 16 producers
//! ```

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use shmpipe::{Ring, RingBuilder, TryRecvError, WaitSet};

fn produce(addr: &str, index: usize) -> Result<(), Box<dyn std::error::Error>> {
    let ring = Ring::open(addr)?;
    let mut tx = ring.producer()?;
    for n in 0..100u32 {
        std::thread::sleep(Duration::from_micros(200 * (index as u64 + 1)));
        tx.send(format!("producer {index}: message {n}"))
            .map_err(|e| e.map(drop))?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--produce" {
        return produce(&args[2], args[3].parse()?);
    }
    let producers: usize = args.get(1).map_or(Ok(4), |a| a.parse())?;
    let mut set = WaitSet::new()?;
    let mut children: Vec<Child> = Vec::new();
    let mut rings = Vec::new();
    for i in 0..producers {
        let addr = format!("shm:shmpipe-example-waitset-{}-{i}", std::process::id());
        let ring = RingBuilder::new()
            .slots(64)
            .max_message(120)
            .unlink_on_drop(true)
            .create(&addr)?;
        set.add_consumer(ring.consumer()?)?;
        children.push(
            Command::new(std::env::current_exe()?)
                .args(["--produce", &addr, &i.to_string()])
                .spawn()?,
        );
        rings.push(ring);
    }
    let start = Instant::now();
    let (mut received, mut wakeups, mut open) = (0u64, 0u64, producers);
    let mut ready = Vec::new();
    while open > 0 {
        set.wait(Some(Instant::now() + Duration::from_secs(10)), &mut ready)?;
        if ready.is_empty() {
            return Err("no producer made progress for 10 s".into());
        }
        wakeups += 1;
        for &token in &ready {
            let rx = set.consumer(token).expect("every member is a consumer");
            loop {
                match rx.try_recv_vec() {
                    Ok(_) => received += 1,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        set.remove(token);
                        open -= 1;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    for mut c in children {
        if !c.wait()?.success() {
            return Err("a producer failed".into());
        }
    }
    println!(
        "{received} messages from {producers} producer processes in {:.2?}, {wakeups} wake-ups of one thread",
        start.elapsed()
    );
    assert_eq!(received, 100 * producers as u64);
    Ok(())
}
