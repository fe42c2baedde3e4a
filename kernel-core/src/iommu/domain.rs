//! A domain's second-level page tables (VT-d section 9.8): the tree that
//! turns a device's IOVAs into physical frames, 3 or 4 levels deep, with
//! 4 KiB pages only.
//!
//! Entry format (every level): bit 0 read, bit 1 write, bits
//! `12..host_bits` the address of the next table or, in a leaf, of the
//! page; everything else 0 (no execute, no large pages, no snoop, no
//! transient mapping, default memory type), except bits 61:52 of a
//! non-leaf entry, which the hardware ignores and which hold the number
//! of present entries in the table it points at. A table entry grants
//! read and write; what a page allows is its leaf's to say. An entry with
//! read and write both clear is not present.
//!
//! Rules:
//! - only IOVAs below `2^iova_bits` and frames below `2^host_bits` are
//!   mapped (the geometry says both), only page-aligned IOVAs, and never
//!   over an existing mapping;
//! - a map that needs tables gets them all before it writes anything,
//!   fills them below the tree (the leaf first), and links them with one
//!   write into the existing tree; if an allocation fails, nothing is
//!   written and what was allocated goes straight back (no hardware can
//!   have seen it);
//! - the per-table counts make emptiness known in O(1): an unmap that
//!   empties a table unlinks it (and any table above it left empty,
//!   never the root), but does not free it: the tables go back to the
//!   caller in [`Stale`], to be freed after the IOTLB invalidation that
//!   [`Flush`] describes (with paging-structure caches, hint clear), so
//!   the hardware never walks a freed frame;
//! - `destroy` gives every table back and names every page still mapped.
//!
//! A multi-page unmap can share one invalidation: merge each page's
//! `Flush`, and when an unmap returns stale tables, invalidate what has
//! been merged so far before freeing them.

use super::PAGE;
use super::caps::Geometry;
use super::context::alloc_below;
use crate::frame::Frame;
use crate::pagetable::{TableFrames, TableMemory};
use abi::Error;
use arrayvec::ArrayVec;
use bitflags::bitflags;

bitflags! {
    /// What a device may do to a mapped page.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Access: u64 {
        const READ = 1;
        const WRITE = 1 << 1;
    }
}

/// Bits 51:12: an entry's address.
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Bits 61:52: a non-leaf entry's count of the entries below.
const COUNT_SHIFT: u32 = 52;
const COUNT_MASK: u64 = 0x3ff << COUNT_SHIFT;
const _: () = assert!(COUNT_MASK & ADDR == 0 && COUNT_MASK & (3 << 62) == 0);
/// What a non-leaf entry grants: both, so that the leaf decides.
const TABLE: u64 = Access::READ.bits() | Access::WRITE.bits();

/// Most tables below the root on one path (a 4-level tree has 3).
const BELOW_ROOT: usize = 3;

/// The index into a table of `level` (1: the leaf table) for `iova`.
fn index(iova: u64, level: u8) -> usize {
    ((iova >> (12 + 9 * (u32::from(level) - 1))) & 511) as usize
}

fn count_of(entry: u64) -> u64 {
    (entry & COUNT_MASK) >> COUNT_SHIFT
}

fn table_entry(table: Frame, count: u64) -> u64 {
    (table.addr() & ADDR) | TABLE | (count << COUNT_SHIFT)
}

fn frame_of(entry: u64) -> Frame {
    Frame::containing(entry & ADDR)
}

fn present(entry: u64) -> bool {
    entry & TABLE != 0
}

/// IOVAs whose translations changed, for an IOTLB invalidation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flush {
    start: u64,
    end: u64,
    tables: bool,
}

impl Flush {
    /// Nothing to invalidate.
    pub const NONE: Flush = Flush {
        start: 0,
        end: 0,
        tables: false,
    };

    /// The page at `iova`; `tables`: tables above it were unlinked too.
    pub const fn page(iova: u64, tables: bool) -> Flush {
        let start = iova & !(PAGE - 1);
        Flush {
            start,
            end: start.saturating_add(PAGE),
            tables,
        }
    }

    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The IOVAs `[start, end)` to invalidate.
    pub const fn range(&self) -> (u64, u64) {
        (self.start, self.end)
    }

    /// Whether non-leaf entries changed: the invalidation must then drop
    /// cached paging-structure entries too (invalidation hint clear).
    pub const fn tables(&self) -> bool {
        self.tables
    }

    /// Both ranges (and what lies between them) in one.
    pub fn merge(&mut self, other: Flush) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = other;
            return;
        }
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        self.tables |= other.tables;
    }

    /// A page-selective invalidation that covers the range: the
    /// address and the address mask `am` of the smallest naturally
    /// aligned block of 2^am pages holding it (`None` if empty). If `am`
    /// exceeds the unit's MAMV, or it has no PSI, invalidate the domain.
    pub fn page_selective(&self) -> Option<(u64, u8)> {
        if self.is_empty() {
            return None;
        }
        let (first, last) = (self.start / PAGE, (self.end - 1) / PAGE);
        let am = (u64::BITS - (first ^ last).leading_zeros()) as u8;
        let addr = (first >> am << am) * PAGE;
        Some((addr, am))
    }
}

