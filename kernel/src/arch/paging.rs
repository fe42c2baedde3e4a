//! 4-level page tables, edited through the direct map.
//!
//! Rules: the upper half (PML4 entries 256..512) belongs to the kernel and
//! is shared by every address space: its PML4 entries are created once, at
//! boot, and never change, so a kernel mapping made later under them is
//! visible everywhere. The lower half belongs to the process. Page-table
//! frames come from the frame table like any other frame, and a failed
//! allocation is an error, not a panic. User leaves never use large pages.

use crate::mm::phys;
use kernel_core::frame::Frame;
use kernel_core::paging::{
    PteFlags, is_page_aligned, make_pte, pte_addr, pte_flags, table_indices,
};
use spin::Mutex;

type Table = [u64; 512];

/// The first PML4 slot of the kernel half.
pub const KERNEL_HALF_FIRST_SLOT: usize = 256;

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    OutOfMemory,
    AlreadyMapped,
    /// A large page covers the address.
    Conflict,
}

fn table_mut(frame_addr: u64) -> *mut Table {
    phys::to_virt(frame_addr) as *mut Table
}

/// One PML4 and everything under it.
pub struct PageTable {
    root: Frame,
}

impl PageTable {
    /// A page table with an empty lower half and the kernel's upper half.
    pub fn new_user(kernel: &PageTable) -> Result<PageTable, MapError> {
        let root = crate::mm::frames::alloc_zeroed().ok_or(MapError::OutOfMemory)?;
        // SAFETY: both roots are page-table frames reachable via the direct
        // map; the new one is ours alone.
        unsafe {
            let src = &*table_mut(kernel.root.addr());
            let dst = &mut *table_mut(root.addr());
            dst[KERNEL_HALF_FIRST_SLOT..].copy_from_slice(&src[KERNEL_HALF_FIRST_SLOT..]);
        }
        Ok(PageTable { root })
    }

    /// An empty page table (used once, for the kernel's).
    fn new_empty() -> Result<PageTable, MapError> {
        let root = crate::mm::frames::alloc_zeroed().ok_or(MapError::OutOfMemory)?;
        Ok(PageTable { root })
    }

    /// The entry for `va` at `level` (0: 4 KiB leaf, 1: 2 MiB entry),
    /// creating missing tables above it when `create` (with `parent` flags
    /// on the new parent entries).
    fn slot(
        &mut self,
        va: u64,
        level: usize,
        create: bool,
        parent: PteFlags,
    ) -> Result<Option<*mut u64>, MapError> {
        let idx = table_indices(va);
        let mut table = table_mut(self.root.addr());
        for &i in &idx[..3 - level] {
            // SAFETY: `table` is a page-table frame (the root or one found
            // in a present, non-large parent entry), mapped by the direct
            // map, and this address space is not edited concurrently.
            let entry = unsafe { &mut (*table)[i] };
            let flags = pte_flags(*entry);
            if !flags.contains(PteFlags::PRESENT) {
                if !create {
                    return Ok(None);
                }
                let frame = crate::mm::frames::alloc_zeroed().ok_or(MapError::OutOfMemory)?;
                *entry = make_pte(frame.addr(), parent | PteFlags::PRESENT);
            } else if flags.contains(PteFlags::HUGE) {
                return Err(MapError::Conflict);
            }
            table = table_mut(pte_addr(*entry));
        }
        // SAFETY: as above, for the last level walked.
        Ok(Some(unsafe { &raw mut (*table)[idx[3 - level]] }))
    }

    fn leaf(
        &mut self,
        va: u64,
        create: bool,
        parent: PteFlags,
    ) -> Result<Option<*mut u64>, MapError> {
        self.slot(va, 0, create, parent)
    }

    /// Maps the 4 KiB page at `va` to `phys` with `flags` (PRESENT implied).
    pub fn map(&mut self, va: u64, phys: u64, flags: PteFlags) -> Result<(), MapError> {
        debug_assert!(is_page_aligned(va) && is_page_aligned(phys));
        let parent = if va < (1 << 47) {
            PteFlags::WRITABLE | PteFlags::USER
        } else {
            PteFlags::WRITABLE
        };
        let slot = self.leaf(va, true, parent)?.ok_or(MapError::OutOfMemory)?;
        // SAFETY: `slot` points into a live page-table frame of ours.
        unsafe {
            if *slot & PteFlags::PRESENT.bits() != 0 {
                return Err(MapError::AlreadyMapped);
            }
            *slot = make_pte(phys, flags | PteFlags::PRESENT);
        }
        Ok(())
    }

