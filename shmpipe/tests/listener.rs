//! The listener, `connect` and request/response between real processes:
//! this test binary re-executes itself as the clients (and as a server to
//! kill) through `SHMPIPE_TEST_ROLE`.
//!
//! Run with `cargo test --test listener`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use shmpipe::{
    connect, listener_path, CallError, Client, Duplex, Error, Listener, ListenerBuilder,
    RingBuilder, Token, WaitSet,
};

/// The request that the server of `killed_client_is_noticed` never
/// answers.
const HANG: u64 = u64::MAX;

/// The service every test server runs: `x -> x * 3 + 1`.
fn service(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(1)
}

fn answer(req: &[u8], out: &mut [u8]) -> usize {
    let x = req.try_into().map(u64::from_le_bytes).unwrap_or(0);
    out[..8].copy_from_slice(&service(x).to_le_bytes());
    8
}

fn main() -> ExitCode {
    if let Ok(role) = std::env::var("SHMPIPE_TEST_ROLE") {
        return run_role(&role);
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("thirty_two_clients_ten_thousand_calls_each", many_clients),
        Trial::test(
            "client_killed_mid_call_is_noticed_and_the_others_served",
            killed_client,
        ),
        Trial::test(
            "other_user_refused_at_0600_and_admitted_at_0666",
            permissions,
        ),
        Trial::test(
            "nothing_left_after_a_run_nor_after_sigkill_and_rebind",
            nothing_left_behind,
        ),
        Trial::test(
            "a_socket_that_is_not_a_shmpipe_listener_is_a_handshake_error",
            foreign_listener,
        ),
        Trial::test("named_duplex_between_two_processes", named_duplex),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

fn run_role(role: &str) -> ExitCode {
    let result = match role {
        "client" => client_role(),
        "hang-client" => hang_client_role(),
        "connect-as-other-user" => other_user_role(),
        "server-to-kill" => server_to_kill_role(),
        "duplex-opener" => duplex_opener_role(),
        other => Err(format!("unknown role {other}")),
    };
    child_exit(role, result)
}

/// A listener address in a fresh private directory, and that directory.
fn private_socket(tag: &str) -> (String, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "shmpipe-test-{tag}-{}-{}",
        std::process::id(),
        unique("x").rsplit('-').next().unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    (dir.join("s.sock").display().to_string(), dir)
}

fn dir_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Child: connects to `SHMPIPE_ADDR`, makes `SHMPIPE_CALLS` calls with
/// values tagged by `SHMPIPE_INDEX`, and checks every reply.
fn client_role() -> Result<(), String> {
    let addr = var("SHMPIPE_ADDR");
    let index: u64 = var("SHMPIPE_INDEX").parse().unwrap();
    let calls: u64 = var("SHMPIPE_CALLS").parse().unwrap();
    let mut client = Client::connect(&addr).map_err(|e| e.to_string())?;
    if client.server_cred().map(|c| c.pid) != Some(std::os::unix::process::parent_id()) {
        return Err(format!("server credentials {:?}", client.server_cred()));
    }
    let mut out = [0u8; 64];
    for n in 0..calls {
        let x = (index << 32) | n;
        let len = client
            .call_into(&x.to_le_bytes(), &mut out, None)
            .map_err(|e| format!("call {n}: {e}"))?;
        if out[..len] != service(x).to_le_bytes() {
            return Err(format!("call {n}: wrong reply {:?}", &out[..len]));
        }
    }
    println!("done");
    Ok(())
}

/// Child: one good call, then a call the server never answers (the parent
/// kills this process meanwhile).
fn hang_client_role() -> Result<(), String> {
    let mut client = Client::connect(var("SHMPIPE_ADDR")).map_err(|e| e.to_string())?;
    let r = client
        .call(&7u64.to_le_bytes())
        .map_err(|e| e.to_string())?;
    if r != service(7).to_le_bytes() {
        return Err("wrong reply".into());
    }
    let r = client.call(&HANG.to_le_bytes());
    Err(format!("the hanging call returned {r:?}"))
}

/// The server loop of the tests: a `WaitSet` over the listener and every
/// connection until `clients` connections have ended. Requests of value
/// `HANG` are taken and never answered. Returns each client's pid with its
/// calls served and how its connection ended.
fn serve_clients(
    listener: Listener,
    clients: usize,
    limit: Duration,
    mut on_hang: impl FnMut(u32),
) -> Result<HashMap<u32, (u64, CallError)>, Failed> {
    let mut set = WaitSet::new()?;
    let lt = set.add_listener(listener)?;
    let mut conns: HashMap<Token, (u32, u64)> = HashMap::new();
    let mut ended = HashMap::new();
    let mut ready = Vec::new();
    let deadline = Instant::now() + limit;
    while ended.len() < clients {
        if Instant::now() > deadline {
            return Err(format!(
                "server: {} of {clients} clients ended within {limit:?}",
                ended.len()
            )
            .into());
        }
        set.wait(Some(Instant::now() + Duration::from_secs(1)), &mut ready)?;
        for &t in &ready {
            if t == lt {
                let mut new = Vec::new();
                while let Some(c) = set.listener(lt).unwrap().try_accept()? {
                    new.push(c);
                }
                for c in new {
                    let pid = c.peer_cred().pid;
                    conns.insert(set.add_duplex(c.into_duplex())?, (pid, 0));
                }
                continue;
            }
            let d = set.duplex(t).unwrap();
            let end = loop {
                match d.try_recv_request() {
                    Ok(Some(req)) => {
                        let x = u64::from_le_bytes(req.body[..8].try_into().unwrap());
                        if x == HANG {
                            on_hang(conns[&t].0);
                            continue;
                        }
                        if let Err(e) = d.reply(req.id, &service(x).to_le_bytes()) {
                            break Some(e);
                        }
                        conns.get_mut(&t).unwrap().1 += 1;
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            if let Some(e) = end {
                let (pid, n) = conns.remove(&t).unwrap();
                set.remove(t);
                ended.insert(pid, (n, e));
            }
        }
    }
    Ok(ended)
}

/// 32 client processes connect at once and make 10,000 calls each; one
/// server thread serves them all through a `WaitSet`.
fn many_clients() -> Result<(), Failed> {
    const CLIENTS: usize = 32;
    let calls = scaled(10_000);
    let (addr, dir) = private_socket("many");
    let listener = Listener::bind(&addr)?;
    let mut children: Vec<ChildGuard> = (0..CLIENTS)
        .map(|i| {
            spawn_child(
                "client",
                &[
                    ("SHMPIPE_ADDR", addr.clone()),
                    ("SHMPIPE_INDEX", i.to_string()),
                    ("SHMPIPE_CALLS", calls.to_string()),
                ],
            )
        })
        .collect();
    let ended = serve_clients(listener, CLIENTS, Duration::from_secs(600), |_| {})?;
    for c in &mut children {
        let pid = c.id();
        let (out, status) = c.output()?;
        if !status.success() || out != "done" {
            return Err(format!("client {pid}: {status}, said {out:?}").into());
        }
        match ended.get(&pid) {
            Some((n, CallError::Disconnected)) if *n == calls => {}
            other => return Err(format!("client {pid}: served/ended {other:?}").into()),
        }
    }
    let left = dir_entries(&dir);
    std::fs::remove_dir(&dir)?;
    if !left.is_empty() {
        return Err(format!("left in the listener's directory: {left:?}").into());
    }
    Ok(())
}

/// A client is killed while its call is outstanding: the server gets
/// `PeerDied` for it and serves the other clients to the end.
fn killed_client() -> Result<(), Failed> {
    let (addr, dir) = private_socket("killed");
    let listener = Listener::bind(&addr)?;
    let calls = scaled(3_000);
    let env = |i: usize| {
        vec![
            ("SHMPIPE_ADDR", addr.clone()),
            ("SHMPIPE_INDEX", i.to_string()),
            ("SHMPIPE_CALLS", calls.to_string()),
        ]
    };
    let mut victim = spawn_child("hang-client", &env(99));
    let victim_pid = victim.id();
    let mut others: Vec<ChildGuard> = (0..3).map(|i| spawn_child("client", &env(i))).collect();
    let mut killed = false;
    let ended = serve_clients(listener, 4, Duration::from_secs(300), |pid| {
        assert_eq!(pid, victim_pid, "only the victim sends HANG");
        // SIGKILL while its call waits for the reply.
        victim.kill().unwrap();
        killed = true;
    })?;
    if !killed {
        return Err("the victim's hanging call never arrived".into());
    }
    match ended.get(&victim_pid) {
        Some((1, CallError::PeerDied { pid })) if *pid == victim_pid => {}
        other => return Err(format!("victim: {other:?}, expected PeerDied after 1 call").into()),
    }
    for c in &mut others {
        let pid = c.id();
        let (out, status) = c.output()?;
        if !status.success() || out != "done" {
            return Err(format!("client {pid}: {status}, said {out:?}").into());
        }
        match ended.get(&pid) {
            Some((n, CallError::Disconnected)) if *n == calls => {}
            other => return Err(format!("client {pid}: {other:?}").into()),
        }
    }
    std::fs::remove_dir(&dir)?;
    Ok(())
}

/// Child, as `nobody`: connects to each address in `SHMPIPE_ADDRS` and
/// reports `denied:<mode>` or `ok` (after one call) for each.
fn other_user_role() -> Result<(), String> {
    let mut out = Vec::new();
    for addr in var("SHMPIPE_ADDRS").split(',') {
        match Client::connect(addr) {
            Ok(mut c) => {
                let r = c.call(&5u64.to_le_bytes()).map_err(|e| e.to_string())?;
                if r != service(5).to_le_bytes() {
                    return Err("wrong reply".into());
                }
                out.push("ok".to_owned());
            }
            Err(
                ref e @ Error::PermissionDenied {
                    op: "connect",
                    mode: Some(m),
                    ..
                },
            ) => {
                let text = e.to_string();
                if !text.contains(&listener_path(addr).unwrap().display().to_string()) {
                    return Err(format!("message lacks the path: {text}"));
                }
                out.push(format!("denied:{m:o}"));
            }
            Err(e) => out.push(format!("error: {e}")),
        }
    }
    println!("{}", out.join(","));
    Ok(())
}

/// A listener at mode 0600 keeps another user out; one at 0666 admits it.
/// Runs as root, re-executing this test as `nobody`.
fn permissions() -> Result<(), Failed> {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !rustix::process::getuid().is_root() {
        eprintln!("skipped: needs root to run a child as another user");
        return Ok(());
    }
    let (uid, gid) = nobody();
    let tag = format!(
        "{}-{}",
        std::process::id(),
        unique("p").rsplit('-').next().unwrap()
    );
    // Names: sockets in /dev/shm, which `nobody` can reach.
    let private = format!("test-perm-private-{tag}");
    let shared = format!("test-perm-shared-{tag}");
    let _private = Listener::bind(&private)?;
    let mut shared_l = ListenerBuilder::new().mode(0o666).bind(&shared)?;
    let mode = std::fs::metadata(shared_l.path())?.permissions().mode() & 0o777;
    if mode != 0o666 {
        return Err(format!("shared socket has mode {mode:o}").into());
    }
    let server = std::thread::spawn(move || -> Result<u32, String> {
        let mut c = shared_l
            .accept_timeout(Duration::from_secs(60))
            .map_err(|e| e.to_string())?
            .ok_or("no client came")?;
        c.serve(answer).map_err(|e| e.to_string())?;
        Ok(c.peer_cred().uid)
    });
    let dir = std::env::temp_dir().join(format!("shmpipe-lperm-{tag}"));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let exe = dir.join("peer");
    std::fs::copy(std::env::current_exe()?, &exe)?;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))?;
    let out = std::process::Command::new(&exe)
        .env("SHMPIPE_TEST_ROLE", "connect-as-other-user")
        .env("SHMPIPE_ADDRS", format!("{private},{shared}"))
        .uid(uid)
        .gid(gid)
        .output()?;
    std::fs::remove_dir_all(&dir)?;
    let report = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || report != "denied:600,ok" {
        return Err(format!(
            "as uid {uid}: expected \"denied:600,ok\"; got {report:?} ({}; {})",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let seen = server.join().unwrap()?;
    if seen != uid {
        return Err(format!("server saw uid {seen}, expected {uid}").into());
    }
    Ok(())
}

/// The uid and gid of `nobody` (65534 if /etc/passwd does not say).
fn nobody() -> (u32, u32) {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&"nobody") && f.len() > 3)
                    .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                    .flatten()
            })
        })
        .unwrap_or((65534, 65534))
}

