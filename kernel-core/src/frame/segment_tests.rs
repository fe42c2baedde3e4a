//! Host tests for tables of several segments and for planning them:
//! lookups at segment edges, frames in holes and beyond the table (errors,
//! never panics), which segment allocation takes from, and the planner's
//! bounds (segment count, holes, splits) against a model.

use super::*;
use crate::testrng::Rng;
use std::collections::HashMap;

const G: u64 = 1 << 30;
const M: u64 = 1 << 20;

fn seg(first_pfn: u64, frames: u64) -> Segment {
    Segment { first_pfn, frames }
}

fn table(segs: &[Segment]) -> FrameTable<'static> {
    let n: u64 = segs.iter().map(|s| s.frames).sum();
    let infos = Box::leak(vec![FrameInfo::RESERVED; n as usize].into_boxed_slice());
    FrameTable::with_segments(infos, segs).unwrap()
}

/// Counts states over every segment and checks the table's totals.
fn check_counts(t: &FrameTable<'_>) {
    let (mut free, mut allocated) = (0, 0);
    for s in t.segments() {
        for pfn in s.first_pfn..s.end_pfn() {
            match t.state(Frame::from_pfn(pfn)) {
                Some(FrameUse::Free) => free += 1,
                Some(FrameUse::Allocated) => allocated += 1,
                Some(FrameUse::Reserved) => {}
                None => panic!("pfn {pfn:#x} inside a segment has no state"),
            }
        }
    }
    assert_eq!(t.free_count(), free);
    assert_eq!(t.allocated_count(), allocated);
}

const HIGH: u64 = 1 << 20; // pfn of 4 GiB

fn three() -> FrameTable<'static> {
    table(&[seg(10, 10), seg(100, 4), seg(HIGH, 8)])
}

#[test]
fn lookups_at_segment_edges() {
    let t = three();
    assert_eq!(t.len(), 22);
    assert_eq!(t.first_pfn(), 10);
    assert_eq!(
        t.segments().collect::<Vec<_>>(),
        vec![seg(10, 10), seg(100, 4), seg(HIGH, 8)]
    );
    let inside = [10, 19, 100, 103, HIGH, HIGH + 7];
    let outside = [
        0,
        9,
        20,
        21,
        99,
        104,
        HIGH - 1,
        HIGH + 8,
        PFN_LIMIT,
        u64::MAX,
    ];
    for pfn in inside {
        assert_eq!(
            t.state(Frame::from_pfn(pfn)),
            Some(FrameUse::Reserved),
            "{pfn}"
        );
    }
    for pfn in outside {
        assert_eq!(t.state(Frame::from_pfn(pfn)), None, "{pfn}");
    }
}

#[test]
fn frames_outside_segments_are_errors() {
    let mut t = three();
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(u64::MAX));
    assert_eq!(t.free_count(), 22);
    for pfn in [0, 9, 20, 99, 104, HIGH - 1, HIGH + 8, PFN_LIMIT, u64::MAX] {
        let f = Frame::from_pfn(pfn);
        assert_eq!(t.release(f), Err(FrameError::OutOfRange), "{pfn}");
        assert_eq!(t.add_ref(f), Err(FrameError::OutOfRange), "{pfn}");
        assert_eq!(t.refcount(f), None);
    }
    // Inside but free: not allocated.
    for pfn in [10, 19, 100, 103, HIGH, HIGH + 7] {
        let f = Frame::from_pfn(pfn);
        assert_eq!(t.release(f), Err(FrameError::NotAllocated), "{pfn}");
    }
    check_counts(&t);
}

#[test]
fn alloc_takes_the_highest_segment_first_bottom_up() {
    let mut t = three();
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(u64::MAX));
    let got: Vec<u64> = core::iter::from_fn(|| t.alloc().map(Frame::pfn)).collect();
    let mut want: Vec<u64> = (HIGH..HIGH + 8).collect();
    want.extend(100..104);
    want.extend(10..20);
    assert_eq!(got, want);
    assert_eq!(t.free_count(), 0);
    // Released frames go back to their own segment: the high one again.
    assert_eq!(t.release(Frame::from_pfn(12)), Ok(true));
    assert_eq!(t.release(Frame::from_pfn(HIGH + 3)), Ok(true));
    assert_eq!(t.alloc(), Some(Frame::from_pfn(HIGH + 3)));
    assert_eq!(t.alloc(), Some(Frame::from_pfn(12)));
    assert_eq!(t.alloc(), None);
    check_counts(&t);
}

