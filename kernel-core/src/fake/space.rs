//! The fake machine's address spaces: the real `PageTree` over page
//! tables kept per space in a map (pfn → entries), fork's view of a
//! parent's and a child's tables together, and a walk of a tree's user
//! half that checks its structure (for the auditor and the tests).
//!
//! Rules: a space's tables live in its own map, never in frame memory, so
//! two spaces never share a table; a space's `version` (its id and the
//! entries written) changes whenever anything it maps may have.

use super::with;
use crate::frame::Frame;
use crate::machine::AddressSpace;
use crate::pagetable::{ENTRIES, PageTree, TableFrames, TableMemory, USER_ROOT_SLOTS};
use crate::vm::PageTableOps;
use std::collections::HashMap;

/// Hashes a pfn with one multiplication: the tables' maps are looked up on
/// every entry read and written, and SipHash would cost more than the rest.
#[derive(Default)]
pub struct PfnHasher(u64);

impl std::hash::Hasher for PfnHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type PfnMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<PfnHasher>>;

/// The page tables of one fake address space: pfn → entries.
#[derive(Default)]
pub struct TablesOf {
    tables: PfnMap<Box<[u64; ENTRIES]>>,
    /// Entries written so far.
    writes: u64,
}

impl TableMemory for TablesOf {
    fn read(&self, table: Frame, index: usize) -> u64 {
        self.tables.get(&table.pfn()).map_or(0, |t| t[index])
    }

    fn write(&mut self, table: Frame, index: usize, value: u64) {
        self.writes += 1;
        self.tables
            .entry(table.pfn())
            .or_insert_with(|| Box::new([0; ENTRIES]))[index] = value;
    }

    fn entries(&self, table: Frame) -> &[u64; ENTRIES] {
        static EMPTY: [u64; ENTRIES] = [0; ENTRIES];
        self.tables.get(&table.pfn()).map_or(&EMPTY, |t| t)
    }
}

/// A fake address space: the real `PageTree` over per-space tables.
pub struct FakeSpace {
    pub(super) tree: PageTree,
    pub(super) mem: TablesOf,
    /// Which space this is (unique on this thread).
    pub(super) id: u64,
}

impl PageTableOps for FakeSpace {
    fn entry(&mut self, va: u64) -> u64 {
        self.tree.entry(&self.mem, va)
    }

    fn prepare(&mut self, frames: &mut impl TableFrames, va: u64) -> Result<(), abi::Error> {
        self.tree.prepare(&mut self.mem, frames, va)
    }

    fn set(&mut self, frames: &mut impl TableFrames, va: u64, pte: u64) {
        self.tree.set(&mut self.mem, frames, va, pte)
    }

    fn flush(&mut self, _va: u64) {}

    fn next_entry(&mut self, va: u64, end: u64) -> Option<u64> {
        self.tree.next_entry(&self.mem, va, end)
    }

    fn set_new(
        &mut self,
        frames: &mut impl TableFrames,
        va: u64,
        pte: u64,
    ) -> Result<(), abi::Error> {
        self.tree.set_new(&mut self.mem, frames, va, pte)
    }

    fn settle_empty(&mut self, frames: &mut impl TableFrames, va: u64) {
        self.tree.settle_empty(&mut self.mem, frames, va)
    }
}

/// What `FakeSpace::walk` found wrong in a tree's structure.
pub type WalkError = String;

impl FakeSpace {
    /// The root table's pfn.
    pub fn root_pfn(&self) -> u64 {
        self.tree.root().pfn()
    }

    /// Which space this is and how many entries its tables have had
    /// written: while both stay the same, so does everything it maps.
    pub fn version(&self) -> (u64, u64) {
        (self.id, self.mem.writes)
    }

