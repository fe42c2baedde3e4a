//! A table of boxed objects indexed by small integer ids (process ids):
//! lookups are an array index, the lowest free id is handed out next, and
//! the table shrinks back when its top empties.
//!
//! Rules: objects are boxed so their addresses never move while they are
//! in the table (the kernel's entry code keeps a pointer into the current
//! process); insertion reserves memory fallibly and hands the object back
//! on failure; id 0 is never used.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

pub struct IdTable<T> {
    slots: Vec<Option<Box<T>>>,
    len: usize,
}

impl<T> Default for IdTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> IdTable<T> {
    pub const fn new() -> IdTable<T> {
        IdTable {
            slots: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn get(&self, id: u32) -> Option<&T> {
        self.slots.get(id as usize)?.as_deref()
    }

    #[inline]
    pub fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.slots.get_mut(id as usize)?.as_deref_mut()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.get(id).is_some()
    }

    /// The lowest unused id (never 0).
    pub fn free_id(&self) -> u32 {
        (1..self.slots.len())
            .find(|&i| self.slots[i].is_none())
            .unwrap_or(self.slots.len().max(1)) as u32
    }

    /// Puts `value` at `id` (which must be free); hands it back if memory
    /// for the slot cannot be had or the id is taken.
    pub fn insert(&mut self, id: u32, value: Box<T>) -> Result<(), Box<T>> {
        let i = id as usize;
        if id == 0 || self.get(id).is_some() {
            return Err(value);
        }
        if self.slots.len() <= i {
            if self.slots.try_reserve(i + 1 - self.slots.len()).is_err() {
                return Err(value);
            }
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(value);
        self.len += 1;
        Ok(())
    }

    /// Takes the object out; the table shrinks when its top is empty.
    pub fn remove(&mut self, id: u32) -> Option<Box<T>> {
        let v = self.slots.get_mut(id as usize)?.take()?;
        self.len -= 1;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        if self.slots.capacity() > 2 * self.slots.len().max(16) {
            self.slots.shrink_to(self.slots.len().max(16));
        }
        Some(v)
    }

    /// Every object with its id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_deref().map(|v| (i as u32, v)))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|s| s.as_deref_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_id_and_reuse() {
        let mut t: IdTable<u32> = IdTable::new();
        assert_eq!(t.free_id(), 1);
        for id in 1..=5 {
            assert_eq!(t.free_id(), id);
            t.insert(id, Box::new(id * 10)).unwrap();
        }
        assert_eq!(t.remove(3).map(|b| *b), Some(30));
        assert_eq!(t.free_id(), 3);
        assert_eq!(t.get(3), None);
        assert_eq!(t.get(4), Some(&40));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn refuses_zero_and_taken_ids() {
        let mut t: IdTable<u8> = IdTable::new();
        assert!(t.insert(0, Box::new(1)).is_err());
        t.insert(2, Box::new(2)).unwrap();
        assert_eq!(t.insert(2, Box::new(3)).map_err(|b| *b), Err(3));
        assert_eq!(t.get(u32::MAX), None);
        assert_eq!(t.remove(99), None);
    }

    #[test]
    fn boxes_do_not_move_and_the_table_shrinks() {
        let mut t: IdTable<[u64; 4]> = IdTable::new();
        t.insert(1, Box::new([1; 4])).unwrap();
        let addr = t.get(1).unwrap() as *const _ as usize;
        for id in 2..2000 {
            t.insert(id, Box::new([id as u64; 4])).unwrap();
        }
        assert_eq!(t.get(1).unwrap() as *const _ as usize, addr);
        for id in 2..2000 {
            t.remove(id);
        }
        assert!(t.slots.capacity() <= 32, "capacity {}", t.slots.capacity());
        assert_eq!(t.iter().count(), 1);
    }
}
