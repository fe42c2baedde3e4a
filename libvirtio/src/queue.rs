//! A split virtqueue (virtio 1.2, 2.7) in the arena: the descriptor table,
//! the available ring the driver fills and the used ring the device fills,
//! a page each at the offsets the driver gives.
//!
//! Descriptors are not allocated here: the driver decides which chains
//! use which descriptors (virtio-blk: request slot `k` owns the fixed run
//! `k * per_slot ..`; virtio-net: buffer `k` is descriptor `k`), so a
//! chain is rewritten only while the device does not hold it.
//!
//! Rules: the driver never reads back what it wrote to the table or the
//! available ring (the device could have changed nothing there that
//! matters); everything read from the used ring is the device's word and
//! is checked: the ring may not hold more entries than are outstanding,
//! and ids are checked by the caller against the slots in flight. Ring
//! memory is accessed volatile, with fences ordering the driver's writes
//! before the index the device reads, and the device's writes before the
//! entries the driver reads.

use crate::arena::{Arena, PAGE};
use abi::Error;
use core::sync::atomic::{Ordering, fence};

/// Descriptor flags.
pub const DESC_NEXT: u16 = 1;
pub const DESC_WRITE: u16 = 2;
/// The available ring's flag: no interrupt wanted (the driver polls).
const AVAIL_NO_INTERRUPT: u16 = 1;

/// The largest queue the arena's pages hold: 16-byte descriptors in one
/// page.
pub const SIZE_MAX: u16 = (PAGE / 16) as u16;

pub struct Queue {
    size: u16,
    /// The arena offsets of the descriptor table, available and used
    /// rings.
    desc: u64,
    avail: u64,
    used: u64,
    /// The available ring's index as the driver last published it.
    avail_idx: u16,
    /// The used ring's index up to which the driver has taken entries.
    last_used: u16,
    /// Chains given to the device and not yet back.
    outstanding: u16,
}

impl Queue {
    /// A queue of `size` entries (a power of two, at most `SIZE_MAX`) in
    /// the three arena pages at `pages` (descriptors, available ring, used
    /// ring), its rings zeroed; `interrupts` says whether the device
    /// should interrupt after using buffers.
    pub fn new(arena: &mut Arena, pages: [u64; 3], size: u16, interrupts: bool) -> Queue {
        debug_assert!(size.is_power_of_two() && size <= SIZE_MAX);
        for page in pages {
            // SAFETY: the device is reset: it uses none of the queue.
            unsafe { arena.bytes(page, PAGE) }.fill(0);
        }
        let [desc, avail, used] = pages;
        let flags = if interrupts { 0 } else { AVAIL_NO_INTERRUPT };
        arena.write(avail, flags);
        Queue {
            size,
            desc,
            avail,
            used,
            avail_idx: 0,
            last_used: 0,
            outstanding: 0,
        }
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    /// Chains the device holds.
    pub fn outstanding(&self) -> u16 {
        self.outstanding
    }

    /// The device addresses of the three parts: (descriptors, driver area
    /// (available ring), device area (used ring)).
    pub fn addresses(&self, arena: &Arena) -> (u64, u64, u64) {
        (
            arena.dev_addr(self.desc),
            arena.dev_addr(self.avail),
            arena.dev_addr(self.used),
        )
    }

    /// Writes descriptor `i`: `len` bytes at device address `addr`; `next`
    /// chains it on.
    pub fn set(&self, arena: &Arena, i: u16, addr: u64, len: u32, write: bool, next: Option<u16>) {
        let at = self.desc + 16 * u64::from(i % self.size);
        let mut flags = if write { DESC_WRITE } else { 0 };
        if next.is_some() {
            flags |= DESC_NEXT;
        }
        arena.write(at, addr);
        arena.write(at + 8, len);
        arena.write(at + 12, flags);
        arena.write(at + 14, next.unwrap_or(0));
    }

    /// Makes the chain headed by `head` available to the device (the
    /// caller then notifies it).
    pub fn publish(&mut self, arena: &Arena, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        arena.write(self.avail + 4 + 2 * slot, head);
        // The descriptors and the ring entry before the index that shows
        // them.
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        arena.write(self.avail + 2, self.avail_idx);
        // The index before the notification the caller sends.
        fence(Ordering::SeqCst);
        self.outstanding += 1;
    }

    /// The next chain the device gave back: (head id, bytes written), or
    /// `None`. `IoError` if the device claims more entries than the driver
    /// gave it (a broken device: the caller resets it).
    pub fn take(&mut self, arena: &Arena) -> Result<Option<(u32, u32)>, Error> {
        let used_idx: u16 = arena.read(self.used + 2);
        let ready = used_idx.wrapping_sub(self.last_used);
        if ready == 0 {
            return Ok(None);
        }
        if ready > self.outstanding {
            return Err(Error::IoError);
        }
        // The entry only after the index that announced it.
        fence(Ordering::Acquire);
        let at = self.used + 4 + 8 * u64::from(self.last_used % self.size);
        let id: u32 = arena.read(at);
        let len: u32 = arena.read(at + 4);
        self.last_used = self.last_used.wrapping_add(1);
        self.outstanding -= 1;
        Ok(Some((id, len)))
    }
}