    /// Walks the user half from the root: `table` gets every table frame
    /// linked in the tree (root included, spares not: they are unlinked),
    /// `leaf` every non-zero leaf entry with its page address. Checks on the
    /// way that a non-leaf entry is a table or 0 and, if `exhaustive`, that
    /// each table's count (kept in its parent entry) is the number of its
    /// non-zero entries; otherwise the walk of a table stops at its count.
    pub fn walk(
        &self,
        exhaustive: bool,
        table: &mut dyn FnMut(u64),
        leaf: &mut dyn FnMut(u64, u64),
    ) -> Result<(), WalkError> {
        use crate::paging::PTE_ADDR_MASK;
        const SPAN: [u64; 4] = [1 << 39, 1 << 30, 1 << 21, 1 << 12];
        const COUNT_SHIFT: u32 = 52;
        const COUNT_MASK: u64 = 0x3ff << COUNT_SHIFT;
        #[allow(clippy::too_many_arguments)]
        fn level(
            mem: &TablesOf,
            exhaustive: bool,
            pfn: u64,
            depth: usize,
            base: u64,
            count: Option<u64>,
            table: &mut dyn FnMut(u64),
            leaf: &mut dyn FnMut(u64, u64),
        ) -> Result<(), WalkError> {
            table(pfn);
            let n = if depth == 0 { USER_ROOT_SLOTS } else { ENTRIES };
            let mut used = 0u64;
            if let Some(t) = mem.tables.get(&pfn) {
                let mut i = 0;
                while i < n {
                    if !exhaustive && count == Some(used) {
                        break;
                    }
                    // Eight empty entries at a time (this runs in debug
                    // builds, often).
                    if i % 8 == 0 {
                        let c = &t[i..i + 8];
                        if c[0] | c[1] | c[2] | c[3] | c[4] | c[5] | c[6] | c[7] == 0 {
                            i += 8;
                            continue;
                        }
                    }
                    let e = t[i];
                    i += 1;
                    if e == 0 {
                        continue;
                    }
                    used += 1;
                    let va = base + (i as u64 - 1) * SPAN[depth];
                    if depth == 3 {
                        leaf(va, e);
                    } else if e & 1 != 0 && e & (1 << 7) == 0 {
                        let below = (e & COUNT_MASK) >> COUNT_SHIFT;
                        let child = (e & PTE_ADDR_MASK) >> 12;
                        level(
                            mem,
                            exhaustive,
                            child,
                            depth + 1,
                            va,
                            Some(below),
                            table,
                            leaf,
                        )?;
                    } else {
                        return Err(format!(
                            "table {pfn:#x} entry {} (level {depth}) is neither a table nor 0: {e:#x}",
                            i - 1
                        ));
                    }
                }
            }
            match count {
                Some(c) if c != used => Err(format!(
                    "table {pfn:#x} (level {depth}) counts {c} entries in its parent, holds {used}"
                )),
                _ => Ok(()),
            }
        }
        level(
            &self.mem,
            exhaustive,
            self.root_pfn(),
            0,
            0,
            None,
            table,
            leaf,
        )
    }
}

impl AddressSpace for FakeSpace {
    fn lookup(&self, va: u64) -> Option<u64> {
        let e = self.tree.entry(&self.mem, va);
        (e & 1 != 0).then_some(e)
    }

    fn fork_into(
        &mut self,
        child: &mut FakeSpace,
        child_frames: &mut impl TableFrames,
        f: &mut dyn FnMut(u64) -> Result<(u64, u64), abi::Error>,
    ) -> Result<(), abi::Error> {
        // The two spaces' tables are apart (each has its own map); copy
        // the parent's into the child's map as the tree walks.
        let mut both = Both {
            parent: &mut self.mem,
            child: &mut child.mem,
        };
        self.tree
            .fork_into(&mut both, &mut child.tree, child_frames, f)
    }

    fn destroy(mut self, frames: &mut impl TableFrames, mut leaf: impl FnMut(u64)) {
        self.tree.destroy(&mut self.mem, frames, &mut leaf)
    }

    fn table_frames(&self) -> u64 {
        self.tree.table_frames()
    }

    fn spare_tables(&self) -> u64 {
        self.tree.empty_tables(&self.mem)
    }

    fn is_active(&self) -> bool {
        with(|s| s.active_root == Some(self.tree.root().addr()))
    }

    fn activate(&self) {
        let root = self.tree.root().addr();
        with(|s| s.active_root = Some(root))
    }
}

/// Fork's view of two spaces' tables: a table is the parent's if the
/// parent's map has it, else the child's (the child's tables are new
/// frames, never in the parent's map).
struct Both<'a> {
    parent: &'a mut TablesOf,
    child: &'a mut TablesOf,
}

impl TableMemory for Both<'_> {
    fn read(&self, table: Frame, index: usize) -> u64 {
        if self.parent.tables.contains_key(&table.pfn()) {
            self.parent.read(table, index)
        } else {
            self.child.read(table, index)
        }
    }

    fn write(&mut self, table: Frame, index: usize, value: u64) {
        if self.parent.tables.contains_key(&table.pfn()) {
            self.parent.write(table, index, value)
        } else {
            self.child.write(table, index, value)
        }
    }

    fn entries(&self, table: Frame) -> &[u64; ENTRIES] {
        if self.parent.tables.contains_key(&table.pfn()) {
            self.parent.entries(table)
        } else {
            self.child.entries(table)
        }
    }
}
