//! The C interface to [`shmpipe`]: `libshmpipe.so`, `libshmpipe.a` and
//! `include/shmpipe.h` (generated from this crate by cbindgen).
//!
//! Layers, top to bottom:
//!
//! ```text
//! lib.rs       status codes, options and info structs (the C types)
//! ring.rs      shmpipe_ring_*: create, open, claim a side, info, remove
//! producer.rs  shmpipe_producer_*: send, reserve/commit, batches
//! consumer.rs  shmpipe_consumer_*: recv, borrow/release, batches
//! session.rs   shmpipe_listener_*, shmpipe_connect, shmpipe_duplex_*: servers, calls
//! waitset.rs   shmpipe_waitset_*: many handles from one thread
//! guard.rs     catch_unwind at every entry point, the thread-local last error
//! ```
//!
//! Every exported function runs inside [`guard`](guard::guard): a Rust
//! panic becomes `SHMPIPE_PANIC` (with the panic message in
//! `shmpipe_last_error()`), never an unwind across the C boundary. Every
//! pointer argument is checked for NULL; a handle pointer must otherwise be
//! one this library returned and not yet closed (C cannot do better).
//!
//! The functions are `unsafe extern "C"`: from Rust, call the [`shmpipe`]
//! crate instead. The crate is also built as an `rlib` so that its own tests
//! (and the benchmark comparison) can link it.
//!
//! ```
//! use std::ptr;
//! use shmpipe_ffi::*;
//!
//! let mut ring = ptr::null_mut();
//! let name = c"shm:ffi-doctest";
//! // Every pointer is valid (or NULL, which the callee checks), and each
//! // handle is closed once.
//! unsafe {
//!     let _ = shmpipe_ring_remove(name.as_ptr(), 1);
//!     assert_eq!(shmpipe_ring_create(name.as_ptr(), 8, 64, &mut ring), SHMPIPE_OK);
//!     let (mut tx, mut rx) = (ptr::null_mut(), ptr::null_mut());
//!     assert_eq!(shmpipe_ring_producer(ring, &mut tx), SHMPIPE_OK);
//!     assert_eq!(shmpipe_ring_consumer(ring, &mut rx), SHMPIPE_OK);
//!     assert_eq!(shmpipe_producer_send(tx, b"hi".as_ptr().cast(), 2, -1), SHMPIPE_OK);
//!     let mut buf = [0u8; 64];
//!     let mut len = 0;
//!     assert_eq!(
//!         shmpipe_consumer_recv(rx, buf.as_mut_ptr().cast(), buf.len(), &mut len, 0),
//!         SHMPIPE_OK
//!     );
//!     assert_eq!(&buf[..len], b"hi");
//!     shmpipe_producer_close(tx);
//!     shmpipe_consumer_close(rx);
//!     shmpipe_ring_close(ring);
//!     assert_eq!(shmpipe_ring_remove(name.as_ptr(), 0), SHMPIPE_OK);
//! }
//! ```

// The exported names follow C conventions (`shmpipe_ring`, not `ShmpipeRing`).
#![allow(non_camel_case_types)]
#![deny(missing_docs)]

use std::ffi::c_int;

mod consumer;
mod guard;
mod producer;
mod ring;
mod session;
#[cfg(test)]
mod tests;
mod waitset;

pub use consumer::*;
pub use guard::{guard, shmpipe_last_error, shmpipe_status_name, shmpipe_version, Fail};
pub use producer::*;
pub use ring::*;
pub use session::*;
pub use waitset::*;

// ---------------------------------------------------------------------------
// Status codes
// ---------------------------------------------------------------------------

