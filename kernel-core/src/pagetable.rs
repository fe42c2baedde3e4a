//! The lower (user) half of an x86_64 four-level page table, over any
//! memory that can hold table frames ([`TableMemory`]): walks, creation
//! of missing tables, teardown of empty ones, fork's copy and the final
//! release. The kernel runs it on real frames through the direct map; the
//! tests run it on a map of fake frames.
//!
//! Rules:
//! - every table below the root counts its non-zero entries in the
//!   software bits 52..62 of the entry that points at it (the CPU ignores
//!   them in non-leaf entries), so emptiness is known in O(1);
//! - a leaf table whose last entry goes stays linked, **idle**, so that a
//!   page mapped there again (the common map, unmap, map pattern) needs
//!   no table work; an unlinked table (an idle one evicted, or an upper
//!   table left empty) is kept as a **spare** (zeroed, since it is empty)
//!   for the next table this address space needs. Idle and spare tables
//!   together are at most [`SPARE_TABLES`]: beyond that the oldest idle
//!   table is unlinked, or a spare goes back through
//!   [`TableFrames::free_table`], so a process can never hold more than a
//!   few empty tables;
//! - every table frame comes from [`TableFrames::alloc_table`], which the
//!   kernel charges to the process's reserve, and goes back through
//!   `free_table` (credited); a failed allocation is an error, not a
//!   panic, and leaves the tree as it was (tables made for it are pruned);
//! - only user addresses (below `USER_END`) are ever walked; the upper
//!   half is the kernel's, shared, and never touched here;
//! - user leaves are 4 KiB entries; a table entry with the large-page bit
//!   is not followed.

use crate::frame::Frame;
use crate::paging::{PTE_ADDR_MASK, PteFlags, make_pte, pte_addr, pte_flags, table_indices};
use abi::Error;
use abi::layout::USER_END;
use arrayvec::ArrayVec;

/// Entries per table.
pub const ENTRIES: usize = 512;
/// Root slots that belong to the user half.
pub const USER_ROOT_SLOTS: usize = 256;
/// Empty tables an address space keeps for reuse (zeroed, charged).
pub const SPARE_TABLES: usize = 4;

/// Where a table's count of non-zero entries lives in its parent entry.
const COUNT_SHIFT: u32 = 52;
const COUNT_MASK: u64 = 0x3ff << COUNT_SHIFT;
const _: () = assert!(COUNT_MASK & PTE_ADDR_MASK == 0 && COUNT_MASK & (1 << 63) == 0);

/// The flags of every table entry in the user half.
const TABLE_FLAGS: PteFlags = PteFlags::PRESENT
    .union(PteFlags::WRITABLE)
    .union(PteFlags::USER);

/// Bytes each entry covers, by level (0: a leaf table's entries).
const SPAN: [u64; 4] = [1 << 12, 1 << 21, 1 << 30, 1 << 39];

/// Reading and writing the entries of table frames.
pub trait TableMemory {
    /// Entry `index` (< 512) of the table in `table`.
    fn read(&self, table: Frame, index: usize) -> u64;
    /// Sets entry `index` (< 512) of the table in `table`.
    fn write(&mut self, table: Frame, index: usize, value: u64);
    /// All entries of the table in `table`, to scan.
    fn entries(&self, table: Frame) -> &[u64; ENTRIES];
}

/// The index of the first non-zero entry of `entries[from..end]`. Walks
/// over whole tables (fork, teardown) spend their time here, so it skips
/// eight empty entries at a time, without a bounds check or a branch per
/// entry.
fn next_used(entries: &[u64; ENTRIES], from: usize, end: usize) -> Option<usize> {
    let window = entries.get(from..end.min(ENTRIES))?;
    let empty = window
        .chunks_exact(8)
        .take_while(|chunk| chunk.iter().fold(0, |any, &e| any | e) == 0)
        .count()
        * 8;
    let at = window[empty..].iter().position(|&e| e != 0)?;
    Some(from + empty + at)
}

