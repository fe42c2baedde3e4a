//! The scheduler's ready queues: fixed priorities, round-robin within a
//! priority.
//!
//! Rules: every operation is O(1) (push, pop, remove, contains: no scan,
//! ever) and none allocates. Each level is a doubly linked list threaded
//! through one link per table slot, and the links are made ahead with
//! [`RunQueue::reserve`] when a process is created, so that making a
//! process runnable never fails. An entry is named by its slot (the
//! caller maps its ids to slots) and carries the id `pop` hands back. A
//! slot is queued at most once: pushing one that is queued does nothing.

extern crate alloc;

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

/// Marks the end of a list.
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    id: u32,
    prev: u32,
    next: u32,
    level: u8,
    /// Which of the `Q` queues it is in.
    queue: u8,
    queued: bool,
}

const UNQUEUED: Link = Link {
    id: 0,
    prev: NIL,
    next: NIL,
    level: 0,
    queue: 0,
    queued: false,
};

/// The bytes of one slot's link (what a process's place in the queues
/// costs).
pub const LINK_BYTES: usize = core::mem::size_of::<Link>();

/// `Q` sets of ready queues (queue 0 and, for the scheduler, one per
/// CPU), `L` priority levels each, over slots of a table. A slot is in at
/// most one queue at a time; the methods without a queue argument are
/// about queue 0.
pub struct RunQueue<const L: usize, const Q: usize = 1> {
    heads: [[u32; L]; Q],
    tails: [[u32; L]; Q],
    links: Vec<Link>,
    /// Bit `l` of entry `q` set when level `l` of queue `q` is non-empty,
    /// so "is anyone this urgent waiting?" is one mask test on the IPC
    /// path rather than a walk.
    nonempty: [u64; Q],
    queued: usize,
}

impl<const L: usize, const Q: usize> Default for RunQueue<L, Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const L: usize, const Q: usize> RunQueue<L, Q> {
    pub const fn new() -> Self {
        const { assert!(L >= 1 && L <= 64, "one bit per level in a u64") };
        const { assert!(Q >= 1 && Q <= 256, "a queue number fits a u8") };
        RunQueue {
            heads: [[NIL; L]; Q],
            tails: [[NIL; L]; Q],
            links: Vec::new(),
            nonempty: [0; Q],
            queued: 0,
        }
    }

    /// Makes links for slots `0..slots`, so that pushing any of them never
    /// allocates.
    pub fn reserve(&mut self, slots: usize) -> Result<(), TryReserveError> {
        if let Some(extra) = slots.checked_sub(self.links.len())
            && extra > 0
        {
            self.links.try_reserve(extra)?;
            self.links.resize(slots, UNQUEUED);
        }
        Ok(())
    }

    /// Queues `slot` (carrying `id`) at the tail of `priority` (clamped to
    /// the last level). False, and nothing queued, if the slot has no
    /// link (it was never reserved: a caller's bug, not a reason to
    /// allocate here); a slot already queued stays where it is (true).
    pub fn push(&mut self, slot: usize, id: u32, priority: u8) -> bool {
        self.push_in(0, slot, id, priority)
    }

    /// [`push`](Self::push) into queue `q` (clamped to the last queue).
    pub fn push_in(&mut self, q: usize, slot: usize, id: u32, priority: u8) -> bool {
        let q = q.min(Q - 1);
        let Some(link) = self.links.get_mut(slot) else {
            return false;
        };
        if link.queued {
            return true;
        }
        let level = (priority as usize).min(L - 1);
        let tail = self.tails[q][level];
        *link = Link {
            id,
            prev: tail,
            next: NIL,
            level: level as u8,
            queue: q as u8,
            queued: true,
        };
        match tail {
            NIL => self.heads[q][level] = slot as u32,
            t => self.links[t as usize].next = slot as u32,
        }
        self.tails[q][level] = slot as u32;
        self.nonempty[q] |= 1 << level;
        self.queued += 1;
        true
    }

