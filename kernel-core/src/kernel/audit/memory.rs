//! The memory invariants: the machine's frame references, summed, equal
//! the pages and tables every live process is charged for; each frame's
//! references equal the entries mapping it (a table frame belongs to one
//! tree, a private page to one entry, a copy-on-write page is never
//! writable, no page is wired or device memory); each process's usage
//! equals what its tree holds; the frames no tree links are exactly the
//! trees' spare tables.
//!
//! Rules: a tree is walked again only when its space or its write count
//! changed (`FakeSpace::version`), and only the frames whose references
//! or uses changed since the last check are compared, unless the check is
//! `full` (or the machine lost count of what changed): then the
//! bookkeeping is rebuilt from scratch and every frame compared.

use super::{Auditor, proc};
use crate::fake::Fake;
use crate::kernel::Kernel;
use crate::machine::{AddressSpace, Machine};
use crate::process::{Pid, pid_slot};
use crate::vm::Kind;

/// What one address space maps, as its walk found it.
pub(super) struct Walk {
    /// The space (`FakeSpace::version`) and the check that last found it.
    space: u64,
    writes: u64,
    seen: u64,
    tables: Vec<u64>,
    /// The frame of each page, and whether the page is private.
    pages: Vec<(u64, bool)>,
}

/// Per frame: the entries mapping it, the trees using it as a table, the
/// private entries mapping it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(super) struct Uses {
    mapped: u32,
    tables: u32,
    private: u32,
}

impl Auditor {
    fn uses_mut(&mut self, pfn: u64) -> &mut Uses {
        let i = pfn as usize;
        if i >= self.uses.len() {
            self.uses.resize(i + 1, Uses::default());
        }
        &mut self.uses[i]
    }

    /// Adds (or takes away) what `w` uses; `touched` gets its frames.
    fn count(&mut self, w: &Walk, add: bool, touched: &mut Vec<u64>) {
        let step = |n: &mut u32| {
            if add { *n += 1 } else { *n -= 1 }
        };
        for &t in &w.tables {
            let u = self.uses_mut(t);
            let before = *u != Uses::default();
            step(&mut u.tables);
            let after = *u != Uses::default();
            self.used = self.used + u64::from(after) - u64::from(before);
            touched.push(t);
        }
        for &(pfn, private) in &w.pages {
            let u = self.uses_mut(pfn);
            let before = *u != Uses::default();
            step(&mut u.mapped);
            if private {
                step(&mut u.private);
            }
            let after = *u != Uses::default();
            self.used = self.used + u64::from(after) - u64::from(before);
            touched.push(pfn);
        }
    }

    pub(super) fn memory(
        &mut self,
        k: &Kernel<Fake>,
        pids: &[Pid],
        full: bool,
    ) -> Result<(), String> {
        let charged: u64 = pids
            .iter()
            .filter_map(|&pid| proc(k, pid))
            .map(|p| p.usage.pages + p.usage.tables)
            .sum();
        let (refs, used, dirty) = crate::fake::with(|s| (s.total_refs(), s.used(), s.take_dirty()));
        // Too many changes to list: compare every frame.
        let full = full || dirty.is_none();
        let mut touched = dirty.unwrap_or_default();
        ensure!(
            refs == charged,
            "the machine holds {refs} frame references, the processes are charged for {charged}"
        );
        if full {
            self.walks.clear();
            self.uses.clear();
            self.used = 0;
            touched = crate::fake::with(|s| s.frame_refs().map(|(pfn, _)| pfn).collect());
        }
        let codec = Fake::codec();
        let mut spares = 0u64;
        self.checks += 1;
        let stamp = self.checks;
        for &pid in pids {
            let p = proc(k, pid).unwrap();
            let Some(space) = p.space.as_ref() else {
                continue;
            };
            let (id, writes) = space.version();
            let slot = pid_slot(pid);
            if slot >= self.walks.len() {
                self.walks.resize_with(slot + 1, || None);
            }
            let fresh = self.walks[slot]
                .as_ref()
                .is_some_and(|w| w.space == id && w.writes == writes);
            if !fresh {
                let mut tables = Vec::new();
                let mut leaves = Vec::new();
                space
                    .walk(full, &mut |t| tables.push(t), &mut |va, pte| {
                        leaves.push((va, pte))
                    })
                    .map_err(|e| format!("pid {pid}: {e}"))?;
                let mut pages = Vec::with_capacity(leaves.len());
                for (va, pte) in leaves {
                    let m = codec.decode(pte).ok_or_else(|| {
                        format!("pid {pid}: leaf {va:#x} = {pte:#x} decodes to nothing")
                    })?;
                    ensure!(
                        m.wires == 0 && m.kind != Kind::Io,
                        "pid {pid}: page {va:#x} is {:?} with {} wires",
                        m.kind,
                        m.wires
                    );
                    ensure!(
                        !(m.kind == Kind::Cow && m.prot.write),
                        "pid {pid}: copy-on-write page {va:#x} is writable"
                    );
                    pages.push((m.frame.pfn(), m.kind == Kind::Private));
                }
                let new = Walk {
                    space: id,
                    writes,
                    seen: stamp,
                    tables,
                    pages,
                };
                if let Some(old) = self.walks[slot].take() {
                    self.count(&old, false, &mut touched);
                }
                self.count(&new, true, &mut touched);
                self.walks[slot] = Some(new);
            }
            let w = self.walks[slot].as_mut().unwrap();
            w.seen = stamp;
            let held = space.table_frames();
            ensure!(
                held == p.usage.tables && w.tables.len() as u64 <= held,
                "pid {pid}: charged for {} tables, holds {held}, links {}",
                p.usage.tables,
                w.tables.len()
            );
            ensure!(
                w.pages.len() as u64 == p.usage.pages,
                "pid {pid}: charged for {} pages, maps {}",
                p.usage.pages,
                w.pages.len()
            );
            spares += held - w.tables.len() as u64;
        }
        // Spaces that went (exit, exec, a failed fork, a reaped process).
        for i in 0..self.walks.len() {
            if self.walks[i].as_ref().is_some_and(|w| w.seen != stamp) {
                let old = self.walks[i].take().unwrap();
                self.count(&old, false, &mut touched);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        crate::fake::with(|s| {
            for &pfn in &touched {
                let refs = s.refs_of(pfn);
                let u = self.uses.get(pfn as usize).copied().unwrap_or_default();
                if u.tables > 0 {
                    ensure!(
                        u.tables == 1 && u.mapped == 0 && refs == 1,
                        "frame {pfn:#x}: a table of {} trees, mapped {} times, {refs} references",
                        u.tables,
                        u.mapped
                    );
                } else if u.mapped > 0 {
                    ensure!(
                        refs == u.mapped,
                        "frame {pfn:#x} has {refs} references, {} entries map it",
                        u.mapped
                    );
                    ensure!(
                        u.private == 0 || u.mapped == 1,
                        "frame {pfn:#x} is mapped privately but by {} entries",
                        u.mapped
                    );
                } else {
                    ensure!(
                        refs <= 1,
                        "frame {pfn:#x} is mapped by no one and has {refs} references"
                    );
                }
            }
            Ok(())
        })?;
        ensure!(
            used >= self.used && used - self.used == spares,
            "{used} frames are in use, {} of them in trees, and the trees keep {spares} spare tables",
            self.used
        );
        Ok(())
    }
}
