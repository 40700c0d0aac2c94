//! The coordinator: for each case it creates the channel (ring, pipe,
//! socket pair, queue or floor mapping), starts the consumer, waits until
//! it is ready, starts the producer, waits for both and turns their
//! reports into figures. Repetitions are the outer loop, so every
//! mechanism is measured once per repetition, next to its floor.
//!
//! Everything named is created here, named after this process's id, and
//! removed by drop guards as soon as the case ends, on errors and on
//! Ctrl-C too: shm rings (`/dev/shm/shmpipe-bench-PID-N`), POSIX queues
//! (`/shmpipe-bench-PID-N`) and System V queues (key [`sysv_key`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use rustix::pipe::{pipe_with, PipeFlags};
use shmpipe::{HugePages, Ring, RingBuilder};

use super::config::{ring_geometry, Config, Geometry};
use super::floor;
use super::limits::{queue_depth, Limits};
use super::signals::{self, Signals};
use super::spec::{Framing, Job, Link, Mechanism, PeerSpec, Report, Wait, Workload, LATENCY_MSG};
use super::supervise::{wait_until, PeerProc, Stop};
use super::sys::{self, PosixMq};
use crate::fail::Failure;

/// The System V key of this run's queue: a fixed tag in the top 10 bits,
/// the coordinator's pid (below 2^22) in the rest.
pub fn sysv_key(run_id: u32) -> i32 {
    (0xB5C0_0000u32 | (run_id & 0x003F_FFFF)) as i32
}

/// One measurement of one case in one repetition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measured {
    Rate {
        msgs_per_sec: f64,
        bytes_per_sec: f64,
    },
    Latency {
        p50_ns: f64,
        p99_ns: f64,
        p999_ns: f64,
        max_ns: f64,
        samples: u64,
    },
    Cpu {
        fraction: f64,
    },
}

/// Every repetition of one case.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// One entry per repetition; `None` where it failed or did not run.
    pub per_rep: Vec<Option<Measured>>,
    /// Why repetitions failed, in order.
    pub errors: Vec<String>,
    pub notes: BTreeSet<String>,
    /// The ring's shape and page size (shmpipe rows).
    pub geometry: Option<(Geometry, u64)>,
}

impl Cell {
    fn new(reps: u32) -> Cell {
        Cell {
            per_rep: vec![None; reps as usize],
            ..Cell::default()
        }
    }
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Results {
    pub cells: BTreeMap<(Workload, usize, Mechanism), Cell>,
    pub cacheline: Cell,
    pub handoff: BTreeMap<usize, Cell>,
    /// memcpy bytes/s per size, per repetition.
    pub memcpy: BTreeMap<usize, Vec<Option<f64>>>,
    /// Limits raised for the run, and similar remarks.
    pub notes: Vec<String>,
}

/// What a case is run over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Over {
    Mech(Mechanism),
    CacheLineFloor,
    HandoffFloor,
}

/// How a case ended.
enum Outcome {
    Measured {
        m: Measured,
        notes: Vec<String>,
        geometry: Option<(Geometry, u64)>,
    },
    /// The channel could not be set up; the same will happen every time.
    SetupFailed(String),
    Failed(String),
}

/// Removes a shm ring's name when dropped (after the handle's own
/// unlink-on-drop, in case that did not happen).
struct RingGuard {
    ring: Option<Ring>,
    addr: String,
}

impl Drop for RingGuard {
    fn drop(&mut self) {
        drop(self.ring.take());
        let _ = Ring::remove(self.addr.as_str(), true);
    }
}

/// Unlinks a POSIX queue's name when dropped.
struct MqGuard(String);

impl Drop for MqGuard {
    fn drop(&mut self) {
        let _ = PosixMq::unlink(&self.0);
    }
}

/// Removes a System V queue when dropped.
struct SysvGuard(i32);

impl Drop for SysvGuard {
    fn drop(&mut self) {
        let _ = sys::sysv_remove(self.0);
    }
}

