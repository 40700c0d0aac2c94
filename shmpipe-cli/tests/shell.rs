//! The command line as a shell user meets it: signals and closed pipes on
//! real child processes, truncated streams, statuses that keep unread data,
//! removal under a blocked reader, other users' rings (`runuser -u
//! nobody`), and special files planted where rings are expected.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_shmpipe");

fn shmpipe(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run shmpipe")
}

fn shmpipe_with_input(args: &[&str], input: &[u8]) -> Output {
    let mut c = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input).unwrap();
    c.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn shm_path(addr: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/{}", addr.strip_prefix("shm:").unwrap()))
}

/// Waits for `child` at most `limit`; kills it and fails if it is slower.
fn wait_limited(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill takes no pointers; the child is ours and not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut s).unwrap();
    }
    s
}

/// Whether a side of the ring is attached (by a live process or not).
fn side_attached(addr: &str, side: &str) -> bool {
    let o = shmpipe(&["inspect", "--json", addr]);
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text(&o.stdout)) else {
        return false;
    };
    v[side]["state"] == "attached"
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let n = unique(tag);
        let d = std::env::temp_dir().join(n.trim_start_matches("shm:"));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deterministic pseudo-random byte stream.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut z = seed;
    while out.len() < len {
        z = mix(z);
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

// --- signals and broken pipes -------------------------------------------

/// A blocked `recv` that created the ring, interrupted by `sig`: it dies by
/// that signal (the shell's `128 + sig`) and the ring is gone.
fn interrupt_blocked_recv(sig: i32) {
    let addr = unique("sig-recv");
    let _c = Cleanup(addr.clone());
    let mut recv = Command::new(BIN)
        .args(["recv", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("recv to attach", Duration::from_secs(10), || {
        side_attached(&addr, "consumer")
    });
    let sent = Instant::now();
    signal(&recv, sig);
    let status = wait_limited(&mut recv, Duration::from_secs(5), "recv");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.signal(), Some(sig), "{status:?}");
    assert_eq!(stderr_of(&mut recv), "", "a signal ends it silently");
    assert!(!shm_path(&addr).exists(), "the ring it created is removed");
}

#[test]
fn sigint_sigterm_sighup_on_a_blocked_recv_remove_its_ring() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        interrupt_blocked_recv(sig);
    }
}

#[test]
fn the_shell_sees_130_and_143() {
    for (sig, want) in [(libc::SIGINT, "130"), (libc::SIGTERM, "143")] {
        let addr = unique("sig-shell");
        let _c = Cleanup(addr.clone());
        // In the foreground, as typed at a prompt.
        let mut sh = Command::new("bash")
            .args(["-c", &format!("{BIN} recv {addr} > /dev/null; echo $?")])
            .stderr(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("recv to attach", Duration::from_secs(10), || {
            side_attached(&addr, "consumer")
        });
        let o = shmpipe(&["inspect", "--json", &addr]);
        let v: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
        let pid = v["consumer"]["pid"].as_i64().unwrap() as i32;
        // SAFETY: kill takes no pointers.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        wait_limited(&mut sh, Duration::from_secs(5), "bash");
        let mut out = String::new();
        sh.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out.trim(), want);
    }
}

#[test]
fn sigterm_on_send_blocked_on_a_full_ring_removes_the_ring_it_created() {
    let addr = unique("sig-send");
    let _c = Cleanup(addr.clone());
    let mut send = Command::new(BIN)
        .args(["send", &addr, "--slots", "2", "--slot-size", "128"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = send.stdin.take().unwrap();
    input.write_all(&[7u8; 4096]).unwrap();
    // Full: two slots, nobody reading.
    wait_for("a full ring", Duration::from_secs(10), || {
        let o = shmpipe(&["inspect", "--json", &addr]);
        serde_json::from_str::<serde_json::Value>(&text(&o.stdout)).is_ok_and(|v| v["len"] == 2)
    });
    signal(&send, libc::SIGTERM);
    let status = wait_limited(&mut send, Duration::from_secs(5), "send");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(!shm_path(&addr).exists());
}

/// Voluntary context switches of all of `pid`'s threads so far.
fn voluntary_switches(pid: u32) -> u64 {
    let mut sum = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(n) = line.strip_prefix("voluntary_ctxt_switches:") {
                sum += n.trim().parse::<u64>().unwrap();
            }
        }
    }
    sum
}

