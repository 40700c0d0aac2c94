//! `shmpipe bench`: shmpipe against pipes, UNIX sockets, message queues
//! and (feature `peers`) the iceoryx2 and ipmpsc crates, between real
//! processes, next to a bare-ring reference and the physical floors
//! measured in the same repetitions.
//!
//! Each mechanism lives with its family under `mechanisms/` (setup,
//! endpoint, description); everything else is shared by all of them.
//!
//! ```text
//! mod.rs          the commands' options; run() and peer()
//! mechanisms/     the registry, and one file per family of mechanisms:
//!   mod.rs          Mechanism, REGISTRY, the Family trait, Channel
//!   shmpipe.rs      shmpipe-spin, -spin-park, -park, -huge, -fd, -waitset,
//!                   -waitset-epoll, -4k, -4k-borrow, -4k-padded (messages over 4 KiB slots)
//!   fd.rs           pipe, unix-stream, unix-seqpacket, unix-dgram
//!   queues.rs       posix-mq, sysv-mq
//!   tokio_rt.rs     shmpipe-tokio, tokio-unix (current_thread runtimes)
//!   call.rs         shmpipe-call-spin, shmpipe-call, unix-stream-call
//!                   (request/response round trips, ping-pong only)
//!   bare_ring.rs    bare-ring, the reference shmpipe's rows are divided by
//!   iceoryx2.rs     iceoryx2-0.10 (feature `peers`)
//!   ipmpsc.rs       ipmpsc-0.5 (feature `peers`)
//! config.rs       settings and defaults, the ring shape per message size
//! coord.rs        the coordinator: cases, repetitions, floors, cleanup
//! supervise.rs    starting peers, waiting on them with poll(2)
//! protocol.rs     what the coordinator and its peers say to each other
//! jobs.rs         `shmpipe bench-peer`: the jobs a peer runs on any end
//! endpoint.rs     the Endpoint trait every mechanism's end implements
//! floor.rs        the floors: cache line, memcpy; shared memfd helpers
//! summary.rs      medians, spread, ratios; the table and the JSON
//! charts.rs       the SVG charts of --report (plotters, SVG backend)
//! report_dir.rs   --report DIR: report.md, results.json, the charts
//! limits.rs       message-queue limits: create queues, raise and restore
//! signals.rs      Ctrl-C: self-pipe, then kill, remove and exit 128 + sig
//! sys.rs          the libc calls rustix lacks (mq_*, msg*, sigaction)
//! ```
//!
//! See `docs/benchmarks.md` for what is measured, how, and the JSON
//! schema.

use std::time::Duration;

use crate::fail::{CmdResult, Failure};

mod charts;
mod config;
mod coord;
mod endpoint;
mod floor;
mod jobs;
mod limits;
mod mechanisms;
mod protocol;
mod report_dir;
mod signals;
mod summary;
mod supervise;
mod sys;

use mechanisms::Mechanism;
use protocol::Workload;

/// The smallest message: its 8-byte sequence number.
pub const MIN_MSG: usize = 8;
/// The largest message the benchmark streams.
pub const MAX_MSG: usize = 1 << 20;

