//! Interrupt remapping (VT-d chapter 5 and section 9.10): the table of
//! interrupt remapping table entries (IRTEs) a unit looks up for every
//! remappable-format interrupt, the entries the kernel writes there, the
//! MSI address and data a device is programmed with to use one, and the
//! IRTA register value that points the unit at the table.
//!
//! Entry format (remapped, not posted; 128 bits as low, high word):
//! - low: bit 0 present, 1 fault processing disable (always 0: faults
//!   are recorded), 2 destination mode (1: logical), 3 redirection hint,
//!   4 trigger mode (1: level), 7:5 delivery mode, 11:8 available to
//!   software (0 here), 14:12 reserved, 15 mode (0: remapped; 1 would be
//!   posted), 23:16 vector, 31:24 reserved, 63:32 destination: in xAPIC
//!   mode the 8-bit APIC id in bits 47:40 with 39:32 and 63:48 reserved,
//!   in x2APIC mode (IRTA.EIME) the 32-bit APIC id;
//! - high: 15:0 source id (bus << 8 | devfn), 17:16 source-id qualifier,
//!   19:18 source validation type, 63:20 reserved.
//!
//! Rules:
//! - every entry is written with source validation on (type 01,
//!   qualifier 00: all 16 bits compared), so it delivers interrupts only
//!   for the one function it was made for;
//! - the table is one 4 KiB frame of 256 entries: enough for every
//!   interrupt the kernel hands out (a few per device), and handles then
//!   stay below 256; the unit is told the size (IRTA.S = 7) and faults any
//!   larger index;
//! - an entry is written high word first and made present by its low
//!   word last, and cleared low word (present) first, so the unit never
//!   reads a half-written present entry;
//! - the unit caches entries: a freed entry is cleared at once but its
//!   handle is not handed out again until the caller has invalidated the
//!   interrupt entry cache for it and [`IrTable::release`]s it;
//! - arguments are checked and refused with an [`abi::Error`]; decoding
//!   is total and says `None` for any entry not of the form written here.

use super::caps::{Ecap, MAX_HOST_BITS};
use super::context::alloc_below;
use crate::frame::Frame;
use crate::pagetable::{TableFrames, TableMemory};
use abi::Error;

/// Entries in the table (one frame).
pub const ENTRIES: usize = 256;
/// IRTA.S (bits 3:0): the table holds 2^(S + 1) entries.
const SIZE_FIELD: u64 = 7;
const _: () = assert!(1 << (SIZE_FIELD + 1) == ENTRIES);
/// IRTA.EIME (bit 11): 32-bit (x2APIC) destination ids.
const EIME: u64 = 1 << 11;

const PRESENT: u64 = 1;
const FAULT_DISABLE: u64 = 1 << 1;
const LOGICAL: u64 = 1 << 2;
const REDIRECTION_HINT: u64 = 1 << 3;
const LEVEL: u64 = 1 << 4;
const DELIVERY_SHIFT: u32 = 5;
const AVAILABLE: u64 = 0xf << 8;
const POSTED: u64 = 1 << 15;
const VECTOR_SHIFT: u32 = 16;
const DESTINATION_SHIFT: u32 = 32;
/// Bits 14:12 and 31:24, which QEMU checks too.
const LOW_RESERVED: u64 = (0b111 << 12) | (0xff << 24);
/// In xAPIC mode, the destination bits around the APIC id.
const XAPIC_DESTINATION_RESERVED: u64 = (0xff << 32) | (0xffff << 48);
const XAPIC_ID_SHIFT: u32 = 40;
const SQ_SHIFT: u32 = 16;
const SVT_SHIFT: u32 = 18;
/// Source validation type 01: compare the request's id with the entry's
/// source id, under the qualifier's mask.
const SVT_REQUESTER: u64 = 0b01;
const HIGH_RESERVED: u64 = !0xf_ffff;

/// How the unit reads an entry's destination: as an 8-bit xAPIC id or,
/// with IRTA.EIME, a 32-bit x2APIC id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicMode {
    XApic,
    X2Apic,
}

/// The delivery mode of an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Fixed,
    LowestPriority,
    Smi,
    Nmi,
    Init,
    ExtInt,
}

impl Delivery {
    const fn code(self) -> u64 {
        match self {
            Delivery::Fixed => 0b000,
            Delivery::LowestPriority => 0b001,
            Delivery::Smi => 0b010,
            Delivery::Nmi => 0b100,
            Delivery::Init => 0b101,
            Delivery::ExtInt => 0b111,
        }
    }

