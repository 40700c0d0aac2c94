//! `shmpipe_listener_*`, `shmpipe_connect` and `shmpipe_duplex_*`: a
//! server that any number of clients connect to, each getting a private
//! duplex (two memfd rings, one each way), and request/response calls over
//! a duplex.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_char, c_int, c_void, CString};
use std::os::fd::AsRawFd;
use std::ptr;
use std::slice;

use shmpipe::{Client, Connection, ListenerBuilder, PeerCred, RecvError, TryRecvError};

use crate::guard::{
    call_fail, guard, guard_value, guard_void, recv_fail, send_fail, try_recv_fail, try_send_fail,
    Fail, Wait,
};
use crate::producer::{CallbackGuard, State};
use crate::ring::{options, text};
use crate::*;

/// A listening socket that clients connect to (opaque). From
/// `shmpipe_listener_bind`, freed by `shmpipe_listener_close`.
pub struct shmpipe_listener {
    inner: shmpipe::Listener,
    path: CString,
}

/// One end of a duplex (opaque): two rings, one each way, for
/// `shmpipe_duplex_send` / `_recv`, `shmpipe_duplex_call` (the client) and
/// `shmpipe_duplex_try_serve` / `_serve` (the server). From
/// `shmpipe_listener_accept*` or `shmpipe_connect`, freed by
/// `shmpipe_duplex_close`. Use it from one thread at a time.
pub struct shmpipe_duplex {
    /// `Idle`, or `Callback` while a serve handler runs.
    state: Cell<State>,
    /// The duplex, with the request ids of the calls made on it. Reached
    /// only through [`shmpipe_duplex::idle`].
    client: UnsafeCell<Client>,
    /// Who is at the other end, as the kernel recorded it at connect time.
    peer: Option<PeerCred>,
}

/// Answers one request: `req` holds its `len` bytes (valid only during the
/// call), `reply` has room for `cap` bytes in the reply ring's slot. Write
/// the reply there and return its length (at most `cap`). Called by
/// `shmpipe_duplex_try_serve` and `shmpipe_duplex_serve`.
pub type shmpipe_serve_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        req: *const c_void,
        len: usize,
        reply: *mut c_void,
        cap: usize,
    ) -> usize,
>;

impl shmpipe_duplex {
    fn new(conn: Connection) -> *mut shmpipe_duplex {
        let peer = Some(conn.peer_cred());
        Box::into_raw(Box::new(shmpipe_duplex {
            state: Cell::new(State::Idle),
            client: UnsafeCell::new(Client::new(conn.into_duplex())),
            peer,
        }))
    }

    /// The client (and its duplex), unless a serve handler of this handle
    /// is running.
    #[allow(clippy::mut_from_ref)]
    fn idle(&self) -> Result<&mut Client, Fail> {
        match self.state.get() {
            State::Callback => Err(Fail::new(
                SHMPIPE_BUSY,
                "called from inside this duplex's own serve handler",
            )),
            // SAFETY: the handle is used by one thread at a time (the
            // documented contract), each entry point calls this once, and
            // no serve handler of this handle runs (`state`), so no other
            // reference into the cell is live.
            _ => Ok(unsafe { &mut *self.client.get() }),
        }
    }
}

/// Checks a duplex handle pointer.
///
/// # Safety
///
/// `d` is NULL or a live duplex handle.
unsafe fn duplex<'a>(d: *mut shmpipe_duplex) -> Result<&'a shmpipe_duplex, Fail> {
    // SAFETY: NULL or live, by the caller's contract.
    unsafe { d.as_ref() }.ok_or_else(|| Fail::null("duplex"))
}

/// Checks a listener handle pointer.
///
/// # Safety
///
/// `l` is NULL or a live listener handle.
unsafe fn listener<'a>(l: *mut shmpipe_listener) -> Result<&'a mut shmpipe_listener, Fail> {
    // SAFETY: NULL or live, by the caller's contract (one thread at a time).
    unsafe { l.as_mut() }.ok_or_else(|| Fail::null("listener"))
}

/// Sets `*out` to NULL, or fails for a NULL `out`.
fn clear_out<T>(out: *mut *mut T) -> Result<(), Fail> {
    if out.is_null() {
        return Err(Fail::null("out"));
    }
    // SAFETY: non-NULL and valid for a write by the callers' contract.
    unsafe { out.write(ptr::null_mut()) };
    Ok(())
}