/// A case's channel: what each peer opens, the descriptors each inherits,
/// and the resources behind them (released when this is dropped, after
/// the peers have exited).
#[derive(Default)]
struct Channel {
    consumer: Option<Link>,
    producer: Option<Link>,
    pass_consumer: Vec<RawFd>,
    pass_producer: Vec<RawFd>,
    geometry: Option<(Geometry, u64)>,
    notes: Vec<String>,
    rings: Vec<RingGuard>,
    fds: Vec<OwnedFd>,
    mqs: Vec<MqGuard>,
    sysv: Vec<SysvGuard>,
}

impl Channel {
    /// Keeps `fd` open for the case; returns its number.
    fn keep(&mut self, fd: OwnedFd) -> RawFd {
        let n = fd.as_raw_fd();
        self.fds.push(fd);
        n
    }
}

/// The benchmark run in progress.
pub struct Bench {
    cfg: Config,
    exe: PathBuf,
    run_id: u32,
    signals: Signals,
    limits: Limits,
    next_name: u32,
    progress: ProgressBar,
    setup_failed: HashMap<(Mechanism, Workload, usize), String>,
    /// Runnable processes other than this one, sampled between cases
    /// (when no peer is alive).
    contention: Vec<u32>,
}

/// Processes running or ready to run besides the caller
/// (`procs_running` in `/proc/stat`, which counts the caller).
fn others_running() -> Option<u32> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let n: u32 = stat
        .lines()
        .find_map(|l| l.strip_prefix("procs_running "))?
        .trim()
        .parse()
        .ok()?;
    Some(n.saturating_sub(1))
}

impl Bench {
    pub fn new(cfg: Config, signals: Signals) -> Result<Bench, Failure> {
        let exe = std::env::current_exe()
            .map_err(|e| Failure::new(1, format!("finding this executable to re-run: {e}")))?;
        let target = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let progress = ProgressBar::with_draw_target(None, target);
        progress.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg} [{elapsed}, eta {eta}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Ok(Bench {
            limits: Limits::new(cfg.raise_limits),
            cfg,
            exe,
            run_id: std::process::id(),
            signals,
            next_name: 0,
            progress,
            setup_failed: HashMap::new(),
            contention: Vec::new(),
        })
    }

    fn name(&mut self) -> String {
        self.next_name += 1;
        format!("shmpipe-bench-{}-{}", self.run_id, self.next_name)
    }

    fn interrupted(&self, sig: i32) -> Failure {
        self.progress.finish_and_clear();
        Failure::new(
            (128 + sig).clamp(0, 255) as u8,
            format!(
                "interrupted by {}: peers killed, rings and queues removed",
                signals::name(sig)
            ),
        )
    }

    fn check_signal(&self) -> Result<(), Failure> {
        match signals::caught() {
            Some(sig) => Err(self.interrupted(sig)),
            None => Ok(()),
        }
    }

    /// Cases per repetition, for the progress bar.
    fn steps_per_rep(&self) -> u64 {
        let m = self.cfg.mechanisms.len() as u64;
        let mut n = 0;
        for w in &self.cfg.workloads {
            n += match w {
                Workload::Throughput => self.cfg.sizes.len() as u64 * (m + 1),
                Workload::Pingpong => m + 1,
                Workload::Wakeup | Workload::IdleCpu => m,
            };
        }
        n
    }

    fn step(&self, rep: u32, what: String) {
        self.progress
            .set_message(format!("rep {}/{}: {what}", rep + 1, self.cfg.reps));
    }

