//! [`Mapping`]: one process's mapping of a ring, shared by its `Ring` and
//! handles.

use std::ptr::NonNull;
use std::time::Duration;

use crate::address::Address;
use crate::error::Error;
use crate::fingerprint::TypeFingerprint;
use crate::layout::{self, Geometry, RingHeader, RingRef, HEADER_LEN, MAX_TOTAL_LEN};
use crate::segment::{self, Backend, Segment, SegmentOptions};
use crate::sync::SlotTracker;

/// Segment options for a ring: the size bounds come from the layout (a
/// segment shorter than the header is still being sized by its creator),
/// everything else is the default.
pub(crate) fn segment_options() -> SegmentOptions {
    SegmentOptions {
        min_len: HEADER_LEN as u64,
        max_len: MAX_TOTAL_LEN,
        ..SegmentOptions::default()
    }
}

/// What one process knows about a ring it has mapped: the segment, the
/// validated view of the header and slots, and how to name it in errors.
/// Shared by the process's [`Ring`](crate::Ring) and handles through an
/// `Arc`, so the mapping lives as long as any of them.
pub(crate) struct Mapping {
    /// Validated pointers and geometry (process-local copies).
    pub(crate) view: RingRef,
    /// Slot-access tracking for loom (zero-sized otherwise).
    pub(crate) tracker: SlotTracker,
    /// The address as shown in errors (`shm:x`, `memfd:x`, `heap`).
    pub(crate) label: String,
    /// In-process ring: both sides live in this process, no liveness checks.
    pub(crate) process_local: bool,
    pub(crate) geometry: Geometry,
    pub(crate) page_size: u64,
    /// The message type the ring was created for, if any (validated).
    pub(crate) fingerprint: Option<TypeFingerprint>,
    pub(crate) address: Option<Address>,
    pub(crate) unlink_on_drop: bool,
    pub(crate) segment: Segment,
    #[cfg(loom)]
    _header: Box<RingHeader>,
    #[cfg(loom)]
    _commits: Box<[crate::sync::AtomicU32]>,
}

