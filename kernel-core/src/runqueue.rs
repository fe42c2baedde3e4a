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
    queued: bool,
}

const UNQUEUED: Link = Link {
    id: 0,
    prev: NIL,
    next: NIL,
    level: 0,
    queued: false,
};

/// The bytes of one slot's link (what a process's place in the queues
/// costs).
pub const LINK_BYTES: usize = core::mem::size_of::<Link>();

/// Ready queues for `L` priority levels over slots of a table.
pub struct RunQueue<const L: usize> {
    heads: [u32; L],
    tails: [u32; L],
    links: Vec<Link>,
    /// Bit `l` set when level `l` is non-empty, so "is anyone this urgent
    /// waiting?" is one mask test on the IPC path rather than a walk.
    nonempty: u64,
    queued: usize,
}

impl<const L: usize> Default for RunQueue<L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const L: usize> RunQueue<L> {
    pub const fn new() -> Self {
        const { assert!(L >= 1 && L <= 64, "one bit per level in a u64") };
        RunQueue {
            heads: [NIL; L],
            tails: [NIL; L],
            links: Vec::new(),
            nonempty: 0,
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
        let Some(link) = self.links.get_mut(slot) else {
            return false;
        };
        if link.queued {
            return true;
        }
        let level = (priority as usize).min(L - 1);
        let tail = self.tails[level];
        *link = Link {
            id,
            prev: tail,
            next: NIL,
            level: level as u8,
            queued: true,
        };
        match tail {
            NIL => self.heads[level] = slot as u32,
            t => self.links[t as usize].next = slot as u32,
        }
        self.tails[level] = slot as u32;
        self.nonempty |= 1 << level;
        self.queued += 1;
        true
    }

    /// Takes the head of the most urgent non-empty level: its id.
    pub fn pop(&mut self) -> Option<u32> {
        if self.nonempty == 0 {
            return None;
        }
        let level = self.nonempty.trailing_zeros() as usize;
        let slot = self.heads[level] as usize;
        // The head has no predecessor: only its successor changes.
        let link = self.links.get_mut(slot)?;
        let (id, next) = (link.id, link.next);
        link.queued = false;
        self.heads[level] = next;
        match self.links.get_mut(next as usize) {
            Some(n) => n.prev = NIL,
            None => {
                self.tails[level] = NIL;
                self.nonempty &= !(1 << level);
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
            prev, next, level, ..
        } = self.links[slot];
        let level = level as usize;
        match prev {
            NIL => self.heads[level] = next,
            p => self.links[p as usize].next = next,
        }
        match next {
            NIL => self.tails[level] = prev,
            n => self.links[n as usize].prev = prev,
        }
        if self.heads[level] == NIL {
            self.nonempty &= !(1 << level);
        }
        self.links[slot].queued = false;
        self.queued -= 1;
    }

    pub fn contains(&self, slot: usize) -> bool {
        self.links.get(slot).is_some_and(|l| l.queued)
    }

    /// Whether some queued entry is at least as urgent as `priority`.
    pub fn has_at_least(&self, priority: u8) -> bool {
        let level = (priority as usize).min(L - 1);
        self.nonempty & (u64::MAX >> (63 - level)) != 0
    }

    /// The most urgent level with an entry, if any.
    #[inline]
    pub fn best_level(&self) -> Option<u8> {
        (self.nonempty != 0).then(|| self.nonempty.trailing_zeros() as u8)
    }

    /// Whether some queued entry is more urgent than `priority` (sits at a
    /// lower level): the IPC hand-off's test, one mask.
    #[inline]
    pub fn has_more_urgent_than(&self, priority: u8) -> bool {
        // The most urgent non-empty level (64 when all are empty).
        self.nonempty.trailing_zeros() < u32::from(priority)
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
