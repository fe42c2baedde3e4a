//! A short bounded list kept out of line: nothing but a null pointer until
//! its first item, then one heap block of room for all `N`.
//!
//! It is for per-handle lists most handles never use (a kernel device's or
//! hardware device's exports, device mappings): inline they would make
//! every bus slot, and every move of one, hundreds of bytes long.
//!
//! Rules: the block is allocated fallibly, by the first push, and given
//! back by `clear` (or when the list is dropped); the owner charges
//! [`OutOfLine::growth_bytes`] before a push and credits what `clear`
//! returns (or [`OutOfLine::held_bytes`] before dropping), so the memory
//! is always someone's. The list is not `Clone`: a copy would allocate
//! infallibly.

extern crate alloc;

use abi::Error;
use alloc::boxed::Box;
use arrayvec::ArrayVec;

/// At most `N` items, stored out of line.
#[derive(Debug)]
pub struct OutOfLine<T, const N: usize> {
    items: Option<Box<ArrayVec<T, N>>>,
}

impl<T, const N: usize> Default for OutOfLine<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> OutOfLine<T, N> {
    /// The bytes of the block a list holds once it has an item.
    pub const BYTES: usize = crate::slab::footprint(core::mem::size_of::<ArrayVec<T, N>>());

    /// An empty list (no memory).
    pub const fn new() -> Self {
        OutOfLine { items: None }
    }

    pub fn as_slice(&self) -> &[T] {
        self.items.as_deref().map_or(&[], |v| v.as_slice())
    }

    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.len() == N
    }

    /// The bytes the next push would allocate (the block, if there is
    /// none yet; else nothing).
    pub fn growth_bytes(&self) -> usize {
        if self.items.is_none() { Self::BYTES } else { 0 }
    }

    /// The bytes held now.
    pub fn held_bytes(&self) -> usize {
        if self.items.is_some() { Self::BYTES } else { 0 }
    }

    /// Makes the block now, if there is none, so that a push cannot fail
    /// for memory (`OutOfMemory` when it cannot be had).
    pub fn reserve(&mut self) -> Result<(), Error> {
        if self.items.is_none() {
            let block = crate::try_box(ArrayVec::new()).map_err(|_| Error::OutOfMemory)?;
            self.items = Some(block);
        }
        Ok(())
    }

    /// Appends `item`: `LimitReached` when the list has `N` items,
    /// `OutOfMemory` when its block cannot be had.
    pub fn try_push(&mut self, item: T) -> Result<(), Error> {
        self.reserve()?;
        match &mut self.items {
            Some(items) => items.try_push(item).map_err(|_| Error::LimitReached),
            None => Err(Error::OutOfMemory),
        }
    }

    /// Removes and returns the item at `index`, if there is one.
    pub fn remove(&mut self, index: usize) -> Option<T> {
        let items = self.items.as_mut()?;
        (index < items.len()).then(|| items.remove(index))
    }

    /// Keeps the items `keep` says yes to.
    pub fn retain(&mut self, keep: impl FnMut(&mut T) -> bool) {
        if let Some(items) = &mut self.items {
            items.retain(keep);
        }
    }

    /// Empties the list and gives its block back; returns the bytes freed
    /// (for the owner to credit).
    pub fn clear(&mut self) -> usize {
        let freed = self.held_bytes();
        self.items = None;
        freed
    }
}

impl<T: PartialEq, const N: usize> OutOfLine<T, N> {
    pub fn contains(&self, item: &T) -> bool {
        self.as_slice().contains(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_memory_until_the_first_item_and_none_after_clear() {
        let mut l: OutOfLine<u64, 3> = OutOfLine::new();
        assert_eq!(core::mem::size_of_val(&l), 8);
        assert_eq!(
            (l.held_bytes(), l.growth_bytes()),
            (0, OutOfLine::<u64, 3>::BYTES)
        );
        assert!(l.is_empty() && l.iter().next().is_none());
        l.try_push(1).unwrap();
        assert_eq!(
            (l.held_bytes(), l.growth_bytes()),
            (OutOfLine::<u64, 3>::BYTES, 0)
        );
        const { assert!(OutOfLine::<u64, 3>::BYTES >= 3 * 8) };
        assert_eq!(l.clear(), OutOfLine::<u64, 3>::BYTES);
        assert_eq!((l.held_bytes(), l.len()), (0, 0));
        assert_eq!(l.clear(), 0);
        l.reserve().unwrap();
        assert_eq!((l.held_bytes(), l.len()), (OutOfLine::<u64, 3>::BYTES, 0));
    }

    #[test]
    fn bounded_with_remove_retain_and_contains() {
        let mut l: OutOfLine<u32, 3> = OutOfLine::new();
        for v in [10, 20, 30] {
            l.try_push(v).unwrap();
        }
        assert!(l.is_full());
        assert_eq!(l.try_push(40), Err(Error::LimitReached));
        assert_eq!(l.remove(1), Some(20));
        assert_eq!(l.remove(5), None);
        assert!(l.contains(&30) && !l.contains(&20));
        l.retain(|v| *v != 10);
        assert_eq!(l.as_slice(), &[30]);
        assert_eq!(OutOfLine::<u32, 3>::new().remove(0), None);
    }
}
