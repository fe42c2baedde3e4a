//! The kernel heap (`#[global_allocator]`).
//!
//! Small objects (up to `kernel_core::slab::MAX_SMALL` bytes) come from slab
//! caches over single frames (`kernel_core::slab`, host-tested; we wrote it
//! because `slab_allocator_rs` is unmaintained). Larger ones get whole
//! frames: one page through the direct map, several pages mapped
//! contiguously into the vmalloc area, so the heap never needs physically
//! contiguous memory.
//!
//! Rules: multi-page frees are deferred to the end of the kernel entry
//! (`reclaim`, announced through `exit_work`), where they shoot down the other CPUs' TLB entries before
//! the frames or the addresses are used again, with no heap lock held
//! across that wait; an allocation failure returns null (Rust's `alloc` then reports
//! it); the kernel's own code paths that can run out of memory use
//! `try_reserve`-style APIs or fixed tables so user requests get
//! `OutOfMemory` rather than a panic.

use super::frames;
use crate::arch::ordered::Ordered;
use crate::arch::phys;
use crate::arch::{paging, tlb};
use arrayvec::ArrayVec;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::frame::Frame;
use kernel_core::lockorder::Rank;
use kernel_core::slab::{PageSource, SizeClassHeap};

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
    /// Whether `free` has been filled with the whole area (an empty list
    /// later means the area is all taken, not that it is new).
    started: bool,
}

impl VmallocSpace {
    fn take(&mut self, pages: u64) -> Option<u64> {
        if !self.started {
            // First use: the whole area is free.
            self.started = true;
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
    small: Ordered<SizeClassHeap>,
    vmalloc: Ordered<VmallocSpace>,
    /// Multi-page allocations freed but not yet unmapped (`defer_free`).
    deferred: Ordered<Deferred>,
}

#[global_allocator]
static HEAP: Heap = Heap {
    small: Ordered::new(Rank::HeapSmall, SizeClassHeap::new()),
    vmalloc: Ordered::new(
        Rank::HeapVmalloc,
        VmallocSpace {
            free: ArrayVec::new_const(),
            started: false,
        },
    ),
    deferred: Ordered::new(Rank::HeapDeferred, Deferred { head: 0 }),
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
                    if i == 0 {
                        self.vmalloc.lock().give_back(start, pages);
                    } else {
                        // Mapped pages wait for a shootdown like any free
                        // (this may run under any lock); the unmapped rest
                        // is skipped by `free_vmalloc`.
                        LARGE_FRAMES.fetch_add(pages, Ordering::Relaxed);
                        self.defer_free(start, pages);
                    }
                    return null_mut();
                }
            }
        }
        LARGE_FRAMES.fetch_add(pages, Ordering::Relaxed);
        start as *mut u8
    }

    /// Unmaps and frees the pages. The addresses may be reused (and the
    /// frames are) only once no CPU can still reach them through its TLB,
    /// so each unmapping batch ends with a shootdown of the other CPUs'
    /// entries (`tlb.rs`) before anything is given back.
    fn free_vmalloc(&self, start: u64, mapped_pages: u64) {
        // Other CPUs answer a shootdown only while they spin for the
        // kernel lock (or run outside any): no other lock may be held.
        crate::arch::ordered::assert_only(&[Rank::Sched], "a kernel TLB shootdown");
        let mut unmapped: ArrayVec<Frame, 16> = ArrayVec::new();
        for i in 0..mapped_pages {
            if let Some(frame) = paging::unmap_kernel_page(start + i * 4096) {
                if unmapped.is_full() {
                    tlb::request_all_others(tlb::FLUSH_ALL);
                    for f in unmapped.drain(..) {
                        let _ = frames::release(f);
                    }
                }
                unmapped.push(frame);
            }
        }
        tlb::request_all_others(tlb::FLUSH_ALL);
        for f in unmapped {
            let _ = frames::release(f);
        }
    }

    /// Frees a multi-page allocation later, at [`reclaim`], where the CPU
    /// holds no lock but the kernel's and may wait for a shootdown: a free
    /// can happen under any lock (a table dropped under the I/O MMU's),
    /// and a CPU spinning for that lock would never answer. The mapping
    /// stays until then; nothing uses freed memory.
    fn defer_free(&self, start: u64, pages: u64) {
        let mut deferred = self.deferred.lock();
        // SAFETY: the block is the caller's freed allocation, mapped and
        // writable until `reclaim` unmaps it (its first page at least), and
        // no one else uses it any more: its first words hold the link.
        unsafe {
            let link = start as *mut [u64; 2];
            link.write([deferred.head, pages]);
        }
        deferred.head = start;
        drop(deferred);
        crate::exit_work::announce(crate::exit_work::HEAP_DEFERRED);
    }

    fn dealloc_large(&self, ptr: *mut u8, layout: Layout) {
        let pages = pages_for(layout);
        let va = ptr as u64;
        if pages == 1 && va < VMALLOC_START {
            LARGE_FRAMES.fetch_sub(pages, Ordering::Relaxed);
            let _ = frames::release(Frame::containing(phys::from_virt(ptr)));
            return;
        }
        self.defer_free(va, pages);
    }
}

/// Multi-page blocks freed since the last [`reclaim`]: a list threaded
/// through the blocks themselves (each starts with `[next, pages]`), so
/// deferring a free never needs memory and never fails, however many
/// frees one kernel entry makes.
struct Deferred {
    head: u64,
}

/// Frees the multi-page allocations freed since the last call: called
/// where the CPU holds the kernel lock and nothing else (the end of a
/// kernel entry that `exit_work` says left some, and the boot code).
pub fn reclaim() {
    let mut next = core::mem::take(&mut HEAP.deferred.lock().head);
    while next != 0 {
        let start = next;
        // SAFETY: a block `defer_free` linked: still mapped, its first
        // words written there.
        let [link, pages] = unsafe { (start as *const [u64; 2]).read() };
        next = link;
        LARGE_FRAMES.fetch_sub(pages, Ordering::Relaxed);
        HEAP.free_vmalloc(start, pages);
        HEAP.vmalloc.lock().give_back(start, pages);
    }
}

/// A stack of `pages` pages in the vmalloc area with an unmapped guard
/// page below it, for a CPU (never freed: CPUs do not stop); its top.
pub fn alloc_stack(pages: u64) -> Option<u64> {
    let start = HEAP.vmalloc.lock().take(pages + 1)?;
    for i in 1..=pages {
        let frame = frames::alloc_zeroed()?;
        if paging::map_kernel_page(start + i * 4096, frame, true).is_err() {
            let _ = frames::release(frame);
            return None;
        }
    }
    LARGE_FRAMES.fetch_add(pages, Ordering::Relaxed);
    Some(start + (pages + 1) * 4096)
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
