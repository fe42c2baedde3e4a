//! Kernel memory: the frame table and the kernel heap (the direct map and
//! the kernel's page tables are the architecture's: `arch::phys`,
//! `arch::paging`).
//!
//! Lock order (outermost first): heap, kernel page table, frames. Code that
//! holds the frames lock never allocates from the heap.
//!
//! Boot ([`init`]): the frame table first (its records in RAM the boot
//! tables map), then the kernel's page tables with the direct map of all
//! RAM, whose own tables must also come from below 4 GiB until they are
//! loaded; only then may anything allocate a frame that could lie higher.

pub mod frames;
pub mod heap;

use crate::arch::paging;
use crate::kprintln;
use kernel_core::bootinfo::BootInfo;
use kernel_core::frame::Frame;
use kernel_core::vm::Codec;

/// Builds the frame table over all RAM (keeping `reserved` out of it) and
/// the kernel's page tables with the direct map of it, and switches to
/// them. The two steps are one call so that nothing allocates in between,
/// while a frame above the boot tables' 4 GiB could not yet be touched.
pub fn init(
    boot: &BootInfo,
    reserved: &[(u64, u64)],
    nx: bool,
) -> Result<frames::FrameStats, &'static str> {
    let stats = frames::init(boot, reserved)?;
    paging::set_table_frames(frames::alloc_zeroed_boot);
    let shape = paging::init_kernel(&stats.mapped, nx).map_err(|e| match e {
        paging::MapError::OutOfMemory => "no memory for the kernel page tables",
        _ => "the direct map does not fit the kernel page tables",
    })?;
    paging::set_table_frames(frames::alloc_zeroed);
    kprintln!(
        "[kernel] memory: {} MiB of RAM in {} frame-table segment(s) ({} KiB of records at {:#x}); direct map of {} ranges: {} x 1 GiB, {} x 2 MiB, {} x 4 KiB pages, window to {:#x}",
        stats.ram_bytes >> 20,
        stats.segments,
        stats.records_bytes >> 10,
        stats.records_at,
        stats.mapped.len(),
        shape.huge,
        shape.large,
        shape.small,
        shape.window_end,
    );
    if stats.dropped_ranges > 0 || stats.dropped_frames > 0 {
        kprintln!(
            "[kernel] memory map too fragmented: {} ranges and {} MiB of RAM ignored",
            stats.dropped_ranges,
            stats.dropped_frames >> 8
        );
    }
    Ok(stats)
}

/// A fresh zeroed frame; when none is free, the heap's cached empty slab
/// pages are given back first and the allocation is tried once more (so a
/// process is never refused memory the heap merely holds in reserve).
pub fn alloc_zeroed_frame() -> Option<Frame> {
    frames::alloc_zeroed().or_else(|| {
        heap::trim();
        frames::alloc_zeroed()
    })
}

/// As [`alloc_zeroed_frame`], a frame wholly below physical `limit` (for
/// DMA by a device that sees physical addresses).
pub fn alloc_zeroed_frame_below(limit: u64) -> Option<Frame> {
    frames::alloc_zeroed_below(limit).or_else(|| {
        heap::trim();
        frames::alloc_zeroed_below(limit)
    })
}

/// How user page-table entries are encoded on this CPU.
pub fn codec() -> Codec {
    Codec {
        nx: crate::arch::cpu::features().nx,
    }
}
