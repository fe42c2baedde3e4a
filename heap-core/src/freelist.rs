//! The free list of the heap's large blocks: free ranges kept in address
//! order, each described by a node stored in its own first 16 bytes, so
//! the list needs no memory of its own.
//!
//! Rules: every range is 16-byte aligned and a multiple of 16 bytes long
//! (`GRAIN`); ranges never overlap and never touch (giving a range back
//! merges it with its neighbours); `take` splits a range without leaving a
//! piece smaller than `GRAIN`. The list trusts its caller to give back only
//! ranges it took (or new memory): it has no other way to check.

use core::ptr;

/// The unit of every size and address in the list.
pub const GRAIN: usize = 16;

#[repr(C)]
struct Node {
    size: usize,
    next: *mut Node,
}

/// Free ranges in address order.
pub struct FreeList {
    head: *mut Node,
}

// SAFETY: the list owns the memory its nodes live in (the ranges given to
// it); moving the list to another thread moves that ownership along.
unsafe impl Send for FreeList {}

impl Default for FreeList {
    fn default() -> Self {
        Self::new()
    }
}

const fn align_up(x: usize, align: usize) -> Option<usize> {
    match x.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

impl FreeList {
    pub const fn new() -> FreeList {
        FreeList {
            head: ptr::null_mut(),
        }
    }

    /// Takes `size` bytes aligned to `align` (a power of two, at least
    /// `GRAIN`) from the first range that holds them; `size` must be a
    /// non-zero multiple of `GRAIN`. Returns the address.
    pub fn take(&mut self, size: usize, align: usize) -> Option<usize> {
        debug_assert!(size > 0 && size.is_multiple_of(GRAIN));
        debug_assert!(align.is_power_of_two() && align >= GRAIN);
        let mut prev: *mut Node = ptr::null_mut();
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: every node in the list lies at the start of a free
            // range the list owns (see `give`).
            let (cur_size, next) = unsafe { ((*cur).size, (*cur).next) };
            let base = cur as usize;
            let end = base + cur_size;
            if let Some(start) = fit(base, end, size, align) {
                // SAFETY: `cur` and `prev` are nodes of the list; the
                // pieces written are inside the range `cur` describes.
                unsafe { self.split(prev, cur, next, start, start + size, end) };
                return Some(start);
            }
            prev = cur;
            cur = next;
        }
        None
    }

    /// Replaces node `cur` (after `prev`, before `next`) by the free pieces
    /// around `[start, stop)`.
    ///
    /// # Safety
    /// `cur` is a list node whose range `[cur, end)` contains `[start,
    /// stop)`, `prev` its predecessor (or null) and `next` its successor.
    unsafe fn split(
        &mut self,
        prev: *mut Node,
        cur: *mut Node,
        next: *mut Node,
        start: usize,
        stop: usize,
        end: usize,
    ) {
        let base = cur as usize;
        let mut link = next;
        if stop < end {
            let back = stop as *mut Node;
            // SAFETY: `[stop, end)` is free, at least GRAIN long and
            // aligned (every size and address is a multiple of GRAIN).
            unsafe {
                back.write(Node {
                    size: end - stop,
                    next,
                })
            };
            link = back;
        }
        if start > base {
            // SAFETY: `cur` keeps the front piece `[base, start)`.
            unsafe {
                (*cur).size = start - base;
                (*cur).next = link;
            }
            link = cur;
        }
        if prev.is_null() {
            self.head = link;
        } else {
            // SAFETY: `prev` is the node before `cur`.
            unsafe { (*prev).next = link };
        }
    }

    /// Gives `[addr, addr + size)` to the list, merging it with the ranges
    /// it touches.
    ///
    /// # Safety
    /// The range must be writable memory the caller owns and gives up,
    /// `GRAIN`-aligned, a non-zero multiple of `GRAIN` long, and overlap no
    /// range in the list.
    pub unsafe fn give(&mut self, addr: usize, size: usize) {
        debug_assert!(addr.is_multiple_of(GRAIN) && size.is_multiple_of(GRAIN) && size > 0);
        let mut prev: *mut Node = ptr::null_mut();
        let mut cur = self.head;
        while !cur.is_null() && (cur as usize) < addr {
            prev = cur;
            // SAFETY: a node of the list.
            cur = unsafe { (*cur).next };
        }
        let node = addr as *mut Node;
        let mut size = size;
        // Merge with the next range if they touch.
        let next = if !cur.is_null() && addr + size == cur as usize {
            // SAFETY: a node of the list.
            unsafe {
                size += (*cur).size;
                (*cur).next
            }
        } else {
            cur
        };
        // Merge into the previous range if they touch.
        if !prev.is_null() {
            // SAFETY: a node of the list.
            let prev_end = prev as usize + unsafe { (*prev).size };
            if prev_end == addr {
                // SAFETY: as above.
                unsafe {
                    (*prev).size += size;
                    (*prev).next = next;
                }
                return;
            }
        }
        // SAFETY: the caller gives us `[addr, addr + size)`.
        unsafe { node.write(Node { size, next }) };
        if prev.is_null() {
            self.head = node;
        } else {
            // SAFETY: a node of the list.
            unsafe { (*prev).next = node };
        }
    }

    /// The free ranges in address order, as (address, size).
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut cur = self.head;
        core::iter::from_fn(move || {
            if cur.is_null() {
                return None;
            }
            let node = cur;
            // SAFETY: a node of the list.
            let (size, next) = unsafe { ((*node).size, (*node).next) };
            cur = next;
            Some((node as usize, size))
        })
    }

    /// Free bytes in all ranges.
    pub fn free_bytes(&self) -> usize {
        self.ranges().map(|(_, s)| s).sum()
    }
}

