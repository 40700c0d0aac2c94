//! Meeting at a ring: `RingBuilder::open_or_create` raced by many
//! processes (this test binary re-executes itself as each racer, see
//! `SHMPIPE_TEST_ROLE`), stale rings reclaimed only when asked,
//! `wait_for_creation`, and the geometry check on open.
//!
//! Run with `cargo test -p shmpipe --test session_open`. Nothing is left in
//! `/dev/shm` afterwards (checked at the end).

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use shmpipe::{Error, Geometry, Ring, RingBuilder};

/// How many processes race for one name.
const RACERS: usize = 50;

fn main() -> ExitCode {
    if let Ok(role) = std::env::var("SHMPIPE_TEST_ROLE") {
        return run_role(&role);
    }
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("fifty_processes_one_creator_shm", || {
            race(&unique("race"), false).map(drop)
        }),
        Trial::test("fifty_processes_one_creator_file", || {
            race(&file_address("race"), false).map(drop)
        }),
        Trial::test("fifty_processes_one_creator_sysv", || {
            race(&sysv_address(), false).map(drop)
        }),
        Trial::test("fifty_reclaimers_of_a_stale_ring_one_creator", || {
            let addr = unique("race-stale");
            let dead = make_stale(&addr)?;
            let creator = race(&addr, true)?;
            if creator == dead {
                return Err("the stale ring was not replaced".into());
            }
            Ok(())
        }),
        Trial::test("stale_ring_reclaimed_only_when_asked", stale_reclaim),
        Trial::test("live_ring_is_opened_not_reclaimed", live_not_reclaimed),
        Trial::test("creator_died_before_sizing", creator_died_mid_init),
        Trial::test("wait_for_creation_meets_a_late_creator", late_creator),
        Trial::test("wait_for_creation_times_out_typed", creation_timeout),
        Trial::test("wait_for_creation_never_waits_on_a_fifo", planted_fifo),
        Trial::test("geometry_mismatch_on_open_and_open_or_create", geometry),
        Trial::test("geometry_mismatch_on_open_fd", geometry_fd),
    ];
    // One at a time: fifty processes per race are load enough.
    let args = Arguments {
        test_threads: Some(1),
        ..args
    };
    let code = libtest_mimic::run(&args, trials).exit_code();
    let left = leftovers();
    if !left.is_empty() {
        eprintln!("left in /dev/shm: {left:?}");
        return ExitCode::FAILURE;
    }
    code
}

fn run_role(role: &str) -> ExitCode {
    let result = match role {
        "racer" => racer(),
        "create-and-exit" => create_and_exit(),
        "create-later" => create_later(),
        other => Err(format!("unknown role {other}")),
    };
    child_exit(role, result)
}

/// `/dev/shm` names this run made that are still there.
fn leftovers() -> Vec<String> {
    let mine = format!("shmpipe-test-{}", "");
    let pid = format!("-{}-", std::process::id());
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&mine) && n.contains(&pid))
                .collect()
        })
        .unwrap_or_default()
}

fn file_address(tag: &str) -> String {
    let name = unique(tag).replace("shm:", "");
    format!("file:{}", std::env::temp_dir().join(name).display())
}

fn sysv_address() -> String {
    format!(
        "sysv:{:#x}",
        0x5e00_0000 | (std::process::id() & 0xffff) << 8
    )
}

/// A file the parent creates to release its children.
struct Flag(PathBuf);

impl Flag {
    fn new(tag: &str) -> Flag {
        let name = unique(tag).replace("shm:", "");
        Flag(std::env::temp_dir().join(format!("{name}.flag")))
    }

    fn raise(&self) {
        std::fs::write(&self.0, b"go").unwrap();
    }
}