/// Child: binds `SHMPIPE_ADDR`, serves one client until killed.
fn server_to_kill_role() -> Result<(), String> {
    let mut l = Listener::bind(var("SHMPIPE_ADDR")).map_err(|e| e.to_string())?;
    println!("listening");
    let mut c = l.accept().map_err(|e| e.to_string())?;
    c.serve(answer).map_err(|e| e.to_string())?;
    Err("the client went away before the kill".into())
}

/// After a run nothing of the listener is left, in its directory or in
/// /dev/shm; after a SIGKILL of the server its socket stays, the client's
/// call gets `PeerDied`, and the next `bind` reclaims the socket.
fn nothing_left_behind() -> Result<(), Failed> {
    use std::io::BufRead;
    // A named listener: its socket lives in /dev/shm; the rings are memfds.
    let tag = format!(
        "test-left-{}-{}",
        std::process::id(),
        unique("l").rsplit('-').next().unwrap()
    );
    let shm_mine = || -> Vec<String> {
        dir_entries(Path::new("/dev/shm"))
            .into_iter()
            .filter(|n| n.contains(&tag))
            .collect()
    };
    {
        let mut l = Listener::bind(&tag)?;
        if shm_mine().len() != 1 {
            return Err(format!("expected the socket alone: {:?}", shm_mine()).into());
        }
        let t = std::thread::spawn({
            let tag = tag.clone();
            move || -> Result<(), String> {
                let mut c = Client::connect(&tag).map_err(|e| e.to_string())?;
                for x in 0..100u64 {
                    let r = c.call(&x.to_le_bytes()).map_err(|e| e.to_string())?;
                    assert_eq!(r, service(x).to_le_bytes());
                }
                Ok(())
            }
        });
        let mut conn = l.accept()?;
        if conn.serve(answer)? != 100 {
            return Err("served a wrong number of calls".into());
        }
        t.join().unwrap()?;
    }
    if !shm_mine().is_empty() {
        return Err(format!("left in /dev/shm: {:?}", shm_mine()).into());
    }

    // SIGKILL the server mid-connection.
    let (addr, dir) = private_socket("sigkill");
    let mut server = spawn_child("server-to-kill", &[("SHMPIPE_ADDR", addr.clone())]);
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.as_mut().unwrap()).read_line(&mut line)?;
    if line.trim() != "listening" {
        return Err(format!("server said {line:?}").into());
    }
    let mut client = Client::connect(&addr)?;
    assert_eq!(client.call(&1u64.to_le_bytes())?, service(1).to_le_bytes());
    server.kill()?;
    server.wait()?;
    match client.call_timeout(&2u64.to_le_bytes(), Duration::from_secs(60)) {
        Err(CallError::PeerDied { pid }) if pid == server.id() => {}
        other => return Err(format!("call to a killed server: {other:?}").into()),
    }
    if dir_entries(&dir) != ["s.sock"] {
        return Err(format!("expected the stale socket: {:?}", dir_entries(&dir)).into());
    }
    match connect(&addr) {
        Err(Error::NoListener { .. }) => {}
        other => return Err(format!("connect to a stale socket: {other:?}").into()),
    }
    // The next bind reclaims it.
    let mut l = Listener::bind(&addr)?;
    let t = std::thread::spawn({
        let addr = addr.clone();
        move || Client::connect(&addr).map(|mut c| c.call(&3u64.to_le_bytes()))
    });
    l.accept()?.serve(answer)?;
    assert_eq!(t.join().unwrap()??, service(3).to_le_bytes());
    drop(l);
    let left = dir_entries(&dir);
    std::fs::remove_dir(&dir)?;
    if !left.is_empty() {
        return Err(format!("left after the rebound server: {left:?}").into());
    }
    Ok(())
}

