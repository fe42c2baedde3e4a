//! Kernel memory: the frame table and the kernel heap (the direct map and
//! the kernel's page tables are the architecture's: `arch::phys`,
//! `arch::paging`).
//!
//! Lock order (outermost first): heap, kernel page table, frames. Code that
//! holds the frames lock never allocates from the heap.

pub mod frames;
pub mod heap;

use kernel_core::frame::Frame;
use kernel_core::vm::Codec;

/// A fresh zeroed frame; when none is free, the heap's cached empty slab
/// pages are given back first and the allocation is tried once more (so a
/// process is never refused memory the heap merely holds in reserve).
pub fn alloc_zeroed_frame() -> Option<Frame> {
    frames::alloc_zeroed().or_else(|| {
        heap::trim();
        frames::alloc_zeroed()
    })
}

/// How user page-table entries are encoded on this CPU.
pub fn codec() -> Codec {
    Codec {
        nx: crate::arch::cpu::features().nx,
    }
}
