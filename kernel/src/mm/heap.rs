//! The kernel heap (`#[global_allocator]`).
//!
//! Small objects (up to `kernel_core::slab::MAX_SMALL` bytes) come from slab
//! caches over single frames (`kernel_core::slab`, host-tested; we wrote it
//! because `slab_allocator_rs` is unmaintained). Larger ones get whole
//! frames: one page through the direct map, several pages mapped
//! contiguously into the vmalloc area, so the heap never needs physically
//! contiguous memory.
//!
//! Rules: an allocation failure returns null (Rust's `alloc` then reports
//! it); the kernel's own code paths that can run out of memory use
//! `try_reserve`-style APIs or fixed tables so user requests get
//! `OutOfMemory` rather than a panic.

use super::frames;
use crate::arch::paging;
use crate::arch::phys;
use arrayvec::ArrayVec;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::frame::Frame;
use kernel_core::slab::{PageSource, SizeClassHeap};
use spin::Mutex;

/// Kernel virtual addresses for multi-page allocations: PML4 slot 511 below
/// the kernel image (which is at -2 GiB).
const VMALLOC_START: u64 = 0xffff_ff80_0000_0000;
const VMALLOC_END: u64 = 0xffff_ffff_8000_0000;

/// Hands whole frames to the slab layer through the direct map.
struct FramePages;

impl PageSource for FramePages {
    fn alloc_page(&mut self) -> Option<NonNull<u8>> {
        let frame = frames::alloc()?;
        NonNull::new(phys::to_virt(frame.addr()))
    }

    unsafe fn free_page(&mut self, page: NonNull<u8>) {
        let _ = frames::release(Frame::containing(phys::from_virt(page.as_ptr())));
    }
}

/// Free ranges of the vmalloc area, (start, pages), sorted by address.
struct VmallocSpace {
    free: ArrayVec<(u64, u64), 64>,
}

impl VmallocSpace {
    fn take(&mut self, pages: u64) -> Option<u64> {
        if self.free.is_empty() && self.free.capacity() > 0 {
            // First use: the whole area is free.
            self.free
                .push((VMALLOC_START, (VMALLOC_END - VMALLOC_START) / 4096));
        }
        let i = self.free.iter().position(|r| r.1 >= pages)?;
        let (start, len) = self.free[i];
        if len == pages {
            self.free.remove(i);
        } else {
            self.free[i] = (start + pages * 4096, len - pages);
        }
        Some(start)
    }

    fn give_back(&mut self, start: u64, pages: u64) {
        if self.free.is_full() {
            // Losing track of a range leaks address space, never memory.
            return;
        }
        let i = self.free.partition_point(|r| r.0 < start);
        self.free.insert(i, (start, pages));
        // Merge with the neighbours so the list stays short.
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 * 4096 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 * 4096 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }
}

/// Frames held by multi-page and single-page large allocations.
static LARGE_FRAMES: AtomicU64 = AtomicU64::new(0);

struct Heap {
    small: Mutex<SizeClassHeap>,
    vmalloc: Mutex<VmallocSpace>,
}

#[global_allocator]
static HEAP: Heap = Heap {
    small: Mutex::new(SizeClassHeap::new()),
    vmalloc: Mutex::new(VmallocSpace {
        free: ArrayVec::new_const(),
    }),
};

fn pages_for(layout: Layout) -> u64 {
    (layout.size() as u64).div_ceil(4096).max(1)
}

impl Heap {
    fn alloc_large(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 4096 {
            return null_mut();
        }
        let pages = pages_for(layout);
        if pages == 1 {
            return frames::alloc().map_or(null_mut(), |f| {
                LARGE_FRAMES.fetch_add(1, Ordering::Relaxed);
                phys::to_virt(f.addr())
            });
        }
        let Some(start) = self.vmalloc.lock().take(pages) else {
            return null_mut();
        };
        for i in 0..pages {
            let va = start + i * 4096;
            let mapped = frames::alloc().map(|f| (f, paging::map_kernel_page(va, f, true)));
            match mapped {
                Some((_, Ok(()))) => {}
                failed => {
                    if let Some((f, Err(_))) = failed {
                        let _ = frames::release(f);
                    }
                    self.free_vmalloc(start, i);
                    self.vmalloc.lock().give_back(start, pages);
                    return null_mut();
                }
            }
        }
        LARGE_FRAMES.fetch_add(pages, Ordering::Relaxed);
        start as *mut u8
    }

    fn free_vmalloc(&self, start: u64, mapped_pages: u64) {
        for i in 0..mapped_pages {
            if let Some(frame) = paging::unmap_kernel_page(start + i * 4096) {
                let _ = frames::release(frame);
            }
        }
    }

    fn dealloc_large(&self, ptr: *mut u8, layout: Layout) {
        let pages = pages_for(layout);
        let va = ptr as u64;
        LARGE_FRAMES.fetch_sub(pages, Ordering::Relaxed);
        if pages == 1 && va < VMALLOC_START {
            let _ = frames::release(Frame::containing(phys::from_virt(ptr)));
            return;
        }
        self.free_vmalloc(va, pages);
        self.vmalloc.lock().give_back(va, pages);
    }
}

/// Frames the heap holds right now (slab pages and large allocations, and
/// the kernel page tables that map the vmalloc area and device memory).
pub fn frames_held() -> u64 {
    HEAP.small.lock().pages_in_use() as u64
        + LARGE_FRAMES.load(Ordering::Relaxed)
        + paging::kernel_table_frames()
}

/// Gives the slab caches' spare empty pages back to the frame table (so a
/// free-frame count reflects only live objects).
pub fn trim() {
    // SAFETY: FramePages is where every slab page came from.
    unsafe { HEAP.small.lock().trim(&mut FramePages) };
}

// SAFETY: every path returns memory that is exclusively the caller's until
// dealloc, sized and aligned per the layout (slab classes are aligned to
// their size; pages to 4096), or null.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if SizeClassHeap::class_for(layout).is_some() {
            return self
                .small
                .lock()
                .alloc(layout, &mut FramePages)
                .map_or(null_mut(), |p| p.as_ptr());
        }
        self.alloc_large(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SizeClassHeap::class_for(layout).is_some() {
            if let Some(p) = NonNull::new(ptr) {
                // SAFETY: `p` came from `alloc` with the same layout, so the
                // same size class.
                unsafe { self.small.lock().dealloc(p, layout, &mut FramePages) };
            }
            return;
        }
        self.dealloc_large(ptr, layout);
    }
}
