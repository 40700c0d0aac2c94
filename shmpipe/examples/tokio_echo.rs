//! An async request/response pair on tokio: a server task answers every
//! request with its bytes reversed, a client task sends requests and checks
//! the answers, both on one `current_thread` runtime, over two memfd rings
//! (one each way). A ticker task keeps running the whole time: nothing
//! blocks the executor.
//!
//! ```text
//! cargo run --release --example tokio_echo --features tokio
//! ```

use std::time::{Duration, Instant};

use shmpipe::{AsyncConsumer, AsyncProducer, RingBuilder};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requests = RingBuilder::new().slots(64).create_memfd("requests")?;
    let replies = RingBuilder::new().slots(64).create_memfd("replies")?;
    let mut server_rx = AsyncConsumer::new(requests.consumer()?)?;
    let mut server_tx = AsyncProducer::new(replies.producer()?)?;
    let mut client_tx = AsyncProducer::new(requests.producer()?)?;
    let mut client_rx = AsyncConsumer::new(replies.consumer()?)?;

    let ticker = tokio::spawn(async {
        let mut ticks = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            ticks += 1;
            if ticks % 1000 == 0 {
                println!("  (ticker: {ticks} ticks)");
            }
        }
    });
    let server = tokio::spawn(async move {
        let mut served = 0u64;
        loop {
            match server_rx.recv_vec().await {
                Ok(mut req) => {
                    req.reverse();
                    server_tx.send(req).await.map_err(|e| e.to_string())?;
                    served += 1;
                }
                Err(e) if e.is_disconnected() => return Ok::<u64, String>(served),
                Err(e) => return Err(e.to_string()),
            }
        }
    });

    let calls = 20_000u64;
    let start = Instant::now();
    for i in 0..calls {
        let req = format!("request number {i}");
        client_tx
            .send(req.as_bytes())
            .await
            .map_err(|e| e.map(drop))?;
        let reply = client_rx.recv_vec().await?;
        let expected: Vec<u8> = req.bytes().rev().collect();
        assert_eq!(reply, expected, "reply {i}");
    }
    let elapsed = start.elapsed();
    drop(client_tx); // the server sees Disconnected and ends
    let served = server.await??;
    ticker.abort();
    println!(
        "{calls} calls answered ({served} served) in {elapsed:.2?}: {:.1} µs per round trip",
        elapsed.as_secs_f64() * 1e6 / calls as f64
    );
    Ok(())
}
