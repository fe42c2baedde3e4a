//! The page-state machine over the real four-level tree
//! (`crate::pagetable::PageTree`) against the same operations over the
//! map-based fake table: every result and every mapping must agree, and
//! the tree must hold exactly the tables its mappings need (plus its few
//! spares), with every table frame accounted for.

use super::tests::{CODEC, FakeFrames, FakePt, P, RW};
use super::*;
use crate::pagetable::PageTree;
use crate::pagetable::tests::Mem;
use crate::testrng::Rng;
use std::collections::HashSet;

/// A PageTree and its memory as `PageTableOps`.
struct TreePt {
    tree: PageTree,
    mem: Mem,
}

impl PageTableOps for TreePt {
    fn entry(&mut self, va: u64) -> u64 {
        self.tree.entry(&self.mem, va)
    }
    fn prepare(&mut self, frames: &mut impl TableFrames, va: u64) -> Result<(), Error> {
        self.tree.prepare(&mut self.mem, frames, va)
    }
    fn set(&mut self, frames: &mut impl TableFrames, va: u64, pte: u64) {
        self.tree.set(&mut self.mem, frames, va, pte)
    }
    fn flush(&mut self, _va: u64) {}
    fn next_entry(&mut self, va: u64, end: u64) -> Option<u64> {
        self.tree.next_entry(&self.mem, va, end)
    }
    fn set_new(&mut self, frames: &mut impl TableFrames, va: u64, pte: u64) -> Result<(), Error> {
        self.tree.set_new(&mut self.mem, frames, va, pte)
    }
    fn settle_empty(&mut self, frames: &mut impl TableFrames, va: u64) {
        self.tree.settle_empty(&mut self.mem, frames, va)
    }
}

/// Table frames from a FakeFrames table, counted.
struct TableSource<'a> {
    frames: &'a mut FakeFrames,
    live: HashSet<u64>,
}

impl TableFrames for TableSource<'_> {
    fn alloc_table(&mut self) -> Option<Frame> {
        let f = self.frames.alloc_zeroed()?;
        self.live.insert(f.pfn());
        Some(f)
    }
    fn free_table(&mut self, frame: Frame) {
        assert!(self.live.remove(&frame.pfn()), "a table freed twice");
        self.frames.release(frame);
    }
}

impl FrameOps for TableSource<'_> {
    fn alloc_zeroed(&mut self) -> Option<Frame> {
        self.frames.alloc_zeroed()
    }
    fn copy(&mut self, dst: Frame, src: Frame) {
        self.frames.copy(dst, src)
    }
    fn add_ref(&mut self, frame: Frame) {
        self.frames.add_ref(frame)
    }
    fn release(&mut self, frame: Frame) -> bool {
        self.frames.release(frame)
    }
    fn refcount(&self, frame: Frame) -> u32 {
        self.frames.refcount(frame)
    }
}

/// Pages around table boundaries (2 MiB, 1 GiB, 512 GiB), more regions
/// than the tree keeps idle or spare tables, so ranges span two leaf
/// tables and idle tables are pushed out while calls are under way.
const REGIONS: [u64; 7] = [
    0x40_0000,
    0x40_0000 + (2 << 20),
    0x1_0000_0000,
    0x8000_0000,
    0x7f00_0000_0000,
    0x80_0000_0000,
    0x1234_0020_0000,
];

/// A random page within four pages of a random region's boundary.
fn page(rng: &mut Rng) -> u64 {
    REGIONS[rng.below(REGIONS.len() as u64) as usize] - 4 * P + rng.below(8) * P
}

