use super::*;
use crate::testrng::Rng;

#[test]
fn page_zero_is_never_handed_out() {
    let mut s = IovaSpace::new(0, 16 * PAGE).unwrap();
    assert_eq!(s.bounds(), (PAGE, 16 * PAGE));
    assert_eq!(s.alloc(1), Ok(PAGE));
    assert_eq!(s.alloc(14), Ok(2 * PAGE));
    assert_eq!(
        s.alloc(1),
        Err(Error::LimitReached),
        "15 pages, page 0 left out"
    );
    assert_eq!(s.free(0, 1), Err(Error::NotFound));
    // A space made only of page 0 is refused.
    assert_eq!(IovaSpace::new(0, PAGE).unwrap_err(), Error::InvalidArgument);
}

#[test]
fn bad_bounds_are_refused() {
    for (base, limit) in [
        (1, 8 * PAGE),
        (0, 8 * PAGE + 1),
        (8 * PAGE, 8 * PAGE),
        (9 * PAGE, 8 * PAGE),
    ] {
        assert_eq!(
            IovaSpace::new(base, limit).unwrap_err(),
            Error::InvalidArgument
        );
    }
    let s = IovaSpace::new(0x10_0000, 1 << 39).unwrap();
    assert_eq!(s.bounds(), (0x10_0000, 1 << 39));
    assert_eq!(s.free_pages(), (1 << 27) - 0x100);
}

#[test]
fn first_fit_reuses_the_lowest_gap() {
    let mut s = IovaSpace::new(0, 1 << 30).unwrap();
    let a = s.alloc(4).unwrap();
    let b = s.alloc(2).unwrap();
    let c = s.alloc(8).unwrap();
    assert_eq!((a, b, c), (PAGE, 5 * PAGE, 7 * PAGE));
    s.free(b, 2).unwrap();
    assert_eq!(
        s.alloc(3).unwrap(),
        15 * PAGE,
        "the 2-page gap is too small"
    );
    assert_eq!(s.alloc(1).unwrap(), 5 * PAGE);
    assert_eq!(s.alloc(1).unwrap(), 6 * PAGE);
    assert_eq!(s.range_of(7 * PAGE + 5), Some((7 * PAGE, 8)));
    assert_eq!(s.range_of(14 * PAGE), Some((7 * PAGE, 8)));
    assert_eq!(s.range_of(18 * PAGE), None);
    assert_eq!(s.range_of(0), None);
    assert_eq!((s.ranges(), s.used_pages()), (5, 17));
}

#[test]
fn bad_frees_are_refused_and_change_nothing() {
    let mut s = IovaSpace::new(0, 1 << 30).unwrap();
    let a = s.alloc(4).unwrap();
    let b = s.alloc(4).unwrap();
    let before = (s.ranges(), s.used_pages());
    assert_eq!(s.free(a + 1, 4), Err(Error::InvalidArgument), "unaligned");
    assert_eq!(s.free(a, 0), Err(Error::InvalidArgument), "empty");
    assert_eq!(s.free(a, 3), Err(Error::InvalidArgument), "a piece");
    assert_eq!(s.free(a, 8), Err(Error::InvalidArgument), "spanning two");
    assert_eq!(s.free(a + PAGE, 3), Err(Error::NotFound), "inside a range");
    assert_eq!(
        s.free(b + 4 * PAGE, 1),
        Err(Error::NotFound),
        "never handed out"
    );
    assert_eq!(
        s.free(1 << 40, 1),
        Err(Error::NotFound),
        "outside the space"
    );
    assert_eq!((s.ranges(), s.used_pages()), before);
    s.free(a, 4).unwrap();
    assert_eq!(s.free(a, 4), Err(Error::NotFound), "double free");
    s.free(b, 4).unwrap();
    assert!(s.is_empty());
}

#[test]
fn limits() {
    let mut s = IovaSpace::new(0, 1 << 39).unwrap();
    assert_eq!(s.alloc(0), Err(Error::InvalidArgument));
    assert_eq!(
        s.alloc(1 << 27),
        Err(Error::LimitReached),
        "bigger than the space"
    );
    assert_eq!(s.alloc(u64::MAX), Err(Error::LimitReached));
    let all: Vec<u64> = (0..MAX_RANGES).map(|_| s.alloc(1).unwrap()).collect();
    assert_eq!(s.alloc(1), Err(Error::LimitReached), "the table is full");
    for iova in all {
        s.free(iova, 1).unwrap();
    }
    assert_eq!(
        s.alloc((1 << 27) - 1),
        Ok(PAGE),
        "the whole space, once empty"
    );
}

