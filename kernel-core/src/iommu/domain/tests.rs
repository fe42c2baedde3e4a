use super::*;
use crate::iommu::testframes::{Frames, Mem};
use crate::testrng::Rng;
use std::collections::{BTreeMap, BTreeSet};

const RW: Access = Access::READ.union(Access::WRITE);

fn domain(levels: u8, frames: &mut Frames) -> Domain {
    let bits = if levels == 3 { 39 } else { 48 };
    Domain::new(frames, Geometry::new(levels, bits, 39).unwrap()).unwrap()
}

/// Releases what an unmap unlinked, after checking it holds nothing.
fn settle(u: Unmapped, mem: &Mem, f: &mut Frames) -> (Frame, Access, Flush) {
    for &t in u.stale.frames() {
        assert!(
            mem.entries(t).iter().all(|&w| w == 0),
            "stale table {t:?} not empty"
        );
    }
    u.stale.release(f);
    (u.frame, u.access, u.flush)
}

#[test]
fn leaf_and_table_entry_bits_three_levels() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut d = domain(3, &mut f);
    let iova = 0x1234_5000; // indices: level 3 → 0, level 2 → 0x91, level 1 → 0x145
    d.map(&mut mem, &mut f, iova, Frame::from_pfn(0xabcde), RW)
        .unwrap();
    let root = d.root();
    let l3 = mem.read(root, 0);
    let l2_table = Frame::containing(l3 & 0x000f_ffff_ffff_f000);
    // A table entry: its address, read and write, and a count of 1 in
    // bits 61:52.
    assert_eq!(l3, l2_table.addr() | 0x0010_0000_0000_0003);
    let l2 = mem.read(l2_table, 0x91);
    let l1_table = Frame::containing(l2 & 0x000f_ffff_ffff_f000);
    assert_eq!(l2, l1_table.addr() | 0x0010_0000_0000_0003);
    // The leaf: address, read (bit 0) and write (bit 1), nothing else.
    assert_eq!(mem.read(l1_table, 0x145), 0x0000_0000_abcd_e003);
    assert_eq!(d.table_frames(), 3);
    // Read-only and write-only leaves.
    d.map(
        &mut mem,
        &mut f,
        iova + PAGE,
        Frame::from_pfn(1),
        Access::READ,
    )
    .unwrap();
    d.map(
        &mut mem,
        &mut f,
        iova + 2 * PAGE,
        Frame::from_pfn(2),
        Access::WRITE,
    )
    .unwrap();
    assert_eq!(mem.read(l1_table, 0x146), 0x1001);
    assert_eq!(mem.read(l1_table, 0x147), 0x2002);
    assert_eq!(mem.read(l2_table, 0x91) >> 52, 3, "the leaf table counts 3");
    assert_eq!(mem.read(root, 0) >> 52, 1);
    assert_eq!(
        d.translate(&mem, iova + 0x123),
        Some((Frame::from_pfn(0xabcde), RW))
    );
    assert_eq!(
        d.translate(&mem, iova + 2 * PAGE),
        Some((Frame::from_pfn(2), Access::WRITE))
    );
    assert_eq!(d.translate(&mem, iova + 3 * PAGE), None);
}

#[test]
fn four_levels_index_from_bit_39() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut d = domain(4, &mut f);
    let iova = (5 << 39) | (7 << 30) | (9 << 21) | (11 << 12);
    d.map(&mut mem, &mut f, iova, Frame::from_pfn(0x42), Access::READ)
        .unwrap();
    let mut t = d.root();
    for i in [5, 7, 9] {
        let e = mem.read(t, i);
        assert_eq!(e & 0xfff0_0000_0000_0fff, 0x0010_0000_0000_0003);
        t = Frame::containing(e & 0x000f_ffff_ffff_f000);
    }
    assert_eq!(mem.read(t, 11), 0x4_2001);
    assert_eq!(d.table_frames(), 4);
}

#[test]
fn bad_maps_are_refused_and_change_nothing() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut d = domain(3, &mut f);
    let fr = Frame::from_pfn(9);
    let bad = [
        (0x1001, fr, RW, Error::InvalidArgument),
        (0x1000, fr, Access::empty(), Error::InvalidArgument),
        (1 << 39, fr, RW, Error::BadAddress),
        (!0xfff, fr, RW, Error::BadAddress),
        (0x1000, Frame::containing(1 << 39), RW, Error::BadAddress),
        (0x1000, Frame::from_pfn(u64::MAX), RW, Error::BadAddress),
    ];
    for (iova, frame, access, err) in bad {
        assert_eq!(
            d.map(&mut mem, &mut f, iova, frame, access),
            Err(err),
            "{iova:#x}"
        );
    }
    assert_eq!((d.table_frames(), f.live.len()), (1, 1));
    let top = (1 << 39) - PAGE;
    d.map(&mut mem, &mut f, top, fr, RW).unwrap();
    assert_eq!(
        d.map(&mut mem, &mut f, top, fr, Access::READ),
        Err(Error::AlreadyExists)
    );
    assert_eq!(d.translate(&mem, top), Some((fr, RW)));
    assert_eq!(d.translate(&mem, 1 << 39), None);
    assert_eq!(d.translate(&mem, u64::MAX), None);
    assert!(d.unmap(&mut mem, 1 << 39).is_none());
    assert!(d.unmap(&mut mem, top + 1).is_none());
}

