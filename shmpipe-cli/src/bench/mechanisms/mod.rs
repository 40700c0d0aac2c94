//! The mechanisms the benchmark compares, one file per family, and the
//! registry that names them.
//!
//! A family's file holds everything of its mechanisms: what each one is
//! (its [`Entry`] description), how the coordinator creates a case's
//! channel ([`Family::channel`]), and the peer's end of it
//! ([`Family::serve`], an [`Endpoint`](super::endpoint::Endpoint)).
//! Adding a mechanism to a family is a variant of [`Mechanism`] and a line
//! in [`REGISTRY`]; adding a family is its file, a `mod` line and a line
//! in [`FAMILIES`].
//!
//! ```text
//! shmpipe.rs    shmpipe-spin, -spin-park, -park, -huge, -fd, -waitset, -waitset-epoll,
//!               -in-place, -typed, -typed-in-place, -4k, -4k-borrow,
//!               -4k-padded: rings by address
//! fd.rs         pipe, unix-stream, unix-seqpacket, unix-dgram: inherited fds
//! queues.rs     posix-mq, sysv-mq
//! tokio_rt.rs   shmpipe-tokio, tokio-unix: the receiver awaits on tokio
//! call.rs       shmpipe-call-spin, shmpipe-call, unix-stream-call:
//!               request/response (ping-pong only)
//! bare_ring.rs  bare-ring: the reference shmpipe's rows are divided by
//! iceoryx2.rs   iceoryx2-0.10 (feature `peers`)
//! ipmpsc.rs     ipmpsc-0.5 (feature `peers`)
//! ```

use std::any::Any;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::config::RingShape;
use super::endpoint::PeerError;
use super::limits::Limits;
use super::protocol::{PeerSpec, Workload};

mod bare_ring;
mod call;
mod fd;
#[cfg(feature = "peers")]
mod iceoryx2;
#[cfg(feature = "peers")]
mod ipmpsc;
mod queues;
mod shmpipe;
mod tokio_rt;

/// A way to move messages between two processes: one row family of the
/// table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    BareRing,
    ShmpipeSpin,
    ShmpipeSpinPark,
    ShmpipePark,
    ShmpipeHuge,
    ShmpipeFd,
    ShmpipeWaitset,
    ShmpipeWaitsetEpoll,
    ShmpipeInPlace,
    ShmpipeTyped,
    ShmpipeTypedInPlace,
    ShmpipeAligned,
    ShmpipeAlignedInPlace,
    Shmpipe4k,
    Shmpipe4kBorrow,
    Shmpipe4kPadded,
    ShmpipeTokio,
    Pipe,
    UnixStream,
    UnixSeqpacket,
    UnixDgram,
    PosixMq,
    SysvMq,
    TokioUnix,
    ShmpipeCallSpin,
    ShmpipeCall,
    UnixStreamCall,
    #[cfg(feature = "peers")]
    Iceoryx2,
    #[cfg(feature = "peers")]
    Ipmpsc,
}

/// What a row is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// The bare ring, measured whenever throughput or ping-pong is.
    Reference,
    /// One of shmpipe's variants: compared with the bare ring and the
    /// floors.
    Shmpipe,
    /// Another mechanism: shmpipe's gain over it is shown.
    Other,
}

/// A mechanism's registry line.
pub struct Entry {
    pub mechanism: Mechanism,
    /// The name on the command line, in the table and in the JSON.
    pub name: &'static str,
    /// What the producer and the consumer call (`--help`, the report).
    pub about: &'static str,
    pub family: &'static dyn Family,
    pub group: Group,
    /// Run when `--mechanisms` is not given.
    pub default: bool,
}

