use super::*;
use crate::testrng::Rng;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Table frames as a map of pfn → entries (a frame never written reads
/// as zeros, as a fresh table frame would).
#[derive(Default)]
pub(crate) struct Mem {
    tables: HashMap<u64, Box<[u64; ENTRIES]>>,
}

impl TableMemory for Mem {
    fn read(&self, table: Frame, index: usize) -> u64 {
        self.tables.get(&table.pfn()).map_or(0, |t| t[index])
    }
    fn write(&mut self, table: Frame, index: usize, value: u64) {
        self.tables
            .entry(table.pfn())
            .or_insert_with(|| Box::new([0; ENTRIES]))[index] = value;
    }
    fn entries(&self, table: Frame) -> &[u64; ENTRIES] {
        static EMPTY: [u64; ENTRIES] = [0; ENTRIES];
        self.tables.get(&table.pfn()).map_or(&EMPTY, |t| t)
    }
}

impl Mem {
    /// Whether every user entry of the table in `pfn` is zero.
    fn empty(&self, pfn: u64) -> bool {
        self.tables.get(&pfn).is_none_or(|t| {
            t[..USER_ROOT_SLOTS].iter().all(|&e| e == 0) && t.iter().all(|&e| e == 0)
        })
    }
}

/// Hands out table frames (never the same pfn twice) up to `limit` live.
struct Frames {
    next: u64,
    live: HashSet<u64>,
    freed: Vec<u64>,
    limit: usize,
}

impl TableFrames for Frames {
    fn alloc_table(&mut self) -> Option<Frame> {
        if self.live.len() >= self.limit {
            return None;
        }
        self.next += 1;
        self.live.insert(self.next);
        Some(Frame::from_pfn(self.next))
    }
    fn free_table(&mut self, frame: Frame) {
        assert!(self.live.remove(&frame.pfn()), "double free of a table");
        self.freed.push(frame.pfn());
    }
}

/// A tree, its memory and its frame source (the root is one frame).
fn tree(limit: usize) -> (PageTree, Mem, Frames) {
    let mut f = Frames {
        next: 100,
        live: HashSet::new(),
        freed: Vec::new(),
        limit,
    };
    let root = f.alloc_table().unwrap();
    (PageTree::new(root), Mem::default(), f)
}

/// Every table freed so far held nothing when it went (roots aside).
fn freed_tables_were_empty(mem: &Mem, f: &Frames, roots: &[Frame]) {
    for &pfn in &f.freed {
        if roots.iter().any(|r| r.pfn() == pfn) {
            continue;
        }
        assert!(mem.empty(pfn), "table {pfn} freed with entries in it");
    }
}

const PAGE: u64 = 4096;
const VA: u64 = 0x40_0000;

#[test]
fn set_and_entry_round_trip_and_kernel_addresses_read_zero() {
    let (mut t, mut mem, mut f) = tree(100);
    {
        let (mem, f) = (&mut mem, &mut f);
        t.prepare(mem, f, VA).unwrap();
        t.set(mem, f, VA, 0x1234_5007);
        assert_eq!(t.entry(mem, VA), 0x1234_5007);
        assert_eq!(t.entry(mem, VA + PAGE), 0);
        assert_eq!(t.table_frames(), 4);
        assert_eq!(t.entry(mem, 0xffff_8000_0000_0000), 0);
        assert_eq!(t.entry(mem, 1 << 47), 0);
        assert_eq!(t.prepare(mem, f, 1 << 47), Err(Error::BadAddress));
    }
}

#[test]
fn clearing_the_last_entry_leaves_the_table_idle_until_others_push_it_out() {
    let (mut t, mut mem, mut f) = tree(100);
    {
        let (mem, f) = (&mut mem, &mut f);
        t.prepare(mem, f, VA).unwrap();
        t.set(mem, f, VA, 0x1000_0007);
        t.prepare(mem, f, VA + PAGE).unwrap();
        t.set(mem, f, VA + PAGE, 0x2000_0007);
        t.set(mem, f, VA, 0);
        assert_eq!(t.entry(mem, VA + PAGE), 0x2000_0007, "the neighbour stays");
        assert_eq!(t.table_frames(), 4);
        t.set(mem, f, VA + PAGE, 0);
        // The leaf table stays linked, idle: mapping there again needs no
        // table work.
        assert_eq!(t.next_entry(mem, 0, USER_END), None);
        assert_ne!(mem.read(t.root(), 0), 0);
        assert_eq!((t.table_frames(), t.spare_tables()), (4, 1));
        let before = f.live.len();
        t.prepare(mem, f, VA).unwrap();
        t.set(mem, f, VA, 0x3000_0007);
        assert_eq!(
            (f.live.len(), t.spare_tables()),
            (before, 0),
            "reused as it was"
        );
        t.set(mem, f, VA, 0);
        // Four more idle tables elsewhere push the oldest out: unlinked,
        // with the tables above it, which wait as spares or are freed.
        for k in 1..=SPARE_TABLES as u64 {
            let va = VA + k * (1 << 30);
            t.prepare(mem, f, va).unwrap();
            t.set(mem, f, va, 0x4000_0007);
            t.set(mem, f, va, 0);
            assert!(t.spare_tables() <= SPARE_TABLES as u64);
        }
        assert_eq!(t.entry(mem, VA), 0);
        let e = mem.read(frame_of(mem.read(t.root(), 0)), 0);
        assert_eq!(e, 0, "the first idle table's directory entry is gone");
        check_counts(mem, t.root(), 3);
    }
}

#[test]
fn a_prepared_table_left_unused_is_settled() {
    let (mut t, mut mem, mut f) = tree(100);
    {
        let (mem, f) = (&mut mem, &mut f);
        for k in 0..10u64 {
            let va = VA + k * (1 << 30);
            t.prepare(mem, f, va).unwrap();
            t.settle_empty(mem, f, va);
            assert!(t.spare_tables() <= SPARE_TABLES as u64);
            assert!(t.table_frames() <= 1 + 3 * (SPARE_TABLES as u64 + 1));
        }
        check_counts(mem, t.root(), 3);
        assert_eq!(t.next_entry(mem, 0, USER_END), None);
    }
}

#[test]
fn sparse_maps_and_unmaps_hold_a_bounded_number_of_tables() {
    // The attack: map one page and unmap it, at 2 MiB strides, many times.
    let (mut t, mut mem, mut f) = tree(10_000);
    {
        let (mem, f) = (&mut mem, &mut f);
        for i in 0..5_000u64 {
            let va = VA + i * (2 << 20) + (i % 7) * (1 << 39) % (1 << 46);
            t.prepare(mem, f, va).unwrap();
            t.set(mem, f, va, 0x5000_0007);
            t.set(mem, f, va, 0);
            // An idle leaf table keeps the tables above it.
            assert!(t.table_frames() <= 1 + 3 + 3 * SPARE_TABLES as u64);
            assert!(t.spare_tables() <= SPARE_TABLES as u64);
        }
        assert!(f.live.len() <= 1 + 3 + 3 * SPARE_TABLES);
        freed_tables_were_empty(mem, f, &[]);
    }
}

#[test]
fn a_failed_prepare_leaves_no_tables_behind() {
    // Root plus one more table may be had: the second of three fails.
    let (mut t, mut mem, mut f) = tree(2);
    {
        let (mem, f) = (&mut mem, &mut f);
        assert_eq!(t.prepare(mem, f, VA), Err(Error::OutOfMemory));
        assert_eq!(mem.read(t.root(), 0), 0);
        assert_eq!(t.next_entry(mem, 0, USER_END), None);
    }
    // A huge range of failed preparations: still nothing left linked.
    let (mut t, mut mem, mut f) = tree(3);
    {
        let (mem, f) = (&mut mem, &mut f);
        for i in 0..127u64 {
            let _ = t.prepare(mem, f, i << 39);
        }
        for i in 0..USER_ROOT_SLOTS {
            assert_eq!(mem.read(t.root(), i), 0, "root slot {i}");
        }
    }
}

#[test]
fn next_entry_skips_missing_tables() {
    let (mut t, mut mem, mut f) = tree(100);
    {
        let (mem, f) = (&mut mem, &mut f);
        let far = 0x7f00_0000_0000;
        t.prepare(mem, f, far).unwrap();
        t.set(mem, f, far, 0x9000_0007);
        assert_eq!(t.next_entry(mem, 0x1000, USER_END), Some(far));
        assert_eq!(t.next_entry(mem, far + PAGE, USER_END), None);
        assert_eq!(t.next_entry(mem, 0, far), None);
    }
}

#[test]
fn fork_copies_counts_and_destroy_returns_every_frame() {
    let (mut parent, mut mem, mut f) = tree(1000);
    {
        let (mem, f) = (&mut mem, &mut f);
        for i in 0..700u64 {
            let va = VA + i * PAGE * 3;
            parent.prepare(mem, f, va).unwrap();
            // Odd pages stand for device memory, which fork does not copy.
            parent.set(mem, f, va, (0x1000 * (i + 1)) | 7 | ((i & 1) << 11));
        }
        let child_root = f.alloc_table().unwrap();
        let mut child = PageTree::new(child_root);
        parent
            .fork_into(mem, &mut child, f, &mut |pte| {
                let io = pte & (1 << 11) != 0;
                Ok((pte & !2, if io { 0 } else { pte & !2 }))
            })
            .unwrap();
        for i in 0..700u64 {
            let va = VA + i * PAGE * 3;
            assert_eq!(parent.entry(mem, va) & 2, 0, "parent made read-only");
            let expect = if i & 1 == 1 { 0 } else { parent.entry(mem, va) };
            assert_eq!(child.entry(mem, va), expect);
        }
        // The child's counts are exact: clearing its leaves frees its tables.
        for i in (0..700u64).step_by(2) {
            child.set(mem, f, VA + i * PAGE * 3, 0);
        }
        assert_eq!(child.next_entry(mem, 0, USER_END), None);
        freed_tables_were_empty(mem, f, &[]);
        let before = f.live.len();
        let child_tables = child.table_frames() as usize;
        child.destroy(mem, f, &mut |_| panic!("no leaf left"));
        assert_eq!(f.live.len(), before - child_tables);
        let mut leaves = 0;
        let parent_tables = parent.table_frames() as usize;
        parent.destroy(mem, f, &mut |_| leaves += 1);
        assert_eq!(leaves, 700);
        assert_eq!(f.live.len(), before - child_tables - parent_tables);
        assert!(f.live.is_empty());
    }
}

#[test]
fn a_fork_that_runs_out_leaves_a_child_that_destroys_cleanly() {
    let (mut parent, mut mem, mut f) = tree(1000);
    {
        let (mem, f) = (&mut mem, &mut f);
        for i in 0..40u64 {
            let va = VA + i * (2 << 20);
            parent.prepare(mem, f, va).unwrap();
            parent.set(mem, f, va, (0x1000 * (i + 1)) | 7);
        }
        let child_root = f.alloc_table().unwrap();
        let mut child = PageTree::new(child_root);
        f.limit = f.live.len() + 10;
        let r = parent.fork_into(mem, &mut child, f, &mut |pte| Ok((pte, pte)));
        assert_eq!(r, Err(Error::OutOfMemory));
        f.limit = 10_000;
        let before = f.live.len();
        let n = child.table_frames() as usize;
        child.destroy(mem, f, &mut |_| {});
        assert_eq!(f.live.len(), before - n);
    }
}

/// Random sets and clears over a few regions: entries match a model, and
/// the tables linked are exactly those that hold something.
#[test]
fn model() {
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    let (mut t, mut mem, mut f) = tree(100_000);
    let regions = [
        VA,
        VA + (2 << 20),
        VA + (1 << 30),
        0x7f00_0000_0000,
        1 << 39,
    ];
    let mut model: BTreeMap<u64, u64> = BTreeMap::new();
    {
        let (mem, f) = (&mut mem, &mut f);
        for step in 0..30_000u64 {
            let va = regions[rng.below(regions.len() as u64) as usize] + rng.below(8) * PAGE;
            if rng.below(2) == 0 {
                let pte = (step + 1) << 12 | 5;
                t.prepare(mem, f, va).unwrap();
                t.set(mem, f, va, pte);
                model.insert(va, pte);
            } else {
                t.set(mem, f, va, 0);
                model.remove(&va);
            }
            for &r in &regions {
                for k in 0..8 {
                    let v = r + k * PAGE;
                    assert_eq!(t.entry(mem, v), model.get(&v).copied().unwrap_or(0));
                }
            }
            // Needed: one leaf table per 2 MiB, one directory per 1 GiB,
            // one pointer table per 512 GiB with something in it.
            // Idle leaf tables count as needing their tables too.
            let used: Vec<u64> = model
                .keys()
                .copied()
                .chain(t.idle.iter().copied())
                .collect();
            let need = |span: u64| used.iter().map(|v| v / span).collect::<HashSet<_>>().len();
            let linked = need(2 << 20) + need(1 << 30) + need(1 << 39);
            assert_eq!(
                t.table_frames() as usize,
                1 + linked + t.spare.len(),
                "step {step}"
            );
            assert!(t.idle.len() + t.spare.len() <= SPARE_TABLES);
            // Every table either maps something or is counted as empty.
            let live = |span: u64| model.keys().map(|v| v / span).collect::<HashSet<_>>().len();
            let mapping = live(2 << 20) + live(1 << 30) + live(1 << 39);
            assert_eq!(
                t.table_frames(),
                1 + mapping as u64 + t.empty_tables(mem),
                "step {step}: empty tables counted"
            );
            assert!(t.empty_tables(mem) <= 3 * SPARE_TABLES as u64);
            for &base in &t.idle {
                assert!(!model.keys().any(|v| v / (2 << 20) == base / (2 << 20)));
            }
            if step % 500 == 0 {
                check_counts(mem, t.root(), 3);
            }
        }
        // The walks that trust the counts (fork's copy, teardown) find
        // every leaf, wherever it sits in its table.
        let mut child_frames = Frames {
            next: 1 << 24,
            live: HashSet::new(),
            freed: Vec::new(),
            limit: 100_000,
        };
        let mut child = PageTree::new(child_frames.alloc_table().unwrap());
        let mut seen = 0;
        t.fork_into(mem, &mut child, &mut child_frames, &mut |e| {
            seen += 1;
            Ok((e, e))
        })
        .unwrap();
        assert_eq!(seen, model.len());
        check_counts(mem, child.root(), 3);
        for (&va, &pte) in &model {
            assert_eq!(child.entry(mem, va), pte);
        }
        let mut released = 0;
        child.destroy(mem, &mut child_frames, &mut |_| released += 1);
        assert_eq!(released, model.len());
        assert!(child_frames.live.is_empty(), "the child's tables all freed");
    }
}

/// Every table entry's count is the number of non-zero entries in the
/// table it points at, all the way down.
fn check_counts(mem: &Mem, table: Frame, level: usize) {
    let slots = if level == 3 { USER_ROOT_SLOTS } else { ENTRIES };
    if level == 0 {
        return;
    }
    for i in 0..slots {
        let e = mem.read(table, i);
        if !is_table(e) {
            continue;
        }
        let below = frame_of(e);
        let n = (0..ENTRIES).filter(|&j| mem.read(below, j) != 0).count() as u64;
        assert_eq!(count_of(e), n, "count of entry {i} at level {level}");
        check_counts(mem, below, level - 1);
    }
}

#[test]
fn next_used_finds_every_position() {
    for at in 0..ENTRIES {
        let mut t = [0u64; ENTRIES];
        t[at] = 1;
        for from in [0, 1, 3, 4, 5, at.saturating_sub(1), at, at + 1] {
            let want = (from <= at).then_some(at);
            assert_eq!(next_used(&t, from, ENTRIES), want, "at {at} from {from}");
            assert_eq!(next_used(&t, from, at), None, "end before {at}");
        }
    }
    assert_eq!(next_used(&[0; ENTRIES], 0, ENTRIES), None);
    assert_eq!(next_used(&[7; ENTRIES], ENTRIES, ENTRIES), None);
}
