//! async/await with tokio (feature `tokio`): the executor keeps running
//! while a consumer awaits, cancelled receives lose nothing, and a
//! `kill -9`ed producer is reported to an awaiting consumer at once.

#![allow(clippy::disallowed_types)]

mod common;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_core::Stream;
use libtest_mimic::{Arguments, Failed, Trial};
use shmpipe::{AsyncConsumer, AsyncProducer, MessageStream, RecvError, Ring, RingBuilder};

fn main() -> ExitCode {
    if std::env::var("SHMPIPE_TEST_ROLE").as_deref() == Ok("attach") {
        let ring = Ring::open(var("SHMPIPE_ADDR")).unwrap();
        let _tx = ring.producer().unwrap();
        println!("attached");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("the_executor_keeps_running_while_a_consumer_awaits", ticker),
        Trial::test("cancelled_receives_lose_nothing", cancellation),
        Trial::test("async_producer_waits_for_room", async_producer),
        Trial::test(
            "a_killed_producer_is_reported_to_an_awaiting_consumer",
            async_death,
        ),
        Trial::test(
            "the_message_stream_yields_each_message_once_and_ends_at_close",
            stream_cancelled_and_closed,
        ),
        Trial::test(
            "the_message_stream_reports_a_killed_producer_then_ends",
            stream_peer_died,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ticker() -> Result<(), Failed> {
    let ring = RingBuilder::new().slots(8).create_in_process()?;
    let mut tx = ring.producer()?;
    let rx = ring.consumer()?;
    let ticks = Arc::new(AtomicU64::new(0));
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        tx.try_send(b"late").unwrap();
        tx
    });
    let t = Arc::clone(&ticks);
    let got = rt().block_on(async move {
        let mut rx = AsyncConsumer::new(rx).unwrap();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        let m = rx.recv_vec().await;
        ticker.abort();
        m
    })?;
    drop(sender.join());
    let n = ticks.load(Ordering::Relaxed);
    eprintln!("the 5 ms ticker ran {n} times while the consumer awaited for 200 ms");
    if got != b"late" || n < 20 {
        return Err(format!("got {got:?}, ticker ran {n} times").into());
    }
    Ok(())
}

fn cancellation() -> Result<(), Failed> {
    let ring = RingBuilder::new().slots(16).create_in_process()?;
    let mut tx = ring.producer()?;
    let rx = ring.consumer()?;
    let count = scaled(10_000);
    let sender = std::thread::spawn(move || {
        for i in 0..count {
            if i % 3 != 0 {
                std::thread::sleep(Duration::from_micros(mix(i) % 200));
            }
            tx.send(i.to_le_bytes()).unwrap();
        }
    });
    let (cancelled, next) = rt().block_on(async move {
        let mut rx = AsyncConsumer::new(rx).unwrap();
        let mut buf = [0u8; 64];
        let (mut cancelled, mut next) = (0u64, 0u64);
        while next < count {
            tokio::select! {
                r = rx.recv(&mut buf) => {
                    let n = r.unwrap();
                    let v = u64::from_le_bytes(buf[..n].try_into().unwrap());
                    assert_eq!(v, next, "lost, duplicated or reordered");
                    next += 1;
                }
                // Every other round a timer, else a yield: either wins
                // whenever no message is ready at once, and drops the recv.
                _ = async {
                    if cancelled % 2 == 0 {
                        tokio::task::yield_now().await
                    } else {
                        tokio::time::sleep(Duration::from_micros(50)).await
                    }
                } => cancelled += 1,
            }
        }
        (cancelled, next)
    });
    sender.join().unwrap();
    eprintln!("{next} messages, each once, in order, with {cancelled} receives cancelled");
    if cancelled < 500 * count / 10_000 {
        return Err(format!("only {cancelled} cancellations: the test tested little").into());
    }
    Ok(())
}

fn async_producer() -> Result<(), Failed> {
    let ring = RingBuilder::new().slots(2).create_in_process()?;
    let tx = ring.producer()?;
    let mut rx = ring.consumer()?;
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < 100 {
            std::thread::sleep(Duration::from_micros(200));
            if let Ok(m) = rx.try_recv_vec() {
                got.push(m[0]);
            }
        }
        got
    });
    rt().block_on(async move {
        let mut tx = AsyncProducer::new(tx).unwrap();
        for i in 0..100u8 {
            if i % 2 == 0 {
                tx.send([i]).await.unwrap();
            } else {
                let mut slot = tx.reserve().await.unwrap();
                slot[0] = i;
                slot.commit(1);
            }
        }
    });
    let got = reader.join().unwrap();
    if got != (0..100).collect::<Vec<u8>>() {
        return Err(format!("{got:?}").into());
    }
    Ok(())
}