/// Every mechanism, in table order.
pub const REGISTRY: &[Entry] = &[
    bare_ring::BARE_RING,
    shmpipe::SPIN,
    shmpipe::SPIN_PARK,
    shmpipe::PARK,
    shmpipe::HUGE,
    shmpipe::FD,
    shmpipe::WAITSET,
    shmpipe::WAITSET_EPOLL,
    shmpipe::IN_PLACE,
    shmpipe::TYPED,
    shmpipe::TYPED_IN_PLACE,
    shmpipe::ALIGNED,
    shmpipe::ALIGNED_IN_PLACE,
    shmpipe::SLOTS_4K,
    shmpipe::SLOTS_4K_BORROW,
    shmpipe::SLOTS_4K_PADDED,
    tokio_rt::SHMPIPE_TOKIO,
    fd::PIPE,
    fd::UNIX_STREAM,
    fd::UNIX_SEQPACKET,
    fd::UNIX_DGRAM,
    queues::POSIX_MQ,
    queues::SYSV_MQ,
    tokio_rt::TOKIO_UNIX,
    call::SHMPIPE_CALL_SPIN,
    call::SHMPIPE_CALL,
    call::UNIX_STREAM_CALL,
    #[cfg(feature = "peers")]
    iceoryx2::ICEORYX2,
    #[cfg(feature = "peers")]
    ipmpsc::IPMPSC,
];

/// Every family, for the peer to find the one its link names.
const FAMILIES: &[&dyn Family] = &[
    &shmpipe::Shmpipe,
    &fd::Fds,
    &queues::Queues,
    &bare_ring::BareRings,
    &tokio_rt::Tokio,
    &call::Calls,
    #[cfg(feature = "peers")]
    &iceoryx2::Iceoryx2,
    #[cfg(feature = "peers")]
    &ipmpsc::Ipmpsc,
];

/// Every mechanism, in registry order.
const ALL: [Mechanism; REGISTRY.len()] = {
    let mut all = [Mechanism::Pipe; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        all[i] = REGISTRY[i].mechanism;
        i += 1;
    }
    all
};

impl Mechanism {
    /// Every mechanism, in table order.
    pub fn all() -> &'static [Mechanism] {
        &ALL
    }

    /// The mechanisms run when none are named.
    pub fn defaults() -> Vec<Mechanism> {
        REGISTRY
            .iter()
            .filter(|e| e.default)
            .map(|e| e.mechanism)
            .collect()
    }

    /// Its registry line.
    pub fn entry(self) -> &'static Entry {
        // Every variant has a line: `registry_is_complete` checks it.
        REGISTRY
            .iter()
            .find(|e| e.mechanism == self)
            .unwrap_or(&REGISTRY[0])
    }

    /// The name used on the command line, in the table and in the JSON.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// Whether this is one of the shmpipe variants.
    pub fn is_shmpipe(self) -> bool {
        self.entry().group == Group::Shmpipe
    }

    pub fn family(self) -> &'static dyn Family {
        self.entry().family
    }
}

impl clap::ValueEnum for Mechanism {
    fn value_variants<'a>() -> &'a [Self] {
        &ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let e = self.entry();
        Some(clap::builder::PossibleValue::new(e.name).help(e.about))
    }
}

/// What the coordinator lends a family to set up a case.
pub struct Setup<'a> {
    /// The coordinator's pid: names every ring and queue of the run.
    pub run_id: u32,
    pub limits: &'a mut Limits,
    next_name: &'a mut u32,
}

impl<'a> Setup<'a> {
    pub fn new(run_id: u32, limits: &'a mut Limits, next_name: &'a mut u32) -> Setup<'a> {
        Setup {
            run_id,
            limits,
            next_name,
        }
    }

    /// A fresh name of this run: `shmpipe-bench-PID-N`.
    pub fn name(&mut self) -> String {
        *self.next_name += 1;
        format!("shmpipe-bench-{}-{}", self.run_id, self.next_name)
    }
}

/// A case's channel: what each peer opens (a link, as JSON with a `kind`
/// naming its family), the descriptors each inherits, and the resources
/// behind them, released when this is dropped, after the peers have
/// exited.
#[derive(Default)]
pub struct Channel {
    pub consumer: Option<Value>,
    pub producer: Option<Value>,
    pub pass_consumer: Vec<RawFd>,
    pub pass_producer: Vec<RawFd>,
    /// The ring's shape and page size (shmpipe rows).
    pub shape: Option<(RingShape, u64)>,
    pub notes: Vec<String>,
    held: Vec<Box<dyn Any>>,
}

