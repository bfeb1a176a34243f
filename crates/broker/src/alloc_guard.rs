//! A global allocator that makes absurd allocations lazy instead of fatal.
//!
//! `kafka-protocol` 0.18 decodes arrays with `Vec::with_capacity(count)`, `count` taken from the
//! wire. A 14-byte request claiming `i32::MAX` elements asks for hundreds of GiB; the system
//! allocator refuses, and Rust *aborts* the process (not a panic: nothing can catch it). Any
//! allocation of at least `HUGE` bytes is therefore served from an anonymous `MAP_NORESERVE`
//! mapping: address space only, no memory is committed until touched. The decoder then runs out of
//! input after a few elements, returns an error, and the mapping is unmapped. No legitimate
//! allocation in the broker comes near `HUGE` (frames are capped by `socket.request.max.bytes`),
//! so the normal path costs one comparison.
//!
//! The binary installs it with `#[global_allocator]`; the crate's unit tests do too.

use std::alloc::{GlobalAlloc, Layout, System};

pub struct GuardedAlloc;

const HUGE: usize = 1 << 30;
const PAGE: usize = 4096;

unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= HUGE && layout.align() <= PAGE {
            return map(layout.size());
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= HUGE && layout.align() <= PAGE {
            return map(layout.size()); // anonymous mappings are zero-filled
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= HUGE && layout.align() <= PAGE {
            // SAFETY: `ptr` came from `map` with this same size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_huge = layout.size() >= HUGE && layout.align() <= PAGE;
        let new_huge = new_size >= HUGE && layout.align() <= PAGE;
        if !old_huge && !new_huge {
            // SAFETY: both sides are System allocations with the caller's layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the new layout keeps the alignment; size is non-zero as realloc requires.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: allocation through ourselves, copy of the overlapping prefix, then free.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

fn map(size: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; the kernel picks the address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}
