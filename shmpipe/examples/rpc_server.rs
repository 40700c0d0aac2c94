//! One request/response server, several client processes: a `Listener`
//! that each client `connect`s to for its own private pair of rings, and
//! one server thread that waits on the listener and every connection at
//! once with a `WaitSet`.
//!
//! The clients (this program re-run as children) each make numbered calls
//! and check every reply; the server answers until every client has hung
//! up, then prints a summary.
//!
//! ```text
//! cargo run --release --example rpc_server                 # 4 clients x 10,000 calls
//! cargo run --release --example rpc_server -- 16 50000     # 16 clients x 50,000 calls
//! ```

use std::collections::HashMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use shmpipe::{Client, Listener, Token, WaitSet};

/// The service: the reply to `x` is `x * 3 + 1` (little-endian u64s).
fn answer(request: &[u8], reply: &mut [u8]) -> usize {
    let x = request
        .try_into()
        .map(u64::from_le_bytes)
        .unwrap_or(u64::MAX);
    reply[..8].copy_from_slice(&x.wrapping_mul(3).wrapping_add(1).to_le_bytes());
    8
}

fn client(address: &str, index: u64, calls: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = Client::connect(address)?;
    for n in 0..calls {
        let x = (index << 32) | n;
        let reply = client.call(&x.to_le_bytes())?;
        let expected = x.wrapping_mul(3).wrapping_add(1).to_le_bytes();
        if reply != expected {
            return Err(format!("call {n}: got {reply:?}, expected {expected:?}").into());
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "--client" {
        return client(&args[2], args[3].parse()?, args[4].parse()?);
    }
    let clients: u64 = args.get(1).map_or(Ok(4), |a| a.parse())?;
    let calls: u64 = args.get(2).map_or(Ok(10_000), |a| a.parse())?;

    // A name: the socket is /dev/shm/shmpipe-<name>.sock, mode 0600.
    let address = format!("rpc-example-{}", std::process::id());
    let listener = Listener::bind(&address)?;
    let socket = listener.path().to_owned();
    let mut set = WaitSet::new()?;
    let listening = set.add_listener(listener)?;

    let start = Instant::now();
    let mut children: Vec<Child> = (0..clients)
        .map(|i| {
            Command::new(std::env::current_exe()?)
                .args(["--client", &address, &i.to_string(), &calls.to_string()])
                .spawn()
        })
        .collect::<Result<_, _>>()?;

    // Each connection's token -> (client pid, calls served).
    let mut served: HashMap<Token, (u32, u64)> = HashMap::new();
    let (mut done, mut total, mut wakeups) = (0u64, 0u64, 0u64);
    let mut ready = Vec::new();
    while done < clients {
        let deadline = Instant::now() + Duration::from_secs(30);
        if set.wait(Some(deadline), &mut ready)? == 0 {
            return Err("no client made progress for 30 s".into());
        }
        wakeups += 1;
        for &token in &ready {
            if token == listening {
                let listener = set.listener(token).expect("the listener");
                let mut accepted = Vec::new();
                while let Some(conn) = listener.try_accept()? {
                    accepted.push(conn);
                }
                for conn in accepted {
                    let pid = conn.peer_cred().pid;
                    let t = set.add_duplex(conn.into_duplex())?;
                    served.insert(t, (pid, 0));
                }
                continue;
            }
            let duplex = set.duplex(token).expect("a connection");
            // Serve what is queued; stop at the first empty ring.
            loop {
                match duplex.try_serve(answer) {
                    Ok(true) => {
                        served.get_mut(&token).expect("known").1 += 1;
                        total += 1;
                    }
                    Ok(false) => break,
                    Err(e) => {
                        let (pid, n) = served[&token];
                        if !e.is_disconnected() {
                            eprintln!("client {pid}: {e}; dropping it");
                        }
                        println!("client {pid}: {n} calls served, then {e}");
                        set.remove(token);
                        done += 1;
                        break;
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed();
    for c in &mut children {
        let status = c.wait()?;
        if !status.success() {
            return Err(format!("a client failed: {status}").into());
        }
    }
    drop(set); // drops the listener: its socket file goes
    assert!(!socket.exists(), "the socket file was left behind");
    println!(
        "{clients} clients, {total} calls in {:.2} s ({:.0} calls/s, {wakeups} wake-ups of the server); \
         all replies checked, socket removed",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
    );
    if total != clients * calls {
        return Err(format!("served {total} calls, expected {}", clients * calls).into());
    }
    Ok(())
}
