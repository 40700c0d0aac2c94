//! shmpipe itself: `Producer::send` (a copy into the slot) and
//! `Consumer::recv` (a copy out of it) over `shm:` rings the coordinator
//! creates (pre-faulted, removed on drop), in six variants: three ways of
//! blocking, the default one on huge pages, and two event-loop ways of
//! waiting (`shmpipe-fd`: `arm` and `poll(2)` on the readiness
//! descriptor, then `try_recv`; `shmpipe-waitset`: the ring is one of
//! [`WAITSET_RINGS`] in a `WaitSet`, the others idle, without producers,
//! the set sleeping in `futex_waitv`; `shmpipe-waitset-epoll`: the same set
//! made with `WaitSet::with_epoll`, sleeping in `epoll_wait`).
//!
//! Three more, spinning like `shmpipe-spin` and compared with it, call
//! other parts of the API ([`Api`]): `shmpipe-in-place` writes and reads
//! the bytes in the slot (`reserve`/`commit`, `borrow`);
//! `shmpipe-typed` sends and receives a 64-byte `#[repr(C, align(64))]`
//! struct as a copy (`TypedProducer::send`, `TypedConsumer::recv`: the
//! `send_value`/`recv_value` path), and `shmpipe-typed-in-place` in place
//! (`TypedProducer::reserve`, `TypedConsumer::borrow`: the
//! `reserve_value`/`borrow_value` path). The typed rows carry only that
//! struct: other message sizes say so.
//! Three more run messages larger than a slot over a ring of 4 KiB slots
//! ([`SLOTS_4K`], 4 MiB in all) whatever the message size: `shmpipe-4k`
//! (`send`, `recv`: copies), `shmpipe-4k-borrow` (`send`, then `borrow`
//! in place: the consumer reads the sequence number and the last byte
//! where they lie, copying nothing) and `shmpipe-4k-padded` (as
//! `shmpipe-4k` on a ring that pads at the wrap instead of mapping its
//! slot area twice).

use std::marker::PhantomData;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use shmpipe::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use shmpipe::{
    Consumer, HugePages, Producer, Ring, RingBuilder, Token, TryRecvError, TypedConsumer,
    TypedProducer, WaitSet, WaitStrategy,
};

use super::{parse_link, Channel, Entry, Family, Group, Mechanism, Setup};
use crate::bench::config::{ring_shape, RingShape};
use crate::bench::endpoint::{get_u64, not_open, out_buffer, put_u64, Endpoint, PeerError, FILL};
use crate::bench::jobs;
use crate::bench::protocol::{PeerSpec, Workload, LATENCY_MSG};
use crate::bench::MIN_MSG;

/// The members of `shmpipe-waitset`'s set: the ring carrying the traffic
/// and `WAITSET_RINGS - 1` idle rings no producer ever opens.
pub const WAITSET_RINGS: usize = 64;

pub const SPIN: Entry = Entry {
    mechanism: Mechanism::ShmpipeSpin,
    name: "shmpipe-spin",
    about: "shmpipe, both sides busy-spinning (WaitStrategy::Spin)",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: true,
};
pub const SPIN_PARK: Entry = Entry {
    mechanism: Mechanism::ShmpipeSpinPark,
    name: "shmpipe-spin-park",
    about: "shmpipe's default: spin for 50 µs, then sleep on a futex",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: true,
};
pub const PARK: Entry = Entry {
    mechanism: Mechanism::ShmpipePark,
    name: "shmpipe-park",
    about: "shmpipe, sleeping on the futex at once (WaitStrategy::Park)",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: true,
};
pub const HUGE: Entry = Entry {
    mechanism: Mechanism::ShmpipeHuge,
    name: "shmpipe-huge",
    about: "shmpipe (default waiting) on a ring of huge pages (HugePages::Require)",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: true,
};

pub const FD: Entry = Entry {
    mechanism: Mechanism::ShmpipeFd,
    name: "shmpipe-fd",
    about: "shmpipe, the consumer in an event loop: arm(), poll(2) on readiness_fd(), try_recv",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};
pub const WAITSET: Entry = Entry {
    mechanism: Mechanism::ShmpipeWaitset,
    name: "shmpipe-waitset",
    about: "shmpipe, the consumer's ring one of 64 in a WaitSet (63 idle): wait (futex_waitv), try_recv",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};
