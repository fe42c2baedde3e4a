//! Queued invalidation (VT-d section 6.5.2): the 128-bit descriptors that
//! tell a remapping unit to forget what it cached, and the ring in memory
//! it fetches them from. With queued invalidation enabled, this is the
//! only way to invalidate (the register-based commands are ignored).
//!
//! Descriptor formats (low word; the high word is 0 unless said):
//! - bits 3:0 the type; bits 11:9 (the type's high bits in newer
//!   revisions) and every field not named below are 0, as QEMU requires
//!   (it stops the queue at a descriptor with a reserved bit set);
//! - context-cache (type 1): 5:4 granularity (1 global, 2 domain, 3
//!   device), 31:16 domain id, 47:32 source id, 49:48 function mask;
//! - IOTLB (type 2): 5:4 granularity (1 global, 2 domain, 3 pages), 6
//!   drain writes, 7 drain reads, 31:16 domain id; high word 5:0 address
//!   mask (2^am pages), 6 invalidation hint (1: only leaf entries
//!   changed), 63:12 the address;
//! - interrupt entry cache (type 4): 4 granularity (0 global, 1 index),
//!   31:27 index mask (2^im entries), 47:32 index;
//! - invalidation wait (type 5): 4 interrupt, 5 status write, 6 fence,
//!   63:32 status data; high word the status address (4-byte aligned).
//!   The status write is the only completion signal used here: QEMU 7.2
//!   aborts on a wait asking for both the write and the interrupt.
//!
//! The queue is one 4 KiB frame of 256 descriptors (IQA.QS = 0). The
//! unit fetches from its head (IQH) up to the tail the kernel writes
//! (IQT); both registers hold a descriptor index × 16. A batch always
//! ends with a wait, which is also what QEMU wants to have seen last
//! before it lets queued invalidation be turned off.
//!
//! Rules: the queue never holds more than 255 descriptors (head == tail
//! means empty, so the tail never catches the head); a head read back
//! from the unit is believed only if it lies between the last head and
//! the tail; descriptors are written before the tail that publishes them
//! is handed out; every argument is checked and refused with an
//! [`abi::Error`], nothing written on error.

use super::PAGE;
use super::caps::{Cap, MAX_HOST_BITS};
use super::context::{Detached, alloc_below};
use super::domain::Flush;
use crate::frame::Frame;
use crate::pagetable::{TableFrames, TableMemory};
use abi::Error;
use bitflags::bitflags;

/// Descriptors in the queue (one frame of 16-byte descriptors).
pub const QUEUE_ENTRIES: usize = 256;
/// IQA.QS (bits 2:0): 2^(QS + 8) descriptors.
const QUEUE_SIZE_FIELD: u64 = 0;
const _: () = assert!(1 << (QUEUE_SIZE_FIELD + 8) == QUEUE_ENTRIES);
const _: () = assert!(QUEUE_ENTRIES * 16 == PAGE as usize);
/// IQH and IQT hold the index in bits 18:4.
const INDEX_SHIFT: u32 = 4;

const TYPE_CONTEXT_CACHE: u64 = 0x1;
const TYPE_IOTLB: u64 = 0x2;
const TYPE_INTERRUPT_CACHE: u64 = 0x4;
const TYPE_WAIT: u64 = 0x5;

const GRANULARITY_SHIFT: u32 = 4;
const GLOBAL: u64 = 1 << GRANULARITY_SHIFT;
const DOMAIN: u64 = 2 << GRANULARITY_SHIFT;
/// Context cache: one function (or a masked group); IOTLB: some pages.
const SELECTIVE: u64 = 3 << GRANULARITY_SHIFT;
const DOMAIN_ID_SHIFT: u32 = 16;
const SOURCE_ID_SHIFT: u32 = 32;
const FUNCTION_MASK_SHIFT: u32 = 48;
const LEAF_ONLY_HINT: u64 = 1 << 6;
/// The address field of a page-selective invalidation is bits 63:12.
const MAX_ADDRESS_MASK: u8 = 51;
const INDEX_SELECTIVE: u64 = 1 << 4;
const INDEX_MASK_SHIFT: u32 = 27;
const INTERRUPT_INDEX_SHIFT: u32 = 32;
const WAIT_STATUS_WRITE: u64 = 1 << 5;
const WAIT_FENCE: u64 = 1 << 6;
const WAIT_DATA_SHIFT: u32 = 32;

bitflags! {
    /// What an IOTLB invalidation asks the unit to drain first: DMA
    /// requests it holds for the pages concerned.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Drain: u64 {
        const WRITES = 1 << 6;
        const READS = 1 << 7;
    }
}

