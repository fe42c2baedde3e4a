//! The DMAR table (Intel VT-d, "DMA Remapping Reporting Structure"): the
//! host address width, the interrupt-remapping and x2APIC opt-out flags, the
//! remapping hardware units (DRHD) with the devices each one translates, and
//! the reserved memory regions (RMRR) that devices go on using once the I/O
//! MMU is on. [`Dmar::unit_for`] says which unit translates a PCI function,
//! [`Dmar::platform_scope`] which one an I/O APIC or HPET sits behind.
//!
//! Rules: as for the MADT (see the parent module), the table is found
//! through the root table and checksummed, and read only through
//! `PhysMemory`. Every remapping structure must be long enough for its
//! type's fixed fields and end inside the table; every device scope must be
//! at least 8 bytes (its header and one path element), even, and end inside
//! its structure; so no length, zero included, can make the walk loop or
//! read outside the table. Every path element must name a device below 32
//! and a function below 8, register bases must be page-aligned, an RMRR
//! must not end before it starts, and a segment may have only one unit
//! with INCLUDE_PCI_ALL. A table with more units, regions, scopes or path
//! elements than the limits below is refused with [`AcpiError::TooMany`],
//! never cut short. ATSR, RHSA, ANDD and SATC structures, and types this
//! parser does not know, are length-checked and skipped. Nothing is
//! allocated: a [`Dmar`] is about 5 KiB of `ArrayVec`s.

use arrayvec::ArrayVec;
use bitflags::bitflags;

use super::{AcpiError, PciFunction, SDT_HEADER_LEN, check_table, find_table, read_at, read_into};
use crate::bootinfo::PhysMemory;
use crate::le::{u16_at, u64_at};

/// Remapping hardware units kept (DRHD structures). Client platforms have
/// two, QEMU one; a large server one per root complex.
pub const MAX_UNITS: usize = 8;
/// Device scopes kept per unit. Without INCLUDE_PCI_ALL a unit lists every
/// device it translates: QEMU lists its I/O APIC and every function on the
/// root bus (six on a bare q35).
pub const MAX_UNIT_SCOPES: usize = 32;
/// Reserved memory regions kept (RMRR structures).
pub const MAX_RMRRS: usize = 8;
/// Device scopes kept per reserved region.
pub const MAX_RMRR_SCOPES: usize = 8;
/// Path elements kept per device scope: one per bridge crossed, plus the
/// device. QEMU's paths have one element.
pub const MAX_PATH: usize = 4;

/// Offset of the host address width, then the flags, then 10 reserved bytes.
const HAW: u64 = SDT_HEADER_LEN;
/// Offset of the first remapping structure.
const STRUCTURES: u64 = SDT_HEADER_LEN + 12;

/// Remapping structure types.
const DRHD: u16 = 0;
const RMRR: u16 = 1;
const ATSR: u16 = 2;
const RHSA: u16 = 3;
const ANDD: u16 = 4;
const SATC: u16 = 5;

/// Fixed part of a DRHD (type, length, flags, size, segment, base) and of
/// an RMRR (type, length, reserved, segment, base, limit); device scopes
/// follow.
const DRHD_FIXED: u64 = 16;
const RMRR_FIXED: u64 = 24;
/// A device scope's header (type, length, flags, reserved, enumeration id,
/// start bus) and one path element.
const SCOPE_HEADER: usize = 6;
const SCOPE_MIN: u64 = 8;

bitflags! {
    /// The DMAR table's flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DmarFlags: u8 {
        /// The platform supports interrupt remapping.
        const INTR_REMAP = 1;
        /// Firmware asks the OS not to enable x2APIC mode (it may still,
        /// with interrupt remapping, if it must).
        const X2APIC_OPT_OUT = 1 << 1;
        /// Firmware set up DMA protection that the OS should keep.
        const DMA_CTRL_PLATFORM_OPT_IN = 1 << 2;
    }
}

bitflags! {
    /// A DRHD's flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DrhdFlags: u8 {
        /// The unit translates every PCI function of its segment that no
        /// other unit lists by scope.
        const INCLUDE_PCI_ALL = 1;
    }
}

/// What a device scope names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    /// One PCI function.
    PciEndpoint,
    /// A PCI-to-PCI bridge and every function below it.
    PciSubHierarchy,
    /// An I/O APIC; the enumeration id is its APIC id (as in the MADT).
    IoApic,
    /// An MSI-capable HPET; the enumeration id is its HPET number.
    Hpet,
    /// An ACPI namespace device; the enumeration id is its ANDD number.
    AcpiNamespace,
    /// A type the VT-d specification reserves; kept but never matched.
    Other(u8),
}