/// Whether `[start, end)` (pages) has a free gap of `n` pages, by brute
/// force over the model.
fn model_has_gap(live: &[(u64, u64)], first: u64, end: u64, n: u64) -> bool {
    let mut sorted = live.to_vec();
    sorted.sort();
    let mut at = first;
    for &(s, p) in &sorted {
        if s - at >= n {
            return true;
        }
        at = s + p;
    }
    end - at >= n
}

#[test]
fn model_random_alloc_free() {
    for seed in [3u64, 0x1234_5678, 0xfeed_f00d] {
        let mut rng = Rng(seed);
        // A small space, so that it fills and fragments.
        let (base, limit) = (0, 4096 * PAGE);
        let mut s = IovaSpace::new(base, limit).unwrap();
        let mut live: Vec<(u64, u64)> = Vec::new(); // (first page, pages)
        let mut freed: Vec<(u64, u64)> = Vec::new();
        let mut full = 0;
        for _ in 0..20_000 {
            match rng.below(8) {
                0..=3 => {
                    let n = match rng.below(4) {
                        0 => 1,
                        1 => 1 + rng.below(16),
                        2 => 1 + rng.below(256),
                        _ => 1 + rng.below(1024),
                    };
                    match s.alloc(n) {
                        Ok(iova) => {
                            assert_eq!(iova % PAGE, 0);
                            let (p, e) = (iova / PAGE, iova / PAGE + n);
                            assert!(p >= 1 && e <= limit / PAGE, "within bounds");
                            for &(q, m) in &live {
                                assert!(e <= q || q + m <= p, "overlap");
                            }
                            live.push((p, n));
                        }
                        Err(Error::LimitReached) => {
                            full += 1;
                            assert!(
                                live.len() == MAX_RANGES
                                    || !model_has_gap(&live, 1, limit / PAGE, n),
                                "first fit missed a gap of {n}"
                            )
                        }
                        Err(e) => panic!("alloc {n}: {e:?}"),
                    }
                }
                4..=6 if !live.is_empty() => {
                    let (p, n) = live.swap_remove(rng.below(live.len() as u64) as usize);
                    s.free(p * PAGE, n).unwrap();
                    freed.push((p, n));
                }
                _ => {
                    // A bad free: a stale range, a piece, or an odd address.
                    let before = (s.ranges(), s.used_pages());
                    if let Some(&(p, n)) = freed.last()
                        && !live.iter().any(|&(q, _)| q == p)
                    {
                        assert!(s.free(p * PAGE, n).is_err(), "double free");
                    }
                    if let Some(&(p, n)) = live.first() {
                        if n > 1 {
                            assert_eq!(s.free(p * PAGE, n - 1), Err(Error::InvalidArgument));
                            assert_eq!(s.free((p + 1) * PAGE, n - 1), Err(Error::NotFound));
                        }
                        assert_eq!(s.free(p * PAGE + 8, n), Err(Error::InvalidArgument));
                    }
                    assert_eq!((s.ranges(), s.used_pages()), before);
                }
            }
            assert_eq!(s.used_pages(), live.iter().map(|&(_, n)| n).sum::<u64>());
            assert_eq!(s.ranges(), live.len());
        }
        assert!(full > 0, "the space never filled");
        for (p, n) in live.drain(..) {
            assert_eq!(s.range_of(p * PAGE), Some((p * PAGE, n)));
            s.free(p * PAGE, n).unwrap();
        }
        assert!(s.is_empty());
        assert_eq!(s.free_pages(), 4095);
        assert_eq!(s.alloc(4095), Ok(PAGE));
    }
}

#[test]
fn fragmentation_bound_holds() {
    // k live ranges leave at most k + 1 gaps: any request up to
    // free / (k + 1) pages succeeds, however the ranges were placed.
    let mut rng = Rng(77);
    for _ in 0..200 {
        let mut s = IovaSpace::new(0, 2048 * PAGE).unwrap();
        let mut live = Vec::new();
        for _ in 0..rng.below(MAX_RANGES as u64) {
            if let Ok(iova) = s.alloc(1 + rng.below(64)) {
                live.push(iova);
            }
            if rng.below(3) == 0 && !live.is_empty() {
                let iova = live.swap_remove(rng.below(live.len() as u64) as usize);
                let (_, n) = s.range_of(iova).unwrap();
                s.free(iova, n).unwrap();
            }
        }
        let k = s.ranges() as u64;
        if k == MAX_RANGES as u64 {
            continue;
        }
        let n = s.free_pages() / (k + 1);
        if n > 0 {
            assert!(s.alloc(n).is_ok(), "{n} pages with {k} ranges live");
        }
    }
}
