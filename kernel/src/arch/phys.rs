//! The direct map: all of RAM mapped at [`PHYS_OFFSET`], so the kernel can
//! reach any frame without mapping it first.
//!
//! Rules: only addresses the current page tables map may be turned into
//! pointers: before `paging::init_kernel` that is the first 4 GiB (the boot
//! tables); after it, RAM and the MMIO ranges mapped explicitly.

use kernel_core::bootinfo::PhysMemory;

/// Where physical address 0 appears in every address space.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;

/// What the boot page tables map of physical memory.
pub const BOOT_DIRECT_MAP_END: u64 = 4 << 30;

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

/// Reads boot-loader tables through the boot direct map, refusing anything
/// the boot tables do not cover.
pub struct BootPhysMemory;

impl PhysMemory for BootPhysMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > BOOT_DIRECT_MAP_END {
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