pub const WAITSET_EPOLL: Entry = Entry {
    mechanism: Mechanism::ShmpipeWaitsetEpoll,
    name: "shmpipe-waitset-epoll",
    about: "shmpipe-waitset with the set made by WaitSet::with_epoll: wait (epoll_wait), try_recv",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};

pub const IN_PLACE: Entry = Entry {
    mechanism: Mechanism::ShmpipeInPlace,
    name: "shmpipe-in-place",
    about: "shmpipe-spin writing and reading in the slot: reserve/commit, borrow",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};
pub const SLOTS_4K: Entry = Entry {
    mechanism: Mechanism::Shmpipe4k,
    name: "shmpipe-4k",
    about: "shmpipe on 1024 slots of 4 KiB whatever the size (large messages span slots): \
            send / recv, copies",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};
pub const TYPED: Entry = Entry {
    mechanism: Mechanism::ShmpipeTyped,
    name: "shmpipe-typed",
    about: "shmpipe-spin with a 64-byte align(64) struct copied: TypedProducer::send, \
            TypedConsumer::recv (64-byte messages only)",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};
pub const SLOTS_4K_BORROW: Entry = Entry {
    mechanism: Mechanism::Shmpipe4kBorrow,
    name: "shmpipe-4k-borrow",
    about: "shmpipe on 1024 slots of 4 KiB: send / borrow in place (zero-copy: the consumer \
            reads the sequence number and the last byte where they lie)",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};
pub const TYPED_IN_PLACE: Entry = Entry {
    mechanism: Mechanism::ShmpipeTypedInPlace,
    name: "shmpipe-typed-in-place",
    about: "shmpipe-spin with a 64-byte align(64) struct in place: TypedProducer::reserve, \
            TypedConsumer::borrow (64-byte messages only)",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};
pub const ALIGNED: Entry = Entry {
    mechanism: Mechanism::ShmpipeAligned,
    name: "shmpipe-aligned",
    about: "shmpipe-spin's send / recv of 64 raw bytes on shmpipe-typed's ring (payloads aligned \
            to 64): the raw twin shmpipe-typed is compared with (64-byte messages only)",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};
pub const ALIGNED_IN_PLACE: Entry = Entry {
    mechanism: Mechanism::ShmpipeAlignedInPlace,
    name: "shmpipe-aligned-in-place",
    about: "shmpipe-in-place's reserve / borrow of 64 raw bytes on shmpipe-typed's ring: the raw \
            twin shmpipe-typed-in-place is compared with (64-byte messages only)",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};
pub const SLOTS_4K_PADDED: Entry = Entry {
    mechanism: Mechanism::Shmpipe4kPadded,
    name: "shmpipe-4k-padded",
    about: "as shmpipe-4k on a ring that pads at the wrap (RingBuilder::double_map(false))",
    family: &Shmpipe,
    group: Group::Shmpipe,
    default: false,
};

/// The typed rows' message: one cache line, its number first (where every
/// message of the benchmark carries it).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy)]
#[zerocopy(crate = "shmpipe::zerocopy")]
#[repr(C, align(64))]
pub struct Msg64 {
    pub seq: u64,
    pub body: [u8; 56],
}

/// Which calls a shmpipe peer makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// `Producer::send`, `Consumer::recv`: a copy each way.
    #[default]
    Copy,
    /// `reserve`/`commit`, `borrow`: the bytes in the slot.
    InPlace,
    /// `TypedProducer::send`, `TypedConsumer::recv` of a [`Msg64`].
    Typed,
    /// `TypedProducer::reserve`, `TypedConsumer::borrow` of a [`Msg64`].
    TypedInPlace,
    /// `Producer::send`, then `Consumer::borrow` reading only the sequence
    /// number and the last byte in place (`shmpipe-4k-borrow`).
    Borrow,
}

impl Api {
    fn of(m: Mechanism) -> Api {
        match m {
            Mechanism::ShmpipeInPlace | Mechanism::ShmpipeAlignedInPlace => Api::InPlace,
            Mechanism::ShmpipeTyped => Api::Typed,
            Mechanism::ShmpipeTypedInPlace => Api::TypedInPlace,
            Mechanism::Shmpipe4kBorrow => Api::Borrow,
            _ => Api::Copy,
        }
    }

    fn typed(self) -> bool {
        matches!(self, Api::Typed | Api::TypedInPlace)
    }
}