#[test]
fn alloc_below_uses_only_segments_wholly_below() {
    let mut t = three();
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(u64::MAX));
    assert_eq!(t.alloc_below(0), None);
    // 104 pages: the middle segment ends exactly there.
    assert_eq!(t.alloc_below(104 * 4096), Some(Frame::from_pfn(100)));
    // One byte short of it: only the first segment is wholly below.
    assert_eq!(t.alloc_below(104 * 4096 - 1), Some(Frame::from_pfn(10)));
    // A limit inside the middle segment does not use it.
    assert_eq!(t.alloc_below(102 * 4096), Some(Frame::from_pfn(11)));
    // 4 GiB: everything but the high segment.
    for _ in 0..3 {
        assert!(t.alloc_below(4 * G).is_some_and(|f| f.pfn() < HIGH));
    }
    let mut low = 0;
    while let Some(f) = t.alloc_below(4 * G) {
        assert!(f.pfn() < 104);
        low += 1;
    }
    assert_eq!(low, 14 - 3 - 3);
    assert_eq!(t.free_count(), 8);
    assert_eq!(t.alloc_below(u64::MAX), Some(Frame::from_pfn(HIGH)));
    check_counts(&t);
}

#[test]
fn bad_segment_lists_are_refused() {
    let mut infos = vec![FrameInfo::RESERVED; 64];
    let bad: [&[Segment]; 6] = [
        &[seg(10, 4), seg(5, 4)],  // unsorted
        &[seg(10, 4), seg(12, 4)], // overlapping
        &[seg(10, 0)],             // empty
        &[seg(0, 65)],             // more records than given
        &[seg(PFN_LIMIT - 1, 2)],  // past the addressable pfns
        &[seg(u64::MAX - 1, 4)],   // overflowing
    ];
    for segs in bad {
        assert_eq!(
            FrameTable::with_segments(&mut infos, segs).err(),
            Some(FrameError::BadSegments),
            "{segs:?}"
        );
    }
    let many: Vec<Segment> = (0..MAX_SEGMENTS as u64 + 1)
        .map(|i| seg(i * 2, 1))
        .collect();
    assert_eq!(
        FrameTable::with_segments(&mut infos, &many).err(),
        Some(FrameError::BadSegments)
    );
    // Touching segments, the most segments, and no segments are fine.
    assert!(FrameTable::with_segments(&mut infos, &[seg(0, 4), seg(4, 4)]).is_ok());
    assert!(FrameTable::with_segments(&mut infos, &many[..MAX_SEGMENTS]).is_ok());
    let t = FrameTable::with_segments(&mut infos, &[]).unwrap();
    assert!(t.is_empty());
}

#[test]
fn randomized_multi_segment_against_model() {
    let mut rng = Rng(0x05ee_d0ff_4a3e);
    for round in 0..40 {
        // Up to MAX_SEGMENTS segments with random gaps, some at high pfns.
        let n = 1 + rng.below(MAX_SEGMENTS as u64) as usize;
        let mut segs = Vec::new();
        let mut at = rng.below(4);
        for _ in 0..n {
            let len = 1 + rng.below(12);
            segs.push(seg(at, len));
            at += len + rng.below(3) * (1 + rng.below(1 << 20));
        }
        let mut t = table(&segs);
        let top = at + 4;
        let seg_of = |pfn: u64| {
            segs.iter()
                .position(|s| s.first_pfn <= pfn && pfn < s.end_pfn())
        };
        let mut stacks: Vec<Vec<u64>> = vec![Vec::new(); n];
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut reserved: Vec<u64> = segs.iter().flat_map(|s| s.first_pfn..s.end_pfn()).collect();
        // Picks pfns near segment edges as often as anywhere.
        let pick = |rng: &mut Rng| -> u64 {
            if rng.below(2) == 0 {
                let s = segs[rng.below(n as u64) as usize];
                (s.first_pfn + rng.below(3))
                    .wrapping_sub(1)
                    .wrapping_add(rng.below(2) * (s.frames - 1))
            } else {
                rng.below(top)
            }
        };
        for _ in 0..3000 {
            let pfn = pick(&mut rng);
            let f = Frame::from_pfn(pfn);
            match rng.below(12) {
                0 => {
                    let end = pfn.saturating_add(rng.below(20));
                    t.free_range(f, Frame::from_pfn(end));
                    // The table pushes each segment's part top down.
                    for (k, s) in segs.iter().enumerate() {
                        for p in (pfn.max(s.first_pfn)..end.min(s.end_pfn())).rev() {
                            if let Some(i) = reserved.iter().position(|&r| r == p) {
                                reserved.swap_remove(i);
                                stacks[k].push(p);
                            }
                        }
                    }
                }
                1..=3 => {
                    let limit = if rng.below(2) == 0 {
                        u64::MAX
                    } else {
                        pick(&mut rng).wrapping_mul(4096)
                    };
                    let got = if limit == u64::MAX {
                        t.alloc()
                    } else {
                        t.alloc_below(limit)
                    };
                    let k = (0..n)
                        .rev()
                        .find(|&k| segs[k].end_pfn() <= limit / 4096 && !stacks[k].is_empty());
                    let want = k.and_then(|k| stacks[k].pop());
                    assert_eq!(got.map(Frame::pfn), want, "round {round} limit {limit:#x}");
                    if let Some(p) = want {
                        model.insert(p, 1);
                    }
                }
                4 | 5 => {
                    let want = match model.get_mut(&pfn) {
                        Some(c) => {
                            *c += 1;
                            Ok(*c)
                        }
                        None if seg_of(pfn).is_some() => Err(FrameError::NotAllocated),
                        None => Err(FrameError::OutOfRange),
                    };
                    assert_eq!(t.add_ref(f), want);
                }
                _ => {
                    let want = match model.get_mut(&pfn) {
                        Some(c) if *c > 1 => {
                            *c -= 1;
                            Ok(false)
                        }
                        Some(_) => {
                            model.remove(&pfn);
                            stacks[seg_of(pfn).unwrap()].push(pfn);
                            Ok(true)
                        }
                        None if seg_of(pfn).is_some() => Err(FrameError::NotAllocated),
                        None => Err(FrameError::OutOfRange),
                    };
                    assert_eq!(t.release(f), want);
                }
            }
            assert_eq!(t.refcount(f), model.get(&pfn).copied());
            assert_eq!(t.free_count(), stacks.iter().map(Vec::len).sum::<usize>());
        }
        check_counts(&t);
    }
}

