//! The root table and the context tables under it (legacy mode, VT-d
//! section 9.1 and 9.3): how a remapping unit finds, from a request's
//! source id (bus, device, function), the domain and second-level page
//! table that translate it.
//!
//! Formats, as 128-bit entries stored as (low word, high word):
//! - root entry `bus`: low bit 0 present, bits 11:1 reserved (0), bits
//!   63:12 the context table's address; the high word is reserved (0);
//! - context entry `devfn` (device << 3 | function): low bit 0 present,
//!   bit 1 fault-processing disable (always 0 here: faults are recorded),
//!   bits 3:2 translation type (always 00: untranslated requests go
//!   through the second-level tables, translated requests and
//!   translation requests are blocked), bits 11:4 reserved, bits 63:12
//!   the second-level root table's address; high bits 2:0 the AGAW code
//!   (1: 39 bits, 3 levels; 2: 48 bits, 4 levels), bits 6:3 ignored and
//!   bit 7 reserved (both 0 here), bits 23:8 the domain id, bits 63:24
//!   reserved (0).
//!
//! Rules: nothing is present until `attach` makes it so; a context entry
//! is written high word first and published by its low word (present)
//! last, and cleared low word first; a bus's context table is filled
//! before the root entry that points at it is written, and stays until
//! `destroy` (at most one frame per bus, 256 in all), so no table the
//! hardware may have cached is ever freed under it; domain id 0 is never
//! used (it is reserved when the unit is in caching mode); every address
//! written lies below the host address width.

use super::caps::{Agaw, MAX_HOST_BITS};
use crate::frame::Frame;
use crate::pagetable::{TableFrames, TableMemory};
use abi::Error;

/// Entries in a root or context table.
pub const ENTRIES: usize = 256;

const PRESENT: u64 = 1;
const ADDR: u64 = !0xfff;
/// Translation type 00 in bits 3:2 (untranslated requests only, through
/// the second-level tables), fault-processing disable (bit 1) clear.
const TT_SECOND_LEVEL: u64 = 0;
const TT_MASK: u64 = 0b11 << 2;
const FPD: u64 = 1 << 1;
const AW_MASK: u64 = 0b111;
const DID_SHIFT: u32 = 8;

/// The root entry for a bus whose context table is `table`.
pub const fn root_entry(table: Frame) -> [u64; 2] {
    [(table.addr() & ADDR) | PRESENT, 0]
}

/// The context table a root entry points at (`None`: not present).
pub const fn decode_root(words: [u64; 2]) -> Option<Frame> {
    if words[0] & PRESENT == 0 {
        return None;
    }
    Some(Frame::containing(words[0] & ADDR))
}

/// What a present context entry says: requests from this function are
/// translated in domain `domain_id` by the second-level tables rooted at
/// `slpt_root`, `agaw` deep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextEntry {
    pub domain_id: u16,
    pub slpt_root: Frame,
    pub agaw: Agaw,
}

impl ContextEntry {
    /// The entry's two words (low, high).
    pub const fn encode(&self) -> [u64; 2] {
        let lo = (self.slpt_root.addr() & ADDR) | TT_SECOND_LEVEL | PRESENT;
        let hi = self.agaw.code() | (self.domain_id as u64) << DID_SHIFT;
        [lo, hi]
    }

    /// The entry two words hold: `None` if it is not present, or not of
    /// the form `encode` writes (another translation type, fault
    /// processing disabled, an AGAW not built here).
    pub const fn decode(words: [u64; 2]) -> Option<ContextEntry> {
        let [lo, hi] = words;
        if lo & PRESENT == 0 || lo & (TT_MASK | FPD) != TT_SECOND_LEVEL {
            return None;
        }
        let Some(agaw) = Agaw::from_code(hi & AW_MASK) else {
            return None;
        };
        Some(ContextEntry {
            domain_id: (hi >> DID_SHIFT) as u16,
            slpt_root: Frame::containing(lo & ADDR),
            agaw,
        })
    }
}

/// What a detach took away, for the invalidations that must follow:
/// a device-selective context-cache invalidation for `source_id` (and
/// `domain_id`), then a domain-selective IOTLB invalidation of
/// `domain_id`, before the domain's tables may change for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detached {
    /// Bus << 8 | devfn, the request id the hardware caches by.
    pub source_id: u16,
    pub domain_id: u16,
}

/// One remapping unit's root table, with the context tables under it.
#[derive(Debug)]
pub struct RootTable {
    root: Frame,
    host_end: u64,
    context_tables: u32,
    attached: u32,
}

impl RootTable {
    /// An empty root table (nothing present) in a frame from `frames`,
    /// for a platform whose physical addresses have `host_bits` bits (the
    /// DMAR's width; 13..=52, else `InvalidArgument`). `OutOfMemory` if
    /// no frame is to be had; `NotSupported` if the frame lies beyond the
    /// host width (it is given back).
    pub fn new(frames: &mut impl TableFrames, host_bits: u8) -> Result<RootTable, Error> {
        if !(13..=MAX_HOST_BITS).contains(&host_bits) {
            return Err(Error::InvalidArgument);
        }
        let host_end = 1u64 << host_bits;
        let root = alloc_below(frames, host_end)?;
        Ok(RootTable {
            root,
            host_end,
            context_tables: 0,
            attached: 0,
        })
    }