/// A UNIX socket whose server is not shmpipe: `connect` fails with a
/// typed `Handshake` error, never hangs or maps anything.
fn foreign_listener() -> Result<(), Failed> {
    use std::io::Write;
    let (addr, dir) = private_socket("foreign");
    let plain = std::os::unix::net::UnixListener::bind(&addr)?;
    let t = std::thread::spawn(move || {
        let (mut s, _) = plain.accept().unwrap();
        s.write_all(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
    });
    match connect(&addr) {
        Err(Error::Handshake { reason, .. }) if reason.contains("not a shmpipe listener") => {}
        other => return Err(format!("expected a handshake error: {other:?}").into()),
    }
    t.join().unwrap();
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Child: opens the duplex at `SHMPIPE_ADDR`, serves calls on it until the
/// creator closes.
fn duplex_opener_role() -> Result<(), String> {
    let mut d =
        Duplex::open(&RingBuilder::new(), var("SHMPIPE_ADDR")).map_err(|e| e.to_string())?;
    let n = d.serve(answer).map_err(|e| e.to_string())?;
    println!("{n}");
    Ok(())
}

/// `Duplex::create` in one process, `Duplex::open` in another, calls
/// through it; both names go with the creator's `unlink_on_drop`.
fn named_duplex() -> Result<(), Failed> {
    let addr = unique("duplex");
    let (up, down) = Duplex::ring_addresses(&addr.parse()?)?;
    let _c = (Cleanup(up.to_string()), Cleanup(down.to_string()));
    let d = Duplex::create(RingBuilder::new().slots(8).unlink_on_drop(true), &addr)?;
    let mut child = spawn_child("duplex-opener", &[("SHMPIPE_ADDR", addr.clone())]);
    let mut client = Client::new(d);
    // The opener attaches when it starts: wait for its consumer side.
    client
        .duplex()
        .producer()
        .wait_for_consumer(Some(Instant::now() + Duration::from_secs(60)))
        .map_err(|e| format!("{:?}", e))?;
    for x in 0..1000u64 {
        assert_eq!(client.call(&x.to_le_bytes())?, service(x).to_le_bytes());
    }
    drop(client);
    let (out, status) = child.output()?;
    if !status.success() || out != "1000" {
        return Err(format!("opener: {status}, said {out:?}").into());
    }
    for a in [&up, &down] {
        if !matches!(shmpipe::Ring::open(a), Err(Error::NotFound { .. })) {
            return Err(format!("{a} left behind").into());
        }
    }
    Ok(())
}
