//! The `shmpipe` command line, run as a user would: as separate processes.

mod common;

use std::fs::File;
use std::hash::Hasher;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "shmpipe-cli-{tag}-{}-{}",
            std::process::id(),
            unique("d").rsplit('-').next().unwrap()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deterministic pseudo-random byte stream (splitmix64 words).
struct Stream(u64);

impl Stream {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 = mix(self.0);
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Writes `len` pseudo-random bytes to `path`; returns their hash.
fn random_file(path: &Path, len: usize, seed: u64) -> u64 {
    let mut f = std::io::BufWriter::new(File::create(path).unwrap());
    let mut s = Stream(seed);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        s.fill(&mut buf[..n]);
        h.write(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    h.finish()
}

fn hash_file(path: &Path) -> (u64, u64) {
    let mut f = File::open(path).unwrap();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return (h.finish(), total);
        }
        h.write(&buf[..n]);
        total += n as u64;
    }
}

fn wait_limited(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shmpipe did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn round_trip(recv_first: bool) {
    let dir = TempDir::new("copy");
    let input = dir.0.join("in.bin");
    let output = dir.0.join("out.bin");
    let len = scaled(256 << 20) as usize;
    let want = random_file(&input, len, 99);
    let addr = unique("cli-copy");
    let _c = Cleanup(addr.clone());
    let spawn_recv = || {
        Command::new(BIN)
            .args(["recv", &addr])
            .stdout(File::create(&output).unwrap())
            .spawn()
            .unwrap()
    };
    let spawn_send = || {
        Command::new(BIN)
            .args(["send", &addr])
            .stdin(File::open(&input).unwrap())
            .spawn()
            .unwrap()
    };
    let (mut first, mut second) = if recv_first {
        let r = spawn_recv();
        std::thread::sleep(Duration::from_millis(200));
        (r, spawn_send())
    } else {
        let s = spawn_send();
        std::thread::sleep(Duration::from_millis(200));
        (s, spawn_recv())
    };
    assert!(wait_limited(&mut first, Duration::from_secs(300)).success());
    assert!(wait_limited(&mut second, Duration::from_secs(300)).success());
    let (got, got_len) = hash_file(&output);
    assert_eq!(got_len, len as u64, "output length");
    assert_eq!(got, want, "output differs from input");
    // The receiver removed the ring at the end of the stream.
    let name = addr.strip_prefix("shm:").unwrap();
    assert!(!Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn file_copies_exactly_with_recv_started_first() {
    round_trip(true);
}

#[test]
fn file_copies_exactly_with_send_started_first() {
    round_trip(false);
}

#[test]
fn killing_send_mid_stream_ends_recv_with_the_committed_prefix() {
    let dir = TempDir::new("kill");
    let output = dir.0.join("out.bin");
    let addr = unique("cli-kill");
    let _c = Cleanup(addr.clone());
    let mut recv = Command::new(BIN)
        .args(["recv", &addr])
        .stdout(File::create(&output).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut send = Command::new(BIN)
        .args(["send", &addr])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let send_pid = send.id();
    // Feed send an endless stream until it dies.
    let mut stdin = send.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut s = Stream(5);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            s.fill(&mut buf);
            if stdin.write_all(&buf).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&output).map_or(0, |m| m.len()) < 20 << 20 {
        assert!(Instant::now() < deadline, "recv wrote too little");
        std::thread::sleep(Duration::from_millis(5));
    }
    send.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    send.wait().unwrap();
    let status = wait_limited(&mut recv, Duration::from_secs(10));
    let took = killed.elapsed();
    feeder.join().unwrap();
    assert!(
        took < Duration::from_secs(2),
        "recv took {took:?} to notice"
    );
    assert_eq!(status.code(), Some(3), "exit code for a dead producer");
    let mut err = String::new();
    recv.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains(&format!("process {send_pid}")) && err.contains("died"),
        "stderr names the dead producer: {err}"
    );
    // What recv wrote is exactly a prefix of the input.
    let mut got = Vec::new();
    File::open(&output).unwrap().read_to_end(&mut got).unwrap();
    let mut expected = vec![0u8; got.len()];
    Stream(5).fill_exact(&mut expected);
    assert!(got == expected, "output is not a prefix of the input");
}

impl Stream {
    /// Fills `buf` with the stream as it was written in 64 KiB chunks.
    fn fill_exact(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(64 << 10) {
            let mut full = vec![0u8; 64 << 10];
            self.fill(&mut full);
            chunk.copy_from_slice(&full[..chunk.len()]);
        }
    }
}

#[test]
fn recv_timeout() {
    let addr = unique("cli-timeout");
    let _c = Cleanup(addr.clone());
    let t = Instant::now();
    let o = shmpipe(&["recv", &addr, "--timeout", "200ms"]);
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("within 200ms"), "{}", stderr(&o));
}

#[test]
fn inspect_list_rm_on_a_healthy_ring() {
    let addr = unique("cli-healthy");
    let _c = Cleanup(addr.clone());
    let ring = shmpipe::RingBuilder::new().slots(8).create(&addr).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_send(b"one").unwrap();
    let me = std::process::id();

    let o = shmpipe(&["inspect", &addr]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains(&format!("producer       pid {me} (alive)")),
        "{text}"
    );
    assert!(text.contains("1 waiting"), "{text}");
    assert!(text.contains("8 slots x 256 B"), "{text}");

    let o = shmpipe(&["inspect", "--json", &addr]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["slots"], 8);
    assert_eq!(v["len"], 1);
    assert_eq!(v["producer"]["state"], "attached");
    assert_eq!(v["producer"]["pid"], me);
    assert_eq!(v["producer"]["alive"], true);
    assert_eq!(v["consumer"]["state"], "vacant");
    assert_eq!(v["producer"]["stats"]["messages"], 1);

    let o = shmpipe(&["list"]);
    assert_eq!(code(&o), 0);
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with(&format!("{addr} ")))
        .unwrap_or_else(|| panic!("{addr} not listed: {}", stdout(&o)))
        .to_owned();
    assert!(line.contains("1/8") && line.ends_with("ok"), "{line}");
    let o = shmpipe(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["rings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["address"] == addr.as_str() && r["status"] == "ok"));

    let o = shmpipe(&["rm", &addr]);
    assert_eq!(code(&o), 7, "refused while the producer lives");
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = shmpipe(&["rm", "--force", &addr]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(code(&shmpipe(&["inspect", &addr])), 6);
    drop(tx);
}

#[test]
fn inspect_list_rm_on_a_stale_ring() {
    let addr = unique("cli-stale");
    let _c = Cleanup(addr.clone());
    // Created by a process that has exited, never used: stale.
    let o = shmpipe(&["create", &addr, "--slots", "4", "--slot-size", "128"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("4 slots x 128 B"), "{}", stdout(&o));
    let o = shmpipe(&["inspect", &addr]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("stale"), "{}", stdout(&o));
    let o = shmpipe(&["inspect", "--json", &addr]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "stale");
    assert_eq!(v["creator_alive"], false);
    let listed = stdout(&shmpipe(&["list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{addr} ")) && l.ends_with("stale")),
        "{listed}"
    );
    // Creating over it needs --reclaim.
    assert_eq!(code(&shmpipe(&["create", &addr])), 7);
    assert_eq!(code(&shmpipe(&["create", &addr, "--reclaim"])), 0);
    let o = shmpipe(&["rm", &addr]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(code(&shmpipe(&["rm", &addr])), 6, "already gone");
}

#[test]
fn inspect_list_rm_on_a_corrupted_ring() {
    use std::os::unix::fs::FileExt;
    let addr = unique("cli-corrupt");
    let _c = Cleanup(addr.clone());
    assert_eq!(code(&shmpipe(&["create", &addr, "--slots", "8"])), 0);
    let path = format!("/dev/shm/{}", addr.strip_prefix("shm:").unwrap());
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&3u64.to_le_bytes(), 0x18).unwrap(); // slot_count = 3

    let o = shmpipe(&["inspect", &addr]);
    assert_eq!(code(&o), 5, "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains("CORRUPT") && text.contains("slot_count"),
        "{text}"
    );
    assert!(text.contains("value          3"), "{text}");
    let o = shmpipe(&["inspect", "--json", &addr]);
    assert_eq!(code(&o), 5);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "corrupt");
    assert_eq!(v["corrupt_field"]["field"], "slot_count");
    assert_eq!(v["corrupt_field"]["found"], 3);

    let listed = stdout(&shmpipe(&["list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{addr} ")) && l.contains("corrupt")),
        "{listed}"
    );
    let o = shmpipe(&["rm", &addr]);
    assert_eq!(code(&o), 5, "refused without --force");
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(code(&shmpipe(&["rm", "--force", &addr])), 0);
    assert!(!Path::new(&path).exists());
}

#[test]
fn foreign_files_are_never_listed_or_removed() {
    let addr = unique("cli-foreign");
    let path = format!("/dev/shm/{}", addr.strip_prefix("shm:").unwrap());
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let _c = Cleanup(addr.clone());
    let listed = stdout(&shmpipe(&["list"]));
    assert!(!listed.contains(&addr), "{listed}");
    for args in [vec!["rm", &addr], vec!["rm", "--force", &addr]] {
        let o = shmpipe(&args);
        assert_eq!(code(&o), 5, "{args:?}");
        assert!(stderr(&o).contains("not a shmpipe ring"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x5a; 8192]);
}

#[test]
fn malformed_arguments_get_one_line_and_a_nonzero_exit() {
    let cases: &[&[&str]] = &[
        &["create", "shm:a/b"],
        &["create", "nfs:x"],
        &["create", "sysv:0"],
        &["create", "shm:ok", "--slots", "0"],
        &["create", "shm:ok", "--slots", "3"],
        &["create", "shm:ok", "--slots", "many"],
        &["create", "shm:ok", "--slot-size", "100"],
        &["create", "shm:ok", "--slot-size", "2G"],
        &["create", "shm:ok", "--slot-size", "12Q"],
        &["create", "shm:ok", "--mode", "888"],
        &["create", "shm:ok", "--mode", "1777"],
        &["create", "shm:ok", "--huge-pages", "sometimes"],
        &["create"],
        &["recv", "shm:ok", "--timeout", "soon"],
        &["inspect"],
        &["frobnicate"],
        &["send", "shm:ok", "--create", "--no-create"],
    ];
    for args in cases {
        let o = shmpipe(args);
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got: {err}");
        assert!(err.starts_with("shmpipe: "), "{args:?}: {err}");
        assert!(
            !Path::new("/dev/shm/ok").exists(),
            "{args:?} created something"
        );
    }
}

#[test]
fn help_and_exit_codes_are_documented() {
    let o = shmpipe(&["--help"]);
    assert_eq!(code(&o), 0);
    let text = stdout(&o);
    for needle in [
        "Exit codes",
        "create",
        "send",
        "recv",
        "inspect",
        "list",
        "rm",
        "bench",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}");
    }
    for cmd in ["create", "send", "recv", "inspect", "list", "rm", "bench"] {
        assert_eq!(code(&shmpipe(&[cmd, "--help"])), 0, "{cmd} --help");
    }
}