impl From<u8> for ScopeKind {
    fn from(t: u8) -> Self {
        match t {
            1 => ScopeKind::PciEndpoint,
            2 => ScopeKind::PciSubHierarchy,
            3 => ScopeKind::IoApic,
            4 => ScopeKind::Hpet,
            5 => ScopeKind::AcpiNamespace,
            other => ScopeKind::Other(other),
        }
    }
}

/// One hop of a device scope's path: a device and function on the bus
/// reached so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathElem {
    pub device: u8,
    pub function: u8,
}

/// A device a remapping structure applies to: from `start_bus`, each path
/// element but the last is a bridge whose secondary bus the next element
/// is on; the last is the device itself (for an I/O APIC or HPET, the PCI
/// requester id it uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceScope {
    pub kind: ScopeKind,
    pub enumeration_id: u8,
    pub start_bus: u8,
    /// Never empty.
    pub path: ArrayVec<PathElem, MAX_PATH>,
}

/// A PCI-to-PCI bridge's bus numbers, from its configuration space
/// (secondary bus at offset 0x19, subordinate at 0x1a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeBuses {
    pub secondary: u8,
    pub subordinate: u8,
}

impl DeviceScope {
    /// The function this scope names when that needs no configuration
    /// space: a path of one element, on `start_bus`. For an I/O APIC or
    /// HPET, its requester id.
    pub fn function(&self, segment: u16) -> Option<PciFunction> {
        match self.path.as_slice() {
            [only] => Some(PciFunction::new(
                segment,
                self.start_bus,
                only.device,
                only.function,
            )),
            _ => None,
        }
    }

    /// The function the path leads to, asking `bridge` for the secondary bus
    /// of each bridge crossed; None if it does not know one.
    fn resolve(
        &self,
        segment: u16,
        bridge: &mut impl FnMut(PciFunction) -> Option<BridgeBuses>,
    ) -> Option<PciFunction> {
        let (last, hops) = self.path.split_last()?;
        let mut bus = self.start_bus;
        for hop in hops {
            bus = bridge(PciFunction::new(segment, bus, hop.device, hop.function))?.secondary;
        }
        Some(PciFunction::new(segment, bus, last.device, last.function))
    }

    /// Whether this PCI scope (of a structure on `target`'s segment) covers
    /// `target`: an endpoint if it is that function; a sub-hierarchy if it
    /// is the bridge or `bridge` puts `target`'s bus below it.
    fn covers(
        &self,
        target: PciFunction,
        bridge: &mut impl FnMut(PciFunction) -> Option<BridgeBuses>,
    ) -> bool {
        match self.kind {
            ScopeKind::PciEndpoint => self.resolve(target.segment, bridge) == Some(target),
            ScopeKind::PciSubHierarchy => {
                let Some(b) = self.resolve(target.segment, bridge) else {
                    return false;
                };
                b == target
                    || bridge(b)
                        .is_some_and(|r| r.secondary <= target.bus && target.bus <= r.subordinate)
            }
            _ => false,
        }
    }
}

/// A remapping hardware unit (DRHD).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drhd {
    pub flags: DrhdFlags,
    /// The register set's size as the table gives it: 2^n pages (bits 3:0).
    pub size: u8,
    pub segment: u16,
    /// Physical address of the unit's registers; page-aligned.
    pub register_base: u64,
    pub scopes: ArrayVec<DeviceScope, MAX_UNIT_SCOPES>,
}

impl Drhd {
    pub fn include_pci_all(&self) -> bool {
        self.flags.contains(DrhdFlags::INCLUDE_PCI_ALL)
    }

    /// Bytes of registers at `register_base`: 4 KiB << `size` (at most 128 MiB).
    pub fn register_size(&self) -> u64 {
        4096 << (self.size & 0xf)
    }
}

/// A reserved memory region (RMRR): physical memory `base..=limit` that
/// the devices in `scopes` may reach by DMA at any time (USB legacy
/// emulation, graphics stolen memory), so their translation must map it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rmrr {
    pub segment: u16,
    pub base: u64,
    /// The last byte (inclusive); never below `base`. Firmware should align
    /// `base` and `limit + 1` to pages; that is not checked, so round outward.
    pub limit: u64,
    pub scopes: ArrayVec<DeviceScope, MAX_RMRR_SCOPES>,
}

/// What the kernel needs from the DMAR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dmar {
    /// As the table gives it: DMA address bits minus one (QEMU: 38).
    pub host_address_width: u8,
    pub flags: DmarFlags,
    /// In table order (the specification puts a segment's INCLUDE_PCI_ALL
    /// unit after its others).
    pub units: ArrayVec<Drhd, MAX_UNITS>,
    pub reserved: ArrayVec<Rmrr, MAX_RMRRS>,
}

impl Dmar {
    /// DMA address bits the platform supports.
    pub fn address_bits(&self) -> u32 {
        u32::from(self.host_address_width) + 1
    }

