//! Host tests for the slab caches, using a page source backed by `std::alloc`.

use super::*;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Hands out real 4 KiB-aligned pages and checks every page it takes back.
struct TestSource {
    /// Live pages by address (the pointer kept for its provenance).
    live: HashMap<usize, NonNull<u8>>,
    allocs: usize,
    limit: Option<usize>,
}

const PAGE_LAYOUT: Layout = match Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!(),
};

impl TestSource {
    fn new() -> Self {
        TestSource {
            live: HashMap::new(),
            allocs: 0,
            limit: None,
        }
    }
}

impl PageSource for TestSource {
    fn alloc_page(&mut self) -> Option<NonNull<u8>> {
        if self.limit.is_some_and(|l| self.live.len() >= l) {
            return None;
        }
        // SAFETY: the layout has non-zero size.
        let p = NonNull::new(unsafe { std::alloc::alloc(PAGE_LAYOUT) })?;
        // Poison so that nothing relies on zeroed pages.
        // SAFETY: the page is 4096 writable bytes we own.
        unsafe { p.as_ptr().write_bytes(0xA5, 4096) };
        assert!(self.live.insert(p.as_ptr() as usize, p).is_none());
        self.allocs += 1;
        Some(p)
    }

    unsafe fn free_page(&mut self, page: NonNull<u8>) {
        assert!(
            self.live.remove(&(page.as_ptr() as usize)).is_some(),
            "freed a page not handed out"
        );
        // SAFETY: the page came from `alloc_page` with this layout.
        unsafe { std::alloc::dealloc(page.as_ptr(), PAGE_LAYOUT) };
    }
}

impl Drop for TestSource {
    fn drop(&mut self) {
        for p in self.live.values() {
            // SAFETY: every live page came from `alloc_page`.
            unsafe { std::alloc::dealloc(p.as_ptr(), PAGE_LAYOUT) };
        }
    }
}

fn fill(p: NonNull<u8>, len: usize, tag: u8) {
    // SAFETY: tests only fill objects they own, up to their class size.
    unsafe { p.as_ptr().write_bytes(tag, len) };
}

fn check(p: NonNull<u8>, len: usize, tag: u8) {
    // SAFETY: as for `fill`.
    let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), len) };
    assert!(bytes.iter().all(|&b| b == tag), "object at {p:p} corrupted");
}

#[test]
fn objects_per_page() {
    assert_eq!(SlabCache::new(16).objects_per_page(), (4096 - 32) / 16);
    assert_eq!(SlabCache::new(32).objects_per_page(), 127);
    assert_eq!(SlabCache::new(64).objects_per_page(), 63);
    assert_eq!(SlabCache::new(1024).objects_per_page(), 3);
}

#[test]
#[should_panic]
fn bad_object_size_panics() {
    let _ = SlabCache::new(48);
}

#[test]
fn cache_fill_free_and_return_pages() {
    for size in SIZE_CLASSES {
        let mut src = TestSource::new();
        let mut cache = SlabCache::new(size);
        let per_page = cache.objects_per_page();
        let n = per_page * 3 + 1;
        let mut objs = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..n {
            let p = cache.alloc(&mut src).unwrap();
            assert_eq!(
                p.as_ptr() as usize % size,
                0,
                "misaligned {size}-byte object"
            );
            assert_ne!(p.as_ptr() as usize % 4096, 0, "object over the page header");
            assert!(seen.insert(p.as_ptr() as usize), "object handed out twice");
            fill(p, size, i as u8);
            objs.push(p);
        }
        assert_eq!(cache.pages_in_use(), 4);
        assert_eq!(src.live.len(), 4);
        assert_eq!(cache.objects_in_use(), n);
        for (i, &p) in objs.iter().enumerate() {
            check(p, size, i as u8);
        }
        // Free every other object first, then the rest.
        for pass in 0..2 {
            for (i, &p) in objs.iter().enumerate() {
                if i % 2 == pass {
                    // SAFETY: allocated above from this cache, freed once.
                    unsafe { cache.free(p, &mut src) };
                }
            }
        }
        assert_eq!(cache.objects_in_use(), 0);
        assert_eq!(cache.pages_in_use(), 1, "one empty page stays cached");
        assert_eq!(src.live.len(), 1);
        // SAFETY: `src` is this cache's source.
        unsafe { cache.trim(&mut src) };
        assert_eq!(cache.pages_in_use(), 0);
        assert!(src.live.is_empty());
    }
}

#[test]
fn empty_page_is_reused() {
    let mut src = TestSource::new();
    let mut cache = SlabCache::new(64);
    for _ in 0..100 {
        let p = cache.alloc(&mut src).unwrap();
        // SAFETY: just allocated.
        unsafe { cache.free(p, &mut src) };
    }
    assert_eq!(src.allocs, 1);
    assert_eq!(cache.pages_in_use(), 1);
}

#[test]
fn out_of_pages() {
    let mut src = TestSource::new();
    src.limit = Some(2);
    let mut cache = SlabCache::new(1024);
    let objs: Vec<_> = (0..6).map(|_| cache.alloc(&mut src).unwrap()).collect();
    assert_eq!(cache.alloc(&mut src), None);
    assert_eq!(cache.objects_in_use(), 6);
    // SAFETY: allocated above.
    unsafe { cache.free(objs[4], &mut src) };
    let again = cache.alloc(&mut src).unwrap();
    assert_eq!(again, objs[4]);
    assert_eq!(cache.alloc(&mut src), None);
}

