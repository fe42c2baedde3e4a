//! Physical frame accounting: which 4 KiB frames of RAM are reserved, free or
//! allocated, and how many mappings share each allocated frame.
//!
//! Rules: every reference count is exact. The original C MH leaked every
//! copy-on-write frame because sharing was never counted; here a frame goes
//! back on a free list exactly when its last reference is released, and a
//! release of a frame that is not allocated is an error (a double free)
//! rather than silent corruption. A frame the table does not cover is an
//! error too (`OutOfRange`), never a panic, whatever its number.
//!
//! **Segments.** RAM is not one run of frames: a PC has its first few GiB
//! below the PCI hole and the rest above 4 GiB (QEMU's q35 with 8 GiB: 2 GiB
//! low, 6 GiB from 4 GiB up), and real machines may have RAM at very high
//! addresses. So the table is a small fixed array of **segments**
//! (at most [`MAX_SEGMENTS`]), each a contiguous run of frames with its own
//! slice of the one `FrameInfo` array the kernel hands over. The array
//! holds a record per frame of the segments only, so its size is linear in
//! the RAM described, never in the highest physical address; the segments
//! are planned by [`plan_segments`] (which bounds the holes it lets in).
//! Finding a frame's record is a binary search over at most 16 segments
//! (constant bound), then an index.
//!
//! **Free lists.** Each segment has an intrusive LIFO free list threaded
//! through its records (so allocation and release are O(1) and need no
//! memory beyond the records), and a bitmask says which segments have free
//! frames. [`FrameTable::alloc`] takes from the highest such segment, so
//! low memory is kept for what needs it; [`FrameTable::alloc_below`] takes
//! only from segments that lie wholly below an address (the kernel splits
//! its segments at 4 GiB, so a 32-bit DMA request sees all low memory).

use arrayvec::ArrayVec;
use core::mem::MaybeUninit;

use crate::paging::PAGE_SIZE;

mod ranges;
pub use ranges::{
    HOLE_BUDGET_DIVISOR, MAX_RANGES, SMALL_HOLE_FRAMES, SegmentPlan, plan_segments, subtract_ranges,
};

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
    /// The segments given to [`FrameTable::with_segments`] are unsorted,
    /// overlapping, empty, too many, or need more records than were given.
    BadSegments,
}

/// Marks the end of a free list.
const NIL: u32 = u32::MAX;

/// The most segments a table has.
pub const MAX_SEGMENTS: usize = 16;

/// The highest page frame number plus one that a table may cover, so that
/// every covered frame's address (`Frame::addr`) is exact.
pub const PFN_LIMIT: u64 = u64::MAX / PAGE_SIZE;

/// The most records one table holds: every record index fits a `u32`
/// below [`NIL`] (16 TiB of RAM).
pub const MAX_RECORDS: u64 = NIL as u64;

/// The per-frame record; the kernel keeps one per frame of RAM, so it is small.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FrameInfo {
    state: FrameUse,
    refcount: u32,
    /// Record index of the next free frame of the same segment while
    /// `state` is `Free`.
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

/// A contiguous run of page frames a table describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub first_pfn: u64,
    pub frames: u64,
}

impl Segment {
    /// The first page frame number after the segment (saturating: a
    /// segment that would pass the top is refused by the table anyway).
    pub const fn end_pfn(self) -> u64 {
        self.first_pfn.saturating_add(self.frames)
    }
}

/// One segment as the table keeps it.
#[derive(Clone, Copy, Debug)]
struct Seg {
    first_pfn: u64,
    end_pfn: u64,
    /// Index of the segment's first record in `infos`.
    base: u32,
    free_head: u32,
}

/// The frame allocator over up to [`MAX_SEGMENTS`] runs of frames.
pub struct FrameTable<'a> {
    infos: &'a mut [FrameInfo],
    segs: ArrayVec<Seg, MAX_SEGMENTS>,
    /// Bit `i`: segment `i`'s free list is not empty.
    nonempty: u32,
    free: usize,
    allocated: usize,
}

const _: () = assert!(MAX_SEGMENTS <= 32);

impl<'a> FrameTable<'a> {
    /// A table of one segment covering frames `first_pfn..first_pfn +
    /// infos.len()`, all reserved. Whatever `infos` held is overwritten.
    /// Entries beyond what a `u32` index can name, or beyond the last pfn,
    /// are left unused.
    pub fn new(infos: &'a mut [FrameInfo], first_pfn: u64) -> Self {
        let room = PFN_LIMIT.saturating_sub(first_pfn);
        let len = (infos.len() as u64).min(MAX_RECORDS).min(room);
        let seg = Segment {
            first_pfn,
            frames: len,
        };
        let segs: &[Segment] = if len == 0 { &[] } else { &[seg] };
        match Self::with_segments(infos, segs) {
            Ok(t) => t,
            // Unreachable: one non-empty segment within the limits above.
            Err(_) => FrameTable {
                infos: &mut [],
                segs: ArrayVec::new(),
                nonempty: 0,
                free: 0,
                allocated: 0,
            },
        }
    }

