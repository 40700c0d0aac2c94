//! iceoryx2 (feature `peers`): publish-subscribe over `ipc::Service`, a
//! `[u8]` slice payload per message (`loan_slice_uninit` +
//! `write_from_slice` + `send`, so the producer copies the message in),
//! the subscriber polling `receive` in a loop as iceoryx2's own benchmarks
//! do and copying the payload out. No sample is lost: safe overflow is
//! off, the publisher retries until the subscriber has room, and a sample
//! that reached no subscriber (one not connected yet) is sent again.
//!
//! The peers make the services (`open_or_create`, the consumer first);
//! iceoryx2 removes their files when the last port goes. Every file
//! iceoryx2 makes for the run carries the prefix `shmpipe-bench-PID-iox2_`
//! (its `global.prefix` setting), so that what it keeps between nodes (its
//! global management segment) is removed at the end of the run too.

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use serde::{Deserialize, Serialize};

use super::{parse_link, Channel, Entry, Family, Group, Mechanism, Setup};
use crate::bench::config::ring_shape;
use crate::bench::endpoint::{not_open, out_buffer, Endpoint, PeerError};
use crate::bench::floor::spin_until;
use crate::bench::jobs;
use crate::bench::protocol::{PeerSpec, Workload};

pub const ICEORYX2: Entry = Entry {
    mechanism: Mechanism::Iceoryx2,
    name: "iceoryx2-0.10",
    about: "the iceoryx2 0.10 crate: publish-subscribe over ipc::Service, loan_slice_uninit + \
            write_from_slice + send; the subscriber polls receive and copies the payload out",
    family: &Iceoryx2,
    group: Group::Other,
    default: true,
};

/// A peer's services, by name: the one it publishes on, the one it
/// subscribes to; `depth` samples of buffer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoxLink {
    pub tx: Option<String>,
    pub rx: Option<String>,
    pub depth: usize,
    /// iceoryx2's file-name prefix for this run.
    pub prefix: String,
}

/// The run's iceoryx2 file-name prefix.
fn prefix(run_id: u32) -> String {
    format!("shmpipe-bench-{run_id}-iox2_")
}

/// The iceoryx2 family.
pub struct Iceoryx2;

impl Family for Iceoryx2 {
    fn kind(&self) -> &'static str {
        "iceoryx2"
    }

    fn channel(
        &self,
        _m: Mechanism,
        setup: &mut Setup<'_>,
        two_way: bool,
        size: usize,
    ) -> Result<Channel, String> {
        let mut ch = Channel::default();
        // As deep as shmpipe's ring for the size.
        let depth = ring_shape(size).slots as usize;
        let a = setup.name();
        let b = two_way.then(|| setup.name());
        let prefix = prefix(setup.run_id);
        ch.links(
            self.kind(),
            &IoxLink {
                tx: Some(a.clone()),
                rx: b.clone(),
                depth,
                prefix: prefix.clone(),
            },
            &IoxLink {
                tx: b,
                rx: Some(a),
                depth,
                prefix,
            },
        );
        Ok(ch)
    }

    fn notes(&self, _m: Mechanism, w: Workload) -> Vec<String> {
        match w {
            Workload::Wakeup | Workload::IdleCpu => vec![
                "the subscriber polls receive in a loop, as iceoryx2's benchmarks do: it never \
                 sleeps"
                    .to_owned(),
            ],
            _ => Vec::new(),
        }
    }

    fn clean_up(&self, run_id: u32) {
        let prefix = prefix(run_id);
        for dir in [
            "/dev/shm",
            "/tmp/iceoryx2",
            "/tmp/iceoryx2/nodes",
            "/tmp/iceoryx2/services",
        ] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let p = e.path();
                    let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
                }
            }
        }
        // iceoryx2's directories, when nothing else of it is left there.
        for dir in [
            "/tmp/iceoryx2/nodes",
            "/tmp/iceoryx2/services",
            "/tmp/iceoryx2",
        ] {
            let _ = std::fs::remove_dir(dir);
        }
    }

    fn serve(&self, spec: &PeerSpec) -> Result<(), PeerError> {
        let l: IoxLink = parse_link(&spec.link)?;
        jobs::serve(IoxEnd::open(&l, spec.msg_size), spec)
    }
}