/// Success.
pub const SHMPIPE_OK: c_int = 0;
/// The peer closed its handle: for a producer, nothing more will be read;
/// for a consumer, every message the producer committed has been received.
pub const SHMPIPE_DISCONNECTED: c_int = -1;
/// The timeout passed with the ring still full (send) or empty (receive).
pub const SHMPIPE_TIMEOUT: c_int = -2;
/// The peer's process died without closing its handle (noticed within the
/// heartbeat, 100 ms by default); a new process can claim its side. A
/// consumer gets this only after every message the producer committed.
pub const SHMPIPE_PEER_DIED: c_int = -3;
/// The ring is full (the non-blocking forms: `timeout_ns == 0`).
pub const SHMPIPE_FULL: c_int = -4;
/// The ring is empty (the non-blocking forms: `timeout_ns == 0`).
pub const SHMPIPE_EMPTY: c_int = -5;
/// The message is larger than the ring's largest message; nothing was sent.
pub const SHMPIPE_TOO_LARGE: c_int = -6;
/// The peer wrote a value into the shared mapping that no correct peer
/// writes; `shmpipe_last_error()` names the field.
pub const SHMPIPE_CORRUPT: c_int = -7;
/// The next message is larger than the buffer given; it stays in the ring
/// and `*len` holds its length.
pub const SHMPIPE_BUFFER_TOO_SMALL: c_int = -8;
/// A NULL pointer, an unknown option value, a malformed address or a
/// geometry out of range.
pub const SHMPIPE_INVALID_ARGUMENT: c_int = -9;
/// The handle has a reserved or borrowed slot outstanding (commit, abort or
/// release it first), or the call came from inside one of its own batch
/// callbacks.
pub const SHMPIPE_BUSY: c_int = -10;
/// No ring at that address.
pub const SHMPIPE_NOT_FOUND: c_int = -11;
/// A ring (or another object) already exists at that address.
pub const SHMPIPE_ALREADY_EXISTS: c_int = -12;
/// The operating system refused access, or the address is a symbolic link.
pub const SHMPIPE_PERMISSION_DENIED: c_int = -13;
/// That side of the ring is held by a live process (or another handle).
pub const SHMPIPE_ALREADY_CLAIMED: c_int = -14;
/// The ring still has a live producer or consumer (`shmpipe_ring_remove`
/// without `force`, or creating over a held stale ring).
pub const SHMPIPE_IN_USE: c_int = -15;
/// The segment is not a shmpipe ring (another magic number, not a regular
/// file), or its creator never finished initialising it.
pub const SHMPIPE_NOT_A_RING: c_int = -16;
/// The ring was created by an incompatible version of shmpipe.
pub const SHMPIPE_VERSION_MISMATCH: c_int = -17;
/// Huge pages were required and could not be had; `shmpipe_last_error()`
/// says what to reserve or mount.
pub const SHMPIPE_HUGE_PAGES_UNAVAILABLE: c_int = -18;
/// The operation does not apply to this ring (no descriptor, no name,
/// opened read-only).
pub const SHMPIPE_UNSUPPORTED: c_int = -19;
/// Another failed system call; `shmpipe_last_error()` names it.
pub const SHMPIPE_IO: c_int = -20;
/// A Rust panic was caught at the boundary: a bug in shmpipe, please report
/// it with the text of `shmpipe_last_error()`.
pub const SHMPIPE_PANIC: c_int = -21;
/// An error this version of the header has no code for.
pub const SHMPIPE_ERROR: c_int = -22;
/// The ring was removed (`shmpipe_ring_remove`, `shmpipe rm`) while this
/// handle used it: no peer can reach it any more; open or create it anew.
pub const SHMPIPE_REMOVED: c_int = -23;
/// The ring exists with another geometry than asked for
/// (`shmpipe_options.check_geometry`); `shmpipe_last_error()` names both.
pub const SHMPIPE_GEOMETRY_MISMATCH: c_int = -24;
/// The peer broke the protocol: a listener handshake that went wrong, or a
/// request or reply that is no message of the request/response protocol.
pub const SHMPIPE_PROTOCOL: c_int = -25;
/// The ring was made for a message type this handle does not carry, or
/// its payload alignment is too small for the type (rings of the Rust
/// crate's typed layer; the C calls carry untyped bytes and open any ring).
pub const SHMPIPE_INCOMPATIBLE_TYPE: c_int = -26;

// ---------------------------------------------------------------------------
// Option values
// ---------------------------------------------------------------------------

/// `shmpipe_options.huge_pages`: base pages only (the default; a `file:`
/// path on hugetlbfs still gets huge pages: the path decides).
pub const SHMPIPE_HUGE_PAGES_NEVER: c_int = 0;
/// `shmpipe_options.huge_pages`: huge pages if they can be had, base pages
/// otherwise (`shmpipe_ring_huge_page_fallback` says why).
pub const SHMPIPE_HUGE_PAGES_PREFER: c_int = 1;
/// `shmpipe_options.huge_pages`: huge pages or
/// `SHMPIPE_HUGE_PAGES_UNAVAILABLE`.
pub const SHMPIPE_HUGE_PAGES_REQUIRE: c_int = 2;

/// `shmpipe_options.wait`: spin for `spin_ns`, then sleep on a futex (the
/// default).
pub const SHMPIPE_WAIT_SPIN_THEN_PARK: c_int = 0;
/// `shmpipe_options.wait`: busy-spin; lowest latency, burns a core.
pub const SHMPIPE_WAIT_SPIN: c_int = 1;
/// `shmpipe_options.wait`: sleep on the futex at once.
pub const SHMPIPE_WAIT_PARK: c_int = 2;

/// `shmpipe_info.backend`: POSIX shared memory (`shm:NAME`).
pub const SHMPIPE_BACKEND_POSIX_SHM: c_int = 0;
/// `shmpipe_info.backend`: a file (`file:PATH`).
pub const SHMPIPE_BACKEND_FILE: c_int = 1;
/// `shmpipe_info.backend`: an anonymous memfd.
pub const SHMPIPE_BACKEND_MEMFD: c_int = 2;
/// `shmpipe_info.backend`: System V shared memory (`sysv:KEY`).
pub const SHMPIPE_BACKEND_SYSV: c_int = 3;
/// `shmpipe_info.backend`: process-local memory.
pub const SHMPIPE_BACKEND_HEAP: c_int = 4;
/// `shmpipe_info.backend`: a backend this header does not know.
pub const SHMPIPE_BACKEND_OTHER: c_int = 5;

/// `shmpipe_side_info.state`: nobody has held this side yet.
pub const SHMPIPE_SIDE_VACANT: c_int = 0;
/// `shmpipe_side_info.state`: process `pid` holds it (`alive` says whether
/// it still runs).
pub const SHMPIPE_SIDE_ATTACHED: c_int = 1;
/// `shmpipe_side_info.state`: its last holder, `pid`, closed its handle.
pub const SHMPIPE_SIDE_CLOSED: c_int = 2;
/// `shmpipe_side_info.state`: the claim word holds a state no correct
/// process writes.
pub const SHMPIPE_SIDE_INVALID: c_int = 3;