    /// A table over `segments` (sorted by address, disjoint, none empty,
    /// at most [`MAX_SEGMENTS`], ending below [`PFN_LIMIT`]), all reserved.
    /// Segment `i` uses the records after those of segments `0..i`;
    /// records past the last are left unused (and untouched).
    pub fn with_segments(
        infos: &'a mut [FrameInfo],
        segments: &[Segment],
    ) -> Result<Self, FrameError> {
        let (segs, used) = check_segments(segments)?;
        let infos = infos.get_mut(..used).ok_or(FrameError::BadSegments)?;
        infos.fill(FrameInfo::RESERVED);
        Ok(Self::over(infos, segs))
    }

    /// As [`with_segments`](Self::with_segments), over records that need
    /// not be initialised yet (the kernel's, in RAM no one has written):
    /// each one the segments use is written once, as reserved.
    pub fn with_segments_uninit(
        infos: &'a mut [MaybeUninit<FrameInfo>],
        segments: &[Segment],
    ) -> Result<Self, FrameError> {
        let (segs, used) = check_segments(segments)?;
        let infos = infos.get_mut(..used).ok_or(FrameError::BadSegments)?;
        for info in infos.iter_mut() {
            info.write(FrameInfo::RESERVED);
        }
        // SAFETY: every element of `infos` was just initialised, and
        // `MaybeUninit<T>` has the layout of `T`.
        let infos = unsafe { &mut *(infos as *mut [MaybeUninit<FrameInfo>] as *mut [FrameInfo]) };
        Ok(Self::over(infos, segs))
    }

    fn over(infos: &'a mut [FrameInfo], segs: ArrayVec<Seg, MAX_SEGMENTS>) -> Self {
        FrameTable {
            infos,
            segs,
            nonempty: 0,
            free: 0,
            allocated: 0,
        }
    }

    /// The segment and record index of `f`, if the table covers it.
    #[inline]
    fn locate(&self, f: Frame) -> Option<(usize, usize)> {
        let pfn = f.pfn();
        let i = self
            .segs
            .partition_point(|s| s.first_pfn <= pfn)
            .checked_sub(1)?;
        let s = self.segs.get(i)?;
        (pfn < s.end_pfn).then(|| (i, s.base as usize + (pfn - s.first_pfn) as usize))
    }

    /// Makes the reserved frames of `[start, end)` free. Frames outside the
    /// table or not reserved are ignored, so overlapping calls are harmless.
    /// (At boot this runs over every frame of RAM: one pass over the
    /// records, no lookups.)
    pub fn free_range(&mut self, start: Frame, end: Frame) {
        for k in 0..self.segs.len() {
            let s = self.segs[k];
            let lo = start.pfn().max(s.first_pfn);
            let hi = end.pfn().min(s.end_pfn);
            if lo >= hi {
                continue;
            }
            let first = s.base as usize + (lo - s.first_pfn) as usize;
            let last = s.base as usize + (hi - s.first_pfn) as usize;
            let Some(run) = self.infos.get_mut(first..last) else {
                continue;
            };
            let mut head = s.free_head;
            let mut pushed = 0;
            // Pushed from the top down so that allocation starts at low
            // frames of the segment.
            for (i, info) in run.iter_mut().enumerate().rev() {
                if info.state == FrameUse::Reserved {
                    *info = FrameInfo {
                        state: FrameUse::Free,
                        refcount: 0,
                        next: head,
                        _spare: 0,
                    };
                    // `with_segments` keeps every index below NIL.
                    head = (first + i) as u32;
                    pushed += 1;
                }
            }
            if pushed > 0 {
                self.segs[k].free_head = head;
                self.nonempty |= 1 << k;
                self.free += pushed;
            }
        }
    }

    /// Puts record `idx` of segment `k` on its free list. The caller has
    /// checked both.
    fn push_free(&mut self, k: usize, idx: usize) {
        let Some(seg) = self.segs.get_mut(k) else {
            return;
        };
        if let Some(info) = self.infos.get_mut(idx) {
            *info = FrameInfo {
                state: FrameUse::Free,
                refcount: 0,
                next: seg.free_head,
                _spare: 0,
            };
            // `with_segments` keeps every index below NIL: no truncation.
            seg.free_head = idx as u32;
            self.nonempty |= 1 << k;
            self.free += 1;
        }
    }

    /// Takes the head of segment `k`'s free list (which is not empty).
    fn pop_free(&mut self, k: usize) -> Option<Frame> {
        let seg = self.segs.get_mut(k)?;
        let idx = seg.free_head as usize;
        let info = self.infos.get_mut(idx)?;
        debug_assert_eq!(info.state, FrameUse::Free);
        seg.free_head = info.next;
        if seg.free_head == NIL {
            self.nonempty &= !(1 << k);
        }
        *info = FrameInfo {
            state: FrameUse::Allocated,
            refcount: 1,
            next: NIL,
            _spare: 0,
        };
        self.free -= 1;
        self.allocated += 1;
        Some(Frame(seg.first_pfn + (idx - seg.base as usize) as u64))
    }

