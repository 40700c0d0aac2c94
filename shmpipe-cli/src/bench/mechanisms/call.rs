//! Request/response: a client's call and its reply, measured by the
//! ping-pong workload (the ping is a call, the echo the server's reply).
//!
//! - `shmpipe-call-spin`, `shmpipe-call`: the server peer binds a
//!   [`Listener`] at a socket the coordinator names, the client peer
//!   [`Client::connect`]s to it (both lazily, at the first message, so
//!   neither waits for the other to start), and every round trip is
//!   `Client::call_into` against `Duplex::recv_request` and `reply`:
//!   an 8-byte request id in front of each body, both rings private
//!   memfds. Spinning, or shmpipe's default spin-then-park.
//! - `unix-stream-call`: the same pattern over a UNIX stream socket pair:
//!   a 12-byte header (id, body length) and the body written with one
//!   `write`, read until complete, the id checked.
//!
//! Other workloads (one-way streams, wake-ups, idle) are not calls: their
//! rows say so.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::fs::FileType;
use rustix::io::Errno;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use serde::{Deserialize, Serialize};
use shmpipe::{
    Client, Connection, Error, ListenerBuilder, RingBuilder, WaitStrategy, REQUEST_ID_LEN,
};

use super::{parse_link, Channel, Entry, Family, Group, Mechanism, Setup};
use crate::bench::endpoint::{adopt_fd, out_buffer, Endpoint, PeerError};
use crate::bench::jobs;
use crate::bench::protocol::{PeerSpec, Workload, END};

pub const SHMPIPE_CALL_SPIN: Entry = Entry {
    mechanism: Mechanism::ShmpipeCallSpin,
    name: "shmpipe-call-spin",
    about: "shmpipe request/response (ping-pong only): Client::call_into over a Listener \
            connection, the server's recv_request and reply; both sides spinning",
    family: &Calls,
    group: Group::Shmpipe,
    default: false,
};
pub const SHMPIPE_CALL: Entry = Entry {
    mechanism: Mechanism::ShmpipeCall,
    name: "shmpipe-call",
    about: "shmpipe request/response (ping-pong only), as shmpipe-call-spin with the default \
            spin-then-park waiting",
    family: &Calls,
    group: Group::Shmpipe,
    default: false,
};
pub const UNIX_STREAM_CALL: Entry = Entry {
    mechanism: Mechanism::UnixStreamCall,
    name: "unix-stream-call",
    about: "request/response (ping-pong only) over a UNIX stream socket pair: id and length \
            header and body in one write, read until complete",
    family: &Calls,
    group: Group::Other,
    default: false,
};

/// How long the lazy connect and accept wait for the other peer.
const MEET_TIMEOUT: Duration = Duration::from_secs(30);

/// A peer's end of a call channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLink {
    /// Whether this end calls (the ping-pong's pinging side) or serves.
    pub client: bool,
    /// shmpipe: the listener's address; unix: `None`.
    pub socket: Option<String>,
    /// shmpipe: spin (else the default strategy).
    pub spin: bool,
    /// unix: the inherited socket.
    pub fd: Option<i32>,
}

/// The request/response family.
pub struct Calls;

