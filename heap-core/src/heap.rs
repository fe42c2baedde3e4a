//! The heap: a region of address space that grows upwards page by page,
//! carved into blocks. Small blocks (up to `SMALL_MAX` bytes, by size or
//! alignment) come in power-of-two size classes with a LIFO free list
//! each, so allocating and freeing them is a pointer swap; larger blocks
//! come first-fit from an address-ordered free list that merges
//! neighbours (`freelist`). When nothing fits, the heap asks its caller to
//! map more pages at the top of the region (`Grow`), at least
//! `GROW_BATCH` bytes at a time when it can.
//!
//! Rules: blocks are never handed out twice nor overlap; freeing needs
//! the size and alignment the block was allocated with (as `GlobalAlloc`
//! guarantees); small blocks stay in their class once made, and the heap
//! never gives pages back: it only grows, and a failed growth leaves it as
//! it was.

use crate::freelist::{FreeList, GRAIN};

/// The page size the heap grows by.
pub const PAGE: usize = 4096;
/// The largest small block.
pub const SMALL_MAX: usize = 2048;
/// Size classes: 16, 32, ... `SMALL_MAX` bytes.
pub const CLASSES: usize = 8;
/// Bytes carved at once to refill a size class.
pub const CLASS_REFILL: usize = 4096;
/// How much the heap asks to grow by at once, if it needs less.
pub const GROW_BATCH: usize = 64 * 1024;

/// Maps pages at the top of the heap's region.
pub trait Grow {
    /// Makes `[at, at + n)` usable memory for some `n` with `min <= n <=
    /// want` (both multiples of `PAGE`, `min > 0`), preferring `want`, and
    /// returns `n`; returns 0 if not even `min` can be had.
    fn grow(&mut self, at: usize, min: usize, want: usize) -> usize;
}

impl<F: FnMut(usize, usize, usize) -> usize> Grow for F {
    fn grow(&mut self, at: usize, min: usize, want: usize) -> usize {
        self(at, min, want)
    }
}

/// What the heap has done, for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes mapped (the region in use, from its base).
    pub mapped: usize,
    /// Bytes in blocks handed out and not freed (rounded sizes).
    pub in_use: usize,
    pub allocs: u64,
    pub frees: u64,
    /// Successful growths.
    pub grows: u64,
    /// Allocations that failed (no memory could be had).
    pub failures: u64,
}

struct SmallNode {
    next: *mut SmallNode,
}

pub struct Heap {
    base: usize,
    top: usize,
    end: usize,
    large: FreeList,
    small: [*mut SmallNode; CLASSES],
    stats: Stats,
}

// SAFETY: the heap owns the memory of its region; its raw pointers point
// only there.
unsafe impl Send for Heap {}

/// The class of a block of `size` bytes aligned to `align`, if small.
fn class_of(size: usize, align: usize) -> Option<usize> {
    let n = size.max(align).max(GRAIN);
    (n <= SMALL_MAX)
        .then(|| (n.next_power_of_two().trailing_zeros() - GRAIN.trailing_zeros()) as usize)
}

const fn class_size(class: usize) -> usize {
    GRAIN << class
}

/// The bytes a large block of `size` takes: whole grains, at least one.
fn large_size(size: usize) -> Option<usize> {
    round_up(size.max(GRAIN), GRAIN)
}

fn round_up(x: usize, to: usize) -> Option<usize> {
    Some(x.checked_add(to - 1)? & !(to - 1))
}