impl Drain {
    /// Every drain the unit supports (CAP.DWD, CAP.DRD): the safe choice
    /// when a mapping is taken away, since no request the unit has
    /// already accepted can then land after the invalidation completes.
    pub const fn supported_by(cap: Cap) -> Drain {
        let mut bits = 0;
        if cap.drain_writes() {
            bits |= Drain::WRITES.bits();
        }
        if cap.drain_reads() {
            bits |= Drain::READS.bits();
        }
        Drain::from_bits_retain(bits)
    }
}

/// One invalidation descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    lo: u64,
    hi: u64,
}

impl Descriptor {
    /// The two words (low, high) as they go into the queue.
    pub const fn words(&self) -> [u64; 2] {
        [self.lo, self.hi]
    }

    /// The descriptor type (bits 3:0).
    pub const fn kind(&self) -> u8 {
        (self.lo & 0xf) as u8
    }

    /// Forget every cached context entry.
    pub const fn context_global() -> Descriptor {
        Descriptor {
            lo: TYPE_CONTEXT_CACHE | GLOBAL,
            hi: 0,
        }
    }

    /// Forget the cached context entries of domain `domain_id`.
    pub const fn context_domain(domain_id: u16) -> Descriptor {
        Descriptor {
            lo: TYPE_CONTEXT_CACHE | DOMAIN | (domain_id as u64) << DOMAIN_ID_SHIFT,
            hi: 0,
        }
    }

    /// Forget the cached context entry of function `source_id` (bus << 8
    /// | devfn), which was in domain `domain_id`.
    pub const fn context_device(domain_id: u16, source_id: u16) -> Descriptor {
        Descriptor {
            lo: TYPE_CONTEXT_CACHE
                | SELECTIVE
                | (domain_id as u64) << DOMAIN_ID_SHIFT
                | (source_id as u64) << SOURCE_ID_SHIFT,
            hi: 0,
        }
    }

    /// As [`Descriptor::context_device`], for the functions whose source
    /// ids differ from `source_id` only in the low `function_mask` bits
    /// of the function number (0..=3, else `InvalidArgument`).
    pub const fn context_devices(
        domain_id: u16,
        source_id: u16,
        function_mask: u8,
    ) -> Result<Descriptor, Error> {
        if function_mask > 3 {
            return Err(Error::InvalidArgument);
        }
        let d = Descriptor::context_device(domain_id, source_id);
        Ok(Descriptor {
            lo: d.lo | (function_mask as u64) << FUNCTION_MASK_SHIFT,
            hi: 0,
        })
    }

    /// Forget every cached translation.
    pub const fn iotlb_global(drain: Drain) -> Descriptor {
        Descriptor {
            lo: TYPE_IOTLB | GLOBAL | drain.bits(),
            hi: 0,
        }
    }

    /// Forget the cached translations of domain `domain_id`.
    pub const fn iotlb_domain(domain_id: u16, drain: Drain) -> Descriptor {
        Descriptor {
            lo: TYPE_IOTLB | DOMAIN | drain.bits() | (domain_id as u64) << DOMAIN_ID_SHIFT,
            hi: 0,
        }
    }

    /// Forget domain `domain_id`'s cached translations of the 2^`address_mask`
    /// pages from `address`, which must be aligned to that size (else, or
    /// for a mask beyond 51, `InvalidArgument`). `leaf_only`: only leaf
    /// entries changed, so cached paging-structure entries may stay. The
    /// unit's CAP.MAMV bounds the mask it accepts: the caller checks it
    /// (QEMU refuses a mask above 18).
    pub const fn iotlb_pages(
        domain_id: u16,
        address: u64,
        address_mask: u8,
        leaf_only: bool,
        drain: Drain,
    ) -> Result<Descriptor, Error> {
        if address_mask > MAX_ADDRESS_MASK {
            return Err(Error::InvalidArgument);
        }
        if address & ((PAGE << address_mask) - 1) != 0 {
            return Err(Error::InvalidArgument);
        }
        let hint = if leaf_only { LEAF_ONLY_HINT } else { 0 };
        Ok(Descriptor {
            lo: TYPE_IOTLB | SELECTIVE | drain.bits() | (domain_id as u64) << DOMAIN_ID_SHIFT,
            hi: address | hint | address_mask as u64,
        })
    }

    /// Forget every cached interrupt remapping entry.
    pub const fn interrupt_cache_global() -> Descriptor {
        Descriptor {
            lo: TYPE_INTERRUPT_CACHE,
            hi: 0,
        }
    }