#[test]
fn the_tree_and_the_fake_table_agree_on_every_operation() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let mut fake_frames = FakeFrames::new(4096);
    let mut fake = FakePt::default();
    let mut tree_frames = FakeFrames::new(4096);
    let root = tree_frames.alloc_zeroed().unwrap();
    let mut tree = TreePt {
        tree: PageTree::new(root),
        mem: Mem::default(),
    };
    let mut source = TableSource {
        frames: &mut tree_frames,
        live: HashSet::new(),
    };
    for step in 0..20_000u64 {
        let va = page(&mut rng);
        let len = (1 + rng.below(3)) * P;
        let op = rng.below(6);
        let prot = [RW, abi::vm::PROT_READ][rng.below(2) as usize];
        let other = page(&mut rng);
        let run = |vm: &mut dyn FnMut(u64) -> Result<(), Error>| vm(op);
        let a = {
            let mut v = Vm {
                pt: &mut fake,
                frames: &mut fake_frames,
                codec: CODEC,
            };
            run(&mut |op| match op {
                0 | 1 => v.map_new(va, len, prot),
                2 => v.unmap(va, len),
                3 => v.protect(va, len, prot),
                4 => v.move_pages(other, va, len),
                _ => v.wire(va, true).map(|_| ()).and_then(|()| v.unwire(va)),
            })
        };
        let b = {
            let mut v = Vm {
                pt: &mut tree,
                frames: &mut source,
                codec: CODEC,
            };
            run(&mut |op| match op {
                0 | 1 => v.map_new(va, len, prot),
                2 => v.unmap(va, len),
                3 => v.protect(va, len, prot),
                4 => v.move_pages(other, va, len),
                _ => v.wire(va, true).map(|_| ()).and_then(|()| v.unwire(va)),
            })
        };
        assert_eq!(a, b, "step {step}: op {op} at {va:#x}");
        // Same mappings (frames differ: compare the decoded states).
        let mut mapped = 0;
        for &r in &REGIONS {
            for k in 0..11 {
                let v = r - 4 * P + k * P;
                let fa = CODEC
                    .decode(fake.entry(v))
                    .map(|m| (m.kind, m.prot, m.wires));
                let fb = CODEC
                    .decode(tree.entry(v))
                    .map(|m| (m.kind, m.prot, m.wires));
                assert_eq!(fa, fb, "step {step}: page {v:#x}");
                mapped += fb.is_some() as usize;
            }
        }
        // Pages held: the same on both sides (tables aside).
        assert_eq!(
            fake_frames.free(),
            source.frames.free() + source.live.len() + 1,
            "step {step}: the tree's pages and tables are all accounted for"
        );
        let _ = mapped;
    }
    // Unmapping everything leaves the root and at most the spares and idle
    // leaf tables (each with the two tables above it).
    for &r in &REGIONS {
        let mut v = Vm {
            pt: &mut tree,
            frames: &mut source,
            codec: CODEC,
        };
        v.unmap(r - 4 * P, 11 * P).unwrap();
    }
    assert!(tree.tree.spare_tables() <= crate::pagetable::SPARE_TABLES as u64);
    assert!(source.live.len() <= 3 * crate::pagetable::SPARE_TABLES);
}

/// A move whose destination spans an idle leaf table and a missing one,
/// with the idle and spare budget full: making the missing table must not
/// unlink the idle one the move is about to write (a review found it did,
/// losing the moved pages and leaking their frames).
#[test]
fn a_move_into_an_idle_table_and_a_missing_one_keeps_both() {
    let mut tree_frames = FakeFrames::new(4096);
    let root = tree_frames.alloc_zeroed().unwrap();
    let mut tree = TreePt {
        tree: PageTree::new(root),
        mem: Mem::default(),
    };
    let mut source = TableSource {
        frames: &mut tree_frames,
        live: HashSet::new(),
    };
    let mut v = Vm {
        pt: &mut tree,
        frames: &mut source,
        codec: CODEC,
    };
    let src = 0x7f00_0000_0000;
    v.map_new(src, 2 * P, RW).unwrap();
    // Four idle leaf tables, the one the move writes first the oldest.
    let r1 = 0x40_0000;
    for region in [r1, 0x4000_0000, 0x8000_0000, 0xc000_0000] {
        v.map_new(region + (2 << 20) - P, P, RW).unwrap();
        v.unmap(region + (2 << 20) - P, P).unwrap();
    }
    // The last page of r1's table and the first of the next (no table).
    let dst = r1 + (2 << 20) - P;
    v.move_pages(dst, src, 2 * P).unwrap();
    assert!(v.mapping(dst).is_some() && v.mapping(dst + P).is_some());
    assert!(v.mapping(src).is_none() && v.mapping(src + P).is_none());
    v.unmap(dst, 2 * P).unwrap();
    assert!(tree.tree.spare_tables() <= crate::pagetable::SPARE_TABLES as u64);
}
