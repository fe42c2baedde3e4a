//! Host tests for the frame table and range subtraction.

use super::*;
use std::collections::HashMap;

fn check_counts(t: &FrameTable<'_>) {
    let mut free = 0;
    let mut allocated = 0;
    for i in 0..t.len() as u64 {
        match t.state(Frame::from_pfn(t.first_pfn() + i)) {
            Some(FrameUse::Free) => free += 1,
            Some(FrameUse::Allocated) => allocated += 1,
            Some(FrameUse::Reserved) => {}
            None => panic!("frame inside the table has no state"),
        }
    }
    assert_eq!(t.free_count(), free);
    assert_eq!(t.allocated_count(), allocated);
    assert_eq!(t.managed_count(), free + allocated);
}

#[test]
fn frame_addresses() {
    assert_eq!(Frame::containing(0x1fff).pfn(), 1);
    assert_eq!(Frame::containing(0x2000).addr(), 0x2000);
    assert_eq!(Frame::from_pfn(5).addr(), 5 * 4096);
}

#[test]
fn new_table_is_all_reserved() {
    let mut infos = [FrameInfo::RESERVED; 8];
    // Whatever the array held before must not survive `new`.
    infos[3].state = FrameUse::Allocated;
    infos[3].refcount = 7;
    let mut t = FrameTable::new(&mut infos, 100);
    assert_eq!(t.len(), 8);
    assert!(!t.is_empty());
    assert_eq!(t.first_pfn(), 100);
    assert_eq!(t.state(Frame::from_pfn(103)), Some(FrameUse::Reserved));
    assert_eq!(t.state(Frame::from_pfn(99)), None);
    assert_eq!(t.state(Frame::from_pfn(108)), None);
    assert_eq!(t.alloc(), None);
    check_counts(&t);

    let mut none: [FrameInfo; 0] = [];
    let mut t = FrameTable::new(&mut none, 0);
    assert!(t.is_empty());
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(10));
    assert_eq!(t.alloc(), None);
}

#[test]
fn exhaustion() {
    let mut infos = [FrameInfo::RESERVED; 16];
    let mut t = FrameTable::new(&mut infos, 10);
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(1000));
    assert_eq!(t.free_count(), 16);
    let mut got = Vec::new();
    while let Some(f) = t.alloc() {
        assert_eq!(t.refcount(f), Some(1));
        got.push(f.pfn());
    }
    assert_eq!(t.free_count(), 0);
    assert_eq!(t.allocated_count(), 16);
    // Fresh memory is handed out from the bottom up.
    assert_eq!(got, (10..26).collect::<Vec<_>>());
    check_counts(&t);
}

#[test]
fn free_range_ignores_non_reserved_and_outside() {
    let mut infos = [FrameInfo::RESERVED; 8];
    let mut t = FrameTable::new(&mut infos, 0);
    t.free_range(Frame::from_pfn(2), Frame::from_pfn(4));
    let a = t.alloc().unwrap();
    assert_eq!(a.pfn(), 2);
    // Freeing again must not put the allocated frame back, nor double-count.
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(4));
    assert_eq!(t.state(a), Some(FrameUse::Allocated));
    assert_eq!(t.free_count(), 3);
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(4));
    assert_eq!(t.free_count(), 3);
    // Inverted and wholly outside ranges do nothing.
    t.free_range(Frame::from_pfn(6), Frame::from_pfn(5));
    t.free_range(Frame::from_pfn(100), Frame::from_pfn(200));
    assert_eq!(t.free_count(), 3);
    check_counts(&t);
}

#[test]
fn lifo_reuse() {
    let mut infos = [FrameInfo::RESERVED; 8];
    let mut t = FrameTable::new(&mut infos, 0);
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(8));
    let a = t.alloc().unwrap();
    let b = t.alloc().unwrap();
    let c = t.alloc().unwrap();
    assert_eq!(t.release(b), Ok(true));
    assert_eq!(t.release(a), Ok(true));
    assert_eq!(t.alloc(), Some(a));
    assert_eq!(t.alloc(), Some(b));
    assert_eq!(t.release(c), Ok(true));
    assert_eq!(t.alloc(), Some(c));
    check_counts(&t);
}