/// Tables an unmap unlinked: free them ([`Stale::release`]) only after
/// the invalidation has completed.
#[derive(Debug, Default, PartialEq, Eq)]
#[must_use = "stale tables must be freed after the IOTLB invalidation"]
pub struct Stale(ArrayVec<Frame, BELOW_ROOT>);

impl Stale {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn frames(&self) -> &[Frame] {
        &self.0
    }

    /// Gives the tables back to `frames`.
    pub fn release(self, frames: &mut impl TableFrames) {
        for f in self.0 {
            frames.free_table(f);
        }
    }
}

/// What an unmap took away.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "the IOTLB must be invalidated and the stale tables freed"]
pub struct Unmapped {
    /// The page that was mapped.
    pub frame: Frame,
    pub access: Access,
    /// What to invalidate before the page and `stale` may be reused.
    pub flush: Flush,
    pub stale: Stale,
}

/// One domain's second-level page tables.
#[derive(Debug)]
pub struct Domain {
    root: Frame,
    geometry: Geometry,
    /// Table frames linked in the tree, the root included.
    tables: u64,
    mapped: u64,
}

impl Domain {
    /// An empty domain (its root table holds nothing) of the given shape;
    /// the root comes from `frames` (`OutOfMemory`; `NotSupported` if it
    /// lies beyond the host width, and it is given back).
    pub fn new(frames: &mut impl TableFrames, geometry: Geometry) -> Result<Domain, Error> {
        let root = alloc_below(frames, geometry.host_end())?;
        Ok(Domain {
            root,
            geometry,
            tables: 1,
            mapped: 0,
        })
    }

    /// The root table, for the context entries of the domain's devices.
    pub fn root(&self) -> Frame {
        self.root
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Table frames in the tree (root included; stale ones not).
    pub fn table_frames(&self) -> u64 {
        self.tables
    }

    /// Pages mapped.
    pub fn mapped_pages(&self) -> u64 {
        self.mapped
    }

    fn levels(&self) -> u8 {
        self.geometry.levels()
    }

    /// The tables on `iova`'s path, root first, as far as they exist:
    /// `(tables, how many)`; `tables[k]` is at level `levels - k`.
    fn path(&self, mem: &impl TableMemory, iova: u64) -> ([Frame; 4], usize) {
        let mut path = [self.root; 4];
        let levels = self.levels();
        for k in 0..usize::from(levels) - 1 {
            let e = mem.read(path[k], index(iova, levels - k as u8));
            if !present(e) {
                return (path, k + 1);
            }
            path[k + 1] = frame_of(e);
        }
        (path, usize::from(levels))
    }

    /// Maps page `iova` to `frame` with `access`. Errors, with nothing
    /// changed: `InvalidArgument` for an unaligned IOVA or no access,
    /// `BadAddress` for an IOVA at or above `2^iova_bits` or a frame at or
    /// above `2^host_bits`, `AlreadyExists` if the page is mapped,
    /// `OutOfMemory` if a table cannot be had (`NotSupported` if one lies
    /// beyond the host width).
    ///
    /// Mapping a page that was not present needs no invalidation, unless
    /// the unit is in caching mode.
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        iova: u64,
        frame: Frame,
        access: Access,
    ) -> Result<(), Error> {
        if !iova.is_multiple_of(PAGE) || access.is_empty() {
            return Err(Error::InvalidArgument);
        }
        if iova >= self.geometry.iova_end() || frame.pfn() >= self.geometry.host_end() / PAGE {
            return Err(Error::BadAddress);
        }
        let levels = self.levels();
        let depth_max = usize::from(levels);
        let (path, depth) = self.path(mem, iova);
        let leaf = (frame.addr() & ADDR) | access.bits();
        if depth == depth_max {
            let (table, i) = (path[depth - 1], index(iova, 1));
            if mem.read(table, i) != 0 {
                return Err(Error::AlreadyExists);
            }
            mem.write(table, i, leaf);
            self.add_count(mem, &path, depth - 1, iova);
            self.mapped += 1;
            return Ok(());
        }
        // Every missing table first; nothing is written until all are had.
        let mut new: ArrayVec<Frame, BELOW_ROOT> = ArrayVec::new();
        for _ in depth..depth_max {
            match alloc_below(frames, self.geometry.host_end()) {
                Ok(f) => new.push(f),
                Err(e) => {
                    for f in new {
                        frames.free_table(f);
                    }
                    return Err(e);
                }
            }
        }
        // new[j] is at level `levels - depth - j`; the last is the leaf
        // table. Fill from the bottom, each with its one entry.
        let last = new.len() - 1;
        mem.write(new[last], index(iova, 1), leaf);
        for j in (0..last).rev() {
            let level = levels - (depth + j) as u8;
            mem.write(new[j], index(iova, level), table_entry(new[j + 1], 1));
        }
        // Publish: one write into the tree as it is.
        let top = path[depth - 1];
        let level = levels - (depth - 1) as u8;
        mem.write(top, index(iova, level), table_entry(new[0], 1));
        self.add_count(mem, &path, depth - 1, iova);
        self.tables += new.len() as u64;
        self.mapped += 1;
        Ok(())
    }

