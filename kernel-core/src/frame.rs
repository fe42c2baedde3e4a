//! Physical frame accounting: which 4 KiB frames of RAM are reserved, free or
//! allocated, and how many mappings share each allocated frame.
//!
//! Rules: every reference count is exact. The original C MH leaked every
//! copy-on-write frame because sharing was never counted; here a frame goes
//! back on the free list exactly when its last reference is released, and a
//! release of a frame that is not allocated is an error (a double free)
//! rather than silent corruption. Allocation and release are O(1) through an
//! intrusive LIFO free list threaded through the per-frame records, so the
//! table needs no memory beyond the `FrameInfo` array the kernel hands it.

use arrayvec::ArrayVec;

use crate::paging::{PAGE_SIZE, page_align_down, page_align_up};

/// A physical page frame, named by its page frame number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct Frame(u64);

impl Frame {
    /// The frame with page frame number `pfn`.
    pub const fn from_pfn(pfn: u64) -> Frame {
        Frame(pfn)
    }

    /// The frame that contains physical address `phys`.
    pub const fn containing(phys: u64) -> Frame {
        Frame(phys / PAGE_SIZE)
    }

    /// The page frame number.
    pub const fn pfn(self) -> u64 {
        self.0
    }

    /// The physical address of the frame's first byte.
    pub const fn addr(self) -> u64 {
        // A pfn from `containing` always fits; a huge `from_pfn` wraps rather
        // than panicking, and such a frame is never inside a table.
        self.0.wrapping_mul(PAGE_SIZE)
    }
}

/// What a frame is currently used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameUse {
    /// Not RAM the allocator may hand out (firmware, kernel image, holes).
    Reserved,
    /// On the free list.
    Free,
    /// Handed out, with a reference count of at least one.
    Allocated,
}

/// Why a frame operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is not covered by the table.
    OutOfRange,
    /// The frame is free or reserved (releasing it would be a double free).
    NotAllocated,
    /// The reference count is already at its maximum.
    RefcountOverflow,
}

/// Marks the end of the free list.
const NIL: u32 = u32::MAX;

/// The per-frame record; the kernel keeps one per frame of RAM, so it is small.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FrameInfo {
    state: FrameUse,
    refcount: u32,
    /// Index of the next free frame while `state` is `Free`.
    next: u32,
    _spare: u32,
}

const _: () = assert!(core::mem::size_of::<FrameInfo>() <= 16);

impl FrameInfo {
    /// A reserved frame: the value the kernel fills the array with.
    pub const RESERVED: FrameInfo = FrameInfo {
        state: FrameUse::Reserved,
        refcount: 0,
        next: NIL,
        _spare: 0,
    };
}

/// The frame allocator over a contiguous span of page frame numbers.
pub struct FrameTable<'a> {
    infos: &'a mut [FrameInfo],
    first_pfn: u64,
    free_head: u32,
    free: usize,
    allocated: usize,
}

impl<'a> FrameTable<'a> {
    /// A table covering frames `first_pfn..first_pfn + infos.len()`, all
    /// reserved. Whatever `infos` held is overwritten. Entries beyond what a
    /// `u32` index can name, or beyond the last pfn, are left unused.
    pub fn new(infos: &'a mut [FrameInfo], first_pfn: u64) -> Self {
        let room = u64::MAX - first_pfn;
        let len = infos
            .len()
            .min(NIL as usize)
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        let (infos, _) = infos.split_at_mut(len);
        infos.fill(FrameInfo::RESERVED);
        FrameTable {
            infos,
            first_pfn,
            free_head: NIL,
            free: 0,
            allocated: 0,
        }
    }

    /// The table index of `f`, if the table covers it.
    fn index(&self, f: Frame) -> Option<usize> {
        let off = f.pfn().checked_sub(self.first_pfn)?;
        let idx = usize::try_from(off).ok()?;
        (idx < self.infos.len()).then_some(idx)
    }

    /// Makes the reserved frames of `[start, end)` free. Frames outside the
    /// table or not reserved are ignored, so overlapping calls are harmless.
    pub fn free_range(&mut self, start: Frame, end: Frame) {
        let table_end = self.first_pfn + self.infos.len() as u64;
        let lo = start.pfn().max(self.first_pfn);
        let hi = end.pfn().min(table_end);
        // Pushed from the top down so that allocation starts at low frames.
        let mut pfn = hi;
        while pfn > lo {
            pfn -= 1;
            let idx = (pfn - self.first_pfn) as usize;
            if let Some(info) = self.infos.get(idx)
                && info.state == FrameUse::Reserved
            {
                self.push_free(idx);
            }
        }
    }

    /// Puts frame `idx` on the free list. The caller has checked `idx`.
    fn push_free(&mut self, idx: usize) {
        let head = self.free_head;
        if let Some(info) = self.infos.get_mut(idx) {
            *info = FrameInfo {
                state: FrameUse::Free,
                refcount: 0,
                next: head,
                _spare: 0,
            };
            // `new` keeps every index below NIL, so this cannot truncate.
            self.free_head = idx as u32;
            self.free += 1;
        }
    }

    /// A free frame with a reference count of one: the one most recently
    /// released (its cache lines are likeliest to be warm).
    pub fn alloc(&mut self) -> Option<Frame> {
        let idx = self.free_head as usize;
        let info = self.infos.get_mut(idx)?;
        debug_assert_eq!(info.state, FrameUse::Free);
        self.free_head = info.next;
        *info = FrameInfo {
            state: FrameUse::Allocated,
            refcount: 1,
            next: NIL,
            _spare: 0,
        };
        self.free -= 1;
        self.allocated += 1;
        Some(Frame(self.first_pfn + idx as u64))
    }

