//! The kernel's one table of named objects: a slab of slots where an id is
//! `slot | generation << slot_bits`. Handles, user-device clients, devices
//! and process ids are all ids of such tables.
//!
//! Every slot keeps its generation when emptied and bumps it, so an id
//! that was removed (or never issued) names nothing ever after: it is not
//! resolved to whatever took the slot since. Free slots wait in a FIFO, so
//! a slot is reused only after every other free slot was, which spaces out
//! reuses of one slot as far as the table allows.
//!
//! Rules: insert, remove and lookup are O(1) (no scan, ever); the table
//! grows one slot at a time, fallibly, and only when no free slot is left;
//! a slot whose generation would pass the table's largest is retired (never
//! used again) unless the table was made to wrap, which only a table whose
//! ids need recur only after a full cycle (process ids) may choose. With
//! 40-bit generations a retirement takes 2^40 reuses of one slot: longer
//! than any uptime at any rate the kernel can create objects.

extern crate alloc;

use abi::Error;
use alloc::vec::Vec;

/// Marks the end of the free list.
const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
enum State<T> {
    Used(T),
    Free { prev: u32, next: u32 },
    Retired,
}

#[derive(Clone, Debug)]
struct Slot<T> {
    generation: u64,
    state: State<T>,
}

/// The shape of a table's ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdShape {
    /// Bits of the id that name the slot (the table has at most
    /// `1 << slot_bits` slots).
    pub slot_bits: u32,
    /// Bits of generation above them.
    pub gen_bits: u32,
    /// Whether a generation wraps to 0 (true) or retires its slot.
    pub wraps: bool,
    /// Whether the table makes a new slot rather than reuse a free one
    /// while it may still grow, and never gives slots back, so that an id
    /// recurs only after its slot has been through every generation while
    /// every other free slot was taken in turn (process ids).
    pub grow_first: bool,
}

impl IdShape {
    const fn max_generation(self) -> u64 {
        (1u64 << self.gen_bits) - 1
    }

    /// The id of `slot` at `generation`.
    pub const fn id(self, slot: usize, generation: u64) -> u64 {
        slot as u64 | generation << self.slot_bits
    }

    /// The slot an id names.
    pub const fn slot(self, id: u64) -> usize {
        (id & ((1u64 << self.slot_bits) - 1)) as usize
    }

    /// The generation an id carries (ids with bits above the generation
    /// carry one no slot ever has).
    pub const fn generation(self, id: u64) -> u64 {
        id >> self.slot_bits
    }
}

/// What fixes a table's ids at compile time: a type naming an
/// [`IdShape`] (so every lookup's masks and shifts are constants).
pub trait Shape {
    const SHAPE: IdShape;
}

/// A generational table (see the module comment).
#[derive(Clone, Debug)]
pub struct GenTable<T, S: Shape> {
    slots: Vec<Slot<T>>,
    free_head: u32,
    free_tail: u32,
    len: usize,
    shape: core::marker::PhantomData<S>,
    /// The generation a newly made slot starts at: above every generation
    /// of a slot given back by `trim`, so that no id recurs through one.
    fresh_generation: u64,
    /// The tail of the free list is a slot made and never used yet (so a
    /// grow-first table takes it rather than make another).
    unused_tail: bool,
}

/// Why `insert_at` refused an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertAtError {
    /// The id is malformed for this table (slot or generation too large).
    BadId,
    /// The slot holds an object.
    Taken,
    /// The slot is retired, or its generation is already past the id's.
    Stale,
    /// Memory for new slots could not be had.
    OutOfMemory,
}

impl<T, S: Shape> Default for GenTable<T, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, S: Shape> GenTable<T, S> {
    /// An empty table with ids of `S`'s shape (at most 32 slot bits, and
    /// slot and generation bits together at most 64).
    pub const fn new() -> GenTable<T, S> {
        assert!(S::SHAPE.slot_bits >= 1 && S::SHAPE.slot_bits <= 32);
        assert!(S::SHAPE.gen_bits >= 1 && S::SHAPE.slot_bits + S::SHAPE.gen_bits <= 64);
        GenTable {
            slots: Vec::new(),
            free_head: NIL,
            free_tail: NIL,
            len: 0,
            shape: core::marker::PhantomData,
            fresh_generation: 0,
            unused_tail: false,
        }
    }