    const fn from_code(code: u64) -> Option<Delivery> {
        match code {
            0b000 => Some(Delivery::Fixed),
            0b001 => Some(Delivery::LowestPriority),
            0b010 => Some(Delivery::Smi),
            0b100 => Some(Delivery::Nmi),
            0b101 => Some(Delivery::Init),
            0b111 => Some(Delivery::ExtInt),
            _ => None,
        }
    }

    /// Whether the vector is delivered (the others ignore it).
    const fn uses_vector(self) -> bool {
        matches!(self, Delivery::Fixed | Delivery::LowestPriority)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Edge,
    Level,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationMode {
    Physical,
    Logical,
}

/// What a present entry says: interrupts from function `source` (bus,
/// devfn) that use it are delivered as `vector` to `destination`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irte {
    pub source: (u8, u8),
    pub vector: u8,
    /// The APIC id (xAPIC: at most 0xff).
    pub destination: u32,
    pub delivery: Delivery,
    pub trigger: Trigger,
    pub destination_mode: DestinationMode,
    pub redirection_hint: bool,
}

impl Irte {
    /// A fixed, edge-triggered interrupt to one CPU by its APIC id: what
    /// MSIs are.
    pub const fn fixed(source: (u8, u8), vector: u8, destination: u32) -> Irte {
        Irte {
            source,
            vector,
            destination,
            delivery: Delivery::Fixed,
            trigger: Trigger::Edge,
            destination_mode: DestinationMode::Physical,
            redirection_hint: false,
        }
    }

    /// Bus << 8 | devfn.
    pub const fn source_id(&self) -> u16 {
        (self.source.0 as u16) << 8 | self.source.1 as u16
    }

    /// The entry's two words (low, high), present. `InvalidArgument` for a
    /// destination wider than `mode` allows (8 bits in xAPIC mode) or a
    /// vector below 16 for fixed or lowest-priority delivery (the APIC
    /// rejects those vectors).
    pub const fn encode(&self, mode: ApicMode) -> Result<[u64; 2], Error> {
        if self.delivery.uses_vector() && self.vector < 16 {
            return Err(Error::InvalidArgument);
        }
        let destination = match mode {
            ApicMode::XApic if self.destination > 0xff => return Err(Error::InvalidArgument),
            ApicMode::XApic => (self.destination as u64) << XAPIC_ID_SHIFT,
            ApicMode::X2Apic => (self.destination as u64) << DESTINATION_SHIFT,
        };
        let mut lo = PRESENT
            | self.delivery.code() << DELIVERY_SHIFT
            | (self.vector as u64) << VECTOR_SHIFT
            | destination;
        if matches!(self.destination_mode, DestinationMode::Logical) {
            lo |= LOGICAL;
        }
        if self.redirection_hint {
            lo |= REDIRECTION_HINT;
        }
        if matches!(self.trigger, Trigger::Level) {
            lo |= LEVEL;
        }
        // Qualifier 00: every bit of the source id is compared.
        let hi = self.source_id() as u64 | SVT_REQUESTER << SVT_SHIFT;
        Ok([lo, hi])
    }

    /// The entry two words hold, read as the unit reads it in `mode`:
    /// `None` if it is not present or not of the form `encode` writes
    /// (posted, faults disabled, software bits or reserved bits set, a
    /// reserved delivery mode, another kind of source validation).
    pub const fn decode(words: [u64; 2], mode: ApicMode) -> Option<Irte> {
        let [lo, hi] = words;
        if lo & PRESENT == 0 || lo & (FAULT_DISABLE | AVAILABLE | POSTED | LOW_RESERVED) != 0 {
            return None;
        }
        let qualifier = (hi >> SQ_SHIFT) & 0b11;
        let validation = (hi >> SVT_SHIFT) & 0b11;
        if hi & HIGH_RESERVED != 0 || qualifier != 0 || validation != SVT_REQUESTER {
            return None;
        }
        let Some(delivery) = Delivery::from_code((lo >> DELIVERY_SHIFT) & 0b111) else {
            return None;
        };
        let destination = match mode {
            ApicMode::XApic if lo & XAPIC_DESTINATION_RESERVED != 0 => return None,
            ApicMode::XApic => ((lo >> XAPIC_ID_SHIFT) & 0xff) as u32,
            ApicMode::X2Apic => (lo >> DESTINATION_SHIFT) as u32,
        };
        Some(Irte {
            source: ((hi >> 8) as u8, hi as u8),
            vector: (lo >> VECTOR_SHIFT) as u8,
            destination,
            delivery,
            trigger: if lo & LEVEL != 0 {
                Trigger::Level
            } else {
                Trigger::Edge
            },
            destination_mode: if lo & LOGICAL != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            redirection_hint: lo & REDIRECTION_HINT != 0,
        })
    }
}

/// An MSI address and data, as a device's MSI or MSI-X registers hold
/// them (the upper address is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u32,
    pub data: u32,
}

