//! Host tests of the heap: blocks are aligned, disjoint and keep their
//! contents; memory is reused; growth happens in batches and its failure
//! fails only the allocation at hand.

use super::*;
use std::alloc::{Layout, alloc, dealloc};
use std::collections::BTreeMap;

/// A page-aligned region standing in for the address space, with a
/// budget of bytes the "kernel" will map.
struct Region {
    base: usize,
    len: usize,
    mapped: usize,
    budget: usize,
    calls: Vec<(usize, usize, usize)>,
}

impl Region {
    fn new(len: usize, budget: usize) -> Region {
        let layout = Layout::from_size_align(len, PAGE).unwrap();
        // SAFETY: non-zero size.
        let base = unsafe { alloc(layout) } as usize;
        assert_ne!(base, 0);
        Region {
            base,
            len,
            mapped: 0,
            budget,
            calls: Vec::new(),
        }
    }

    fn heap(&self) -> Heap {
        Heap::new(self.base, self.len)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe {
            dealloc(
                self.base as *mut u8,
                Layout::from_size_align(self.len, PAGE).unwrap(),
            )
        };
    }
}

impl Grow for Region {
    fn grow(&mut self, at: usize, min: usize, want: usize) -> usize {
        self.calls.push((at - self.base, min, want));
        assert_eq!(at, self.base + self.mapped, "growth must be at the top");
        assert!(min > 0 && min <= want && min.is_multiple_of(PAGE) && want.is_multiple_of(PAGE));
        let left = self.budget - self.mapped;
        let n = if want <= left {
            want
        } else if min <= left {
            min
        } else {
            return 0;
        };
        // Fresh pages are zero, like vm_map's.
        // SAFETY: inside the region.
        unsafe { core::ptr::write_bytes(at as *mut u8, 0, n) };
        self.mapped += n;
        n
    }
}

fn fill(addr: usize, size: usize, byte: u8) {
    // SAFETY: tests fill only blocks they hold.
    unsafe { core::ptr::write_bytes(addr as *mut u8, byte, size) };
}

fn check(addr: usize, size: usize, byte: u8) {
    // SAFETY: as in `fill`.
    let s = unsafe { core::slice::from_raw_parts(addr as *const u8, size) };
    assert!(
        s.iter().all(|&b| b == byte),
        "block at {addr:#x} was overwritten"
    );
}

#[test]
fn classes_are_powers_of_two_up_to_small_max() {
    assert_eq!(class_of(1, 1), Some(0));
    assert_eq!(class_of(16, 8), Some(0));
    assert_eq!(class_of(17, 8), Some(1));
    assert_eq!(class_of(8, 64), Some(2));
    assert_eq!(class_of(SMALL_MAX, 16), Some(CLASSES - 1));
    assert_eq!(class_of(SMALL_MAX + 1, 16), None);
    assert_eq!(class_of(16, 4096), None);
}

#[test]
fn small_blocks_are_aligned_disjoint_and_reused() {
    let mut r = Region::new(1 << 20, 1 << 20);
    let mut h = r.heap();
    let a = h.alloc(24, 8, &mut r).unwrap();
    let b = h.alloc(24, 8, &mut r).unwrap();
    assert_eq!(a % 32, 0);
    assert_eq!(b % 32, 0);
    assert_ne!(a, b);
    // One growth of a whole batch served both.
    assert_eq!(r.calls, [(0, PAGE, GROW_BATCH)]);
    fill(a, 24, 1);
    fill(b, 24, 2);
    // SAFETY: freeing what we allocated, once.
    unsafe { h.dealloc(a, 24, 8) };
    check(b, 24, 2);
    assert_eq!(h.alloc(30, 4, &mut r), Some(a), "LIFO reuse");
    assert_eq!(h.stats().in_use, 64);
}

#[test]
fn large_blocks_merge_back_into_one_range() {
    let mut r = Region::new(1 << 20, 1 << 20);
    let mut h = r.heap();
    let sizes = [5000, 3000, 70_000, 4096, 10_000];
    let blocks: Vec<_> = sizes
        .iter()
        .map(|&s| (h.alloc(s, 8, &mut r).unwrap(), s))
        .collect();
    for (i, &(a, s)) in blocks.iter().enumerate() {
        fill(a, s, i as u8 + 1);
    }
    for (i, &(a, s)) in blocks.iter().enumerate() {
        check(a, s, i as u8 + 1);
    }
    // Free in a scrambled order: the list ends as one range.
    for &i in &[2, 0, 4, 1, 3] {
        let (a, s) = blocks[i];
        // SAFETY: each block freed once.
        unsafe { h.dealloc(a, s, 8) };
    }
    assert_eq!(h.stats().in_use, 0);
    let (base, top) = h.mapped();
    assert_eq!(h.large_free(), top - base);
    // And it is all usable at once.
    assert!(h.alloc(top - base, 16, &mut r).is_some());
}

#[test]
fn big_alignments_are_honoured() {
    let mut r = Region::new(4 << 20, 4 << 20);
    let mut h = r.heap();
    let _small = h.alloc(100, 8, &mut r).unwrap();
    for align in [4096, 8192, 65536, 1 << 20] {
        let a = h.alloc(3 * align / 2, align, &mut r).unwrap();
        assert_eq!(a % align, 0, "align {align}");
        fill(a, 3 * align / 2, 7);
    }
}

