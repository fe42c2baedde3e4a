//! 4-level page tables, edited through the direct map.
//!
//! Rules: the upper half (PML4 entries 256..512) belongs to the kernel and
//! is shared by every address space: its PML4 entries are created once, at
//! boot, and never change, so a kernel mapping made later under them is
//! visible everywhere. The lower half belongs to the process and is a
//! `kernel_core::pagetable::PageTree`: the walks, table counts and
//! teardown live there (host-tested); this file gives it memory (the
//! direct map), CR3 and the TLB. User table frames come from the
//! `TableFrames` the caller passes (the process's charged reserve), the
//! kernel's own from the frame table; a failed allocation is an error,
//! not a panic. User leaves never use large pages.
//!
//! The direct map covers RAM only, in the largest pages that fit
//! (`kernel_core::directmap`: 1 GiB pages when the CPU has them, 2 MiB,
//! 4 KiB at the edges); the holes between are left for `map_mmio`'s
//! uncached 4 KiB pages, so a device's page never falls under a large
//! page. The kernel half's PML4 entries are all made by `init_kernel`
//! (the direct map's window up to the CPU's physical address width, the
//! vmalloc area, the kernel image); later mappings only fill tables below
//! them, and an address outside them is refused (`OutOfWindow`) rather
//! than given an entry the user tables, copied earlier, would lack.

use super::ordered::Ordered;
use super::phys;
use kernel_core::directmap::{self, HUGE_PAGE, LARGE_PAGE};
use kernel_core::frame::Frame;
use kernel_core::lockorder::Rank;
use kernel_core::pagetable::{PageTree, TableFrames, TableMemory};
use kernel_core::paging::{
    PteFlags, is_page_aligned, make_pte, pte_addr, pte_flags, table_indices,
};

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
    /// The address lies under no PML4 entry of the kernel half (outside
    /// the direct map's window).
    OutOfWindow,
}

fn table_mut(frame_addr: u64) -> *mut Table {
    phys::to_virt(frame_addr) as *mut Table
}

/// Table frames as the direct map shows them.
pub struct DirectMap;

impl TableMemory for DirectMap {
    #[inline(always)]
    fn read(&self, table: Frame, index: usize) -> u64 {
        // SAFETY: `table` is a page-table frame of a live address space
        // (PageTree only names its own tables), mapped by the direct map;
        // the index is masked into the table.
        unsafe { *(*table_mut(table.addr())).get_unchecked(index & 511) }
    }

    #[inline(always)]
    fn write(&mut self, table: Frame, index: usize, value: u64) {
        // SAFETY: as in `read`; only the kernel edits page tables, with
        // the scheduler lock held, so nothing races this store.
        unsafe { *(*table_mut(table.addr())).get_unchecked_mut(index & 511) = value }
    }

    #[inline(always)]
    fn entries(&self, table: Frame) -> &Table {
        // SAFETY: as in `read`; the borrow ends before the next `write`
        // (which needs `&mut self`).
        unsafe { &*table_mut(table.addr()) }
    }
}

/// One user address space: its lower half, and the kernel's upper half
/// shared with every other.
pub struct PageTable {
    tree: PageTree,
}

impl PageTable {
    /// A page table with an empty lower half and the kernel's upper half;
    /// its root frame comes from `frames`.
    pub fn new_user(
        kernel: &KernelTable,
        frames: &mut impl TableFrames,
    ) -> Result<PageTable, MapError> {
        let root = frames.alloc_table().ok_or(MapError::OutOfMemory)?;
        // SAFETY: both roots are page-table frames reachable via the direct
        // map; the new one is ours alone.
        unsafe {
            let src = &*table_mut(kernel.root.addr());
            let dst = &mut *table_mut(root.addr());
            dst[KERNEL_HALF_FIRST_SLOT..].copy_from_slice(&src[KERNEL_HALF_FIRST_SLOT..]);
        }
        Ok(PageTable {
            tree: PageTree::new(root),
        })
    }

    /// Table frames this address space holds (root and spares included).
    pub fn table_frames(&self) -> u64 {
        self.tree.table_frames()
    }