/// Binds a listener at `address`: `unix:PATH` or anything with a `/` is
/// that socket path; a bare `NAME` is `/dev/shm/shmpipe-NAME.sock`. The
/// socket gets `opts->mode` (default 0600: only this user may connect;
/// 0666 admits everyone); the other options (slots, slot size, message
/// limit, huge pages, wait strategy, heartbeat) apply to the two memfd
/// rings each client gets. `opts` may be NULL (the defaults).
///
/// A socket left by a listener that was killed is reclaimed; a live
/// listener is `SHMPIPE_IN_USE`, anything else at the path that is not a
/// socket `SHMPIPE_NOT_A_RING`. The socket file is removed by
/// `shmpipe_listener_close`.
///
/// # Safety
///
/// `address` is NULL or a NUL-terminated string; `opts` is NULL or valid;
/// `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_listener_bind(
    address: *const c_char,
    opts: *const shmpipe_options,
    out: *mut *mut shmpipe_listener,
) -> c_int {
    guard(|| {
        clear_out(out)?;
        // SAFETY: forwarded contract.
        let address = unsafe { text(address, "address") }?;
        // SAFETY: forwarded contract.
        let o = unsafe { options(opts) };
        let inner = ListenerBuilder::new()
            .rings(o.builder()?)
            .mode(o.mode)
            .bind(address)?;
        let path = CString::new(inner.path().as_os_str().as_encoded_bytes()).unwrap_or_default();
        let l = Box::new(shmpipe_listener { inner, path });
        // SAFETY: checked non-NULL above, valid by the contract.
        unsafe { out.write(Box::into_raw(l)) };
        Ok(())
    })
}

/// Accepts the next client, waiting as long as it takes:
/// `shmpipe_listener_accept_timeout(l, -1, out)`.
///
/// # Safety
///
/// As `shmpipe_listener_accept_timeout`.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_listener_accept(
    l: *mut shmpipe_listener,
    out: *mut *mut shmpipe_duplex,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { shmpipe_listener_accept_timeout(l, -1, out) }
}

/// Accepts the next client: `*out` becomes the server's end of the
/// client's private duplex (close it with `shmpipe_duplex_close`).
/// `timeout_ns < 0` waits as long as it takes, `0` only takes a client
/// already waiting (`SHMPIPE_EMPTY` if none is), `> 0` waits at most that
/// long (`SHMPIPE_TIMEOUT`). A client whose handshake fails is dropped and
/// the call goes on to the next.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_EMPTY`, `SHMPIPE_TIMEOUT`, `SHMPIPE_IO`
/// or the statuses of creating a memfd ring.
///
/// # Safety
///
/// `l` is NULL or a live listener handle; `out` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_listener_accept_timeout(
    l: *mut shmpipe_listener,
    timeout_ns: i64,
    out: *mut *mut shmpipe_duplex,
) -> c_int {
    guard(|| {
        clear_out(out)?;
        // SAFETY: forwarded contract.
        let l = unsafe { listener(l) }?;
        let conn = match Wait::from_ns(timeout_ns) {
            Wait::Never => l.inner.try_accept()?.ok_or_else(|| {
                Fail::fixed(SHMPIPE_EMPTY, c"no client is waiting to be accepted")
            })?,
            Wait::Until(deadline) => l.inner.accept_deadline(deadline)?.ok_or_else(|| {
                Fail::fixed(
                    SHMPIPE_TIMEOUT,
                    c"timed out waiting for a client to connect",
                )
            })?,
        };
        // SAFETY: checked non-NULL above, valid by the contract.
        unsafe { out.write(shmpipe_duplex::new(conn)) };
        Ok(())
    })
}

/// The listening socket, for your own epoll or poll loop: readable when a
/// client is waiting (then accept with timeout 0). Owned by the listener:
/// do not close it.
///
/// # Safety
///
/// `l` is NULL or a live listener handle; `fd` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_listener_fd(l: *mut shmpipe_listener, fd: *mut c_int) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let l = unsafe { listener(l) }?;
        if fd.is_null() {
            return Err(Fail::null("fd"));
        }
        // SAFETY: non-NULL, writable by the contract.
        unsafe { fd.write(l.inner.as_raw_fd()) };
        Ok(())
    })
}

/// The socket's path, owned by the listener and valid until
/// `shmpipe_listener_close`; NULL for NULL.
///
/// # Safety
///
/// `l` is NULL or a live listener handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_listener_path(l: *const shmpipe_listener) -> *const c_char {
    guard_value(ptr::null(), || {
        // SAFETY: NULL or live, by the contract.
        unsafe { l.as_ref() }.map_or(ptr::null(), |l| l.path.as_ptr())
    })
}