    /// Takes the head of the most urgent non-empty level: its id.
    pub fn pop(&mut self) -> Option<u32> {
        self.pop_from(0)
    }

    /// [`pop`](Self::pop) from queue `q`.
    pub fn pop_from(&mut self, q: usize) -> Option<u32> {
        let q = q.min(Q - 1);
        if self.nonempty[q] == 0 {
            return None;
        }
        let level = self.nonempty[q].trailing_zeros() as usize;
        let slot = self.heads[q][level] as usize;
        // The head has no predecessor: only its successor changes.
        let link = self.links.get_mut(slot)?;
        let (id, next) = (link.id, link.next);
        link.queued = false;
        self.heads[q][level] = next;
        match self.links.get_mut(next as usize) {
            Some(n) => n.prev = NIL,
            None => {
                self.tails[q][level] = NIL;
                self.nonempty[q] &= !(1 << level);
            }
        }
        self.queued -= 1;
        Some(id)
    }

    /// Takes `slot` out of whatever level it is queued at.
    pub fn remove(&mut self, slot: usize) -> bool {
        if !self.contains(slot) {
            return false;
        }
        self.unlink(slot);
        true
    }

    /// Unlinks a queued slot.
    fn unlink(&mut self, slot: usize) {
        let Link {
            prev,
            next,
            level,
            queue,
            ..
        } = self.links[slot];
        let (level, q) = (level as usize, queue as usize);
        match prev {
            NIL => self.heads[q][level] = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NIL => self.tails[q][level] = prev,
            n => self.links[n as usize].prev = prev,
        }
        if self.heads[q][level] == NIL {
            self.nonempty[q] &= !(1 << level);
        }
        self.links[slot].queued = false;
        self.queued -= 1;
    }

    pub fn contains(&self, slot: usize) -> bool {
        self.links.get(slot).is_some_and(|l| l.queued)
    }

    /// The queue `slot` is in, if queued.
    pub fn queue_of(&self, slot: usize) -> Option<usize> {
        self.links
            .get(slot)
            .filter(|l| l.queued)
            .map(|l| l.queue as usize)
    }

    /// Whether some entry of queue 0 is at least as urgent as `priority`.
    pub fn has_at_least(&self, priority: u8) -> bool {
        self.has_at_least_in(0, priority)
    }

    /// Whether some entry of queue `q` is at least as urgent as `priority`.
    #[inline]
    pub fn has_at_least_in(&self, q: usize, priority: u8) -> bool {
        let level = (priority as usize).min(L - 1);
        self.nonempty[q.min(Q - 1)] & (u64::MAX >> (63 - level)) != 0
    }

    /// The most urgent level with an entry in queue 0, if any.
    #[inline]
    pub fn best_level(&self) -> Option<u8> {
        self.best_level_in(0)
    }

    /// The most urgent level with an entry in queue `q`, if any.
    #[inline]
    pub fn best_level_in(&self, q: usize) -> Option<u8> {
        let bits = self.nonempty[q.min(Q - 1)];
        (bits != 0).then(|| bits.trailing_zeros() as u8)
    }

    /// Whether some entry of queue 0 is more urgent than `priority` (sits
    /// at a lower level): the IPC hand-off's test, one mask.
    #[inline]
    pub fn has_more_urgent_than(&self, priority: u8) -> bool {
        self.has_more_urgent_than_in(0, priority)
    }

    /// [`has_more_urgent_than`](Self::has_more_urgent_than) for queue `q`.
    #[inline]
    pub fn has_more_urgent_than_in(&self, q: usize, priority: u8) -> bool {
        // The most urgent non-empty level (64 when all are empty).
        self.nonempty[q.min(Q - 1)].trailing_zeros() < u32::from(priority)
    }

    /// Entries queued.
    pub fn len(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Slots with links (the bytes this holds grow with the table it
    /// serves, never with how often it is used).
    pub fn slots(&self) -> usize {
        self.links.len()
    }
}

#[cfg(test)]
mod tests;
