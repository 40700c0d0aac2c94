//! Process-local memory with the same layout as a shared segment, for
//! in-process rings, tests, Miri and ThreadSanitizer: the ring code does not
//! care where its memory comes from.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Alignment of a heap segment, one base page like a mapping.
pub(crate) const ALIGN: usize = 4096;

/// A zero-filled, page-aligned heap allocation, freed on drop.
pub(crate) struct HeapBlock {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the block is plain bytes owned by this value; all concurrent access
// to it goes through atomics or the ring's head/tail protocol.
unsafe impl Send for HeapBlock {}
// SAFETY: as above; `&HeapBlock` only hands out the raw pointer.
unsafe impl Sync for HeapBlock {}

impl HeapBlock {
    /// Allocates `len` zero bytes (at least one), or `None` if the layout is
    /// invalid or the allocation fails.
    pub(crate) fn zeroed(len: usize) -> Option<HeapBlock> {
        let layout = Layout::from_size_align(len.max(1), ALIGN).ok()?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })?;
        Some(HeapBlock { ptr, len })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.len.max(1), ALIGN)
            .expect("layout was valid at allocation");
        // SAFETY: `ptr` was returned by `alloc_zeroed` with this same layout
        // and is freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}
