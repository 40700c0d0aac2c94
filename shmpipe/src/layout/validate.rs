//! Writing a fresh header, and waiting for and validating a published one.
//! Everything read here was written by another process: each field is read
//! once and checked before use.

use std::time::{Duration, Instant};

use super::header::{
    INIT_BUSY, INIT_EMPTY, INIT_READY, KNOWN_FLAGS, LAYOUT_VERSION, PID_MAX_LIMIT,
};
use super::{Geometry, RingHeader, HEADER_LEN, MAGIC, MAX_SLOTS, MAX_SLOT_SIZE, SLOT_ALIGN};
use crate::error::{Corruption, Error, Expected};
use crate::fingerprint::TypeFingerprint;
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// Writes a fresh header into zero-filled memory and publishes it. Only the
/// creator of a segment calls this, before anyone can consider it ready.
pub(crate) fn init_header(
    hdr: &RingHeader,
    geom: Geometry,
    page_size: usize,
    creator: (u32, u64),
    message_type: Option<TypeFingerprint>,
) {
    let m = &hdr.meta;
    // The creator's identity first, so a half-initialised ring can be told
    // stale (creator dead) from in progress.
    m.creator_pid.store(creator.0, Relaxed);
    m.creator_start.store(creator.1, Relaxed);
    m.init_state.store(INIT_BUSY, Relaxed);
    m.magic.store(MAGIC, Relaxed);
    m.version.store(LAYOUT_VERSION, Relaxed);
    m.header_len.store(HEADER_LEN as u64, Relaxed);
    m.slot_count.store(geom.slot_count, Relaxed);
    m.slot_size.store(geom.slot_size as u64, Relaxed);
    m.payload_capacity
        .store(geom.payload_capacity() as u64, Relaxed);
    m.total_len.store(geom.total_len().unwrap_or(0), Relaxed);
    m.page_size.store(page_size as u64, Relaxed);
    if let Some(t) = message_type {
        for (word, v) in m
            .message_type
            .iter()
            .zip([t.size(), t.align(), t.name_hash()])
        {
            word.store(v, Relaxed);
        }
    }
    // ORDERING: Release; pairs with the Acquire `init_state` load in
    // `wait_ready`, publishing every field written above.
    m.init_state.store(INIT_READY, Release);
}

/// Waits (bounded by `timeout`) until the creator has published the header.
pub(crate) fn wait_ready(hdr: &RingHeader, label: &str, timeout: Duration) -> Result<(), Error> {
    let start = Instant::now();
    let mut sleep = Duration::from_micros(50);
    loop {
        // ORDERING: Acquire; pairs with the Release store of INIT_READY in
        // `init_header`, so the geometry read after this is the creator's.
        let state = hdr.meta.init_state.load(Acquire);
        let magic = hdr.meta.magic.load(Relaxed);
        if magic != 0 && magic != MAGIC {
            return Err(Error::BadMagic {
                address: label.to_owned(),
                found: magic,
            });
        }
        match state {
            INIT_READY if magic == MAGIC => return Ok(()),
            INIT_READY | INIT_EMPTY | INIT_BUSY => {}
            other => {
                return Err(Error::Corrupt {
                    address: label.to_owned(),
                    corruption: Corruption {
                        field: "init_state",
                        found: u64::from(other),
                        expected: Expected::Range {
                            min: u64::from(INIT_EMPTY),
                            max: u64::from(INIT_READY),
                        },
                    },
                })
            }
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::NotInitialized {
                address: label.to_owned(),
                waited,
            });
        }
        std::thread::sleep(sleep.min(timeout - waited));
        sleep = (sleep * 2).min(Duration::from_millis(10));
    }
}

/// The message type a published header records, if any. Any value is
/// accepted: it is only ever compared with a handle's own.
pub(crate) fn read_message_type(hdr: &RingHeader) -> Option<TypeFingerprint> {
    let [size, align, hash] = &hdr.meta.message_type;
    TypeFingerprint::from_raw(size.load(Relaxed), align.load(Relaxed), hash.load(Relaxed))
}

/// Reads and validates the geometry of a published header against the real
/// length of the segment. Returns the geometry and the recorded page size.
pub(crate) fn read_geometry(
    hdr: &RingHeader,
    segment_len: usize,
    label: &str,
) -> Result<(Geometry, u64), Error> {
    let m = &hdr.meta;
    let corrupt = |field, found, expected| Error::Corrupt {
        address: label.to_owned(),
        corruption: Corruption {
            field,
            found,
            expected,
        },
    };
    let version = m.version.load(Relaxed);
    if version != LAYOUT_VERSION {
        return Err(Error::VersionMismatch {
            address: label.to_owned(),
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let header_len = m.header_len.load(Relaxed);
    if header_len != HEADER_LEN as u64 {
        return Err(corrupt(
            "header_len",
            header_len,
            Expected::Exactly(HEADER_LEN as u64),
        ));
    }
    let slot_count = m.slot_count.load(Relaxed);
    if slot_count == 0 || !slot_count.is_power_of_two() || slot_count > MAX_SLOTS {
        return Err(corrupt("slot_count", slot_count, Expected::PowerOfTwo));
    }
    let slot_size = m.slot_size.load(Relaxed);
    if slot_size == 0 || slot_size % SLOT_ALIGN as u64 != 0 || slot_size > MAX_SLOT_SIZE as u64 {
        return Err(corrupt(
            "slot_size",
            slot_size,
            Expected::MultipleOf(SLOT_ALIGN as u64),
        ));
    }
    let geom = Geometry {
        slot_count,
        slot_size: slot_size as usize,
    };
    let payload = m.payload_capacity.load(Relaxed);
    if payload != geom.payload_capacity() as u64 {
        return Err(corrupt(
            "payload_capacity",
            payload,
            Expected::Exactly(geom.payload_capacity() as u64),
        ));
    }
    let total = m.total_len.load(Relaxed);
    let needed = geom.total_len().unwrap_or(u64::MAX);
    if total != needed {
        return Err(corrupt("total_len", total, Expected::Exactly(needed)));
    }
    if total > segment_len as u64 {
        return Err(corrupt(
            "total_len",
            total,
            Expected::Range {
                min: HEADER_LEN as u64,
                max: segment_len as u64,
            },
        ));
    }
    let page_size = m.page_size.load(Relaxed);
    if !page_size.is_power_of_two() {
        return Err(corrupt("page_size", page_size, Expected::PowerOfTwo));
    }
    let flags = m.flags.load(Relaxed);
    if flags & !KNOWN_FLAGS != 0 {
        return Err(corrupt(
            "flags",
            u64::from(flags),
            Expected::Rule("no bits but the known flags (reserved bits are zero)"),
        ));
    }
    let creator = m.creator_pid.load(Relaxed);
    if creator >= PID_MAX_LIMIT {
        return Err(corrupt(
            "creator_pid",
            u64::from(creator),
            Expected::Range {
                min: 0,
                max: u64::from(PID_MAX_LIMIT - 1),
            },
        ));
    }
    Ok((geom, page_size))
}
