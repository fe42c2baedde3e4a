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
use kernel_core::paging::pte_addr;

/// Releases a user address space: one reference on every mapped frame,
/// then the page tables themselves.
pub fn release_user_space(space: PageTable) {
    space.destroy(|_va, pte| {
        let _ = frames::release(Frame::containing(pte_addr(pte)));
    });
}
