//! A process's bus: the table of its attachments, named by handles.
//!
//! A handle is an id of a [`GenTable`]: `slot | generation << 8` (see
//! `abi::bus`), so a handle that was detached (or never issued) names
//! nothing: it is refused with `BadHandle`, never resolved to whatever
//! took the slot since. Generations have 40 bits and a slot that has used
//! them all is retired, so a handle value never recurs. Rights live in the
//! entry and only ever shrink.
//!
//! Rules: lookups check the handle completely (slot, generation) before
//! returning anything; a full bus is `LimitReached`; the table never
//! allocates on lookups, and grows only on insertion (fallibly).

use crate::gentable::{GenTable, IdShape, InsertAtError, Shape};
use abi::Error;
use abi::bus::{BUS_SLOTS, HANDLE_GENERATION_BITS, HANDLE_SLOT_BITS, RIGHTS_ALL};

/// The shape of handles.
pub const HANDLE_SHAPE: IdShape = IdShape {
    slot_bits: HANDLE_SLOT_BITS,
    gen_bits: HANDLE_GENERATION_BITS,
    wraps: false,
    grow_first: false,
};

/// The shape of handles, as a type.
#[derive(Clone, Debug)]
pub struct Handles;
impl Shape for Handles {
    const SHAPE: IdShape = HANDLE_SHAPE;
}

const _: () = assert!(BUS_SLOTS as u64 == 1 << HANDLE_SLOT_BITS);

/// One attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<T> {
    pub rights: u32,
    pub close_on_exec: bool,
    pub value: T,
}

/// The bus of one process.
#[derive(Clone, Debug)]
pub struct Bus<T> {
    table: GenTable<Entry<T>, Handles>,
}

impl<T> Default for Bus<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The handle value for a slot and generation.
pub fn handle(slot: usize, generation: u64) -> u64 {
    HANDLE_SHAPE.id(slot, generation)
}

impl<T> Bus<T> {
    pub const fn new() -> Bus<T> {
        Bus {
            table: GenTable::new(),
        }
    }

    /// Attachments in use.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The bytes of storage the bus holds (charged to its process).
    pub fn storage_bytes(&self) -> usize {
        self.table.storage_bytes()
    }

    /// What the next insertion would add to [`Bus::storage_bytes`].
    pub fn growth_bytes(&self) -> usize {
        self.table.growth_bytes()
    }

    /// The entry `h` names.
    #[inline]
    pub fn get(&self, h: u64) -> Result<&Entry<T>, Error> {
        self.table.get(h).ok_or(Error::BadHandle)
    }

    #[inline]
    pub fn get_mut(&mut self, h: u64) -> Result<&mut Entry<T>, Error> {
        self.table.get_mut(h).ok_or(Error::BadHandle)
    }

    /// The entry `h` names, if it holds every right in `needed`.
    #[inline]
    pub fn require(&self, h: u64, needed: u32) -> Result<&Entry<T>, Error> {
        let e = self.get(h)?;
        if e.rights & needed != needed {
            return Err(Error::AccessDenied);
        }
        Ok(e)
    }

    pub fn require_mut(&mut self, h: u64, needed: u32) -> Result<&mut Entry<T>, Error> {
        let e = self.get_mut(h)?;
        if e.rights & needed != needed {
            return Err(Error::AccessDenied);
        }
        Ok(e)
    }

    /// Makes sure the next insertion needs no memory.
    pub fn reserve_one(&mut self) -> Result<(), Error> {
        self.table.reserve_one()
    }

    /// Puts an attachment in a free slot; returns its handle. On failure
    /// the value comes back.
    #[inline]
    pub fn insert(
        &mut self,
        value: T,
        rights: u32,
        close_on_exec: bool,
    ) -> Result<u64, (Error, T)> {
        let entry = Entry {
            rights: rights & RIGHTS_ALL,
            close_on_exec,
            value,
        };
        self.table
            .insert(entry)
            .map_err(|(e, entry)| (e, entry.value))
    }

    /// Puts an attachment at exactly `h` (the same handle value), as fork
    /// does so that a child's handles equal its parent's. The slot must be
    /// free and not past `h`'s generation.
    pub fn insert_at(
        &mut self,
        h: u64,
        value: T,
        rights: u32,
        close_on_exec: bool,
    ) -> Result<(), (Error, T)> {
        let entry = Entry {
            rights: rights & RIGHTS_ALL,
            close_on_exec,
            value,
        };
        self.table.insert_at(h, entry).map_err(|(e, entry)| {
            let e = match e {
                InsertAtError::BadId | InsertAtError::Stale => Error::BadHandle,
                InsertAtError::Taken => Error::Busy,
                InsertAtError::OutOfMemory => Error::OutOfMemory,
            };
            (e, entry.value)
        })
    }

    /// Empties the slot `h` names; the handle is dead from now on.
    #[inline]
    pub fn remove(&mut self, h: u64) -> Result<Entry<T>, Error> {
        self.table.remove(h).ok_or(Error::BadHandle)
    }