    /// Runs every repetition of every case.
    pub fn run(mut self) -> Result<Results, Failure> {
        let reps = self.cfg.reps;
        self.progress
            .set_length(u64::from(reps) * self.steps_per_rep());
        let mut res = Results {
            cells: BTreeMap::new(),
            cacheline: Cell::new(reps),
            handoff: BTreeMap::new(),
            memcpy: BTreeMap::new(),
            notes: Vec::new(),
        };
        if self.cfg.mechanisms.contains(&Mechanism::ShmpipeHuge) {
            if let Some(why) = self.huge_pages_missing() {
                for w in Workload::ALL {
                    for s in self.sizes_of(w) {
                        self.setup_failed
                            .insert((Mechanism::ShmpipeHuge, w, s), why.clone());
                    }
                }
            }
        }
        for rep in 0..reps {
            // Rotate the order each repetition so that no mechanism always
            // runs right after the same other one.
            let mut mechs = self.cfg.mechanisms.clone();
            let k = rep as usize % mechs.len().max(1);
            mechs.rotate_left(k);
            for w in self.cfg.workloads.clone() {
                for size in self.sizes_of(w) {
                    self.floors(w, size, rep, &mut res)?;
                    for &m in &mechs {
                        self.step(rep, format!("{} {} B {}", w.name(), size, m.name()));
                        let out = self.case(Over::Mech(m), w, size)?;
                        let cell = res
                            .cells
                            .entry((w, size, m))
                            .or_insert_with(|| Cell::new(reps));
                        record(cell, rep, out);
                        self.progress.inc(1);
                    }
                }
            }
        }
        self.progress.finish_and_clear();
        res.notes = self.limits.notes();
        res.notes.extend(self.contention_note());
        Ok(res)
    }

    /// A warning when other processes competed for the CPUs during the
    /// run: spinning figures are the first to suffer.
    fn contention_note(&self) -> Option<String> {
        let n = self.contention.len();
        let busy = self.contention.iter().filter(|&&c| c > 0).count();
        if n == 0 || busy * 5 < n {
            return None;
        }
        let mean = self.contention.iter().map(|&c| f64::from(c)).sum::<f64>() / n as f64;
        Some(format!(
            "other processes were runnable at {busy} of {n} checks between cases (mean {mean:.1}, \
             max {}): they compete with the benchmark for the CPUs, and the busy-spin figures \
             (shmpipe-spin, the floors) suffer first; rerun on an idle machine",
            self.contention.iter().max().copied().unwrap_or(0)
        ))
    }

    /// The message sizes of a workload.
    fn sizes_of(&self, w: Workload) -> Vec<usize> {
        match w {
            Workload::Throughput => self.cfg.sizes.clone(),
            _ => vec![LATENCY_MSG],
        }
    }

    /// The floors measured right before the rows they normalise.
    fn floors(
        &mut self,
        w: Workload,
        size: usize,
        rep: u32,
        res: &mut Results,
    ) -> Result<(), Failure> {
        let reps = self.cfg.reps;
        match w {
            Workload::Throughput => {
                self.step(rep, format!("floor: hand-off and memcpy, {size} B"));
                let out = self.case(Over::HandoffFloor, w, size)?;
                record(
                    res.handoff.entry(size).or_insert_with(|| Cell::new(reps)),
                    rep,
                    out,
                );
                let g = ring_geometry(size);
                let span = (self.cfg.duration / 4)
                    .clamp(Duration::from_millis(10), Duration::from_millis(100));
                let cpu = self.cfg.cpus.map(|c| c.0);
                let rate = std::thread::scope(|s| {
                    s.spawn(|| {
                        if let Some(cpu) = cpu {
                            // Unpinned if this fails: still one core.
                            let _ = super::peer::pin(cpu);
                        }
                        floor::memcpy_rate(size, g.slots as usize, g.slot_size as usize, span)
                    })
                    .join()
                    .ok()
                });
                res.memcpy
                    .entry(size)
                    .or_insert_with(|| vec![None; reps as usize])[rep as usize] = rate;
                self.progress.inc(1);
            }
            Workload::Pingpong => {
                self.step(rep, "floor: cache-line round trip".to_owned());
                let out = self.case(Over::CacheLineFloor, w, size)?;
                record(&mut res.cacheline, rep, out);
                self.progress.inc(1);
            }
            Workload::Wakeup | Workload::IdleCpu => {}
        }
        self.check_signal()
    }