    /// Forget the cached interrupt remapping entry `index`.
    pub const fn interrupt_cache_entry(index: u16) -> Descriptor {
        Descriptor {
            lo: TYPE_INTERRUPT_CACHE | INDEX_SELECTIVE | (index as u64) << INTERRUPT_INDEX_SHIFT,
            hi: 0,
        }
    }

    /// Forget the 2^`index_mask` cached interrupt remapping entries from
    /// `index`, which must be aligned to that count (else, or for a mask
    /// beyond 16, `InvalidArgument`).
    pub const fn interrupt_cache_entries(index: u16, index_mask: u8) -> Result<Descriptor, Error> {
        if index_mask > 16 || (index as u32) & ((1u32 << index_mask) - 1) != 0 {
            return Err(Error::InvalidArgument);
        }
        let d = Descriptor::interrupt_cache_entry(index);
        Ok(Descriptor {
            lo: d.lo | (index_mask as u64) << INDEX_MASK_SHIFT,
            hi: 0,
        })
    }

    /// Once every earlier descriptor has completed, write `status` (32
    /// bits) to physical address `status_address` (4-byte aligned, else
    /// `InvalidArgument`). `fence`: later descriptors wait for this one.
    pub const fn wait(status_address: u64, status: u32, fence: bool) -> Result<Descriptor, Error> {
        if !status_address.is_multiple_of(4) {
            return Err(Error::InvalidArgument);
        }
        let fence = if fence { WAIT_FENCE } else { 0 };
        Ok(Descriptor {
            lo: TYPE_WAIT | WAIT_STATUS_WRITE | fence | (status as u64) << WAIT_DATA_SHIFT,
            hi: status_address,
        })
    }
}

/// The IOTLB invalidation that covers `flush` (what an unmap changed) in
/// domain `domain_id` on a unit with capabilities `cap`: page-selective
/// when the unit has PSI and the smallest aligned block holding the range
/// fits its MAMV (the hint set when no table was unlinked), else
/// domain-selective; draining whatever the unit can drain. `None` if
/// there is nothing to invalidate.
pub fn iotlb_for_flush(flush: &Flush, domain_id: u16, cap: Cap) -> Option<Descriptor> {
    let (address, mask) = flush.page_selective()?;
    let drain = Drain::supported_by(cap);
    if cap.page_selective()
        && mask <= cap.max_address_mask()
        && let Ok(d) = Descriptor::iotlb_pages(domain_id, address, mask, !flush.tables(), drain)
    {
        return Some(d);
    }
    Some(Descriptor::iotlb_domain(domain_id, drain))
}

/// The invalidations a detach needs, in order: the function's cached
/// context entry, then its domain's cached translations.
pub fn detach_invalidations(detached: &Detached, cap: Cap) -> [Descriptor; 2] {
    [
        Descriptor::context_device(detached.domain_id, detached.source_id),
        Descriptor::iotlb_domain(detached.domain_id, Drain::supported_by(cap)),
    ]
}

/// A batch handed to the unit: write `tail` to IQT, then wait until the
/// status word holds `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the tail must be written to IQT and the status word polled"]
pub struct Batch {
    /// The IQT register value that hands the batch to the unit.
    pub tail: u64,
    /// The value the unit writes to the status word when it is done.
    pub status: u32,
}

impl Batch {
    /// Whether a status word read back says the batch has completed.
    pub fn completed(&self, status_word: u32) -> bool {
        status_word == self.status
    }
}

/// One remapping unit's invalidation queue.
#[derive(Debug)]
pub struct InvalidationQueue {
    frame: Frame,
    host_end: u64,
    /// The oldest descriptor the unit may not have fetched yet.
    head: usize,
    /// Where the next descriptor goes.
    tail: usize,
    /// The status the next batch's wait writes (never 0: the status
    /// word starts out 0, and 0 could be mistaken for done).
    next_status: u32,
}

impl InvalidationQueue {
    /// An empty queue in a frame from `frames`, on a platform whose
    /// physical addresses have `host_bits` bits (13..=52, else
    /// `InvalidArgument`). `OutOfMemory` if no frame is to be had;
    /// `NotSupported` if it lies beyond the host width (it is given back).
    pub fn new(frames: &mut impl TableFrames, host_bits: u8) -> Result<InvalidationQueue, Error> {
        if !(13..=MAX_HOST_BITS).contains(&host_bits) {
            return Err(Error::InvalidArgument);
        }
        let host_end = 1 << host_bits;
        let frame = alloc_below(frames, host_end)?;
        Ok(InvalidationQueue {
            frame,
            host_end,
            head: 0,
            tail: 0,
            next_status: 1,
        })
    }