type Service = ipc::Service;

fn iox<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> PeerError {
    move |e| PeerError(format!("iceoryx2: {what}: {e:?}"))
}

/// A peer's publisher and subscriber. Fields drop in order: the ports,
/// then their services, then the node.
pub struct IoxEnd {
    tx: Option<Publisher<Service, [u8], ()>>,
    rx: Option<Subscriber<Service, [u8], ()>>,
    _services: Vec<PortFactory<Service, [u8], ()>>,
    _node: Node<Service>,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl IoxEnd {
    fn open(l: &IoxLink, size: usize) -> Result<IoxEnd, PeerError> {
        let mut config = Config::default();
        config.global.prefix = FileName::new(l.prefix.as_bytes()).map_err(iox("file prefix"))?;
        let node = NodeBuilder::new()
            .config(&config)
            .create::<Service>()
            .map_err(iox("creating the node"))?;
        let service = |name: &str| {
            let name: ServiceName = name.try_into().map_err(iox("service name"))?;
            node.service_builder(&name)
                .publish_subscribe::<[u8]>()
                .enable_safe_overflow(false)
                .history_size(0)
                .subscriber_max_buffer_size(l.depth)
                .max_publishers(1)
                .max_subscribers(1)
                .open_or_create()
                .map_err(iox("opening the service"))
        };
        let mut services = Vec::new();
        // The subscriber first: a publisher delivers only to the
        // subscribers there when it sends.
        let rx = match &l.rx {
            Some(name) => {
                let s = service(name)?;
                let sub = s
                    .subscriber_builder()
                    .buffer_size(l.depth)
                    .create()
                    .map_err(iox("creating the subscriber"))?;
                services.push(s);
                Some(sub)
            }
            None => None,
        };
        let tx = match &l.tx {
            Some(name) => {
                let s = service(name)?;
                let publisher = s
                    .publisher_builder()
                    .initial_max_slice_len(size)
                    .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                    .create()
                    .map_err(iox("creating the publisher"))?;
                services.push(s);
                Some(publisher)
            }
            None => None,
        };
        Ok(IoxEnd {
            tx,
            rx,
            _services: services,
            _node: node,
            out: out_buffer(size),
            inb: vec![0; size],
        })
    }
}

impl Endpoint for IoxEnd {
    fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }

    #[inline]
    fn send(&mut self, len: usize) -> Result<(), PeerError> {
        let tx = self.tx.as_ref().ok_or_else(|| not_open("sending"))?;
        let out = &self.out[..len];
        // `send` says how many subscribers got the sample. Until the
        // subscriber has seen this publisher (its next `receive`), a full
        // buffer drops the sample and `send` says 0: send it again, so
        // that no message is lost whatever the scheduling.
        spin_until(|| {
            let sample = match tx.loan_slice_uninit(len) {
                Ok(s) => s.write_from_slice(out),
                Err(e) => return Some(Err(iox("loan_slice_uninit")(e))),
            };
            match sample.send() {
                Ok(0) => None,
                Ok(_) => Some(Ok(())),
                Err(e) => Some(Err(iox("send")(e))),
            }
        })
    }

    #[inline]
    fn recv(&mut self) -> Result<&[u8], PeerError> {
        let rx = self.rx.as_ref().ok_or_else(|| not_open("receiving"))?;
        let sample = spin_until(|| rx.receive().transpose()).map_err(iox("receive"))?;
        let p = sample.payload();
        let n = p.len().min(self.inb.len());
        self.inb[..n].copy_from_slice(&p[..n]);
        Ok(&self.inb[..n])
    }
}