/// Whether a row runs on the typed rows' ring (`message_type::<Msg64>()`:
/// 64-byte payloads aligned to 64), through typed calls or, for their raw
/// twins, the byte calls.
fn typed_ring(m: Mechanism) -> bool {
    Api::of(m).typed()
        || matches!(
            m,
            Mechanism::ShmpipeAligned | Mechanism::ShmpipeAlignedInPlace
        )
}

/// The ring of the `shmpipe-4k*` rows: 1024 slots of 4 KiB (4 MiB), so
/// that a 1 MiB message takes 257 slots and the ring holds three.
pub const SLOTS_4K_SHAPE: RingShape = RingShape {
    slots: 1024,
    slot_size: 4096,
};

fn is_4k(m: Mechanism) -> bool {
    matches!(
        m,
        Mechanism::Shmpipe4k | Mechanism::Shmpipe4kBorrow | Mechanism::Shmpipe4kPadded
    )
}

/// How a shmpipe peer's blocking calls wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitMode {
    /// `WaitStrategy::Spin`.
    Spin,
    /// `WaitStrategy::DEFAULT`.
    SpinPark,
    /// `WaitStrategy::Park`.
    Park,
    /// Receives: `arm`, `poll(2)` on the readiness descriptor, `try_recv`
    /// (sends: `WaitStrategy::Park`).
    Fd,
    /// Receives: `WaitSet::wait`, `try_recv` (sends: `WaitStrategy::Park`).
    WaitSet,
    /// As `WaitSet`, the set made with `WaitSet::with_epoll`.
    WaitSetEpoll,
}

impl WaitMode {
    fn of(m: Mechanism) -> WaitMode {
        match m {
            Mechanism::ShmpipeSpin
            | Mechanism::ShmpipeInPlace
            | Mechanism::ShmpipeTyped
            | Mechanism::ShmpipeTypedInPlace
            | Mechanism::ShmpipeAligned
            | Mechanism::ShmpipeAlignedInPlace => WaitMode::Spin,
            Mechanism::ShmpipePark => WaitMode::Park,
            Mechanism::ShmpipeFd => WaitMode::Fd,
            Mechanism::ShmpipeWaitset => WaitMode::WaitSet,
            Mechanism::ShmpipeWaitsetEpoll => WaitMode::WaitSetEpoll,
            _ => WaitMode::SpinPark,
        }
    }
}

/// A peer's rings, by address: the one it sends on, the one it receives
/// from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingLink {
    pub tx: Option<String>,
    pub rx: Option<String>,
    pub wait: WaitMode,
    /// `shmpipe-waitset`'s idle rings, joined to the receiving end's set.
    #[serde(default)]
    pub idle: Vec<String>,
    /// The calls it makes.
    #[serde(default)]
    pub api: Api,
}

/// The shmpipe family.
pub struct Shmpipe;

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

/// Creates a shm ring for a case and holds it in `ch`; returns its
/// address.
fn ring(
    setup: &mut Setup<'_>,
    ch: &mut Channel,
    g: RingShape,
    huge: bool,
    typed: bool,
    double_map: bool,
) -> Result<String, String> {
    let addr = format!("shm:{}", setup.name());
    // Guard first, so that even a half-made ring is removed.
    let mut guard = RingGuard {
        ring: None,
        addr: addr.clone(),
    };
    let mut b = RingBuilder::new();
    if typed {
        // Before the geometry, which then overrides the slot size it sets.
        b.message_type::<Msg64>();
    }
    b.slots(g.slots)
        .slot_size(g.slot_size)
        .populate(true)
        .double_map(double_map)
        .unlink_on_drop(true);
    if huge {
        b.huge_pages(HugePages::Require);
    }
    let ring = b.create(addr.as_str()).map_err(|e| e.to_string())?;
    let page = ring.info().page_size;
    if huge && page <= 4096 {
        return Err(format!(
            "huge pages not obtained: the ring got {page}-byte pages"
        ));
    }
    ch.shape = Some((g, page));
    guard.ring = Some(ring);
    ch.hold(guard);
    Ok(addr)
}

