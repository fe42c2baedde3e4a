//! Host tests for the direct map's shape: exact cover of the RAM, the
//! largest page everywhere, and edges cut into 4 KiB pages.

use super::*;
use crate::testrng::Rng;

const K: u64 = 4096;
const M: u64 = 1 << 20;
const G: u64 = 1 << 30;

fn sizes(ranges: &[(u64, u64)], huge: bool) -> (usize, usize, usize) {
    let mut n = (0, 0, 0);
    for c in chunks(ranges, huge) {
        match c.size {
            PAGE_SIZE => n.0 += 1,
            LARGE_PAGE => n.1 += 1,
            HUGE_PAGE => n.2 += 1,
            other => panic!("page of {other:#x}"),
        }
    }
    n
}

#[test]
fn whole_gibs_take_huge_pages_when_offered() {
    assert_eq!(sizes(&[(0, 8 * G)], true), (0, 0, 8));
    assert_eq!(sizes(&[(0, 8 * G)], false), (0, 4096, 0));
    // q35 with 8 GiB: 2 GiB low (a little short), 6 GiB from 4 GiB.
    let q35 = [(0, 0x9f000), (M, 2 * G - 128 * 1024), (4 * G, 10 * G)];
    // Low: 159 pages, then 1 MiB..2 MiB (256 pages), 2 MiB..1 GiB (511
    // large), the second GiB less 128 KiB (511 large, 480 pages).
    assert_eq!(sizes(&q35, true), (159 + 256 + 480, 511 + 511, 6));
}

#[test]
fn edges_are_cut_small() {
    // 4 KiB .. 4 MiB + 8 KiB: 511 pages, one 2 MiB page, 2 pages.
    let c: Vec<Chunk> = chunks(&[(K, 4 * M + 2 * K)], true).collect();
    assert_eq!(c.len(), 511 + 1 + 2);
    assert_eq!(c[0], Chunk { phys: K, size: K });
    assert_eq!(
        c[511],
        Chunk {
            phys: 2 * M,
            size: LARGE_PAGE
        }
    );
    assert_eq!(
        c.last(),
        Some(&Chunk {
            phys: 4 * M + K,
            size: K
        })
    );
    // Unaligned ends are rounded inward; empty and inverted ranges vanish.
    assert_eq!(
        chunks(&[(1, K - 1), (5 * K, 5 * K), (9 * K, 3 * K)], true).count(),
        0
    );
    assert_eq!(
        chunks(&[(K - 1, 2 * K + 1)], true).collect::<Vec<_>>(),
        vec![Chunk { phys: K, size: K }]
    );
    // Near the top of the address space nothing overflows.
    let top = u64::MAX - 3 * K + 1;
    assert_eq!(chunks(&[(top, u64::MAX)], true).count(), 2);
    assert_eq!(chunks(&[(u64::MAX - 10, u64::MAX)], true).count(), 0);
}

#[test]
fn randomized_cover_is_exact_and_maximal() {
    let mut rng = Rng(0xd1ec7);
    for _ in 0..300 {
        // Sorted, disjoint ranges over 8 GiB, some with odd edges.
        let mut ranges = Vec::new();
        let mut at = 0u64;
        for _ in 0..rng.below(6) {
            let unit = [K, 2 * M, G][rng.below(3) as usize];
            at += rng.below(3) * unit + rng.below(5) * K;
            let len = rng.below(4) * unit + rng.below(600) * K;
            ranges.push((at, at + len));
            at += len + K;
        }
        let huge = rng.below(2) == 0;
        let mut prev_end = 0;
        for c in chunks(&ranges, huge) {
            assert!(c.phys >= prev_end, "{ranges:x?}: overlap at {c:x?}");
            assert!(c.phys.is_multiple_of(c.size), "{c:x?}");
            assert!(huge || c.size != HUGE_PAGE);
            let r = ranges
                .iter()
                .find(|&&(s, e)| s <= c.phys && c.phys + c.size <= e)
                .unwrap_or_else(|| panic!("{ranges:x?}: {c:x?} outside RAM"));
            // The next size up would not have fitted.
            let up = match c.size {
                PAGE_SIZE => Some(LARGE_PAGE),
                LARGE_PAGE if huge => Some(HUGE_PAGE),
                _ => None,
            };
            if let Some(up) = up {
                let block = c.phys & !(up - 1);
                assert!(
                    block < r.0 || block + up > r.1,
                    "{ranges:x?}: {c:x?} could be larger"
                );
            }
            prev_end = c.phys + c.size;
        }
        let mapped: u64 = chunks(&ranges, huge).map(|c| c.size).sum();
        let ram: u64 = ranges.iter().map(|&(s, e)| e - s).sum();
        assert_eq!(mapped, ram, "{ranges:x?}");
    }
}