impl Channel {
    /// Keeps `fd` open for the case; returns its number.
    pub fn keep(&mut self, fd: OwnedFd) -> RawFd {
        let n = fd.as_raw_fd();
        self.held.push(Box::new(fd));
        n
    }

    /// Keeps `guard` (a name's remover) until the case ends.
    pub fn hold<T: 'static>(&mut self, guard: T) {
        self.held.push(Box::new(guard));
    }

    /// Sets both peers' links, tagged with `kind`.
    pub fn links<L: Serialize>(&mut self, kind: &str, producer: &L, consumer: &L) {
        self.producer = Some(link(kind, producer));
        self.consumer = Some(link(kind, consumer));
    }
}

/// `l` as a JSON object with `"kind": kind` added.
fn link<L: Serialize>(kind: &str, l: &L) -> Value {
    let mut v = serde_json::to_value(l).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("kind".to_owned(), Value::String(kind.to_owned()));
    }
    v
}

/// Reads a family's link back from the spec's JSON.
pub fn parse_link<L: DeserializeOwned>(link: &Value) -> Result<L, PeerError> {
    L::deserialize(link).map_err(|e| PeerError(format!("bad link (this command is internal): {e}")))
}

/// A family of mechanisms: its channels and its endpoints.
pub trait Family: Sync {
    /// The `kind` of this family's links.
    fn kind(&self) -> &'static str;

    /// Why `m` cannot run at all on this machine, checked once before the
    /// run: every one of its rows then says so.
    fn unavailable(&self, _m: Mechanism, _setup: &mut Setup<'_>) -> Option<String> {
        None
    }

    /// Creates the channel of one case: one way, or both ways for
    /// ping-pong, for `size`-byte messages.
    fn channel(
        &self,
        m: Mechanism,
        setup: &mut Setup<'_>,
        two_way: bool,
        size: usize,
    ) -> Result<Channel, String>;

    /// Whether the sender can see the receiver asleep (and so the wake-up
    /// workload waits for it).
    fn reports_parked(&self, _m: Mechanism) -> bool {
        false
    }

    /// Remarks that come with `m`'s row of workload `w`.
    fn notes(&self, _m: Mechanism, _w: Workload) -> Vec<String> {
        Vec::new()
    }

    /// At the end of the run, however it ends: removes what the peers of
    /// run `run_id` may have left that no case's guard owns.
    fn clean_up(&self, _run_id: u32) {}

    /// In the peer process: opens the end `spec.link` describes and runs
    /// the job on it (through [`jobs::serve`](super::jobs::serve)).
    fn serve(&self, spec: &PeerSpec) -> Result<(), PeerError>;
}

/// In the peer process: the family whose links have `kind`.
pub fn family_of(kind: &str) -> Option<&'static dyn Family> {
    FAMILIES.iter().copied().find(|f| f.kind() == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_complete() {
        use clap::ValueEnum;
        let mut names = std::collections::BTreeSet::new();
        for (i, e) in REGISTRY.iter().enumerate() {
            assert_eq!(e.mechanism.entry().name, e.name, "{:?} twice", e.mechanism);
            assert!(names.insert(e.name), "name {} twice", e.name);
            assert_eq!(e.mechanism.to_possible_value().unwrap().get_name(), e.name);
            assert!(family_of(e.family.kind()).is_some(), "{}", e.name);
            assert_eq!(ALL[i], e.mechanism);
        }
        assert!(!Mechanism::defaults().contains(&Mechanism::UnixDgram));
    }

    #[test]
    fn links_carry_their_kind() {
        #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
        struct L {
            tx: Option<i32>,
        }
        let v = link("fd", &L { tx: Some(3) });
        assert_eq!(v["kind"], "fd");
        assert_eq!(parse_link::<L>(&v).unwrap(), L { tx: Some(3) });
    }
}
