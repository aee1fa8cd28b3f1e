//! The device profile's allocator (feature `device`): a first-fit free list over the
//! linear memory the guest already has, from the linker's `__heap_base` to its
//! `__heap_end` (the end of the initial memory). It never calls `memory.grow` or
//! `memory.size`, so it works alike with 1-byte pages (custom page sizes, the device
//! build's memory, `wasmflo_guest_build::BuildOptions::device`) and 64 KiB ones; the
//! memory neither grows nor is copied by the host, and an allocation that does not fit
//! fails (the guest traps, as on any host).
//!
//! wasm32 guests are single-threaded (no shared memory, no threads), which is what makes
//! the unsynchronised cell sound here.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;

use linked_list_allocator::Heap;

/// The free list, set up on the first allocation.
pub struct Arena {
    heap: UnsafeCell<Option<Heap>>,
}

impl core::fmt::Debug for Arena {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Arena")
    }
}

// SAFETY: a wasm32 guest instance runs one thread; nothing else touches the cell.
unsafe impl Sync for Arena {}

impl Arena {
    /// An arena not yet set up.
    pub const fn new() -> Self {
        Arena {
            heap: UnsafeCell::new(None),
        }
    }

    /// Runs `f` on the free list, created over `[__heap_base, __heap_end)` on first use.
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        // SAFETY: single-threaded, and `f` (an allocator call, which does not allocate
        // through the global allocator) holds the only reference while it runs.
        let slot = unsafe { &mut *self.heap.get() };
        let heap = slot.get_or_insert_with(|| {
            let (start, end) = region();
            let mut heap = Heap::empty();
            if end > start {
                // SAFETY: the region lies between the linker's heap base and the end of
                // the guest's memory, which nothing else uses.
                unsafe { heap.init(start as *mut u8, end - start) };
            }
            heap
        });
        f(heap)
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_arch = "wasm32")]
fn region() -> (usize, usize) {
    // Both symbols are defined by wasm-ld; only their addresses are used.
    unsafe extern "C" {
        static __heap_base: u8;
        static __heap_end: u8;
    }
    let start = core::ptr::addr_of!(__heap_base) as usize;
    let end = core::ptr::addr_of!(__heap_end) as usize;
    (start, end)
}

#[cfg(not(target_arch = "wasm32"))]
fn region() -> (usize, usize) {
    (0, 0)
}

// SAFETY: forwards to linked_list_allocator's Heap, which hands out disjoint,
// well-aligned blocks from a region it owns.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with_heap(|heap| heap.allocate_first_fit(layout))
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with `layout` (GlobalAlloc's contract).
            self.with_heap(|heap| unsafe { heap.deallocate(ptr, layout) });
        }
    }
}