    /// The raw leaf entry for `va` (0 when no table reaches it): a
    /// read-only walk, the hot path of every user copy.
    #[inline]
    pub fn leaf_entry(&self, va: u64) -> u64 {
        let idx = table_indices(va);
        let mut table = self.root.addr();
        for &i in &idx[..3] {
            // SAFETY: `table` is a page-table frame of this address space
            // (the root, or found in a present non-large entry), mapped by
            // the direct map; `i` < 512 by construction of table_indices.
            let e = unsafe { *(*table_mut(table)).get_unchecked(i & 511) };
            if e & PteFlags::PRESENT.bits() == 0 || e & PteFlags::HUGE.bits() != 0 {
                return 0;
            }
            table = pte_addr(e);
        }
        // SAFETY: as above, for the last level.
        unsafe { *(*table_mut(table)).get_unchecked(idx[3] & 511) }
    }

    /// The leaf entry for `va`, if a 4 KiB page is present there.
    #[inline]
    pub fn lookup(&self, va: u64) -> Option<u64> {
        let pte = self.leaf_entry(va);
        (pte & PteFlags::PRESENT.bits() != 0).then_some(pte)
    }

    /// Loads this table into CR3.
    pub fn activate(&self) {
        let root = self.root.addr();
        // SAFETY: the root maps the kernel half identically to every other
        // table, so the code running now stays mapped.
        unsafe {
            let current: u64;
            core::arch::asm!("mov {}, cr3", out(reg) current, options(nomem, nostack));
            if current & !0xfff != root {
                core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack));
            }
        }
    }

    /// Loads this table into CR3 without looking at what is there first: for
    /// a switch to another process, whose table is all but never the one
    /// loaded (and reloading it only flushes the TLB).
    #[inline(always)]
    pub fn load(&self) {
        let root = self.root.addr();
        // SAFETY: as in `activate`.
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack)) };
    }

    /// Whether this table is the one in CR3.
    pub fn is_active(&self) -> bool {
        let current: u64;
        // SAFETY: reads CR3.
        unsafe { core::arch::asm!("mov {}, cr3", out(reg) current, options(nomem, nostack)) };
        current & !0xfff == self.root.addr()
    }

    /// Frees the lower half: calls `leaf` with every non-zero user leaf
    /// entry (to release what it maps), then frees the tables and the root.
    pub fn destroy(self, mut leaf: impl FnMut(u64)) {
        fn walk(table_addr: u64, level: usize, leaf: &mut dyn FnMut(u64)) {
            for i in 0..512usize {
                // SAFETY: a page-table frame of this address space.
                let entry = unsafe { (*table_mut(table_addr))[i] };
                if entry == 0 {
                    continue;
                }
                if level == 0 {
                    leaf(entry);
                } else {
                    walk(pte_addr(entry), level - 1, leaf);
                    let _ = crate::mm::frames::release(Frame::containing(pte_addr(entry)));
                }
            }
        }
        // SAFETY: the root is ours; only the lower half is walked.
        let root = unsafe { *table_mut(self.root.addr()) };
        for &entry in root.iter().take(KERNEL_HALF_FIRST_SLOT) {
            if entry & PteFlags::PRESENT.bits() != 0 {
                walk(pte_addr(entry), 2, &mut leaf);
                let _ = crate::mm::frames::release(Frame::containing(pte_addr(entry)));
            }
        }
        let _ = crate::mm::frames::release(self.root);
    }

    /// Copies the lower half into `child` for fork: `f` turns each non-zero
    /// parent leaf into (new parent leaf, child leaf or 0). The child's
    /// tables mirror the parent's. On error the parent keeps the leaves
    /// already converted (they stay valid) and the child is partial: the
    /// caller destroys it.
    pub fn fork_into(
        &mut self,
        child: &mut PageTable,
        mut f: impl FnMut(u64) -> Result<(u64, u64), abi::Error>,
    ) -> Result<(), abi::Error> {
        fn walk(
            parent: u64,
            child: u64,
            level: usize,
            f: &mut dyn FnMut(u64) -> Result<(u64, u64), abi::Error>,
        ) -> Result<(), abi::Error> {
            // At the root only the user half: the kernel half is shared.
            let slots = if level == 3 {
                KERNEL_HALF_FIRST_SLOT
            } else {
                512
            };
            for i in 0..slots {
                // SAFETY: `parent` and `child` are page-table frames at the
                // same level of the two address spaces; only this function
                // edits them now.
                let (p_entry, c_slot) =
                    unsafe { (&mut (*table_mut(parent))[i], &mut (*table_mut(child))[i]) };
                if *p_entry == 0 {
                    continue;
                }
                if level == 0 {
                    let (new_parent, child_leaf) = f(*p_entry)?;
                    *p_entry = new_parent;
                    *c_slot = child_leaf;
                    continue;
                }
                if *c_slot == 0 {
                    let frame = crate::mm::frames::alloc_zeroed().ok_or(abi::Error::OutOfMemory)?;
                    *c_slot = make_pte(frame.addr(), pte_flags(*p_entry));
                }
                walk(pte_addr(*p_entry), pte_addr(*c_slot), level - 1, f)?;
            }
            Ok(())
        }
        let (parent_root, child_root) = (self.root.addr(), child.root.addr());
        let result = walk(parent_root, child_root, 3, &mut |pte| f(pte));
        // Parent leaves lost their write permission: flush them all at once.
        if self.is_active() {
            x86_64::instructions::tlb::flush_all();
        }
        result
    }
}