    /// The frame to program into the root-table address register.
    pub fn root(&self) -> Frame {
        self.root
    }

    /// Table frames held: the root and one context table per bus used.
    pub fn table_frames(&self) -> u64 {
        1 + u64::from(self.context_tables)
    }

    /// Functions attached now.
    pub fn attached(&self) -> u32 {
        self.attached
    }

    /// Makes function `devfn` of bus `bus` translate through the
    /// second-level tables at `slpt_root` (`agaw` deep) in domain
    /// `domain_id`, making the bus's context table if it has none.
    /// Errors, with nothing changed: `InvalidArgument` for domain id 0,
    /// `BadAddress` for a root beyond the host width, `AlreadyExists` if
    /// the function is attached (detach it first), `OutOfMemory` if the
    /// context table cannot be made, `NotSupported` if its frame lies
    /// beyond the host width.
    ///
    /// The unit caches no not-present entry unless it is in caching mode;
    /// in caching mode, a device-selective context-cache invalidation must
    /// follow.
    #[allow(clippy::too_many_arguments)] // the entry's fields, then where
    pub fn attach(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl TableFrames,
        bus: u8,
        devfn: u8,
        domain_id: u16,
        slpt_root: Frame,
        agaw: Agaw,
    ) -> Result<(), Error> {
        if domain_id == 0 {
            return Err(Error::InvalidArgument);
        }
        if slpt_root.pfn() >= self.host_end >> 12 {
            return Err(Error::BadAddress);
        }
        let entry = ContextEntry {
            domain_id,
            slpt_root,
            agaw,
        }
        .encode();
        let at = 2 * usize::from(devfn);
        match self.context_table(mem, bus) {
            Some(table) => {
                if mem.read(table, at) & PRESENT != 0 {
                    return Err(Error::AlreadyExists);
                }
                mem.write(table, at + 1, entry[1]);
                mem.write(table, at, entry[0]);
            }
            None => {
                let table = alloc_below(frames, self.host_end)?;
                mem.write(table, at + 1, entry[1]);
                mem.write(table, at, entry[0]);
                // The root entry's high word is reserved and stays 0.
                mem.write(self.root, 2 * usize::from(bus), root_entry(table)[0]);
                self.context_tables += 1;
            }
        }
        self.attached += 1;
        Ok(())
    }

    /// Clears function `devfn` of bus `bus`: `None` if it was not attached
    /// (nothing to invalidate), else what the invalidations need. The
    /// bus's context table stays, for the next attach.
    pub fn detach(&mut self, mem: &mut impl TableMemory, bus: u8, devfn: u8) -> Option<Detached> {
        let table = self.context_table(mem, bus)?;
        let at = 2 * usize::from(devfn);
        let hi = mem.read(table, at + 1);
        if mem.read(table, at) & PRESENT == 0 {
            return None;
        }
        mem.write(table, at, 0);
        mem.write(table, at + 1, 0);
        self.attached -= 1;
        Some(Detached {
            source_id: u16::from(bus) << 8 | u16::from(devfn),
            domain_id: (hi >> DID_SHIFT) as u16,
        })
    }

    /// The context entry of function `devfn` of bus `bus`, if attached.
    pub fn lookup(&self, mem: &impl TableMemory, bus: u8, devfn: u8) -> Option<ContextEntry> {
        let table = self.context_table(mem, bus)?;
        let at = 2 * usize::from(devfn);
        ContextEntry::decode([mem.read(table, at), mem.read(table, at + 1)])
    }

    /// Gives every frame back: each context table, then the root. The
    /// unit must no longer use this table (translation off, or another
    /// root table programmed and a global context-cache and IOTLB
    /// invalidation done). Entries still attached go with it; the domains
    /// they named are the caller's.
    pub fn destroy(self, mem: &mut impl TableMemory, frames: &mut impl TableFrames) {
        for bus in 0..ENTRIES {
            if let Some(table) = self.context_table(mem, bus as u8) {
                mem.write(self.root, 2 * bus, 0);
                frames.free_table(table);
            }
        }
        frames.free_table(self.root);
    }

    fn context_table(&self, mem: &impl TableMemory, bus: u8) -> Option<Frame> {
        let at = 2 * usize::from(bus);
        decode_root([mem.read(self.root, at), mem.read(self.root, at + 1)])
    }
}

/// A table frame below `end`: `OutOfMemory` if there is none,
/// `NotSupported` (the frame given back) if it lies at or above `end`.
pub(super) fn alloc_below(frames: &mut impl TableFrames, end: u64) -> Result<Frame, Error> {
    let f = frames.alloc_table().ok_or(Error::OutOfMemory)?;
    if f.pfn() >= end >> 12 {
        frames.free_table(f);
        return Err(Error::NotSupported);
    }
    Ok(f)
}

#[cfg(test)]
mod tests;