// ---- planning ----

fn plan(ram: &[(u64, u64)], splits: &[u64]) -> SegmentPlan {
    plan_segments(ram, splits)
}

#[test]
fn plan_q35_with_8_gib_splits_at_4_gib() {
    // What QEMU's q35 reports with 8 GiB: 2 GiB low, 6 GiB from 4 GiB up,
    // the first MiB already taken out.
    let p = plan(&[(M, 2 * G - 128 * 1024), (4 * G, 10 * G)], &[4 * G]);
    assert_eq!(
        p.segments.to_vec(),
        vec![
            seg(256, (2 * G - 128 * 1024 - M) / 4096),
            seg(HIGH, 6 * G / 4096)
        ]
    );
    assert_eq!((p.dropped_frames, p.hole_frames), (0, 0));
    // One piece across 4 GiB is cut there.
    let p = plan(&[(3 * G, 5 * G)], &[4 * G]);
    assert_eq!(
        p.segments.to_vec(),
        vec![seg(3 * G / 4096, G / 4096), seg(HIGH, G / 4096)]
    );
}

#[test]
fn plan_records_follow_the_ram_not_its_addresses() {
    // 1 GiB low and 1 GiB at 64 TiB: two segments, 2 GiB of records.
    let far = 1u64 << 46;
    let p = plan(&[(0, G), (far, far + G)], &[4 * G]);
    assert_eq!(p.segments.len(), 2);
    assert_eq!(p.records(), 2 * G / 4096);
    // Unsorted, overlapping and inverted input is the same RAM.
    let q = plan(
        &[
            (far + G / 2, far + G),
            (5, 1),
            (far, far + G / 2 + 4096),
            (0, G),
        ],
        &[],
    );
    assert_eq!(q.segments, p.segments);
}

#[test]
fn plan_covers_small_holes_and_keeps_big_ones_apart() {
    // Holes of 1 MiB are covered; a 1 GiB hole is not while there is room.
    let ram = [(0, 100 * M), (101 * M, 200 * M), (G + 200 * M, G + 300 * M)];
    let p = plan(&ram, &[]);
    assert_eq!(p.segments.len(), 2);
    assert_eq!(p.hole_frames, M / 4096);
    // A split between the pieces keeps even a small hole apart.
    let p = plan(&ram, &[100 * M + 4096]);
    assert_eq!(p.segments.len(), 3);
    assert_eq!(p.hole_frames, 0);
}

