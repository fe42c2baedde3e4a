//! Test table frames for the I/O MMU's host tests: a `TableFrames` that
//! counts what it hands out, refuses on demand, and catches double frees.
//!
//! Rules: test-only; a pfn is never handed out twice, so a table used
//! after it was freed cannot be mistaken for a fresh one; the memory the
//! frames stand for is `pagetable::tests::Mem` (unwritten words read 0).

use crate::frame::Frame;
use crate::pagetable::TableFrames;
use std::collections::HashSet;

pub(crate) use crate::pagetable::tests::Mem;

pub(crate) struct Frames {
    next: u64,
    pub live: HashSet<u64>,
    /// Allocations left before `alloc_table` says no (`None`: no limit).
    pub budget: Option<u64>,
    pub allocated: u64,
    pub freed: u64,
}

impl Frames {
    /// Frames from pfn `first` up.
    pub fn new(first: u64) -> Frames {
        Frames {
            next: first,
            live: HashSet::new(),
            budget: None,
            allocated: 0,
            freed: 0,
        }
    }
}

impl TableFrames for Frames {
    fn alloc_table(&mut self) -> Option<Frame> {
        if let Some(b) = &mut self.budget {
            if *b == 0 {
                return None;
            }
            *b -= 1;
        }
        let pfn = self.next;
        self.next += 1;
        self.live.insert(pfn);
        self.allocated += 1;
        Some(Frame::from_pfn(pfn))
    }

    fn free_table(&mut self, frame: Frame) {
        assert!(
            self.live.remove(&frame.pfn()),
            "table {frame:?} freed twice or never allocated"
        );
        self.freed += 1;
    }
}