impl Family for Shmpipe {
    fn kind(&self) -> &'static str {
        "ring"
    }

    fn unavailable(&self, m: Mechanism, setup: &mut Setup<'_>) -> Option<String> {
        if m != Mechanism::ShmpipeHuge {
            return None;
        }
        let addr = format!("shm:{}", setup.name());
        let g = ring_shape(LATENCY_MSG);
        let _guard = RingGuard {
            ring: None,
            addr: addr.clone(),
        };
        let made = RingBuilder::new()
            .slots(g.slots)
            .slot_size(g.slot_size)
            .huge_pages(HugePages::Require)
            .unlink_on_drop(true)
            .create(addr.as_str());
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

    fn channel(
        &self,
        m: Mechanism,
        setup: &mut Setup<'_>,
        two_way: bool,
        size: usize,
    ) -> Result<Channel, String> {
        let mut ch = Channel::default();
        let wait = WaitMode::of(m);
        let api = Api::of(m);
        let typed = typed_ring(m);
        if typed && size != size_of::<Msg64>() {
            return Err(format!(
                "the typed rows and their twins carry one {}-byte struct, not {size}-byte \
                 messages",
                size_of::<Msg64>()
            ));
        }
        let huge = m == Mechanism::ShmpipeHuge;
        let double_map = m != Mechanism::Shmpipe4kPadded;
        let g = if is_4k(m) {
            let holds = SLOTS_4K_SHAPE.slots * SLOTS_4K_SHAPE.slot_size - 16;
            if size as u64 > holds {
                return Err(format!(
                    "{size}-byte messages do not fit the {holds} bytes a ring of 1024 x 4 KiB \
                     slots holds"
                ));
            }
            SLOTS_4K_SHAPE
        } else {
            ring_shape(size)
        };
        let a = ring(setup, &mut ch, g, huge, typed, double_map)?;
        let b = if two_way {
            Some(ring(setup, &mut ch, g, huge, typed, double_map)?)
        } else {
            None
        };
        // The idle members of the consumer's set: small rings, never
        // written (the producer's set, in ping-pong, has its ring alone).
        let mut idle = Vec::new();
        if matches!(wait, WaitMode::WaitSet | WaitMode::WaitSetEpoll) {
            for _ in 1..WAITSET_RINGS {
                idle.push(ring(
                    setup,
                    &mut ch,
                    ring_shape(MIN_MSG),
                    false,
                    false,
                    true,
                )?);
            }
            ch.shape = Some((g, ch.shape.map_or(4096, |s| s.1)));
        }
        let producer = RingLink {
            tx: Some(a.clone()),
            rx: b.clone(),
            wait,
            idle: Vec::new(),
            api,
        };
        let consumer = RingLink {
            tx: b,
            rx: Some(a),
            wait,
            idle,
            api,
        };
        ch.links(self.kind(), &producer, &consumer);
        Ok(ch)
    }

    fn reports_parked(&self, m: Mechanism) -> bool {
        WaitMode::of(m) != WaitMode::Spin
    }

    fn notes(&self, m: Mechanism, w: Workload) -> Vec<String> {
        if is_4k(m) {
            return vec![
                "1024 slots of 4 KiB (4 MiB): a message over 4080 B spans slots".to_owned(),
            ];
        }
        if WaitMode::of(m) != WaitMode::Spin {
            return Vec::new();
        }
        match w {
            Workload::Wakeup => vec![
                "busy-spin never sleeps: this is how soon a spinning consumer sees a message"
                    .to_owned(),
            ],
            Workload::IdleCpu => {
                vec!["busy-spin keeps a core busy while idle, by design".to_owned()]
            }
            _ => Vec::new(),
        }
    }

    fn serve(&self, spec: &PeerSpec) -> Result<(), PeerError> {
        let l: RingLink = parse_link(&spec.link)?;
        let size = spec.msg_size;
        match (l.api, RecvLoop::of(l.wait)) {
            (Api::Copy, RecvLoop::Fd) => jobs::serve(RingEnd::<FdCalls>::open(&l, size), spec),
            (Api::Copy, RecvLoop::WaitSet) => {
                jobs::serve(RingEnd::<WaitSetCalls>::open(&l, size), spec)
            }
            (Api::Copy, RecvLoop::Blocking) => {
                jobs::serve(RingEnd::<CopyCalls>::open(&l, size), spec)
            }
            (Api::InPlace, _) => jobs::serve(RingEnd::<InPlaceCalls>::open(&l, size), spec),
            (Api::Typed, _) => jobs::serve(RingEnd::<TypedCalls>::open(&l, size), spec),
            (Api::TypedInPlace, _) => {
                jobs::serve(RingEnd::<TypedInPlaceCalls>::open(&l, size), spec)
            }
            (Api::Borrow, _) => jobs::serve(RingEnd::<BorrowCalls>::open(&l, size), spec),
        }
    }
}

