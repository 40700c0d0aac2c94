//! Helpers shared by the integration tests: unique names that are removed
//! even when a test fails, self-checking messages, and child processes.
#![allow(dead_code)]
// The tests may use std atomics; the loom rule is for the library.
#![allow(clippy::disallowed_types)]

use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A fresh `shm:` address unique to this process and call.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shm:shmpipe-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes a ring (or file) when dropped, so tests clean up after failures.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        // What `Ring::remove` never removes (another magic, a symlink, a
        // special file) a test planted on purpose: remove the file itself.
        if let Err(
            shmpipe::Error::BadMagic { .. }
            | shmpipe::Error::Symlink { .. }
            | shmpipe::Error::NotARegularFile { .. },
        ) = shmpipe::Ring::remove(self.0.as_str(), true)
        {
            if let Some(name) = self.0.strip_prefix("shm:") {
                let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
            }
        }
    }
}

/// splitmix64: a small, fast, good-enough generator for test data.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Header of a test message: sequence number and checksum of the body.
pub const MSG_HEADER: usize = 16;

/// The length of message `seq` for a ring carrying at most `max` bytes:
/// random, from 16 (header only) to `max`.
pub fn msg_len(seed: u64, seq: u64, max: usize) -> usize {
    MSG_HEADER + (mix(seed ^ seq.wrapping_mul(31)) % (max - MSG_HEADER + 1) as u64) as usize
}

fn checksum(body: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for chunk in body.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ body.len() as u64
}

/// Writes message `seq` into `buf` (which must hold `msg_len` bytes);
/// returns its length.
pub fn fill_msg(seed: u64, seq: u64, max: usize, buf: &mut [u8]) -> usize {
    let len = msg_len(seed, seq, max);
    let body = &mut buf[MSG_HEADER..len];
    let mut state = mix(seed ^ seq);
    for chunk in body.chunks_mut(8) {
        state = mix(state);
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let sum = checksum(&buf[MSG_HEADER..len]);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    buf[8..16].copy_from_slice(&sum.to_le_bytes());
    len
}

/// Checks that `msg` is intact and is message `expected`: right sequence
/// number (none lost, duplicated or reordered), right length, right
/// checksum.
pub fn check_msg(seed: u64, expected: u64, max: usize, msg: &[u8]) -> Result<(), String> {
    if msg.len() < MSG_HEADER {
        return Err(format!("message {expected}: only {} bytes", msg.len()));
    }
    let seq = u64::from_le_bytes(msg[..8].try_into().unwrap());
    if seq != expected {
        return Err(format!("expected message {expected}, got {seq}"));
    }
    let want = msg_len(seed, seq, max);
    if msg.len() != want {
        return Err(format!("message {seq}: length {} != {want}", msg.len()));
    }
    let sum = u64::from_le_bytes(msg[8..16].try_into().unwrap());
    if sum != checksum(&msg[MSG_HEADER..]) {
        return Err(format!(
            "message {seq}: checksum mismatch (torn or corrupted)"
        ));
    }
    Ok(())
}

/// A child process that is killed and reaped when dropped, so an early
/// return from a test never leaks a process.
pub struct ChildGuard(pub Child);

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl ChildGuard {
    /// Reads the child's standard output to the end, then waits for it.
    pub fn output(&mut self) -> std::io::Result<(String, std::process::ExitStatus)> {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            stdout.read_to_string(&mut out)?;
        }
        let status = self.0.wait()?;
        Ok((out.trim().to_owned(), status))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Re-executes this test binary as a child running `role` (see each
/// harness-less test's `main`), with extra environment variables.
pub fn spawn_child(role: &str, env: &[(&str, String)]) -> ChildGuard {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    // Children report on stdout (one short line) and complain on stderr.
    cmd.env("SHMPIPE_TEST_ROLE", role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    ChildGuard(cmd.spawn().expect("spawn child test process"))
}

/// Reads a variable set by `spawn_child`.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set for child"))
}

/// Waits for a child with a deadline; kills it and fails if it overruns.
pub fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `f` on a thread and fails if it takes longer than `limit`: a
/// watchdog so that a hang becomes a failure, not a stuck CI job.
pub fn with_watchdog<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {limit:?} (hang?)"),
    }
}

/// Scale for message counts: `SHMPIPE_TEST_SCALE` multiplies them (long
/// runs), and debug builds run a smaller default where noted.
pub fn scaled(n: u64) -> u64 {
    let scale: f64 = std::env::var("SHMPIPE_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64) * scale).max(1.0) as u64
}

/// A child role's exit: success, or its error on stderr (prefixed with the
/// role, for the parent's failure message) and a failing status.
pub fn child_exit(role: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("child {role}: {e}");
            ExitCode::FAILURE
        }
    }
}