    /// Keeps only `rights` of `h`'s rights. Asking for a right the handle
    /// does not have is refused (`AccessDenied`): rights never grow.
    pub fn restrict(&mut self, h: u64, rights: u32) -> Result<(), Error> {
        if rights & !RIGHTS_ALL != 0 {
            return Err(Error::InvalidArgument);
        }
        let e = self.get_mut(h)?;
        if rights & !e.rights != 0 {
            return Err(Error::AccessDenied);
        }
        e.rights = rights;
        Ok(())
    }

    /// Every attachment, with its handle.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Entry<T>)> {
        self.table.iter()
    }

    /// Every attachment, with its handle, taken out (the bus is consumed).
    pub fn into_entries(self) -> impl Iterator<Item = (u64, Entry<T>)> {
        self.table.into_iter_ids()
    }

    /// The handles of every attachment (to detach them one by one).
    pub fn handles(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(h, _)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::bus::{RIGHT_CLONE, RIGHT_READ, RIGHT_WRITE};

    #[test]
    fn first_handle_is_zero_and_lookup_works() {
        let mut b: Bus<&str> = Bus::new();
        let h = b.insert("registry", RIGHTS_ALL, false).unwrap();
        assert_eq!(h, 0);
        assert_eq!(b.get(h).unwrap().value, "registry");
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn stale_and_forged_handles_are_refused() {
        let mut b: Bus<u32> = Bus::new();
        let h = b.insert(1, RIGHT_READ, false).unwrap();
        assert_eq!(b.remove(h).map(|e| e.value), Ok(1));
        assert_eq!(b.get(h), Err(Error::BadHandle));
        assert_eq!(b.remove(h), Err(Error::BadHandle));
        let h2 = b.insert(2, RIGHT_READ, false).unwrap();
        assert_eq!(
            HANDLE_SHAPE.slot(h2),
            HANDLE_SHAPE.slot(h),
            "the slot is reused"
        );
        assert_ne!(h2, h);
        assert_eq!(b.get(h), Err(Error::BadHandle), "the old handle stays dead");
        for forged in [h2 + (1 << 8), 7, 255, 256 * 255 + 3, u64::MAX, 1 << 50] {
            assert_eq!(b.get(forged), Err(Error::BadHandle), "{forged:#x}");
        }
    }

    #[test]
    fn rights_only_shrink() {
        let mut b: Bus<()> = Bus::new();
        let h = b.insert((), RIGHT_READ | RIGHT_WRITE, false).unwrap();
        assert_eq!(b.require(h, RIGHT_WRITE).map(|_| ()), Ok(()));
        assert_eq!(
            b.restrict(h, RIGHT_READ | RIGHT_CLONE),
            Err(Error::AccessDenied)
        );
        assert_eq!(b.restrict(h, 1 << 30), Err(Error::InvalidArgument));
        b.restrict(h, RIGHT_READ).unwrap();
        assert_eq!(
            b.require(h, RIGHT_WRITE).map(|_| ()),
            Err(Error::AccessDenied)
        );
        assert_eq!(
            b.restrict(h, RIGHT_READ | RIGHT_WRITE),
            Err(Error::AccessDenied)
        );
        b.restrict(h, 0).unwrap();
        assert_eq!(b.get(h).unwrap().rights, 0);
    }

    #[test]
    fn full_bus_is_limit_reached() {
        let mut b: Bus<usize> = Bus::new();
        for i in 0..BUS_SLOTS as usize {
            b.insert(i, 0, false).unwrap();
        }
        assert_eq!(b.insert(9, 0, false), Err((Error::LimitReached, 9)));
        let h = handle(17, 0);
        b.remove(h).unwrap();
        assert_eq!(b.insert(9, 0, false), Ok(handle(17, 1)));
        assert_eq!(b.insert(10, 0, false), Err((Error::LimitReached, 10)));
    }

    #[test]
    fn insert_at_reproduces_handles() {
        let mut parent: Bus<u8> = Bus::new();
        let a = parent.insert(1, RIGHT_READ, false).unwrap();
        parent.remove(a).unwrap();
        let b = parent.insert(2, RIGHT_READ, true).unwrap();
        let mut child: Bus<u8> = Bus::new();
        for (h, e) in parent.iter() {
            child
                .insert_at(h, e.value, e.rights, e.close_on_exec)
                .unwrap();
        }
        assert_eq!(child.get(b).map(|e| e.value), Ok(2));
        assert_eq!(child.get(a), Err(Error::BadHandle));
        assert_eq!(
            child.insert_at(b, 3, 0, false).map_err(|(e, _)| e),
            Err(Error::Busy)
        );
        assert_eq!(
            child.insert_at(1 << 60, 3, 0, false).map_err(|(e, _)| e),
            Err(Error::BadHandle)
        );
    }

    #[test]
    fn handles_fit_in_48_bits_and_never_recur() {
        assert!(handle(255, (1 << HANDLE_GENERATION_BITS) - 1) < 1 << 48);
        let mut b: Bus<()> = Bus::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let h = b.insert((), 0, false).unwrap();
            assert!(seen.insert(h), "handle {h:#x} came back");
            b.remove(h).unwrap();
        }
    }
}
