//! `shmpipe_waitset`: one C thread waits on many consumers and producers.
//!
//! The set borrows the handles (they stay the caller's: close them only
//! after removing them or closing the set) and puts each one's readiness
//! descriptor in one epoll set. A wait arms every member, re-checks them,
//! sleeps in `epoll_wait`, and disarms them all before it returns.

use std::ffi::c_int;
use std::os::fd::OwnedFd;

use rustix::event::epoll;

use crate::consumer::consumer_disarm;
use crate::guard::{guard, guard_void, Fail, Wait};
use crate::producer::producer_disarm;
use crate::session::duplex_disarm;
use crate::*;

enum Handle {
    Consumer(*mut shmpipe_consumer),
    Producer(*mut shmpipe_producer),
    Duplex(*mut shmpipe_duplex),
    /// Level-triggered: its socket is readable while a client waits.
    Listener,
}

/// A set of handles one thread waits on. Opaque; from
/// `shmpipe_waitset_create`, freed by `shmpipe_waitset_close`.
pub struct shmpipe_waitset {
    epoll: OwnedFd,
    members: Vec<(u64, Handle, c_int)>,
}

/// Makes an empty set and stores it in `*out`.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_IO` or `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_waitset_create(out: *mut *mut shmpipe_waitset) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(Fail::null("out"));
        }
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|e| Fail::new(SHMPIPE_IO, format!("epoll_create1: {e}")))?;
        let ws = Box::new(shmpipe_waitset {
            epoll,
            members: Vec::new(),
        });
        // SAFETY: non-NULL, writable by the contract.
        unsafe { out.write(Box::into_raw(ws)) };
        Ok(())
    })
}

fn add(ws: &mut shmpipe_waitset, token: u64, h: Handle, fd: c_int) -> Result<(), Fail> {
    if ws.members.iter().any(|(t, _, _)| *t == token) {
        return Err(Fail::new(
            SHMPIPE_INVALID_ARGUMENT,
            format!("token {token} is already in the wait set"),
        ));
    }
    // SAFETY: `fd` is the member's readiness descriptor, open while the
    // member lives (the caller's contract keeps it alive while in the set).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    epoll::add(
        &ws.epoll,
        bfd,
        epoll::EventData::new_u64(token),
        epoll::EventFlags::IN,
    )
    .map_err(|e| Fail::new(SHMPIPE_IO, format!("epoll_ctl: {e}")))?;
    ws.members.push((token, h, fd));
    Ok(())
}

/// Adds a consumer, named by `token` in `shmpipe_waitset_wait`'s results:
/// ready when a receive would not return `SHMPIPE_EMPTY`. The consumer
/// stays yours; keep it open while it is in the set.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_IO`, `SHMPIPE_BUSY` or
/// `SHMPIPE_INVALID_ARGUMENT` (NULL, or `token` already used).
///
/// # Safety
///
/// `ws` and `c` are NULL or live handles; `c` outlives its membership.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_waitset_add_consumer(
    ws: *mut shmpipe_waitset,
    c: *mut shmpipe_consumer,
    token: u64,
) -> c_int {
    let mut fd = -1;
    // SAFETY: forwarded contract.
    let rc = unsafe { shmpipe_consumer_readiness_fd(c, &mut fd) };
    if rc != SHMPIPE_OK {
        return rc;
    }
    guard(|| {
        // SAFETY: NULL or live, by the contract.
        let ws = unsafe { ws.as_mut() }.ok_or_else(|| Fail::null("wait set"))?;
        add(ws, token, Handle::Consumer(c), fd)
    })
}