#[test]
fn double_free_and_bad_frames() {
    let mut infos = [FrameInfo::RESERVED; 8];
    let mut t = FrameTable::new(&mut infos, 4);
    t.free_range(Frame::from_pfn(4), Frame::from_pfn(8));
    let a = t.alloc().unwrap();
    assert_eq!(t.release(a), Ok(true));
    assert_eq!(t.release(a), Err(FrameError::NotAllocated));
    assert_eq!(t.add_ref(a), Err(FrameError::NotAllocated));
    // Reserved frame inside the table.
    assert_eq!(
        t.release(Frame::from_pfn(10)),
        Err(FrameError::NotAllocated)
    );
    assert_eq!(
        t.add_ref(Frame::from_pfn(10)),
        Err(FrameError::NotAllocated)
    );
    assert_eq!(t.refcount(Frame::from_pfn(10)), None);
    // Outside the table, on both sides and at the extremes.
    for pfn in [0, 3, 12, u64::MAX] {
        assert_eq!(t.release(Frame::from_pfn(pfn)), Err(FrameError::OutOfRange));
        assert_eq!(t.add_ref(Frame::from_pfn(pfn)), Err(FrameError::OutOfRange));
        assert_eq!(t.refcount(Frame::from_pfn(pfn)), None);
        assert_eq!(t.state(Frame::from_pfn(pfn)), None);
    }
    check_counts(&t);
}

#[test]
fn refcounts() {
    let mut infos = [FrameInfo::RESERVED; 4];
    let mut t = FrameTable::new(&mut infos, 0);
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(4));
    let a = t.alloc().unwrap();
    assert_eq!(t.add_ref(a), Ok(2));
    assert_eq!(t.add_ref(a), Ok(3));
    assert_eq!(t.release(a), Ok(false));
    assert_eq!(t.release(a), Ok(false));
    assert_eq!(t.refcount(a), Some(1));
    assert_eq!(t.free_count(), 3);
    assert_eq!(t.release(a), Ok(true));
    assert_eq!(t.free_count(), 4);
    assert_eq!(t.release(a), Err(FrameError::NotAllocated));
    check_counts(&t);
}

#[test]
fn refcount_overflow() {
    let mut infos = [FrameInfo::RESERVED; 1];
    let mut t = FrameTable::new(&mut infos, 0);
    t.free_range(Frame::from_pfn(0), Frame::from_pfn(1));
    let a = t.alloc().unwrap();
    t.infos[0].refcount = u32::MAX - 1;
    assert_eq!(t.add_ref(a), Ok(u32::MAX));
    assert_eq!(t.add_ref(a), Err(FrameError::RefcountOverflow));
    assert_eq!(t.refcount(a), Some(u32::MAX));
    assert_eq!(t.release(a), Ok(false));
}

#[test]
fn table_near_top_of_pfn_space() {
    let mut infos = [FrameInfo::RESERVED; 8];
    // Frames whose address would not fit a u64 are never covered.
    let t = FrameTable::new(&mut infos, PFN_LIMIT - 3);
    assert_eq!(t.len(), 3);
    let t = FrameTable::new(&mut infos, u64::MAX - 3);
    assert!(t.is_empty());
}

use crate::testrng::Rng;