    /// Why huge-page rings cannot be had, if they cannot.
    fn huge_pages_missing(&mut self) -> Option<String> {
        let addr = format!("shm:{}", self.name());
        let g = ring_geometry(LATENCY_MSG);
        let made = RingBuilder::new()
            .slots(g.slots)
            .slot_size(g.slot_size)
            .huge_pages(HugePages::Require)
            .unlink_on_drop(true)
            .create(addr.as_str());
        let _guard = RingGuard {
            ring: None,
            addr: addr.clone(),
        };
        match made {
            Err(e) => Some(e.to_string()),
            Ok(ring) => {
                let page = ring.info().page_size;
                drop(ring);
                (page <= 4096).then(|| {
                    let pool = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
                        .map(|s| format!("vm.nr_hugepages = {}", s.trim()))
                        .unwrap_or_else(|_| "no huge page pool".to_owned());
                    format!("huge pages not obtained: the ring got {page}-byte pages ({pool})")
                })
            }
        }
    }

    /// Sets up, runs and tears down one case.
    fn case(&mut self, over: Over, w: Workload, size: usize) -> Result<Outcome, Failure> {
        self.check_signal()?;
        // No peer is alive here: whatever runs is someone else.
        self.contention.extend(others_running());
        if let Over::Mech(m) = over {
            if let Some(why) = self.setup_failed.get(&(m, w, size)) {
                return Ok(Outcome::SetupFailed(why.clone()));
            }
        }
        let two_way = w == Workload::Pingpong;
        let chan = match self.channel(over, two_way, size) {
            Ok(c) => c,
            Err(why) => {
                if let Over::Mech(m) = over {
                    self.setup_failed.insert((m, w, size), why.clone());
                }
                return Ok(Outcome::SetupFailed(why));
            }
        };
        let (Some(clink), Some(plink)) = (chan.consumer.clone(), chan.producer.clone()) else {
            return Ok(Outcome::SetupFailed("no channel".to_owned()));
        };
        let wait = match over {
            Over::Mech(m) => m.wait(),
            _ => None,
        };
        let (cjob, pjob) = self.jobs(w, wait);
        let (ccpu, pcpu) = match self.cfg.cpus {
            Some((p, c)) => (Some(c), Some(p)),
            None => (None, None),
        };
        let cspec = PeerSpec {
            link: clink,
            job: cjob,
            msg_size: size,
            cpu: ccpu,
        };
        let pspec = PeerSpec {
            link: plink,
            job: pjob,
            msg_size: size,
            cpu: pcpu,
        };
        let limit = self.time_limit(w);
        let deadline = Instant::now() + limit;
        let run_id = self.run_id;

        let mut cons =
            match PeerProc::spawn(&self.exe, "consumer", run_id, &cspec, &chan.pass_consumer) {
                Ok(p) => p,
                Err(e) => return Ok(Outcome::Failed(format!("starting the consumer: {e}"))),
            };
        match wait_until(&mut [&mut cons], &self.signals, deadline, |p| {
            p[0].is_ready() || p[0].is_done()
        }) {
            Ok(()) => {}
            Err(Stop::Signal(sig)) => return Err(self.interrupted(sig)),
            Err(Stop::Timeout) => {
                return Ok(Outcome::Failed(format!(
                    "the consumer was not ready within {limit:?}"
                )))
            }
        }
        if !cons.is_ready() {
            let why = cons
                .finish()
                .err()
                .unwrap_or_else(|| "the consumer exited early".to_owned());
            // Opening fails the same way every time (limits, sizes).
            if let Over::Mech(m) = over {
                self.setup_failed.insert((m, w, size), why.clone());
            }
            return Ok(Outcome::SetupFailed(why));
        }
        let mut prod =
            match PeerProc::spawn(&self.exe, "producer", run_id, &pspec, &chan.pass_producer) {
                Ok(p) => p,
                Err(e) => return Ok(Outcome::Failed(format!("starting the producer: {e}"))),
            };
        match wait_until(&mut [&mut cons, &mut prod], &self.signals, deadline, |p| {
            p.iter().all(|x| x.is_done())
        }) {
            Ok(()) => {}
            Err(Stop::Signal(sig)) => return Err(self.interrupted(sig)),
            Err(Stop::Timeout) => {
                return Ok(Outcome::Failed(format!("timed out after {limit:?}")));
            }
        }
        let creport = cons.finish();
        let preport = prod.finish();
        let mut notes = chan.notes.clone();
        if wait == Some(Wait::Spin) {
            match w {
                Workload::Wakeup => notes.push(
                    "busy-spin never sleeps: this is how soon a spinning consumer sees a message"
                        .to_owned(),
                ),
                Workload::IdleCpu => {
                    notes.push("busy-spin keeps a core busy while idle, by design".to_owned())
                }
                _ => {}
            }
        }
        let measured = match (w, creport, preport) {
            (_, Err(e), _) | (_, _, Err(e)) => return Ok(Outcome::Failed(e)),
            (
                Workload::Throughput,
                Ok(Report::Rate {
                    messages,
                    elapsed_ns,
                }),
                Ok(_),
            ) => {
                let rate = messages as f64 * 1e9 / elapsed_ns as f64;
                Measured::Rate {
                    msgs_per_sec: rate,
                    bytes_per_sec: rate * size as f64,
                }
            }
            (Workload::Pingpong, Ok(_), Ok(r)) => match latency(r) {
                Some(l) => l,
                None => return Ok(Outcome::Failed("the initiator sent no latencies".into())),
            },
            (Workload::Wakeup, Ok(r), Ok(Report::Sent { messages, unparked })) => {
                if unparked > 0 {
                    notes.push(format!(
                        "{unparked} of {messages} wake-ups were sent without seeing the consumer \
                         asleep after {:?}",
                        super::peer::PARK_PATIENCE
                    ));
                }
                match latency(r) {
                    Some(l) => l,
                    None => return Ok(Outcome::Failed("the consumer sent no latencies".into())),
                }
            }
            (Workload::IdleCpu, Ok(Report::Cpu { cpu_ns, wall_ns }), Ok(_)) => Measured::Cpu {
                fraction: cpu_ns as f64 / wall_ns as f64,
            },
            (_, Ok(c), Ok(p)) => {
                return Ok(Outcome::Failed(format!(
                    "unexpected reports: consumer {c:?}, producer {p:?}"
                )))
            }
        };
        let geometry = chan.geometry;
        drop(chan);
        Ok(Outcome::Measured {
            m: measured,
            notes,
            geometry,
        })
    }