    pub fn interrupt_remapping(&self) -> bool {
        self.flags.contains(DmarFlags::INTR_REMAP)
    }

    /// The unit that translates `target`'s DMA, resolving paths without
    /// configuration space: the first unit of `target`'s segment with an
    /// endpoint or sub-hierarchy scope whose path is one element that names
    /// `target` (so a function on a scope's start bus, as every scope of
    /// QEMU's q35 is), else the segment's INCLUDE_PCI_ALL unit. Not
    /// resolved: functions below a listed bridge and scopes whose paths
    /// cross bridges; use [`Dmar::unit_for_with`] for those. None when no
    /// unit translates `target` (its DMA is not remapped), or when device or
    /// function is out of range.
    pub fn unit_for(&self, target: PciFunction) -> Option<&Drhd> {
        self.unit_for_with(target, |_| None)
    }

    /// Like [`Dmar::unit_for`], but asks `bridge` for the bus numbers of the
    /// PCI-to-PCI bridge at a function (from its configuration space; None
    /// if it is not a bridge), so that multi-element paths and functions
    /// below a sub-hierarchy scope resolve too. `bridge` is called at most
    /// a bounded number of times per scope ([`MAX_PATH`]).
    pub fn unit_for_with(
        &self,
        target: PciFunction,
        mut bridge: impl FnMut(PciFunction) -> Option<BridgeBuses>,
    ) -> Option<&Drhd> {
        if !target.is_valid() {
            return None;
        }
        let on_segment = || self.units.iter().filter(|u| u.segment == target.segment);
        on_segment()
            .find(|u| u.scopes.iter().any(|s| s.covers(target, &mut bridge)))
            .or_else(|| on_segment().find(|u| u.include_pci_all()))
    }

    /// The unit and scope of a platform device: the I/O APIC with APIC id
    /// `enumeration_id` (kind [`ScopeKind::IoApic`]), the HPET with that
    /// number, or the ACPI namespace device. The scope's
    /// [`DeviceScope::function`] is the requester id its interrupts carry.
    pub fn platform_scope(
        &self,
        kind: ScopeKind,
        enumeration_id: u8,
    ) -> Option<(&Drhd, &DeviceScope)> {
        self.units.iter().find_map(|u| {
            u.scopes
                .iter()
                .find(|s| s.kind == kind && s.enumeration_id == enumeration_id)
                .map(|s| (u, s))
        })
    }

    /// The reserved regions whose scopes name `target`, resolved as in
    /// [`Dmar::unit_for`] (one-element paths; a sub-hierarchy scope covers
    /// only the bridge itself).
    pub fn reserved_for(&self, target: PciFunction) -> impl Iterator<Item = &Rmrr> {
        self.reserved.iter().filter(move |r| {
            r.segment == target.segment
                && target.is_valid()
                && r.scopes.iter().any(|s| s.covers(target, &mut |_| None))
        })
    }
}

/// Finds and parses the DMAR through the RSDP at `rsdp`; `Ok(None)` if the
/// machine has none (no VT-d, or QEMU without `-device intel-iommu`).
pub fn parse_dmar(mem: &impl PhysMemory, rsdp: u64) -> Result<Option<Dmar>, AcpiError> {
    match find_table(mem, rsdp, b"DMAR")? {
        Some(table) => parse_dmar_table(mem, table).map(Some),
        None => Ok(None),
    }
}

/// The least length a remapping structure of type `kind` may have.
fn min_len(kind: u16) -> u64 {
    match kind {
        DRHD => DRHD_FIXED,
        RMRR => RMRR_FIXED,
        ATSR | ANDD | SATC => 8,
        RHSA => 20,
        _ => 4,
    }
}

fn parse_dmar_table(mem: &impl PhysMemory, addr: u64) -> Result<Dmar, AcpiError> {
    let (_, len) = check_table(mem, addr, "DMAR")?;
    if len < STRUCTURES {
        return Err(AcpiError::BadLength("DMAR"));
    }
    let [haw, flags]: [u8; 2] = read_at(mem, addr, HAW)?;
    let mut dmar = Dmar {
        host_address_width: haw,
        flags: DmarFlags::from_bits_retain(flags),
        units: ArrayVec::new(),
        reserved: ArrayVec::new(),
    };
    let mut off = STRUCTURES;
    while off < len {
        let bad = AcpiError::BadLength("DMAR remapping structure");
        if len - off < 4 {
            return Err(bad);
        }
        let hdr: [u8; 4] = read_at(mem, addr, off)?;
        let kind = u16_at(&hdr, 0);
        let slen = u64::from(u16_at(&hdr, 2));
        // min_len is at least 4, so every step moves on.
        if slen < min_len(kind) || slen > len - off {
            return Err(bad);
        }
        let at = addr.checked_add(off).ok_or(AcpiError::Unreadable(addr))?;
        match kind {
            DRHD => {
                let unit = parse_drhd(mem, at, slen)?;
                dmar.units.try_push(unit).map_err(|_| AcpiError::TooMany {
                    what: "DMAR hardware units",
                    limit: MAX_UNITS,
                })?;
            }
            RMRR => {
                let region = parse_rmrr(mem, at, slen)?;
                dmar.reserved
                    .try_push(region)
                    .map_err(|_| AcpiError::TooMany {
                        what: "DMAR reserved memory regions",
                        limit: MAX_RMRRS,
                    })?;
            }
            _ => {}
        }
        off += slen;
    }
    for (i, u) in dmar.units.iter().enumerate() {
        let twice = u.include_pci_all()
            && dmar.units[..i]
                .iter()
                .any(|v| v.include_pci_all() && v.segment == u.segment);
        if twice {
            return Err(AcpiError::Malformed {
                table: "DMAR",
                why: "two hardware units include all PCI devices of one segment",
            });
        }
    }
    Ok(dmar)
}

