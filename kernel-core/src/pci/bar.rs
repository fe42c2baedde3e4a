//! A type 0 function's base address registers (BARs): what each decodes
//! (I/O ports, or memory below 4 GiB or anywhere in 64 bits,
//! prefetchable or not), where, and how much, found by sizing them
//! ([`size_bars`]).
//!
//! Sizing, the standard way: with I/O and memory decode off in the
//! command register, each of the six slots is read, written with all ones,
//! read back (the writable address bits are the size mask; the type bits
//! are read-only), written with its original value and read once more.
//! Then the command register is restored. Every slot is sized and put
//! back before anything is decided, so a malformed BAR leaves nothing
//! changed; [`decode`] then judges the readings alone.
//!
//! Rules, with every answer hostile:
//! - a BAR whose writable address bits are all zero is unimplemented (no
//!   entry); a 64-bit BAR takes its slot and the one above, so one in slot
//!   5 is malformed; memory types 01 and 11 are reserved, hence malformed;
//! - the size is a power of two: the writable address bits (with the top
//!   half of a 16-bit I/O decoder, or of a 32-bit memory BAR, counted as
//!   writable) must be one run up to bit 63;
//! - the base is aligned to the size, and base + size is representable
//!   in 64 bits (a range ending exactly at 2^64 is refused); an I/O range
//!   is smaller than 64 KiB and ends at or below port 0x10000;
//! - a space or type bit (read-only) that reads differently before and
//!   after the write of ones, a slot that does not read back its original
//!   value, or a command register that does not, is `Unstable`;
//! - base 0 is reported as it is: firmware did not assign the BAR, and the
//!   kernel must not turn decode on for it ([`Bar::is_assigned`]).
//!
//! The expansion ROM BAR is not sized here.

use arrayvec::ArrayVec;

use super::command::Command;
use super::config::{ConfigSpace, bar_offset, reg};
use super::error::{BarFault, PciError};
use super::header::check_endpoint;

/// BAR slots in a type 0 header.
pub const BAR_SLOTS: usize = 6;

const IO_SPACE: u32 = 1 << 0;
const IO_ADDRESS: u32 = !0b11;
const MEM_FLAGS: u32 = 0b1111;
const MEM_ADDRESS: u32 = !MEM_FLAGS;
const MEM_TYPE: u32 = 0b110;
const MEM_TYPE_32: u32 = 0b000;
const MEM_TYPE_64: u32 = 0b100;
const MEM_PREFETCHABLE: u32 = 1 << 3;
/// Ports on x86.
const IO_LIMIT: u64 = 0x1_0000;

/// What a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// I/O ports.
    Io,
    /// Memory below 4 GiB; one slot.
    Mem32,
    /// Memory anywhere in 64 bits; this slot and the next.
    Mem64,
}

/// One implemented BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// The slot, 0–5 (a `Mem64` also takes `index + 1`).
    pub index: u8,
    pub kind: BarKind,
    /// Memory only: reads have no side effects, so it may be mapped
    /// write-combining.
    pub prefetchable: bool,
    /// Aligned to `size`; 0 if firmware left the BAR unassigned.
    pub base: u64,
    /// A power of two (at least 4 for I/O, 16 for memory).
    pub size: u64,
}

impl Bar {
    /// One past the last address (never past 2^64 - 1 for a decoded
    /// BAR: [`decode`] checks it; saturates for one built by hand).
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// Whether firmware gave the BAR an address (a base of 0 means it did
    /// not).
    pub const fn is_assigned(&self) -> bool {
        self.base != 0
    }

    pub const fn is_memory(&self) -> bool {
        !matches!(self.kind, BarKind::Io)
    }
}

/// A function's implemented BARs, in slot order.
pub type Bars = ArrayVec<Bar, BAR_SLOTS>;

/// What sizing one slot read: its value, its value after a write of all
/// ones, and its value after the original was written back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawBar {
    pub original: u32,
    pub mask: u32,
    pub restored: u32,
}

/// Sizes the six BARs of a type 0 function and decodes them.
/// `Absent`/`NotEndpoint` before anything is written (a bridge's slots
/// 2–5 are not BARs); otherwise every slot and the command register are
/// restored before the readings are judged, whatever they say.
pub fn size_bars<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Result<Bars, PciError> {
    check_endpoint(cfg)?;
    let raw = read_bars(cfg)?;
    decode(&raw)
}

