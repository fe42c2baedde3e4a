//! Range arithmetic for building a frame table at boot: the usable RAM
//! (the memory map's available ranges minus everything reserved), and the
//! segments a table covers it with.
//!
//! Rules: the inputs come from boot tables, so they may be unsorted,
//! overlapping or inverted, and nothing here trusts them; everything works
//! in fixed-size arrays (no allocation at boot) and is quadratic in the
//! number of ranges, which is a few dozen.

use arrayvec::ArrayVec;

use super::{MAX_RECORDS, MAX_SEGMENTS, Segment};
use crate::paging::{PAGE_SIZE, page_align_down, page_align_up};

/// Capacity of the output of [`subtract_ranges`].
pub const MAX_RANGES: usize = 128;

/// Computes the usable RAM: the union of `avail` minus the union of
/// `reserved`, as sorted, merged, page-aligned `[start, end)` ranges in `out`
/// (which is cleared first). Available ranges are rounded inward to pages,
/// reserved ones outward, so a partly reserved page is never handed out.
/// Empty ranges are dropped. Returns how many ranges did not fit in `out`.
///
/// The inputs come from boot tables, so they may be unsorted, overlapping or
/// inverted; this needs no allocation and is quadratic in the input size,
/// which is a few dozen ranges at boot.
pub fn subtract_ranges(
    avail: &[(u64, u64)],
    reserved: &[(u64, u64)],
    out: &mut ArrayVec<(u64, u64), MAX_RANGES>,
) -> usize {
    out.clear();
    let avail_at = |i: usize| -> Option<(u64, u64)> {
        let (s, e) = *avail.get(i)?;
        let s = page_align_up(s)?;
        let e = page_align_down(e);
        (s < e).then_some((s, e))
    };
    let reserved_at = |i: usize| -> Option<(u64, u64)> {
        let (s, e) = *reserved.get(i)?;
        if s >= e {
            return None;
        }
        // A reservation reaching the top of memory covers the last page.
        Some((page_align_down(s), page_align_up(e).unwrap_or(u64::MAX)))
    };
    let avails = || (0..avail.len()).filter_map(avail_at);
    let reserveds = || (0..reserved.len()).filter_map(reserved_at);

    let mut dropped = 0;
    let mut cursor = 0u64;
    loop {
        // Find the lowest address >= cursor that is available and not reserved.
        let mut x = cursor;
        let start = loop {
            if !avails().any(|(s, e)| s <= x && x < e) {
                match avails().filter(|&(s, _)| s > x).map(|(s, _)| s).min() {
                    Some(s) => x = s,
                    None => break None,
                }
            }
            match reserveds()
                .filter(|&(s, e)| s <= x && x < e)
                .map(|(_, e)| e)
                .max()
            {
                Some(e) => x = e,
                None => break Some(x),
            }
        };
        let Some(start) = start else { break };

        // Extend through chains of touching or overlapping available ranges.
        let mut end = start;
        while let Some(e) = avails()
            .filter(|&(s, e)| s <= end && end < e)
            .map(|(_, e)| e)
            .max()
        {
            end = e;
        }
        if let Some(r) = reserveds()
            .filter(|&(s, _)| s > start)
            .map(|(s, _)| s)
            .min()
        {
            end = end.min(r);
        }

        if out.try_push((start, end)).is_err() {
            dropped += 1;
        }
        cursor = end;
    }
    dropped
}

/// Holes a plan lets into its segments: at most this fraction of the RAM
/// it covers (1/16, so the records grow by at most 6.25 % over one per
/// frame of RAM, however far apart the RAM lies).
pub const HOLE_BUDGET_DIVISOR: u64 = 16;
/// Holes up to this many frames (2 MiB) are covered even when there are
/// few segments: 8 KiB of records buys a shorter lookup.
pub const SMALL_HOLE_FRAMES: u64 = 512;

/// The segments a frame table should have, from [`plan_segments`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentPlan {
    /// Sorted, disjoint, none empty.
    pub segments: ArrayVec<Segment, MAX_SEGMENTS>,
    /// RAM frames no segment covers: the smallest pieces of RAM, when
    /// there are more than [`MAX_SEGMENTS`] and the holes between them are
    /// too big to cover; pieces past [`MAX_RECORDS`]; and input ranges
    /// beyond [`MAX_RANGES`] (counted as given).
    pub dropped_frames: u64,
    /// Frames inside segments that are not RAM (records describing holes).
    pub hole_frames: u64,
}

impl SegmentPlan {
    /// Records the table needs: one per frame of every segment.
    pub fn records(&self) -> u64 {
        self.segments.iter().map(|s| s.frames).sum()
    }
}