/// A walk over the non-zero entries of one table, in order, that lets
/// the walker change tables between steps. `count` is how many non-zero
/// entries the table's parent entry says it has, so the walk stops at the
/// last of them instead of scanning the rest of the table.
struct Scan {
    table: Frame,
    level: usize,
    from: usize,
    slots: usize,
    left: u64,
}

impl Scan {
    fn new(table: Frame, level: usize, count: u64) -> Scan {
        let slots = if level == 3 { USER_ROOT_SLOTS } else { ENTRIES };
        Scan {
            table,
            level,
            from: 0,
            slots,
            left: count,
        }
    }

    /// The next non-zero entry: `(index, entry)`.
    fn next(&mut self, mem: &impl TableMemory) -> Option<(usize, u64)> {
        if self.left == 0 {
            return None;
        }
        let i = next_used(mem.entries(self.table), self.from, self.slots)?;
        self.from = i + 1;
        self.left -= 1;
        Some((i, mem.read(self.table, i)))
    }
}

/// Where table frames come from and go back to.
pub trait TableFrames {
    /// A zeroed frame for a table (`None`: none to be had, or the
    /// reserve is spent).
    fn alloc_table(&mut self) -> Option<Frame>;
    /// Takes back a table frame that holds no entries any more.
    fn free_table(&mut self, frame: Frame);
}

fn count_of(entry: u64) -> u64 {
    (entry & COUNT_MASK) >> COUNT_SHIFT
}

fn with_count(entry: u64, count: u64) -> u64 {
    (entry & !COUNT_MASK) | (count << COUNT_SHIFT)
}

/// Adds `delta` to the count kept in entry `index` of `table`; returns
/// the new count.
fn add_count(mem: &mut impl TableMemory, table: Frame, index: usize, delta: i64) -> u64 {
    let e = mem.read(table, index);
    let n = (count_of(e) as i64 + delta).clamp(0, ENTRIES as i64) as u64;
    mem.write(table, index, with_count(e, n));
    n
}

fn is_table(entry: u64) -> bool {
    let f = pte_flags(entry);
    f.contains(PteFlags::PRESENT) && !f.contains(PteFlags::HUGE)
}

fn frame_of(entry: u64) -> Frame {
    Frame::containing(pte_addr(entry))
}

/// The user half of one address space.
#[derive(Debug)]
pub struct PageTree {
    root: Frame,
    spare: ArrayVec<Frame, SPARE_TABLES>,
    /// The idle leaf tables (linked, empty), by the 2 MiB-aligned address
    /// they cover, oldest first; with the spares at most `SPARE_TABLES`.
    idle: ArrayVec<u64, SPARE_TABLES>,
    /// Table frames held: the root, every table under it, the spares.
    tables: u64,
}

impl PageTree {
    /// A tree whose root is `root`, a table frame the caller made (its
    /// upper half already the kernel's) and counts in [`tables`].
    ///
    /// [`tables`]: PageTree::table_frames
    pub fn new(root: Frame) -> PageTree {
        PageTree {
            root,
            spare: ArrayVec::new(),
            idle: ArrayVec::new(),
            tables: 1,
        }
    }

    pub fn root(&self) -> Frame {
        self.root
    }

    /// Table frames this tree holds (root and spares included).
    pub fn table_frames(&self) -> u64 {
        self.tables
    }

    /// Empty tables kept for reuse: spares and idle leaf tables (at most
    /// `SPARE_TABLES` together).
    pub fn spare_tables(&self) -> u64 {
        (self.spare.len() + self.idle.len()) as u64
    }

