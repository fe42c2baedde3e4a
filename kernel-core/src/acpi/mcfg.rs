//! The MCFG table (PCI Firmware specification): where each PCI segment's
//! memory-mapped configuration space (ECAM) lives and for which buses.
//! [`Mcfg::config_address`] gives the physical address of a function's
//! 4 KiB of configuration space.
//!
//! Rules: as for the MADT (see the parent module), the table is found
//! through the root table and checksummed, and read only through
//! `PhysMemory`. Its length must be the header, 8 reserved bytes and a
//! whole number of 16-byte allocations, at most [`MAX_ALLOCATIONS`] of them
//! (more is [`AcpiError::TooMany`], not a shortened list). Each allocation
//! must end at or after its start bus, have a 1 MiB-aligned base, and a
//! window that fits in 64 bits, so address arithmetic on a parsed table
//! cannot overflow; lookups check the bus range, device (`< 32`) and
//! function (`< 8`). Where allocations overlap, the first in table order
//! wins. Nothing is allocated.
//!
//! QEMU builds an MCFG on q35 (one allocation: base 0xb000_0000, segment
//! 0, buses 0 to 255) but not on `pc`; and while the guest has ECAM
//! turned off it renames the table "QEMU", so it is not found.

use arrayvec::ArrayVec;

use super::{AcpiError, PciFunction, SDT_HEADER_LEN, check_table, find_table, read_at};
use crate::bootinfo::PhysMemory;
use crate::le::{u16_at, u64_at};

/// Allocations kept: one per segment or host bridge; QEMU has one.
pub const MAX_ALLOCATIONS: usize = 16;
/// Configuration space a bus takes in an ECAM window (32 devices × 8
/// functions × 4 KiB).
pub const ECAM_BUS_SIZE: u64 = 1 << 20;
/// Configuration space of one function.
pub const FUNCTION_CONFIG_SIZE: u64 = 4096;

/// Offset of the first allocation: the header and 8 reserved bytes.
const ALLOCATIONS: u64 = SDT_HEADER_LEN + 8;
const ALLOCATION_LEN: u64 = 16;

/// One ECAM window: buses `start_bus..=end_bus` of `segment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcamAllocation {
    /// Where bus 0's configuration space would be (the window itself begins
    /// at `base + start_bus * ECAM_BUS_SIZE`).
    pub base: u64,
    pub segment: u16,
    pub start_bus: u8,
    pub end_bus: u8,
}

impl EcamAllocation {
    pub fn covers(&self, segment: u16, bus: u8) -> bool {
        segment == self.segment && (self.start_bus..=self.end_bus).contains(&bus)
    }

    /// Physical address of `f`'s configuration space, if `f` is valid and
    /// its bus is in this window.
    pub fn config_address(&self, f: PciFunction) -> Option<u64> {
        if !f.is_valid() || !self.covers(f.segment, f.bus) {
            return None;
        }
        let off =
            (u64::from(f.bus) << 20) | (u64::from(f.device) << 15) | (u64::from(f.function) << 12);
        self.base.checked_add(off)
    }

    /// The physical range `start..end` the window's buses take, to map.
    /// Saturates on an allocation built by hand that does not fit in 64
    /// bits (a parsed one always does).
    pub fn window(&self) -> (u64, u64) {
        let at = |bus: u64| self.base.saturating_add(bus * ECAM_BUS_SIZE);
        (
            at(u64::from(self.start_bus)),
            at(u64::from(self.end_bus) + 1),
        )
    }
}

/// What the kernel needs from the MCFG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mcfg {
    /// In table order.
    pub allocations: ArrayVec<EcamAllocation, MAX_ALLOCATIONS>,
}

impl Mcfg {
    /// The first allocation that covers `bus` of `segment`.
    pub fn allocation_for(&self, segment: u16, bus: u8) -> Option<&EcamAllocation> {
        self.allocations.iter().find(|a| a.covers(segment, bus))
    }

    /// Physical address of `f`'s 4 KiB of configuration space; None if
    /// device or function is out of range or no allocation covers its bus.
    pub fn config_address(&self, f: PciFunction) -> Option<u64> {
        self.allocation_for(f.segment, f.bus)?.config_address(f)
    }
}

/// Finds and parses the MCFG through the RSDP at `rsdp`; `Ok(None)` if the
/// machine has none (QEMU's `pc`, or q35 with ECAM off).
pub fn parse_mcfg(mem: &impl PhysMemory, rsdp: u64) -> Result<Option<Mcfg>, AcpiError> {
    match find_table(mem, rsdp, b"MCFG")? {
        Some(table) => parse_mcfg_table(mem, table).map(Some),
        None => Ok(None),
    }
}

fn parse_mcfg_table(mem: &impl PhysMemory, addr: u64) -> Result<Mcfg, AcpiError> {
    let (_, len) = check_table(mem, addr, "MCFG")?;
    if len < ALLOCATIONS || !(len - ALLOCATIONS).is_multiple_of(ALLOCATION_LEN) {
        return Err(AcpiError::BadLength("MCFG"));
    }
    let mut mcfg = Mcfg {
        allocations: ArrayVec::new(),
    };
    let malformed = |why| AcpiError::Malformed { table: "MCFG", why };
    let mut off = ALLOCATIONS;
    while off < len {
        let e: [u8; ALLOCATION_LEN as usize] = read_at(mem, addr, off)?;
        let a = EcamAllocation {
            base: u64_at(&e, 0),
            segment: u16_at(&e, 8),
            start_bus: e[10],
            end_bus: e[11],
        };
        if a.end_bus < a.start_bus {
            return Err(malformed("an allocation ends below its start bus"));
        }
        if !a.base.is_multiple_of(ECAM_BUS_SIZE) {
            return Err(malformed("an allocation's base is not 1 MiB-aligned"));
        }
        // The end of the window, base + (end_bus + 1) MiB, must fit.
        if a.base
            .checked_add((u64::from(a.end_bus) + 1) * ECAM_BUS_SIZE)
            .is_none()
        {
            return Err(malformed(
                "an allocation's window runs past the 64-bit address space",
            ));
        }
        mcfg.allocations
            .try_push(a)
            .map_err(|_| AcpiError::TooMany {
                what: "MCFG allocations",
                limit: MAX_ALLOCATIONS,
            })?;
        off += ALLOCATION_LEN;
    }
    Ok(mcfg)
}

#[cfg(test)]
mod tests;