    pub fn frame(&self) -> Frame {
        self.frame
    }

    /// The IQA register value: the queue's address, 128-bit descriptors
    /// (DW 0), 256 of them (QS 0). IQT must be 0 when it is written, as
    /// it is before the first batch.
    pub fn iqa(&self) -> u64 {
        self.frame.addr() | QUEUE_SIZE_FIELD
    }

    /// The IQT register value for the descriptors written so far.
    pub fn tail_register(&self) -> u64 {
        (self.tail as u64) << INDEX_SHIFT
    }

    /// Descriptors written that the unit had not fetched at the last head
    /// seen.
    pub fn pending(&self) -> usize {
        (self.tail + QUEUE_ENTRIES - self.head) % QUEUE_ENTRIES
    }

    /// Descriptors that can be written before the tail would reach the
    /// head.
    pub fn free_slots(&self) -> usize {
        QUEUE_ENTRIES - 1 - self.pending()
    }

    /// Takes the IQH register value `iqh` as the unit's head:
    /// `InvalidArgument`, nothing changed, if it is not a descriptor index
    /// between the last head and the tail (the unit only moves it forward
    /// through what it was given).
    pub fn set_head(&mut self, iqh: u64) -> Result<(), Error> {
        self.head = self.checked_head(iqh)?;
        Ok(())
    }

    fn checked_head(&self, iqh: u64) -> Result<usize, Error> {
        let index = iqh >> INDEX_SHIFT;
        if iqh & ((1 << INDEX_SHIFT) - 1) != 0 || index >= QUEUE_ENTRIES as u64 {
            return Err(Error::InvalidArgument);
        }
        let index = index as usize;
        let fetched = (index + QUEUE_ENTRIES - self.head) % QUEUE_ENTRIES;
        if fetched > self.pending() {
            return Err(Error::InvalidArgument);
        }
        Ok(index)
    }

    /// Writes `descriptor` at the tail. `LimitReached` if the queue is
    /// full (read IQH, [`InvalidationQueue::set_head`], and try again).
    /// The unit sees it once [`InvalidationQueue::tail_register`] is
    /// written to IQT.
    pub fn push(
        &mut self,
        mem: &mut impl TableMemory,
        descriptor: Descriptor,
    ) -> Result<(), Error> {
        if self.free_slots() == 0 {
            return Err(Error::LimitReached);
        }
        self.write_at_tail(mem, descriptor);
        Ok(())
    }

    fn write_at_tail(&mut self, mem: &mut impl TableMemory, descriptor: Descriptor) {
        let [lo, hi] = descriptor.words();
        mem.write(self.frame, 2 * self.tail, lo);
        mem.write(self.frame, 2 * self.tail + 1, hi);
        self.tail = (self.tail + 1) % QUEUE_ENTRIES;
    }

    /// Writes `descriptors`, then a wait that writes a fresh status value
    /// to the 32-bit word at physical address `status_address`, taking
    /// `iqh` (the IQH register, read just before) as the unit's head.
    /// Errors, with nothing written or changed: `InvalidArgument` for a
    /// head not between the last head and the tail, or a status address
    /// not 4-byte aligned or beyond the host width; `LimitReached` if the
    /// batch and its wait do not fit before the head.
    ///
    /// On a unit that does not snoop (ECAP.C clear) the descriptors must
    /// be flushed from the CPU's cache before the tail is written.
    pub fn submit(
        &mut self,
        mem: &mut impl TableMemory,
        iqh: u64,
        descriptors: &[Descriptor],
        status_address: u64,
    ) -> Result<Batch, Error> {
        let head = self.checked_head(iqh)?;
        if status_address >= self.host_end {
            return Err(Error::InvalidArgument);
        }
        let wait = Descriptor::wait(status_address, self.next_status, false)?;
        let free = QUEUE_ENTRIES - 1 - (self.tail + QUEUE_ENTRIES - head) % QUEUE_ENTRIES;
        if descriptors.len() >= free {
            return Err(Error::LimitReached);
        }
        self.head = head;
        for &d in descriptors {
            self.write_at_tail(mem, d);
        }
        self.write_at_tail(mem, wait);
        let status = self.next_status;
        self.next_status = match self.next_status.wrapping_add(1) {
            0 => 1,
            n => n,
        };
        Ok(Batch {
            tail: self.tail_register(),
            status,
        })
    }

    /// Gives the queue's frame back. Queued invalidation must be off (the
    /// unit fetches nothing more from it).
    pub fn destroy(self, frames: &mut impl TableFrames) {
        frames.free_table(self.frame);
    }
}

#[cfg(test)]
mod tests;