/// Closes the listener and removes its socket file. Connections accepted
/// from it keep working. NULL is ignored.
///
/// # Safety
///
/// `l` is NULL or a live listener handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_listener_close(l: *mut shmpipe_listener) {
    guard_void(|| {
        if !l.is_null() {
            // SAFETY: from `Box::into_raw` in `shmpipe_listener_bind`,
            // given up by the caller.
            drop(unsafe { Box::from_raw(l) });
        }
        Ok(())
    });
}

/// Connects to the listener at `address` (as for `shmpipe_listener_bind`):
/// `*out` becomes this client's end of a private duplex. The rings'
/// geometry is the server's; `opts` (NULL: the defaults) gives only the
/// wait strategy and heartbeat. Everything the server sends is checked
/// (its greeting, the sealed memfds, each ring's header).
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_NOT_FOUND` (nothing listens there),
/// `SHMPIPE_PERMISSION_DENIED` (the socket's mode keeps this user out),
/// `SHMPIPE_PROTOCOL` (the server broke the handshake), `SHMPIPE_IO` or
/// the statuses of opening a ring.
///
/// # Safety
///
/// `address` is NULL or a NUL-terminated string; `opts` is NULL or valid;
/// `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_connect(
    address: *const c_char,
    opts: *const shmpipe_options,
    out: *mut *mut shmpipe_duplex,
) -> c_int {
    guard(|| {
        clear_out(out)?;
        // SAFETY: forwarded contract.
        let address = unsafe { text(address, "address") }?;
        // SAFETY: forwarded contract.
        let b = unsafe { options(opts) }.builder()?;
        let conn = shmpipe::connect_with(&b, address)?;
        // SAFETY: checked non-NULL above, valid by the contract.
        unsafe { out.write(shmpipe_duplex::new(conn)) };
        Ok(())
    })
}

/// The process, user and group at the other end, as the kernel recorded
/// them when the client connected. Each out pointer may be NULL.
///
/// # Safety
///
/// `d` is NULL or a live duplex handle; `pid`, `uid` and `gid` are NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_peer_cred(
    d: *mut shmpipe_duplex,
    pid: *mut u32,
    uid: *mut u32,
    gid: *mut u32,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let d = unsafe { duplex(d) }?;
        let cred = d
            .peer
            .ok_or_else(|| Fail::new(SHMPIPE_UNSUPPORTED, "this duplex has no recorded peer"))?;
        // SAFETY: each NULL or valid for a write, by the contract.
        unsafe {
            guard::store(pid, cred.pid);
            guard::store(uid, cred.uid);
            guard::store(gid, cred.gid);
        }
        Ok(())
    })
}

/// The largest message in one slot of the duplex's sending ring; a call's
/// request (and a reply) holds 8 bytes less (its id). 0 for NULL.
///
/// # Safety
///
/// `d` is NULL or a live duplex handle.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_max_message(d: *mut shmpipe_duplex) -> usize {
    guard_value(0, || {
        // SAFETY: forwarded contract.
        match unsafe { duplex(d) }.and_then(|d| d.idle()) {
            Ok(c) => c.duplex().max_message(),
            Err(_) => 0,
        }
    })
}

/// Sends one message to the other end, as `shmpipe_producer_send` (up to
/// the sending ring's message limit; `timeout_ns` and statuses the same).
/// Do not mix with `shmpipe_duplex_call` on one duplex: a call's reply is
/// matched by its id.
///
/// # Safety
///
/// `d` is NULL or a live duplex handle; `msg` is NULL or readable for `len`
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_send(
    d: *mut shmpipe_duplex,
    msg: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        let dx = unsafe { duplex(d) }?.idle()?.duplex();
        // SAFETY: forwarded contract.
        let bytes = unsafe { bytes(msg, len, "msg") }?;
        match Wait::from_ns(timeout_ns) {
            Wait::Never => dx.try_send(bytes).map_err(try_send_fail),
            Wait::Until(None) => dx.send(bytes).map_err(send_fail),
            Wait::Until(Some(t)) => dx.send_deadline(bytes, t).map_err(send_fail),
        }
    })
}