    /// Table frames it holds that map nothing (spares, idle tables and
    /// the tables above idle ones only).
    pub fn spare_tables(&self) -> u64 {
        self.tree.empty_tables(&DirectMap)
    }

    /// The raw leaf entry for user page `va` (0 when none, and for every
    /// kernel address): a read-only walk, the hot path of every user copy.
    #[inline]
    pub fn leaf_entry(&self, va: u64) -> u64 {
        self.tree.entry(&DirectMap, va)
    }

    /// The leaf entry for `va`, if a 4 KiB page is present there.
    #[inline]
    pub fn lookup(&self, va: u64) -> Option<u64> {
        let pte = self.leaf_entry(va);
        (pte & PteFlags::PRESENT.bits() != 0).then_some(pte)
    }

    fn root_addr(&self) -> u64 {
        self.tree.root().addr()
    }

    /// Loads this table into CR3.
    pub fn activate(&self) {
        let root = self.root_addr();
        // SAFETY: the root maps the kernel half identically to every other
        // table, so the code running now stays mapped.
        unsafe {
            let current: u64;
            core::arch::asm!("mov {}, cr3", out(reg) current, options(nomem, nostack));
            if current & !0xfff != root {
                core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack));
            }
        }
        super::tlb::note_loaded(root);
    }

    /// Loads this table into CR3 without looking at what is there first: for
    /// a switch to another process, whose table is all but never the one
    /// loaded (and reloading it only flushes the TLB).
    #[inline(always)]
    pub fn load(&self) {
        let root = self.root_addr();
        // SAFETY: as in `activate`.
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack)) };
        super::tlb::note_loaded(root);
    }

    /// Whether this table is the one in CR3.
    pub fn is_active(&self) -> bool {
        let current: u64;
        // SAFETY: reads CR3.
        unsafe { core::arch::asm!("mov {}, cr3", out(reg) current, options(nomem, nostack)) };
        current & !0xfff == self.root_addr()
    }

    /// Frees the lower half: calls `leaf` with every non-zero user leaf
    /// entry (to release what it maps), then gives every table (and the
    /// root) back to `frames`. The table must not be the one in CR3.
    pub fn destroy(self, frames: &mut impl TableFrames, mut leaf: impl FnMut(u64)) {
        // Its process was evicted from any CPU before its teardown; a
        // CPU still on it would walk freed tables, so make sure.
        if let Some(cpu) = super::tlb::live_elsewhere(self.root_addr()) {
            super::tlb::request(cpu, super::tlb::LEAVE);
        }
        self.tree.destroy(&mut DirectMap, frames, &mut leaf);
    }

    /// Copies the lower half into `child` for fork: `f` turns each non-zero
    /// parent leaf into (new parent leaf, child leaf or 0). The child's
    /// tables come from `child_frames`. On error the parent keeps the
    /// leaves already converted (they stay valid) and the child is
    /// partial: the caller destroys it.
    pub fn fork_into(
        &mut self,
        child: &mut PageTable,
        child_frames: &mut impl TableFrames,
        mut f: impl FnMut(u64) -> Result<(u64, u64), abi::Error>,
    ) -> Result<(), abi::Error> {
        let result = self
            .tree
            .fork_into(&mut DirectMap, &mut child.tree, child_frames, &mut f);
        // Parent leaves lost their write permission: flush them all at once.
        if self.is_active() {
            x86_64::instructions::tlb::flush_all();
        }
        result
    }
}

/// A user page table as the kernel's objects use it.
impl kernel_core::machine::AddressSpace for PageTable {
    fn lookup(&self, va: u64) -> Option<u64> {
        PageTable::lookup(self, va)
    }

    fn fork_into(
        &mut self,
        child: &mut PageTable,
        child_frames: &mut impl TableFrames,
        f: &mut dyn FnMut(u64) -> Result<(u64, u64), abi::Error>,
    ) -> Result<(), abi::Error> {
        PageTable::fork_into(self, child, child_frames, f)
    }

    fn destroy(self, frames: &mut impl TableFrames, leaf: impl FnMut(u64)) {
        PageTable::destroy(self, frames, leaf)
    }

    fn table_frames(&self) -> u64 {
        PageTable::table_frames(self)
    }

