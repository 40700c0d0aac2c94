//! Message queues: POSIX (`mq_send`/`mq_receive` on queues opened by
//! name) and System V (`msgsnd`/`msgrcv` on one queue, one message type
//! per direction). Their depth is [`queue_depth`]; the kernel limits they
//! need are raised for the run where allowed ([`Limits`](crate::bench::limits::Limits)).

use serde::{Deserialize, Serialize};

use super::{parse_link, Channel, Entry, Family, Group, Mechanism, Setup};
use crate::bench::endpoint::{not_open, out_buffer, Endpoint, PeerError, FILL};
use crate::bench::jobs;
use crate::bench::limits::queue_depth;
use crate::bench::protocol::PeerSpec;
use crate::bench::sys::{self, PosixMq, SysvBuf};

pub const POSIX_MQ: Entry = Entry {
    mechanism: Mechanism::PosixMq,
    name: "posix-mq",
    about: "a POSIX message queue (mq_open): mq_send, mq_receive",
    family: &Queues,
    group: Group::Other,
    default: true,
};
pub const SYSV_MQ: Entry = Entry {
    mechanism: Mechanism::SysvMq,
    name: "sysv-mq",
    about: "a System V message queue (msgget): msgsnd, msgrcv on buffers written and read in \
            place",
    family: &Queues,
    group: Group::Other,
    default: true,
};

/// The System V key of this run's queue: a fixed tag in the top 10 bits,
/// the coordinator's pid (below 2^22) in the rest.
pub fn sysv_key(run_id: u32) -> i32 {
    (0xB5C0_0000u32 | (run_id & 0x003F_FFFF)) as i32
}

/// A peer's queues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "queue", rename_all = "kebab-case")]
pub enum QueueLink {
    /// POSIX queues by name: the one to send on, the one to receive from.
    Posix {
        tx: Option<String>,
        rx: Option<String>,
    },
    /// One System V queue; each direction uses its own message type.
    Sysv {
        id: i32,
        tx_type: Option<i64>,
        rx_type: Option<i64>,
    },
}

/// The message-queue family.
pub struct Queues;

/// Unlinks a POSIX queue's name when dropped.
struct MqGuard(String);

impl Drop for MqGuard {
    fn drop(&mut self) {
        let _ = PosixMq::unlink(&self.0);
    }
}

/// Removes a System V queue when dropped.
struct SysvGuard(i32);

impl Drop for SysvGuard {
    fn drop(&mut self) {
        let _ = sys::sysv_remove(self.0);
    }
}

/// Creates a POSIX queue for the case and holds its name in `ch`; returns
/// the name.
fn posix_mq(
    setup: &mut Setup<'_>,
    ch: &mut Channel,
    depth: usize,
    size: usize,
) -> Result<String, String> {
    let name = format!("/{}", setup.name());
    let (q, note) = setup.limits.posix_mq(&name, depth, size)?;
    ch.hold(MqGuard(name.clone()));
    // The coordinator needs no descriptor; the name stays until the guard
    // unlinks it.
    drop(q);
    ch.notes.extend(note);
    Ok(name)
}

impl Family for Queues {
    fn kind(&self) -> &'static str {
        "queue"
    }

    fn channel(
        &self,
        m: Mechanism,
        setup: &mut Setup<'_>,
        two_way: bool,
        size: usize,
    ) -> Result<Channel, String> {
        let mut ch = Channel::default();
        let depth = queue_depth(size);
        let (producer, consumer) = if m == Mechanism::PosixMq {
            let a = posix_mq(setup, &mut ch, depth, size)?;
            let b = if two_way {
                Some(posix_mq(setup, &mut ch, depth, size)?)
            } else {
                None
            };
            (
                QueueLink::Posix {
                    tx: Some(a.clone()),
                    rx: b.clone(),
                },
                QueueLink::Posix { tx: b, rx: Some(a) },
            )
        } else {
            let key = sysv_key(setup.run_id);
            let (id, note) = setup.limits.sysv_mq(key, depth, size)?;
            ch.hold(SysvGuard(id));
            ch.notes.extend(note);
            // Type 1 carries producer -> consumer, type 2 back.
            (
                QueueLink::Sysv {
                    id,
                    tx_type: Some(1),
                    rx_type: two_way.then_some(2),
                },
                QueueLink::Sysv {
                    id,
                    tx_type: two_way.then_some(2),
                    rx_type: Some(1),
                },
            )
        };
        ch.links(self.kind(), &producer, &consumer);
        Ok(ch)
    }

    fn serve(&self, spec: &PeerSpec) -> Result<(), PeerError> {
        let size = spec.msg_size;
        match parse_link(&spec.link)? {
            QueueLink::Posix { tx, rx } => {
                jobs::serve(PosixMqEnd::open(tx.as_deref(), rx.as_deref(), size), spec)
            }
            QueueLink::Sysv {
                id,
                tx_type,
                rx_type,
            } => jobs::serve(SysvEnd::open(id, tx_type, rx_type, size), spec),
        }
    }
}

/// POSIX message queues opened by name: `mq_send`/`mq_receive`.
pub struct PosixMqEnd {
    tx: Option<PosixMq>,
    rx: Option<PosixMq>,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl PosixMqEnd {
    pub fn open(tx: Option<&str>, rx: Option<&str>, size: usize) -> Result<PosixMqEnd, PeerError> {
        let open = |name: &str, write| {
            PosixMq::open(name, write).map_err(|e| PeerError(format!("mq_open {name}: {e}")))
        };
        Ok(PosixMqEnd {
            tx: tx.map(|n| open(n, true)).transpose()?,
            rx: rx.map(|n| open(n, false)).transpose()?,
            out: out_buffer(size),
            inb: vec![0; size],
        })
    }
}

impl Endpoint for PosixMqEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        let q = self.tx.as_ref().ok_or_else(|| not_open("sending"))?;
        Ok(q.send(&self.out[..len])?)
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let q = self.rx.as_ref().ok_or_else(|| not_open("receiving"))?;
        let n = q.recv(&mut self.inb)?;
        Ok(&self.inb[..n])
    }
}

/// One System V message queue, one message type per direction:
/// `msgsnd`/`msgrcv` on message buffers written and read in place.
pub struct SysvEnd {
    id: i32,
    tx_type: Option<i64>,
    rx_type: Option<i64>,
    out: SysvBuf,
    inb: SysvBuf,
}

impl SysvEnd {
    pub fn open(
        id: i32,
        tx_type: Option<i64>,
        rx_type: Option<i64>,
        size: usize,
    ) -> Result<SysvEnd, PeerError> {
        for t in [tx_type, rx_type].into_iter().flatten() {
            if t <= 0 {
                return Err(PeerError(format!("message type {t} is not positive")));
            }
        }
        let mut out = SysvBuf::new(size);
        out.text_mut().fill(FILL);
        Ok(SysvEnd {
            id,
            tx_type,
            rx_type,
            out,
            inb: SysvBuf::new(size),
        })
    }
}

impl Endpoint for SysvEnd {
    fn out(&mut self) -> &mut [u8] {
        self.out.text_mut()
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        let t = self.tx_type.ok_or_else(|| not_open("sending"))?;
        Ok(self.out.send(self.id, t, len)?)
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let t = self.rx_type.ok_or_else(|| not_open("receiving"))?;
        let n = self.inb.recv(self.id, t)?;
        Ok(&self.inb.text()[..n])
    }
}
