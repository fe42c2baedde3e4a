//! The global frame table: every frame of RAM the kernel manages, with an
//! exact reference count (see `kernel_core::frame`).
//!
//! Rules: frames below 1 MiB, the kernel image, the boot modules and the
//! table's own storage are never handed out; an exhausted table is an
//! `OutOfMemory` error for whoever asked, never a panic.

use crate::arch::phys;
use arrayvec::ArrayVec;
use kernel_core::bootinfo::{BootInfo, MemKind};
use kernel_core::frame::{Frame, FrameError, FrameInfo, FrameTable, subtract_ranges};
use spin::Mutex;

static FRAMES: Mutex<Option<FrameTable<'static>>> = Mutex::new(None);

/// The highest physical address the kernel manages (exclusive): RAM above
/// the boot direct map is left alone for now.
const MANAGED_END: u64 = phys::BOOT_DIRECT_MAP_END;

/// What [`init`] found.
#[derive(Clone, Copy, Debug)]
pub struct FrameStats {
    pub ram_bytes: u64,
    pub ram_top: u64,
    pub dropped_ranges: usize,
}

/// Builds the frame table from the memory map, keeping `reserved` ranges
/// (kernel image, modules) out of it.
pub fn init(boot: &BootInfo, reserved: &[(u64, u64)]) -> Result<FrameStats, &'static str> {
    let mut usable: ArrayVec<(u64, u64), 64> = ArrayVec::new();
    let mut not_ram: ArrayVec<(u64, u64), 128> = ArrayVec::new();
    let mut ram_bytes = 0u64;
    for r in &boot.memory {
        if r.kind == MemKind::Usable {
            let end = r.end.min(MANAGED_END);
            if r.start < end {
                usable.push((r.start, end));
                ram_bytes += end - r.start;
            }
        } else {
            // BIOS maps may overlap: a range any entry calls reserved stays
            // reserved, whatever another entry says.
            let _ = not_ram.try_push((r.start, r.end));
        }
    }
    let mut excluded: ArrayVec<(u64, u64), 128> = ArrayVec::new();
    excluded.push((0, 0x10_0000));
    for r in reserved.iter().chain(not_ram.iter()) {
        if excluded.try_push(*r).is_err() {
            return Err("too many reserved ranges");
        }
    }
    let mut free: ArrayVec<(u64, u64), 128> = ArrayVec::new();
    let dropped = subtract_ranges(&usable, &excluded, &mut free);
    let ram_top = free.iter().map(|r| r.1).max().ok_or("no usable memory")?;

    // The table's storage comes out of the first free range big enough.
    let frames = (ram_top / 4096) as usize;
    let bytes = (frames * core::mem::size_of::<FrameInfo>()) as u64;
    let bytes = (bytes + 4095) & !4095;
    let storage_at = free
        .iter()
        .find(|r| r.1 - r.0 >= bytes)
        .map(|r| r.0)
        .ok_or("no room for the frame table")?;
    // SAFETY: [storage_at, storage_at + bytes) is usable RAM inside the boot
    // direct map that nothing else uses (it is removed from the free ranges
    // below before any frame is handed out); FrameInfo is plain data and
    // FrameTable::new initialises every element.
    let infos: &'static mut [FrameInfo] = unsafe {
        let ptr = phys::to_virt(storage_at) as *mut FrameInfo;
        for i in 0..frames {
            ptr.add(i).write(FrameInfo::RESERVED);
        }
        core::slice::from_raw_parts_mut(ptr, frames)
    };
    let mut table = FrameTable::new(infos, 0);
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
    let stats = FrameStats {
        ram_bytes,
        ram_top,
        dropped_ranges: dropped,
    };
    *FRAMES.lock() = Some(table);
    Ok(stats)
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

/// A fresh zero-filled frame with reference count 1.
pub fn alloc_zeroed() -> Option<Frame> {
    let frame = alloc()?;
    // SAFETY: the frame was just allocated to us and is mapped by the
    // direct map.
    unsafe { core::ptr::write_bytes(phys::to_virt(frame.addr()), 0, 4096) };
    Some(frame)
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