    /// The two peers' jobs for a workload.
    fn jobs(&self, w: Workload, wait: Option<Wait>) -> (Job, Job) {
        let ns = |d: Duration| d.as_nanos().min(u128::from(u64::MAX)) as u64;
        let warm = ns(self.cfg.warmup());
        let dur = ns(self.cfg.duration);
        match w {
            Workload::Throughput => (
                Job::Drain { warmup_ns: warm },
                Job::Stream {
                    duration_ns: warm + dur,
                },
            ),
            Workload::Pingpong => (
                Job::Echo,
                Job::Ping {
                    duration_ns: dur,
                    warmup_ns: warm,
                },
            ),
            Workload::Wakeup => (
                Job::Woken,
                Job::Wake {
                    samples: self.cfg.wakeup_samples,
                    gap_ns: ns(self.cfg.wakeup_gap),
                    // Only the parking shmpipe variants say whether their
                    // consumer sleeps; busy-spin never does.
                    await_parked: matches!(wait, Some(Wait::SpinPark | Wait::Park)),
                },
            ),
            Workload::IdleCpu => (
                Job::IdleRecv,
                Job::IdleSend {
                    idle_ns: ns(self.cfg.idle),
                },
            ),
        }
    }

    /// How long a case may take before it is killed: several times what
    /// it should take, plus process start-up on a loaded machine.
    fn time_limit(&self, w: Workload) -> Duration {
        let expected = match w {
            Workload::Throughput | Workload::Pingpong => self.cfg.duration + self.cfg.warmup(),
            Workload::Wakeup => {
                (self.cfg.wakeup_gap + Duration::from_millis(2))
                    * (self.cfg.wakeup_samples as u32 + 2)
            }
            Workload::IdleCpu => self.cfg.idle,
        };
        expected * 4 + Duration::from_secs(20)
    }

