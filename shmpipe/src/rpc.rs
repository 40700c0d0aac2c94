//! Request/response over a [`Duplex`]: [`Client::call`] on one end,
//! [`Duplex::try_serve`] / [`Duplex::serve`] (or
//! [`try_recv_request`](Duplex::try_recv_request) and
//! [`reply`](Duplex::reply)) on the other.
//!
//! Each message is one slot: an 8-byte request id (little-endian), then
//! the body. The client numbers its calls 1, 2, 3, ...; the server echoes
//! the id in the reply. A reply with an older id (to a call that timed
//! out) is skipped; one with a newer id, or a message shorter than its id,
//! is a [`CallError::BadMessage`]: the peer broke the protocol. Bodies are
//! copied into and read out of the slots in place, with no allocation on
//! the server side.

use std::time::{Duration, Instant};

use crate::duplex::Duplex;
use crate::error::{CallError, Error, RecvError, TryRecvError, TrySendError};
use crate::handles::{Consumer, WriteSlot};
use crate::listener::{connect_with, Connection, PeerCred};
use crate::ring::RingBuilder;

/// Bytes of the request id in front of every body.
pub const REQUEST_ID_LEN: usize = 8;

fn split_id(msg: &[u8]) -> Result<(u64, &[u8]), CallError> {
    match msg.split_first_chunk::<REQUEST_ID_LEN>() {
        Some((id, body)) => Ok((u64::from_le_bytes(*id), body)),
        None => Err(CallError::BadMessage {
            reason: "a message shorter than its 8-byte id",
            found: msg.len() as u64,
        }),
    }
}

/// `PeerDied` if the client's process holds its side and is dead: the
/// non-blocking receives say only `Empty` then (a client that closed its
/// end is reported by them as `Disconnected`).
fn dead_peer(rx: &mut Consumer) -> Option<CallError> {
    let pid = rx.peer_pid()?;
    (!rx.peer_alive()).then_some(CallError::PeerDied { pid })
}

/// Runs `handler` on the request `req` and publishes its reply in `slot`
/// under the request's id.
fn answer(
    req: &[u8],
    mut slot: WriteSlot<'_>,
    handler: impl FnOnce(&[u8], &mut [u8]) -> usize,
) -> Result<(), CallError> {
    let (id, body) = split_id(req)?;
    let (head, out) = slot.split_at_mut(REQUEST_ID_LEN);
    let max = out.len();
    let n = handler(body, out);
    if n > max {
        return Err(CallError::TooLarge { len: n, max });
    }
    head.copy_from_slice(&id.to_le_bytes());
    slot.commit(REQUEST_ID_LEN + n);
    Ok(())
}

/// A request taken with [`Duplex::try_recv_request`]: its id (to pass to
/// [`Duplex::reply`]) and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The id the reply must carry.
    pub id: u64,
    /// The request's bytes.
    pub body: Vec<u8>,
}

