//! `shmpipe`: create, use, inspect, list and remove shmpipe rings, and
//! benchmark them against the usual IPC mechanisms.
//!
//! Exit codes are listed in `shmpipe --help` (see [`fail::exit`]).

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use shmpipe_cli::{bench, cmd, fail, interrupt};

#[derive(Parser, Debug)]
#[command(
    name = "shmpipe",
    version,
    about = "Shared-memory message rings: create, send, receive, inspect, benchmark",
    long_about = "Shared-memory message rings for two processes on one host.\n\n\
                  Rings are named by address: shm:NAME (or a bare NAME) for POSIX shared \
                  memory under /dev/shm, file:PATH for a file (huge pages on a hugetlbfs \
                  mount), sysv:KEY or sysv:PATH:ID for System V shared memory.",
    after_help = fail::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a ring and print its geometry.
    Create(cmd::CreateArgs),
    /// Send standard input as messages; close the ring at end of input.
    Send(cmd::SendArgs),
    /// Write received messages to standard output until the producer closes.
    Recv(cmd::RecvArgs),
    /// Show everything about a ring: geometry, indices, sides, counters.
    Inspect(cmd::InspectArgs),
    /// List the shmpipe rings on this host.
    List(cmd::ListArgs),
    /// Remove a ring.
    Rm(cmd::RmArgs),
    /// Compare shmpipe with pipes, UNIX sockets and message queues.
    Bench(bench::BenchArgs),
    /// Internal: one side of a benchmark, started by `shmpipe bench`.
    #[command(hide = true)]
    BenchPeer(bench::PeerArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Command::Create(a) => cmd::create(a),
        Command::Send(a) => cmd::send(a),
        Command::Recv(a) => cmd::recv(a),
        Command::Inspect(a) => cmd::inspect(a),
        Command::List(a) => cmd::list(a),
        Command::Rm(a) => cmd::rm(a),
        Command::Bench(a) => bench::run(a),
        Command::BenchPeer(a) => bench::peer(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("shmpipe: {}", f.message);
            }
            if let Some(sig) = f.signal {
                interrupt::die(sig);
            }
            ExitCode::from(f.code)
        }
    }
}

/// Help and version go to stdout as usual; a usage error becomes one line
/// on stderr (clap's first line, which names the argument and the
/// problem) and exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(fail::exit::USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = e.render().to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut first = lines
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
                .to_owned();
            // "the following required arguments were not provided:" names
            // them on the next line.
            if first.ends_with(':') {
                if let Some(next) = lines.next() {
                    first = format!("{first} {next}");
                }
            }
            eprintln!("shmpipe: {first} (see `shmpipe --help`)");
            ExitCode::from(fail::exit::USAGE)
        }
    }
}
