//! The global frame table: every frame of RAM the kernel manages, with an
//! exact reference count (see `kernel_core::frame`), over all the RAM the
//! memory map reports, above 4 GiB too.
//!
//! Rules: frames below 1 MiB, the kernel image, the boot modules and the
//! table's own storage are never handed out; an exhausted table is an
//! `OutOfMemory` error for whoever asked, never a panic.
//!
//! The table is planned by `kernel_core::frame::plan_segments` over the
//! usable RAM (minus anything another memory-map entry calls otherwise),
//! with a cut at 4 GiB so that `alloc_below(DMA32_LIMIT)` sees all low
//! memory. Its records (16 bytes a frame, about 0.4 % of RAM) must lie in
//! the boot tables' 4 GiB, because they are written before the kernel's
//! own direct map exists: they take one free range below 4 GiB, so 2 GiB
//! of low RAM can describe some 500 GiB. Ordinary allocations take the
//! highest segment first, keeping low memory for what needs it.

use crate::arch::ordered::Ordered;
use crate::arch::phys;
use arrayvec::ArrayVec;
use core::mem::MaybeUninit;
use kernel_core::bootinfo::{BootInfo, MemKind};
use kernel_core::frame::{
    Frame, FrameError, FrameInfo, FrameTable, MAX_RANGES, plan_segments, subtract_ranges,
};
use kernel_core::lockorder::Rank;

static FRAMES: Ordered<Option<FrameTable<'static>>> = Ordered::new(Rank::Frames, None);

/// Frames below this lie where a device limited to 32-bit DMA addresses
/// can reach them (the table is cut here).
pub const DMA32_LIMIT: u64 = 1 << 32;

/// Byte ranges, sorted and merged.
pub type Ranges = ArrayVec<(u64, u64), MAX_RANGES>;

/// What [`init`] found and made.
#[derive(Clone, Debug)]
pub struct FrameStats {
    /// RAM the memory map reports (usable, inside the direct map's window).
    pub ram_bytes: u64,
    /// What the direct map must cover: the RAM, the boot modules and the
    /// kernel image, page-aligned.
    pub mapped: Ranges,
    /// The table's segments and its records' place and size.
    pub segments: usize,
    pub records_at: u64,
    pub records_bytes: u64,
    /// Memory-map ranges that did not fit the fixed arrays, and RAM frames
    /// no segment covers (both 0 on any ordinary machine).
    pub dropped_ranges: usize,
    pub dropped_frames: u64,
}