#[test]
fn plan_with_too_many_pieces_merges_then_drops() {
    // 40 pieces of 4 MiB with 4 MiB holes: the budget (1/16 of 160 MiB
    // = 10 MiB) covers two holes; the rest must be dropped, smallest (all
    // equal here) first, until 16 segments are left.
    let ram: Vec<(u64, u64)> = (0..40).map(|i| (i * 8 * M, i * 8 * M + 4 * M)).collect();
    let p = plan(&ram, &[]);
    assert_eq!(p.segments.len(), MAX_SEGMENTS);
    assert!(p.hole_frames * HOLE_BUDGET_DIVISOR <= 160 * M / 4096);
    let covered = p.records() - p.hole_frames;
    assert_eq!(covered + p.dropped_frames, 160 * M / 4096);
    // Pieces with tiny holes are all kept, in one segment.
    let ram: Vec<(u64, u64)> = (0..40)
        .map(|i| (i * 8 * M, i * 8 * M + 8 * M - 4096))
        .collect();
    let p = plan(&ram, &[]);
    assert_eq!(p.segments.len(), 1);
    assert_eq!(p.dropped_frames, 0);
}

#[test]
fn plan_randomized_against_bitmap() {
    let mut rng = Rng(0x00b1_63e3);
    const PAGES: u64 = 4096;
    for round in 0..300 {
        let ranges: Vec<(u64, u64)> = (0..rng.below(40))
            .map(|_| {
                let a = rng.below(PAGES) * 4096 + rng.below(3) * 100;
                (a, a + rng.below(64) * 4096 + rng.below(2) * 7)
            })
            .collect();
        let splits: Vec<u64> = (0..rng.below(3)).map(|_| rng.below(PAGES) * 4096).collect();
        let mut ram = vec![false; PAGES as usize + 64];
        for &(s, e) in &ranges {
            for p in s.div_ceil(4096)..e / 4096 {
                ram[p as usize] = true;
            }
        }
        let total = ram.iter().filter(|&&r| r).count() as u64;
        let p = plan(&ranges, &splits);
        let ctx = format!("round {round}: {ranges:x?} splits {splits:x?} -> {p:x?}");
        // Sorted, disjoint, none empty, none across a split.
        assert!(p.segments.len() <= MAX_SEGMENTS, "{ctx}");
        for w in p.segments.windows(2) {
            assert!(w[0].end_pfn() <= w[1].first_pfn, "{ctx}");
        }
        for s in &p.segments {
            assert!(s.frames > 0, "{ctx}");
            for &q in &splits {
                let q = q / 4096;
                assert!(!(s.first_pfn < q && q < s.end_pfn()), "{ctx}");
            }
        }
        // Every RAM frame is covered or dropped; the rest is holes.
        let covered = p
            .segments
            .iter()
            .flat_map(|s| s.first_pfn..s.end_pfn())
            .filter(|&pfn| ram[pfn as usize])
            .count() as u64;
        assert_eq!(covered + p.dropped_frames, total, "{ctx}");
        assert_eq!(p.records(), covered + p.hole_frames, "{ctx}");
        assert!(p.hole_frames <= total / HOLE_BUDGET_DIVISOR, "{ctx}");
        // A table over the plan takes exactly the RAM.
        let mut t = table(&p.segments);
        let mut free = ArrayVec::new();
        subtract_ranges(&ranges, &[], &mut free);
        for &(s, e) in &free {
            t.free_range(Frame::containing(s), Frame::containing(e));
        }
        assert_eq!(t.free_count() as u64, covered, "{ctx}");
    }
}

#[test]
fn plan_drops_nothing_when_pieces_fit() {
    let mut rng = Rng(77);
    for _ in 0..200 {
        let n = 1 + rng.below(MAX_SEGMENTS as u64);
        let mut at = 0;
        let ram: Vec<(u64, u64)> = (0..n)
            .map(|_| {
                at += (1 + rng.below(1000)) * 4096;
                let r = (at, at + (1 + rng.below(1000)) * 4096);
                at = r.1;
                r
            })
            .collect();
        let p = plan(&ram, &[]);
        assert_eq!(p.dropped_frames, 0, "{ram:x?}");
    }
}

#[test]
fn uninitialised_records_are_written_before_use() {
    use core::mem::MaybeUninit;
    let mut raw = vec![MaybeUninit::<FrameInfo>::uninit(); 40];
    let segs = [seg(8, 16), seg(HIGH, 16)];
    let mut t = FrameTable::with_segments_uninit(&mut raw, &segs).unwrap();
    assert_eq!(t.len(), 32);
    check_counts(&t);
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(u64::MAX));
    assert_eq!(t.free_count(), 32);
    assert_eq!(t.alloc(), Some(Frame::from_pfn(HIGH)));
    check_counts(&t);
    // Too few records, or a bad list, is an error here too.
    let mut few = vec![MaybeUninit::<FrameInfo>::uninit(); 31];
    assert_eq!(
        FrameTable::with_segments_uninit(&mut few, &segs).err(),
        Some(FrameError::BadSegments)
    );
    assert_eq!(
        FrameTable::with_segments_uninit(&mut raw, &[seg(8, 0)]).err(),
        Some(FrameError::BadSegments)
    );
}
