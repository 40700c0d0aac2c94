//! Writing a fresh header, and waiting for and validating a published one.
//! Everything read here was written by another process: each field is read
//! once and checked before use.

use std::time::{Duration, Instant};

use super::header::{
    INIT_BUSY, INIT_EMPTY, INIT_READY, KNOWN_FLAGS, LAYOUT_VERSION, PID_MAX_LIMIT,
};
use super::{
    Geometry, RingHeader, HEADER_LEN, MAGIC, MAX_PAYLOAD_ALIGN, MAX_SLOTS, MAX_SLOT_SIZE,
    MIN_PAYLOAD_ALIGN, SLOT_ALIGN, SLOT_HEADER, WRAP_DOUBLE_MAP, WRAP_PAD,
};
use crate::error::{Corruption, Error, Expected};
use crate::fingerprint::{TypeFingerprint, NAME_LEN};
use crate::sync::Ordering::{Acquire, Relaxed, Release};

/// Writes a fresh header into zero-filled memory and publishes it. Only the
/// creator of a segment calls this, before anyone can consider it ready.
pub(crate) fn init_header(
    hdr: &RingHeader,
    geom: Geometry,
    page_size: usize,
    creator: (u32, u64),
    fingerprint: Option<&TypeFingerprint>,
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
    m.payload_offset.store(geom.payload_offset as u32, Relaxed);
    m.payload_align.store(geom.payload_align as u32, Relaxed);
    m.message_limit.store(geom.message_limit, Relaxed);
    m.slots_offset.store(geom.slots_offset as u64, Relaxed);
    m.wrap_mode.store(
        if geom.double_map {
            WRAP_DOUBLE_MAP
        } else {
            WRAP_PAD
        },
        Relaxed,
    );
    if let Some(f) = fingerprint {
        let t = &hdr.message_type;
        t.size.store(f.size, Relaxed);
        t.align.store(f.align, Relaxed);
        t.hash.store(f.hash, Relaxed);
        let name = f.name_bytes();
        for (word, bytes) in t.name.iter().zip(name.chunks_exact(8)) {
            word.store(
                u64::from_le_bytes(bytes.try_into().expect("8-byte chunks")),
                Relaxed,
            );
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
    let align = u64::from(m.payload_align.load(Relaxed));
    if !align.is_power_of_two()
        || !(MIN_PAYLOAD_ALIGN as u64..=MAX_PAYLOAD_ALIGN as u64).contains(&align)
        || (align > SLOT_ALIGN as u64 && slot_size % align != 0)
    {
        return Err(corrupt(
            "payload_align",
            align,
            Expected::Rule("a power of two from 8 to 4096 that, above 64, divides the slot size"),
        ));
    }
    let offset = u64::from(m.payload_offset.load(Relaxed));
    let want_offset = (SLOT_HEADER as u64).max(align);
    if offset != want_offset || offset >= slot_size {
        return Err(corrupt(
            "payload_offset",
            offset,
            Expected::Exactly(want_offset),
        ));
    }
    let page_size = m.page_size.load(Relaxed);
    if !page_size.is_power_of_two() {
        return Err(corrupt("page_size", page_size, Expected::PowerOfTwo));
    }
    let wrap = m.wrap_mode.load(Relaxed);
    if wrap != WRAP_PAD && wrap != WRAP_DOUBLE_MAP {
        return Err(corrupt(
            "wrap_mode",
            u64::from(wrap),
            Expected::Range {
                min: u64::from(WRAP_PAD),
                max: u64::from(WRAP_DOUBLE_MAP),
            },
        ));
    }
    let mut geom = Geometry {
        slot_count,
        slot_size: slot_size as usize,
        payload_offset: offset as usize,
        payload_align: align as usize,
        slots_offset: HEADER_LEN.max(align as usize),
        message_limit: 0,
        double_map: false,
    };
    let slots_offset = m.slots_offset.load(Relaxed);
    if wrap == WRAP_DOUBLE_MAP {
        match geom.double_mapped(page_size as usize) {
            Some(g) if slots_offset == g.slots_offset as u64 => geom = g,
            _ => {
                return Err(corrupt(
                    "slots_offset",
                    slots_offset,
                    Expected::Rule(
                        "one page (at most 2 MiB), in a ring whose slot area is whole pages, \
                         when the slot area is mapped twice",
                    ),
                ))
            }
        }
    } else if slots_offset != geom.slots_offset as u64 {
        return Err(corrupt(
            "slots_offset",
            slots_offset,
            Expected::Exactly(geom.slots_offset as u64),
        ));
    }
    let payload = m.payload_capacity.load(Relaxed);
    if payload != geom.payload_capacity() as u64 {
        return Err(corrupt(
            "payload_capacity",
            payload,
            Expected::Exactly(geom.payload_capacity() as u64),
        ));
    }
    let limit = m.message_limit.load(Relaxed);
    if limit > geom.ring_holds() {
        return Err(corrupt(
            "message_limit",
            limit,
            Expected::Range {
                min: 0,
                max: geom.ring_holds(),
            },
        ));
    }
    geom.message_limit = limit;
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
                min: geom.slots_offset as u64,
                max: segment_len as u64,
            },
        ));
    }
    if m.reserved.load(Relaxed) != 0 {
        return Err(corrupt(
            "meta reserved",
            u64::from(m.reserved.load(Relaxed)),
            Expected::Exactly(0),
        ));
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

/// Reads and validates the type fingerprint of a published header: `None`
/// for an untyped ring (all zero).
pub(crate) fn read_fingerprint(
    hdr: &RingHeader,
    label: &str,
) -> Result<Option<TypeFingerprint>, Error> {
    let t = &hdr.message_type;
    let corrupt = |field, found, expected| Error::Corrupt {
        address: label.to_owned(),
        corruption: Corruption {
            field,
            found,
            expected,
        },
    };
    let size = t.size.load(Relaxed);
    let align = t.align.load(Relaxed);
    let hash = t.hash.load(Relaxed);
    let reserved = t.reserved.load(Relaxed);
    let mut name = [0u8; NAME_LEN];
    for (bytes, word) in name.chunks_exact_mut(8).zip(&t.name) {
        bytes.copy_from_slice(&word.load(Relaxed).to_le_bytes());
    }
    if reserved != 0 {
        return Err(corrupt(
            "type reserved",
            u64::from(reserved),
            Expected::Exactly(0),
        ));
    }
    if size == 0 && align == 0 && hash == 0 && name == [0; NAME_LEN] {
        return Ok(None);
    }
    if !align.is_power_of_two() || hash == 0 {
        return Err(corrupt(
            "type_align",
            u64::from(align),
            Expected::Rule("a power of two, with a non-zero type hash, in a typed ring"),
        ));
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
    let Ok(text) = std::str::from_utf8(&name[..end]) else {
        return Err(corrupt(
            "type_name",
            end as u64,
            Expected::Rule("UTF-8 text, zero-padded"),
        ));
    };
    if name[end..].iter().any(|&b| b != 0) {
        return Err(corrupt(
            "type_name",
            end as u64,
            Expected::Rule("UTF-8 text, zero-padded"),
        ));
    }
    Ok(Some(TypeFingerprint::new(size, align, hash, text)))
}