/// Builds the frame table from the memory map, keeping `reserved` ranges
/// (kernel image, modules) out of it.
pub fn init(boot: &BootInfo, reserved: &[(u64, u64)]) -> Result<FrameStats, &'static str> {
    let mut usable: ArrayVec<(u64, u64), 64> = ArrayVec::new();
    let mut not_ram: ArrayVec<(u64, u64), 64> = ArrayVec::new();
    for r in &boot.memory {
        if r.kind == MemKind::Usable {
            // The direct map cannot reach beyond its window.
            let end = r.end.min(phys::DIRECT_MAP_LIMIT);
            if r.start < end {
                let _ = usable.try_push((r.start, end));
            }
        } else {
            // BIOS maps may overlap: a range any entry calls reserved stays
            // reserved, whatever another entry says.
            let _ = not_ram.try_push((r.start, r.end));
        }
    }
    let mut dropped = 0;
    let mut ram = Ranges::new();
    dropped += subtract_ranges(&usable, &not_ram, &mut ram);
    let ram_bytes = ram.iter().map(|r| r.1 - r.0).sum();

    // The table describes RAM above the first MiB (which is never handed
    // out), cut at 4 GiB.
    let first_mib = [(0, 0x10_0000)];
    let mut table_ram = Ranges::new();
    dropped += subtract_ranges(&ram, &first_mib, &mut table_ram);
    let plan = plan_segments(&table_ram, &[DMA32_LIMIT]);
    if plan.segments.is_empty() {
        return Err("no usable memory");
    }

    let mut excluded: ArrayVec<(u64, u64), 48> = ArrayVec::new();
    excluded.push(first_mib[0]);
    for r in reserved {
        excluded
            .try_push(*r)
            .map_err(|_| "too many reserved ranges")?;
    }
    let mut free = Ranges::new();
    dropped += subtract_ranges(&ram, &excluded, &mut free);

    // The records come out of the first free range big enough inside the
    // boot tables' reach.
    let records = plan.records() as usize;
    let bytes = (records as u64 * core::mem::size_of::<FrameInfo>() as u64 + 4095) & !4095;
    let storage_at = free
        .iter()
        .find(|r| r.1.min(phys::BOOT_DIRECT_MAP_END).saturating_sub(r.0) >= bytes)
        .map(|r| r.0)
        .ok_or("no room below 4 GiB for the frame table")?;
    // SAFETY: [storage_at, storage_at + bytes) is usable RAM inside the boot
    // direct map that nothing else uses (it is kept off the free lists
    // below, before any frame is handed out); as `MaybeUninit` its
    // contents need not be valid yet (the table writes each record).
    let infos: &'static mut [MaybeUninit<FrameInfo>] =
        unsafe { core::slice::from_raw_parts_mut(phys::to_virt(storage_at).cast(), records) };
    let mut table = FrameTable::with_segments_uninit(infos, &plan.segments)
        .map_err(|_| "bad frame-table plan")?;
    for &(start, end) in &free {
        let start = if start == storage_at {
            start + bytes
        } else {
            start
        };
        if start < end {
            table.free_range(Frame::containing(start), Frame::containing(end));
        }
    }
    *FRAMES.lock() = Some(table);

    // The direct map: the RAM, plus the modules and the kernel image
    // (which lie in it on any sane machine; rounded outward, since a
    // module's last page is read whole).
    let mut wanted: ArrayVec<(u64, u64), { MAX_RANGES + 48 }> = ArrayVec::new();
    wanted.extend(ram.iter().copied());
    for &(s, e) in reserved {
        let e = e.saturating_add(4095) & !4095;
        let _ = wanted.try_push((s & !4095, e.min(phys::DIRECT_MAP_LIMIT)));
    }
    let mut mapped = Ranges::new();
    dropped += subtract_ranges(&wanted, &[], &mut mapped);
    Ok(FrameStats {
        ram_bytes,
        mapped,
        segments: plan.segments.len(),
        records_at: storage_at,
        records_bytes: bytes,
        dropped_ranges: dropped,
        dropped_frames: plan.dropped_frames,
    })
}

fn with<R>(f: impl FnOnce(&mut FrameTable<'static>) -> R) -> R {
    let mut guard = FRAMES.lock();
    let table = guard
        .as_mut()
        .expect("frame table used before frames::init");
    f(table)
}

/// A fresh frame with reference count 1, contents undefined.
pub fn alloc() -> Option<Frame> {
    with(|t| t.alloc())
}

/// Zeroes a frame just allocated.
fn zeroed(frame: Frame) -> Frame {
    // SAFETY: the frame was just allocated to us and is mapped by the
    // direct map.
    unsafe { core::ptr::write_bytes(phys::to_virt(frame.addr()), 0, 4096) };
    frame
}

/// A fresh zero-filled frame with reference count 1.
pub fn alloc_zeroed() -> Option<Frame> {
    alloc().map(zeroed)
}

/// A fresh zero-filled frame wholly below physical address `limit`.
pub fn alloc_zeroed_below(limit: u64) -> Option<Frame> {
    with(|t| t.alloc_below(limit)).map(zeroed)
}

/// A fresh zero-filled frame the boot page tables map: the source of the
/// kernel's page tables while `paging::init_kernel` builds them.
pub fn alloc_zeroed_boot() -> Option<Frame> {
    alloc_zeroed_below(phys::BOOT_DIRECT_MAP_END)
}

/// Drops one reference; the frame is free again when none are left.
pub fn release(frame: Frame) -> Result<bool, FrameError> {
    with(|t| t.release(frame))
}

/// Adds one reference to an allocated frame.
pub fn add_ref(frame: Frame) -> Result<u32, FrameError> {
    with(|t| t.add_ref(frame))
}

/// The reference count of an allocated frame (0 otherwise).
pub fn refcount(frame: Frame) -> u32 {
    with(|t| t.refcount(frame).unwrap_or(0))
}

/// How many frames the table manages (free + allocated).
pub fn managed_count() -> usize {
    with(|t| t.managed_count())
}

/// How many frames are free right now.
pub fn free_count() -> usize {
    with(|t| t.free_count())
}