impl Drop for Flag {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Child: waits (bounded) for the flag file `var`.
fn wait_flag(var: &str) -> Result<(), String> {
    let path = std::env::var(var).map_err(|_| format!("{var} not set"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::path::Path::new(&path).exists() {
        if Instant::now() > deadline {
            return Err(format!("{var} never came"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// The ring's identity as this process sees it: the file's inode, or the
/// System V id.
fn identity(ring: &Ring) -> u64 {
    let info = ring.info();
    if let Some(id) = info.sysv_id {
        return id as u64;
    }
    let fd = ring.fd().expect("named rings have a descriptor");
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|m| m.ino())
        .unwrap_or(0)
}

fn racer_builder(reclaim: bool) -> RingBuilder {
    let mut b = RingBuilder::new();
    b.slots(64)
        .slot_size(128)
        .reclaim_stale(reclaim)
        .open_timeout(Duration::from_secs(20));
    b
}

/// Child: waits for GO, calls `open_or_create`, reports
/// `created|opened CREATOR_PID IDENTITY`, holds the ring until DONE.
fn racer() -> Result<(), String> {
    let addr = var("SHMPIPE_ADDR");
    let reclaim = var("SHMPIPE_RECLAIM") == "1";
    wait_flag("SHMPIPE_GO")?;
    let ring = racer_builder(reclaim)
        .open_or_create(addr.as_str())
        .map_err(|e| e.to_string())?;
    let info = ring.info();
    if (info.slots, info.slot_size) != (64, 128) {
        return Err(format!("geometry {} x {}", info.slots, info.slot_size));
    }
    let how = if ring.created() { "created" } else { "opened" };
    println!("{how} {} {}", info.creator_pid, identity(&ring));
    wait_flag("SHMPIPE_DONE")?;
    Ok(())
}

/// Parent: `RACERS` children race for `addr`; exactly one creates, every
/// one reports that creator and the same segment. Returns the creator.
fn race(addr: &str, reclaim: bool) -> Result<u32, Failed> {
    let _c = Cleanup(addr.to_owned());
    let (go, done) = (Flag::new("go"), Flag::new("done"));
    let env = [
        ("SHMPIPE_ADDR", addr.to_owned()),
        (
            "SHMPIPE_RECLAIM",
            if reclaim { "1" } else { "0" }.to_owned(),
        ),
        ("SHMPIPE_GO", go.0.display().to_string()),
        ("SHMPIPE_DONE", done.0.display().to_string()),
    ];
    let mut children: Vec<ChildGuard> = (0..RACERS).map(|_| spawn_child("racer", &env)).collect();
    go.raise();
    let mut reports = Vec::new();
    for child in &mut children {
        let pid = child.id();
        let mut line = String::new();
        let out = child.stdout.take().expect("piped stdout");
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts[..] {
            [how, creator, ident] => reports.push((
                pid,
                how == "created",
                creator.parse::<u32>().map_err(|e| e.to_string())?,
                ident.to_owned(),
            )),
            _ => return Err(format!("racer {pid} reported {line:?}").into()),
        }
    }
    done.raise();
    for child in &mut children {
        let status = wait_child(child, Duration::from_secs(60));
        if !status.success() {
            return Err(format!("a racer failed: {status}").into());
        }
    }
    let creators: Vec<u32> = reports.iter().filter(|r| r.1).map(|r| r.0).collect();
    if creators.len() != 1 {
        return Err(format!("{} creators: {creators:?}", creators.len()).into());
    }
    let creator = creators[0];
    for (pid, _, seen_creator, ident) in &reports {
        if *seen_creator != creator || *ident != reports[0].3 {
            return Err(format!(
                "racer {pid} saw creator {seen_creator} / segment {ident}, expected \
                 {creator} / {}",
                reports[0].3
            )
            .into());
        }
    }
    // The ring outlives the racers, created by the winner.
    let ring = Ring::open(addr)?;
    if ring.info().creator_pid != creator {
        return Err("the ring left is not the winner's".into());
    }
    Ok(creator)
}

/// Child: creates the ring at SHMPIPE_ADDR, reports its pid, exits.
fn create_and_exit() -> Result<(), String> {
    let addr = var("SHMPIPE_ADDR");
    RingBuilder::new()
        .slots(8)
        .create(addr.as_str())
        .map_err(|e| e.to_string())?;
    println!("{}", std::process::id());
    Ok(())
}

/// A ring whose creator is dead and which no one holds; returns the dead
/// creator's pid.
fn make_stale(addr: &str) -> Result<u32, Failed> {
    let mut child = spawn_child("create-and-exit", &[("SHMPIPE_ADDR", addr.to_owned())]);
    let (out, status) = child.output().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("creator failed: {status}").into());
    }
    Ok(out.parse::<u32>().map_err(|e| e.to_string())?)
}

fn stale_reclaim() -> Result<(), Failed> {
    let addr = unique("stale");
    let _c = Cleanup(addr.clone());
    let dead = make_stale(&addr)?;
    // Not asked: the stale ring is opened as it is.
    let ring = RingBuilder::new().open_or_create(addr.as_str())?;
    if ring.created() || ring.info().creator_pid != dead || ring.info().creator_alive {
        return Err("without reclaim_stale the stale ring must be opened".into());
    }
    drop(ring);
    // Asked: replaced.
    let ring = RingBuilder::new()
        .reclaim_stale(true)
        .open_or_create(addr.as_str())?;
    if !ring.created() || ring.info().creator_pid != std::process::id() {
        return Err("with reclaim_stale the stale ring must be replaced".into());
    }
    Ok(())
}

fn live_not_reclaimed() -> Result<(), Failed> {
    let addr = unique("live");
    let _c = Cleanup(addr.clone());
    let first = RingBuilder::new().slots(8).create(addr.as_str())?;
    let mut tx = first.producer()?;
    tx.send(b"kept")?;
    // A live creator and producer: reclaiming opens it instead.
    let again = RingBuilder::new()
        .reclaim_stale(true)
        .open_or_create(addr.as_str())?;
    if again.created() {
        return Err("a live ring was replaced".into());
    }
    if again.consumer()?.try_recv_vec()? != b"kept" {
        return Err("opened another ring".into());
    }
    Ok(())
}

/// A creator that died between `shm_open(O_EXCL)` and sizing the segment
/// leaves an empty file: not reclaimed unless asked (a typed error), and
/// replaced when asked.
fn creator_died_mid_init() -> Result<(), Failed> {
    let addr = unique("mid-init");
    let _c = Cleanup(addr.clone());
    let path = format!("/dev/shm/{}", addr.strip_prefix("shm:").unwrap());
    std::fs::write(&path, b"")?;
    let mut b = RingBuilder::new();
    b.open_timeout(Duration::from_millis(100));
    match b.open_or_create(addr.as_str()) {
        Err(Error::NotInitialized { .. }) => {}
        other => return Err(format!("expected NotInitialized, got {other:?}").into()),
    }
    let ring = b.reclaim_stale(true).open_or_create(addr.as_str())?;
    if !ring.created() {
        return Err("the half-made ring was not replaced".into());
    }
    Ok(())
}

/// Child: after 200 ms creates the ring at SHMPIPE_ADDR, reports, and
/// holds it until SHMPIPE_DONE.
fn create_later() -> Result<(), String> {
    let addr = var("SHMPIPE_ADDR");
    std::thread::sleep(Duration::from_millis(200));
    let ring = RingBuilder::new()
        .slots(16)
        .create(addr.as_str())
        .map_err(|e| e.to_string())?;
    println!("{}", std::process::id());
    wait_flag("SHMPIPE_DONE")?;
    drop(ring);
    Ok(())
}

fn late_creator() -> Result<(), Failed> {
    let addr = unique("late");
    let _c = Cleanup(addr.clone());
    let done = Flag::new("late-done");
    let mut server = spawn_child(
        "create-later",
        &[
            ("SHMPIPE_ADDR", addr.clone()),
            ("SHMPIPE_DONE", done.0.display().to_string()),
        ],
    );
    // The client starts first.
    let ring = RingBuilder::new()
        .wait_for_creation(Duration::from_secs(30))
        .open(addr.as_str())?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line)?;
    done.raise();
    let server_pid: u32 = line.trim().parse().map_err(|e| format!("{e}: {line:?}"))?;
    if ring.created() || ring.info().creator_pid != server_pid || ring.info().slots != 16 {
        return Err("the client did not open the server's ring".into());
    }
    if !wait_child(&mut server, Duration::from_secs(30)).success() {
        return Err("server failed".into());
    }
    Ok(())
}

fn creation_timeout() -> Result<(), Failed> {
    let addr = unique("never");
    let wait = Duration::from_millis(300);
    let start = Instant::now();
    let r = RingBuilder::new()
        .wait_for_creation(wait)
        .open(addr.as_str());
    let took = start.elapsed();
    match r {
        Err(e @ Error::NotCreated { .. }) => {
            let msg = e.to_string();
            if !msg.contains(&addr) {
                return Err(format!("message lacks the address: {msg}").into());
            }
        }
        other => return Err(format!("expected NotCreated, got {other:?}").into()),
    }
    // It waited the whole time, and stopped (a hang check, not a timing
    // measurement: the bound is generous).
    if took < wait || took > Duration::from_secs(20) {
        return Err(format!("returned after {took:?} for a {wait:?} wait").into());
    }
    // Without wait_for_creation: NotFound at once.
    match Ring::open(addr.as_str()) {
        Err(Error::NotFound { .. }) => Ok(()),
        other => Err(format!("expected NotFound, got {other:?}").into()),
    }
}

fn planted_fifo() -> Result<(), Failed> {
    let addr = unique("fifo");
    let _c = Cleanup(addr.clone());
    let path = format!("/dev/shm/{}", addr.strip_prefix("shm:").unwrap());
    let status = std::process::Command::new("mkfifo").arg(&path).status()?;
    if !status.success() {
        return Err("mkfifo failed".into());
    }
    let r = with_watchdog(Duration::from_secs(20), move || {
        RingBuilder::new()
            .wait_for_creation(Duration::from_secs(60))
            .open(addr.as_str())
            .map(drop)
    });
    let _ = std::fs::remove_file(&path);
    match r {
        Err(Error::NotARegularFile { .. }) => Ok(()),
        other => Err(format!("expected NotARegularFile, got {other:?}").into()),
    }
}

fn geometry() -> Result<(), Failed> {
    let addr = unique("geometry");
    let _c = Cleanup(addr.clone());
    let _small = RingBuilder::new()
        .slots(4)
        .slot_size(64)
        .create(addr.as_str())?;
    let mut want = RingBuilder::new();
    want.slots(1024).slot_size(4096);
    for (call, r) in [
        ("open", want.open(addr.as_str())),
        ("open_or_create", want.open_or_create(addr.as_str())),
    ] {
        match r {
            Err(e @ Error::GeometryMismatch { .. }) => {
                let msg = e.to_string();
                if !(msg.contains("4 slots x 64 bytes") && msg.contains("1024 slots x 4096 bytes"))
                {
                    return Err(format!("{call}: both geometries belong in: {msg}").into());
                }
                if let Error::GeometryMismatch {
                    expected, found, ..
                } = e
                {
                    let (e, f) = (
                        Geometry {
                            slots: 1024,
                            slot_size: 4096,
                        },
                        Geometry {
                            slots: 4,
                            slot_size: 64,
                        },
                    );
                    if (expected, found) != (e, f) {
                        return Err(format!("{call}: {expected:?} / {found:?}").into());
                    }
                }
            }
            other => return Err(format!("{call}: expected GeometryMismatch, got {other:?}").into()),
        }
    }
    // A dimension not given is not checked; max_message asks for the slot
    // size it would create (48-byte messages: 64-byte slots).
    RingBuilder::new().slots(4).open(addr.as_str())?;
    RingBuilder::new().max_message(48).open(addr.as_str())?;
    if RingBuilder::new()
        .max_message(20)
        .open(addr.as_str())
        .is_err()
    {
        return Err("max_message(20) creates 64-byte slots too".into());
    }
    if RingBuilder::new()
        .max_message(49)
        .open(addr.as_str())
        .is_ok()
    {
        return Err("max_message(49) needs 128-byte slots".into());
    }
    // The opt-out.
    let any = want.accept_any_geometry(true).open(addr.as_str())?;
    if any.info().slots != 4 {
        return Err("accept_any_geometry opened another ring".into());
    }
    let any = want.open_or_create(addr.as_str())?;
    if any.created() {
        return Err("accept_any_geometry replaced the ring".into());
    }
    Ok(())
}

fn geometry_fd() -> Result<(), Failed> {
    let ring = RingBuilder::new().slots(8).create_memfd("geometry-fd")?;
    let fd = || ring.fd().unwrap().try_clone_to_owned().unwrap();
    match RingBuilder::new().slots(16).open_fd(fd()) {
        Err(Error::GeometryMismatch { found, .. }) if found.slots == 8 => {}
        other => return Err(format!("expected GeometryMismatch, got {other:?}").into()),
    }
    RingBuilder::new().slots(8).open_fd(fd())?;
    RingBuilder::new()
        .slots(16)
        .accept_any_geometry(true)
        .open_fd(fd())?;
    Ok(())
}
