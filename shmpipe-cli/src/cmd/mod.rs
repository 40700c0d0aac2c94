//! The ring commands: create, send, recv, inspect, list, rm.

mod admin;
pub mod frame;
mod parse;
mod pipe;
mod whose;

use std::time::Duration;

use shmpipe::{Address, Error, HugePages, Ring, RingBuilder};

use crate::fail::{exit, Failure};

pub use admin::{create, inspect, list, rm};
pub use pipe::{recv, send};

/// Slots of a ring created by the command line, unless `--slots` says.
const DEFAULT_SLOTS: u64 = 128;
/// Slot size of a ring created by the command line (64 KiB: a pipe's worth
/// per message), unless `--slot-size` says.
const DEFAULT_SLOT_SIZE: u64 = 64 << 10;

/// `--huge-pages` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum HugeArg {
    /// Base pages only.
    #[default]
    Never,
    /// Huge pages if available, base pages otherwise (and say why).
    Prefer,
    /// Huge pages or an error saying how to set them up.
    Require,
}

/// How to create a ring: shared by `create`, `send` and `recv`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CreateOptions {
    /// Number of slots, a power of two [default: 128].
    #[arg(long, value_name = "N", value_parser = parse::count)]
    pub slots: Option<u64>,
    /// Bytes per slot including its 16-byte header, a multiple of 64; suffixes K, M
    /// [default: 64K].
    #[arg(long, value_name = "BYTES", value_parser = parse::size)]
    pub slot_size: Option<u64>,
    /// Back the ring with huge pages.
    #[arg(long, value_enum, value_name = "POLICY", default_value = "never")]
    pub huge_pages: HugeArg,
    /// Huge page size to ask for: 2M or 1G [default: the system's].
    #[arg(long, value_name = "SIZE", value_parser = parse::size)]
    pub huge_page_size: Option<u64>,
    /// Permission bits of the segment, in octal [default: 0600].
    #[arg(long, value_name = "OCTAL", value_parser = parse::mode)]
    pub mode: Option<u32>,
    /// Fault every page in at creation.
    #[arg(long)]
    pub populate: bool,
    /// Lock the ring's pages in memory (mlock).
    #[arg(long)]
    pub lock: bool,
    /// Replace an existing ring at the address if it is stale (its creator
    /// and every holder are dead).
    #[arg(long)]
    pub reclaim: bool,
    /// Pad at the end of the ring instead of mapping the slot area twice
    /// (by default messages cross the end as one slice where the slot
    /// area is a whole number of pages).
    #[arg(long)]
    pub no_double_map: bool,
}

impl CreateOptions {
    fn builder(&self) -> RingBuilder {
        let mut b = RingBuilder::new();
        // Given options are created and required of an existing ring;
        // the command line's defaults are only created.
        if let Some(n) = self.slots {
            b.slots(n);
        }
        if let Some(n) = self.slot_size {
            b.slot_size(n);
        }
        b.default_geometry(DEFAULT_SLOTS, DEFAULT_SLOT_SIZE)
            .huge_pages(match self.huge_pages {
                HugeArg::Never => HugePages::Never,
                HugeArg::Prefer => HugePages::Prefer,
                HugeArg::Require => HugePages::Require,
            })
            .mode(self.mode.unwrap_or(0o600))
            .populate(self.populate)
            .lock_memory(self.lock)
            .reclaim_stale(self.reclaim)
            .double_map(!self.no_double_map);
        if let Some(s) = self.huge_page_size {
            b.huge_page_size(s);
        }
        b
    }
}

/// Creates the ring, with hints that are true for this user when the
/// address is taken.
fn create_ring(options: &CreateOptions, address: &Address) -> Result<Ring, Failure> {
    options.builder().create(address).map_err(|e| match e {
        Error::AlreadyExists { .. } => match whose::other_owner(address) {
            Some(owner) => Failure::new(
                exit::IN_USE,
                format!(
                    "ring {address} already exists and belongs to {owner}: only that user \
                     or root can remove it; choose another name"
                ),
            ),
            None => e.into(),
        },
        e => open_failure(e, address),
    })
}

