//! A global allocator that aborts on any single allocation over 64 MiB.
//!
//! The targets run without AddressSanitizer (`-s none`: several times the
//! executions per second of safe Rust, where the sanitizer finds little),
//! and libFuzzer's own `-malloc_limit_mb` needs the sanitizer's malloc
//! hooks, so this stands in for it: an input that makes the parser ask for
//! an unbounded buffer stops the run as a crash, with the input saved.
//! `-rss_limit_mb` still bounds the process as a whole.

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest single allocation an input may cause.
const LIMIT: usize = 64 << 20;

struct Capped;

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

fn check(size: usize) {
    if size > LIMIT {
        // No formatting here: it would allocate inside the allocator.
        std::process::abort();
    }
}

#[global_allocator]
static CAPPED: Capped = Capped;
