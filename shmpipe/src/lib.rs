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
//! # Layers
//!
//! Bottom up, each module importing only from those before it (CI checks
//! this):
//!
//! ```text
//! sync      atomics, fences, the futex syscall, loom switch
//! layout    the #[repr(C)] header, claim word, geometry, validation
//! segment   OS memory: POSIX shm, file, memfd, System V, heap; huge pages
//! liveness  is the process holding a claim alive? (pidfd, /proc)
//! mapping   one process's mapping of a ring (segment + validated view)
//! info      RingInfo, SideInfo, Stats: snapshots for people and tools
//! wake      the park/wake protocol between the two sides
//! handles   Producer, Consumer and their slot guards
//! ring      Ring, RingBuilder: create, open, list, remove
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
// layers: sync side error address layout segment liveness notify mapping info reclaim wake watcher readiness handles ring waitset async_handles
mod address;
#[cfg(feature = "tokio")]
mod async_handles;
mod error;
mod handles;
mod info;
mod layout;
mod liveness;
mod mapping;
mod notify;
mod readiness;
mod reclaim;
mod ring;
mod segment;
mod side;
mod sync;
mod waitset;
mod wake;
mod watcher;

pub use address::{Address, AsAddress, SysvKey};
#[cfg(feature = "tokio")]
pub use async_handles::{AsyncConsumer, AsyncProducer, MessageStream};
pub use error::{Corruption, Error, Expected, RecvError, SendError, TryRecvError, TrySendError};
pub use handles::{Consumer, Producer, ReadSlot, WriteBatch, WriteSlot};
pub use info::{RingInfo, SideInfo, SideState, Stats, WakeBarrier};
pub use ring::{Ring, RingBuilder, DEFAULT_SLOTS, DEFAULT_SLOT_SIZE};
pub use segment::{Backend, HugePages};
pub use side::Side;
pub use waitset::{Member, Token, WaitSet};
pub use wake::WaitStrategy;