fn async_death() -> Result<(), Failed> {
    let mut times = Vec::new();
    for _ in 0..scaled(10) {
        let addr = unique("tokio-death");
        let _c = Cleanup(addr.clone());
        let ring = RingBuilder::new().slots(8).create(&addr)?;
        let mut child = spawn_child("attach", &[("SHMPIPE_ADDR", addr)]);
        {
            use std::io::BufRead;
            let mut line = String::new();
            std::io::BufReader::new(child.0.stdout.as_mut().unwrap()).read_line(&mut line)?;
        }
        let rx = ring.consumer()?;
        let pid = child.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            let t = Instant::now();
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid as i32).unwrap(),
                rustix::process::Signal::KILL,
            )
            .unwrap();
            t
        });
        let r = rt().block_on(async move {
            let mut rx = AsyncConsumer::new(rx).unwrap();
            tokio::time::timeout(Duration::from_secs(5), rx.recv_vec()).await
        });
        let noticed = Instant::now();
        let killed = killer.join().unwrap();
        let _ = child.wait();
        match r {
            Ok(Err(RecvError::PeerDied { pid: p })) if p == pid => {}
            other => return Err(format!("expected PeerDied, got {other:?}").into()),
        }
        times.push(noticed.saturating_duration_since(killed));
    }
    times.sort();
    eprintln!(
        "async: death noticed p50 {:?}, max {:?} over {} kills",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
    Ok(())
}

/// `StreamExt::next` without a dependency on `futures`.
async fn next(s: &mut MessageStream) -> Option<Result<Vec<u8>, RecvError>> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

fn stream_cancelled_and_closed() -> Result<(), Failed> {
    let ring = RingBuilder::new().slots(16).create_in_process()?;
    let mut tx = ring.producer()?;
    let rx = ring.consumer()?;
    let count = scaled(5_000);
    let sender = std::thread::spawn(move || {
        for i in 0..count {
            if i % 3 != 0 {
                std::thread::sleep(Duration::from_micros(mix(i) % 200));
            }
            tx.send(i.to_le_bytes()).unwrap();
        }
        // Dropping the producer closes the ring: the stream ends after the
        // last message.
    });
    let (cancelled, got, after_end) = rt().block_on(async move {
        let mut messages = AsyncConsumer::new(rx).unwrap().into_stream();
        let (mut cancelled, mut got) = (0u64, 0u64);
        loop {
            tokio::select! {
                m = next(&mut messages) => match m {
                    Some(m) => {
                        let v = u64::from_le_bytes(m.unwrap()[..].try_into().unwrap());
                        assert_eq!(v, got, "lost, duplicated or reordered");
                        got += 1;
                    }
                    None => break,
                },
                _ = async {
                    if cancelled % 2 == 0 {
                        tokio::task::yield_now().await
                    } else {
                        tokio::time::sleep(Duration::from_micros(50)).await
                    }
                } => cancelled += 1,
            }
        }
        let after_end = next(&mut messages).await.is_none() && messages.is_terminated();
        (cancelled, got, after_end)
    });
    sender.join().unwrap();
    eprintln!("stream: {got} messages, each once, in order, with {cancelled} polls cancelled");
    if got != count || !after_end {
        return Err(format!("got {got} of {count}; ended for good: {after_end}").into());
    }
    if cancelled < 250 * count / 5_000 {
        return Err(format!("only {cancelled} cancellations: the test tested little").into());
    }
    Ok(())
}

fn stream_peer_died() -> Result<(), Failed> {
    let addr = unique("tokio-stream-death");
    let _c = Cleanup(addr.clone());
    let ring = RingBuilder::new().slots(8).create(&addr)?;
    let mut child = spawn_child("attach", &[("SHMPIPE_ADDR", addr)]);
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.0.stdout.as_mut().unwrap()).read_line(&mut line)?;
    }
    let rx = ring.consumer()?;
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
    });
    let (first, second) = rt().block_on(async move {
        let mut messages = AsyncConsumer::new(rx).unwrap().into_stream();
        let first = tokio::time::timeout(Duration::from_secs(5), next(&mut messages)).await;
        let second = next(&mut messages).await;
        (first, second)
    });
    killer.join().unwrap();
    let _ = child.wait();
    match (first, second) {
        (Ok(Some(Err(RecvError::PeerDied { pid: p }))), None) if p == pid => Ok(()),
        other => Err(format!("expected PeerDied then the end, got {other:?}").into()),
    }
}
