//! The capability list in the first 256 bytes of configuration space,
//! and the two capabilities the kernel will own: MSI (id 0x05) and MSI-X
//! (id 0x11) ([`capabilities`]).
//!
//! Formats. The list exists if status bit 4 is set; its head pointer is
//! the byte at 0x34, and each capability starts with its id and the
//! pointer to the next (0 ends the list). MSI: message control at +2
//! (bit 0 enable, bits 3:1 multiple message capable as a power of two,
//! bits 6:4 multiple message enable, bit 7 64-bit addresses, bit 8
//! per-vector masking), then address (+4), upper address (+8, 64-bit
//! only), data, and with per-vector masking the mask and pending bits:
//! 12, 16, 20 or 24 bytes in all. MSI-X: message control at +2 (bits 10:0
//! table size minus one, bit 14 function mask, bit 15 enable), then two
//! dwords, for the table (+4) and the pending-bit array (+8), each a BAR
//! indicator in bits 2:0 and a qword-aligned offset into that BAR in the
//! rest; the table has 16 bytes per vector, the PBA one bit per vector in
//! whole qwords.
//!
//! Rules, with every answer hostile:
//! - a pointer must be 0x40 or more (past the header), a multiple of 4
//!   (the specification makes its two low bits zero; one that is not is
//!   refused, not masked) and below 0x100; a capability must end by 0x100;
//! - the walk stops at 48 capabilities (all that fit in 0x40..0x100) and
//!   at the first pointer seen twice (a loop), so it is bounded whatever
//!   the device answers; each capability's header is read once;
//! - at most one MSI and one MSI-X capability (a second could escape the
//!   kernel's ownership of the first);
//! - an MSI multiple-message-capable value that is reserved (6, 7) counts
//!   as one vector, the cautious reading;
//! - the MSI-X table and PBA must lie wholly inside an implemented memory
//!   BAR of the function (BAR indicator 0–5, the slot where that BAR
//!   starts), and must not overlap each other.

use arrayvec::ArrayVec;

use super::bar::Bar;
use super::config::{ConfigSpace, HEADER_SIZE, LEGACY_SIZE, STATUS_CAPABILITIES, reg};
use super::error::{CapFault, PciError};

pub const CAP_POWER_MANAGEMENT: u8 = 0x01;
pub const CAP_MSI: u8 = 0x05;
pub const CAP_VENDOR: u8 = 0x09;
pub const CAP_PCI_EXPRESS: u8 = 0x10;
pub const CAP_MSIX: u8 = 0x11;

/// The most capabilities a list can hold: one per dword of 0x40..0x100.
pub const MAX_CAPS: usize = (LEGACY_SIZE - HEADER_SIZE) as usize / 4;

/// The head pointer's offset, as the `at` of an error in it.
const HEAD: u8 = reg::CAPABILITIES_PTR as u8;

/// One capability of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    pub id: u8,
    pub offset: u8,
}

/// An MSI capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msi {
    pub offset: u8,
    /// The function takes 64-bit message addresses.
    pub addr64: bool,
    /// The function has mask and pending bits per vector.
    pub per_vector_mask: bool,
    /// Vectors it can use: 1, 2, 4, 8, 16 or 32.
    pub vectors: u8,
}

impl Msi {
    /// Bytes the structure takes: 12, 16, 20 or 24 (the data register's
    /// whole dword counted).
    pub const fn size(&self) -> u8 {
        12 + if self.addr64 { 4 } else { 0 } + if self.per_vector_mask { 8 } else { 0 }
    }

    pub const fn control(&self) -> u16 {
        self.offset as u16 + 2
    }

    pub const fn address(&self) -> u16 {
        self.offset as u16 + 4
    }

    /// The upper address dword, for 64-bit capable functions.
    pub const fn upper_address(&self) -> Option<u16> {
        if self.addr64 {
            Some(self.offset as u16 + 8)
        } else {
            None
        }
    }

    pub const fn data(&self) -> u16 {
        self.offset as u16 + if self.addr64 { 12 } else { 8 }
    }

    /// The mask bits dword (the pending bits follow it).
    pub const fn mask_bits(&self) -> Option<u16> {
        if self.per_vector_mask {
            Some(self.data() + 4)
        } else {
            None
        }
    }
}

/// A structure in a memory BAR: bytes `offset..offset + len` of BAR
/// `bar`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarRegion {
    pub bar: u8,
    pub offset: u32,
    pub len: u32,
}

impl BarRegion {
    /// One past the last byte, in the BAR (no overflow: both are below
    /// 2^32).
    pub const fn end(&self) -> u64 {
        self.offset as u64 + self.len as u64
    }

    /// The 4 KiB pages of the BAR the region touches, as page-aligned
    /// offsets `start..end` into it: what the kernel keeps out of a
    /// driver's mappings when it owns the structure.
    pub const fn pages(&self) -> (u64, u64) {
        (self.offset as u64 & !0xfff, (self.end() + 0xfff) & !0xfff)
    }

    const fn overlaps(&self, other: &BarRegion) -> bool {
        self.bar == other.bar
            && (self.offset as u64) < other.end()
            && (other.offset as u64) < self.end()
    }
}