/// The failure for an error opening, claiming or creating a ring, with a
/// permission hint that names the owner.
fn open_failure(e: Error, address: &Address) -> Failure {
    match e {
        Error::GeometryMismatch {
            expected, found, ..
        } => Failure::new(
            exit::IN_USE,
            format!(
                "ring {address} exists with {} slots x {}, not the {} slots x {} asked for: \
                 drop --slots/--slot-size to use it as it is, or remove it first \
                 (`shmpipe rm {address}`)",
                found.slots,
                crate::describe::bytes(found.slot_size),
                expected.slots,
                crate::describe::bytes(expected.slot_size)
            ),
        ),
        Error::PermissionDenied { op, .. } => Failure::new(
            exit::ERROR,
            format!(
                "permission denied to {op} {address}{}: run as its owner, or have the ring \
                 created with a wider --mode (for example 0666)",
                whose::owned_by(address)
            ),
        ),
        e => e.into(),
    }
}

/// Options of `shmpipe create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The ring's address: shm:NAME, file:PATH, sysv:KEY or sysv:PATH:ID.
    #[arg(value_parser = parse::address)]
    pub address: Address,
    #[command(flatten)]
    pub options: CreateOptions,
    /// Print the ring's description as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Whether `send` and `recv` may create the ring.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct CreatePolicy {
    /// Create the ring; fail if it exists (unless --reclaim and it is stale).
    #[arg(long, conflicts_with = "no_create")]
    pub create: bool,
    /// Fail if the ring does not exist, instead of creating it.
    #[arg(long)]
    pub no_create: bool,
}

/// Options of `shmpipe send`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The ring is opened if it exists, created otherwise (with the \
    creation options), so `send` and `recv` can start in either order. Each read from \
    standard input becomes one message of up to a slot's payload less one byte, between a \
    start mark and an end mark that counts the bytes (docs/cli.md, \"Stream framing\"). \
    SIGINT, SIGTERM or SIGHUP close the producer side, remove the ring if this process \
    created it and no live consumer holds it, and end `send` by that signal (exit status \
    130, 143, 129)."
)]
pub struct SendArgs {
    /// The ring's address.
    #[arg(value_parser = parse::address)]
    pub address: Address,
    /// Send each read as it is, without the start and end marks (for a
    /// receiver that is not `shmpipe recv`).
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub policy: CreatePolicy,
    #[command(flatten)]
    pub options: CreateOptions,
}

/// Options of `shmpipe recv`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The ring is opened if it exists, created otherwise, so `send` and \
    `recv` can start in either order. At the end of the stream the ring is removed, \
    unless --keep. recv exits 0 only for a stream it received whole, from its start mark to \
    its end mark; a stream whose end never came exits 8 (after writing what arrived), one \
    whose start an earlier receiver took exits 8 at once, writing nothing, unless --resume. \
    SIGINT, SIGTERM and SIGHUP end recv by that signal (exit status 130, 143, 129), a closed \
    standard output by SIGPIPE (141, silently, as `cat`); before that it closes the \
    consumer side and removes the ring if nothing can use it any more."
)]
pub struct RecvArgs {
    /// The ring's address.
    #[arg(value_parser = parse::address)]
    pub address: Address,
    /// Accept a stream whose start an earlier receiver took: write the rest
    /// and exit 0 at its end mark.
    #[arg(long, conflicts_with = "raw")]
    pub resume: bool,
    /// Write every message as it is, without looking for start and end
    /// marks (for a producer that is not `shmpipe send`); exit 0 when the
    /// producer closes.
    #[arg(long)]
    pub raw: bool,
    /// Give up if no message arrives within this long (500ms, 2s, 1m).
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub timeout: Option<Duration>,
    /// Keep the ring after the end of the stream.
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub policy: CreatePolicy,
    #[command(flatten)]
    pub options: CreateOptions,
}

/// Options of `shmpipe inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The ring's address.
    #[arg(value_parser = parse::address)]
    pub address: Address,
    /// Print JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `shmpipe list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Print JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// Options of `shmpipe rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// The rings' addresses.
    #[arg(required = true, value_parser = parse::address)]
    pub addresses: Vec<Address>,
    /// Remove even while a producer or consumer is alive, or if corrupt
    /// (never a segment that is not a shmpipe ring).
    #[arg(long, short)]
    pub force: bool,
}