#[test]
fn a_narrower_iova_width_is_the_limit() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut d = Domain::new(&mut f, Geometry::new(4, 40, 39).unwrap()).unwrap();
    let fr = Frame::from_pfn(9);
    d.map(&mut mem, &mut f, (1 << 40) - PAGE, fr, RW).unwrap();
    assert_eq!(
        d.map(&mut mem, &mut f, 1 << 40, fr, RW),
        Err(Error::BadAddress)
    );
}

#[test]
fn a_failed_map_allocates_nothing_it_keeps_and_writes_nothing() {
    for levels in [3, 4] {
        for budget in 0..levels - 1 {
            let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
            let mut d = domain(levels, &mut f);
            f.budget = Some(u64::from(budget));
            let e = d.map(&mut mem, &mut f, 0x4000_0000, Frame::from_pfn(3), RW);
            assert_eq!(e, Err(Error::OutOfMemory));
            assert_eq!((d.table_frames(), f.live.len()), (1, 1));
            assert!(mem.entries(d.root()).iter().all(|&w| w == 0));
            assert_eq!(d.translate(&mem, 0x4000_0000), None);
        }
    }
    // Tables beyond the host width: given back, NotSupported.
    let (mut mem, mut f) = (Mem::default(), Frames::new((1 << 27) - 2));
    let mut d = domain(3, &mut f);
    let e = d.map(&mut mem, &mut f, 0, Frame::from_pfn(3), RW);
    assert_eq!(e, Err(Error::NotSupported));
    assert_eq!((d.table_frames(), f.live.len()), (1, 1));
}

#[test]
fn unmap_unlinks_emptied_tables_and_says_what_to_flush() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut d = domain(4, &mut f);
    let (a, b) = (0x20_0000, 0x20_1000);
    d.map(&mut mem, &mut f, a, Frame::from_pfn(1), RW).unwrap();
    d.map(&mut mem, &mut f, b, Frame::from_pfn(2), Access::READ)
        .unwrap();
    assert_eq!(d.table_frames(), 4);
    let u = d.unmap(&mut mem, a).unwrap();
    assert!(u.stale.is_empty(), "the neighbour keeps the tables");
    assert_eq!(u.flush, Flush::page(a, false));
    assert_eq!(settle(u, &mem, &mut f).0, Frame::from_pfn(1));
    assert!(d.unmap(&mut mem, a).is_none(), "twice");
    let u = d.unmap(&mut mem, b).unwrap();
    assert_eq!(u.stale.frames().len(), 3, "leaf, directory, pointer table");
    assert_eq!((u.frame, u.access), (Frame::from_pfn(2), Access::READ));
    assert_eq!(u.flush.range(), (b, b + PAGE));
    assert!(u.flush.tables());
    assert_eq!(d.table_frames(), 1);
    // Unlinked, not freed, until released.
    assert_eq!(f.live.len(), 4);
    settle(u, &mem, &mut f);
    assert_eq!(f.live.len(), 1);
    assert!(mem.entries(d.root()).iter().all(|&w| w == 0));
    d.destroy(&mut mem, &mut f, &mut |_, _| panic!("nothing mapped"));
    assert!(f.live.is_empty());
}

#[test]
fn flushes_merge_into_page_selective_invalidations() {
    let mut fl = Flush::NONE;
    assert!(fl.is_empty() && fl.page_selective().is_none());
    fl.merge(Flush::page(0x5000, false));
    assert_eq!(fl.page_selective(), Some((0x5000, 0)));
    fl.merge(Flush::NONE);
    fl.merge(Flush::page(0x6000, false));
    // Pages 5 and 6 straddle an 8 KiB boundary: the block is pages 4..8.
    assert_eq!(fl.page_selective(), Some((0x4000, 2)));
    assert!(!fl.tables());
    fl.merge(Flush::page(0x4000, true));
    assert_eq!(fl.range(), (0x4000, 0x7000));
    assert!(fl.tables());
    assert_eq!(
        Flush::page(0x7fff_f123, false).page_selective(),
        Some((0x7fff_f000, 0))
    );
    let mut wide = Flush::page(0x1000, false);
    wide.merge(Flush::page((1 << 39) - PAGE, false));
    assert_eq!(wide.page_selective(), Some((0, 27)));
}

#[test]
fn destroy_names_every_mapped_page_and_frees_every_table() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut d = domain(4, &mut f);
    let pages = [
        0x1000,
        0x20_0000,
        0x4000_0000,
        0x80_0000_0000,
        (1 << 48) - PAGE,
    ];
    for (n, &p) in pages.iter().enumerate() {
        d.map(&mut mem, &mut f, p, Frame::from_pfn(n as u64 + 1), RW)
            .unwrap();
    }
    let tables = d.table_frames();
    assert_eq!(tables as usize, f.live.len());
    let mut seen = Vec::new();
    d.destroy(&mut mem, &mut f, &mut |iova, fr| {
        seen.push((iova, fr.pfn()))
    });
    let want: Vec<_> = pages
        .iter()
        .enumerate()
        .map(|(n, &p)| (p, n as u64 + 1))
        .collect();
    assert_eq!(seen, want);
    assert!(f.live.is_empty());
    assert_eq!(f.freed, tables);
}

