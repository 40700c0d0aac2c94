//! The coordinator: for each case it creates the channel (ring, pipe,
//! socket pair, queue or floor mapping), starts the consumer, waits until
//! it is ready, starts the producer, waits for both and turns their
//! reports into figures. Repetitions are the outer loop, so every
//! mechanism is measured once per repetition, next to the bare ring and
//! the floors of the same repetition; each repetition opens with the
//! cache-line round trip, which says the machine's state.
//!
//! Everything named is created through the mechanisms' families, named
//! after this process's id, and removed by drop guards as soon as the case
//! ends, on errors and on Ctrl-C too: shm rings
//! (`/dev/shm/shmpipe-bench-PID-N`), POSIX queues (`/shmpipe-bench-PID-N`)
//! and System V queues (key `0xB5C00000 | PID`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::config::{ring_shape, Config, RingShape};
use super::floor;
use super::limits::Limits;
use super::mechanisms::{Channel, Mechanism, Setup};
use super::protocol::{Job, PeerReport, PeerSpec, Workload, LATENCY_MSG};
use super::signals::{self, Signals};
use super::supervise::{wait_until, PeerProc, Stop};
use crate::fail::Failure;

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
        /// Voluntary context switches of the consumer's threads per
        /// second while parked.
        wakeups_per_sec: f64,
        /// CPU time of the whole idle wait: going to sleep, the parked
        /// time, and the wake-up by the end marker.
        wait_cpu_ns: f64,
    },
}

/// Every repetition of one case.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// One entry per repetition; `None` where it failed or did not run.
    pub per_rep: Vec<Option<Measured>>,
    /// Why repetitions failed, in order.
    pub errors: Vec<String>,
    pub notes: BTreeSet<String>,
    /// The ring's shape and page size (shmpipe rows).
    pub shape: Option<(RingShape, u64)>,
    /// Per repetition, the quick cache-line probes taken right before and
    /// right after the case ([`floor::probe_cacheline`]), in nanoseconds;
    /// `None` where none was taken (unpinned runs, latency-free workloads)
    /// or one failed.
    pub probes: Vec<Option<(f64, f64)>>,
}

impl Samples {
    fn new(reps: u32) -> Samples {
        Samples {
            per_rep: vec![None; reps as usize],
            probes: vec![None; reps as usize],
            ..Samples::default()
        }
    }
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Results {
    pub cases: BTreeMap<(Workload, usize, Mechanism), Samples>,
    /// The cache-line round trip, once per repetition.
    pub cacheline: Samples,
    /// memcpy bytes/s per size, per repetition.
    pub memcpy: BTreeMap<usize, Vec<Option<f64>>>,
    /// Limits raised for the run, and similar remarks.
    pub notes: Vec<String>,
    /// Mechanisms that could not run at all, and why (said once).
    pub skipped: BTreeMap<Mechanism, String>,
}

/// What a case is run over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    Mech(Mechanism),
    CacheLine,
}

/// How a case ended.
enum Outcome {
    Measured {
        m: Measured,
        notes: Vec<String>,
        shape: Option<(RingShape, u64)>,
    },
    /// The channel could not be set up; the same will happen every time.
    SetupFailed(String),
    Failed(String),
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

impl Drop for Bench {
    fn drop(&mut self) {
        for m in &self.cfg.mechanisms {
            m.family().clean_up(self.run_id);
        }
    }
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