#[test]
fn full_page_rejoins_partial_list() {
    let mut src = TestSource::new();
    let mut cache = SlabCache::new(512);
    let per = cache.objects_per_page();
    let objs: Vec<_> = (0..per * 3)
        .map(|_| cache.alloc(&mut src).unwrap())
        .collect();
    assert_eq!(cache.pages_in_use(), 3);
    // Free one object from the middle (full) page: the next alloc reuses it
    // rather than taking a fourth page.
    let victim = objs[per + 1];
    // SAFETY: allocated above.
    unsafe { cache.free(victim, &mut src) };
    assert_eq!(cache.alloc(&mut src), Some(victim));
    assert_eq!(cache.pages_in_use(), 3);
    // Empty the first and last pages entirely: one is cached, one returned.
    for &p in objs[..per].iter().chain(&objs[per * 2..]) {
        // SAFETY: allocated above, freed once.
        unsafe { cache.free(p, &mut src) };
    }
    assert_eq!(cache.pages_in_use(), 2);
    assert_eq!(src.live.len(), 2);
    for &p in &objs[per..per * 2] {
        // SAFETY: allocated above (victim re-allocated), freed once.
        unsafe { cache.free(p, &mut src) };
    }
    assert_eq!(cache.pages_in_use(), 1);
    assert_eq!(cache.objects_in_use(), 0);
}

#[test]
fn class_for() {
    let l = |size, align| Layout::from_size_align(size, align).unwrap();
    assert_eq!(SizeClassHeap::class_for(l(0, 1)), Some(0));
    assert_eq!(SizeClassHeap::class_for(l(1, 1)), Some(0));
    assert_eq!(SizeClassHeap::class_for(l(16, 8)), Some(0));
    assert_eq!(SizeClassHeap::class_for(l(17, 1)), Some(1));
    assert_eq!(SizeClassHeap::class_for(l(8, 64)), Some(2));
    assert_eq!(SizeClassHeap::class_for(l(1000, 8)), Some(6));
    assert_eq!(SizeClassHeap::class_for(l(1024, 1024)), Some(6));
    assert_eq!(SizeClassHeap::class_for(l(1025, 1)), None);
    assert_eq!(SizeClassHeap::class_for(l(8, 2048)), None);
}

#[test]
fn heap_too_big_is_none() {
    let mut src = TestSource::new();
    let mut heap = SizeClassHeap::new();
    assert_eq!(
        heap.alloc(Layout::from_size_align(4096, 8).unwrap(), &mut src),
        None
    );
    assert_eq!(heap.pages_in_use(), 0);
    assert!(src.live.is_empty());
}

use crate::testrng::Rng;

#[test]
fn heap_randomized_against_model() {
    let mut src = TestSource::new();
    let mut heap = SizeClassHeap::new();
    let mut rng = Rng(0xdead_beef_1234_5678);
    // start address -> (object, layout, class size, tag)
    let mut live: BTreeMap<usize, (NonNull<u8>, Layout, usize, u8)> = BTreeMap::new();
    let mut order: Vec<usize> = Vec::new();
    // Miri checks the pointer handling; it needs far fewer steps to do so.
    let steps = if cfg!(miri) { 600 } else { 20_000 };
    for step in 0..steps {
        if order.is_empty() || rng.below(100) < 55 {
            let size = rng.below(1100) as usize;
            let align = 1usize << rng.below(9);
            let layout = Layout::from_size_align(size, align).unwrap();
            let got = heap.alloc(layout, &mut src);
            let Some(class) = SizeClassHeap::class_for(layout) else {
                assert_eq!(got, None);
                continue;
            };
            let p = got.unwrap();
            let addr = p.as_ptr() as usize;
            let csize = SIZE_CLASSES[class];
            assert_eq!(addr % align, 0);
            assert_eq!(addr % csize, 0);
            // No overlap with the neighbours on either side.
            if let Some((&prev, &(_, _, psize, _))) = live.range(..=addr).next_back() {
                assert!(prev + psize <= addr, "overlaps previous object");
            }
            if let Some((&next, _)) = live.range(addr..).next() {
                assert!(addr + csize <= next, "overlaps next object");
            }
            let tag = step as u8;
            fill(p, csize, tag);
            live.insert(addr, (p, layout, csize, tag));
            order.push(addr);
        } else {
            let i = rng.below(order.len() as u64) as usize;
            let addr = order.swap_remove(i);
            let (p, layout, csize, tag) = live.remove(&addr).unwrap();
            check(p, csize, tag);
            // SAFETY: allocated from this heap with `layout`, freed once.
            unsafe { heap.dealloc(p, layout, &mut src) };
        }
        assert_eq!(heap.objects_in_use(), live.len());
        assert_eq!(heap.pages_in_use(), src.live.len());
    }
    for &(p, layout, csize, tag) in live.values() {
        check(p, csize, tag);
        // SAFETY: as above.
        unsafe { heap.dealloc(p, layout, &mut src) };
    }
    assert_eq!(heap.objects_in_use(), 0);
    assert!(heap.pages_in_use() <= SIZE_CLASSES.len());
    assert_eq!(heap.pages_in_use(), src.live.len());
    // SAFETY: `src` is the heap's source.
    unsafe { heap.trim(&mut src) };
    assert!(src.live.is_empty());
}

#[test]
fn footprint_is_the_class_or_whole_pages() {
    assert_eq!(footprint(0), 16);
    assert_eq!(footprint(17), 32);
    assert_eq!(footprint(1024), 1024);
    assert_eq!(footprint(1025), 4096);
    assert_eq!(footprint(8193), 12288);
}
