//! The I/O APICs: found through the ACPI MADT and left with every line
//! masked until a hardware device routes one (see the bus).
//!
//! Rules: the kernel never unmasks a line nobody asked for.

use core::ptr::{read_volatile, write_volatile};
use kernel_core::acpi::IoApicInfo;

const REG_VERSION: u32 = 1;
const REG_REDIRECTION_BASE: u32 = 0x10;
const MASKED: u32 = 1 << 16;

/// One mapped I/O APIC.
pub struct IoApic {
    base: *mut u32,
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