impl Duplex {
    /// Serves one request if one is waiting: `handler` gets its body and
    /// the reply slot's buffer, and returns the reply's length. Returns
    /// whether a request was served; `false` if none was waiting, or if the
    /// reply ring is full (the client is not reading its replies), in which
    /// case the request stays queued. With nothing waiting it checks that
    /// the client lives, so a server woken by a [`WaitSet`](crate::WaitSet)
    /// for a client that died learns it here.
    ///
    /// # Errors
    ///
    /// [`CallError::Disconnected`] once the client closed and every
    /// request was served, [`CallError::PeerDied`],
    /// [`CallError::BadMessage`] (a malformed request, which is dropped),
    /// [`CallError::TooLarge`] (`handler` returned more than the buffer;
    /// no reply is sent) or [`CallError::Corrupt`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmpipe::{Client, Duplex, RingBuilder};
    ///
    /// let (client_end, mut server) = Duplex::pair(RingBuilder::new().slots(4))?;
    /// let mut client = Client::new(client_end);
    /// let caller = std::thread::spawn(move || client.call(b"abc").unwrap());
    /// while !server.try_serve(|req, out| {
    ///     out[..req.len()].copy_from_slice(req);
    ///     out[..req.len()].make_ascii_uppercase();
    ///     req.len()
    /// })? {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(caller.join().unwrap(), b"ABC");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_serve(
        &mut self,
        handler: impl FnOnce(&[u8], &mut [u8]) -> usize,
    ) -> Result<bool, CallError> {
        let (tx, rx) = self.halves();
        // Reply slot first: with no room, the request stays in its ring.
        let slot = match tx.try_reserve() {
            Ok(s) => s,
            Err(TrySendError::Full(())) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        match rx.try_borrow() {
            Ok(req) => {
                answer(&req, slot, handler)?;
                return Ok(true);
            }
            // Dropping the unfilled reply slot publishes nothing.
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        dead_peer(rx).map_or(Ok(false), Err)
    }

    /// Serves requests with `handler` until the client closes its end;
    /// returns how many were served. Waits between requests as the
    /// receiving half's wait strategy says.
    ///
    /// # Errors
    ///
    /// As [`try_serve`](Self::try_serve), except that the client's orderly
    /// close ends the loop with `Ok`.
    pub fn serve(
        &mut self,
        mut handler: impl FnMut(&[u8], &mut [u8]) -> usize,
    ) -> Result<u64, CallError> {
        let mut served = 0;
        loop {
            let (tx, rx) = self.halves();
            let req = match rx.borrow() {
                Ok(r) => r,
                Err(RecvError::Disconnected) => return Ok(served),
                Err(e) => return Err(e.into()),
            };
            answer(&req, tx.reserve()?, &mut handler)?;
            drop(req);
            served += 1;
        }
    }

    /// Takes the next request if one is waiting (`None` if none is),
    /// copying its body; answer it with [`reply`](Self::reply).
    ///
    /// # Errors
    ///
    /// As [`try_serve`](Self::try_serve).
    pub fn try_recv_request(&mut self) -> Result<Option<Request>, CallError> {
        let rx = self.consumer();
        match rx.try_borrow() {
            Ok(req) => {
                let (id, body) = split_id(&req)?;
                return Ok(Some(Request {
                    id,
                    body: body.to_vec(),
                }));
            }
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        dead_peer(rx).map_or(Ok(None), Err)
    }

    /// Waits until `deadline` (`None`: as long as it takes) for the next
    /// request and copies its body into `buf`; returns its id (for
    /// [`reply`](Self::reply)) and length. No allocation.
    ///
    /// # Errors
    ///
    /// [`CallError::Timeout`], [`CallError::BufferTooSmall`] (the request
    /// is dropped), and those of [`try_serve`](Self::try_serve).
    pub fn recv_request(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<(u64, usize), CallError> {
        let rx = self.consumer();
        let req = match deadline {
            None => rx.borrow()?,
            Some(d) => rx.borrow_deadline(d)?,
        };
        let (id, body) = split_id(&req)?;
        let dst = buf
            .get_mut(..body.len())
            .ok_or(CallError::BufferTooSmall { needed: body.len() })?;
        dst.copy_from_slice(body);
        Ok((id, body.len()))
    }

    /// Sends the reply to request `id`, waiting for room as long as it
    /// takes (the client reads its replies).
    ///
    /// # Errors
    ///
    /// [`CallError::TooLarge`], [`CallError::Disconnected`],
    /// [`CallError::PeerDied`], [`CallError::Removed`] or
    /// [`CallError::Corrupt`].
    pub fn reply(&mut self, id: u64, body: &[u8]) -> Result<(), CallError> {
        let mut slot = self.producer().reserve()?;
        let max = slot.len() - REQUEST_ID_LEN;
        if body.len() > max {
            return Err(CallError::TooLarge {
                len: body.len(),
                max,
            });
        }
        slot[..REQUEST_ID_LEN].copy_from_slice(&id.to_le_bytes());
        slot[REQUEST_ID_LEN..REQUEST_ID_LEN + body.len()].copy_from_slice(body);
        slot.commit(REQUEST_ID_LEN + body.len());
        Ok(())
    }
}

/// The calling end of a request/response [`Duplex`]: each
/// [`call`](Self::call) sends a request and waits for its reply.
///
/// # Examples
///
/// ```
/// use shmpipe::{Client, Listener};
///
/// # let path = format!("/tmp/shmpipe-doc-client-{}.sock", std::process::id());
/// let mut listener = Listener::bind(&path)?;
/// let server = std::thread::spawn(move || {
///     let mut conn = listener.accept().unwrap();
///     // Reply with the request's length, until the client goes.
///     conn.serve(|req, out| {
///         out[..8].copy_from_slice(&(req.len() as u64).to_le_bytes());
///         8
///     })
///     .unwrap()
/// });
/// let mut client = Client::connect(&path)?; // in another process, usually
/// assert_eq!(client.call(b"four")?, 4u64.to_le_bytes());
/// assert_eq!(client.call(b"")?, 0u64.to_le_bytes());
/// drop(client);
/// assert_eq!(server.join().unwrap(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    duplex: Duplex,
    next_id: u64,
    server: Option<PeerCred>,
}

impl Client {
    /// Connects to the listener at `address` (see
    /// [`listener_path`](crate::listener_path)).
    ///
    /// # Errors
    ///
    /// As [`connect`](crate::connect).
    pub fn connect(address: impl AsRef<str>) -> Result<Client, Error> {
        Client::connect_with(&RingBuilder::new(), address)
    }

    /// Connects with `builder`'s wait settings (for example
    /// [`WaitStrategy::Spin`](crate::WaitStrategy::Spin) for the lowest
    /// latency); see [`connect_with`](crate::connect_with).
    ///
    /// # Errors
    ///
    /// As [`connect_with`](crate::connect_with).
    pub fn connect_with(builder: &RingBuilder, address: impl AsRef<str>) -> Result<Client, Error> {
        Ok(Client::from_connection(connect_with(builder, address)?))
    }

    /// A client on a connection from [`connect`](crate::connect).
    pub fn from_connection(conn: Connection) -> Client {
        let server = Some(conn.peer_cred());
        Client {
            duplex: conn.into_duplex(),
            next_id: 1,
            server,
        }
    }

    /// A client on any duplex whose other end serves requests.
    pub fn new(duplex: Duplex) -> Client {
        Client {
            duplex,
            next_id: 1,
            server: None,
        }
    }

    /// The server's process, user and group, for a client made by
    /// connecting.
    pub fn server_cred(&self) -> Option<PeerCred> {
        self.server
    }

    /// The largest request body (a slot less the 8-byte id).
    pub fn max_request(&self) -> usize {
        self.duplex.max_message().saturating_sub(REQUEST_ID_LEN)
    }

    /// The duplex, to use directly.
    pub fn duplex(&mut self) -> &mut Duplex {
        &mut self.duplex
    }

    /// The duplex back.
    pub fn into_duplex(self) -> Duplex {
        self.duplex
    }

    /// Sends `request` and waits as long as it takes for its reply.
    ///
    /// # Errors
    ///
    /// As [`call_deadline`](Self::call_deadline), never `Timeout`.
    pub fn call(&mut self, request: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call_with(request, None, <[u8]>::to_vec)
    }

    /// Sends `request` and waits at most `timeout` for its reply.
    ///
    /// # Errors
    ///
    /// As [`call_deadline`](Self::call_deadline).
    pub fn call_timeout(
        &mut self,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        self.call_with(request, Instant::now().checked_add(timeout), <[u8]>::to_vec)
    }

    /// Sends `request` and waits until `deadline` (`None`: as long as it
    /// takes) for its reply.
    ///
    /// # Errors
    ///
    /// [`CallError::Timeout`] (a late reply is skipped by the next call),
    /// [`CallError::TooLarge`], [`CallError::Disconnected`],
    /// [`CallError::PeerDied`] (the server died), [`CallError::BadMessage`]
    /// or [`CallError::Corrupt`].
    pub fn call_deadline(
        &mut self,
        request: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Vec<u8>, CallError> {
        self.call_with(request, deadline, <[u8]>::to_vec)
    }

    /// Sends `request`, waits until `deadline` for its reply and copies it
    /// into `out`; returns its length. No allocation.
    ///
    /// # Errors
    ///
    /// As [`call_deadline`](Self::call_deadline), and
    /// [`CallError::BufferTooSmall`].
    pub fn call_into(
        &mut self,
        request: &[u8],
        out: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, CallError> {
        self.call_with(request, deadline, |reply| {
            let dst = out
                .get_mut(..reply.len())
                .ok_or(CallError::BufferTooSmall {
                    needed: reply.len(),
                })?;
            dst.copy_from_slice(reply);
            Ok(reply.len())
        })?
    }

    /// Sends `request`, waits until `deadline` for its reply, and returns
    /// what `read` makes of the reply's bytes, read in place.
    ///
    /// # Errors
    ///
    /// As [`call_deadline`](Self::call_deadline).
    pub fn call_with<R>(
        &mut self,
        request: &[u8],
        deadline: Option<Instant>,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CallError> {
        let id = self.next_id;
        let tx = self.duplex.producer();
        let mut slot = match deadline {
            None => tx.reserve()?,
            Some(d) => tx.reserve_deadline(d)?,
        };
        let max = slot.len() - REQUEST_ID_LEN;
        if request.len() > max {
            return Err(CallError::TooLarge {
                len: request.len(),
                max,
            });
        }
        slot[..REQUEST_ID_LEN].copy_from_slice(&id.to_le_bytes());
        slot[REQUEST_ID_LEN..REQUEST_ID_LEN + request.len()].copy_from_slice(request);
        slot.commit(REQUEST_ID_LEN + request.len());
        self.next_id += 1;
        let rx = self.duplex.consumer();
        loop {
            let reply = match deadline {
                None => rx.borrow()?,
                Some(d) => rx.borrow_deadline(d)?,
            };
            let (got, body) = split_id(&reply)?;
            if got == id {
                return Ok(read(body));
            }
            if got > id {
                return Err(CallError::BadMessage {
                    reason: "a reply to a call not yet made",
                    found: got,
                });
            }
            // A late reply to a call that timed out: skip it.
        }
    }
}