    fn spare_tables(&self) -> u64 {
        PageTable::spare_tables(self)
    }

    fn is_active(&self) -> bool {
        PageTable::is_active(self)
    }

    fn activate(&self) {
        PageTable::activate(self)
    }
}

/// The kernel-core view of a user page table (see `kernel_core::vm`).
impl kernel_core::vm::PageTableOps for PageTable {
    #[inline]
    fn entry(&mut self, va: u64) -> u64 {
        self.leaf_entry(va)
    }

    fn prepare(&mut self, frames: &mut impl TableFrames, va: u64) -> Result<(), abi::Error> {
        self.tree.prepare(&mut DirectMap, frames, va)
    }

    fn set(&mut self, frames: &mut impl TableFrames, va: u64, pte: u64) {
        self.tree.set(&mut DirectMap, frames, va, pte);
    }

    fn set_new(
        &mut self,
        frames: &mut impl TableFrames,
        va: u64,
        pte: u64,
    ) -> Result<(), abi::Error> {
        self.tree.set_new(&mut DirectMap, frames, va, pte)
    }

    fn settle_empty(&mut self, frames: &mut impl TableFrames, va: u64) {
        self.tree.settle_empty(&mut DirectMap, frames, va);
    }

    fn next_entry(&mut self, va: u64, end: u64) -> Option<u64> {
        self.tree.next_entry(&DirectMap, va, end)
    }

    fn flush(&mut self, va: u64) {
        // An inactive table has no cached translations (no PCIDs: every
        // CR3 load flushes the user half), and a space is live on one CPU
        // at most (its process's): here, or on another, which is asked to
        // drop its entries before this returns — before the frame the
        // entry named can be reused.
        if self.is_active() {
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va));
        } else if let Some(cpu) = super::tlb::live_elsewhere(self.root_addr()) {
            super::tlb::request(cpu, super::tlb::FLUSH_USER);
        }
    }
}

/// The kernel's own page table: the direct map, the kernel image, MMIO and
/// the vmalloc area, in the upper half; the template of every address
/// space. Its tables come from the frame table and are never given back
/// (the vmalloc area reuses its addresses, so they are bounded by the most
/// the heap ever held at once); `table_frames` counts them.
pub struct KernelTable {
    root: Frame,
}

/// Page-table frames the kernel's own table took (at boot, and later for
/// the vmalloc area and device memory): counted with the heap.
static KERNEL_TABLE_FRAMES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Page-table frames the kernel's table has taken since it was built.
pub fn kernel_table_frames() -> u64 {
    KERNEL_TABLE_FRAMES.load(core::sync::atomic::Ordering::Relaxed)
}

impl KernelTable {
    fn new_empty() -> Result<KernelTable, MapError> {
        let root = table_frame()?;
        Ok(KernelTable { root })
    }

    /// The entry for `va` at `level` (0: 4 KiB leaf, 1: 2 MiB entry, 2:
    /// 1 GiB entry), creating missing tables below the PML4 above it when
    /// `create`.
    fn slot(&mut self, va: u64, level: usize, create: bool) -> Result<Option<*mut u64>, MapError> {
        let idx = table_indices(va);
        let mut table = table_mut(self.root.addr());
        for (depth, &i) in idx[..3 - level].iter().enumerate() {
            // SAFETY: `table` is a page-table frame of the kernel's table
            // (the root or one found in a present, non-large parent entry),
            // mapped by the direct map, edited only with its lock held.
            let entry = unsafe { &mut (*table)[i] };
            let flags = pte_flags(*entry);
            if !flags.contains(PteFlags::PRESENT) {
                // PML4 entries are made once, by `init_kernel`: a new one
                // would be missing from every user table copied before.
                if depth == 0 {
                    return Err(MapError::OutOfWindow);
                }
                if !create {
                    return Ok(None);
                }
                let frame = table_frame()?;
                *entry = make_pte(frame.addr(), PteFlags::WRITABLE | PteFlags::PRESENT);
                KERNEL_TABLE_FRAMES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            } else if flags.contains(PteFlags::HUGE) {
                return Err(MapError::Conflict);
            }
            table = table_mut(pte_addr(*entry));
        }
        // SAFETY: as above, for the last level walked.
        Ok(Some(unsafe { &raw mut (*table)[idx[3 - level]] }))
    }