    /// The highest segment among `mask`'s with a free frame.
    fn highest(mask: u32) -> Option<usize> {
        (mask != 0).then(|| (31 - mask.leading_zeros()) as usize)
    }

    /// A free frame with a reference count of one, from the highest
    /// segment that has one: the frame of it most recently released (its
    /// cache lines are likeliest to be warm).
    pub fn alloc(&mut self) -> Option<Frame> {
        let k = Self::highest(self.nonempty)?;
        self.pop_free(k)
    }

    /// As [`alloc`](Self::alloc), but a frame that lies wholly below
    /// physical address `limit`, taken only from segments that do (a
    /// segment that straddles `limit` is not used).
    pub fn alloc_below(&mut self, limit: u64) -> Option<Frame> {
        let limit_pfn = limit / PAGE_SIZE;
        let below = self.segs.partition_point(|s| s.end_pfn <= limit_pfn);
        let mask = if below >= 32 {
            u32::MAX
        } else {
            (1u32 << below) - 1
        };
        let k = Self::highest(self.nonempty & mask)?;
        self.pop_free(k)
    }

    /// The record of an allocated frame, or why there is none.
    fn allocated_info(&mut self, idx: usize) -> Result<&mut FrameInfo, FrameError> {
        let info = self.infos.get_mut(idx).ok_or(FrameError::OutOfRange)?;
        if info.state == FrameUse::Allocated {
            Ok(info)
        } else {
            Err(FrameError::NotAllocated)
        }
    }

    /// Counts one more reference to an allocated frame; returns the new count.
    pub fn add_ref(&mut self, f: Frame) -> Result<u32, FrameError> {
        let (_, idx) = self.locate(f).ok_or(FrameError::OutOfRange)?;
        let info = self.allocated_info(idx)?;
        info.refcount = info
            .refcount
            .checked_add(1)
            .ok_or(FrameError::RefcountOverflow)?;
        Ok(info.refcount)
    }

    /// Drops one reference to an allocated frame. Returns `Ok(true)` if that
    /// was the last one and the frame is now free.
    pub fn release(&mut self, f: Frame) -> Result<bool, FrameError> {
        let (k, idx) = self.locate(f).ok_or(FrameError::OutOfRange)?;
        let info = self.allocated_info(idx)?;
        debug_assert!(info.refcount > 0);
        info.refcount = info.refcount.saturating_sub(1);
        if info.refcount > 0 {
            return Ok(false);
        }
        self.allocated -= 1;
        self.push_free(k, idx);
        Ok(true)
    }

    /// The record of `f`, if the table covers it.
    fn info(&self, f: Frame) -> Option<&FrameInfo> {
        let (_, idx) = self.locate(f)?;
        self.infos.get(idx)
    }

    /// The reference count of `f` if it is allocated.
    pub fn refcount(&self, f: Frame) -> Option<u32> {
        let info = self.info(f)?;
        (info.state == FrameUse::Allocated).then_some(info.refcount)
    }

    /// What `f` is used for, or `None` if the table does not cover it.
    pub fn state(&self, f: Frame) -> Option<FrameUse> {
        Some(self.info(f)?.state)
    }

    /// Frames on the free lists.
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

    /// The first page frame number the table covers (0 if none).
    pub fn first_pfn(&self) -> u64 {
        self.segs.first().map_or(0, |s| s.first_pfn)
    }

    /// How many frames the table covers (of any state): its records.
    pub fn len(&self) -> usize {
        self.infos.len()
    }

    /// Whether the table covers no frames at all.
    pub fn is_empty(&self) -> bool {
        self.infos.is_empty()
    }

    /// The segments, lowest first.
    pub fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        self.segs.iter().map(|s| Segment {
            first_pfn: s.first_pfn,
            frames: s.end_pfn - s.first_pfn,
        })
    }
}

#[cfg(test)]
mod segment_tests;
/// The table's view of `segments` and the records they need, if they are
/// a valid list (see [`FrameTable::with_segments`]).
fn check_segments(
    segments: &[Segment],
) -> Result<(ArrayVec<Seg, MAX_SEGMENTS>, usize), FrameError> {
    let mut segs = ArrayVec::new();
    let mut next_pfn = 0u64;
    let mut records = 0u64;
    for s in segments {
        let end = s.first_pfn.checked_add(s.frames);
        let ok = s.frames > 0
            && s.first_pfn >= next_pfn
            && end.is_some_and(|e| e <= PFN_LIMIT)
            && records + s.frames <= MAX_RECORDS;
        let Some(end) = end.filter(|_| ok) else {
            return Err(FrameError::BadSegments);
        };
        segs.try_push(Seg {
            first_pfn: s.first_pfn,
            end_pfn: end,
            // records < MAX_RECORDS = NIL, checked above.
            base: records as u32,
            free_head: NIL,
        })
        .map_err(|_| FrameError::BadSegments)?;
        records += s.frames;
        next_pfn = end;
    }
    let used = usize::try_from(records).map_err(|_| FrameError::BadSegments)?;
    Ok((segs, used))
}

#[cfg(test)]
mod tests;
