//! The death watcher: one thread per process that sleeps on the pidfds of
//! the peers of this process's futex sleepers and wakes a sleeper the
//! moment its peer exits, so that a parked side needs no periodic wake-ups
//! to notice a dead peer.
//!
//! A pidfd becomes readable when its process exits (`pidfd_open(2)`, Linux
//! 5.3). A handle about to sleep on its futex registers its verified peer's
//! pidfd once ([`watch`]); the thread, in `epoll_wait`, bumps that handle's
//! own `event` word and `FUTEX_WAKE`s it when the pidfd fires, and sets the
//! [`Watch`]'s flag so the woken handle checks its peer at once. The thread
//! starts on the first registration and lives as long as the process; it
//! costs nothing while no peer dies. Where pidfds, epoll or threads are not
//! available, [`watch`] returns `None` and sleeps stay bounded by the
//! heartbeat, as before.

#![allow(clippy::disallowed_types)] // process-local state, not protocol state

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::event::epoll;

use crate::mapping::Mapping;
use crate::side::Side;
use crate::sync::Ordering::Release;

/// What the thread does when a pidfd fires: wake this side of this ring.
struct Entry {
    _pidfd: OwnedFd,
    mapping: Arc<Mapping>,
    side: Side,
    fired: Fired,
}

struct Watcher {
    epoll: OwnedFd,
    entries: Mutex<HashMap<u64, Entry>>,
    next_key: AtomicU64,
}

/// A registration; dropping it unregisters.
#[derive(Debug)]
pub(crate) struct Watch {
    key: u64,
    fired: Fired,
}

impl Watch {
    /// The flag the watcher thread sets when the peer's process exits.
    pub(crate) fn fired(&self) -> Fired {
        self.fired.clone()
    }
}

/// Set by the watcher thread when a watched peer's process exited.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fired(Arc<AtomicBool>);

impl Fired {
    /// Whether the peer's process exited.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Relaxed)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(w) = watcher() {
            if let Some(e) = w
                .entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.key)
            {
                let _ = epoll::delete(&w.epoll, &e._pidfd);
            }
        }
    }
}

#[cfg_attr(loom, allow(dead_code))]
fn watcher() -> Option<&'static Watcher> {
    static WATCHER: OnceLock<Option<Watcher>> = OnceLock::new();
    WATCHER
        .get_or_init(|| {
            let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).ok()?;
            let thread_epoll = rustix::io::fcntl_dupfd_cloexec(&epoll, 0).ok()?;
            std::thread::Builder::new()
                .name("shmpipe-death-watcher".into())
                .spawn(move || run(thread_epoll))
                .ok()?;
            Some(Watcher {
                epoll,
                entries: Mutex::new(HashMap::new()),
                next_key: AtomicU64::new(1),
            })
        })
        .as_ref()
}

fn run(epoll_fd: OwnedFd) {
    let mut events = Vec::with_capacity(16);
    loop {
        events.clear();
        match epoll::wait(&epoll_fd, rustix::buffer::spare_capacity(&mut events), None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
        let Some(w) = watcher() else { return };
        let entries = w.entries.lock().unwrap_or_else(|p| p.into_inner());
        for ev in &events {
            if let Some(e) = entries.get(&ev.data.u64()) {
                e.fired.0.store(true, Relaxed);
                let hdr = e.mapping.view.header();
                let own = match e.side {
                    Side::Producer => &hdr.producer,
                    Side::Consumer => &hdr.consumer,
                };
                // ORDERING: Release, as the publisher's bump in
                // `wake::notify`: the sleeper's W1 load may pair with it.
                own.event.fetch_add(1, Release);
                own.event.wake_all();
            }
        }
    }
}

/// Starts the watcher thread if it is not running yet, so that the first
/// sleep of a handle does not pay for a thread's creation (a process that
/// claims a side of a shared ring will likely wait on it). Does nothing
/// under loom.
pub(crate) fn start() {
    #[cfg(not(loom))]
    let _ = watcher();
}

/// Under loom there is no watcher: sleeps keep their heartbeat.
#[cfg(loom)]
pub(crate) fn watch(_: BorrowedFd<'_>, _: &Arc<Mapping>, _: Side) -> Option<Watch> {
    None
}

/// Registers `pidfd` (the verified peer of `side` of `mapping`): when it
/// fires, that side is woken. `None` if the watcher cannot run here.
#[cfg(not(loom))]
pub(crate) fn watch(pidfd: BorrowedFd<'_>, mapping: &Arc<Mapping>, side: Side) -> Option<Watch> {
    let w = watcher()?;
    let own = rustix::io::fcntl_dupfd_cloexec(pidfd, 0).ok()?;
    let key = w.next_key.fetch_add(1, Relaxed);
    let fired = Fired::default();
    let mut entries = w.entries.lock().unwrap_or_else(|p| p.into_inner());
    epoll::add(
        &w.epoll,
        own.as_fd(),
        epoll::EventData::new_u64(key),
        epoll::EventFlags::IN | epoll::EventFlags::ONESHOT,
    )
    .ok()?;
    entries.insert(
        key,
        Entry {
            _pidfd: own,
            mapping: Arc::clone(mapping),
            side,
            fired: fired.clone(),
        },
    );
    Some(Watch { key, fired })
}