// SAFETY: `Mapping` owns the mapping its `RingRef` points into and never
// hands out mutable access to it; every shared field is atomic, and the slots
// are only touched by the single producer and single consumer under the
// head/tail protocol, whichever threads those handles move to.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only exposes atomics and the raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Creates the header in a fresh, zero-filled segment.
    pub(crate) fn init(
        segment: Segment,
        geometry: Geometry,
        label: String,
        address: Option<Address>,
        fingerprint: Option<TypeFingerprint>,
        double_map: bool,
    ) -> Result<Mapping, Error> {
        let page_size = segment.page_size();
        let process_local = segment.backend() == Backend::Heap;
        #[cfg(not(loom))]
        {
            let mut segment = segment;
            // Map the slot area twice where the pages allow it and the
            // backend can (not heap memory); otherwise the ring pads at the
            // wrap. The creator decides, and records it in the header.
            let geometry = match geometry.double_mapped(page_size) {
                Some(g)
                    if double_map
                        && g.total_len() == Some(segment.len() as u64)
                        && segment.map_twice(g.slots_offset, g.slot_area()).is_ok() =>
                {
                    g
                }
                _ => geometry,
            };
            let base = NonNull::new(segment.base()).expect("mappings are never null");
            let hdr = base.cast::<RingHeader>();
            // SAFETY: the segment is at least `total_len` bytes (the caller
            // sized it so; for a double-mapped geometry `map_twice` mapped
            // the slot area again right after it), page-aligned,
            // zero-filled and ours alone until `init_header` publishes it;
            // all-zero bytes are a valid RingHeader (atomics only).
            let view = unsafe {
                let slots = base.add(geometry.slots_offset);
                RingRef::new(hdr, slots, geometry)
            };
            layout::init_header(
                view.header(),
                geometry,
                page_size,
                crate::liveness::current_cached(),
                fingerprint.as_ref(),
            );
            Ok(Mapping {
                view,
                tracker: SlotTracker::new(geometry.slot_count as usize),
                label,
                process_local,
                geometry,
                page_size: page_size as u64,
                fingerprint,
                address,
                unlink_on_drop: false,
                segment,
            })
        }
        #[cfg(loom)]
        {
            // Loom atomics cannot live in raw memory: the header goes on
            // the heap, the slots stay in the segment (never mapped twice).
            let _ = (process_local, &address, double_map);
            let header = Box::new(RingHeader::default());
            let hdr = NonNull::from(&*header);
            let slots = NonNull::new(segment.base()).expect("heap blocks are never null");
            let commits: Box<[crate::sync::AtomicU32]> = (0..geometry.slot_count)
                .map(|_| crate::sync::AtomicU32::new(0))
                .collect();
            // SAFETY: the boxed header, the segment and the commit words
            // (one per slot) are owned by the returned Mapping and never
            // moved out of it.
            let view = unsafe {
                RingRef::new(hdr, slots, geometry)
                    .with_commit_words(NonNull::new(commits.as_ptr().cast_mut()).unwrap())
            };
            layout::init_header(
                view.header(),
                geometry,
                page_size,
                (0, 0),
                fingerprint.as_ref(),
            );
            Ok(Mapping {
                view,
                tracker: SlotTracker::new(geometry.slot_count as usize),
                label,
                process_local: true,
                geometry,
                page_size: page_size as u64,
                fingerprint,
                address: None,
                unlink_on_drop: false,
                segment,
                _header: header,
                _commits: commits,
            })
        }
    }

    /// Validates the header of an existing segment.
    #[cfg(not(loom))]
    pub(crate) fn attach(
        segment: Segment,
        label: String,
        address: Option<Address>,
        open_timeout: Duration,
    ) -> Result<Mapping, Error> {
        let base = NonNull::new(segment.base()).expect("mappings are never null");
        if segment.len() < HEADER_LEN {
            return Err(Error::NotInitialized {
                address: label,
                waited: open_timeout,
            });
        }
        let hdr = base.cast::<RingHeader>();
        // SAFETY: the mapping is at least HEADER_LEN bytes and page-aligned;
        // every RingHeader field is an atomic, valid for any bit pattern,
        // and lives as long as `segment`, which the returned Mapping owns.
        let hdr_ref: &RingHeader = unsafe { hdr.as_ref() };
        layout::wait_ready(hdr_ref, &label, open_timeout)?;
        let (geometry, page_size) = layout::read_geometry(hdr_ref, segment.len(), &label)?;
        let fingerprint = layout::read_fingerprint(hdr_ref, &label)?;
        let mut segment = segment;
        if geometry.double_map {
            // The creator's producer lets messages cross the end of the
            // ring: without the second mapping this process would read or
            // write past the slot area. Refuse rather than guess.
            segment
                .map_twice(geometry.slots_offset, geometry.slot_area())
                .map_err(|e| Error::DoubleMapFailed {
                    address: label.clone(),
                    source: e.into(),
                })?;
        }
        // The mapping may have moved (`map_twice`); the geometry is the one
        // validated above, copied into process memory.
        let base = NonNull::new(segment.base()).expect("mappings are never null");
        let hdr = base.cast::<RingHeader>();
        // SAFETY: `read_geometry` checked that header and slots fit inside
        // the mapping, and for a double-mapped ring `map_twice` mapped the
        // slot area a second time right after it; the segment is owned by
        // the returned Mapping.
        let view = unsafe { RingRef::new(hdr, base.add(geometry.slots_offset), geometry) };
        let process_local = segment.backend() == Backend::Heap;
        Ok(Mapping {
            view,
            tracker: SlotTracker::new(geometry.slot_count as usize),
            label,
            process_local,
            geometry,
            page_size,
            fingerprint,
            address,
            unlink_on_drop: false,
            segment,
        })
    }

    #[cfg(loom)]
    pub(crate) fn attach(
        _segment: Segment,
        label: String,
        _address: Option<Address>,
        _open_timeout: Duration,
    ) -> Result<Mapping, Error> {
        Err(Error::Unsupported {
            address: label,
            what: "opening a shared segment under loom",
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            if let Some(addr) = &self.address {
                // Remove the name only if it still names our segment (it may
                // have been removed and re-created by someone else).
                if segment::still_names(addr, &self.segment) {
                    let _ = segment::unlink(addr);
                }
            }
        }
    }
}

impl Mapping {
    pub(crate) fn segment_read_only(&self) -> bool {
        self.segment.read_only()
    }
}
