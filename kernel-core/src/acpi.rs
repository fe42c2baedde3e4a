//! Just enough ACPI to route interrupts and, later, to set up the I/O MMU:
//! find the RSDP, walk the RSDT or XSDT to a table by its signature
//! ([`find_table`]), and read the MADT (the I/O APICs, the ISA interrupt
//! source overrides, the local APIC address and the number of enabled
//! CPUs); [`dmar`] reads Intel's DMA remapping table and [`mcfg`] the PCI
//! Express configuration-space windows.
//!
//! Rules: firmware tables are not trusted. Every table's checksum is
//! verified, every length is bounded (tables by [`MAX_TABLE_LEN`], the root
//! table's entries by [`MAX_ROOT_ENTRIES`]), every MADT entry must have a
//! length of at least 2 that stays inside the table (so a zero-length entry
//! cannot make us loop), and all reads go through [`PhysMemory`]. The
//! parsers here and in the submodules share `check_table` and
//! [`find_table`], allocate nothing beyond fixed-size `ArrayVec`s, and
//! report a malformed table as an [`AcpiError`] naming it.

use arrayvec::ArrayVec;
use core::fmt;

use crate::bootinfo::PhysMemory;
use crate::le::{u16_at, u32_at, u64_at};

pub mod dmar;
pub mod mcfg;

/// Physical address of the BIOS data area word holding the EBDA segment.
const EBDA_SEGMENT_PTR: u64 = 0x40E;
const BIOS_AREA: (u64, u64) = (0xE_0000, 0x10_0000);
const RSDP_SIG: &[u8; 8] = b"RSD PTR ";
const RSDP_V1_LEN: usize = 20;
const RSDP_V2_LEN: usize = 36;
const SDT_HEADER_LEN: u64 = 36;
/// Tables larger than this are treated as corrupt.
pub const MAX_TABLE_LEN: u32 = 1 << 20;
/// Root-table entries looked at; real firmware has a few dozen.
pub const MAX_ROOT_ENTRIES: u64 = 256;

/// Finds the RSDP: in the first KiB of the EBDA, then in the BIOS area
/// `0xE0000..0x100000`, on 16-byte boundaries, with valid checksums.
pub fn find_rsdp(mem: &impl PhysMemory) -> Option<u64> {
    let mut seg = [0u8; 2];
    if mem.read(EBDA_SEGMENT_PTR, &mut seg) {
        let ebda = u64::from(u16::from_le_bytes(seg)) << 4;
        if ebda != 0
            && let Some(found) = scan_rsdp(mem, ebda, ebda + 1024)
        {
            return Some(found);
        }
    }
    scan_rsdp(mem, BIOS_AREA.0, BIOS_AREA.1)
}

fn scan_rsdp(mem: &impl PhysMemory, start: u64, end: u64) -> Option<u64> {
    (start..end)
        .step_by(16)
        .find(|&addr| valid_rsdp(mem, addr).is_ok())
}

/// Checks the RSDP at `addr`; returns its 36 bytes (v1: the last 16 zero).
fn valid_rsdp(mem: &impl PhysMemory, addr: u64) -> Result<[u8; RSDP_V2_LEN], AcpiError> {
    let mut buf = [0u8; RSDP_V2_LEN];
    let (v1, _) = buf.split_at_mut(RSDP_V1_LEN);
    if !mem.read(addr, v1) {
        return Err(AcpiError::Unreadable(addr));
    }
    if v1.get(..8) != Some(RSDP_SIG.as_slice()) || sum(v1) != 0 {
        return Err(AcpiError::BadChecksum("RSDP"));
    }
    if v1.get(15).is_some_and(|&rev| rev >= 2) {
        if !mem.read(addr, &mut buf) {
            return Err(AcpiError::Unreadable(addr));
        }
        // The extended checksum covers `length` bytes, which is 36 for
        // every revision so far; a different length is not one we know.
        if u32_at(&buf, 20) as usize != RSDP_V2_LEN {
            return Err(AcpiError::BadLength("RSDP"));
        }
        if sum(&buf) != 0 {
            return Err(AcpiError::BadChecksum("RSDP"));
        }
    }
    Ok(buf)
}

/// An I/O APIC from the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicInfo {
    pub id: u8,
    pub addr: u64,
    pub gsi_base: u32,
}

/// How an ISA IRQ reaches the I/O APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqOverride {
    pub source: u8,
    pub gsi: u32,
    pub active_low: bool,
    pub level_triggered: bool,
}

