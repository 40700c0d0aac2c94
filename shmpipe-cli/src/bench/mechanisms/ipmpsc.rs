//! ipmpsc (feature `peers`): its shared-memory ring in a file
//! (`SharedRingBuffer`), `Sender::send` of each message as bytes
//! (`serde_bytes`, as its README recommends for byte payloads) and
//! `Receiver::zero_copy_context().recv()` copying them out; a receiver with
//! nothing to read blocks in ipmpsc's own wait.
//!
//! The coordinator creates each ring file as `/dev/shm/shmpipe-bench-PID-N`
//! (512 KiB, like the queues' byte budget) and removes it when the case
//! ends.

use ipmpsc::{Receiver, Sender, SharedRingBuffer};
use serde::{Deserialize, Serialize};

use super::{parse_link, Channel, Entry, Family, Group, Mechanism, Setup};
use crate::bench::endpoint::{not_open, out_buffer, Endpoint, PeerError};
use crate::bench::jobs;
use crate::bench::protocol::PeerSpec;

pub const IPMPSC: Entry = Entry {
    mechanism: Mechanism::Ipmpsc,
    name: "ipmpsc-0.5",
    about: "the ipmpsc 0.5 crate: a SharedRingBuffer file in /dev/shm, Sender::send of the \
            message as serde_bytes, Receiver::zero_copy_context().recv() and a copy out",
    family: &Ipmpsc,
    group: Group::Other,
    default: true,
};

/// Bytes of each ring: the queues' budget.
const RING_BYTES: u32 = 512 << 10;

/// A peer's ring files: the one it sends on, the one it receives from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpmpscLink {
    pub tx: Option<String>,
    pub rx: Option<String>,
}

/// The ipmpsc family.
pub struct Ipmpsc;

/// Removes a ring file when dropped.
struct FileGuard(String);

impl Drop for FileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ring(setup: &mut Setup<'_>, ch: &mut Channel) -> Result<String, String> {
    let path = format!("/dev/shm/{}", setup.name());
    ch.hold(FileGuard(path.clone()));
    SharedRingBuffer::create(&path, RING_BYTES)
        .map_err(|e| format!("ipmpsc: creating {path}: {e}"))?;
    Ok(path)
}

impl Family for Ipmpsc {
    fn kind(&self) -> &'static str {
        "ipmpsc"
    }

    fn channel(
        &self,
        _m: Mechanism,
        setup: &mut Setup<'_>,
        two_way: bool,
        size: usize,
    ) -> Result<Channel, String> {
        if size as u64 + 64 > u64::from(RING_BYTES) / 2 {
            return Err(format!(
                "{size}-byte messages do not fit the {} KiB ring twice",
                RING_BYTES >> 10
            ));
        }
        let mut ch = Channel::default();
        let a = ring(setup, &mut ch)?;
        let b = if two_way {
            Some(ring(setup, &mut ch)?)
        } else {
            None
        };
        ch.links(
            self.kind(),
            &IpmpscLink {
                tx: Some(a.clone()),
                rx: b.clone(),
            },
            &IpmpscLink { tx: b, rx: Some(a) },
        );
        Ok(ch)
    }

    fn serve(&self, spec: &PeerSpec) -> Result<(), PeerError> {
        let l: IpmpscLink = parse_link(&spec.link)?;
        jobs::serve(IpmpscEnd::open(&l, spec.msg_size), spec)
    }
}

/// A peer's sender and receiver.
pub struct IpmpscEnd {
    tx: Option<Sender>,
    rx: Option<Receiver>,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl IpmpscEnd {
    fn open(l: &IpmpscLink, size: usize) -> Result<IpmpscEnd, PeerError> {
        let open = |path: &str| {
            SharedRingBuffer::open(path)
                .map_err(|e| PeerError(format!("ipmpsc: opening {path}: {e}")))
        };
        Ok(IpmpscEnd {
            tx: l.tx.as_deref().map(open).transpose()?.map(Sender::new),
            rx: l.rx.as_deref().map(open).transpose()?.map(Receiver::new),
            out: out_buffer(size),
            inb: vec![0; size],
        })
    }
}

impl Endpoint for IpmpscEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        let tx = self.tx.as_ref().ok_or_else(|| not_open("sending"))?;
        tx.send(&serde_bytes::Bytes::new(&self.out[..len]))
            .map_err(|e| PeerError(format!("ipmpsc: send: {e}")))
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let rx = self.rx.as_mut().ok_or_else(|| not_open("receiving"))?;
        let mut ctx = rx.zero_copy_context();
        let msg: &serde_bytes::Bytes = ctx
            .recv()
            .map_err(|e| PeerError(format!("ipmpsc: recv: {e}")))?;
        let n = msg.len().min(self.inb.len());
        self.inb[..n].copy_from_slice(&msg[..n]);
        Ok(&self.inb[..n])
    }
}