    /// Creates the channel a case runs over.
    fn channel(&mut self, over: Over, two_way: bool, size: usize) -> Result<Channel, String> {
        let mut ch = Channel::default();
        match over {
            Over::CacheLineFloor | Over::HandoffFloor => {
                let fd = floor::create_memfd(floor::floor_len(size))
                    .map_err(|e| format!("floor memfd: {e}"))?;
                let n = ch.keep(fd);
                ch.pass_consumer.push(n);
                ch.pass_producer.push(n);
                if over == Over::CacheLineFloor {
                    ch.consumer = Some(Link::CacheLine { fd: n, side: 1 });
                    ch.producer = Some(Link::CacheLine { fd: n, side: 0 });
                } else {
                    ch.consumer = Some(Link::Handoff { fd: n, tx: false });
                    ch.producer = Some(Link::Handoff { fd: n, tx: true });
                }
            }
            Over::Mech(m) => match m {
                Mechanism::ShmpipeSpin
                | Mechanism::ShmpipeSpinPark
                | Mechanism::ShmpipePark
                | Mechanism::ShmpipeHuge => {
                    let wait = m.wait().unwrap_or(Wait::SpinPark);
                    let g = ring_geometry(size);
                    let a = self.ring(&mut ch, g, m == Mechanism::ShmpipeHuge)?;
                    if two_way {
                        let b = self.ring(&mut ch, g, m == Mechanism::ShmpipeHuge)?;
                        ch.producer = Some(Link::Ring {
                            tx: Some(a.clone()),
                            rx: Some(b.clone()),
                            wait,
                        });
                        ch.consumer = Some(Link::Ring {
                            tx: Some(b),
                            rx: Some(a),
                            wait,
                        });
                    } else {
                        ch.producer = Some(Link::Ring {
                            tx: Some(a.clone()),
                            rx: None,
                            wait,
                        });
                        ch.consumer = Some(Link::Ring {
                            tx: None,
                            rx: Some(a),
                            wait,
                        });
                    }
                }
                Mechanism::Pipe => {
                    let framing = Framing::Stream;
                    let (r1, w1) =
                        pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
                    let (r1, w1) = (ch.keep(r1), ch.keep(w1));
                    if two_way {
                        let (r2, w2) =
                            pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
                        let (r2, w2) = (ch.keep(r2), ch.keep(w2));
                        ch.producer = Some(Link::Fd {
                            tx: Some(w1),
                            rx: Some(r2),
                            framing,
                        });
                        ch.consumer = Some(Link::Fd {
                            tx: Some(w2),
                            rx: Some(r1),
                            framing,
                        });
                        ch.pass_producer = vec![w1, r2];
                        ch.pass_consumer = vec![w2, r1];
                    } else {
                        ch.producer = Some(Link::Fd {
                            tx: Some(w1),
                            rx: None,
                            framing,
                        });
                        ch.consumer = Some(Link::Fd {
                            tx: None,
                            rx: Some(r1),
                            framing,
                        });
                        ch.pass_producer = vec![w1];
                        ch.pass_consumer = vec![r1];
                    }
                }
                Mechanism::UnixStream | Mechanism::UnixSeqpacket | Mechanism::UnixDgram => {
                    let (kind, framing) = match m {
                        Mechanism::UnixStream => (SocketType::STREAM, Framing::Stream),
                        Mechanism::UnixSeqpacket => (SocketType::SEQPACKET, Framing::Packet),
                        _ => (SocketType::DGRAM, Framing::Packet),
                    };
                    let (a, b) = socketpair(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None)
                        .map_err(|e| format!("socketpair: {e}"))?;
                    let (a, b) = (ch.keep(a), ch.keep(b));
                    // Producer on `a`, consumer on `b`; both ways for
                    // ping-pong.
                    ch.producer = Some(Link::Fd {
                        tx: Some(a),
                        rx: two_way.then_some(a),
                        framing,
                    });
                    ch.consumer = Some(Link::Fd {
                        tx: two_way.then_some(b),
                        rx: Some(b),
                        framing,
                    });
                    ch.pass_producer = vec![a];
                    ch.pass_consumer = vec![b];
                }
                Mechanism::PosixMq => {
                    let depth = queue_depth(size);
                    let a = self.posix_mq(&mut ch, depth, size)?;
                    if two_way {
                        let b = self.posix_mq(&mut ch, depth, size)?;
                        ch.producer = Some(Link::PosixMq {
                            tx: Some(a.clone()),
                            rx: Some(b.clone()),
                        });
                        ch.consumer = Some(Link::PosixMq {
                            tx: Some(b),
                            rx: Some(a),
                        });
                    } else {
                        ch.producer = Some(Link::PosixMq {
                            tx: Some(a.clone()),
                            rx: None,
                        });
                        ch.consumer = Some(Link::PosixMq {
                            tx: None,
                            rx: Some(a),
                        });
                    }
                }
                Mechanism::SysvMq => {
                    let depth = queue_depth(size);
                    let (id, note) = self.limits.sysv_mq(sysv_key(self.run_id), depth, size)?;
                    ch.sysv.push(SysvGuard(id));
                    ch.notes.extend(note);
                    // Type 1 carries producer -> consumer, type 2 back.
                    ch.producer = Some(Link::SysvMq {
                        id,
                        tx_type: Some(1),
                        rx_type: two_way.then_some(2),
                    });
                    ch.consumer = Some(Link::SysvMq {
                        id,
                        tx_type: two_way.then_some(2),
                        rx_type: Some(1),
                    });
                }
            },
        }
        Ok(ch)
    }

