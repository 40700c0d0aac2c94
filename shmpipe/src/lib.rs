//! Lock-free single-producer single-consumer message rings in Linux shared
//! memory.
//!
//! Two processes exchange byte messages through a fixed ring of slots in a
//! shared segment: POSIX shm, a file (on hugetlbfs for huge pages) or a
//! memfd. The data path takes no lock and makes no system call while both
//! sides are busy; an idle side sleeps on a futex and is woken by its peer.
//! Everything read from the mapping is validated: a buggy or hostile peer
//! gets you a typed error, never undefined behaviour.
//!
//! ```text
//!   process A                         shared segment                         process B
//!  ┌──────────┐  try_send / reserve  ┌────────────────────────────┐  try_recv / borrow  ┌──────────┐
//!  │ Producer │ ───────────────────▶ │ header │ slot │ slot │ ... │ ──────────────────▶ │ Consumer │
//!  └──────────┘  tail (Release)      └────────────────────────────┘  head (Release)     └──────────┘
//! ```
//!
//! # Quick start
//!
//! ```
//! use shmpipe::{Ring, RingBuilder};
//!
//! # let name = format!("shm:doc-quickstart-{}", std::process::id());
//! // Process A creates the ring and writes.
//! let ring = RingBuilder::new().slots(1024).max_message(248).create(&name)?;
//! let mut tx = ring.producer()?;
//! tx.send(b"hello")?;
//!
//! // Process B (here the same one) opens it by name and reads.
//! let mut rx = Ring::open(&name)?.consumer()?;
//! let mut buf = [0u8; 248];
//! let n = rx.recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//!
//! // When the producer goes, the consumer drains what was sent, then sees
//! // the end of the stream.
//! drop(tx);
//! assert!(rx.recv(&mut buf).unwrap_err().is_disconnected());
//! # Ring::remove(&name, true)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Peers started in any order meet with
//! [`RingBuilder::open_or_create`]: of any number of processes calling it
//! at once, exactly one creates the ring ([`Ring::created`]) and the others
//! open that ring. [`RingBuilder::wait_for_creation`] makes `open` wait for
//! a ring that does not exist yet. A builder given `slots`, `slot_size` or
//! `max_message` refuses to open a ring of another geometry
//! ([`Error::GeometryMismatch`]).
//!
//! ```
//! use shmpipe::RingBuilder;
//!
//! # let name = format!("shm:doc-crate-ooc-{}", std::process::id());
//! let mut b = RingBuilder::new();
//! b.slots(1024).max_message(248).unlink_on_drop(true);
//! let ring = b.open_or_create(&name)?; // creates it, or opens the winner's
//! # assert!(ring.created());
//! # Ok::<(), shmpipe::Error>(())
//! ```
//!
//! # Calls
//!
//! | | never blocks | blocks | blocks until |
//! |---|---|---|---|
//! | send a copy | [`try_send`](Producer::try_send) | [`send`](Producer::send) | [`send_timeout`](Producer::send_timeout), [`send_deadline`](Producer::send_deadline) |
//! | write in place | [`try_reserve`](Producer::try_reserve) | [`reserve`](Producer::reserve) | [`reserve_timeout`](Producer::reserve_timeout), [`reserve_deadline`](Producer::reserve_deadline) |
//! | write a batch | [`try_reserve_batch`](Producer::try_reserve_batch) | | [`reserve_batch_deadline`](Producer::reserve_batch_deadline) |
//! | receive a copy | [`try_recv`](Consumer::try_recv), [`try_recv_vec`](Consumer::try_recv_vec) | [`recv`](Consumer::recv) | [`recv_timeout`](Consumer::recv_timeout), [`recv_deadline`](Consumer::recv_deadline), [`recv_vec_deadline`](Consumer::recv_vec_deadline) |
//! | read in place | [`try_borrow`](Consumer::try_borrow) | [`borrow`](Consumer::borrow) | [`borrow_timeout`](Consumer::borrow_timeout), [`borrow_deadline`](Consumer::borrow_deadline) |
//! | read a batch | [`try_recv_batch`](Consumer::try_recv_batch) | | [`recv_batch_deadline`](Consumer::recv_batch_deadline) |
//! | send a `T` | [`try_send_value`](Producer::try_send_value) | [`send_value`](Producer::send_value) | [`send_value_deadline`](Producer::send_value_deadline) |
//! | write a `T` in place | [`try_reserve_value`](Producer::try_reserve_value) | [`reserve_value`](Producer::reserve_value) | [`reserve_value_deadline`](Producer::reserve_value_deadline) |
//! | receive a `T` (a copy) | [`try_recv_value`](Consumer::try_recv_value) | [`recv_value`](Consumer::recv_value) | [`recv_value_deadline`](Consumer::recv_value_deadline) |
//! | read a `T` in place | [`try_borrow_value`](Consumer::try_borrow_value) | [`borrow_value`](Consumer::borrow_value) | [`borrow_value_deadline`](Consumer::borrow_value_deadline) |
//!
//! # Typed messages
//!
//! A message can be a value of any type with
//! [`zerocopy`](https://docs.rs/zerocopy)'s traits (re-exported as
//! [`shmpipe::zerocopy`](zerocopy)): the `*_value` calls above on the plain
//! handles, or, for a ring created for one type
//! ([`RingBuilder::message_type`]), [`TypedProducer`] and [`TypedConsumer`]
//! from [`Ring::typed_producer`] and [`Ring::typed_consumer`], which check
//! the ring's [`TypeFingerprint`] and alignment once, when made:
//!
//! ```
//! use shmpipe::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//! use shmpipe::RingBuilder;
//!
//! #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
//! #[repr(C, align(64))] // one cache line; the ring aligns payloads for it
//! struct Tick {
//!     seq: u64,
//!     price: u64,
//!     size: [u64; 6],
//! }
//!
//! let ring = RingBuilder::new().message_type::<Tick>().create_in_process()?;
//! let (mut tx, mut rx) = (ring.typed_producer::<Tick>()?, ring.typed_consumer::<Tick>()?);
//! let mut slot = tx.try_reserve()?; // a `&mut Tick` in the slot
//! slot.seq = 1;
//! slot.price = 100;
//! slot.commit();
//! let tick = rx.try_borrow()?; // a `&Tick` in the slot (trusted producer)
//! assert_eq!((tick.seq, tick.price), (1, 100));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Receiving a copy ([`TypedConsumer::try_recv`]) is safe against any
//! producer: every bit pattern is a valid `T` and the length is checked.
//! See `docs/design.md` §10 for the alignment guarantee and what the
//! fingerprint does and does not catch.
//!
//! Blocking calls wait according to a [`WaitStrategy`] and notice a dead
//! peer at once (a per-process watcher sleeps on the peers' pidfds; where
//! pidfds are missing, within the heartbeat interval, 100 ms by default).
//!
//! # Event loops
//!
//! | to wait on ... | use |
//! |---|---|
//! | many rings from one thread | [`WaitSet`] |
//! | a ring in your own epoll, poll or mio loop | [`Consumer::readiness_fd`] and [`Consumer::arm`] (the same on [`Producer`]) |
//! | a ring from async code on tokio (feature `tokio`) | `AsyncConsumer`, `AsyncProducer`, `MessageStream` |
//! | a peer to (re)appear | [`Consumer::wait_for_producer`], [`Producer::wait_for_consumer`] |
//!
//! # Two-way channels and servers
//!
//! | to ... | use |
//! |---|---|
//! | talk both ways (two rings, one each way) | [`Duplex`]: [`Duplex::pair`] in one process, [`Duplex::create`] / [`Duplex::open`] by address, [`into_split`](Duplex::into_split) |
//! | serve any number of clients, each with its own duplex | [`Listener::bind`] (socket mode 0600 by default, [`ListenerBuilder::mode`]), [`connect`]; [`Connection::peer_cred`] says who connected |
//! | make calls and serve them | [`Client::call`]; [`Duplex::try_serve`], [`Duplex::serve`], [`Duplex::recv_request`] and [`Duplex::reply`]; errors are [`CallError`] |
//! | wait on a listener and its clients in one thread | [`WaitSet::add_listener`], [`WaitSet::add_duplex`] |
//! | the same from async code (feature `tokio`) | `AsyncDuplex` (`Duplex::into_async`), `AsyncListener` |
//!
//! # Layers
//!
//! Bottom up, each module importing only from those before it (CI checks
//! this):
//!
//! ```text
//! sync      atomics, fences, the futex syscall, loom switch
//! fingerprint  TypeFingerprint: the message type a ring records
//! layout    the #[repr(C)] header, claim word, geometry, validation
//! segment   OS memory: POSIX shm, file, memfd, System V, heap; huge pages
//! liveness  is the process holding a claim alive? (pidfd, /proc)
//! mapping   one process's mapping of a ring (segment + validated view)
//! info      RingInfo, SideInfo, Stats: snapshots for people and tools
//! wake      the park/wake protocol between the two sides
//! handles   Producer, Consumer and their slot guards; typed calls,
//!           TypedProducer, TypedConsumer
//! ring      Ring, RingBuilder: create, open, open_or_create, list, remove
//! duplex    Duplex: two rings, one each way
//! listener  Listener, connect, Connection: clients get private duplexes
//! rpc       Client::call, Duplex::try_serve: request/response with ids
//! waitset   WaitSet: many handles, duplexes and listeners from one thread
//! ```
//!
//! All atomics come from `sync`, so the ring and wake code also run under
//! [loom](https://docs.rs/loom). See `docs/design.md` for the memory layout,
//! the index and wake protocols and the security model.
//!
//! This crate is the library alone; the `shmpipe` command line and its
//! benchmark are the `shmpipe-cli` package (`cargo install --path
//! shmpipe-cli` from the repository).