/// An MSI-X capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiX {
    pub offset: u8,
    /// Vectors: 1 to 2048.
    pub table_size: u16,
    /// The vector table, 16 bytes per vector.
    pub table: BarRegion,
    /// The pending-bit array, one bit per vector, in whole qwords.
    pub pba: BarRegion,
}

impl MsiX {
    /// Bytes the structure takes.
    pub const LEN: u8 = 12;

    pub const fn control(&self) -> u16 {
        self.offset as u16 + 2
    }
}

/// What the capability list holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Every capability, in list order.
    pub list: ArrayVec<Capability, MAX_CAPS>,
    pub msi: Option<Msi>,
    pub msix: Option<MsiX>,
}

impl Capabilities {
    /// The offset of the first capability with this id.
    pub fn find(&self, id: u8) -> Option<u8> {
        self.list.iter().find(|c| c.id == id).map(|c| c.offset)
    }

    /// The offsets of the vendor-specific capabilities (id 0x09).
    pub fn vendor(&self) -> impl Iterator<Item = u8> + '_ {
        self.list
            .iter()
            .filter(|c| c.id == CAP_VENDOR)
            .map(|c| c.offset)
    }
}

/// Walks the capability list; `bars` are the function's BARs as
/// [`super::bar::size_bars`] found them, which the MSI-X table and PBA
/// must lie in. Reads only.
pub fn capabilities<C: ConfigSpace + ?Sized>(
    cfg: &mut C,
    bars: &[Bar],
) -> Result<Capabilities, PciError> {
    let mut caps = Capabilities::default();
    if cfg.read16(reg::STATUS) & STATUS_CAPABILITIES == 0 {
        return Ok(caps);
    }
    let mut from = HEAD;
    let mut at = cfg.read8(reg::CAPABILITIES_PTR);
    let mut seen = 0u64;
    while at != 0 {
        let bad = |fault| PciError::Capability { at: from, fault };
        if u16::from(at) < HEADER_SIZE || !at.is_multiple_of(4) {
            return Err(bad(CapFault::BadPointer(at)));
        }
        let bit = 1u64 << ((at - HEADER_SIZE as u8) / 4);
        if seen & bit != 0 {
            return Err(bad(CapFault::Loop));
        }
        seen |= bit;
        let header = cfg.read16(at.into());
        let id = header as u8;
        let cap = Capability { id, offset: at };
        caps.list
            .try_push(cap)
            .map_err(|_| bad(CapFault::TooMany))?;
        let fault = |fault| PciError::Capability { at, fault };
        match id {
            CAP_MSI if caps.msi.is_some() => return Err(fault(CapFault::Duplicate)),
            CAP_MSIX if caps.msix.is_some() => return Err(fault(CapFault::Duplicate)),
            CAP_MSI => caps.msi = Some(msi(cfg, at).map_err(fault)?),
            CAP_MSIX => caps.msix = Some(msix(cfg, at, bars).map_err(fault)?),
            _ => {}
        }
        from = at;
        at = (header >> 8) as u8;
    }
    Ok(caps)
}

/// `Truncated` unless `len` bytes from `at` end by 0x100.
fn fits(at: u8, len: u8) -> Result<(), CapFault> {
    if u16::from(at) + u16::from(len) <= LEGACY_SIZE {
        Ok(())
    } else {
        Err(CapFault::Truncated)
    }
}

fn msi<C: ConfigSpace + ?Sized>(cfg: &mut C, at: u8) -> Result<Msi, CapFault> {
    fits(at, 4)?;
    let control = cfg.read16(u16::from(at) + 2);
    let capable = (control >> 1) & 0b111;
    let msi = Msi {
        offset: at,
        addr64: control & (1 << 7) != 0,
        per_vector_mask: control & (1 << 8) != 0,
        vectors: if capable <= 5 { 1 << capable } else { 1 },
    };
    fits(at, msi.size())?;
    Ok(msi)
}

fn msix<C: ConfigSpace + ?Sized>(cfg: &mut C, at: u8, bars: &[Bar]) -> Result<MsiX, CapFault> {
    fits(at, MsiX::LEN)?;
    let base = u16::from(at);
    let table_size = (cfg.read16(base + 2) & 0x7ff) + 1;
    let table = cfg.read32(base + 4);
    let pba = cfg.read32(base + 8);
    let table = region(table, u32::from(table_size) * 16, bars)?;
    let pba = region(pba, u32::from(table_size).div_ceil(64) * 8, bars)?;
    if table.overlaps(&pba) {
        return Err(CapFault::MsixOverlap);
    }
    Ok(MsiX {
        offset: at,
        table_size,
        table,
        pba,
    })
}

/// The `len` bytes a table or PBA dword points at, checked against the
/// BAR it names.
fn region(dword: u32, len: u32, bars: &[Bar]) -> Result<BarRegion, CapFault> {
    let bar = (dword & 0b111) as u8;
    let region = BarRegion {
        bar,
        offset: dword & !0b111,
        len,
    };
    let b = bars
        .iter()
        .find(|b| b.index == bar && b.is_memory())
        .ok_or(CapFault::MsixBar)?;
    if region.end() > b.size {
        return Err(CapFault::MsixOutsideBar);
    }
    Ok(region)
}

#[cfg(test)]
mod tests;