    /// Creates a shm ring for the case; returns its address.
    fn ring(&mut self, ch: &mut Channel, g: Geometry, huge: bool) -> Result<String, String> {
        let addr = format!("shm:{}", self.name());
        let mut b = RingBuilder::new();
        b.slots(g.slots)
            .slot_size(g.slot_size)
            .populate(true)
            .unlink_on_drop(true);
        if huge {
            b.huge_pages(HugePages::Require);
        }
        let made = b.create(addr.as_str());
        // Guard first, so that even a half-made ring is removed.
        ch.rings.push(RingGuard {
            ring: None,
            addr: addr.clone(),
        });
        let ring = made.map_err(|e| e.to_string())?;
        let page = ring.info().page_size;
        if huge && page <= 4096 {
            return Err(format!(
                "huge pages not obtained: the ring got {page}-byte pages"
            ));
        }
        ch.geometry = Some((g, page));
        if let Some(last) = ch.rings.last_mut() {
            last.ring = Some(ring);
        }
        Ok(addr)
    }

    /// Creates a POSIX queue for the case; returns its name.
    fn posix_mq(&mut self, ch: &mut Channel, depth: usize, size: usize) -> Result<String, String> {
        let name = format!("/{}", self.name());
        let made = self.limits.posix_mq(&name, depth, size);
        let (q, note) = made?;
        ch.mqs.push(MqGuard(name.clone()));
        // The coordinator needs no descriptor; the name stays until the
        // guard unlinks it.
        drop(q);
        ch.notes.extend(note);
        Ok(name)
    }
}

fn latency(r: Report) -> Option<Measured> {
    match r {
        Report::Latency {
            samples,
            p50_ns,
            p99_ns,
            p999_ns,
            max_ns,
        } if samples > 0 => Some(Measured::Latency {
            p50_ns: p50_ns as f64,
            p99_ns: p99_ns as f64,
            p999_ns: p999_ns as f64,
            max_ns: max_ns as f64,
            samples,
        }),
        _ => None,
    }
}

fn record(cell: &mut Cell, rep: u32, out: Outcome) {
    match out {
        Outcome::Measured { m, notes, geometry } => {
            cell.per_rep[rep as usize] = Some(m);
            cell.notes.extend(notes);
            if geometry.is_some() {
                cell.geometry = geometry;
            }
        }
        Outcome::SetupFailed(e) | Outcome::Failed(e) => cell.errors.push(e),
    }
}