/// The sizing pass of [`size_bars`], without the header check: decode
/// off, six slots sized and restored, decode restored and checked.
pub fn read_bars<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Result<[RawBar; BAR_SLOTS], PciError> {
    let command = cfg.read16(reg::COMMAND);
    let quiet = Command::from_raw(command).without_decode().bits();
    if quiet != command {
        cfg.write16(reg::COMMAND, quiet);
    }
    let mut raw = [RawBar::default(); BAR_SLOTS];
    for (i, slot) in raw.iter_mut().enumerate() {
        let offset = bar_offset(i);
        let original = cfg.read32(offset);
        cfg.write32(offset, u32::MAX);
        let mask = cfg.read32(offset);
        cfg.write32(offset, original);
        let restored = cfg.read32(offset);
        *slot = RawBar {
            original,
            mask,
            restored,
        };
    }
    if quiet != command {
        cfg.write16(reg::COMMAND, command);
    }
    if cfg.read16(reg::COMMAND) != command {
        return Err(PciError::Unstable {
            offset: reg::COMMAND,
        });
    }
    Ok(raw)
}

/// Judges six slots' readings (see the module's rules).
pub fn decode(raw: &[RawBar; BAR_SLOTS]) -> Result<Bars, PciError> {
    if let Some(i) = raw.iter().position(|r| r.restored != r.original) {
        return Err(PciError::Unstable {
            offset: bar_offset(i),
        });
    }
    let mut bars = Bars::new();
    let mut i = 0;
    while i < BAR_SLOTS {
        let r = raw[i];
        let index = i as u8;
        let bad = |fault| PciError::Bar { index, fault };
        let unstable = PciError::Unstable {
            offset: bar_offset(i),
        };
        if (r.original ^ r.mask) & IO_SPACE != 0 {
            return Err(unstable);
        }
        if r.original & IO_SPACE != 0 {
            if let Some(bar) = decode_io(index, r)? {
                bars.push(bar);
            }
            i += 1;
            continue;
        }
        if (r.original ^ r.mask) & MEM_FLAGS != 0 {
            return Err(unstable);
        }
        let prefetchable = r.original & MEM_PREFETCHABLE != 0;
        let (kind, mask, base) = match r.original & MEM_TYPE {
            MEM_TYPE_32 => (
                BarKind::Mem32,
                u64::from(r.mask & MEM_ADDRESS) | 0xffff_ffff_0000_0000,
                u64::from(r.original & MEM_ADDRESS),
            ),
            MEM_TYPE_64 => {
                let Some(high) = raw.get(i + 1) else {
                    return Err(bad(BarFault::Wide64InLastSlot));
                };
                (
                    BarKind::Mem64,
                    (u64::from(high.mask) << 32) | u64::from(r.mask & MEM_ADDRESS),
                    (u64::from(high.original) << 32) | u64::from(r.original & MEM_ADDRESS),
                )
            }
            _ => return Err(bad(BarFault::ReservedType)),
        };
        i += if kind == BarKind::Mem64 { 2 } else { 1 };
        let writable = match kind {
            BarKind::Mem32 => r.mask & MEM_ADDRESS != 0,
            _ => mask != 0,
        };
        if !writable {
            continue; // unimplemented
        }
        let size = size_of(mask).ok_or(bad(BarFault::NotPowerOfTwo))?;
        if base & (size - 1) != 0 {
            return Err(bad(BarFault::Misaligned));
        }
        if base.checked_add(size).is_none() {
            return Err(bad(BarFault::Overflow));
        }
        bars.push(Bar {
            index,
            kind,
            prefetchable,
            base,
            size,
        });
    }
    Ok(bars)
}

/// An I/O slot: `None` if unimplemented.
fn decode_io(index: u8, r: RawBar) -> Result<Option<Bar>, PciError> {
    let bad = |fault| PciError::Bar { index, fault };
    let mut mask = r.mask & IO_ADDRESS;
    if mask == 0 {
        return Ok(None);
    }
    if mask & 0xffff_0000 == 0 {
        // A 16-bit decoder: the upper half is hardwired to zero, and the
        // size comes from the lower half.
        mask |= 0xffff_0000;
    }
    let size =
        size_of(u64::from(mask) | 0xffff_ffff_0000_0000).ok_or(bad(BarFault::NotPowerOfTwo))?;
    let base = u64::from(r.original & IO_ADDRESS);
    if base & (size - 1) != 0 {
        return Err(bad(BarFault::Misaligned));
    }
    if size >= IO_LIMIT || base + size > IO_LIMIT {
        return Err(bad(BarFault::IoAbove64K));
    }
    Ok(Some(Bar {
        index,
        kind: BarKind::Io,
        prefetchable: false,
        base,
        size,
    }))
}

/// The size a 64-bit mask of writable address bits stands for: its
/// lowest set bit, if every bit above it is set too (`None` otherwise, or
/// for 0).
pub const fn size_of(mask: u64) -> Option<u64> {
    if mask == 0 {
        return None;
    }
    let size = mask & mask.wrapping_neg();
    if mask | (size - 1) == u64::MAX {
        Some(size)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
