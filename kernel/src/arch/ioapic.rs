//! The I/O APICs: found through the ACPI MADT and left with every line
//! masked until a hardware device routes one (see the bus). A routed GSI
//! arrives at the kernel as vector [`VECTOR_BASE`] + GSI.
//!
//! Rules: the kernel never unmasks a line nobody asked for; a line taken
//! back is masked again.

use core::ptr::{read_volatile, write_volatile};
use kernel_core::acpi::IoApicInfo;

const REG_VERSION: u32 = 1;
const REG_REDIRECTION_BASE: u32 = 0x10;
const MASKED: u32 = 1 << 16;
const LEVEL: u32 = 1 << 15;
const ACTIVE_LOW: u32 = 1 << 13;

/// The kernel vector of GSI 0.
pub const VECTOR_BASE: u8 = 0x30;
/// GSIs the kernel can route (vectors 0x30..0x70).
pub const MAX_GSI: u32 = 64;

/// One mapped I/O APIC.
pub struct IoApic {
    base: *mut u32,
    /// Its APIC id (how the DMAR names it).
    pub id: u8,
    pub gsi_base: u32,
    pub lines: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        // SAFETY: `base` is the I/O APIC's register window mapped uncached;
        // IOREGSEL is at +0 and IOWIN at +0x10.
        unsafe {
            write_volatile(self.base, reg);
            read_volatile(self.base.add(4))
        }
    }

    fn write(&self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            write_volatile(self.base, reg);
            write_volatile(self.base.add(4), value);
        }
    }

    /// Maps the I/O APIC and masks all its lines.
    pub fn init(info: &IoApicInfo) -> Result<IoApic, super::paging::MapError> {
        let base = super::paging::map_mmio(info.addr, 4096)? as *mut u32;
        let mut apic = IoApic {
            base,
            id: info.id,
            gsi_base: info.gsi_base,
            lines: 0,
        };
        apic.lines = ((apic.read(REG_VERSION) >> 16) & 0xff) + 1;
        for line in 0..apic.lines {
            apic.write(REG_REDIRECTION_BASE + 2 * line, MASKED);
            apic.write(REG_REDIRECTION_BASE + 2 * line + 1, 0);
        }
        Ok(apic)
    }
}

// SAFETY: the register window pointer is only used under IOAPICS's lock.
unsafe impl Send for IoApic {}

/// Every I/O APIC, once mapped.
pub static IOAPICS: super::ordered::Ordered<arrayvec::ArrayVec<IoApic, 8>> =
    super::ordered::Ordered::new(
        kernel_core::lockorder::Rank::IoApics,
        arrayvec::ArrayVec::new_const(),
    );

/// The interrupt lines all I/O APICs together have (capped at MAX_GSI).
pub fn gsi_count() -> u32 {
    IOAPICS
        .lock()
        .iter()
        .map(|a| a.gsi_base + a.lines)
        .max()
        .unwrap_or(0)
        .min(MAX_GSI)
}

fn with_line(gsi: u32, f: impl FnOnce(&IoApic, u32)) {
    if let Some(a) = IOAPICS
        .lock()
        .iter()
        .find(|a| gsi >= a.gsi_base && gsi < a.gsi_base + a.lines)
    {
        f(a, gsi - a.gsi_base);
    }
}

/// Routes `gsi` to vector `VECTOR_BASE + gsi` on the CPU whose local APIC
/// is `apic` and unmasks it.
pub fn route(gsi: u32, level: bool, active_low: bool, apic: u32) {
    with_line(gsi, |a, line| {
        let mut low = (VECTOR_BASE as u32 + gsi) & 0xff;
        if level {
            low |= LEVEL;
        }
        if active_low {
            low |= ACTIVE_LOW;
        }
        a.write(REG_REDIRECTION_BASE + 2 * line + 1, (apic & 0xff) << 24);
        a.write(REG_REDIRECTION_BASE + 2 * line, low);
    });
}

/// The id of the I/O APIC that has `gsi`.
pub fn id_of(gsi: u32) -> Option<u8> {
    let mut id = None;
    with_line(gsi, |a, _| id = Some(a.id));
    id
}

/// Routes `gsi` through interrupt remapping entry `handle` (remappable
/// format: the entry says the vector and CPU; the vector field must
/// still be the entry's, for end-of-interrupt matching) and unmasks it.
pub fn route_remapped(gsi: u32, level: bool, active_low: bool, handle: u16) {
    with_line(gsi, |a, line| {
        let mut low = (VECTOR_BASE as u32 + gsi) & 0xff;
        if level {
            low |= LEVEL;
        }
        if active_low {
            low |= ACTIVE_LOW;
        }
        // Bit 11: handle bit 15; bit 48: remappable format; bits 63:49:
        // handle bits 14:0.
        low |= u32::from(handle >> 15) << 11;
        let high = 1 << 16 | u32::from(handle & 0x7fff) << 17;
        a.write(REG_REDIRECTION_BASE + 2 * line, low | MASKED);
        a.write(REG_REDIRECTION_BASE + 2 * line + 1, high);
        a.write(REG_REDIRECTION_BASE + 2 * line, low);
    });
}

/// Masks `gsi` (it stays routed).
pub fn mask(gsi: u32) {
    with_line(gsi, |a, line| {
        let low = a.read(REG_REDIRECTION_BASE + 2 * line);
        a.write(REG_REDIRECTION_BASE + 2 * line, low | MASKED);
    });
}

/// Unmasks `gsi`.
pub fn unmask(gsi: u32) {
    with_line(gsi, |a, line| {
        let low = a.read(REG_REDIRECTION_BASE + 2 * line);
        a.write(REG_REDIRECTION_BASE + 2 * line, low & !MASKED);
    });
}