    /// Every table that maps nothing: the spares, the idle leaf tables,
    /// and the tables above idle ones that lead to nothing else (a
    /// directory whose entries are all idle tables, and so on up). At most
    /// `3 * SPARE_TABLES`.
    pub fn empty_tables(&self, mem: &impl TableMemory) -> u64 {
        let mut n = (self.spare.len() + self.idle.len()) as u64;
        // Directories (1 GiB each) holding only idle tables.
        let mut empty_dirs: ArrayVec<u64, SPARE_TABLES> = ArrayVec::new();
        for &base in &self.idle {
            let dir = base / SPAN[2];
            if empty_dirs.contains(&dir) {
                continue;
            }
            let idle_here = self.idle.iter().filter(|&&b| b / SPAN[2] == dir).count() as u64;
            let idx = table_indices(base);
            let (path, depth) = self.path(mem, base);
            if depth == 4 && count_of(mem.read(path[1], idx[1])) == idle_here {
                let _ = empty_dirs.try_push(dir);
                n += 1;
            }
        }
        // Pointer tables (512 GiB each) holding only such directories.
        let mut empty_pointers: ArrayVec<u64, SPARE_TABLES> = ArrayVec::new();
        for &dir in &empty_dirs {
            let top = dir * SPAN[2] / SPAN[3];
            if empty_pointers.contains(&top) {
                continue;
            }
            let dirs_here = empty_dirs
                .iter()
                .filter(|&&d| d * SPAN[2] / SPAN[3] == top)
                .count() as u64;
            let idx = table_indices(dir * SPAN[2]);
            if count_of(mem.read(self.root, idx[0])) == dirs_here {
                let _ = empty_pointers.try_push(top);
                n += 1;
            }
        }
        n
    }

    /// The leaf entry for user page `va` (0 when none, or when `va` is not
    /// a user address).
    #[inline]
    pub fn entry(&self, mem: &impl TableMemory, va: u64) -> u64 {
        if va >= USER_END {
            return 0;
        }
        let idx = table_indices(va);
        let mut table = self.root;
        for &i in &idx[..3] {
            let e = mem.read(table, i);
            if !is_table(e) {
                return 0;
            }
            table = frame_of(e);
        }
        mem.read(table, idx[3])
    }

    /// The tables that lead to `va`'s leaf, root first, as far as they
    /// exist: `(tables, how many)`.
    fn path(&self, mem: &impl TableMemory, va: u64) -> ([Frame; 4], usize) {
        let idx = table_indices(va);
        let mut path = [self.root; 4];
        for level in 0..3 {
            let e = mem.read(path[level], idx[level]);
            if !is_table(e) {
                return (path, level + 1);
            }
            path[level + 1] = frame_of(e);
        }
        (path, 4)
    }

    fn take_table(&mut self, frames: &mut impl TableFrames) -> Option<Frame> {
        if let Some(f) = self.spare.pop() {
            return Some(f);
        }
        let f = frames.alloc_table()?;
        self.tables += 1;
        Some(f)
    }

    /// An unlinked, empty table: kept as a spare while idle and spare
    /// tables together stay within `SPARE_TABLES`, else freed.
    fn drop_table(&mut self, frames: &mut impl TableFrames, table: Frame) {
        if self.idle.len() + self.spare.len() >= SPARE_TABLES || self.spare.try_push(table).is_err()
        {
            self.free_table(frames, table);
        }
    }

    fn free_table(&mut self, frames: &mut impl TableFrames, table: Frame) {
        frames.free_table(table);
        self.tables -= 1;
    }

    /// Makes the tables down to `va`'s leaf entry, if missing. On failure
    /// the tables made for it are taken down again.
    pub fn prepare(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        va: u64,
    ) -> Result<(), Error> {
        self.make_path(mem, frames, va).map(|_| ())
    }

    /// Sets the leaf entry for `va`, which must be zero (`AlreadyExists`,
    /// changing nothing, otherwise), making the tables it needs on the way
    /// down (`OutOfMemory`: none are left behind): `prepare` and `set` in
    /// one walk, for a fresh page.
    pub fn set_new(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        va: u64,
        pte: u64,
    ) -> Result<(), Error> {
        let (leaf_table, (dir, at)) = self.make_path(mem, frames, va)?;
        let i = table_indices(va)[3];
        if mem.read(leaf_table, i) != 0 {
            return Err(Error::AlreadyExists);
        }
        if pte != 0 {
            mem.write(leaf_table, i, pte);
            add_count(mem, dir, at, 1);
        }
        Ok(())
    }