/// The calls a peer makes ([`Api`]) and how its receives wait, as a type:
/// [`RingEnd`] is generic over it, so that both are settled once, when the
/// peer starts, and the measured loop is the library's calls with nothing
/// chosen per message. (Chosen per message, from fields, the choice cost
/// `shmpipe-spin` a tenth to a fifth of its 64-byte throughput:
/// `docs/benchmarks.md`, "What the benchmark's own dispatch cost; the fast path
/// inlined".)
pub trait Calls {
    const API: Api;
    const RECV: RecvLoop;
}

/// How a [`RingEnd`] waits for a message to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvLoop {
    /// In the blocking call itself (`recv`, `borrow`), as its
    /// `WaitStrategy` says.
    Blocking,
    /// `try_recv`, then `arm` and `poll(2)` on the readiness descriptor
    /// ([`WaitMode::Fd`]).
    Fd,
    /// `try_recv`, then `WaitSet::wait` ([`WaitMode::WaitSet`],
    /// [`WaitMode::WaitSetEpoll`]).
    WaitSet,
}

impl RecvLoop {
    fn of(wait: WaitMode) -> RecvLoop {
        match wait {
            WaitMode::Fd => RecvLoop::Fd,
            WaitMode::WaitSet | WaitMode::WaitSetEpoll => RecvLoop::WaitSet,
            WaitMode::Spin | WaitMode::SpinPark | WaitMode::Park => RecvLoop::Blocking,
        }
    }
}

macro_rules! calls {
    ($($name:ident => $api:ident, $recv:ident;)*) => {$(
        #[doc = concat!(
            "[`Api::", stringify!($api), "`], [`RecvLoop::", stringify!($recv), "`]."
        )]
        pub struct $name;

        impl Calls for $name {
            const API: Api = Api::$api;
            const RECV: RecvLoop = RecvLoop::$recv;
        }
    )*};
}

calls!(
    CopyCalls => Copy, Blocking;
    FdCalls => Copy, Fd;
    WaitSetCalls => Copy, WaitSet;
    InPlaceCalls => InPlace, Blocking;
    TypedCalls => Typed, Blocking;
    TypedInPlaceCalls => TypedInPlace, Blocking;
    BorrowCalls => Borrow, Blocking;
);

/// shmpipe rings opened by name: `Producer::send` and `Consumer::recv`,
/// or the calls its [`Api`] (`C`) names.
pub struct RingEnd<C: Calls> {
    /// The ring sent on, kept for `info()` (is the consumer parked?).
    tx_ring: Option<Ring>,
    tx: Option<Producer>,
    rx: Option<Consumer>,
    /// The typed rows' handles (then `tx` and `rx` are `None`).
    ttx: Option<TypedProducer<Msg64>>,
    trx: Option<TypedConsumer<Msg64>>,
    /// `shmpipe-waitset`: the set holding `rx` (then `None`) and the idle
    /// rings, and `rx`'s token in it.
    set: Option<(WaitSet, Token)>,
    ready: Vec<Token>,
    calls: PhantomData<C>,
    out: Vec<u8>,
    inb: Vec<u8>,
    /// The typed rows' `out` and `inb`.
    msg_out: Msg64,
    msg_in: Msg64,
}