#[test]
fn randomized_against_model() {
    const N: usize = 64;
    const FIRST: u64 = 1000;
    let mut infos = [FrameInfo::RESERVED; N];
    let mut t = FrameTable::new(&mut infos, FIRST);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Model: pfn -> refcount for allocated frames; the free list as a stack.
    let mut model: HashMap<u64, u32> = HashMap::new();
    let mut free_stack: Vec<u64> = Vec::new();
    let mut reserved: Vec<bool> = vec![true; N];
    for _ in 0..20_000 {
        let pfn = FIRST - 2 + rng.below(N as u64 + 4);
        let f = Frame::from_pfn(pfn);
        let inside = (FIRST..FIRST + N as u64).contains(&pfn);
        match rng.below(10) {
            0 => {
                let len = rng.below(8);
                t.free_range(f, Frame::from_pfn(pfn + len));
                for p in (pfn..pfn + len).rev() {
                    if let Some(i) = p.checked_sub(FIRST).map(|i| i as usize)
                        && i < N
                        && reserved[i]
                    {
                        reserved[i] = false;
                        free_stack.push(p);
                    }
                }
            }
            1..=3 => {
                let got = t.alloc().map(Frame::pfn);
                assert_eq!(got, free_stack.pop());
                if let Some(p) = got {
                    assert!(model.insert(p, 1).is_none());
                }
            }
            4..=5 => {
                let want = match model.get_mut(&pfn) {
                    Some(c) => {
                        *c += 1;
                        Ok(*c)
                    }
                    None if inside => Err(FrameError::NotAllocated),
                    None => Err(FrameError::OutOfRange),
                };
                assert_eq!(t.add_ref(f), want);
            }
            _ => {
                let want = match model.get_mut(&pfn) {
                    Some(c) => {
                        *c -= 1;
                        if *c == 0 {
                            model.remove(&pfn);
                            free_stack.push(pfn);
                            Ok(true)
                        } else {
                            Ok(false)
                        }
                    }
                    None if inside => Err(FrameError::NotAllocated),
                    None => Err(FrameError::OutOfRange),
                };
                assert_eq!(t.release(f), want);
            }
        }
        assert_eq!(t.refcount(f), model.get(&pfn).copied());
        assert_eq!(t.free_count(), free_stack.len());
        assert_eq!(t.allocated_count(), model.len());
    }
    check_counts(&t);
}

fn subtract(avail: &[(u64, u64)], reserved: &[(u64, u64)]) -> (Vec<(u64, u64)>, usize) {
    let mut out = ArrayVec::new();
    out.push((1, 2)); // stale content must be cleared
    let dropped = subtract_ranges(avail, reserved, &mut out);
    (out.to_vec(), dropped)
}

const K: u64 = 0x1000;

#[test]
fn subtract_simple() {
    assert_eq!(subtract(&[], &[]), (vec![], 0));
    assert_eq!(subtract(&[(0, 16 * K)], &[]), (vec![(0, 16 * K)], 0));
    assert_eq!(
        subtract(&[(0, 16 * K)], &[(4 * K, 6 * K)]),
        (vec![(0, 4 * K), (6 * K, 16 * K)], 0)
    );
}

#[test]
fn subtract_overlaps_and_unsorted() {
    let avail = [
        (20 * K, 30 * K),
        (0, 5 * K),
        (3 * K, 10 * K),
        (25 * K, 40 * K),
    ];
    let reserved = [(35 * K, 36 * K), (8 * K, 22 * K), (9 * K, 12 * K)];
    assert_eq!(
        subtract(&avail, &reserved),
        (vec![(0, 8 * K), (22 * K, 35 * K), (36 * K, 40 * K)], 0)
    );
}

#[test]
fn subtract_adjacent_merge() {
    let avail = [(4 * K, 8 * K), (0, 4 * K), (8 * K, 9 * K)];
    assert_eq!(subtract(&avail, &[]), (vec![(0, 9 * K)], 0));
    // Adjacent reservations leave no sliver between them.
    let reserved = [(2 * K, 3 * K), (3 * K, 5 * K)];
    assert_eq!(
        subtract(&avail, &reserved),
        (vec![(0, 2 * K), (5 * K, 9 * K)], 0)
    );
}