/// One run of frames while planning: `[start, end)` in pfns, of which
/// `ram` are RAM (the rest are holes covered by merging).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Run {
    start: u64,
    end: u64,
    ram: u64,
}

impl Run {
    fn span(self) -> u64 {
        self.end - self.start
    }
}

/// Plans the segments of a frame table over the RAM `ram` (`[start, end)`
/// byte ranges, rounded inward to pages; any order, overlaps allowed): no
/// segment crosses an address of `splits`, at most [`MAX_SEGMENTS`]
/// segments, and holes covered only within [`HOLE_BUDGET_DIVISOR`]: pieces
/// of RAM are merged across the smallest holes first, and when the budget
/// runs out the smallest pieces are dropped instead. So the records needed
/// are linear in the RAM, whatever its addresses.
pub fn plan_segments(ram: &[(u64, u64)], splits: &[u64]) -> SegmentPlan {
    let mut plan = SegmentPlan::default();
    let mut runs: ArrayVec<Run, MAX_RANGES> = ArrayVec::new();
    for &(s, e) in ram {
        let Some(s) = page_align_up(s) else { continue };
        let (s, e) = (s / PAGE_SIZE, page_align_down(e) / PAGE_SIZE);
        if s >= e {
            continue;
        }
        if runs
            .try_push(Run {
                start: s,
                end: e,
                ram: e - s,
            })
            .is_err()
        {
            plan.dropped_frames += e - s;
        }
    }
    runs.sort_unstable();
    merge_overlaps(&mut runs);
    split_runs(&mut runs, splits, &mut plan.dropped_frames);

    let ram_frames: u64 = runs.iter().map(|r| r.ram).sum();
    let mut budget = ram_frames / HOLE_BUDGET_DIVISOR;
    let separated = |runs: &[Run], i: usize| {
        splits.iter().any(|&p| {
            let q = p / PAGE_SIZE;
            runs[i].end <= q && q <= runs[i + 1].start
        })
    };
    loop {
        let best = (0..runs.len().saturating_sub(1))
            .filter(|&i| !separated(&runs, i))
            .map(|i| (runs[i + 1].start - runs[i].end, i))
            .min();
        let Some((gap, i)) = best else { break };
        let wanted = runs.len() > MAX_SEGMENTS || gap <= SMALL_HOLE_FRAMES;
        if !wanted || gap > budget {
            break;
        }
        budget -= gap;
        let next = runs.remove(i + 1);
        runs[i].end = next.end;
        runs[i].ram += next.ram;
    }
    while runs.len() > MAX_SEGMENTS {
        let smallest = (0..runs.len()).min_by_key(|&i| runs[i].span());
        if let Some(i) = smallest {
            plan.dropped_frames += runs.remove(i).ram;
        }
    }
    let mut records = 0u64;
    for r in runs {
        if records + r.span() > MAX_RECORDS {
            plan.dropped_frames += r.ram;
            continue;
        }
        records += r.span();
        plan.hole_frames += r.span() - r.ram;
        let _ = plan.segments.try_push(Segment {
            first_pfn: r.start,
            frames: r.span(),
        });
    }
    plan
}

/// Merges sorted runs that overlap or touch.
fn merge_overlaps(runs: &mut ArrayVec<Run, MAX_RANGES>) {
    let mut out: ArrayVec<Run, MAX_RANGES> = ArrayVec::new();
    for r in runs.iter().copied() {
        match out.last_mut() {
            Some(last) if r.start <= last.end => {
                if r.end > last.end {
                    last.end = r.end;
                }
                last.ram = last.span();
            }
            // Cannot fail: `out` never holds more runs than `runs`.
            _ => {
                let _ = out.try_push(r);
            }
        }
    }
    *runs = out;
}

/// Cuts runs at every split address inside them.
fn split_runs(runs: &mut ArrayVec<Run, MAX_RANGES>, splits: &[u64], dropped: &mut u64) {
    let mut out: ArrayVec<Run, MAX_RANGES> = ArrayVec::new();
    for r in runs.iter().copied() {
        let mut start = r.start;
        while start < r.end {
            let cut = splits
                .iter()
                .map(|&p| p / PAGE_SIZE)
                .filter(|&q| start < q && q < r.end)
                .min()
                .unwrap_or(r.end);
            let piece = Run {
                start,
                end: cut,
                ram: cut - start,
            };
            if out.try_push(piece).is_err() {
                *dropped += piece.ram;
            }
            start = cut;
        }
    }
    *runs = out;
}
