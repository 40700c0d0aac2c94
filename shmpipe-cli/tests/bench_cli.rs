//! `shmpipe bench` end to end: a short run prints a well-formed table and
//! valid JSON naming every requested mechanism (measured, or unavailable
//! with a reason), and nothing of a run is left behind in `/dev/shm`,
//! `/dev/mqueue` or System V IPC, after a normal run and after Ctrl-C.
//!
//! The runs share system settings (the message-queue limits a run raises
//! and restores), so they take turns.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_shmpipe");

/// One benchmark run at a time (they raise and restore shared limits).
static RUNS: Mutex<()> = Mutex::new(());

const MECHANISMS: [&str; 26] = [
    "shmpipe-spin",
    "shmpipe-spin-park",
    "shmpipe-park",
    "shmpipe-huge",
    "shmpipe-fd",
    "shmpipe-waitset",
    "shmpipe-waitset-epoll",
    "shmpipe-in-place",
    "shmpipe-typed",
    "shmpipe-typed-in-place",
    "shmpipe-aligned",
    "shmpipe-aligned-in-place",
    "shmpipe-4k",
    "shmpipe-4k-borrow",
    "shmpipe-4k-padded",
    "shmpipe-tokio",
    "tokio-unix",
    "pipe",
    "unix-stream",
    "unix-seqpacket",
    "unix-dgram",
    "posix-mq",
    "sysv-mq",
    "shmpipe-call-spin",
    "shmpipe-call",
    "unix-stream-call",
];
const WORKLOADS: [&str; 4] = ["throughput", "pingpong", "wakeup", "idle-cpu"];
const SIZES: [u64; 2] = [64, 65536];

/// The smallest run that still does everything: every mechanism and
/// workload, two sizes, one repetition of short cases.
fn smoke_args() -> Vec<String> {
    let mut a: Vec<String> = [
        "bench",
        "--quick",
        "--reps",
        "1",
        "--duration",
        "20ms",
        "--idle",
        "50ms",
        "--wakeup-samples",
        "4",
        "--sizes",
        "64,65536",
        "--mechanisms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(MECHANISMS.join(","));
    a
}

fn run(args: &[String]) -> (Output, u32) {
    let child = Command::new(EXE)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shmpipe bench");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for shmpipe bench");
    (out, pid)
}

/// Everything of run `pid` still on the system: shm rings, POSIX queues,
/// System V queues and segments with the run's key, live peer processes.
fn leftovers(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    let prefix = format!("shmpipe-bench-{pid}-");
    for dir in ["/dev/shm", "/dev/mqueue"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) {
                    found.push(format!("{dir}/{name}"));
                }
            }
        }
    }
    // The run's System V key: tag 0xB5C in the top bits, the pid below.
    let key = 0xB5C0_0000u32 | (pid & 0x003F_FFFF);
    for table in ["/proc/sysvipc/msg", "/proc/sysvipc/shm"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            for line in text.lines().skip(1) {
                let k = line
                    .split_whitespace()
                    .next()
                    .and_then(|k| k.parse::<i64>().ok());
                if k.map(|k| k as u32) == Some(key) {
                    found.push(format!("{table}: {}", line.trim()));
                }
            }
        }
    }
    let needle = format!("--run-id\0{pid}\0");
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
                if String::from_utf8_lossy(&cmd).contains(&needle) {
                    found.push(format!("peer process {}", p.file_name().to_string_lossy()));
                }
            }
        }
    }
    found
}