impl<C: Calls> RingEnd<C> {
    pub fn open(link: &RingLink, size: usize) -> Result<RingEnd<C>, PeerError> {
        let (tx_addr, rx_addr) = (link.tx.as_deref(), link.rx.as_deref());
        let (wait, api) = (link.wait, C::API);
        if link.api != api || RecvLoop::of(wait) != C::RECV {
            return Err(PeerError(format!(
                "a peer making the {api:?} calls and receiving {:?} was given a link for {:?}, \
                 {wait:?}",
                C::RECV,
                link.api
            )));
        }
        let strategy = match wait {
            WaitMode::Spin => WaitStrategy::Spin,
            WaitMode::SpinPark => WaitStrategy::DEFAULT,
            WaitMode::Park | WaitMode::Fd | WaitMode::WaitSet | WaitMode::WaitSetEpoll => {
                WaitStrategy::Park
            }
        };
        let check = |max: usize| {
            if max < size {
                Err(PeerError(format!(
                    "the ring carries at most {max}-byte messages, not {size}"
                )))
            } else {
                Ok(())
            }
        };
        if api.typed() && size != size_of::<Msg64>() {
            return Err(PeerError(format!(
                "the typed rows carry {}-byte messages, not {size}",
                size_of::<Msg64>()
            )));
        }
        let (mut tx_ring, mut tx, mut ttx) = (None, None, None);
        if let Some(addr) = tx_addr {
            let ring = Ring::open(addr)?;
            if api.typed() {
                let mut p = ring.typed_producer::<Msg64>()?;
                p.untyped_mut().set_wait_strategy(strategy);
                ttx = Some(p);
            } else {
                let mut p = ring.producer()?;
                p.set_wait_strategy(strategy);
                check(p.message_limit())?;
                tx = Some(p);
            }
            tx_ring = Some(ring);
        }
        let (mut rx, mut trx) = (None, None);
        if let Some(addr) = rx_addr {
            let ring = Ring::open(addr)?;
            if api.typed() {
                let mut c = ring.typed_consumer::<Msg64>()?;
                c.untyped_mut().set_wait_strategy(strategy);
                trx = Some(c);
            } else {
                let mut c = ring.consumer()?;
                c.set_wait_strategy(strategy);
                check(c.message_limit())?;
                rx = Some(c);
            }
        }
        let (rx, set) = match (rx, wait) {
            (Some(c), WaitMode::WaitSet | WaitMode::WaitSetEpoll) => {
                let mut set = if wait == WaitMode::WaitSet {
                    WaitSet::new()?
                } else {
                    WaitSet::with_epoll()?
                };
                let token = set.add_consumer(c)?;
                for addr in &link.idle {
                    set.add_consumer(Ring::open(addr.as_str())?.consumer()?)?;
                }
                (None, Some((set, token)))
            }
            (rx, _) => (rx, None),
        };
        let msg = Msg64 {
            seq: 0,
            body: [FILL; 56],
        };
        Ok(RingEnd {
            tx_ring,
            tx,
            rx,
            ttx,
            trx,
            set,
            ready: Vec::new(),
            calls: PhantomData,
            out: out_buffer(size),
            inb: vec![0; size],
            msg_out: msg,
            msg_in: msg,
        })
    }

    /// `shmpipe-waitset`: `try_recv`, then `WaitSet::wait` until the ring
    /// is ready.
    fn recv_in_set(&mut self) -> Result<&[u8], PeerError> {
        let (set, token) = self.set.as_mut().ok_or_else(|| not_open("receiving"))?;
        let token = *token;
        loop {
            let rx = set.consumer(token).ok_or_else(|| not_open("receiving"))?;
            match rx.try_recv(&mut self.inb) {
                Ok(n) => return Ok(&self.inb[..n]),
                Err(TryRecvError::Empty) => {}
                Err(e) => return Err(PeerError::new(e)),
            }
            set.wait(None, &mut self.ready)?;
        }
    }