/// Receives the next message from the other end into the `cap` bytes at
/// `buf`, as `shmpipe_consumer_recv` (`timeout_ns`, `*len` and statuses the
/// same).
///
/// # Safety
///
/// `d` is NULL or a live duplex handle; `buf` is NULL or writable for `cap`
/// bytes; `len` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_recv(
    d: *mut shmpipe_duplex,
    buf: *mut c_void,
    cap: usize,
    len: *mut usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        if len.is_null() {
            return Err(Fail::null("len"));
        }
        // SAFETY: forwarded contract.
        let dx = unsafe { duplex(d) }?.idle()?.duplex();
        // SAFETY: forwarded contract.
        let buf = unsafe { buffer(buf, cap) }?;
        let mut needed = None;
        let r = match Wait::from_ns(timeout_ns) {
            Wait::Never => dx.try_recv(buf).map_err(|e| {
                if let TryRecvError::BufferTooSmall { needed: n } = e {
                    needed = Some(n);
                }
                try_recv_fail(e)
            }),
            Wait::Until(deadline) => {
                let r = match deadline {
                    None => dx.recv(buf),
                    Some(t) => dx.recv_deadline(buf, t),
                };
                r.map_err(|e| {
                    if let RecvError::BufferTooSmall { needed: n } = e {
                        needed = Some(n);
                    }
                    recv_fail(e)
                })
            }
        };
        if let Some(n) = r.as_ref().ok().copied().or(needed) {
            // SAFETY: non-NULL (checked above), writable by the contract.
            unsafe { len.write(n) };
        }
        r.map(drop)
    })
}

/// Makes a call: sends the `len` bytes at `req` as a request (with the next
/// request id in front) and waits for its reply, which is copied into the
/// `cap` bytes at `reply`; `*reply_len` is its length. `timeout_ns < 0`
/// waits as long as it takes, `> 0` at most that long for room to send and
/// for the reply (`SHMPIPE_TIMEOUT`; a late reply is skipped by the next
/// call); `0` is `SHMPIPE_INVALID_ARGUMENT` (a call always waits).
/// Requests and replies are one slot each: at most
/// `shmpipe_duplex_max_message(d) - 8` bytes.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_TIMEOUT`, `SHMPIPE_DISCONNECTED` (the
/// server closed), `SHMPIPE_PEER_DIED` (its process died),
/// `SHMPIPE_TOO_LARGE` (nothing sent), `SHMPIPE_BUFFER_TOO_SMALL` (the
/// reply was consumed; `*reply_len` says how long it was),
/// `SHMPIPE_PROTOCOL` (a reply that is no reply to a call made),
/// `SHMPIPE_REMOVED`, `SHMPIPE_CORRUPT`, `SHMPIPE_BUSY` or
/// `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `d` is NULL or a live duplex handle; `req` is NULL or readable for
/// `len` bytes; `reply` is NULL or writable for `cap` bytes; `reply_len`
/// is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_call(
    d: *mut shmpipe_duplex,
    req: *const c_void,
    len: usize,
    reply: *mut c_void,
    cap: usize,
    reply_len: *mut usize,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        if reply_len.is_null() {
            return Err(Fail::null("reply_len"));
        }
        // SAFETY: forwarded contract.
        let client = unsafe { duplex(d) }?.idle()?;
        // SAFETY: forwarded contract.
        let request = unsafe { bytes(req, len, "req") }?;
        // SAFETY: forwarded contract.
        let out = unsafe { buffer(reply, cap) }?;
        let deadline = match Wait::from_ns(timeout_ns) {
            Wait::Never => {
                return Err(Fail::new(
                    SHMPIPE_INVALID_ARGUMENT,
                    "timeout_ns is 0, but a call always waits for its reply: pass -1 (as long \
                     as it takes) or a timeout",
                ))
            }
            Wait::Until(d) => d,
        };
        let mut needed = None;
        let r = client.call_with(request, deadline, |msg| {
            needed = Some(msg.len());
            match out.get_mut(..msg.len()) {
                Some(dst) => {
                    dst.copy_from_slice(msg);
                    true
                }
                None => false,
            }
        });
        match r {
            Ok(fits) => {
                let n = needed.unwrap_or(0);
                // SAFETY: non-NULL (checked above), writable by the contract.
                unsafe { reply_len.write(n) };
                if fits {
                    Ok(())
                } else {
                    Err(Fail::new(
                        SHMPIPE_BUFFER_TOO_SMALL,
                        format!(
                            "the {n}-byte reply does not fit the {cap}-byte buffer (it was \
                             consumed): pass a buffer of shmpipe_duplex_max_message bytes"
                        ),
                    ))
                }
            }
            Err(e) => Err(call_fail(e)),
        }
    })
}