/// What the kernel needs from the MADT.
#[derive(Clone, Debug)]
pub struct Madt {
    pub local_apic_addr: u64,
    pub io_apics: ArrayVec<IoApicInfo, 8>,
    pub overrides: ArrayVec<IrqOverride, 16>,
    /// Local APICs marked enabled: the CPUs usable now.
    pub cpu_count: u32,
    /// Their APIC ids, in MADT order (the first 64; `cpu_count` counts
    /// them all).
    pub apic_ids: ArrayVec<u32, 64>,
}

impl Madt {
    /// GSI and polarity/trigger for an ISA IRQ (identity, edge, active-high unless overridden)
    pub fn isa_irq(&self, irq: u8) -> IrqOverride {
        self.overrides
            .iter()
            .copied()
            .find(|o| o.source == irq)
            .unwrap_or(IrqOverride {
                source: irq,
                gsi: u32::from(irq),
                active_low: false,
                level_triggered: false,
            })
    }
}

/// Why the ACPI tables were rejected. The strings name the table (and,
/// for a table's parts, the part: "DMAR device scope").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    Unreadable(u64),
    /// A checksum (or, for the root table, its signature) is wrong.
    BadChecksum(&'static str),
    BadLength(&'static str),
    NoMadt,
    /// The table holds more of something than the parser has room for;
    /// the table is refused rather than half-used.
    TooMany {
        what: &'static str,
        limit: usize,
    },
    /// A field has a value the table's specification rules out.
    Malformed {
        table: &'static str,
        why: &'static str,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AcpiError::Unreadable(a) => {
                write!(f, "ACPI data at physical address {a:#x} is not readable")
            }
            AcpiError::BadChecksum(what) => write!(f, "the ACPI {what} fails its checksum"),
            AcpiError::BadLength(what) => write!(f, "the ACPI {what} has an invalid length"),
            AcpiError::NoMadt => write!(f, "the ACPI tables have no MADT"),
            AcpiError::TooMany { what, limit } => {
                write!(f, "the ACPI {what} exceed MH's limit of {limit}")
            }
            AcpiError::Malformed { table, why } => {
                write!(f, "the ACPI {table} is malformed: {why}")
            }
        }
    }
}