impl Heap {
    /// A heap over the region `[base, base + len)` (page-aligned), of which
    /// nothing is mapped yet.
    pub const fn new(base: usize, len: usize) -> Heap {
        Heap {
            base,
            top: base,
            end: base + len,
            large: FreeList::new(),
            small: [core::ptr::null_mut(); CLASSES],
            stats: Stats {
                mapped: 0,
                in_use: 0,
                allocs: 0,
                frees: 0,
                grows: 0,
                failures: 0,
            },
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The mapped part of the region, `[base, top)`.
    pub fn mapped(&self) -> (usize, usize) {
        (self.base, self.top)
    }

    /// Whether `addr` lies in the mapped part of the region.
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.base && addr < self.top
    }

    /// A block of `size` bytes aligned to `align` (a power of two), or
    /// None when `grow` cannot provide the memory.
    pub fn alloc(&mut self, size: usize, align: usize, grow: &mut impl Grow) -> Option<usize> {
        let got = if !align.is_power_of_two() {
            None
        } else if let Some(class) = class_of(size, align) {
            self.alloc_small(class, grow)
        } else {
            self.alloc_large(size, align, grow)
        };
        match got {
            Some(_) => self.stats.allocs += 1,
            None => self.stats.failures += 1,
        }
        got
    }

    /// Frees a block.
    ///
    /// # Safety
    /// `addr` came from `alloc` on this heap with the same `size` and
    /// `align`, and is not used (nor freed) again.
    pub unsafe fn dealloc(&mut self, addr: usize, size: usize, align: usize) {
        debug_assert!(self.contains(addr));
        self.stats.frees += 1;
        if let Some(class) = class_of(size, align) {
            self.stats.in_use -= class_size(class);
            let node = addr as *mut SmallNode;
            // SAFETY: the block is ours again and at least GRAIN long.
            unsafe {
                node.write(SmallNode {
                    next: self.small[class],
                })
            };
            self.small[class] = node;
        } else {
            let size = large_size(size).unwrap_or(size);
            self.stats.in_use -= size;
            // SAFETY: the block was taken from the large list with this
            // rounded size and is given back once.
            unsafe { self.large.give(addr, size) };
        }
    }

    fn alloc_small(&mut self, class: usize, grow: &mut impl Grow) -> Option<usize> {
        let size = class_size(class);
        if self.small[class].is_null() {
            self.refill(class, grow)?;
        }
        let node = self.small[class];
        // SAFETY: a node of the class list: a free block of this class.
        self.small[class] = unsafe { (*node).next };
        self.stats.in_use += size;
        Some(node as usize)
    }

    /// Carves a run of blocks of `class` from the large list (growing the
    /// heap if needed) and pushes them on the class's list.
    fn refill(&mut self, class: usize, grow: &mut impl Grow) -> Option<()> {
        let size = class_size(class);
        let run = CLASS_REFILL.max(size);
        let (start, len) = match self.take_large(run, size, grow) {
            Some(start) => (start, run),
            // Short of memory: one block will do.
            None => (self.take_large(size, size, grow)?, size),
        };
        for i in (0..len / size).rev() {
            let node = (start + i * size) as *mut SmallNode;
            // SAFETY: the run was just taken from the free list; each block
            // is inside it and aligned to its size.
            unsafe {
                node.write(SmallNode {
                    next: self.small[class],
                })
            };
            self.small[class] = node;
        }
        Some(())
    }

    fn alloc_large(&mut self, size: usize, align: usize, grow: &mut impl Grow) -> Option<usize> {
        let size = large_size(size)?;
        let start = self.take_large(size, align.max(GRAIN), grow)?;
        self.stats.in_use += size;
        Some(start)
    }

    /// Takes from the large list, growing the heap once if nothing fits.
    fn take_large(&mut self, size: usize, align: usize, grow: &mut impl Grow) -> Option<usize> {
        if let Some(a) = self.large.take(size, align) {
            return Some(a);
        }
        // Fresh pages start page-aligned: only a larger alignment needs
        // room to move the block up.
        let need = size.checked_add(if align > PAGE { align } else { 0 })?;
        self.grow(need, grow)?;
        self.large.take(size, align)
    }

    /// Maps at least `need` more bytes at the top of the region.
    fn grow(&mut self, need: usize, grow: &mut impl Grow) -> Option<()> {
        let room = self.end - self.top;
        let min = round_up(need, PAGE)?;
        if min > room {
            return None;
        }
        let want = min.max(GROW_BATCH).min(room);
        let n = grow.grow(self.top, min, want);
        if n < min || n > want || n % PAGE != 0 {
            return None;
        }
        // SAFETY: the grower made `[top, top + n)` usable memory inside our
        // region, which no block or range covers yet.
        unsafe { self.large.give(self.top, n) };
        self.top += n;
        self.stats.mapped += n;
        self.stats.grows += 1;
        Some(())
    }

    /// Bytes free in the large list (small classes not counted).
    pub fn large_free(&self) -> usize {
        self.large.free_bytes()
    }
}

#[cfg(test)]
mod tests;