/// Runs one serve step: the request `req` and its reply buffer, through
/// the C handler; `None` if the handler returned more than `cap`.
///
/// # Safety
///
/// `handler` is a valid function (the public contract).
unsafe fn run_handler(
    handler: unsafe extern "C" fn(*mut c_void, *const c_void, usize, *mut c_void, usize) -> usize,
    ctx: *mut c_void,
    req: &[u8],
    out: &mut [u8],
) -> usize {
    // SAFETY: `handler` is valid by the contract; `req` is readable and
    // `out` writable for their lengths during the call.
    unsafe {
        handler(
            ctx,
            req.as_ptr().cast(),
            req.len(),
            out.as_mut_ptr().cast(),
            out.len(),
        )
    }
}

/// Serves one request if one is waiting: `handler(ctx, req, len, reply,
/// cap)` writes the reply in place and returns its length. `*served` (if
/// not NULL) is 1 if a request was answered, 0 if none was waiting or the
/// reply ring is full (the client is not reading; the request stays
/// queued). With nothing waiting it checks that the client lives, so a
/// server woken by a wait set for a client that died learns it here.
/// Never waits.
///
/// `handler` must not call any function on this duplex (those return
/// `SHMPIPE_BUSY`), must not keep `req` or `reply` past its return, and
/// must not unwind or `longjmp` out.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_DISCONNECTED` (the client closed and
/// every request was served), `SHMPIPE_PEER_DIED` (its process died),
/// `SHMPIPE_PROTOCOL` (a malformed request, dropped), `SHMPIPE_TOO_LARGE`
/// (the handler returned more than `cap`; no reply sent),
/// `SHMPIPE_REMOVED`, `SHMPIPE_CORRUPT`, `SHMPIPE_BUSY` or
/// `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `d` is NULL or a live duplex handle; `handler` is NULL or a function as
/// described; `served` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_try_serve(
    d: *mut shmpipe_duplex,
    handler: shmpipe_serve_fn,
    ctx: *mut c_void,
    served: *mut c_int,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        unsafe { guard::store(served, 0) };
        // SAFETY: forwarded contract.
        let h = unsafe { duplex(d) }?;
        let client = h.idle()?;
        let Some(handler) = handler else {
            return Err(Fail::null("handler"));
        };
        let _in_callback = CallbackGuard::enter(&h.state);
        let r = client.duplex().try_serve(|req, out| {
            // SAFETY: `handler` is valid by the contract.
            unsafe { run_handler(handler, ctx, req, out) }
        });
        let did = r.map_err(call_fail)?;
        // SAFETY: forwarded contract.
        unsafe { guard::store(served, c_int::from(did)) };
        Ok(())
    })
}

/// Serves requests with `handler` (as `shmpipe_duplex_try_serve`) until
/// the client closes its end, waiting between them as the receiving ring's
/// wait strategy says; `*served` (if not NULL) counts the requests
/// answered, also when the call fails. The client's orderly close ends it
/// with `SHMPIPE_OK`; a client that dies ends it with `SHMPIPE_PEER_DIED`.
///
/// # Safety
///
/// As `shmpipe_duplex_try_serve`; `served` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_serve(
    d: *mut shmpipe_duplex,
    handler: shmpipe_serve_fn,
    ctx: *mut c_void,
    served: *mut u64,
) -> c_int {
    guard(|| {
        // SAFETY: forwarded contract.
        unsafe { guard::store(served, 0) };
        // SAFETY: forwarded contract.
        let h = unsafe { duplex(d) }?;
        let client = h.idle()?;
        let Some(handler) = handler else {
            return Err(Fail::null("handler"));
        };
        let _in_callback = CallbackGuard::enter(&h.state);
        // Replies that fit are committed right after the handler returns
        // (nothing between can fail), so this counts the answered requests,
        // also when the loop ends with an error.
        let mut count = 0u64;
        let r = client.duplex().serve(|req, out| {
            let cap = out.len();
            // SAFETY: `handler` is valid by the contract.
            let n = unsafe { run_handler(handler, ctx, req, out) };
            if n <= cap {
                count += 1;
            }
            n
        });
        // SAFETY: forwarded contract.
        unsafe { guard::store(served, count) };
        r.map(drop).map_err(call_fail)
    })
}