/// The `ipcs -m -q` view, where the tool exists, for the record.
fn ipcs() -> String {
    Command::new("ipcs")
        .args(["-m", "-q"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn sysctls() -> Vec<(String, String)> {
    [
        "/proc/sys/fs/mqueue/msg_max",
        "/proc/sys/fs/mqueue/msgsize_max",
        "/proc/sys/kernel/msgmax",
        "/proc/sys/kernel/msgmnb",
    ]
    .iter()
    .filter_map(|p| Some((p.to_string(), std::fs::read_to_string(p).ok()?)))
    .collect()
}

#[test]
fn smoke_run_prints_a_complete_table() {
    let _turn = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let before = sysctls();
    let (out, pid) = run(&smoke_args());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}\n{stdout}");
    // Not a terminal: no progress bar.
    assert!(stderr.is_empty(), "unexpected stderr: {stderr}");
    for heading in [
        "Physical floors",
        "cache-line round trip",
        "per repetition (machine state",
        "Throughput, one way",
        "Ping-pong round trip",
        "Wake-up latency",
        "Idle consumer",
    ] {
        assert!(stdout.contains(heading), "no `{heading}` in:\n{stdout}");
    }
    // Every mechanism has a row in every section: throughput once per
    // size, the others once. Rows are indented; notes are bullets.
    for m in MECHANISMS {
        // A mechanism that cannot run at all here (shmpipe-huge without a
        // huge-page pool) is named once in the notes, with its reason,
        // and has no rows.
        if let Some(line) = stdout
            .lines()
            .find(|l| l.starts_with(&format!("  - {m} not run: ")))
        {
            assert!(line.len() > m.len() + 20, "no reason: {line}");
            assert_eq!(
                stdout.matches(&format!("{m} not run")).count(),
                1,
                "said more than once:\n{stdout}"
            );
            continue;
        }
        let rows: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("  - "))
            .filter(|l| l.split_whitespace().any(|w| w == m))
            .collect();
        assert!(
            rows.len() >= SIZES.len() + 3,
            "{m}: {} rows in:\n{stdout}",
            rows.len()
        );
        for r in &rows {
            if let Some(i) = r.find("unavailable:") {
                assert!(r[i + 12..].trim().len() > 3, "no reason: {r}");
            } else {
                assert!(r.chars().any(|c| c.is_ascii_digit()), "no figures: {r}");
            }
        }
    }
    // The bare ring, the reference, has a row at every throughput size and
    // in ping-pong, with figures.
    let bare: Vec<&str> = stdout
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == "bare-ring"))
        .collect();
    assert_eq!(bare.len(), SIZES.len() + 1, "bare-ring rows in:\n{stdout}");
    assert!(bare.iter().all(|r| !r.contains("unavailable")), "{bare:?}");
    assert!(
        stdout.contains("producer pinned to CPU") || stdout.contains("not pinned"),
        "no pinning line in:\n{stdout}"
    );
    assert_eq!(
        leftovers(pid),
        Vec::<String>::new(),
        "after a run:\n{}",
        ipcs()
    );
    assert_eq!(sysctls(), before, "limits not restored");
}