    fn setup(&mut self) -> Setup<'_> {
        Setup::new(self.run_id, &mut self.limits, &mut self.next_name)
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
                // memcpy and the bare ring at every size.
                Workload::Throughput => self.cfg.sizes.len() as u64 * (m + 2),
                Workload::Pingpong => m + 1,
                Workload::Wakeup | Workload::IdleCpu => m,
            };
        }
        // The cache-line round trip that opens each repetition.
        n + 1
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
            cases: BTreeMap::new(),
            cacheline: Samples::new(reps),
            memcpy: BTreeMap::new(),
            notes: Vec::new(),
            skipped: BTreeMap::new(),
        };
        for m in self.cfg.mechanisms.clone() {
            if let Some(why) = m.family().unavailable(m, &mut self.setup()) {
                for w in Workload::ALL {
                    for s in self.sizes_of(w) {
                        self.setup_failed.insert((m, w, s), why.clone());
                    }
                }
                res.skipped.insert(m, why);
            }
        }
        for rep in 0..reps {
            self.cacheline(rep, &mut res)?;
            // Rotate the order each repetition so that no mechanism always
            // runs right after the same other one.
            let mut mechs = self.cfg.mechanisms.clone();
            let k = rep as usize % mechs.len().max(1);
            mechs.rotate_left(k);
            for w in self.cfg.workloads.clone() {
                for size in self.sizes_of(w) {
                    self.references(w, size, rep, &mut res)?;
                    for &m in &mechs {
                        self.measure(m, w, size, rep, &mut res)?;
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

    /// The cache-line round trip that opens every repetition: the floor
    /// of every ping-pong, and the machine's state in that repetition.
    fn cacheline(&mut self, rep: u32, res: &mut Results) -> Result<(), Failure> {
        self.step(rep, "floor: cache-line round trip".to_owned());
        let out = self.case(Subject::CacheLine, Workload::Pingpong, LATENCY_MSG)?;
        record(&mut res.cacheline, rep, out);
        self.progress.inc(1);
        self.check_signal()
    }

    /// The floor and the reference measured right before the rows they
    /// normalise: memcpy and the bare ring at each throughput size, the
    /// bare ring before ping-pong.
    fn references(
        &mut self,
        w: Workload,
        size: usize,
        rep: u32,
        res: &mut Results,
    ) -> Result<(), Failure> {
        let reps = self.cfg.reps;
        if w == Workload::Throughput {
            self.step(rep, format!("floor: memcpy, {size} B"));
            let g = ring_shape(size);
            let span = (self.cfg.duration / 4)
                .clamp(Duration::from_millis(10), Duration::from_millis(100));
            let cpu = self.cfg.cpus.map(|c| c.0);
            let rate = std::thread::scope(|s| {
                s.spawn(|| {
                    if let Some(cpu) = cpu {
                        // Unpinned if this fails: still one core.
                        let _ = super::jobs::pin(cpu);
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
        if matches!(w, Workload::Throughput | Workload::Pingpong) {
            self.measure(Mechanism::BareRing, w, size, rep, res)?;
        }
        self.check_signal()
    }

    /// Runs repetition `rep` of mechanism `m`'s case and records it in
    /// `res`, with the machine state read right before and right after it
    /// ([`floor::probe_cacheline`]) for the workloads compared with the
    /// bare ring (throughput, ping-pong) when the peers are pinned: a
    /// state that changed inside a repetition is seen per case.
    fn measure(
        &mut self,
        m: Mechanism,
        w: Workload,
        size: usize,
        rep: u32,
        res: &mut Results,
    ) -> Result<(), Failure> {
        self.step(rep, format!("{} {} B {}", w.name(), size, m.name()));
        let cpus = self
            .cfg
            .cpus
            .filter(|_| matches!(w, Workload::Throughput | Workload::Pingpong));
        let before = cpus.and_then(floor::probe_cacheline);
        let out = self.case(Subject::Mech(m), w, size)?;
        let after = cpus.and_then(floor::probe_cacheline);
        let reps = self.cfg.reps;
        let cell = res
            .cases
            .entry((w, size, m))
            .or_insert_with(|| Samples::new(reps));
        record(cell, rep, out);
        cell.probes[rep as usize] = before.zip(after);
        self.progress.inc(1);
        Ok(())
    }

    /// Sets up, runs and tears down one case.
    fn case(&mut self, over: Subject, w: Workload, size: usize) -> Result<Outcome, Failure> {
        self.check_signal()?;
        // No peer is alive here: whatever runs is someone else.
        self.contention.extend(others_running());
        if let Subject::Mech(m) = over {
            if let Some(why) = self.setup_failed.get(&(m, w, size)) {
                return Ok(Outcome::SetupFailed(why.clone()));
            }
        }
        let two_way = w == Workload::Pingpong;
        let chan = match self.channel(over, two_way, size) {
            Ok(c) => c,
            Err(why) => {
                if let Subject::Mech(m) = over {
                    self.setup_failed.insert((m, w, size), why.clone());
                }
                return Ok(Outcome::SetupFailed(why));
            }
        };
        let (Some(clink), Some(plink)) = (chan.consumer.clone(), chan.producer.clone()) else {
            return Ok(Outcome::SetupFailed("no channel".to_owned()));
        };
        let mech = match over {
            Subject::Mech(m) => Some(m),
            Subject::CacheLine => None,
        };
        let await_parked = mech.is_some_and(|m| m.family().reports_parked(m));
        let (cjob, pjob) = self.jobs(w, await_parked);
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
            if let Subject::Mech(m) = over {
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
        if let Some(m) = mech {
            notes.extend(m.family().notes(m, w));
        }
        let measured = match (w, creport, preport) {
            (_, Err(e), _) | (_, _, Err(e)) => return Ok(Outcome::Failed(e)),
            (
                Workload::Throughput,
                Ok(PeerReport::Rate {
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
            (Workload::Wakeup, Ok(r), Ok(PeerReport::Sent { messages, unparked })) => {
                if unparked > 0 {
                    notes.push(format!(
                        "{unparked} of {messages} wake-ups were sent without seeing the consumer \
                         asleep after {:?}",
                        super::jobs::PARK_PATIENCE
                    ));
                }
                match latency(r) {
                    Some(l) => l,
                    None => return Ok(Outcome::Failed("the consumer sent no latencies".into())),
                }
            }
            (
                Workload::IdleCpu,
                Ok(PeerReport::Cpu {
                    cpu_ns,
                    wall_ns,
                    wakeups,
                    wait_cpu_ns,
                }),
                Ok(_),
            ) => Measured::Cpu {
                fraction: cpu_ns as f64 / wall_ns as f64,
                wakeups_per_sec: wakeups as f64 * 1e9 / wall_ns as f64,
                wait_cpu_ns: wait_cpu_ns as f64,
            },
            (_, Ok(c), Ok(p)) => {
                return Ok(Outcome::Failed(format!(
                    "unexpected reports: consumer {c:?}, producer {p:?}"
                )))
            }
        };
        let shape = chan.shape;
        drop(chan);
        Ok(Outcome::Measured {
            m: measured,
            notes,
            shape,
        })
    }

    /// The two peers' jobs for a workload.
    fn jobs(&self, w: Workload, await_parked: bool) -> (Job, Job) {
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
                    // Only mechanisms that can tell whether their consumer
                    // sleeps wait for it.
                    await_parked,
                },
            ),
            Workload::IdleCpu => (
                Job::IdleRecv {
                    window_ns: ns(self.cfg.idle),
                },
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
            Workload::IdleCpu => {
                self.cfg.idle + super::jobs::IDLE_SETTLE * 2 + super::jobs::IDLE_MARGIN
            }
        };
        expected * 4 + Duration::from_secs(20)
    }

    /// Creates the channel a case runs over.
    fn channel(&mut self, over: Subject, two_way: bool, size: usize) -> Result<Channel, String> {
        match over {
            Subject::CacheLine => floor::cacheline_channel(),
            Subject::Mech(m) => m.family().channel(m, &mut self.setup(), two_way, size),
        }
    }
}

fn latency(r: PeerReport) -> Option<Measured> {
    match r {
        PeerReport::Latency {
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

fn record(cell: &mut Samples, rep: u32, out: Outcome) {
    match out {
        Outcome::Measured { m, notes, shape } => {
            cell.per_rep[rep as usize] = Some(m);
            cell.notes.extend(notes);
            if shape.is_some() {
                cell.shape = shape;
            }
        }
        Outcome::SetupFailed(e) | Outcome::Failed(e) => cell.errors.push(e),
    }
}
