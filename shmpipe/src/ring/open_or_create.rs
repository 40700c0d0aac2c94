//! [`RingBuilder::open_or_create`] and [`RingBuilder::wait_for_creation`]:
//! rings that any number of processes, started in any order, meet at.
//!
//! Why exactly one of several racing processes creates (`docs/design.md`,
//! "Open or create"): every attempt starts with an exclusive create
//! (`O_CREAT | O_EXCL`, `IPC_CREAT | IPC_EXCL`), which the kernel grants to
//! one caller per name. The others get `EEXIST` and open the ring, waiting
//! (up to the open timeout) for its creator to publish the header
//! (`INIT_READY`, Release; the opener's Acquire load). A name that vanishes
//! between the failed create and the open (its creator failed, someone
//! removed it, a reclaimer replaced it) sends the opener round again, a
//! bounded number of times.

use std::time::{Duration, Instant};

use super::{Ring, RingBuilder};
use crate::address::{Address, AsAddress};
use crate::error::Error;
use crate::reclaim::{self, Staleness};

/// How many create-then-open rounds `open_or_create` makes before it gives
/// up with [`Error::Vanished`].
const ATTEMPTS: u32 = 64;
/// The longest pause between two rounds, or between two looks for a ring
/// that does not exist yet.
const MAX_PAUSE: Duration = Duration::from_millis(20);

impl RingBuilder {
    /// Opens the ring at `address`, or creates it if there is none, so that
    /// peers can start in any order. Of any number of processes calling
    /// this at once on one name, exactly one creates the ring
    /// ([`Ring::created`] says which); the others open that same ring,
    /// waiting for its creator to finish initialising it (up to
    /// [`open_timeout`](Self::open_timeout)). Works for every named
    /// backend (`shm:`, `file:`, `sysv:`).
    ///
    /// An existing ring is opened as it is, checked against the geometry
    /// this builder was given ([`Error::GeometryMismatch`]; see
    /// [`accept_any_geometry`](Self::accept_any_geometry)). With
    /// [`reclaim_stale(true)`](Self::reclaim_stale) a stale one (its
    /// creator and every holder dead) is replaced instead, by one of the
    /// racing processes; without it, a stale ring is opened like any
    /// other.
    ///
    /// ```
    /// use shmpipe::RingBuilder;
    ///
    /// # let name = format!("shm:doc-open-or-create-{}", std::process::id());
    /// let mut b = RingBuilder::new();
    /// b.slots(64).max_message(1000).unlink_on_drop(true);
    /// let first = b.open_or_create(&name)?; // nothing there: creates
    /// let second = b.open_or_create(&name)?; // opens the same ring
    /// assert!(first.created() && !second.created());
    /// let mut tx = first.producer()?;
    /// tx.send(b"hello")?;
    /// assert_eq!(second.consumer()?.try_recv_vec()?, b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`create`](Self::create) (but not `AlreadyExists`) and of
    /// [`open`](Self::open), and [`Error::Vanished`] when the ring
    /// disappeared between creating and opening it 64 times in a row.
    /// [`Error::InUse`] never: a ring in use is opened.
    pub fn open_or_create(&self, address: impl AsAddress) -> Result<Ring, Error> {
        let address = address.to_address()?;
        let geometry = self.geometry()?;
        let mut pause = Duration::from_micros(200);
        for _ in 0..ATTEMPTS {
            match self.create_at(&address, geometry) {
                Ok(ring) => return Ok(ring),
                // Someone else's ring: a live one with `reclaim_stale`
                // (InUse), or any one without.
                Err(Error::AlreadyExists { .. } | Error::InUse { .. }) => {}
                Err(e) => return Err(e),
            }
            match self.open_once(&address) {
                Ok(ring) if self.reclaim && is_stale(&ring)? => {
                    // Another reclaimer is replacing it: meet its new ring.
                }
                Ok(ring) => {
                    self.check_geometry(&ring)?;
                    return Ok(ring);
                }
                // Removed since our create failed: create again.
                Err(Error::NotFound { .. }) => {}
                // Its creator died mid-way; the next round reclaims it.
                Err(Error::NotInitialized { .. }) if self.reclaim => {}
                Err(e) => return Err(e),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
        }
        Err(Error::Vanished {
            address: address.to_string(),
            attempts: ATTEMPTS,
        })
    }

    /// Makes [`open`](Self::open) wait up to `timeout` for a ring that does
    /// not exist yet, instead of failing with [`Error::NotFound`] at once:
    /// for a client started before its server. It looks again after
    /// pauses growing from 1 ms to 20 ms (no busy loop), and fails with
    /// [`Error::NotCreated`] once `timeout` has passed. A ring that exists
    /// but is still being initialised is waited for as always
    /// ([`open_timeout`](Self::open_timeout)). Nothing at the name can
    /// make the wait longer: a FIFO or device planted there is refused at
    /// once ([`Error::NotARegularFile`]), never waited on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmpipe::{Error, RingBuilder};
    ///
    /// # let name = format!("shm:doc-wait-for-creation-{}", std::process::id());
    /// let mut client = RingBuilder::new();
    /// client.wait_for_creation(Duration::from_secs(5));
    /// let server = std::thread::spawn({
    ///     let name = name.clone();
    ///     move || {
    ///         std::thread::sleep(Duration::from_millis(50));
    ///         RingBuilder::new().unlink_on_drop(true).create(&name)
    ///     }
    /// });
    /// let ring = client.open(&name)?; // waits for the server
    /// # drop(ring);
    /// # drop(server.join().unwrap()?);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn wait_for_creation(&mut self, timeout: Duration) -> &mut Self {
        self.wait_for_creation = Some(timeout);
        self
    }

    /// `open_once`, looking again while nothing is there, as long as
    /// `wait_for_creation` allows.
    pub(super) fn open_waiting(&self, address: &Address) -> Result<Ring, Error> {
        let Some(timeout) = self.wait_for_creation else {
            return self.open_once(address);
        };
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match self.open_once(address) {
                Err(Error::NotFound { .. }) => {}
                r => return r,
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(Error::NotCreated {
                    address: address.to_string(),
                    waited,
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

/// Whether an opened ring is stale (creator and holders dead).
fn is_stale(ring: &Ring) -> Result<bool, Error> {
    let m = &ring.mapping;
    Ok(matches!(
        reclaim::staleness_of(&m.segment, &m.label)?,
        Staleness::Stale
    ))
}