/// Switches of `child` over 2 s of idling. A count, not a timing: a wait
/// that polled every 50 ms (as `send`/`recv` once did) makes 40 or more.
fn idle_switches(child: &Child) -> u64 {
    let before = voluntary_switches(child.id());
    std::thread::sleep(Duration::from_secs(2));
    voluntary_switches(child.id()) - before
}

#[test]
fn a_parked_recv_and_send_make_no_periodic_wake_ups() {
    // recv parked on an empty ring with no producer.
    let addr = unique("idle-recv");
    let _c = Cleanup(addr.clone());
    let mut recv = Command::new(BIN)
        .args(["recv", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("recv to attach", Duration::from_secs(10), || {
        side_attached(&addr, "consumer")
    });
    // Let it reach its wait.
    std::thread::sleep(Duration::from_millis(300));
    let n = idle_switches(&recv);
    assert!(n < 10, "a parked recv woke {n} times in 2 s");
    signal(&recv, libc::SIGTERM);
    let status = wait_limited(&mut recv, Duration::from_secs(10), "recv");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");

    // send parked on a full ring, its stdin still open.
    let addr = unique("idle-send");
    let _c = Cleanup(addr.clone());
    let mut send = Command::new(BIN)
        .args(["send", &addr, "--slots", "2", "--slot-size", "128"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = send.stdin.take().unwrap();
    input.write_all(&[7u8; 4096]).unwrap();
    wait_for("a full ring", Duration::from_secs(10), || {
        let o = shmpipe(&["inspect", "--json", &addr]);
        serde_json::from_str::<serde_json::Value>(&text(&o.stdout)).is_ok_and(|v| v["len"] == 2)
    });
    std::thread::sleep(Duration::from_millis(300));
    let n = idle_switches(&send);
    assert!(
        n < 10,
        "a send blocked on a full ring woke {n} times in 2 s"
    );
    signal(&send, libc::SIGTERM);
    let status = wait_limited(&mut send, Duration::from_secs(10), "send");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

#[test]
fn interrupting_send_mid_stream_ends_recv_with_a_missing_end() {
    let addr = unique("sig-mid");
    let _c = Cleanup(addr.clone());
    let mut recv = Command::new(BIN)
        .args(["recv", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut send = Command::new(BIN)
        .args(["send", &addr])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = send.stdin.take().unwrap();
    input.write_all(b"first part\n").unwrap();
    let mut out = recv.stdout.take().unwrap();
    let mut got = [0u8; 11];
    out.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"first part\n");
    signal(&send, libc::SIGINT);
    assert_eq!(
        wait_limited(&mut send, Duration::from_secs(5), "send").signal(),
        Some(libc::SIGINT)
    );
    let status = wait_limited(&mut recv, Duration::from_secs(5), "recv");
    let err = stderr_of(&mut recv);
    assert_eq!(status.code(), Some(8), "{err}");
    assert!(
        err.contains("ended without its end mark after 11 bytes in 1 message"),
        "{err}"
    );
    assert!(!shm_path(&addr).exists(), "nothing left behind");
    drop(input);
}

#[test]
fn a_closed_stdout_ends_recv_like_cat_and_send_learns_it() {
    let addr = unique("epipe");
    let _c = Cleanup(addr.clone());
    let mut send = Command::new(BIN)
        .args(["send", &addr])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = send.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        while input.write_all(&chunk).is_ok() {}
    });
    let mut recv = Command::new(BIN)
        .args(["recv", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `head -c 100000`: read that much, then close the pipe.
    let mut out = recv.stdout.take().unwrap();
    let mut buf = vec![0u8; 100_000];
    out.read_exact(&mut buf).unwrap();
    drop(out);
    let closed = Instant::now();
    let status = wait_limited(&mut recv, Duration::from_secs(5), "recv");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}");
    assert_eq!(stderr_of(&mut recv), "", "no message for a broken pipe");
    let status = wait_limited(&mut send, Duration::from_secs(5), "send");
    assert!(
        closed.elapsed() < Duration::from_secs(2),
        "send took {:?} to learn",
        closed.elapsed()
    );
    let err = stderr_of(&mut send);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("disconnected before the end of input"),
        "{err}"
    );
    feeder.join().unwrap();
    assert!(
        !shm_path(&addr).exists(),
        "the ring with its unread messages is gone"
    );
}

// --- stream framing -----------------------------------------------------

#[test]
fn a_killed_receiver_leaves_a_stream_only_resume_accepts() {
    let addr = unique("resume");
    let _c = Cleanup(addr.clone());
    let part1 = data(100_000, 3);
    let part2 = data(50_000, 4);
    let mut first = Command::new(BIN)
        .args(["recv", &addr])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut send = Command::new(BIN)
        .args(["send", &addr])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = send.stdin.take().unwrap();
    input.write_all(&part1).unwrap();
    let mut got = vec![0u8; part1.len()];
    // Its stdout stays open until it is dead: a receiver whose reader hangs
    // up ends by itself, cleanly (and closes its side), which is not what
    // this test kills it to show.
    let mut out = first.stdout.take().unwrap();
    out.read_exact(&mut got).unwrap();
    assert_eq!(got, part1);
    first.kill().unwrap(); // SIGKILL: no clean-up, the ring stays
    first.wait().unwrap();
    drop(out);
    input.write_all(&part2).unwrap();
    wait_for("part 2 in the ring", Duration::from_secs(10), || {
        let o = shmpipe(&["inspect", "--json", &addr]);
        serde_json::from_str::<serde_json::Value>(&text(&o.stdout))
            .is_ok_and(|v| v["len"].as_u64() > Some(0))
    });

    // A plain recv refuses: it did not see the start. It writes nothing
    // and leaves the ring to a receiver that wants the rest.
    let o = shmpipe(&["recv", &addr]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(8), "{err}");
    assert!(o.stdout.is_empty());
    assert!(
        err.contains("missing its start") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let mut resume = Command::new(BIN)
        .args(["recv", "--resume", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(input); // end of input: send writes its end mark
    let mut rest = Vec::new();
    resume
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut rest)
        .unwrap();
    let status = wait_limited(&mut resume, Duration::from_secs(10), "recv --resume");
    assert_eq!(status.code(), Some(0), "{}", stderr_of(&mut resume));
    // A receiver killed between writing a message and releasing it hands
    // that message on again: the rest is part 2, perhaps after the end of
    // part 1.
    let mut whole = part1.clone();
    whole.extend_from_slice(&part2);
    assert!(
        rest.ends_with(&part2) && whole.ends_with(&rest),
        "--resume writes the rest of the stream ({} bytes)",
        rest.len()
    );
    assert!(wait_limited(&mut send, Duration::from_secs(10), "send").success());
    assert!(!shm_path(&addr).exists());
}

#[test]
fn a_stream_with_no_end_mark_is_not_complete() {
    let addr = unique("no-end");
    let _c = Cleanup(addr.clone());
    // A producer that is not `shmpipe send`: raw messages.
    let ring = shmpipe::RingBuilder::new().slots(8).create(&addr).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_send(b"raw bytes").unwrap();
    drop(tx);
    let o = shmpipe(&["recv", "--keep", &addr]);
    assert_eq!(o.status.code(), Some(8));
    assert!(
        text(&o.stderr).contains("not part of a `shmpipe send` stream")
            && text(&o.stderr).contains("--raw"),
        "{}",
        text(&o.stderr)
    );
    let o = shmpipe(&["recv", "--raw", &addr]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(o.stdout, b"raw bytes");
    assert!(!shm_path(&addr).exists(), "the stream is over: removed");
}

#[test]
fn send_then_recv_later_round_trips_through_a_finished_ring() {
    let addr = unique("later");
    let _c = Cleanup(addr.clone());
    let input = data(300_000, 9);
    let o = shmpipe_with_input(&["send", &addr], &input);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = shmpipe(&["recv", &addr]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(o.stdout, input);
    // An empty input is a stream too: start and end, 0 bytes.
    let o = shmpipe_with_input(&["send", &addr], b"");
    assert!(o.status.success());
    let o = shmpipe(&["recv", &addr]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    assert!(!shm_path(&addr).exists());
}

// --- finished, not stale ------------------------------------------------

#[test]
fn a_finished_ring_with_unread_data_is_not_stale_and_rm_keeps_it() {
    let addr = unique("finished");
    let _c = Cleanup(addr.clone());
    assert!(
        shmpipe(&["create", &addr, "--slots", "4", "--slot-size", "128"])
            .status
            .success()
    );
    assert!(shmpipe_with_input(&["send", &addr], b"hello")
        .status
        .success());

    let o = shmpipe(&["inspect", &addr]);
    let t = text(&o.stdout);
    assert!(t.contains("finished, 3 messages waiting"), "{t}");
    assert!(!t.contains("stale"), "{t}");
    let v: serde_json::Value =
        serde_json::from_str(&text(&shmpipe(&["inspect", "--json", &addr]).stdout)).unwrap();
    assert_eq!(v["status"], "finished");
    assert_eq!(v["len"], 3);
    let listed = text(&shmpipe(&["list"]).stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{addr} "))
                && l.ends_with("finished, 3 messages waiting")),
        "{listed}"
    );

    let o = shmpipe(&["rm", &addr]);
    assert_eq!(o.status.code(), Some(7));
    let err = text(&o.stderr);
    assert!(
        err.contains("3 messages nobody has read") && err.contains("--force"),
        "{err}"
    );
    assert!(shm_path(&addr).exists());
    // --reclaim would drop them too.
    assert_eq!(
        shmpipe(&["create", "--reclaim", &addr]).status.code(),
        Some(7)
    );
    let o = shmpipe(&["recv", &addr]);
    assert_eq!(o.stdout, b"hello");
    assert!(!shm_path(&addr).exists(), "recv removed it at the end");
}

// --- removal wakes waiters ----------------------------------------------

#[test]
fn rm_force_ends_a_blocked_recv_and_send() {
    let addr = unique("rm-recv");
    let _c = Cleanup(addr.clone());
    let mut recv = Command::new(BIN)
        .args(["recv", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("recv to attach", Duration::from_secs(10), || {
        side_attached(&addr, "consumer")
    });
    assert!(shmpipe(&["rm", "--force", &addr]).status.success());
    let removed = Instant::now();
    let status = wait_limited(&mut recv, Duration::from_secs(5), "recv");
    assert!(removed.elapsed() < Duration::from_millis(500));
    let err = stderr_of(&mut recv);
    assert_eq!(status.code(), Some(9), "{err}");
    assert!(err.contains("was removed"), "{err}");

    let addr = unique("rm-send");
    let _c = Cleanup(addr.clone());
    let mut send = Command::new(BIN)
        .args(["send", &addr, "--slots", "2", "--slot-size", "64"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    send.stdin.take().unwrap().write_all(&[1u8; 1024]).unwrap();
    wait_for("a full ring", Duration::from_secs(10), || {
        let o = shmpipe(&["inspect", "--json", &addr]);
        serde_json::from_str::<serde_json::Value>(&text(&o.stdout)).is_ok_and(|v| v["len"] == 2)
    });
    assert!(shmpipe(&["rm", "--force", &addr]).status.success());
    let status = wait_limited(&mut send, Duration::from_secs(5), "send");
    assert_eq!(status.code(), Some(9), "{}", stderr_of(&mut send));
}

// --- other users --------------------------------------------------------

/// A copy of the binary that `nobody` can run, removed when dropped.
struct NobodyBin(TempDir);

impl NobodyBin {
    fn new() -> Option<NobodyBin> {
        if !rustix::process::getuid().is_root()
            || !Command::new("runuser")
                .arg("--help")
                .output()
                .is_ok_and(|o| o.status.success())
        {
            eprintln!("skipped: needs root and runuser");
            return None;
        }
        let d = TempDir::new("nobody");
        std::fs::set_permissions(&d.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(BIN, d.0.join("shmpipe")).unwrap();
        Some(NobodyBin(d))
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(self.0 .0.join("shmpipe"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

#[test]
fn another_users_ring_is_listed_and_the_hints_are_true() {
    let Some(nobody) = NobodyBin::new() else {
        return;
    };
    let addr = unique("root-ring");
    let _c = Cleanup(addr.clone());
    assert!(shmpipe(&["create", &addr, "--slots", "4"]).status.success());

    let o = nobody.run(&["list"]);
    assert!(o.status.success());
    let listed = text(&o.stdout);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&format!("{addr} ")))
        .unwrap_or_else(|| panic!("{addr} not listed for nobody: {listed}"));
    assert!(
        line.contains("root 0600") && line.contains("permission denied"),
        "{line}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&text(&nobody.run(&["list", "--json"]).stdout)).unwrap();
    let r = v["rings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == addr.as_str())
        .unwrap();
    assert_eq!(r["status"], "denied");
    assert_eq!(r["owner"], "root");
    assert_eq!(r["mode"], "0600");

    let o = nobody.run(&["rm", &addr]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("owned by user root") && err.contains("only the file's owner or root"),
        "{err}"
    );
    assert!(
        !err.contains("--mode"),
        "no hint about --mode for removal: {err}"
    );
    let o = nobody.run(&["create", &addr]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(
        err.contains("belongs to user root") && !err.contains("remove it first"),
        "{err}"
    );
    assert!(shm_path(&addr).exists());
}

// --- planted special files ----------------------------------------------

/// Plants a FIFO, a UNIX socket, a directory, a symlink loop and a device
/// node named `<base>-<kind>` in `dir`; returns their names.
fn plant(dir: &Path, base: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut add = |kind: &str| {
        let p = dir.join(format!("{base}-{kind}"));
        out.push((kind.to_owned(), p.clone()));
        p
    };
    let fifo = add("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid path; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    let sock = add("socket");
    std::mem::forget(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    std::fs::create_dir(add("dir")).unwrap();
    let lp = add("loop");
    std::os::unix::fs::symlink(&lp, &lp).unwrap();
    let dev = add("device");
    let c = std::ffi::CString::new(dev.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid path; mknod only reads it. /dev/null's number.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if r != 0 {
        eprintln!(
            "no device node (mknod needs root): {}",
            std::io::Error::last_os_error()
        );
        out.pop();
    }
    out
}

struct Planted(Vec<(String, PathBuf)>);

impl Drop for Planted {
    fn drop(&mut self) {
        for (_, p) in &self.0 {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir(p));
        }
    }
}

/// Runs `args` with a 5-second limit; returns its exit code, stdout and
/// stderr.
fn prompt(args: &[&str]) -> (Option<i32>, String, String) {
    let mut c = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let s = wait_limited(&mut c, Duration::from_secs(5), &format!("{args:?}"));
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    (s.code(), out, stderr_of(&mut c))
}

#[test]
fn planted_special_files_never_hang_a_command() {
    let base = unique("planted").trim_start_matches("shm:").to_owned();
    let dir = TempDir::new("planted-dir");
    let mut planted = plant(Path::new("/dev/shm"), &base);
    let in_dir = plant(&dir.0, &base);
    let mut cases: Vec<(String, String)> = planted
        .iter()
        .map(|(k, p)| {
            (
                k.clone(),
                format!("shm:{}", p.file_name().unwrap().to_str().unwrap()),
            )
        })
        .collect();
    cases.extend(
        in_dir
            .iter()
            .map(|(k, p)| (k.clone(), format!("file:{}", p.display()))),
    );
    planted.extend(in_dir);
    let _planted = Planted(planted);
    for (kind, addr) in &cases {
        for cmd in [
            vec!["inspect", addr.as_str()],
            vec!["inspect", "--json", addr.as_str()],
            vec!["recv", addr.as_str()],
            vec!["send", addr.as_str()],
            vec!["rm", addr.as_str()],
            vec!["rm", "--force", addr.as_str()],
        ] {
            let (code, out, err) = prompt(&cmd);
            assert_eq!(code, Some(5), "{kind} {cmd:?}: {out}{err}");
            assert!(err.lines().count() <= 1, "{kind} {cmd:?}: {err}");
            // inspect shows the problem on stdout, the others on stderr.
            let shown = if cmd[0] == "inspect" { &out } else { &err };
            assert!(
                shown.contains("not a regular file") || shown.contains("symbolic link"),
                "{kind} {cmd:?}: {out}{err}"
            );
        }
    }
    let (code, _, err) = prompt(&["list"]);
    assert_eq!(code, Some(0), "{err}");
    // Still there: nothing was removed, forced or not.
    for (_, p) in &_planted.0 {
        assert!(
            std::fs::symlink_metadata(p).is_ok(),
            "{} removed",
            p.display()
        );
    }
}

// --- smaller points -----------------------------------------------------

#[test]
fn creation_options_that_disagree_with_an_existing_ring_are_an_error() {
    let addr = unique("geometry");
    let _c = Cleanup(addr.clone());
    assert!(
        shmpipe(&["create", &addr, "--slots", "4", "--slot-size", "128"])
            .status
            .success()
    );
    for cmd in ["send", "recv"] {
        let o = shmpipe(&[cmd, &addr, "--slots", "1024", "--slot-size", "1M"]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(7), "{cmd}: {err}");
        assert!(
            err.contains("4 slots x 128 B") && err.contains("1024 slots x 1 MiB"),
            "{cmd}: {err}"
        );
    }
    // The same geometry, or none given, is fine.
    let o = shmpipe_with_input(&["send", &addr, "--slots", "4"], b"ok");
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn inspect_json_errors_are_json_too() {
    let addr = unique("json-missing");
    let o = shmpipe(&["inspect", "--json", &addr]);
    assert_eq!(o.status.code(), Some(6));
    let v: serde_json::Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(v["status"], "missing");
    assert_eq!(v["exit_code"], 6);
    assert!(v["error"].as_str().unwrap().contains("no ring"));
    assert!(text(&o.stderr).contains("no ring"), "stderr keeps the line");
    let o = shmpipe(&["create", "--json", "/dev/shm/x"]);
    assert_eq!(o.status.code(), Some(2), "usage errors stay text");
}

#[test]
fn a_foreign_sysv_segment_says_how_to_remove_it() {
    let key = 0x5e00_0000 | (std::process::id() as i32 & 0xffff);
    // SAFETY: plain System V calls; the segment is ours and removed below.
    let id = unsafe { libc::shmget(key, 1 << 20, libc::IPC_CREAT | 0o666) };
    assert!(id >= 0);
    // SAFETY: attaching the segment just created; writing 4 bytes into it.
    unsafe {
        let p = libc::shmat(id, std::ptr::null(), 0) as *mut u8;
        std::ptr::copy_nonoverlapping(c"zyq".as_ptr().cast::<u8>(), p, 4);
        libc::shmdt(p.cast());
    }
    let addr = format!("sysv:{key}");
    let o = shmpipe(&["rm", "--force", &addr]);
    let err = text(&o.stderr);
    // SAFETY: removing the segment created above.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains(&format!("ipcrm -m {id}")), "{err}");
}

#[test]
fn reserved_header_fields_are_corruption() {
    use std::os::unix::fs::FileExt;
    for (offset, value) in [(0x44u64, 0x7fff_ffffu32), (0x40, u32::MAX)] {
        let addr = unique("reserved");
        let _c = Cleanup(addr.clone());
        assert!(shmpipe(&["create", &addr, "--slots", "4"]).status.success());
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(shm_path(&addr))
            .unwrap();
        f.write_all_at(&value.to_le_bytes(), offset).unwrap();
        let o = shmpipe(&["inspect", &addr]);
        assert_eq!(o.status.code(), Some(5), "{}", text(&o.stdout));
        let t = text(&o.stdout);
        let field = if offset == 0x44 {
            "flags"
        } else {
            "creator_pid"
        };
        assert!(t.contains("CORRUPT") && t.contains(field), "{t}");
        assert!(shmpipe(&["rm", "--force", &addr]).status.success());
    }
}

#[test]
fn an_address_pasted_from_inspect_gets_a_suggestion() {
    let o = shmpipe(&["inspect", "/dev/shm/orders"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("did you mean `shm:orders`?"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn counters_read_in_good_english() {
    let addr = unique("plural");
    let _c = Cleanup(addr.clone());
    let ring = shmpipe::RingBuilder::new().slots(4).create(&addr).unwrap();
    ring.producer().unwrap().try_send(b"x").unwrap();
    let t = text(&shmpipe(&["inspect", &addr]).stdout);
    assert!(
        t.contains("sent           1 message (1 B), 0 times found full"),
        "{t}"
    );
}

#[test]
fn send_and_recv_started_together_leave_nothing_behind() {
    // Whichever creates the ring, recv removes it at the end of the stream,
    // also while the sender that created it is still exiting.
    let input = data(200_000, 11);
    for round in 0..10 {
        let addr = unique("together");
        let _c = Cleanup(addr.clone());
        let recv = Command::new(BIN)
            .args(["recv", &addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = shmpipe_with_input(&["send", &addr], &input);
        assert!(o.status.success(), "round {round}: {}", text(&o.stderr));
        let o = recv.wait_with_output().unwrap();
        assert!(o.status.success(), "round {round}: {}", text(&o.stderr));
        assert_eq!(o.stdout, input);
        assert!(!shm_path(&addr).exists(), "round {round}: ring left behind");
    }
}