/// The kernel-core view of a user page table (see `kernel_core::vm`).
impl kernel_core::vm::PageTableOps for PageTable {
    fn entry(&mut self, va: u64) -> u64 {
        self.leaf_entry(va)
    }

    fn prepare(&mut self, va: u64) -> Result<(), abi::Error> {
        match self.leaf(va, true, PteFlags::WRITABLE | PteFlags::USER) {
            Ok(Some(_)) => Ok(()),
            Ok(None) | Err(MapError::OutOfMemory) => Err(abi::Error::OutOfMemory),
            Err(_) => Err(abi::Error::BadAddress),
        }
    }

    fn set(&mut self, va: u64, pte: u64) {
        if let Ok(Some(slot)) = self.leaf(va, false, PteFlags::empty()) {
            // SAFETY: `slot` points into a live page-table frame of ours.
            unsafe { *slot = pte };
        }
    }

    fn next_entry(&mut self, va: u64, end: u64) -> Option<u64> {
        // Page sizes covered by one entry at each level, root first.
        const SPAN: [u64; 4] = [1 << 39, 1 << 30, 1 << 21, 1 << 12];
        let mut at = va;
        'walk: while at < end {
            let idx = table_indices(at);
            let mut table = self.root.addr();
            for level in 0..3 {
                // SAFETY: as in `leaf_entry`: a page-table frame of this
                // address space reached through present, non-large entries.
                let e = unsafe { *(*table_mut(table)).get_unchecked(idx[level] & 511) };
                if e & PteFlags::PRESENT.bits() == 0 || e & PteFlags::HUGE.bits() != 0 {
                    // No table below: skip everything this entry covers.
                    at = (at | (SPAN[level] - 1)).checked_add(1)?;
                    continue 'walk;
                }
                table = pte_addr(e);
            }
            // SAFETY: as above, for the last level.
            if unsafe { *(*table_mut(table)).get_unchecked(idx[3] & 511) } != 0 {
                return Some(at);
            }
            at += SPAN[3];
        }
        None
    }

    fn flush(&mut self, va: u64) {
        // An inactive table has no cached translations (no PCIDs: every
        // CR3 load flushes the user half).
        if self.is_active() {
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va));
        }
    }
}

/// The kernel's page table, the template of every address space.
pub static KERNEL_TABLE: Mutex<Option<PageTable>> = Mutex::new(None);

/// Large-page size used for the direct map.
const LARGE: u64 = 2 << 20;