/// The DRHD at `at`, `len` bytes (at least [`DRHD_FIXED`], inside the table).
fn parse_drhd(mem: &impl PhysMemory, at: u64, len: u64) -> Result<Drhd, AcpiError> {
    let f: [u8; DRHD_FIXED as usize] = read_at(mem, at, 0)?;
    let mut unit = Drhd {
        flags: DrhdFlags::from_bits_retain(f[4]),
        size: f[5],
        segment: u16_at(&f, 6),
        register_base: u64_at(&f, 8),
        scopes: ArrayVec::new(),
    };
    if unit.register_base & 0xfff != 0 {
        return Err(AcpiError::Malformed {
            table: "DMAR",
            why: "a hardware unit's register base is not page-aligned",
        });
    }
    parse_scopes(
        mem,
        at,
        DRHD_FIXED,
        len,
        &mut unit.scopes,
        "DMAR hardware unit's device scopes",
    )?;
    Ok(unit)
}

/// The RMRR at `at`, `len` bytes (at least [`RMRR_FIXED`], inside the table).
fn parse_rmrr(mem: &impl PhysMemory, at: u64, len: u64) -> Result<Rmrr, AcpiError> {
    let f: [u8; RMRR_FIXED as usize] = read_at(mem, at, 0)?;
    let mut region = Rmrr {
        segment: u16_at(&f, 6),
        base: u64_at(&f, 8),
        limit: u64_at(&f, 16),
        scopes: ArrayVec::new(),
    };
    if region.limit < region.base {
        return Err(AcpiError::Malformed {
            table: "DMAR",
            why: "a reserved memory region ends before it starts",
        });
    }
    parse_scopes(
        mem,
        at,
        RMRR_FIXED,
        len,
        &mut region.scopes,
        "DMAR reserved region's device scopes",
    )?;
    Ok(region)
}

/// The device scopes from `start` to `end` in the structure at `at`.
fn parse_scopes<const N: usize>(
    mem: &impl PhysMemory,
    at: u64,
    start: u64,
    end: u64,
    out: &mut ArrayVec<DeviceScope, N>,
    what: &'static str,
) -> Result<(), AcpiError> {
    let mut off = start;
    while off < end {
        let bad = AcpiError::BadLength("DMAR device scope");
        if end - off < 2 {
            return Err(bad);
        }
        let [kind, slen]: [u8; 2] = read_at(mem, at, off)?;
        let slen = u64::from(slen);
        if slen < SCOPE_MIN || !slen.is_multiple_of(2) || slen > end - off {
            return Err(bad);
        }
        // A scope is at most 255 bytes; read the whole one at once.
        let mut e = [0u8; 255];
        let e = e.get_mut(..slen as usize).ok_or(bad)?;
        read_into(mem, at, off, e)?;
        let mut scope = DeviceScope {
            kind: ScopeKind::from(kind),
            enumeration_id: e.get(4).copied().unwrap_or(0),
            start_bus: e.get(5).copied().unwrap_or(0),
            path: ArrayVec::new(),
        };
        for pair in e.get(SCOPE_HEADER..).unwrap_or(&[]).chunks_exact(2) {
            let &[device, function] = pair else {
                return Err(bad);
            };
            if device >= 32 || function >= 8 {
                return Err(AcpiError::Malformed {
                    table: "DMAR",
                    why: "a device scope's path names a device above 31 or a function above 7",
                });
            }
            scope
                .path
                .try_push(PathElem { device, function })
                .map_err(|_| AcpiError::TooMany {
                    what: "DMAR device scope's path elements",
                    limit: MAX_PATH,
                })?;
        }
        out.try_push(scope)
            .map_err(|_| AcpiError::TooMany { what, limit: N })?;
        off += slen;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
