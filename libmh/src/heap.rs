//! The global allocator: `heap_core::Heap` over the allocator's region
//! (`USER_ALLOC_BASE`), growing with `vm_map`. Every page it maps is
//! charged to the process's reserve; when the kernel says `OutOfMemory`,
//! it asks the mem server for more reserve (`mem::top_up`, in batches of
//! at least 64 KiB) and maps again. When the server refuses (the process
//! is at its ceiling), or there is no mem server and the reserve is
//! spent, the allocation fails: `alloc` returns null, so fallible APIs
//! (`Vec::try_reserve`) see an error, and infallible ones end in the
//! panic handler, which reports "out of memory" and exits with
//! [`crate::OUT_OF_MEMORY_EXIT_CODE`]. Only that process dies.
//!
//! Programs use it with `extern crate alloc;` (`Vec`, `Box`, `String`);
//! a program that never allocates never maps a page of it.
//!
//! Rules: the heap is single-threaded, like a process; allocating from an
//! interrupt handler while the interrupted code is inside the allocator
//! fails (null) rather than corrupt the heap; a growth that fails maps
//! nothing.

use crate::{mem, vm};
use abi::Error;
use abi::layout::{PAGE_SIZE, USER_ALLOC_BASE, USER_ALLOC_SIZE};
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use heap_core::{Grow, Heap};

pub use heap_core::Stats;

/// The allocator: the heap behind a busy flag.
pub struct Allocator {
    heap: UnsafeCell<Heap>,
    busy: AtomicBool,
}

// SAFETY: a process is single-threaded; the busy flag keeps an interrupt
// handler out of a heap the interrupted code is using.
unsafe impl Sync for Allocator {}

impl Allocator {
    pub const fn new() -> Allocator {
        Allocator {
            heap: UnsafeCell::new(Heap::new(
                USER_ALLOC_BASE as usize,
                USER_ALLOC_SIZE as usize,
            )),
            busy: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the heap, or returns None if it is in use (reentry).
    fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: the busy flag makes this the only reference to the heap.
        let r = f(unsafe { &mut *self.heap.get() });
        self.busy.store(false, Ordering::Release);
        Some(r)
    }
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

/// Grants asked for while growing the heap, since start.
static GRANTS: AtomicU64 = AtomicU64::new(0);

/// Maps pages at the top of the heap, topping the reserve up when the
/// kernel refuses them.
struct Mapper;

impl Mapper {
    /// Maps `[at, at + len)`, with at most two grants; true if mapped.
    fn map(at: usize, len: usize) -> bool {
        for _ in 0..2 {
            match vm::map(at as u64, len as u64, vm::PROT_RW) {
                Ok(()) => return true,
                Err(Error::OutOfMemory) => {}
                Err(_) => return false,
            }
            GRANTS.fetch_add(1, Ordering::Relaxed);
            if mem::top_up(len as u64 / PAGE_SIZE).is_err() {
                return false;
            }
        }
        vm::map(at as u64, len as u64, vm::PROT_RW).is_ok()
    }
}

impl Grow for Mapper {
    fn grow(&mut self, at: usize, min: usize, want: usize) -> usize {
        if Mapper::map(at, want) {
            want
        } else if min < want && Mapper::map(at, min) {
            min
        } else {
            0
        }
    }
}

// SAFETY: blocks come from the heap, which hands out disjoint blocks of
// the size and alignment asked for, in memory mapped read-write.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|h| h.alloc(layout.size(), layout.align(), &mut Mapper))
            .flatten()
            .map_or(core::ptr::null_mut(), |a| a as *mut u8)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // A reentrant free (from a handler) leaks the block rather than
        // corrupt the heap.
        // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with
        // `layout`.
        let _ = self.with(|h| unsafe { h.dealloc(ptr as usize, layout.size(), layout.align()) });
    }
}

#[cfg_attr(target_os = "none", global_allocator)]
static GLOBAL: Allocator = Allocator::new();

/// The heap's counters, and how many times growing it had to ask the mem
/// server for reserve.
pub fn stats() -> (Stats, u64) {
    let s = GLOBAL.with(|h| h.stats()).unwrap_or_default();
    (s, GRANTS.load(Ordering::Relaxed))
}
