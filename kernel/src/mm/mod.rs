//! Kernel memory: the physical direct map, the frame table, the kernel's
//! own page tables and its heap.
//!
//! Lock order (outermost first): heap, kernel page table, frames. Code that
//! holds the frames lock never allocates from the heap.

pub mod frames;
pub mod heap;
pub mod phys;

use crate::arch::paging::PageTable;
use kernel_core::frame::Frame;
use kernel_core::pagetable::TableFrames;
use kernel_core::reserve::{Account, Reserve, Usage};
use kernel_core::vm::{Codec, FrameOps, Released, release_entry};

/// A fresh zeroed frame; when none is free, the heap's cached empty slab
/// pages are given back first and the allocation is tried once more (so a
/// process is never refused memory the heap merely holds in reserve).
pub fn alloc_zeroed_frame() -> Option<Frame> {
    frames::alloc_zeroed().or_else(|| {
        heap::trim();
        frames::alloc_zeroed()
    })
}

/// The frame table as `kernel_core::vm` sees it, charging no one: for the
/// kernel's own tables, and for operations whose charge is already paid
/// (a copy-on-write copy replaces a reference the reserve counted).
pub struct KernelFrames;

impl TableFrames for KernelFrames {
    fn alloc_table(&mut self) -> Option<Frame> {
        alloc_zeroed_frame()
    }

    fn free_table(&mut self, frame: Frame) {
        let _ = frames::release(frame);
    }
}

impl FrameOps for KernelFrames {
    fn alloc_zeroed(&mut self) -> Option<Frame> {
        alloc_zeroed_frame()
    }

    fn copy(&mut self, dst: Frame, src: Frame) {
        // SAFETY: both frames are RAM the caller holds references to,
        // reachable through the direct map, and distinct (dst is fresh).
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys::to_virt(src.addr()),
                phys::to_virt(dst.addr()),
                4096,
            );
        }
    }

    fn add_ref(&mut self, frame: Frame) {
        if let Err(e) = frames::add_ref(frame) {
            crate::kprintln!("[kernel] BUG: add_ref({:#x}): {e:?}", frame.addr());
        }
    }

    fn release(&mut self, frame: Frame) -> bool {
        match frames::release(frame) {
            Ok(freed) => freed,
            Err(e) => {
                crate::kprintln!("[kernel] BUG: release({:#x}): {e:?}", frame.addr());
                false
            }
        }
    }

    fn refcount(&self, frame: Frame) -> u32 {
        frames::refcount(frame)
    }
}

/// The frame table as one process's memory operations see it: each page
/// and page table made for the process is charged to its reserve (and
/// refused past the limit), each one it lets go is credited back.
/// Copy-on-write copies and the copies fork makes of wired pages cost
/// nothing more: the reserve already counts one reference per sharer.
pub struct ChargedFrames<'a> {
    pub account: Account<'a>,
}

impl<'a> ChargedFrames<'a> {
    pub fn new(reserve: &'a mut Reserve, usage: &'a mut Usage) -> Self {
        ChargedFrames {
            account: Account { reserve, usage },
        }
    }
}

impl TableFrames for ChargedFrames<'_> {
    fn alloc_table(&mut self) -> Option<Frame> {
        self.account.charge_tables(1).ok()?;
        let f = alloc_zeroed_frame();
        if f.is_none() {
            self.account.credit_tables(1);
        }
        f
    }

    fn free_table(&mut self, frame: Frame) {
        self.account.credit_tables(1);
        KernelFrames.free_table(frame);
    }
}

impl FrameOps for ChargedFrames<'_> {
    fn alloc_zeroed(&mut self) -> Option<Frame> {
        self.account.charge_pages(1).ok()?;
        let f = alloc_zeroed_frame();
        if f.is_none() {
            self.account.credit_pages(1);
        }
        f
    }

    fn copy(&mut self, dst: Frame, src: Frame) {
        KernelFrames.copy(dst, src)
    }

    fn add_ref(&mut self, frame: Frame) {
        KernelFrames.add_ref(frame)
    }

    fn release(&mut self, frame: Frame) -> bool {
        self.account.credit_pages(1);
        KernelFrames.release(frame)
    }

    fn refcount(&self, frame: Frame) -> u32 {
        KernelFrames.refcount(frame)
    }

    fn can_take(&self, n: u64) -> bool {
        self.account.reserve.fits(n, 0) && (frames::free_count() as u64) >= n
    }
}

/// How user page-table entries are encoded on this CPU.
pub fn codec() -> Codec {
    Codec {
        nx: crate::arch::cpu::features().nx,
    }
}

/// Releases a user address space: what every leaf maps, then the page
/// tables themselves. The caller credits the owner's reserve with what
/// its usage says it held (so the teardown needs no reserve). Wired frames
/// are kept out of circulation: a device may still be writing them.
pub fn release_user_space(space: PageTable) {
    let codec = codec();
    space.destroy(&mut KernelFrames, |pte| {
        if let Released::StillWired(frame) = release_entry(codec, &mut KernelFrames, pte) {
            crate::kprintln!(
                "[kernel] frame {:#x} was wired at exit: kept out of use",
                frame.addr()
            );
        }
    });
}