const MSI_BASE: u32 = 0xfee0_0000;
const MSI_BASE_MASK: u32 = 0xfff0_0000;
/// Bit 4: the interrupt is in remappable format.
const MSI_REMAPPABLE: u32 = 1 << 4;
/// Bit 3: the data holds a subhandle to add to the handle.
const MSI_SUBHANDLE_VALID: u32 = 1 << 3;
const MSI_HANDLE_LOW_SHIFT: u32 = 5;
const MSI_HANDLE_HIGH: u32 = 1 << 2;

/// The remappable-format message that makes a device's interrupt use
/// entry `handle`: address 0xfee0_0000 with handle bits 14:0 in bits
/// 19:5, handle bit 15 in bit 2, the remappable-format bit 4 and the
/// subhandle-valid bit 3; data 0 (subhandle 0; its bits 31:16 must be 0).
/// A device that sends several vectors (multiple-message MSI) sets the
/// low data bits itself, selecting the entries that follow `handle`.
pub const fn remappable_msi(handle: u16) -> MsiMessage {
    let handle = handle as u32;
    MsiMessage {
        address: MSI_BASE
            | (handle & 0x7fff) << MSI_HANDLE_LOW_SHIFT
            | MSI_REMAPPABLE
            | MSI_SUBHANDLE_VALID
            | if handle & 0x8000 != 0 {
                MSI_HANDLE_HIGH
            } else {
                0
            },
        data: 0,
    }
}

/// The entry index the unit uses for an interrupt message: `None` if the
/// message is not a remappable-format interrupt (not in 0xfeex_xxxx, or
/// the format bit clear), has reserved data bits set with a subhandle, or
/// its handle plus subhandle leaves 16 bits.
pub const fn msi_handle(message: MsiMessage) -> Option<u16> {
    let a = message.address;
    if a & MSI_BASE_MASK != MSI_BASE || a & MSI_REMAPPABLE == 0 {
        return None;
    }
    let mut handle = (a >> MSI_HANDLE_LOW_SHIFT) & 0x7fff;
    if a & MSI_HANDLE_HIGH != 0 {
        handle |= 0x8000;
    }
    if a & MSI_SUBHANDLE_VALID != 0 {
        if message.data >> 16 != 0 {
            return None;
        }
        handle += message.data;
    }
    if handle > 0xffff {
        return None;
    }
    Some(handle as u16)
}

/// A freed entry whose handle waits for the interrupt entry cache to
/// forget it: invalidate `handle` (an index-selective interrupt entry
/// cache invalidation), then [`IrTable::release`] it.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "the interrupt entry cache must be invalidated, then the handle released"]
pub struct Retired {
    handle: u16,
}

impl Retired {
    pub fn handle(&self) -> u16 {
        self.handle
    }
}

/// One bit per entry.
type EntrySet = [u64; ENTRIES / 64];

fn contains(set: &EntrySet, i: usize) -> bool {
    set[i / 64] & (1 << (i % 64)) != 0
}

fn insert(set: &mut EntrySet, i: usize) {
    set[i / 64] |= 1 << (i % 64);
}

fn remove(set: &mut EntrySet, i: usize) {
    set[i / 64] &= !(1 << (i % 64));
}

/// One remapping unit's interrupt remapping table.
#[derive(Debug)]
pub struct IrTable {
    frame: Frame,
    mode: ApicMode,
    /// Entries handed out (present).
    live: EntrySet,
    /// Entries freed whose handles wait for [`IrTable::release`].
    retiring: EntrySet,
}

impl IrTable {
    /// An empty table (nothing present) in a frame from `frames`, for a
    /// unit with extended capabilities `ecap`, on a platform whose
    /// physical addresses have `host_bits` bits (13..=52, else
    /// `InvalidArgument`), reading destinations in `mode`.
    /// `NotSupported` if the unit does not remap interrupts, or x2APIC
    /// mode is asked of one without ECAP.EIM, or the frame lies beyond
    /// the host width (it is given back); `OutOfMemory` if no frame is to
    /// be had.
    pub fn new(
        frames: &mut impl TableFrames,
        ecap: Ecap,
        host_bits: u8,
        mode: ApicMode,
    ) -> Result<IrTable, Error> {
        if !(13..=MAX_HOST_BITS).contains(&host_bits) {
            return Err(Error::InvalidArgument);
        }
        if !ecap.interrupt_remapping()
            || (mode == ApicMode::X2Apic && !ecap.extended_interrupt_mode())
        {
            return Err(Error::NotSupported);
        }
        let frame = alloc_below(frames, 1 << host_bits)?;
        Ok(IrTable {
            frame,
            mode,
            live: [0; ENTRIES / 64],
            retiring: [0; ENTRIES / 64],
        })
    }

