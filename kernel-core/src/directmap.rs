//! The shape of the kernel's direct map: which pages map which RAM.
//!
//! The direct map covers RAM only (the ranges the memory map calls
//! usable, plus anything the kernel reads there later), never the holes
//! between it, where device memory lives: a hole mapped write-back would
//! let a stray access reach MMIO cached, and a large page over a hole
//! would keep `map_mmio` from mapping a device's 4 KiB uncached there.
//! So each range is cut into the largest pages that lie wholly inside it:
//! 1 GiB pages where the CPU has them and a whole aligned GiB is RAM,
//! 2 MiB pages where a whole aligned 2 MiB is, 4 KiB pages at the edges.
//!
//! Rules: the input is sorted, disjoint ranges (touching ones should be
//! merged first, or a page that spans them is cut smaller); addresses are
//! rounded inward to pages; nothing overflows near the top of the address
//! space.

use crate::paging::{PAGE_SIZE, page_align_down, page_align_up};

/// A 2 MiB page.
pub const LARGE_PAGE: u64 = 2 << 20;
/// A 1 GiB page.
pub const HUGE_PAGE: u64 = 1 << 30;

/// One page of the direct map: `size` bytes of RAM from `phys` (aligned
/// to `size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub phys: u64,
    pub size: u64,
}

/// The pages that map `ranges`, lowest first; `huge` says whether 1 GiB
/// pages may be used.
pub fn chunks(ranges: &[(u64, u64)], huge: bool) -> Chunks<'_> {
    Chunks {
        ranges,
        next_range: 0,
        at: 0,
        end: 0,
        huge,
    }
}

/// The iterator [`chunks`] returns.
pub struct Chunks<'a> {
    ranges: &'a [(u64, u64)],
    next_range: usize,
    /// What is left of the current range: `[at, end)`.
    at: u64,
    end: u64,
    huge: bool,
}

impl Iterator for Chunks<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        while self.at >= self.end {
            let &(s, e) = self.ranges.get(self.next_range)?;
            self.next_range += 1;
            self.at = page_align_up(s).unwrap_or(u64::MAX);
            self.end = page_align_down(e);
        }
        let left = self.end - self.at;
        let fits = |size: u64| self.at.is_multiple_of(size) && left >= size;
        let size = if self.huge && fits(HUGE_PAGE) {
            HUGE_PAGE
        } else if fits(LARGE_PAGE) {
            LARGE_PAGE
        } else {
            PAGE_SIZE
        };
        let chunk = Chunk {
            phys: self.at,
            size,
        };
        // Cannot pass `end`: the page fits in what is left.
        self.at += size;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests;