/// The duplex's readiness descriptor (its receiving ring's), for epoll or
/// poll: readable when a receive or serve should be tried again, after
/// `shmpipe_duplex_arm` returned `*armed == 1`. Owned by the duplex: do not
/// close or read it.
///
/// # Safety
///
/// `d` is NULL or a live duplex handle; `fd` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_readiness_fd(
    d: *mut shmpipe_duplex,
    fd: *mut c_int,
) -> c_int {
    guard(|| {
        if fd.is_null() {
            return Err(Fail::null("fd"));
        }
        // SAFETY: forwarded contract.
        let rx = unsafe { duplex(d) }?.idle()?.duplex().consumer();
        let raw = rx.readiness_fd().map_err(Fail::from)?.as_raw_fd();
        // SAFETY: non-NULL, writable by the contract.
        unsafe { fd.write(raw) };
        Ok(())
    })
}

/// Prepares a wait on the readiness descriptor, as `shmpipe_consumer_arm`
/// on the duplex's receiving ring: `*armed = 1`: wait until it is
/// readable; `0`: try now.
///
/// # Safety
///
/// `d` is NULL or a live duplex handle; `armed` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_arm(d: *mut shmpipe_duplex, armed: *mut c_int) -> c_int {
    guard(|| {
        if armed.is_null() {
            return Err(Fail::null("armed"));
        }
        // SAFETY: forwarded contract.
        let rx = unsafe { duplex(d) }?.idle()?.duplex().consumer();
        let a = rx.arm().map_err(recv_fail)?;
        // SAFETY: non-NULL, writable by the contract.
        unsafe { armed.write(c_int::from(a)) };
        Ok(())
    })
}

/// For the wait set: undoes `shmpipe_duplex_arm` (nothing if the handle is
/// busy).
///
/// # Safety
///
/// `d` is NULL or a live duplex handle.
pub(crate) unsafe fn duplex_disarm(d: *mut shmpipe_duplex) {
    // SAFETY: forwarded contract.
    if let Ok(c) = unsafe { duplex(d) }.and_then(|h| h.idle()) {
        c.duplex().consumer().disarm();
    }
}

/// Closes the duplex: the other end's receives drain what was sent, then
/// return `SHMPIPE_DISCONNECTED` (a server's `shmpipe_duplex_serve` ends).
/// NULL is ignored; a call from inside the duplex's own serve handler is
/// ignored too (the handle stays open).
///
/// # Safety
///
/// `d` is NULL or a live duplex handle, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_duplex_close(d: *mut shmpipe_duplex) {
    guard_void(|| {
        if d.is_null() {
            return Ok(());
        }
        // SAFETY: live handle by the contract.
        if unsafe { &*d }.state.get() == State::Callback {
            return Err(Fail::new(
                SHMPIPE_BUSY,
                "shmpipe_duplex_close called from inside the duplex's own serve handler: ignored",
            ));
        }
        // SAFETY: from `Box::into_raw` in `shmpipe_duplex::new`, given up
        // by the caller.
        drop(unsafe { Box::from_raw(d) });
        Ok(())
    });
}

/// The bytes of a message argument.
///
/// # Safety
///
/// `msg` is NULL or readable for `len` bytes for `'a`.
unsafe fn bytes<'a>(msg: *const c_void, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if msg.is_null() {
        return Err(Fail::null(what));
    }
    if isize::try_from(len).is_err() {
        return Err(Fail::new(
            SHMPIPE_INVALID_ARGUMENT,
            format!("message length {len} is not a valid object size"),
        ));
    }
    // SAFETY: non-NULL, at most isize::MAX bytes, readable by the contract.
    Ok(unsafe { slice::from_raw_parts(msg.cast::<u8>(), len) })
}

/// A writable buffer argument.
///
/// # Safety
///
/// `buf` is NULL or writable for `cap` bytes for `'a`.
unsafe fn buffer<'a>(buf: *mut c_void, cap: usize) -> Result<&'a mut [u8], Fail> {
    if cap == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return Err(Fail::null("buf"));
    }
    if isize::try_from(cap).is_err() {
        return Err(Fail::new(
            SHMPIPE_INVALID_ARGUMENT,
            format!("buffer size {cap} is not a valid object size"),
        ));
    }
    // SAFETY: non-NULL, at most isize::MAX bytes, writable by the contract.
    // The bytes need not be initialised: only written.
    Ok(unsafe { slice::from_raw_parts_mut(buf.cast::<u8>(), cap) })
}
