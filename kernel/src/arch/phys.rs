//! The direct map: all of RAM mapped at [`PHYS_OFFSET`], so the kernel can
//! reach any frame without mapping it first.
//!
//! Rules: only addresses the current page tables map may be turned into
//! pointers: before `paging::init_kernel` that is the first 4 GiB (the boot
//! tables, which map holes too); after it, the RAM the memory map reports
//! (`mm::init` hands `init_kernel` its usable ranges, the boot modules and
//! the kernel image; the frame table, page tables and heap all live there)
//! and the MMIO ranges `paging::map_mmio` mapped; never the holes between,
//! nor anything at or above [`DIRECT_MAP_LIMIT`]. Firmware tables in
//! reserved memory (ACPI) are read before the switch.

use core::sync::atomic::{AtomicBool, Ordering};
use kernel_core::bootinfo::PhysMemory;

/// Where physical address 0 appears in every address space.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;

/// What the boot page tables map of physical memory.
pub const BOOT_DIRECT_MAP_END: u64 = 4 << 30;

/// The direct map's window: physical addresses below this can appear at
/// `PHYS_OFFSET` (PML4 slots 256..510, 127 TiB; slots 510 and 511 hold the
/// vmalloc area and the kernel image).
pub const DIRECT_MAP_LIMIT: u64 = 254 << 39;

/// A kernel pointer to physical address `phys` through the direct map.
#[inline]
pub fn to_virt(phys: u64) -> *mut u8 {
    (PHYS_OFFSET + phys) as *mut u8
}

/// The physical address behind a direct-map pointer.
#[inline]
pub fn from_virt(ptr: *const u8) -> u64 {
    ptr as u64 - PHYS_OFFSET
}

/// Whether the boot page tables (4 GiB mapped, holes included) are still
/// the ones in use.
static BOOT_MAP_LIVE: AtomicBool = AtomicBool::new(true);

/// Says that the boot tables are gone (`paging::init_kernel` switched to
/// the kernel's, which map only RAM).
pub fn boot_map_gone() {
    BOOT_MAP_LIVE.store(false, Ordering::Relaxed);
}

/// Reads boot-loader tables through the boot direct map, refusing anything
/// the boot tables do not cover, and everything once they are gone (the
/// firmware's tables lie in reserved memory the final direct map leaves
/// out).
pub struct BootPhysMemory;

impl PhysMemory for BootPhysMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > BOOT_DIRECT_MAP_END || !BOOT_MAP_LIVE.load(Ordering::Relaxed) {
            return false;
        }
        // SAFETY: [addr, end) lies in the first 4 GiB, which the boot page
        // tables map read-write at PHYS_OFFSET; we only read.
        unsafe {
            core::ptr::copy_nonoverlapping(to_virt(addr), buf.as_mut_ptr(), buf.len());
        }
        true
    }
}