    /// Maps the 4 KiB kernel page at `va` to `phys` with `flags`.
    fn map(&mut self, va: u64, phys: u64, flags: PteFlags) -> Result<(), MapError> {
        debug_assert!(is_page_aligned(va) && is_page_aligned(phys));
        let slot = self.slot(va, 0, true)?.ok_or(MapError::OutOfMemory)?;
        // SAFETY: `slot` points into a live page-table frame of ours.
        unsafe {
            if *slot & PteFlags::PRESENT.bits() != 0 {
                return Err(MapError::AlreadyMapped);
            }
            *slot = make_pte(phys, flags | PteFlags::PRESENT);
        }
        Ok(())
    }

    fn activate(&self) {
        // SAFETY: the kernel table maps the running kernel.
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) self.root.addr(), options(nostack)) };
    }
}

/// Where the kernel's own page tables get their frames: a fresh zeroed
/// frame from the frame table, which lives above `arch` and says so once
/// at boot (`set_table_frames`), before the first kernel table is made.
static TABLE_FRAMES: Ordered<Option<FrameSource>> = Ordered::new(Rank::TableFrames, None);

/// A source of zeroed frames.
pub type FrameSource = fn() -> Option<Frame>;

/// Names the source of the kernel's page-table frames.
pub fn set_table_frames(source: FrameSource) {
    *TABLE_FRAMES.lock() = Some(source);
}

/// A zeroed frame for a kernel page table.
fn table_frame() -> Result<Frame, MapError> {
    let source = (*TABLE_FRAMES.lock()).ok_or(MapError::OutOfMemory)?;
    source().ok_or(MapError::OutOfMemory)
}

/// The kernel's page table, the template of every address space.
pub static KERNEL_TABLE: Ordered<Option<KernelTable>> = Ordered::new(Rank::KernelTable, None);

/// What `init_kernel` made of the direct map.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectMapShape {
    /// Pages of 1 GiB, 2 MiB and 4 KiB.
    pub huge: u64,
    pub large: u64,
    pub small: u64,
    /// The window's end: physical addresses below it can be mapped.
    pub window_end: u64,
}

/// Whether the CPU has 1 GiB pages (CPUID 0x8000_0001 EDX bit 26).
fn has_huge_pages() -> bool {
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    max_ext >= 0x8000_0001 && core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 26) != 0
}

/// The CPU's physical address width (CPUID 0x8000_0008 EAX[7:0]; 36 bits
/// when it does not say, as the architecture defines).
fn physical_address_bits() -> u32 {
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    if max_ext >= 0x8000_0008 {
        (core::arch::x86_64::__cpuid(0x8000_0008).eax & 0xff).clamp(32, 52)
    } else {
        36
    }
}

/// Bytes one PML4 entry maps.
const PML4_SPAN: u64 = 1 << 39;