    /// The record of an allocated frame, or why there is none.
    fn allocated_info(&mut self, f: Frame) -> Result<&mut FrameInfo, FrameError> {
        let idx = self.index(f).ok_or(FrameError::OutOfRange)?;
        let info = &mut self.infos[idx];
        if info.state == FrameUse::Allocated {
            Ok(info)
        } else {
            Err(FrameError::NotAllocated)
        }
    }

    /// Counts one more reference to an allocated frame; returns the new count.
    pub fn add_ref(&mut self, f: Frame) -> Result<u32, FrameError> {
        let info = self.allocated_info(f)?;
        info.refcount = info
            .refcount
            .checked_add(1)
            .ok_or(FrameError::RefcountOverflow)?;
        Ok(info.refcount)
    }

    /// Drops one reference to an allocated frame. Returns `Ok(true)` if that
    /// was the last one and the frame is now free.
    pub fn release(&mut self, f: Frame) -> Result<bool, FrameError> {
        let idx = self.index(f).ok_or(FrameError::OutOfRange)?;
        let info = self.allocated_info(f)?;
        debug_assert!(info.refcount > 0);
        info.refcount = info.refcount.saturating_sub(1);
        if info.refcount > 0 {
            return Ok(false);
        }
        self.allocated -= 1;
        self.push_free(idx);
        Ok(true)
    }

    /// The reference count of `f` if it is allocated.
    pub fn refcount(&self, f: Frame) -> Option<u32> {
        let info = &self.infos[self.index(f)?];
        (info.state == FrameUse::Allocated).then_some(info.refcount)
    }

    /// What `f` is used for, or `None` if the table does not cover it.
    pub fn state(&self, f: Frame) -> Option<FrameUse> {
        Some(self.infos[self.index(f)?].state)
    }

    /// Frames on the free list.
    pub fn free_count(&self) -> usize {
        self.free
    }

    /// Frames handed out (the tests' observer).
    #[cfg(test)]
    pub fn allocated_count(&self) -> usize {
        self.allocated
    }

    /// Frames the allocator manages: free plus allocated.
    pub fn managed_count(&self) -> usize {
        self.free + self.allocated
    }

    /// The first page frame number the table covers.
    pub fn first_pfn(&self) -> u64 {
        self.first_pfn
    }

    /// How many frames the table covers (of any state).
    pub fn len(&self) -> usize {
        self.infos.len()
    }

    /// Whether the table covers no frames at all.
    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }
}

/// Capacity of the output of [`subtract_ranges`].
pub const MAX_RANGES: usize = 128;

/// Computes the usable RAM: the union of `avail` minus the union of
/// `reserved`, as sorted, merged, page-aligned `[start, end)` ranges in `out`
/// (which is cleared first). Available ranges are rounded inward to pages,
/// reserved ones outward, so a partly reserved page is never handed out.
/// Empty ranges are dropped. Returns how many ranges did not fit in `out`.
///
/// The inputs come from boot tables, so they may be unsorted, overlapping or
/// inverted; this needs no allocation and is quadratic in the input size,
/// which is a few dozen ranges at boot.
pub fn subtract_ranges(
    avail: &[(u64, u64)],
    reserved: &[(u64, u64)],
    out: &mut ArrayVec<(u64, u64), MAX_RANGES>,
) -> usize {
    out.clear();
    let avail_at = |i: usize| -> Option<(u64, u64)> {
        let (s, e) = *avail.get(i)?;
        let s = page_align_up(s)?;
        let e = page_align_down(e);
        (s < e).then_some((s, e))
    };
    let reserved_at = |i: usize| -> Option<(u64, u64)> {
        let (s, e) = *reserved.get(i)?;
        if s >= e {
            return None;
        }
        // A reservation reaching the top of memory covers the last page.
        Some((page_align_down(s), page_align_up(e).unwrap_or(u64::MAX)))
    };
    let avails = || (0..avail.len()).filter_map(avail_at);
    let reserveds = || (0..reserved.len()).filter_map(reserved_at);

    let mut dropped = 0;
    let mut cursor = 0u64;
    loop {
        // Find the lowest address >= cursor that is available and not reserved.
        let mut x = cursor;
        let start = loop {
            if !avails().any(|(s, e)| s <= x && x < e) {
                match avails().filter(|&(s, _)| s > x).map(|(s, _)| s).min() {
                    Some(s) => x = s,
                    None => break None,
                }
            }
            match reserveds()
                .filter(|&(s, e)| s <= x && x < e)
                .map(|(_, e)| e)
                .max()
            {
                Some(e) => x = e,
                None => break Some(x),
            }
        };
        let Some(start) = start else { break };

        // Extend through chains of touching or overlapping available ranges.
        let mut end = start;
        while let Some(e) = avails()
            .filter(|&(s, e)| s <= end && end < e)
            .map(|(_, e)| e)
            .max()
        {
            end = e;
        }
        if let Some(r) = reserveds()
            .filter(|&(s, _)| s > start)
            .map(|(s, _)| s)
            .min()
        {
            end = end.min(r);
        }

        if out.try_push((start, end)).is_err() {
            dropped += 1;
        }
        cursor = end;
    }
    dropped
}

#[cfg(test)]
mod tests;
