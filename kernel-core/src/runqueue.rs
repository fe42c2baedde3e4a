//! The scheduler's ready queues: fixed priorities, round-robin within a
//! priority.
//!
//! Rules: level 0 is the most urgent; the caller queues an id at most once
//! (the kernel keeps a "queued" bit per process, so checking here would
//! only make every push O(n)); queue memory is
//! reserved ahead with [`RunQueue::reserve`] when a process is created, so
//! that making a process runnable never allocates and so never fails.

extern crate alloc;

use alloc::collections::TryReserveError;
use alloc::collections::VecDeque;

/// Ready queues for `L` priority levels over ids of type `u32`.
pub struct RunQueue<const L: usize> {
    levels: [VecDeque<u32>; L],
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
            levels: [const { VecDeque::new() }; L],
            nonempty: 0,
            queued: 0,
        }
    }

    /// Makes room so that `total` ids can be queued at any one level
    /// without allocating.
    pub fn reserve(&mut self, total: usize) -> Result<(), TryReserveError> {
        for level in &mut self.levels {
            let extra = total.saturating_sub(level.len());
            level.try_reserve(extra)?;
        }
        Ok(())
    }

    /// Queues `id` at the tail of `priority` (clamped to the last level).
    /// The caller guarantees `id` is not queued already.
    pub fn push(&mut self, id: u32, priority: u8) {
        let level = (priority as usize).min(L - 1);
        self.levels[level].push_back(id);
        self.nonempty |= 1 << level;
        self.queued += 1;
    }

    /// Takes the head of the most urgent non-empty level.
    pub fn pop(&mut self) -> Option<u32> {
        if self.nonempty == 0 {
            return None;
        }
        let level = self.nonempty.trailing_zeros() as usize;
        let q = &mut self.levels[level];
        let id = q.pop_front()?;
        if q.is_empty() {
            self.nonempty &= !(1 << level);
        }
        self.queued -= 1;
        Some(id)
    }

    /// Removes `id` wherever it is queued.
    pub fn remove(&mut self, id: u32) -> bool {
        for (level, q) in self.levels.iter_mut().enumerate() {
            if let Some(pos) = q.iter().position(|&x| x == id) {
                q.remove(pos);
                if q.is_empty() {
                    self.nonempty &= !(1 << level);
                }
                self.queued -= 1;
                return true;
            }
        }
        false
    }

    pub fn contains(&self, id: u32) -> bool {
        self.levels.iter().any(|q| q.contains(&id))
    }

    /// Whether some queued id is at least as urgent as `priority`.
    pub fn has_at_least(&self, priority: u8) -> bool {
        let level = (priority as usize).min(L - 1);
        self.nonempty & (u64::MAX >> (63 - level)) != 0
    }

    /// Whether some queued id is more urgent than `priority` (sits at a
    /// lower level): the IPC hand-off's test, one mask.
    #[inline]
    pub fn has_more_urgent_than(&self, priority: u8) -> bool {
        let level = (priority as usize).min(L);
        // `level` ≤ L ≤ 64: the shift is done in 128 bits so 64 is fine.
        let below = ((1u128 << level) - 1) as u64;
        self.nonempty & below != 0
    }

    /// Gives back memory beyond what `total` queued ids need.
    pub fn shrink(&mut self, total: usize) {
        for level in &mut self.levels {
            if level.capacity() > 2 * total.max(8) {
                level.shrink_to(total.max(8));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_within_a_level() {
        let mut q = RunQueue::<4>::new();
        q.reserve(8).unwrap();
        for id in 1..=3 {
            q.push(id, 2);
        }
        assert_eq!(q.pop(), Some(1));
        q.push(1, 2);
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn urgent_levels_first_and_clamping() {
        let mut q = RunQueue::<4>::new();
        q.push(10, 3);
        q.push(11, 200); // clamped to level 3
        q.push(12, 0);
        assert!(q.has_at_least(0));
        assert_eq!(q.pop(), Some(12));
        assert!(!q.has_at_least(2));
        assert!(q.has_at_least(3));
        assert_eq!(q.pop(), Some(10));
        assert_eq!(q.pop(), Some(11));
    }

    #[test]
    fn remove_and_contains() {
        let mut q = RunQueue::<2>::new();
        q.push(5, 0);
        q.push(6, 1);
        assert!(q.contains(5));
        assert_eq!(q.len(), 2);
        assert!(q.remove(6));
        assert_eq!(q.len(), 1);
        assert!(q.remove(5));
        assert!(!q.remove(5));
        assert!(!q.contains(5));
        assert_eq!(q.len(), 0);
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn shrink_gives_memory_back() {
        let mut q = RunQueue::<2>::new();
        q.reserve(1000).unwrap();
        q.push(1, 0);
        q.shrink(1);
        assert!(q.levels.iter().all(|l| l.capacity() < 100));
        assert_eq!(q.pop(), Some(1));
    }

    #[test]
    fn reserved_pushes_do_not_grow() {
        let mut q = RunQueue::<3>::new();
        q.reserve(100).unwrap();
        let caps: alloc::vec::Vec<usize> = q.levels.iter().map(|l| l.capacity()).collect();
        for id in 0..100 {
            q.push(id, (id % 3) as u8);
        }
        let after: alloc::vec::Vec<usize> = q.levels.iter().map(|l| l.capacity()).collect();
        assert_eq!(caps, after);
    }

    /// Random pushes, pops and removals against a plain model: the same
    /// order out, and `has_at_least` and `has_more_urgent_than` always
    /// agree with the levels.
    #[test]
    fn agrees_with_a_model_under_random_operations() {
        use crate::testrng::Rng;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut q = RunQueue::<8>::new();
        let mut model: [alloc::vec::Vec<u32>; 8] = Default::default();
        for step in 0..20_000u32 {
            match rng.below(3) {
                0 => {
                    let prio = rng.below(10) as u8;
                    q.push(step, prio);
                    model[(prio as usize).min(7)].push(step);
                }
                1 => {
                    let want = model
                        .iter_mut()
                        .find(|l| !l.is_empty())
                        .map(|l| l.remove(0));
                    assert_eq!(q.pop(), want);
                }
                _ => {
                    let level = rng.below(8) as usize;
                    if let Some(&id) = model[level].first() {
                        model[level].remove(0);
                        assert!(q.remove(id));
                    }
                }
            }
            for p in 0..10u8 {
                let want = model[..=(p as usize).min(7)].iter().any(|l| !l.is_empty());
                assert_eq!(q.has_at_least(p), want, "step {step} priority {p}");
                let more = model[..(p as usize).min(8)].iter().any(|l| !l.is_empty());
                assert_eq!(q.has_more_urgent_than(p), more, "step {step} priority {p}");
            }
            assert_eq!(q.len(), model.iter().map(|l| l.len()).sum::<usize>());
        }
    }
}