    /// `shmpipe-fd`: `try_recv`, then `arm` and `poll(2)` on the readiness
    /// descriptor.
    fn recv_polling(&mut self) -> Result<&[u8], PeerError> {
        let rx = self.rx.as_mut().ok_or_else(|| not_open("receiving"))?;
        loop {
            match rx.try_recv(&mut self.inb) {
                Ok(n) => return Ok(&self.inb[..n]),
                Err(TryRecvError::Empty) => {}
                Err(e) => return Err(PeerError::new(e)),
            }
            if rx.arm()? {
                let fd = rx.readiness_fd()?;
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                match poll(&mut fds, None) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

// The four message calls are `#[inline(always)]`: left to the compiler,
// `send` and `send_seq` (the library's fast path, its wait loop and the
// error conversions) were called out of line, a stack frame and six
// register saves per message that the bare ring's `send` (inlined) does
// not pay; on an AMD EPYC host 8-byte messages streamed at 0.55x to 0.65x
// the bare ring that way and at 0.93x to 1.17x inlined
// (docs/benchmarks.md, "An AMD host").
impl<C: Calls> Endpoint for RingEnd<C> {
    fn out(&mut self) -> &mut [u8] {
        if C::API.typed() {
            return self.msg_out.as_mut_bytes();
        }
        &mut self.out
    }

    #[inline(always)]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        match C::API {
            Api::Typed => {
                let tx = self.ttx.as_mut().ok_or_else(|| not_open("sending"))?;
                Ok(tx.send(&self.msg_out)?)
            }
            Api::TypedInPlace => {
                let tx = self.ttx.as_mut().ok_or_else(|| not_open("sending"))?;
                let mut slot = tx.reserve()?;
                *slot = self.msg_out;
                slot.commit();
                Ok(())
            }
            Api::InPlace => {
                let tx = self.tx.as_mut().ok_or_else(|| not_open("sending"))?;
                let mut slot = tx.reserve()?;
                slot[..len].copy_from_slice(&self.out[..len]);
                slot.commit(len);
                Ok(())
            }
            Api::Copy | Api::Borrow => {
                let tx = self.tx.as_mut().ok_or_else(|| not_open("sending"))?;
                tx.send(&self.out[..len]).map_err(|e| e.map(drop).into())
            }
        }
    }

    #[inline(always)]
    fn send_seq(&mut self, seq: u64, len: usize) -> Result<(), PeerError> {
        match C::API {
            Api::InPlace => {
                let tx = self.tx.as_mut().ok_or_else(|| not_open("sending"))?;
                let mut slot = tx.reserve()?;
                put_u64(&mut slot, 0, seq);
                slot.commit(len);
                Ok(())
            }
            Api::TypedInPlace => {
                let tx = self.ttx.as_mut().ok_or_else(|| not_open("sending"))?;
                let mut slot = tx.reserve()?;
                slot.seq = seq;
                slot.commit();
                Ok(())
            }
            Api::Copy | Api::Typed | Api::Borrow => {
                put_u64(self.out(), 0, seq);
                self.send(len)
            }
        }
    }

    #[inline(always)]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        match (C::API, C::RECV) {
            (Api::Typed | Api::TypedInPlace, _) => {
                let rx = self.trx.as_mut().ok_or_else(|| not_open("receiving"))?;
                self.msg_in = match C::API {
                    Api::TypedInPlace => *rx.borrow()?,
                    _ => rx.recv()?,
                };
                Ok(self.msg_in.as_bytes())
            }
            (_, RecvLoop::WaitSet) => self.recv_in_set(),
            (_, RecvLoop::Fd) => self.recv_polling(),
            (Api::InPlace, RecvLoop::Blocking) => {
                let rx = self.rx.as_mut().ok_or_else(|| not_open("receiving"))?;
                let msg = rx.borrow()?;
                let n = msg.len().min(self.inb.len());
                self.inb[..n].copy_from_slice(&msg[..n]);
                Ok(&self.inb[..n])
            }
            (Api::Borrow, RecvLoop::Blocking) => {
                // Zero-copy: the job needs the sequence number and the
                // length; read them (and the last byte, the far end of the
                // slice) in place and copy nothing else.
                let rx = self.rx.as_mut().ok_or_else(|| not_open("receiving"))?;
                let msg = rx.borrow()?;
                let n = msg.len();
                let dst = self.inb.get_mut(..n).ok_or_else(|| {
                    PeerError(format!("a {n}-byte message is larger than expected"))
                })?;
                let head = n.min(8);
                dst[..head].copy_from_slice(&msg[..head]);
                if n > head {
                    dst[n - 1] = msg[n - 1];
                }
                Ok(&self.inb[..n])
            }
            (Api::Copy, RecvLoop::Blocking) => {
                let rx = self.rx.as_mut().ok_or_else(|| not_open("receiving"))?;
                let n = rx.recv(&mut self.inb)?;
                Ok(&self.inb[..n])
            }
        }
    }

    #[inline(always)]
    fn recv_seq(&mut self) -> Result<(u64, usize), PeerError> {
        match C::API {
            Api::InPlace => {
                let rx = self.rx.as_mut().ok_or_else(|| not_open("receiving"))?;
                let msg = rx.borrow()?;
                Ok((get_u64(&msg, 0)?, msg.len()))
            }
            Api::TypedInPlace => {
                let rx = self.trx.as_mut().ok_or_else(|| not_open("receiving"))?;
                let msg = rx.borrow()?;
                Ok((msg.seq, size_of::<Msg64>()))
            }
            Api::Copy | Api::Typed | Api::Borrow => {
                let msg = self.recv()?;
                Ok((get_u64(msg, 0)?, msg.len()))
            }
        }
    }

    fn peer_parked(&self) -> Option<bool> {
        self.tx_ring.as_ref().map(|r| r.info().consumer.parked)
    }
}
