//! A domain's I/O virtual address space: which page-aligned ranges of
//! IOVA are handed out, so that an export of `n` pages gets one
//! contiguous range of `n` pages that no other export of the domain
//! overlaps.
//!
//! Rules:
//! - ranges lie within `[base, limit)`, page-aligned, never empty, and
//!   never include page 0: IOVA 0 is never valid, so a device told 0 (or
//!   a driver that forgot to set an address) faults;
//! - memory is fixed: at most [`MAX_RANGES`] live ranges, kept sorted in
//!   an `ArrayVec` (16 bytes each, 1 KiB in all, inside the owner's
//!   record: nothing to charge); one more is `LimitReached`;
//! - cost is bounded by that size: `alloc` is a first-fit walk over the at
//!   most `MAX_RANGES + 1` gaps plus one insertion, `free` a binary search
//!   plus one removal;
//! - first fit from the bottom keeps live ranges low and close together,
//!   so they share page tables. Fragmentation is bounded by the count: with
//!   `k` ranges live there are at most `k + 1` gaps, so a request of up to
//!   `free pages / (k + 1)` pages always succeeds, and a request fails only
//!   if no gap at all is that large (never for lack of compaction);
//! - `free` takes back exactly a range `alloc` gave (same start, same
//!   length): a double free, a range never handed out, a piece of one or
//!   one spanning several is refused with nothing changed;
//! - the caller frees a range only after its pages are unmapped and the
//!   IOTLB invalidated, so a reused IOVA never meets a stale translation.

use super::PAGE;
use abi::Error;
use arrayvec::ArrayVec;

/// Live ranges one space holds.
pub const MAX_RANGES: usize = 64;

/// A live range, in pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u64,
    pages: u64,
}

impl Range {
    fn end(&self) -> u64 {
        self.start + self.pages
    }
}

/// The IOVA ranges handed out in one domain.
#[derive(Debug)]
pub struct IovaSpace {
    /// First and one-past-last page.
    first: u64,
    end: u64,
    live: ArrayVec<Range, MAX_RANGES>,
    used: u64,
}

impl IovaSpace {
    /// An empty space over `[base, limit)` (bytes), minus page 0:
    /// `InvalidArgument` unless both are page-aligned and at least one
    /// page remains. The limit is usually the domain's `iova_end`.
    pub fn new(base: u64, limit: u64) -> Result<IovaSpace, Error> {
        if !base.is_multiple_of(PAGE) || !limit.is_multiple_of(PAGE) {
            return Err(Error::InvalidArgument);
        }
        let first = (base / PAGE).max(1);
        let end = limit / PAGE;
        if first >= end {
            return Err(Error::InvalidArgument);
        }
        Ok(IovaSpace {
            first,
            end,
            live: ArrayVec::new(),
            used: 0,
        })
    }

    /// `[base, limit)` as given to `new`, page 0 left out.
    pub fn bounds(&self) -> (u64, u64) {
        (self.first * PAGE, self.end * PAGE)
    }

    /// Pages handed out.
    pub fn used_pages(&self) -> u64 {
        self.used
    }

    /// Pages not handed out.
    pub fn free_pages(&self) -> u64 {
        self.end - self.first - self.used
    }

    /// Ranges handed out.
    pub fn ranges(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The lowest free range of `pages` pages: its first IOVA.
    /// `InvalidArgument` for 0 pages; `LimitReached` if `MAX_RANGES` are
    /// live or no gap is large enough.
    pub fn alloc(&mut self, pages: u64) -> Result<u64, Error> {
        if pages == 0 {
            return Err(Error::InvalidArgument);
        }
        if self.live.is_full() {
            return Err(Error::LimitReached);
        }
        let mut gap_start = self.first;
        let mut at = self.live.len();
        for (i, r) in self.live.iter().enumerate() {
            if r.start - gap_start >= pages {
                at = i;
                break;
            }
            gap_start = r.end();
        }
        if at == self.live.len() && self.end - gap_start < pages {
            return Err(Error::LimitReached);
        }
        self.live.insert(
            at,
            Range {
                start: gap_start,
                pages,
            },
        );
        self.used += pages;
        Ok(gap_start * PAGE)
    }

    /// Takes back the range of `pages` pages that `alloc` gave at `iova`.
    /// `InvalidArgument` for an unaligned IOVA or 0 pages; `NotFound` if no
    /// live range starts at `iova` (never handed out, already freed, or
    /// inside another range); `InvalidArgument` if one does but with
    /// another length. Nothing changes on error.
    pub fn free(&mut self, iova: u64, pages: u64) -> Result<(), Error> {
        if !iova.is_multiple_of(PAGE) || pages == 0 {
            return Err(Error::InvalidArgument);
        }
        let start = iova / PAGE;
        let i = self
            .live
            .binary_search_by_key(&start, |r| r.start)
            .map_err(|_| Error::NotFound)?;
        if self.live[i].pages != pages {
            return Err(Error::InvalidArgument);
        }
        self.live.remove(i);
        self.used -= pages;
        Ok(())
    }

    /// The live range holding `iova`: `(first IOVA, pages)`.
    pub fn range_of(&self, iova: u64) -> Option<(u64, u64)> {
        let page = iova / PAGE;
        let i = self
            .live
            .partition_point(|r| r.start <= page)
            .checked_sub(1)?;
        let r = self.live[i];
        (page < r.end()).then_some((r.start * PAGE, r.pages))
    }
}

#[cfg(test)]
mod tests;