#[test]
fn smoke_run_prints_valid_json() {
    let _turn = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let mut args = smoke_args();
    args.push("--json".into());
    let (out, pid) = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");

    let m = &v["machine"];
    assert!(m["cpu_model"].is_string(), "{m}");
    assert!(m["cores"].as_u64().unwrap() >= 1, "{m}");
    assert!(!m["kernel"].as_str().unwrap().is_empty(), "{m}");

    let f = &v["floor"];
    assert!(f["cacheline_rtt_ns"].as_f64().unwrap() > 0.0, "{f}");
    let floor_sizes: BTreeSet<u64> = f["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert!(s["memcpy_bytes_per_sec"].as_f64().unwrap() > 0.0, "{s}");
            s["msg_size"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(floor_sizes, SIZES.into_iter().collect());
    // One cache-line figure and machine state per repetition (one here).
    let states = f["cacheline_per_rep"]
        .as_array()
        .expect("cacheline_per_rep");
    assert_eq!(states.len(), 1, "{f}");
    let reps = states.len();
    assert!(states[0]["p50_ns"].as_f64().unwrap() > 0.0, "{f}");
    assert!(
        ["near", "far"].contains(&states[0]["state"].as_str().unwrap()),
        "{f}"
    );
    // Pinned by default on a machine with two CPUs or more.
    let usable = v["machine"]["usable_cpus"].as_u64().unwrap();
    assert_eq!(
        v["config"]["pinning"].is_null(),
        usable < 2,
        "{}",
        v["config"]
    );

    let results = v["results"].as_array().expect("results is a list");
    for mech in MECHANISMS {
        for w in WORKLOADS {
            let sizes: &[u64] = if w == "throughput" { &SIZES } else { &[64] };
            for &size in sizes {
                let r = results
                    .iter()
                    .find(|r| r["mechanism"] == mech && r["workload"] == w && r["msg_size"] == size)
                    .unwrap_or_else(|| panic!("no result for {mech} {w} {size}"));
                if let Some(why) = r.get("unavailable") {
                    if let Some(skip) = v["skipped"].get(mech) {
                        assert_eq!(why, skip, "{mech}: the skip reason");
                    }
                    let why = why.as_str().unwrap();
                    assert!(why.len() > 3, "{mech} {w}: empty reason");
                    continue;
                }
                let figures: &[&str] = match w {
                    "throughput" => &["msgs_per_sec", "bytes_per_sec"],
                    "pingpong" | "wakeup" => &["p50_ns", "p99_ns", "p999_ns", "max_ns"],
                    _ => &["cpu_fraction"],
                };
                // A parked consumer's CPU is 0 in most repetitions: with one
                // that differs, the spread around a median of 0 is undefined.
                let zero_median = r["cpu_fraction"].as_f64() == Some(0.0);
                for k in figures
                    .iter()
                    .chain(&["spread"])
                    .filter(|k| !(zero_median && **k == "spread"))
                {
                    let x = r[k].as_f64();
                    assert!(x.is_some_and(|x| x >= 0.0), "{mech} {w} {size}: {k} in {r}");
                }
                let shm = mech.starts_with("shmpipe");
                let expected: &[&str] = match (shm, w) {
                    (true, "throughput") => &["vs_bare_ring"],
                    (true, "pingpong") => &["vs_bare_ring", "vs_floor"],
                    (false, "throughput" | "pingpong") => &["shmpipe_gain"],
                    _ => &[],
                };
                for k in expected {
                    assert!(r[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {r}");
                }
                // Each probed case's machine state per repetition.
                let case_states = |r: &Value| -> Vec<Value> {
                    let Some(s) = r.get("states") else {
                        return Vec::new();
                    };
                    let s = s.as_array().expect("states is an array").clone();
                    assert_eq!(s.len(), reps, "one state per repetition in {r}");
                    for x in &s {
                        assert!(
                            x.is_null() || ["near", "far", "mixed"].contains(&x.as_str().unwrap()),
                            "state {x} in {r}"
                        );
                    }
                    s
                };
                let row_states = case_states(r);
                // `x bare` split by machine state: a state that some pair
                // of cases ran in (by their probes, or by the repetition's
                // floor where neither was probed) has its figure, a state
                // no pair was in has none.
                if r.get("vs_bare_ring").is_some() {
                    let bare = results
                        .iter()
                        .find(|b| {
                            b["mechanism"] == "bare-ring"
                                && b["workload"] == r["workload"]
                                && b["msg_size"] == r["msg_size"]
                        })
                        .expect("the bare ring ran");
                    let bare_states = case_states(bare);
                    let floors = v["floor"]["cacheline_per_rep"].as_array().unwrap();
                    for state in ["near", "far"] {
                        let seen = (0..reps).any(|i| {
                            let probed: Vec<&Value> = [row_states.get(i), bare_states.get(i)]
                                .into_iter()
                                .flatten()
                                .filter(|s| !s.is_null())
                                .collect();
                            if probed.is_empty() {
                                floors[i]["state"] == state
                            } else {
                                probed.iter().all(|s| **s == state)
                            }
                        });
                        let k = format!("vs_bare_ring_{state}");
                        assert_eq!(r.get(&k).is_some(), seen, "{k} in {r}");
                    }
                }
                // The wake-up rows against their targets' references (run
                // here: every row is).
                if w == "wakeup"
                    && [
                        "shmpipe-park",
                        "shmpipe-spin-park",
                        "shmpipe-fd",
                        "shmpipe-waitset",
                        "shmpipe-waitset-epoll",
                        "shmpipe-tokio",
                    ]
                    .contains(&mech)
                {
                    let k = "vs_wakeup_reference";
                    assert!(r[k].as_f64().is_some_and(|x| x > 0.0), "{k} in {r}");
                }
            }
        }
    }
    // The reference: measured at every throughput size and in ping-pong.
    for (w, size) in SIZES
        .iter()
        .map(|&s| ("throughput", s))
        .chain([("pingpong", 64)])
    {
        let r = results
            .iter()
            .find(|r| r["mechanism"] == "bare-ring" && r["workload"] == w && r["msg_size"] == size)
            .unwrap_or_else(|| panic!("no bare-ring result for {w} {size}"));
        let k = if w == "throughput" {
            "msgs_per_sec"
        } else {
            "p50_ns"
        };
        assert!(r[k].as_f64().is_some_and(|x| x > 0.0), "{r}");
    }
    // The shmpipe rows carry their ring geometry.
    let g = results
        .iter()
        .find(|r| r["mechanism"] == "shmpipe-spin" && r["workload"] == "throughput")
        .map(|r| &r["geometry"])
        .unwrap();
    assert!(g["slots"].as_u64().unwrap() >= 16, "{g}");
    assert_eq!(
        leftovers(pid),
        Vec::<String>::new(),
        "after a run:\n{}",
        ipcs()
    );
}

#[test]
fn ctrl_c_kills_peers_and_removes_everything() {
    let _turn = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let before = sysctls();
    // Long cases, so that the signal lands mid-run with a ring or a queue
    // in place.
    let mut child = Command::new(EXE)
        .args([
            "bench",
            "--workloads",
            "throughput",
            "--sizes",
            "65536",
            "--duration",
            "2s",
            "--mechanisms",
            "shmpipe-spin-park,sysv-mq,posix-mq",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shmpipe bench");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = leftovers(pid);
        // Wait for a case in flight: a channel and its two peers.
        if now.iter().filter(|s| s.starts_with("peer process")).count() == 2
            && now.iter().any(|s| !s.starts_with("peer process"))
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("bench ended before it could be interrupted: {status}");
        }
        assert!(Instant::now() < deadline, "no case started: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .expect("send SIGINT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bench did not exit after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("interrupted"), "stderr: {stderr}");
    assert_eq!(
        leftovers(pid),
        Vec::<String>::new(),
        "after SIGINT:\n{}",
        ipcs()
    );
    assert_eq!(sysctls(), before, "limits not restored");
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["bench", "--sizes", "4"][..],
        &["bench", "--sizes", "64x"],
        &["bench", "--cpus", "0"],
        &["bench", "--cpus", "4096,0"],
        &["bench", "--cpus", "0,0", "--no-pin"],
        &["bench", "--duration", "10"],
        &["bench", "--reps", "0"],
        &["bench", "--mechanisms", "carrier-pigeon"],
        &["bench-peer", "--run-id", "1", "--spec", "{"],
        &[
            "bench-peer",
            "--run-id",
            "1",
            "--spec",
            r#"{"link":{"kind":"fd","tx":0,"rx":null,"framing":"stream"},"job":{"job":"echo"},"msg_size":4,"cpu":null}"#,
        ],
    ] {
        let out = Command::new(EXE).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // A peer handed a descriptor it did not inherit fails cleanly.
    let out = Command::new(EXE)
        .args([
            "bench-peer",
            "--run-id",
            "1",
            "--spec",
            r#"{"link":{"kind":"fd","tx":null,"rx":77,"framing":"stream"},"job":{"job":"woken"},"msg_size":64,"cpu":null}"#,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not inherited"), "{stderr}");
}

/// Text of every `<text>` element, and the fill colours of every
/// `<circle>` (one per data point), of an SVG that must parse as XML.
fn svg_contents(path: &std::path::Path) -> (String, BTreeSet<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg", "{path:?}");
    let mut texts = String::new();
    let mut fills = BTreeSet::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "text" => {
                texts.push_str(n.text().unwrap_or(""));
                texts.push('\n');
            }
            "circle" => {
                fills.insert(n.attribute("fill").unwrap_or("").to_owned());
            }
            _ => {}
        }
    }
    (texts, fills)
}

#[test]
fn report_writes_markdown_json_and_charts() {
    let _turn = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("shmpipe-bench-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut args: Vec<String> = smoke_args()
        .into_iter()
        .take_while(|a| a != "--mechanisms")
        .collect();
    args.extend(
        [
            "--mechanisms",
            "shmpipe-spin,shmpipe-spin-park,pipe",
            "--report",
        ]
        .map(String::from),
    );
    args.push(dir.to_string_lossy().into_owned());
    let (out, pid) = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    assert!(stderr.contains("report.md"), "{stderr}");

    let json: Value = serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap())
        .expect("results.json is JSON");
    let results = json["results"].as_array().unwrap();
    let kernel = json["machine"]["kernel"].as_str().unwrap();
    // The mechanisms with figures for workload `w`, as their legends say.
    let series = |w: &str| -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for r in results.iter().filter(|r| r["workload"] == w) {
            let m = r["mechanism"].as_str().unwrap();
            if r.get("unavailable").is_none() && !names.iter().any(|n| n == m) {
                names.push(m.to_owned());
            }
        }
        names
    };
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for (file, workload, better, axes, floors) in [
        (
            "throughput-msgs.svg",
            "throughput",
            "higher is better",
            &["message size (log)", "messages per second (log)"][..],
            &[][..],
        ),
        (
            "throughput-bytes.svg",
            "throughput",
            "higher is better",
            &["message size (log)", "bytes per second (log)"][..],
            &["memcpy, one core (floor)"][..],
        ),
        (
            "pingpong.svg",
            "pingpong",
            "lower is better",
            &[
                "percentile",
                "nanoseconds (log)",
                "p50",
                "p99",
                "p99.9",
                "max",
            ][..],
            &["cache-line round trip p50 (floor)"][..],
        ),
        (
            "wakeup.svg",
            "wakeup",
            "lower is better",
            &["percentile", "nanoseconds (log)"][..],
            &[][..],
        ),
        (
            "idle-cpu.svg",
            "idle-cpu",
            "lower is better",
            &["mechanism", "µs of CPU (log)"][..],
            &[][..],
        ),
    ] {
        assert!(
            md.contains(&format!("]({file})")),
            "report.md embeds no {file}"
        );
        let (texts, fills) = svg_contents(&dir.join(file));
        assert!(
            texts.contains(better),
            "{file}: says not which way is better"
        );
        assert!(texts.contains(kernel), "{file}: names not the kernel");
        for label in axes.iter().chain(floors) {
            assert!(texts.contains(label), "{file}: no `{label}` in\n{texts}");
        }
        let names = series(workload);
        assert!(!names.is_empty(), "{workload}: no measured rows");
        for n in &names {
            assert!(
                texts.contains(n.as_str()),
                "{file}: no series `{n}` in\n{texts}"
            );
        }
        // Every series has at least one point, each in its own colour.
        assert!(
            fills.len() >= names.len(),
            "{file}: {} point colours for series {names:?}",
            fills.len()
        );
    }
    assert!(series("throughput").iter().any(|n| n == "bare-ring"));
    assert!(md.contains("Machine state per repetition"), "{md}");
    assert!(md.contains(kernel) && md.contains("--report"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// With `--features peers`: iceoryx2 and ipmpsc run as mechanisms, with
/// figures in every workload, their crate and version in their names, and
/// nothing of theirs left behind (their files carry the run's prefix).
#[cfg(feature = "peers")]
#[test]
fn peer_crates_run_as_mechanisms() {
    let _turn = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let mut args: Vec<String> = smoke_args()
        .into_iter()
        .take_while(|a| a != "--mechanisms")
        .collect();
    args.extend(
        [
            "--mechanisms",
            "shmpipe-spin-park,iceoryx2-0.10,ipmpsc-0.5",
            "--json",
        ]
        .map(String::from),
    );
    let (out, pid) = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    let results = v["results"].as_array().unwrap();
    for mech in ["iceoryx2-0.10", "ipmpsc-0.5"] {
        for w in WORKLOADS {
            let rows: Vec<&Value> = results
                .iter()
                .filter(|r| r["mechanism"] == mech && r["workload"] == w)
                .collect();
            assert!(!rows.is_empty(), "no {mech} {w} row");
            for r in rows {
                assert!(r.get("unavailable").is_none(), "{r}");
                let k = match w {
                    "throughput" => "msgs_per_sec",
                    "idle-cpu" => "cpu_fraction",
                    _ => "p50_ns",
                };
                assert!(r[k].as_f64().is_some_and(|x| x >= 0.0), "{k} in {r}");
                if w == "throughput" || w == "pingpong" {
                    assert!(r["shmpipe_gain"].as_f64().is_some(), "{r}");
                }
            }
        }
    }
    assert_eq!(
        leftovers(pid),
        Vec::<String>::new(),
        "after a run:\n{}",
        ipcs()
    );
}