    pub fn frame(&self) -> Frame {
        self.frame
    }

    pub fn mode(&self) -> ApicMode {
        self.mode
    }

    /// The IRTA register value: the table's address, EIME in x2APIC mode,
    /// and the size field (256 entries).
    pub fn irta(&self) -> u64 {
        let eime = if self.mode == ApicMode::X2Apic {
            EIME
        } else {
            0
        };
        self.frame.addr() | eime | SIZE_FIELD
    }

    /// Entries handed out and not freed.
    pub fn entries_used(&self) -> usize {
        self.live.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// A fixed, edge-triggered entry for interrupts from `source` (bus,
    /// devfn) to vector `vector` of the CPU whose APIC id is
    /// `destination`: its handle. As [`IrTable::alloc_entry`].
    pub fn alloc(
        &mut self,
        mem: &mut impl TableMemory,
        source: (u8, u8),
        vector: u8,
        destination: u32,
    ) -> Result<u16, Error> {
        self.alloc_entry(mem, &Irte::fixed(source, vector, destination))
    }

    /// Writes `entry` into the lowest free slot and returns its handle.
    /// Errors, with nothing written: `InvalidArgument` if the entry cannot
    /// be encoded in the table's mode, `LimitReached` if every slot is in
    /// use or waiting to be released.
    ///
    /// A slot that was never present, or was released after its
    /// invalidation, needs no invalidation before use (unless the unit is
    /// in caching mode).
    pub fn alloc_entry(&mut self, mem: &mut impl TableMemory, entry: &Irte) -> Result<u16, Error> {
        let words = entry.encode(self.mode)?;
        let slot = (0..ENTRIES)
            .find(|&i| !contains(&self.live, i) && !contains(&self.retiring, i))
            .ok_or(Error::LimitReached)?;
        mem.write(self.frame, 2 * slot + 1, words[1]);
        mem.write(self.frame, 2 * slot, words[0]);
        insert(&mut self.live, slot);
        Ok(slot as u16)
    }

    /// The entry `handle` names, if it is handed out.
    pub fn lookup(&self, mem: &impl TableMemory, handle: u16) -> Option<Irte> {
        let slot = usize::from(handle);
        if slot >= ENTRIES || !contains(&self.live, slot) {
            return None;
        }
        Irte::decode(
            [
                mem.read(self.frame, 2 * slot),
                mem.read(self.frame, 2 * slot + 1),
            ],
            self.mode,
        )
    }

    /// The message a device is programmed with to use entry `handle`:
    /// `InvalidArgument` for a handle beyond the table, `NotFound` for one
    /// not handed out.
    pub fn msi(&self, handle: u16) -> Result<MsiMessage, Error> {
        let slot = usize::from(handle);
        if slot >= ENTRIES {
            return Err(Error::InvalidArgument);
        }
        if !contains(&self.live, slot) {
            return Err(Error::NotFound);
        }
        Ok(remappable_msi(handle))
    }

    /// Clears entry `handle` (not present from now on: an interrupt that
    /// still uses it faults once the cache forgets it). Its handle is not
    /// handed out again until it is released. `InvalidArgument` for a
    /// handle beyond the table, `NotFound` for one not handed out (or
    /// already freed).
    pub fn free(&mut self, mem: &mut impl TableMemory, handle: u16) -> Result<Retired, Error> {
        let slot = usize::from(handle);
        if slot >= ENTRIES {
            return Err(Error::InvalidArgument);
        }
        if !contains(&self.live, slot) {
            return Err(Error::NotFound);
        }
        mem.write(self.frame, 2 * slot, 0);
        mem.write(self.frame, 2 * slot + 1, 0);
        remove(&mut self.live, slot);
        insert(&mut self.retiring, slot);
        Ok(Retired { handle })
    }

    /// Makes a freed handle available again: only once the interrupt
    /// entry cache invalidation for it has completed.
    pub fn release(&mut self, retired: Retired) {
        remove(&mut self.retiring, usize::from(retired.handle));
    }

    /// Gives the table's frame back. The unit must no longer use it
    /// (interrupt remapping off, or another table programmed and a global
    /// interrupt entry cache invalidation done).
    pub fn destroy(self, frames: &mut impl TableFrames) {
        frames.free_table(self.frame);
    }
}

#[cfg(test)]
mod tests;
