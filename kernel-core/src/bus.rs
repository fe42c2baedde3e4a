//! A process's bus: the table of its attachments, named by handles.
//!
//! A handle is `slot | generation << 8` (see `abi::bus`). Every slot keeps
//! its generation when emptied and bumps it when reused, so a handle that
//! was detached (or never issued) names nothing: it is refused with
//! `BadHandle`, never resolved to whatever took the slot since. Rights live
//! in the entry and only ever shrink.
//!
//! Rules: lookups check the handle completely (range, slot, generation)
//! before returning anything; a full bus is `LimitReached`; the table
//! never allocates on lookups, and grows only on insertion (fallibly).

extern crate alloc;

use abi::Error;
use abi::bus::{BUS_SLOTS, RIGHTS_ALL};
use alloc::vec::Vec;

const SLOT_BITS: u32 = 8;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// Generations use 23 bits, so handles stay below 2^31 (non-negative in
/// any signed 32-bit type, as C callers may hold them).
const GEN_MASK: u32 = (1 << 23) - 1;

const _: () = assert!(BUS_SLOTS as u64 == SLOT_MASK + 1);

/// One attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<T> {
    pub rights: u32,
    pub close_on_exec: bool,
    pub value: T,
}

#[derive(Clone, Debug)]
struct Slot<T> {
    generation: u32,
    entry: Option<Entry<T>>,
}

/// The bus of one process.
#[derive(Clone, Debug)]
pub struct Bus<T> {
    slots: Vec<Slot<T>>,
    used: usize,
}

impl<T> Default for Bus<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The handle value for a slot and generation.
pub fn handle(slot: usize, generation: u32) -> u64 {
    slot as u64 | ((generation & GEN_MASK) as u64) << SLOT_BITS
}

impl<T> Bus<T> {
    pub const fn new() -> Bus<T> {
        Bus {
            slots: Vec::new(),
            used: 0,
        }
    }

    /// Attachments in use.
    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    fn locate(&self, h: u64) -> Result<usize, Error> {
        let slot = (h & SLOT_MASK) as usize;
        let generation = h >> SLOT_BITS;
        match self.slots.get(slot) {
            Some(s) if s.entry.is_some() && generation == s.generation as u64 => Ok(slot),
            _ => Err(Error::BadHandle),
        }
    }

    /// The entry `h` names.
    pub fn get(&self, h: u64) -> Result<&Entry<T>, Error> {
        let slot = self.locate(h)?;
        self.slots[slot].entry.as_ref().ok_or(Error::BadHandle)
    }

    pub fn get_mut(&mut self, h: u64) -> Result<&mut Entry<T>, Error> {
        let slot = self.locate(h)?;
        self.slots[slot].entry.as_mut().ok_or(Error::BadHandle)
    }

    /// The entry `h` names, if it holds every right in `needed`.
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

    /// Puts an attachment in the lowest free slot; returns its handle. On
    /// failure the value comes back.
    pub fn insert(
        &mut self,
        value: T,
        rights: u32,
        close_on_exec: bool,
    ) -> Result<u64, (Error, T)> {
        let free = self.slots.iter().position(|s| s.entry.is_none());
        let slot = match free {
            Some(slot) => slot,
            None if self.slots.len() < BUS_SLOTS as usize => {
                if self.slots.try_reserve(1).is_err() {
                    return Err((Error::OutOfMemory, value));
                }
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                self.slots.len() - 1
            }
            None => return Err((Error::LimitReached, value)),
        };
        Ok(self.fill(slot, value, rights, close_on_exec))
    }

    fn fill(&mut self, slot: usize, value: T, rights: u32, close_on_exec: bool) -> u64 {
        let s = &mut self.slots[slot];
        s.entry = Some(Entry {
            rights: rights & RIGHTS_ALL,
            close_on_exec,
            value,
        });
        self.used += 1;
        handle(slot, s.generation)
    }

    /// Puts an attachment at exactly `h` (the same handle value), as fork
    /// does so that a child's handles equal its parent's. The slot must be
    /// empty and not yet used, or last used with the generation before.
    pub fn insert_at(
        &mut self,
        h: u64,
        value: T,
        rights: u32,
        close_on_exec: bool,
    ) -> Result<(), (Error, T)> {
        let slot = (h & SLOT_MASK) as usize;
        let generation = (h >> SLOT_BITS) as u32;
        if h >> SLOT_BITS > GEN_MASK as u64 {
            return Err((Error::BadHandle, value));
        }
        if self.slots.len() <= slot {
            let extra = slot + 1 - self.slots.len();
            if self.slots.try_reserve(extra).is_err() {
                return Err((Error::OutOfMemory, value));
            }
            self.slots.resize_with(slot + 1, || Slot {
                generation: 0,
                entry: None,
            });
        }
        if self.slots[slot].entry.is_some() {
            return Err((Error::Busy, value));
        }
        self.slots[slot].generation = generation;
        self.fill(slot, value, rights, close_on_exec);
        Ok(())
    }

    /// Empties the slot `h` names; the next use of the slot has a new
    /// generation.
    pub fn remove(&mut self, h: u64) -> Result<Entry<T>, Error> {
        let slot = self.locate(h)?;
        let s = &mut self.slots[slot];
        let entry = s.entry.take().ok_or(Error::BadHandle)?;
        s.generation = (s.generation + 1) & GEN_MASK;
        self.used -= 1;
        Ok(entry)
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
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.entry.as_ref().map(|e| (handle(i, s.generation), e)))
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
        assert_eq!(h2 & SLOT_MASK, h & SLOT_MASK, "the slot is reused");
        assert_ne!(h2, h);
        assert_eq!(b.get(h), Err(Error::BadHandle), "the old handle stays dead");
        for forged in [h2 + (1 << 8), 7, 255, 256 * 255 + 3, u64::MAX, 1 << 40] {
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
            child.insert_at(1 << 40, 3, 0, false).map_err(|(e, _)| e),
            Err(Error::BadHandle)
        );
    }

    #[test]
    fn handles_fit_in_31_bits() {
        assert!(handle(255, u32::MAX) < 1 << 31);
    }
}