    /// Adds one to the count of `path[k]` (kept in its parent's entry;
    /// the root has none).
    fn add_count(&self, mem: &mut impl TableMemory, path: &[Frame; 4], k: usize, iova: u64) {
        if k == 0 {
            return;
        }
        let (parent, i) = (path[k - 1], index(iova, self.levels() - (k - 1) as u8));
        let e = mem.read(parent, i);
        let n = (count_of(e) + 1).min(512);
        mem.write(parent, i, (e & !COUNT_MASK) | (n << COUNT_SHIFT));
    }

    /// The page `iova` falls in, and what the device may do to it.
    pub fn translate(&self, mem: &impl TableMemory, iova: u64) -> Option<(Frame, Access)> {
        if iova >= self.geometry.iova_end() {
            return None;
        }
        let (path, depth) = self.path(mem, iova);
        if depth < usize::from(self.levels()) {
            return None;
        }
        let e = mem.read(path[depth - 1], index(iova, 1));
        present(e).then(|| (frame_of(e), Access::from_bits_truncate(e)))
    }

    /// Unmaps page `iova` (`None` if it was not mapped, or is not an
    /// aligned IOVA of this domain). Tables it leaves empty are unlinked
    /// and come back in `stale`.
    #[must_use = "the IOTLB must be invalidated and the stale tables freed"]
    pub fn unmap(&mut self, mem: &mut impl TableMemory, iova: u64) -> Option<Unmapped> {
        if !iova.is_multiple_of(PAGE) || iova >= self.geometry.iova_end() {
            return None;
        }
        let levels = self.levels();
        let (path, depth) = self.path(mem, iova);
        if depth < usize::from(levels) {
            return None;
        }
        let leaf_at = index(iova, 1);
        let leaf = mem.read(path[depth - 1], leaf_at);
        if !present(leaf) {
            return None;
        }
        mem.write(path[depth - 1], leaf_at, 0);
        self.mapped -= 1;
        // path[k] lost an entry: count it down in its parent, unlinking it
        // if it is empty now, and so on up to the root's children.
        let mut stale = Stale::default();
        let mut k = depth - 1;
        while k >= 1 {
            let (parent, i) = (path[k - 1], index(iova, levels - (k - 1) as u8));
            let e = mem.read(parent, i);
            let n = count_of(e).saturating_sub(1);
            if n > 0 {
                mem.write(parent, i, (e & !COUNT_MASK) | (n << COUNT_SHIFT));
                break;
            }
            mem.write(parent, i, 0);
            stale.0.push(path[k]);
            self.tables -= 1;
            k -= 1;
        }
        Some(Unmapped {
            frame: frame_of(leaf),
            access: Access::from_bits_truncate(leaf),
            flush: Flush::page(iova, !stale.is_empty()),
            stale,
        })
    }

    /// Gives every table frame back, calling `leaf(iova, frame)` for each
    /// page still mapped, in IOVA order. No device may be attached to the
    /// domain any more (its context entries cleared and invalidated).
    pub fn destroy(
        self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        leaf: &mut dyn FnMut(u64, Frame),
    ) {
        fn walk(
            mem: &mut impl TableMemory,
            frames: &mut impl TableFrames,
            table: Frame,
            level: u8,
            base: u64,
            mut left: u64,
            leaf: &mut dyn FnMut(u64, Frame),
        ) -> u64 {
            let span = 1u64 << (12 + 9 * (u32::from(level) - 1));
            let mut freed = 0;
            for i in 0..512 {
                if left == 0 {
                    break;
                }
                let e = mem.read(table, i);
                if !present(e) {
                    continue;
                }
                left -= 1;
                let at = base + i as u64 * span;
                if level == 1 {
                    leaf(at, frame_of(e));
                } else {
                    let below = frame_of(e);
                    freed += walk(mem, frames, below, level - 1, at, count_of(e), leaf);
                    mem.write(table, i, 0);
                    frames.free_table(below);
                    freed += 1;
                }
            }
            freed
        }
        let levels = self.levels();
        let freed = walk(mem, frames, self.root, levels, 0, u64::MAX, leaf);
        frames.free_table(self.root);
        debug_assert_eq!(freed + 1, self.tables, "every table counted");
    }
}

#[cfg(test)]
mod tests;