/// Options of `shmpipe bench`.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Compare shmpipe with pipes, UNIX sockets and message queues between two \
                  real processes, next to a bare spinning ring (the reference every shmpipe \
                  figure is divided by) and the physical floors (a cache line bounced between \
                  two processes, memcpy), all measured in every repetition. The producer and \
                  the consumer are pinned to two CPUs unless --no-pin.\n\n\
                  Workloads: one-way throughput per message size; ping-pong round trip of \
                  64-byte messages; wake-up latency of a blocked consumer; CPU used by an \
                  idle blocked consumer. Every case runs several repetitions, interleaved \
                  across mechanisms; the table shows medians, the spread, ratios to the bare \
                  ring, to the floor and to shmpipe, and each repetition's cache-line round \
                  trip (the machine's state).\n\n\
                  As root, message-queue limits (fs.mqueue.*, kernel.msgmax) are raised for \
                  the run where a message size needs it, and restored afterwards; rows that \
                  cannot run say why. Ctrl-C kills the peers, removes every ring and queue \
                  and exits 130.",
    after_help = "Examples:\n  \
                  shmpipe bench --quick\n  \
                  shmpipe bench --cpus 0,1 --sizes 64,4k --mechanisms shmpipe-spin,pipe\n  \
                  shmpipe bench --json > bench.json\n  \
                  shmpipe bench --quick --report bench-report"
)]
pub struct BenchArgs {
    /// Mechanisms to compare, comma-separated [default: all but unix-dgram,
    /// the event-loop rows and the request/response rows, which say "only
    /// when asked for" / "ping-pong only"].
    #[arg(
        long,
        short = 'm',
        value_enum,
        value_delimiter = ',',
        value_name = "LIST"
    )]
    pub mechanisms: Vec<Mechanism>,

    /// Workloads to run, comma-separated [default: all].
    #[arg(
        long,
        short = 'w',
        value_enum,
        value_delimiter = ',',
        value_name = "LIST"
    )]
    pub workloads: Vec<Workload>,

    /// Message sizes for throughput, in bytes (`k` = KiB), comma-separated
    /// [default: 8,64,512,4096,65536].
    #[arg(long, short = 's', value_delimiter = ',', value_name = "LIST",
          value_parser = config::parse_size)]
    pub sizes: Vec<usize>,

    /// Pin the producer and the consumer to these CPUs [default: the first
    /// two CPUs this process may use].
    #[arg(long, value_name = "P,C", value_parser = config::parse_cpus)]
    pub cpus: Option<(usize, usize)>,

    /// Do not pin: let the scheduler place the producer and the consumer.
    #[arg(long, conflicts_with = "cpus")]
    pub no_pin: bool,

    /// Repetitions of every case [default: 5; 3 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub reps: Option<u32>,

    /// Measured time of each throughput and ping-pong case, after a
    /// warm-up of a quarter of it [default: 400ms; 60ms with --quick].
    #[arg(long, value_name = "TIME", value_parser = config::parse_duration)]
    pub duration: Option<Duration>,

    /// Wake-up samples per case, 1 ms apart [default: 200; 40 with
    /// --quick].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub wakeup_samples: Option<u64>,

    /// How long the idle consumer is watched, after its first wait
    /// [default: 2s; 200ms with --quick].
    #[arg(long, value_name = "TIME", value_parser = config::parse_duration)]
    pub idle: Option<Duration>,

    /// A short run: the whole benchmark well under a minute.
    #[arg(long)]
    pub quick: bool,

    /// Print one JSON object (schema in docs/benchmarks.md) instead of the
    /// table.
    #[arg(long)]
    pub json: bool,

    /// Also write a report into DIR: report.md (tables, machine, machine
    /// state per repetition, charts), results.json (the --json object)
    /// and SVG charts.
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,

    /// Never change system settings (message-queue sysctls), even as root.
    #[arg(long)]
    pub no_raise_limits: bool,
}

/// Options of the hidden `shmpipe bench-peer`.
#[derive(clap::Args, Debug)]
pub struct PeerArgs {
    /// The coordinator's process id, which also names every ring and queue
    /// of the run: carried on the command line so that a stray peer can be
    /// traced to its run (`ps`, and the clean-up tests).
    #[arg(long)]
    pub run_id: u32,

    /// The peer's job, as JSON.
    #[arg(long)]
    pub spec: String,
}

/// `shmpipe bench`.
pub fn run(args: BenchArgs) -> CmdResult {
    let cfg = config::Config::from_args(args)?;
    let signals = signals::Signals::install()
        .map_err(|e| Failure::new(1, format!("installing the Ctrl-C handler: {e}")))?;
    let results = coord::Bench::new(cfg.clone(), signals)?.run()?;
    let out = summary::summarise(&cfg, &results, summary::Machine::detect());
    if let Some(dir) = &cfg.report {
        let md = report_dir::write(dir, &out)?;
        eprintln!("report written to {}", md.display());
    }
    let text = if cfg.json {
        let mut s = serde_json::to_string_pretty(&out)
            .map_err(|e| Failure::new(1, format!("encoding the results: {e}")))?;
        s.push('\n');
        s
    } else {
        summary::table(&out)
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::new(1, format!("writing the results: {e}")))
}

/// `shmpipe bench-peer` (internal). The run id needs no handling: the
/// peer's command line carries it.
pub fn peer(args: PeerArgs) -> CmdResult {
    jobs::main(&args.spec)
}