/// The tables a tree holding exactly `mapped` needs: the root and, per
/// level below it, one per distinct span that level's tables cover.
fn tables_needed(levels: u8, mapped: &BTreeMap<u64, (u64, Access)>) -> u64 {
    let mut n = 1;
    for level in 1..u32::from(levels) {
        let spans: BTreeSet<u64> = mapped.keys().map(|&k| k >> (12 + 9 * level)).collect();
        n += spans.len() as u64;
    }
    n
}

/// IOVAs in small windows that straddle the edges of leaf tables
/// (2 MiB), directories (1 GiB) and, with 4 levels, pointer tables
/// (512 GiB), and the top of the space: few enough pages that tables fill
/// and empty again.
fn pick(rng: &mut Rng, end: u64) -> u64 {
    let edges = [0x20_0000, 0x60_0000, 0x4000_0000, 0x80_0000_0000 % end, end];
    let edge = edges[rng.below(edges.len() as u64) as usize];
    let iova = (edge + rng.below(32) * PAGE).wrapping_sub(16 * PAGE);
    iova.clamp(PAGE, end - PAGE)
}

#[test]
fn model_random_map_unmap_translate() {
    for (levels, seed) in [(3, 1u64), (4, 2), (3, 0x9e37_79b9), (4, 0xdead_beef)] {
        let (mut mem, mut f) = (Mem::default(), Frames::new(0x1000));
        let mut d = domain(levels, &mut f);
        let end = d.geometry().iova_end();
        let mut rng = Rng(seed);
        let mut model: BTreeMap<u64, (u64, Access)> = BTreeMap::new();
        let (mut refused, mut unlinked) = (0, 0);
        for step in 0..20_000 {
            let iova = pick(&mut rng, end);
            // Phases that fill the tree, then drain it (unmaps only).
            let filling = (step / 1000) % 2 == 0;
            let op = rng.below(10);
            let map = filling && op < 6;
            match op {
                _ if map => {
                    let pfn = rng.below(1 << 27);
                    let access = Access::from_bits_truncate(1 + rng.below(3));
                    // Now and then too few frames for the tables it needs.
                    f.budget = (rng.below(4) == 0).then(|| rng.below(3));
                    let before = (d.table_frames(), f.live.len());
                    let r = d.map(&mut mem, &mut f, iova, Frame::from_pfn(pfn), access);
                    f.budget = None;
                    match r {
                        Ok(()) => assert!(model.insert(iova, (pfn, access)).is_none()),
                        Err(Error::AlreadyExists) => assert!(model.contains_key(&iova)),
                        Err(Error::OutOfMemory) => {
                            assert!(!model.contains_key(&iova));
                            assert_eq!((d.table_frames(), f.live.len()), before);
                            refused += 1;
                        }
                        Err(e) => panic!("map {iova:#x}: {e:?}"),
                    }
                }
                0..=8 => match (d.unmap(&mut mem, iova), model.remove(&iova)) {
                    (None, None) => {}
                    (Some(u), Some((pfn, access))) => {
                        assert_eq!(u.flush, Flush::page(iova, !u.stale.is_empty()));
                        unlinked += u.stale.frames().len();
                        let (frame, got, _) = settle(u, &mem, &mut f);
                        assert_eq!((frame, got), (Frame::from_pfn(pfn), access));
                    }
                    (got, want) => panic!("unmap {iova:#x}: {got:?} vs {want:?}"),
                },
                _ => {
                    let off = rng.below(PAGE);
                    let want = model.get(&iova).map(|&(p, a)| (Frame::from_pfn(p), a));
                    assert_eq!(d.translate(&mem, iova + off), want);
                }
            }
            if step % 97 == 0 {
                assert_eq!(
                    d.table_frames(),
                    tables_needed(levels, &model),
                    "step {step}"
                );
                assert_eq!(d.mapped_pages(), model.len() as u64);
                assert_eq!(f.live.len() as u64, d.table_frames());
            }
        }
        assert!(
            refused > 0 && unlinked > 0,
            "{refused} refused, {unlinked} unlinked"
        );
        // Everything in the model translates; then it all goes.
        for (&iova, &(pfn, a)) in &model {
            assert_eq!(d.translate(&mem, iova), Some((Frame::from_pfn(pfn), a)));
        }
        let mut left = BTreeMap::new();
        d.destroy(&mut mem, &mut f, &mut |iova, fr| {
            left.insert(iova, fr.pfn());
        });
        let want: BTreeMap<u64, u64> = model.iter().map(|(&k, &(p, _))| (k, p)).collect();
        assert_eq!(left, want);
        assert!(f.live.is_empty(), "every table frame given back");
        assert_eq!(f.allocated, f.freed);
    }
}