/// Adds a producer, named by `token`: ready when a send would not return
/// `SHMPIPE_FULL`. As `shmpipe_waitset_add_consumer` otherwise.
///
/// # Safety
///
/// `ws` and `p` are NULL or live handles; `p` outlives its membership.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_waitset_add_producer(
    ws: *mut shmpipe_waitset,
    p: *mut shmpipe_producer,
    token: u64,
) -> c_int {
    let mut fd = -1;
    // SAFETY: forwarded contract.
    let rc = unsafe { shmpipe_producer_readiness_fd(p, &mut fd) };
    if rc != SHMPIPE_OK {
        return rc;
    }
    guard(|| {
        // SAFETY: NULL or live, by the contract.
        let ws = unsafe { ws.as_mut() }.ok_or_else(|| Fail::null("wait set"))?;
        add(ws, token, Handle::Producer(p), fd)
    })
}

/// Adds a duplex, named by `token`: ready when a request or message is
/// waiting on it, or its peer closed or died (then
/// `shmpipe_duplex_try_serve` or `shmpipe_duplex_recv` with timeout 0
/// says which). As `shmpipe_waitset_add_consumer` otherwise.
///
/// # Safety
///
/// `ws` and `d` are NULL or live handles; `d` outlives its membership.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_waitset_add_duplex(
    ws: *mut shmpipe_waitset,
    d: *mut shmpipe_duplex,
    token: u64,
) -> c_int {
    let mut fd = -1;
    // SAFETY: forwarded contract.
    let rc = unsafe { shmpipe_duplex_readiness_fd(d, &mut fd) };
    if rc != SHMPIPE_OK {
        return rc;
    }
    guard(|| {
        // SAFETY: NULL or live, by the contract.
        let ws = unsafe { ws.as_mut() }.ok_or_else(|| Fail::null("wait set"))?;
        add(ws, token, Handle::Duplex(d), fd)
    })
}

/// Adds a listener, named by `token`: ready while a client waits to be
/// accepted (accept it with `shmpipe_listener_accept_timeout(l, 0, ...)`).
/// As `shmpipe_waitset_add_consumer` otherwise.
///
/// # Safety
///
/// `ws` and `l` are NULL or live handles; `l` outlives its membership.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_waitset_add_listener(
    ws: *mut shmpipe_waitset,
    l: *mut shmpipe_listener,
    token: u64,
) -> c_int {
    let mut fd = -1;
    // SAFETY: forwarded contract.
    let rc = unsafe { shmpipe_listener_fd(l, &mut fd) };
    if rc != SHMPIPE_OK {
        return rc;
    }
    guard(|| {
        // SAFETY: NULL or live, by the contract.
        let ws = unsafe { ws.as_mut() }.ok_or_else(|| Fail::null("wait set"))?;
        add(ws, token, Handle::Listener, fd)
    })
}

/// Takes the member named `token` out of the set (the handle is not
/// closed). Returns `SHMPIPE_OK` or `SHMPIPE_INVALID_ARGUMENT` (no such
/// token).
///
/// # Safety
///
/// `ws` is NULL or a live wait set whose members are live.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_waitset_remove(ws: *mut shmpipe_waitset, token: u64) -> c_int {
    guard(|| {
        // SAFETY: NULL or live, by the contract.
        let ws = unsafe { ws.as_mut() }.ok_or_else(|| Fail::null("wait set"))?;
        let i = ws
            .members
            .iter()
            .position(|(t, _, _)| *t == token)
            .ok_or_else(|| Fail::new(SHMPIPE_INVALID_ARGUMENT, format!("no member {token}")))?;
        let (_, _, fd) = ws.members.remove(i);
        // SAFETY: the member's descriptor, open while the member lives.
        let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = epoll::delete(&ws.epoll, bfd);
        Ok(())
    })
}

/// Arms a member; `Ok(true)` if it must be waited for.
///
/// # Safety
///
/// The member's handle is live.
unsafe fn arm(h: &Handle) -> Result<bool, Fail> {
    let mut armed: c_int = 0;
    // SAFETY: forwarded contract.
    let rc = unsafe {
        match *h {
            Handle::Consumer(c) => shmpipe_consumer_arm(c, &mut armed),
            Handle::Producer(p) => shmpipe_producer_arm(p, &mut armed),
            Handle::Duplex(d) => shmpipe_duplex_arm(d, &mut armed),
            Handle::Listener => return Ok(true),
        }
    };
    match rc {
        SHMPIPE_OK => Ok(armed == 1),
        // A dead peer (or another state the member's next call reports)
        // makes it ready.
        _ => Ok(false),
    }
}