#![deny(missing_docs, missing_debug_implementations)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::unnecessary_safety_comment)]
// The library builds on Rust 1.80 (CI checks it), before `is_multiple_of`.
#![allow(clippy::manual_is_multiple_of)]
// Under loom only the heap backend is modelled; the OS paths go unused.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

// The library's layers, bottom up: each module imports only from modules
// to its left. `.ci/check-imports.py` checks this line against the code,
// and `docs/design.md` §1 draws it.
//
// layers: sync side fingerprint error address layout segment liveness notify mapping info reclaim wake watcher readiness handles ring duplex listener rpc waitset async_handles
mod address;
#[cfg(feature = "tokio")]
mod async_handles;
mod duplex;
mod error;
mod fingerprint;
mod handles;
mod info;
mod layout;
mod listener;
mod liveness;
mod mapping;
mod notify;
mod readiness;
mod reclaim;
mod ring;
mod rpc;
mod segment;
mod side;
mod sync;
mod waitset;
mod wake;
mod watcher;

pub use address::{Address, AsAddress, SysvKey};
#[cfg(feature = "tokio")]
pub use async_handles::{AsyncConsumer, AsyncDuplex, AsyncListener, AsyncProducer, MessageStream};
pub use duplex::Duplex;
pub use error::{
    CallError, Corruption, Error, Expected, Geometry, RecvError, SendError, TryRecvError,
    TrySendError,
};
pub use fingerprint::TypeFingerprint;
pub use handles::{
    Consumer, Message, Producer, ReadSlot, ReadValue, TypedConsumer, TypedProducer, WriteBatch,
    WriteSlot, WriteValue, MIN_PAYLOAD_ALIGN,
};
pub use info::{RingInfo, SideInfo, SideState, Stats, WakeBarrier};
pub use listener::{
    connect, connect_with, listener_path, Connection, Listener, ListenerBuilder, PeerCred,
};
pub use ring::{Ring, RingBuilder, DEFAULT_SLOTS, DEFAULT_SLOT_SIZE};
pub use rpc::{Client, Request, REQUEST_ID_LEN};
pub use segment::{Backend, HugePages};
pub use side::Side;
pub use waitset::{Member, Token, WaitSet};
pub use wake::WaitStrategy;
/// The `zerocopy` crate the typed calls are bounded by (`FromBytes`,
/// `IntoBytes`, `KnownLayout`, `Immutable` and their derives), re-exported
/// so that its version always matches.
pub use zerocopy;