#[test]
fn growth_is_batched_and_falls_back_to_the_minimum() {
    // A budget of 3 pages: the 64 KiB batch cannot be had, one page can.
    let mut r = Region::new(1 << 20, 3 * PAGE);
    let mut h = r.heap();
    let a = h.alloc(5000, 8, &mut r).unwrap();
    assert_eq!(r.calls, [(0, 2 * PAGE, GROW_BATCH)]);
    assert_eq!(h.stats().mapped, 2 * PAGE);
    // 3000 bytes still fit in the remaining 3192 of those two pages.
    let b = h.alloc(3000, 8, &mut r).unwrap();
    assert_eq!(r.calls.len(), 1);
    assert!(b > a);
    // 5000 more do not, and 2 pages cannot be mapped: the allocation fails,
    // the heap is unchanged and usable.
    let before = h.stats();
    assert_eq!(h.alloc(5000, 8, &mut r), None);
    assert_eq!(h.stats().mapped, before.mapped);
    assert_eq!(h.stats().failures, 1);
    assert!(h.alloc(4000, 8, &mut r).is_some());
    assert_eq!(h.stats().mapped, 3 * PAGE);
}

#[test]
fn a_class_refill_short_of_memory_takes_one_block() {
    let mut r = Region::new(1 << 20, PAGE);
    let mut h = r.heap();
    // Fill the one page with a large block but 2048 bytes.
    let big = h.alloc(PAGE - 2048, 16, &mut r).unwrap();
    let s = h.alloc(2000, 8, &mut r).unwrap();
    assert_eq!(s, big + PAGE - 2048);
    assert_eq!(h.alloc(2000, 8, &mut r), None);
}

#[test]
fn the_region_end_is_never_crossed() {
    let mut r = Region::new(2 * PAGE, 1 << 20);
    let mut h = r.heap();
    assert_eq!(h.alloc(3 * PAGE, 8, &mut r), None);
    assert!(r.calls.is_empty());
    let a = h.alloc(2 * PAGE, 8, &mut r).unwrap();
    assert_eq!(r.calls, [(0, 2 * PAGE, 2 * PAGE)]);
    assert_eq!(h.alloc(16, 8, &mut r), None);
    // SAFETY: freed once.
    unsafe { h.dealloc(a, 2 * PAGE, 8) };
    assert!(h.alloc(16, 8, &mut r).is_some());
}

#[test]
fn odd_requests_are_refused_or_served() {
    let mut r = Region::new(1 << 20, 1 << 20);
    let mut h = r.heap();
    assert_eq!(h.alloc(16, 3, &mut r), None, "alignment not a power of two");
    assert_eq!(h.alloc(usize::MAX - 8, 8, &mut r), None);
    assert_eq!(h.alloc(usize::MAX / 2, 1 << 40, &mut r), None);
    // Zero bytes still get a distinct block.
    let a = h.alloc(0, 1, &mut r).unwrap();
    let b = h.alloc(0, 1, &mut r).unwrap();
    assert_ne!(a, b);
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_work_keeps_every_block_intact() {
    let mut r = Region::new(16 << 20, 16 << 20);
    let mut h = r.heap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // addr -> (size, align, fill byte)
    let mut live: BTreeMap<usize, (usize, usize, u8)> = BTreeMap::new();
    for step in 0..20_000u32 {
        if live.is_empty() || (live.len() < 400 && rng.next().is_multiple_of(2)) {
            let size = match rng.next() % 10 {
                0 => (rng.next() % 100_000) as usize,
                1..=3 => (rng.next() % 4000) as usize,
                _ => (rng.next() % 200) as usize,
            };
            let align = 1usize << (rng.next() % 13);
            let a = h.alloc(size, align, &mut r).expect("16 MiB is plenty");
            assert_eq!(a % align, 0);
            // Disjoint from its neighbours.
            if let Some((&pa, &(ps, _, _))) = live.range(..a).next_back() {
                assert!(pa + ps.max(1) <= a, "overlaps the block before");
            }
            if let Some((&na, _)) = live.range(a..).next() {
                assert!(a + size.max(1) <= na, "overlaps the block after");
            }
            let byte = step as u8 | 1;
            fill(a, size, byte);
            live.insert(a, (size, align, byte));
        } else {
            let k = (rng.next() % live.len() as u64) as usize;
            let (&a, &(s, al, byte)) = live.iter().nth(k).unwrap();
            check(a, s, byte);
            // SAFETY: freed once, with its layout.
            unsafe { h.dealloc(a, s, al) };
            live.remove(&a);
        }
    }
    for (&a, &(s, al, byte)) in &live {
        check(a, s, byte);
        // SAFETY: as above.
        unsafe { h.dealloc(a, s, al) };
    }
    assert_eq!(h.stats().in_use, 0);
    // Reuse kept the heap far below the bytes ever asked for.
    assert!(h.stats().mapped < 8 << 20, "mapped {}", h.stats().mapped);
}
