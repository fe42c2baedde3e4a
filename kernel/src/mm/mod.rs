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
use kernel_core::vm::{Codec, FrameOps, Released, release_entry};

/// The frame table as `kernel_core::vm` sees it.
pub struct KernelFrames;

impl FrameOps for KernelFrames {
    fn alloc_zeroed(&mut self) -> Option<Frame> {
        frames::alloc_zeroed()
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

/// The frame table as one process's memory operations see it: each frame
/// created for the process is charged to its reserve (and refused past its
/// limit), each reference it drops is credited back.
pub struct ChargedFrames<'a> {
    pub reserve: &'a mut crate::process::Reserve,
}

impl FrameOps for ChargedFrames<'_> {
    fn alloc_zeroed(&mut self) -> Option<Frame> {
        if self
            .reserve
            .limit
            .is_some_and(|limit| self.reserve.used >= limit)
        {
            return None;
        }
        let f = KernelFrames.alloc_zeroed()?;
        self.reserve.used += 1;
        Some(f)
    }

    fn copy(&mut self, dst: Frame, src: Frame) {
        KernelFrames.copy(dst, src)
    }

    fn add_ref(&mut self, frame: Frame) {
        KernelFrames.add_ref(frame)
    }

    fn release(&mut self, frame: Frame) -> bool {
        self.reserve.used = self.reserve.used.saturating_sub(1);
        KernelFrames.release(frame)
    }

    fn refcount(&self, frame: Frame) -> u32 {
        KernelFrames.refcount(frame)
    }
}

/// How user page-table entries are encoded on this CPU.
pub fn codec() -> Codec {
    Codec {
        nx: crate::arch::cpu::features().nx,
    }
}

/// Releases a user address space: what every leaf maps, then the page
/// tables themselves. Wired frames are kept out of circulation: a device
/// may still be writing them.
pub fn release_user_space(space: PageTable) {
    let codec = codec();
    space.destroy(|pte| {
        if let Released::StillWired(frame) = release_entry(codec, &mut KernelFrames, pte) {
            crate::kprintln!(
                "[kernel] frame {:#x} was wired at exit: kept out of use",
                frame.addr()
            );
        }
    });
}