/// Where `size` bytes aligned to `align` start inside `[base, end)`
/// without leaving a front piece smaller than `GRAIN`, if they fit.
fn fit(base: usize, end: usize, size: usize, align: usize) -> Option<usize> {
    let mut start = align_up(base, align)?;
    if start != base && start - base < GRAIN {
        start = align_up(base + GRAIN, align)?;
    }
    (start.checked_add(size)? <= end).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{Layout, alloc, dealloc};

    struct Arena {
        base: usize,
        layout: Layout,
    }

    impl Arena {
        fn new(len: usize) -> Arena {
            let layout = Layout::from_size_align(len, 4096).unwrap();
            // SAFETY: a non-zero size.
            let base = unsafe { alloc(layout) } as usize;
            assert_ne!(base, 0);
            Arena { base, layout }
        }
    }

    impl Drop for Arena {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(self.base as *mut u8, self.layout) };
        }
    }

    #[test]
    fn take_splits_and_give_merges() {
        let a = Arena::new(4096);
        let mut l = FreeList::new();
        // SAFETY: the arena is ours and given once.
        unsafe { l.give(a.base, 4096) };
        let x = l.take(64, 16).unwrap();
        assert_eq!(x, a.base);
        let y = l.take(64, 16).unwrap();
        assert_eq!(y, a.base + 64);
        assert_eq!(l.free_bytes(), 4096 - 128);
        // SAFETY: giving back what was taken.
        unsafe { l.give(x, 64) };
        assert_eq!(l.ranges().count(), 2);
        // SAFETY: as above.
        unsafe { l.give(y, 64) };
        assert_eq!(l.ranges().collect::<Vec<_>>(), [(a.base, 4096)]);
    }

    #[test]
    fn alignment_leaves_usable_pieces() {
        let a = Arena::new(8192);
        let mut l = FreeList::new();
        // SAFETY: the arena is ours and given once.
        unsafe { l.give(a.base + 16, 8192 - 16) };
        let x = l.take(32, 4096).unwrap();
        assert_eq!(x, a.base + 4096);
        // The front piece stays, the back piece too.
        assert_eq!(
            l.ranges().collect::<Vec<_>>(),
            [(a.base + 16, 4080), (a.base + 4128, 8192 - 4128)]
        );
        // A front gap under GRAIN is never left: align 32 at base + 16 + 16
        // would leave 0 or 16, both fine; align 64 from base+16 leaves 48.
        let y = l.take(16, 64).unwrap();
        assert_eq!(y % 64, 0);
        for (addr, size) in l.ranges() {
            assert!(size >= GRAIN && addr % GRAIN == 0);
        }
        // Too big: nothing changes.
        let before: Vec<_> = l.ranges().collect();
        assert_eq!(l.take(8192, 16), None);
        assert_eq!(l.ranges().collect::<Vec<_>>(), before);
    }

    #[test]
    fn merging_on_both_sides_in_any_order() {
        let a = Arena::new(4096);
        let mut l = FreeList::new();
        let parts = [
            (0, 512),
            (1024, 512),
            (512, 512),
            (3072, 1024),
            (1536, 1536),
        ];
        for (off, len) in parts {
            // SAFETY: disjoint pieces of the arena, each given once.
            unsafe { l.give(a.base + off, len) };
        }
        assert_eq!(l.ranges().collect::<Vec<_>>(), [(a.base, 4096)]);
    }
}