/// Removes a listener's socket file after the case, in case its server
/// peer was killed before it could.
struct SocketGuard(std::path::PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Family for Calls {
    fn kind(&self) -> &'static str {
        "call"
    }

    fn channel(
        &self,
        m: Mechanism,
        setup: &mut Setup<'_>,
        two_way: bool,
        _size: usize,
    ) -> Result<Channel, String> {
        if !two_way {
            return Err("a request/response mechanism: measured in ping-pong only".to_owned());
        }
        let mut ch = Channel::default();
        if m == Mechanism::UnixStreamCall {
            let (a, b) = socketpair(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC,
                None,
            )
            .map_err(|e| format!("socketpair: {e}"))?;
            let (a, b) = (ch.keep(a), ch.keep(b));
            let link = |client, fd| CallLink {
                client,
                socket: None,
                spin: false,
                fd: Some(fd),
            };
            ch.pass_producer = vec![a];
            ch.pass_consumer = vec![b];
            ch.links(self.kind(), &link(true, a), &link(false, b));
            return Ok(ch);
        }
        let socket = format!("unix:/dev/shm/{}.sock", setup.name());
        let path = shmpipe::listener_path(&socket).map_err(|e| e.to_string())?;
        ch.hold(SocketGuard(path));
        let link = |client| CallLink {
            client,
            socket: Some(socket.clone()),
            spin: m == Mechanism::ShmpipeCallSpin,
            fd: None,
        };
        ch.links(self.kind(), &link(true), &link(false));
        Ok(ch)
    }

    fn notes(&self, m: Mechanism, _w: Workload) -> Vec<String> {
        if m == Mechanism::UnixStreamCall {
            return Vec::new();
        }
        vec![format!(
            "{}: the socket only introduces the peers; calls go through two memfd rings",
            m.name()
        )]
    }

    fn clean_up(&self, run_id: u32) {
        let prefix = format!("shmpipe-bench-{run_id}-");
        if let Ok(rd) = std::fs::read_dir("/dev/shm") {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".sock") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    fn serve(&self, spec: &PeerSpec) -> Result<(), PeerError> {
        let l: CallLink = parse_link(&spec.link)?;
        match (l.fd, l.socket) {
            (Some(fd), _) => jobs::serve(UnixCallEnd::open(fd, l.client, spec.msg_size), spec),
            (None, Some(socket)) => jobs::serve(
                Ok(ShmCallEnd::open(socket, l.client, l.spin, spec.msg_size)),
                spec,
            ),
            (None, None) => Err(PeerError::new("a call link names no channel")),
        }
    }
}

/// Connects to `socket`, retrying while its server has not bound it yet.
fn connect_when_up(socket: &str, rings: &RingBuilder) -> Result<Client, PeerError> {
    let give_up = Instant::now() + MEET_TIMEOUT;
    loop {
        match Client::connect_with(rings, socket) {
            Ok(c) => return Ok(c),
            Err(Error::NoListener { .. }) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

enum ShmState {
    /// Not met yet: the server binds (and later accepts), the client
    /// connects at its first call.
    Server,
    Client,
    Serving(Connection, u64),
    Calling(Client),
}

/// One end of `shmpipe-call-spin` / `shmpipe-call`.
pub struct ShmCallEnd {
    socket: String,
    state: ShmState,
    strategy: WaitStrategy,
    out: Vec<u8>,
    inb: Vec<u8>,
    reply_len: usize,
}

impl ShmCallEnd {
    fn open(socket: String, client: bool, spin: bool, size: usize) -> ShmCallEnd {
        let strategy = if spin {
            WaitStrategy::Spin
        } else {
            WaitStrategy::DEFAULT
        };
        ShmCallEnd {
            socket,
            state: if client {
                ShmState::Client
            } else {
                ShmState::Server
            },
            strategy,
            out: out_buffer(size),
            inb: vec![0; size.max(8)],
            reply_len: 0,
        }
    }

    fn rings(&self, size: usize) -> RingBuilder {
        let mut b = RingBuilder::new();
        b.slots(16)
            .max_message((size + REQUEST_ID_LEN) as u64)
            .populate(true)
            .wait_strategy(self.strategy);
        b
    }
}

impl Endpoint for ShmCallEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        if let ShmState::Client = self.state {
            let rings = self.rings(self.out.len());
            self.state = ShmState::Calling(connect_when_up(&self.socket, &rings)?);
        }
        match &mut self.state {
            ShmState::Calling(client) => {
                if self.out[..8] == END.to_le_bytes() {
                    // The end marker: one way, no reply comes.
                    let mut msg = 0u64.to_le_bytes().to_vec();
                    msg.extend_from_slice(&self.out[..len]);
                    return client
                        .duplex()
                        .send(msg)
                        .map_err(|e| PeerError::new(e.map(drop)));
                }
                self.reply_len = client
                    .call_into(&self.out[..len], &mut self.inb, None)
                    .map_err(PeerError::new)?;
                Ok(())
            }
            ShmState::Serving(conn, id) => {
                conn.reply(*id, &self.out[..len]).map_err(PeerError::new)
            }
            _ => Err(PeerError::new("nothing received to reply to")),
        }
    }

    fn recv(&mut self) -> Result<&[u8], PeerError> {
        if let ShmState::Calling(_) = self.state {
            return Ok(&self.inb[..self.reply_len]);
        }
        if let ShmState::Server = self.state {
            let mut b = ListenerBuilder::new();
            b.rings(self.rings(self.out.len()));
            let mut l = b.bind(&self.socket)?;
            let conn = l
                .accept_timeout(MEET_TIMEOUT)?
                .ok_or_else(|| PeerError::new("no client connected"))?;
            // The socket file goes with the listener: only the rings stay.
            drop(l);
            self.state = ShmState::Serving(conn, 0);
        }
        match &mut self.state {
            ShmState::Serving(conn, id) => {
                let (got, n) = conn
                    .recv_request(&mut self.inb, None)
                    .map_err(PeerError::new)?;
                *id = got;
                Ok(&self.inb[..n])
            }
            _ => Err(PeerError::new("this end has no connection")),
        }
    }
}

/// Bytes of `unix-stream-call`'s header: the id and the body's length.
const HEADER: usize = 12;

/// One end of `unix-stream-call`.
pub struct UnixCallEnd {
    sock: OwnedFd,
    client: bool,
    next_id: u64,
    /// The id of the request being answered (server).
    id: u64,
    out: Vec<u8>,
    /// Header and body of the message being sent.
    frame: Vec<u8>,
    inb: Vec<u8>,
    body: usize,
}

impl UnixCallEnd {
    fn open(fd: i32, client: bool, size: usize) -> Result<UnixCallEnd, PeerError> {
        Ok(UnixCallEnd {
            sock: adopt_fd(fd, &[FileType::Socket])?,
            client,
            next_id: 1,
            id: 0,
            out: out_buffer(size),
            frame: vec![0; HEADER + size],
            inb: vec![0; HEADER + size],
            body: 0,
        })
    }

    fn write_frame(&mut self, id: u64, len: usize) -> Result<(), PeerError> {
        self.frame[..8].copy_from_slice(&id.to_le_bytes());
        self.frame[8..HEADER].copy_from_slice(&(len as u32).to_le_bytes());
        self.frame[HEADER..HEADER + len].copy_from_slice(&self.out[..len]);
        let mut rest = &self.frame[..HEADER + len];
        while !rest.is_empty() {
            match rustix::io::write(&self.sock, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads one frame; returns its id and leaves the body in `inb`.
    fn read_frame(&mut self) -> Result<u64, PeerError> {
        let mut got = 0;
        let mut want = HEADER;
        loop {
            match rustix::io::read(self.sock.as_fd(), &mut self.inb[got..want]) {
                Ok(0) => return Err(PeerError::new("the peer closed the socket")),
                Ok(n) => got += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            if got == HEADER && want == HEADER {
                let len = u32::from_le_bytes(self.inb[8..HEADER].try_into().unwrap()) as usize;
                if HEADER + len > self.inb.len() {
                    return Err(PeerError(format!("a {len}-byte body does not fit")));
                }
                want = HEADER + len;
                self.body = len;
            }
            if got == want && want >= HEADER {
                return Ok(u64::from_le_bytes(self.inb[..8].try_into().unwrap()));
            }
        }
    }
}

impl Endpoint for UnixCallEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        if !self.client {
            return self.write_frame(self.id, len);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.write_frame(id, len)?;
        if self.out[..8] == END.to_le_bytes() {
            return Ok(());
        }
        let got = self.read_frame()?;
        if got != id {
            return Err(PeerError(format!("call {id} got the reply to {got}")));
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<&[u8], PeerError> {
        if !self.client {
            self.id = self.read_frame()?;
        }
        Ok(&self.inb[HEADER..HEADER + self.body])
    }
}
