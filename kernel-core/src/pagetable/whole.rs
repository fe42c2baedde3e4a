//! Whole trees at once: fork copies one tree into another, destroy gives
//! every table back. Each walks only the tables that exist and, in each,
//! only the entries its count says are used.
//!
//! Rules: the same as the tree's; a fork that fails half way leaves both
//! trees consistent (the parent's leaves already turned stay valid, the
//! child is partial and its caller destroys it); destroy accounts for
//! every table frame it frees.

use super::*;

impl PageTree {
    /// Fork: copies the user half into `child` (an empty tree), turning
    /// each non-zero leaf of this tree with `f` into (new leaf here, leaf
    /// for the child or 0). The child's tables come from `child_frames`.
    /// On error the leaves already turned stay valid here and the child is
    /// partial: the caller destroys it.
    pub fn fork_into(
        &mut self,
        mem: &mut impl TableMemory,
        child: &mut PageTree,
        child_frames: &mut impl TableFrames,
        f: &mut dyn FnMut(u64) -> Result<(u64, u64), Error>,
    ) -> Result<(), Error> {
        let (parent_root, child_root) = (self.root, child.root);
        child
            .copy_level(
                mem,
                child_frames,
                Scan::new(parent_root, 3, u64::MAX),
                child_root,
                f,
            )
            .map(|_| ())
    }

    /// Copies the table `scan` walks into `child`; returns how many
    /// non-zero entries the child's table got.
    fn copy_level(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        mut scan: Scan,
        child: Frame,
        f: &mut dyn FnMut(u64) -> Result<(u64, u64), Error>,
    ) -> Result<u64, Error> {
        let (parent, level) = (scan.table, scan.level);
        let mut made = 0;
        while let Some((i, p_entry)) = scan.next(mem) {
            if level == 0 {
                let (new_parent, child_leaf) = f(p_entry)?;
                if new_parent != p_entry {
                    mem.write(parent, i, new_parent);
                }
                if child_leaf != 0 {
                    mem.write(child, i, child_leaf);
                    made += 1;
                }
                continue;
            }
            if !is_table(p_entry) {
                continue;
            }
            let c_entry = mem.read(child, i);
            let c_table = if is_table(c_entry) {
                frame_of(c_entry)
            } else {
                let t = self.take_table(frames).ok_or(Error::OutOfMemory)?;
                mem.write(child, i, make_pte(t.addr(), TABLE_FLAGS));
                t
            };
            let below_scan = Scan::new(frame_of(p_entry), level - 1, count_of(p_entry));
            let below = self.copy_level(mem, frames, below_scan, c_table, f);
            // Record what was made even on error, so teardown is exact.
            let n = match &below {
                Ok(n) => *n,
                Err(_) => (0..ENTRIES).filter(|&j| mem.read(c_table, j) != 0).count() as u64,
            };
            if n == 0 {
                // Nothing inherited below (device memory only): no table.
                mem.write(child, i, 0);
                self.drop_table(frames, c_table);
            } else {
                let e = mem.read(child, i);
                mem.write(child, i, with_count(e, n));
                made += 1;
            }
            below?;
        }
        Ok(made)
    }

    /// Releases the whole user half: `leaf` gets every non-zero leaf entry
    /// (to release what it maps), then every table, the spares and the
    /// root go back through `frames`.
    pub fn destroy(
        mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        leaf: &mut dyn FnMut(u64),
    ) {
        fn walk(
            mem: &mut impl TableMemory,
            frames: &mut impl TableFrames,
            table: Frame,
            level: usize,
            count: u64,
            leaf: &mut dyn FnMut(u64),
            freed: &mut u64,
        ) {
            let mut scan = Scan::new(table, level, count);
            while let Some((i, e)) = scan.next(mem) {
                if level == 0 {
                    leaf(e);
                } else if is_table(e) {
                    walk(
                        mem,
                        frames,
                        frame_of(e),
                        level - 1,
                        count_of(e),
                        leaf,
                        freed,
                    );
                    mem.write(table, i, 0);
                    frames.free_table(frame_of(e));
                    *freed += 1;
                }
            }
        }
        let mut freed = 0;
        walk(mem, frames, self.root, 3, u64::MAX, leaf, &mut freed);
        for f in self.spare.drain(..) {
            frames.free_table(f);
            freed += 1;
        }
        frames.free_table(self.root);
        freed += 1;
        debug_assert_eq!(freed, self.tables, "every table frame accounted for");
    }
}