/// Undoes a member's arming.
///
/// # Safety
///
/// The member's handle is live.
unsafe fn disarm(h: &Handle) {
    // SAFETY: forwarded contract.
    unsafe {
        match *h {
            Handle::Consumer(c) => consumer_disarm(c),
            Handle::Producer(p) => producer_disarm(p),
            Handle::Duplex(d) => duplex_disarm(d),
            Handle::Listener => {}
        }
    }
}

/// Waits until at least one member is ready or `timeout_ns` passes (`< 0`:
/// as long as it takes, `0`: only check), and stores up to `cap` ready
/// tokens in `tokens` and their number in `*n` (0 after a timeout, with
/// `SHMPIPE_OK`). Then receive or send with the non-blocking calls until
/// `SHMPIPE_EMPTY` / `SHMPIPE_FULL`.
///
/// Returns `SHMPIPE_OK`, `SHMPIPE_IO` or `SHMPIPE_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `ws` is NULL or a live wait set whose members are live and not used by
/// another thread during the call; `tokens` is NULL or writable for `cap`
/// values; `n` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_waitset_wait(
    ws: *mut shmpipe_waitset,
    timeout_ns: i64,
    tokens: *mut u64,
    cap: usize,
    n: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: NULL or live, by the contract.
        let ws = unsafe { ws.as_mut() }.ok_or_else(|| Fail::null("wait set"))?;
        if n.is_null() || (tokens.is_null() && cap > 0) {
            return Err(Fail::null(if n.is_null() { "n" } else { "tokens" }));
        }
        let mut ready: Vec<u64> = Vec::new();
        for (t, h, _) in &ws.members {
            // SAFETY: members are live by the contract.
            if !unsafe { arm(h) }? {
                ready.push(*t);
            }
        }
        let deadline = match Wait::from_ns(timeout_ns) {
            Wait::Never => Some(std::time::Instant::now()),
            Wait::Until(d) => d,
        };
        let mut events = Vec::with_capacity(64);
        while ready.is_empty() {
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d {
                        break;
                    }
                    let left = d - now;
                    Some(rustix::time::Timespec {
                        tv_sec: left.as_secs() as i64,
                        tv_nsec: i64::from(left.subsec_nanos()),
                    })
                }
            };
            events.clear();
            match epoll::wait(
                &ws.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Fail::new(SHMPIPE_IO, format!("epoll_wait: {e}"))),
            }
            for ev in &events {
                let t = ev.data.u64();
                if !ready.contains(&t) {
                    ready.push(t);
                }
            }
        }
        for (_, h, _) in &ws.members {
            // SAFETY: members are live by the contract.
            unsafe { disarm(h) };
        }
        let count = ready.len().min(cap);
        for (i, t) in ready.iter().take(count).enumerate() {
            // SAFETY: `tokens` is writable for `cap >= count` values.
            unsafe { tokens.add(i).write(*t) };
        }
        // SAFETY: non-NULL, writable by the contract.
        unsafe { n.write(count) };
        Ok(())
    })
}

/// Frees the set (its members are not closed). NULL is ignored.
///
/// # Safety
///
/// `ws` is NULL or a live wait set, not used again after this call.
#[no_mangle]
pub unsafe extern "C" fn shmpipe_waitset_close(ws: *mut shmpipe_waitset) {
    guard_void(|| {
        if !ws.is_null() {
            // SAFETY: from `Box::into_raw` in `shmpipe_waitset_create`.
            drop(unsafe { Box::from_raw(ws) });
        }
        Ok(())
    });
}