/// Builds the kernel's page tables: the direct map of the RAM `ram`
/// (sorted, disjoint, page-aligned byte ranges, touching ones merged; no
/// execute, write-back) in the largest pages that fit, PML4 entries for
/// the whole window device memory may be mapped in (up to the CPU's
/// physical address width), and the kernel image with per-section
/// protections and an unmapped guard page under the kernel stack. Then
/// switches to them: the boot tables' identity map is gone afterwards.
/// RAM beyond the window ([`phys::DIRECT_MAP_LIMIT`]) is not mapped (the
/// frame table leaves it out too).
pub fn init_kernel(ram: &[(u64, u64)], nx: bool) -> Result<DirectMapShape, MapError> {
    let nx_flag = if nx {
        PteFlags::NO_EXECUTE
    } else {
        PteFlags::empty()
    };
    let mut pt = KernelTable::new_empty()?;
    let ram_end = ram.iter().map(|r| r.1).max().unwrap_or(0);
    let window_end = ram_end
        .max(1 << physical_address_bits())
        .min(phys::DIRECT_MAP_LIMIT);
    let direct_slots = window_end.div_ceil(PML4_SPAN) as usize;
    // Pre-create every kernel-half PML4 entry that will ever exist, so that
    // user tables (which copy them) see later kernel mappings.
    let slots = (KERNEL_HALF_FIRST_SLOT..KERNEL_HALF_FIRST_SLOT + direct_slots).chain([510, 511]);
    for slot in slots {
        let frame = table_frame()?;
        // SAFETY: the root is a fresh frame of ours.
        unsafe {
            (*table_mut(pt.root.addr()))[slot] =
                make_pte(frame.addr(), PteFlags::PRESENT | PteFlags::WRITABLE);
        }
    }
    let direct = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::GLOBAL | nx_flag;
    let mut shape = DirectMapShape {
        window_end,
        ..DirectMapShape::default()
    };
    for c in directmap::chunks(ram, has_huge_pages()) {
        if c.phys + c.size > window_end {
            break;
        }
        let va = phys::PHYS_OFFSET + c.phys;
        let level = match c.size {
            HUGE_PAGE => 2,
            LARGE_PAGE => 1,
            _ => 0,
        };
        if level == 0 {
            pt.map(va, c.phys, direct)?;
            shape.small += 1;
            continue;
        }
        let slot = pt.slot(va, level, true)?.ok_or(MapError::OutOfMemory)?;
        // SAFETY: `slot` is an entry of a table just created, all ours,
        // and the chunk is aligned to its page size.
        unsafe { *slot = make_pte(c.phys, direct | PteFlags::HUGE) };
        if level == 2 {
            shape.huge += 1;
        } else {
            shape.large += 1;
        }
    }
    let s = super::boot::kernel_sections();
    let image =
        |pt: &mut KernelTable, range: (u64, u64), flags: PteFlags| -> Result<(), MapError> {
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
    KERNEL_ROOT.store(pt.root.addr(), core::sync::atomic::Ordering::Release);
    phys::boot_map_gone();
    *KERNEL_TABLE.lock() = Some(pt);
    Ok(shape)
}

/// Maps `len` bytes of device memory at `phys` into the direct map,
/// uncached, and returns the kernel pointer.
pub fn map_mmio(phys: u64, len: u64) -> Result<*mut u8, MapError> {
    let mut guard = KERNEL_TABLE.lock();
    let pt = guard.as_mut().ok_or(MapError::OutOfMemory)?;
    let start = phys & !0xfff;
    let end = phys
        .checked_add(len)
        .and_then(|e| e.checked_add(0xfff))
        .map(|e| e & !0xfff)
        .filter(|&e| e <= phys::DIRECT_MAP_LIMIT)
        .ok_or(MapError::OutOfWindow)?;
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
    let slot = pt.slot(va, 0, false).ok()??;
    // SAFETY: `slot` points into the kernel's page tables.
    let pte = unsafe { core::mem::replace(&mut *slot, 0) };
    if pte & PteFlags::PRESENT.bits() == 0 {
        return None;
    }
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va));
    Some(Frame::containing(pte_addr(pte)))
}

/// Runs `f` with the kernel page table (e.g. to make a user table).
pub fn with_kernel_table<R>(f: impl FnOnce(&KernelTable) -> R) -> Option<R> {
    KERNEL_TABLE.lock().as_ref().map(f)
}

/// The kernel table's root, once built: read without the table's lock,
/// because CPUs leave dying spaces from places that may not take it (a
/// TLB mailbox answered while spinning for another lock).
static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The physical address of the kernel table's root (0 before it exists).
pub fn kernel_root() -> u64 {
    KERNEL_ROOT.load(core::sync::atomic::Ordering::Acquire)
}

/// Switches to the kernel's table (for code that must leave a dying
/// address space).
pub fn activate_kernel_table() {
    let root = kernel_root();
    if root != 0 {
        // SAFETY: the kernel's own table maps the kernel half as every
        // table does, so the code running now stays mapped.
        unsafe {
            let current: u64;
            core::arch::asm!("mov {}, cr3", out(reg) current, options(nomem, nostack));
            if current & !0xfff != root {
                core::arch::asm!("mov cr3, {}", in(reg) root, options(nostack));
            }
        }
    }
    super::tlb::note_loaded(0);
}