#[test]
fn subtract_everything_reserved() {
    let avail = [(0x1000, 0x9000), (0x10_0000, 0x20_0000)];
    assert_eq!(subtract(&avail, &[(0, u64::MAX)]), (vec![], 0));
    assert_eq!(subtract(&avail, &[(0, 0x30_0000)]), (vec![], 0));
    assert_eq!(subtract(&[(0, u64::MAX)], &[(1, u64::MAX)]), (vec![], 0));
}

#[test]
fn subtract_unaligned_edges() {
    // Available rounds inward, reserved outward.
    assert_eq!(
        subtract(&[(0x1001, 0x5fff)], &[]),
        (vec![(0x2000, 0x5000)], 0)
    );
    assert_eq!(subtract(&[(0x1001, 0x1fff)], &[]), (vec![], 0));
    assert_eq!(
        subtract(&[(0, 0x10000)], &[(0x3001, 0x3002)]),
        (vec![(0, 0x3000), (0x4000, 0x10000)], 0)
    );
    // Inverted and empty inputs are ignored.
    assert_eq!(
        subtract(&[(0x5000, 0x1000), (0x1000, 0x1000)], &[]),
        (vec![], 0)
    );
    assert_eq!(
        subtract(&[(0, 0x3000)], &[(0x2000, 0x1000)]),
        (vec![(0, 0x3000)], 0)
    );
    // Top of the address space: rounding must not overflow.
    assert_eq!(
        subtract(&[(u64::MAX - 0x2fff, u64::MAX)], &[]),
        (vec![(u64::MAX - 0x2fff, u64::MAX - 0xfff)], 0)
    );
    assert_eq!(subtract(&[(u64::MAX - 5, u64::MAX)], &[]), (vec![], 0));
    assert_eq!(
        subtract(&[(0, u64::MAX)], &[(u64::MAX - 5, u64::MAX)]),
        (vec![(0, u64::MAX - 0xfff)], 0)
    );
}

#[test]
fn subtract_overflowing_output() {
    let avail = [(0, 1000 * K)];
    let reserved: Vec<(u64, u64)> = (0..200)
        .map(|i| (i * 2 * K + K, i * 2 * K + 2 * K))
        .collect();
    let mut out = ArrayVec::new();
    let dropped = subtract_ranges(&avail, &reserved, &mut out);
    assert_eq!(out.len(), MAX_RANGES);
    // 200 holes give 201 ranges (the last runs from 400 K to 1000 K).
    assert_eq!(dropped, 201 - MAX_RANGES);
    assert_eq!(out[0], (0, K));
    assert_eq!(out[1], (2 * K, 3 * K));
}

#[test]
fn subtract_randomized_against_bitmap() {
    let mut rng = Rng(12345);
    for _ in 0..300 {
        let pages = 64u64;
        let mut rnd_ranges = |n: u64| -> Vec<(u64, u64)> {
            (0..rng.below(n))
                .map(|_| {
                    let a = rng.below(pages * K);
                    let b = rng.below(pages * K);
                    (a, b)
                })
                .collect()
        };
        let avail = rnd_ranges(6);
        let reserved = rnd_ranges(6);
        let mut bitmap = vec![false; pages as usize];
        for &(s, e) in &avail {
            for p in 0..pages {
                if s <= p * K && (p + 1) * K <= e {
                    bitmap[p as usize] = true;
                }
            }
        }
        for &(s, e) in &reserved {
            for p in 0..pages {
                if s < e && s < (p + 1) * K && p * K < e {
                    bitmap[p as usize] = false;
                }
            }
        }
        let mut want = Vec::new();
        let mut p = 0;
        while p < pages {
            if bitmap[p as usize] {
                let start = p;
                while p < pages && bitmap[p as usize] {
                    p += 1;
                }
                want.push((start * K, p * K));
            } else {
                p += 1;
            }
        }
        assert_eq!(
            subtract(&avail, &reserved),
            (want, 0),
            "{avail:x?} - {reserved:x?}"
        );
    }
}