/// Builds the kernel's page tables: the direct map of RAM below `ram_top`
/// (2 MiB pages, no execute), and the kernel image with per-section
/// protections and an unmapped guard page under the kernel stack. Then
/// switches to them: the boot tables' identity map is gone afterwards.
pub fn init_kernel(ram_top: u64, nx: bool) -> Result<(), MapError> {
    let nx_flag = if nx {
        PteFlags::NO_EXECUTE
    } else {
        PteFlags::empty()
    };
    let mut pt = PageTable::new_empty()?;
    // Pre-create every kernel-half PML4 entry that will ever exist, so that
    // user tables (which copy them) see later kernel mappings.
    for slot in [KERNEL_HALF_FIRST_SLOT, 510, 511] {
        let frame = crate::mm::frames::alloc_zeroed().ok_or(MapError::OutOfMemory)?;
        // SAFETY: the root is a fresh frame of ours.
        unsafe {
            (*table_mut(pt.root.addr()))[slot] =
                make_pte(frame.addr(), PteFlags::PRESENT | PteFlags::WRITABLE);
        }
    }
    let direct = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::GLOBAL | nx_flag;
    let mut phys = 0;
    while phys < ram_top {
        let va = phys::PHYS_OFFSET + phys;
        let slot = pt
            .slot(va, 1, true, PteFlags::WRITABLE)?
            .ok_or(MapError::OutOfMemory)?;
        // SAFETY: `slot` is a PD entry in a table just created, all ours.
        unsafe { *slot = make_pte(phys, direct | PteFlags::HUGE) };
        phys += LARGE;
    }
    let s = super::boot::kernel_sections();
    let image = |pt: &mut PageTable, range: (u64, u64), flags: PteFlags| -> Result<(), MapError> {
        let mut va = range.0;
        while va < range.1 {
            if va != s.stack_guard {
                pt.map(va, super::boot::image_phys(va), flags | PteFlags::GLOBAL)?;
            }
            va += 4096;
        }
        Ok(())
    };
    image(&mut pt, s.text, PteFlags::empty())?;
    image(&mut pt, s.rodata, nx_flag)?;
    image(&mut pt, s.data, PteFlags::WRITABLE | nx_flag)?;
    pt.activate();
    *KERNEL_TABLE.lock() = Some(pt);
    Ok(())
}

/// Maps `len` bytes of device memory at `phys` into the direct map,
/// uncached, and returns the kernel pointer.
pub fn map_mmio(phys: u64, len: u64) -> Result<*mut u8, MapError> {
    let mut guard = KERNEL_TABLE.lock();
    let pt = guard.as_mut().ok_or(MapError::OutOfMemory)?;
    let start = phys & !0xfff;
    let end = (phys + len + 0xfff) & !0xfff;
    let mut p = start;
    while p < end {
        let flags =
            PteFlags::WRITABLE | PteFlags::NO_CACHE | PteFlags::WRITE_THROUGH | PteFlags::GLOBAL;
        match pt.map(phys::PHYS_OFFSET + p, p, flags) {
            Ok(()) | Err(MapError::AlreadyMapped) => {}
            Err(e) => return Err(e),
        }
        p += 4096;
    }
    Ok(phys::to_virt(phys))
}

/// Maps one frame at a kernel virtual address (the vmalloc area).
pub fn map_kernel_page(va: u64, frame: Frame, nx: bool) -> Result<(), MapError> {
    let mut guard = KERNEL_TABLE.lock();
    let pt = guard.as_mut().ok_or(MapError::OutOfMemory)?;
    let nx_flag = if nx {
        PteFlags::NO_EXECUTE
    } else {
        PteFlags::empty()
    };
    pt.map(
        va,
        frame.addr(),
        PteFlags::WRITABLE | PteFlags::GLOBAL | nx_flag,
    )
}

/// Unmaps a kernel page mapped by [`map_kernel_page`]; returns its frame.
pub fn unmap_kernel_page(va: u64) -> Option<Frame> {
    let mut guard = KERNEL_TABLE.lock();
    let pt = guard.as_mut()?;
    let slot = pt.leaf(va, false, PteFlags::empty()).ok()??;
    // SAFETY: `slot` points into the kernel's page tables.
    let pte = unsafe { core::mem::replace(&mut *slot, 0) };
    if pte & PteFlags::PRESENT.bits() == 0 {
        return None;
    }
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va));
    Some(Frame::containing(pte_addr(pte)))
}

/// Runs `f` with the kernel page table (e.g. to make a user table).
pub fn with_kernel_table<R>(f: impl FnOnce(&PageTable) -> R) -> Option<R> {
    KERNEL_TABLE.lock().as_ref().map(f)
}