    pub fn shape(&self) -> IdShape {
        S::SHAPE
    }

    /// Objects in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most slots the table can have.
    pub fn max_slots(&self) -> usize {
        1usize << S::SHAPE.slot_bits.min(usize::BITS - 1)
    }

    /// Slots made so far (used, free and retired).
    pub fn slots_made(&self) -> usize {
        self.slots.len()
    }

    /// The bytes of slot storage the table holds now.
    pub fn storage_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Slot<T>>()
    }

    /// The bytes one more slot would add to the storage if it made the
    /// table grow now (0 when a free slot is waiting).
    pub fn growth_bytes(&self) -> usize {
        let grows =
            self.free_head == NIL || (S::SHAPE.grow_first && self.slots.len() < self.max_slots());
        if !grows || self.slots.len() < self.slots.capacity() {
            return 0;
        }
        let room = self.max_slots().saturating_sub(self.slots.len());
        self.slots.capacity().clamp(4, room.max(4)).min(room) * core::mem::size_of::<Slot<T>>()
    }

    #[inline]
    fn slot_index(&self, id: u64) -> Option<usize> {
        let slot = S::SHAPE.slot(id);
        match self.slots.get(slot) {
            Some(s) if s.generation == S::SHAPE.generation(id) => Some(slot),
            _ => None,
        }
    }

    /// The object `id` names.
    #[inline]
    pub fn get(&self, id: u64) -> Option<&T> {
        match &self.slots.get(S::SHAPE.slot(id))? {
            Slot {
                generation,
                state: State::Used(v),
            } if *generation == S::SHAPE.generation(id) => Some(v),
            _ => None,
        }
    }

    /// The object `id` names, to change.
    #[inline]
    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let generation = S::SHAPE.generation(id);
        match self.slots.get_mut(S::SHAPE.slot(id))? {
            Slot {
                generation: g,
                state: State::Used(v),
            } if *g == generation => Some(v),
            _ => None,
        }
    }

    /// The objects two different ids name, both to change (`None` if
    /// either names nothing, or both name the same slot).
    pub fn get_pair_mut(&mut self, a: u64, b: u64) -> Option<(&mut T, &mut T)> {
        let (ga, gb) = (S::SHAPE.generation(a), S::SHAPE.generation(b));
        let [x, y] = self
            .slots
            .get_disjoint_mut([S::SHAPE.slot(a), S::SHAPE.slot(b)])
            .ok()?;
        match (x, y) {
            (
                Slot {
                    generation: g1,
                    state: State::Used(v1),
                },
                Slot {
                    generation: g2,
                    state: State::Used(v2),
                },
            ) if *g1 == ga && *g2 == gb => Some((v1, v2)),
            _ => None,
        }
    }

    /// The object in `slot`, whatever its generation (for structures that
    /// link objects by slot and keep the links exact themselves).
    #[inline]
    pub fn get_slot(&self, slot: usize) -> Option<&T> {
        match &self.slots.get(slot)?.state {
            State::Used(v) => Some(v),
            _ => None,
        }
    }

    /// The object in `slot`, to change (see [`GenTable::get_slot`]).
    #[inline]
    pub fn get_slot_mut(&mut self, slot: usize) -> Option<&mut T> {
        match &mut self.slots.get_mut(slot)?.state {
            State::Used(v) => Some(v),
            _ => None,
        }
    }

    /// The id of the object in `slot`, if one is there.
    pub fn id_at(&self, slot: usize) -> Option<u64> {
        let s = self.slots.get(slot)?;
        matches!(s.state, State::Used(_)).then(|| S::SHAPE.id(slot, s.generation))
    }

    pub fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    #[inline]
    fn unlink_free(&mut self, slot: usize) {
        let State::Free { prev, next } = self.slots[slot].state else {
            return;
        };
        if slot as u32 == self.free_tail {
            self.unused_tail = false;
        }
        match prev {
            NIL => self.free_head = next,
            p => {
                if let State::Free { next: n, .. } = &mut self.slots[p as usize].state {
                    *n = next;
                }
            }
        }
        match next {
            NIL => self.free_tail = prev,
            n => {
                if let State::Free { prev: p, .. } = &mut self.slots[n as usize].state {
                    *p = prev;
                }
            }
        }
    }

    #[inline]
    fn push_free(&mut self, slot: usize) {
        self.unused_tail = false;
        let tail = self.free_tail;
        self.slots[slot].state = State::Free {
            prev: tail,
            next: NIL,
        };
        match tail {
            NIL => self.free_head = slot as u32,
            t => {
                if let State::Free { next, .. } = &mut self.slots[t as usize].state {
                    *next = slot as u32;
                }
            }
        }
        self.free_tail = slot as u32;
    }

    /// Makes one new free slot at the end, if the table may grow.
    fn grow(&mut self) -> Result<(), Error> {
        if self.slots.len() >= self.max_slots() {
            return Err(Error::LimitReached);
        }
        if self.slots.len() == self.slots.capacity() {
            let room = self.max_slots() - self.slots.len();
            let want = self.slots.capacity().clamp(4, room.max(4)).min(room);
            self.slots
                .try_reserve_exact(want)
                .map_err(|_| Error::OutOfMemory)?;
        }
        self.slots.push(Slot {
            generation: self.fresh_generation,
            state: State::Retired,
        });
        let slot = self.slots.len() - 1;
        self.push_free(slot);
        self.unused_tail = true;
        Ok(())
    }

    /// Makes sure the next `insert` needs no memory (so it cannot fail
    /// with `OutOfMemory`).
    pub fn reserve_one(&mut self) -> Result<(), Error> {
        if self.free_head == NIL {
            self.grow()?;
        }
        Ok(())
    }

    /// Makes a free slot available; true if it is a new one (at the tail
    /// of the free list).
    #[inline]
    fn make_room(&mut self) -> Result<bool, Error> {
        if S::SHAPE.grow_first && self.unused_tail {
            return Ok(true);
        }
        let grow =
            self.free_head == NIL || (S::SHAPE.grow_first && self.slots.len() < self.max_slots());
        if !grow {
            return Ok(false);
        }
        match self.grow() {
            Ok(()) => Ok(true),
            // A table that grows first still reuses a free slot when it
            // cannot grow for want of memory.
            Err(_) if self.free_head != NIL => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores `value` in a free slot — the oldest, or a new one while a
    /// grow-first table may grow — and returns its id; `LimitReached` when
    /// the table is full, `OutOfMemory` when it cannot grow. On failure
    /// the value comes back.
    #[inline]
    pub fn insert(&mut self, value: T) -> Result<u64, (Error, T)> {
        // The common case: take the oldest free slot, the head of the free
        // list (it has no predecessor to fix).
        if !S::SHAPE.grow_first
            && let Some(head) = self.slots.get_mut(self.free_head as usize)
            && let State::Free { next, .. } = head.state
        {
            let slot = self.free_head as usize;
            let generation = head.generation;
            head.state = State::Used(value);
            self.free_head = next;
            match self.slots.get_mut(next as usize) {
                Some(Slot {
                    state: State::Free { prev, .. },
                    ..
                }) => *prev = NIL,
                _ => {
                    self.free_tail = NIL;
                    self.unused_tail = false;
                }
            }
            self.len += 1;
            return Ok(S::SHAPE.id(slot, generation));
        }
        let slot = match self.make_room() {
            Ok(true) => self.free_tail,
            Ok(false) => self.free_head,
            Err(e) => return Err((e, value)),
        } as usize;
        self.unlink_free(slot);
        self.slots[slot].state = State::Used(value);
        self.len += 1;
        Ok(S::SHAPE.id(slot, self.slots[slot].generation))
    }

    /// Stores `value` under exactly `id` (as fork does, so that a child's
    /// handles equal its parent's): its slot must be free (or not made
    /// yet) and not past `id`'s generation.
    pub fn insert_at(&mut self, id: u64, value: T) -> Result<(), (InsertAtError, T)> {
        let slot = S::SHAPE.slot(id);
        let generation = S::SHAPE.generation(id);
        if slot >= self.max_slots() || generation > S::SHAPE.max_generation() {
            return Err((InsertAtError::BadId, value));
        }
        while self.slots.len() <= slot {
            if self.grow().is_err() {
                return Err((InsertAtError::OutOfMemory, value));
            }
        }
        match self.slots[slot].state {
            State::Used(_) => return Err((InsertAtError::Taken, value)),
            State::Retired => return Err((InsertAtError::Stale, value)),
            State::Free { .. } if self.slots[slot].generation > generation => {
                return Err((InsertAtError::Stale, value));
            }
            State::Free { .. } => {}
        }
        self.unlink_free(slot);
        let s = &mut self.slots[slot];
        s.generation = generation;
        s.state = State::Used(value);
        self.len += 1;
        Ok(())
    }

    /// Takes the object `id` names out; its id is dead from now on.
    #[inline]
    pub fn remove(&mut self, id: u64) -> Option<T> {
        let slot = self.slot_index(id)?;
        if !matches!(self.slots[slot].state, State::Used(_)) {
            return None;
        }
        let s = &mut self.slots[slot];
        let State::Used(value) = core::mem::replace(&mut s.state, State::Retired) else {
            return None;
        };
        self.len -= 1;
        if s.generation < S::SHAPE.max_generation() {
            s.generation += 1;
            self.push_free(slot);
        } else if S::SHAPE.wraps {
            s.generation = 0;
            self.push_free(slot);
        }
        // A grow-first table keeps its slots: trimming would let it grow
        // again and so reuse slots sooner than a full cycle.
        if !S::SHAPE.grow_first && self.slots.len() > 8 && self.len * 4 < self.slots.len() {
            self.trim();
        }
        Some(value)
    }

    /// Gives back the free slots at the end of the table, and storage
    /// beyond twice what is left (a slot that retired stays, keeping the
    /// ids it issued dead).
    fn trim(&mut self) {
        // Unlinked in place, then cut off in one truncate: popping each
        // slot would move it out (a slot can be large) only to drop it.
        let mut end = self.slots.len();
        while end > 0 && matches!(self.slots[end - 1].state, State::Free { .. }) {
            end -= 1;
            self.fresh_generation = self.fresh_generation.max(self.slots[end].generation);
            self.unlink_free(end);
        }
        self.slots.truncate(end);
        let keep = self.slots.len().max(4);
        if self.slots.capacity() > 2 * keep {
            // Moved by hand rather than `shrink_to`, which aborts when the
            // smaller allocation cannot be had; then the old one stays.
            let mut smaller = Vec::new();
            if smaller.try_reserve_exact(keep).is_ok() {
                smaller.append(&mut self.slots);
                self.slots = smaller;
            }
        }
    }

    /// Every object with its id, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let shape = S::SHAPE;
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(i, s)| match &s.state {
                State::Used(v) => Some((shape.id(i, s.generation), v)),
                _ => None,
            })
    }

    /// Every object, to change, with its id.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut T)> {
        let shape = S::SHAPE;
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(move |(i, s)| match &mut s.state {
                State::Used(v) => Some((shape.id(i, s.generation), v)),
                _ => None,
            })
    }

    /// Every object, taken out (the table is consumed).
    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.into_iter_ids().map(|(_, v)| v)
    }

    /// Every object with its id, taken out (the table is consumed).
    pub fn into_iter_ids(self) -> impl Iterator<Item = (u64, T)> {
        let shape = S::SHAPE;
        self.slots
            .into_iter()
            .enumerate()
            .filter_map(move |(i, s)| match s.state {
                State::Used(v) => Some((shape.id(i, s.generation), v)),
                _ => None,
            })
    }

    /// The id of the object in the first used slot at or after `slot`
    /// (for walks that resume where they stopped).
    pub fn next_from(&self, slot: usize) -> Option<u64> {
        self.slots
            .iter()
            .enumerate()
            .skip(slot)
            .find_map(|(i, s)| match s.state {
                State::Used(_) => Some(S::SHAPE.id(i, s.generation)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests;