/// A PCI function: segment (PCI Express "segment group"), bus, device
/// (`0..32`) and function (`0..8`). Not checked on construction; the
/// functions that take one check what they need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciFunction {
    pub segment: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl PciFunction {
    pub const fn new(segment: u16, bus: u8, device: u8, function: u8) -> Self {
        PciFunction {
            segment,
            bus,
            device,
            function,
        }
    }

    /// Whether device and function are in range (`< 32`, `< 8`).
    pub const fn is_valid(&self) -> bool {
        self.device < 32 && self.function < 8
    }
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// Fills `buf` from `base + off`.
fn read_into(mem: &impl PhysMemory, base: u64, off: u64, buf: &mut [u8]) -> Result<(), AcpiError> {
    let addr = base.checked_add(off).ok_or(AcpiError::Unreadable(base))?;
    if mem.read(addr, buf) {
        Ok(())
    } else {
        Err(AcpiError::Unreadable(addr))
    }
}

/// Reads `N` bytes at `base + off`.
fn read_at<const N: usize>(
    mem: &impl PhysMemory,
    base: u64,
    off: u64,
) -> Result<[u8; N], AcpiError> {
    let mut buf = [0u8; N];
    read_into(mem, base, off, &mut buf)?;
    Ok(buf)
}

/// Reads the header of the table at `addr` and checks its length and
/// checksum; returns the signature and length.
fn check_table(
    mem: &impl PhysMemory,
    addr: u64,
    what: &'static str,
) -> Result<([u8; 4], u64), AcpiError> {
    let hdr: [u8; SDT_HEADER_LEN as usize] = read_at(mem, addr, 0)?;
    let len = u32_at(&hdr, 4);
    if u64::from(len) < SDT_HEADER_LEN || len > MAX_TABLE_LEN {
        return Err(AcpiError::BadLength(what));
    }
    let len = u64::from(len);
    let mut acc = 0u8;
    let mut off = 0;
    while off < len {
        let mut chunk = [0u8; 64];
        let n = (len - off).min(64) as usize;
        let part = &mut chunk[..n];
        read_into(mem, addr, off, part)?;
        acc = acc.wrapping_add(sum(part));
        off += n as u64;
    }
    if acc != 0 {
        return Err(AcpiError::BadChecksum(what));
    }
    let mut sig = [0u8; 4];
    sig.copy_from_slice(&hdr[..4]);
    Ok((sig, len))
}

/// Finds the first table with signature `sig` through the RSDP at `rsdp`:
/// via the XSDT if the RSDP is revision 2 or later and has one, else via
/// the RSDT. Checks the RSDP and the root table; the table found is not
/// checked (its parser calls `check_table`). `Ok(None)` when no entry of
/// the root table (up to [`MAX_ROOT_ENTRIES`]) has that signature; an
/// unreadable entry before the one sought is an error.
pub fn find_table(
    mem: &impl PhysMemory,
    rsdp: u64,
    sig: &[u8; 4],
) -> Result<Option<u64>, AcpiError> {
    let r = valid_rsdp(mem, rsdp)?;
    let xsdt = u64_at(&r, 24);
    let (root, entry_len, what, root_want) = if r[15] >= 2 && xsdt != 0 {
        (xsdt, 8, "XSDT", b"XSDT")
    } else {
        (u64::from(u32_at(&r, 16)), 4, "RSDT", b"RSDT")
    };
    let (root_sig, root_len) = check_table(mem, root, what)?;
    if &root_sig != root_want {
        return Err(AcpiError::BadChecksum(what));
    }
    let count = ((root_len - SDT_HEADER_LEN) / entry_len).min(MAX_ROOT_ENTRIES);
    for i in 0..count {
        let off = SDT_HEADER_LEN + i * entry_len;
        let table = if entry_len == 8 {
            u64::from_le_bytes(read_at(mem, root, off)?)
        } else {
            u64::from(u32::from_le_bytes(read_at(mem, root, off)?))
        };
        let found: [u8; 4] = read_at(mem, table, 0)?;
        if &found == sig {
            return Ok(Some(table));
        }
    }
    Ok(None)
}

/// Finds and parses the MADT through the RSDP at `rsdp` (see [`find_table`]).
pub fn parse_madt(mem: &impl PhysMemory, rsdp: u64) -> Result<Madt, AcpiError> {
    let table = find_table(mem, rsdp, b"APIC")?.ok_or(AcpiError::NoMadt)?;
    parse_madt_table(mem, table)
}

/// MADT entry types we use.
const LOCAL_APIC: u8 = 0;
const IO_APIC: u8 = 1;
const SOURCE_OVERRIDE: u8 = 2;
const LOCAL_APIC_ADDR_OVERRIDE: u8 = 5;
/// Offset of the first entry: header, local APIC address, flags.
const MADT_ENTRIES: u64 = SDT_HEADER_LEN + 8;

fn parse_madt_table(mem: &impl PhysMemory, addr: u64) -> Result<Madt, AcpiError> {
    let (_, len) = check_table(mem, addr, "MADT")?;
    if len < MADT_ENTRIES {
        return Err(AcpiError::BadLength("MADT"));
    }
    let lapic: [u8; 4] = read_at(mem, addr, SDT_HEADER_LEN)?;
    let mut madt = Madt {
        local_apic_addr: u64::from(u32::from_le_bytes(lapic)),
        io_apics: ArrayVec::new(),
        overrides: ArrayVec::new(),
        cpu_count: 0,
        apic_ids: ArrayVec::new(),
    };
    let mut off = MADT_ENTRIES;
    while off < len {
        let bad = AcpiError::BadLength("MADT entry");
        if len - off < 2 {
            return Err(bad);
        }
        let [kind, elen]: [u8; 2] = read_at(mem, addr, off)?;
        let elen = u64::from(elen);
        if elen < 2 || elen > len - off {
            return Err(bad);
        }
        // Entries are at most 255 bytes; read the whole one at once.
        let mut e = [0u8; 255];
        read_into(mem, addr, off, &mut e[..elen as usize])?;
        let need = |n: u64| if elen < n { Err(bad) } else { Ok(()) };
        match kind {
            LOCAL_APIC => {
                need(8)?;
                if u32_at(&e, 4) & 1 != 0 {
                    madt.cpu_count = madt.cpu_count.saturating_add(1);
                    let _ = madt.apic_ids.try_push(u32::from(e[3]));
                }
            }
            IO_APIC => {
                need(12)?;
                // Beyond eight I/O APICs the extra ones are left unused.
                let _ = madt.io_apics.try_push(IoApicInfo {
                    id: e[2],
                    addr: u64::from(u32_at(&e, 4)),
                    gsi_base: u32_at(&e, 8),
                });
            }
            SOURCE_OVERRIDE => {
                need(10)?;
                let flags = u16_at(&e, 8);
                // 0 means "conforms to the bus": ISA is edge, active high.
                let _ = madt.overrides.try_push(IrqOverride {
                    source: e[3],
                    gsi: u32_at(&e, 4),
                    active_low: flags & 0b11 == 0b11,
                    level_triggered: (flags >> 2) & 0b11 == 0b11,
                });
            }
            LOCAL_APIC_ADDR_OVERRIDE => {
                need(12)?;
                madt.local_apic_addr = u64_at(&e, 4);
            }
            _ => {}
        }
        off += elen;
    }
    Ok(madt)
}

#[cfg(test)]
mod tests;