    /// `prepare`'s walk: the leaf table for `va` and the entry that counts
    /// its entries (table, index).
    fn make_path(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        va: u64,
    ) -> Result<(Frame, (Frame, usize)), Error> {
        if va >= USER_END {
            return Err(Error::BadAddress);
        }
        let idx = table_indices(va);
        let base = va & !(SPAN[1] - 1);
        let mut evicted = false;
        'walk: loop {
            let mut table = self.root;
            // The entry that counts `table`'s entries (none for the root).
            let mut counter: Option<(Frame, usize)> = None;
            for &i in &idx[..3] {
                let e = mem.read(table, i);
                if pte_flags(e).contains(PteFlags::HUGE) {
                    return Err(Error::BadAddress);
                }
                let next = if is_table(e) {
                    frame_of(e)
                } else {
                    // Tables in the budget are for any address: with no
                    // spare left, the oldest idle table elsewhere is
                    // unlinked to become one, before any table is made
                    // here, and the walk starts again on the tree as it
                    // now is.
                    if !evicted
                        && self.spare.is_empty()
                        && !self.idle.is_empty()
                        && self.idle.len() >= SPARE_TABLES
                    {
                        evicted = true;
                        let oldest = self.idle.remove(0);
                        self.unlink_empty(mem, frames, oldest, true);
                        continue 'walk;
                    }
                    let Some(new) = self.take_table(frames) else {
                        // The tables made above hold nothing: take them down.
                        self.prune(mem, frames, va);
                        return Err(Error::OutOfMemory);
                    };
                    mem.write(table, i, make_pte(new.addr(), TABLE_FLAGS));
                    if let Some((t, at)) = counter {
                        add_count(mem, t, at, 1);
                    }
                    new
                };
                counter = Some((table, i));
                table = next;
            }
            // `va`'s leaf table is spoken for now: if it was idle, nothing
            // may unlink it before the entry is set (the caller settles it
            // again if it ends up unused).
            if let Some(i) = self.idle.iter().position(|&b| b == base) {
                self.idle.remove(i);
            }
            // The walk went through three levels, so the leaf's counter is
            // set.
            return Ok((table, counter.unwrap_or((self.root, 0))));
        }
    }

    /// Sets the leaf entry for user page `va`. Setting a non-zero entry
    /// needs its tables (`prepare`); clearing one where no table exists
    /// does nothing. A table left empty is unlinked, and so on upwards.
    pub fn set(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        va: u64,
        pte: u64,
    ) {
        if va >= USER_END {
            return;
        }
        let idx = table_indices(va);
        let (path, depth) = self.path(mem, va);
        if depth < 4 {
            debug_assert!(pte == 0, "set without tables at {va:#x}");
            return;
        }
        let leaf_table = path[3];
        let old = mem.read(leaf_table, idx[3]);
        mem.write(leaf_table, idx[3], pte);
        let base = va & !(SPAN[1] - 1);
        if old == 0 && pte != 0 {
            if add_count(mem, path[2], idx[2], 1) == 1
                && let Some(i) = self.idle.iter().position(|&b| b == base)
            {
                self.idle.remove(i);
            }
        } else if old != 0 && pte == 0 {
            let left = add_count(mem, path[2], idx[2], -1);
            if left == 0 {
                self.make_idle(mem, frames, base);
            }
        }
    }

    /// The leaf table covering `base` (2 MiB-aligned) has just lost its
    /// last entry: it stays linked as an idle table, after room is made
    /// for it (the oldest idle table is unlinked, or a spare freed).
    fn make_idle(&mut self, mem: &mut impl TableMemory, frames: &mut impl TableFrames, base: u64) {
        if self.idle.len() + self.spare.len() >= SPARE_TABLES {
            if let Some(f) = self.spare.pop() {
                self.free_table(frames, f);
            } else if !self.idle.is_empty() {
                // The oldest idle table is unlinked, with the tables above
                // it if it was all they held; the budget is full, so they
                // are freed, not kept.
                let oldest = self.idle.remove(0);
                self.unlink_empty(mem, frames, oldest, false);
            }
        }
        // There is room now (the budget is at least one table).
        let _ = self.idle.try_push(base);
    }

    /// The leaf table covering `va` (if any) holds nothing although no
    /// entry was cleared (tables a failed call prepared and never used):
    /// it is treated as if its last entry had just gone, so it cannot be
    /// left behind uncounted.
    pub fn settle_empty(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        va: u64,
    ) {
        if va >= USER_END {
            return;
        }
        let idx = table_indices(va);
        let (path, depth) = self.path(mem, va);
        let base = va & !(SPAN[1] - 1);
        if depth == 4 && count_of(mem.read(path[2], idx[2])) == 0 && !self.idle.contains(&base) {
            self.make_idle(mem, frames, base);
        } else if depth < 4 {
            // Upper tables that lead nowhere.
            self.prune(mem, frames, va);
        }
    }

    /// Unlinks the empty tables on `va`'s path, lowest first.
    fn prune(&mut self, mem: &mut impl TableMemory, frames: &mut impl TableFrames, va: u64) {
        self.unlink_empty(mem, frames, va, true);
    }

    /// `prune`, keeping the tables it unlinks as spares (within the
    /// budget) or freeing them all (`keep` false: room is being made).
    fn unlink_empty(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        va: u64,
        keep: bool,
    ) {
        let idx = table_indices(va);
        // Unlinking a table changes only entries below the ones the path
        // was read from, so one walk serves every level.
        let (path, depth) = self.path(mem, va);
        for level in (1..4).rev() {
            if depth <= level {
                continue;
            }
            let parent = path[level - 1];
            let e = mem.read(parent, idx[level - 1]);
            if count_of(e) != 0 {
                return;
            }
            mem.write(parent, idx[level - 1], 0);
            if level == 3
                && let Some(i) = self.idle.iter().position(|&b| b == va & !(SPAN[1] - 1))
            {
                self.idle.remove(i);
            }
            if keep {
                self.drop_table(frames, path[level]);
            } else {
                self.free_table(frames, path[level]);
            }
            if level >= 2 {
                add_count(mem, path[level - 2], idx[level - 2], -1);
            }
        }
    }

    /// The lowest user page in `[va, end)` whose leaf entry is not zero;
    /// missing tables are skipped whole (2 MiB, 1 GiB, 512 GiB at a time),
    /// so a huge, mostly empty range costs little.
    pub fn next_entry(&self, mem: &impl TableMemory, va: u64, end: u64) -> Option<u64> {
        let end = end.min(USER_END);
        let mut at = va;
        'walk: while at < end {
            let idx = table_indices(at);
            let mut table = self.root;
            for level in 0..3 {
                let e = mem.read(table, idx[level]);
                if !is_table(e) || count_of(e) == 0 && level > 0 {
                    // No table below, or one with nothing in it (an idle
                    // leaf table): skip everything this entry covers.
                    at = (at | (SPAN[3 - level] - 1)).checked_add(1)?;
                    continue 'walk;
                }
                table = frame_of(e);
            }
            // Within the leaf table, the next used entry (up to `end`): the
            // page asked for first, the rest of the table if it is empty.
            let first = idx[3];
            if mem.read(table, first) != 0 {
                return Some(at);
            }
            let last = if end - (at - first as u64 * SPAN[0]) >= SPAN[1] {
                ENTRIES
            } else {
                ((end - (at - first as u64 * SPAN[0])).div_ceil(SPAN[0])) as usize
            };
            match next_used(mem.entries(table), first + 1, last) {
                Some(i) => return Some(at + (i - first) as u64 * SPAN[0]),
                None => at = (at | (SPAN[1] - 1)).checked_add(1)?,
            }
        }
        None
    }
}

mod whole;

#[cfg(test)]
pub(crate) mod tests;
