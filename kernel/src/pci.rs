//! PCI functions as the kernel sees them: configuration space through
//! the ECAM windows the ACPI MCFG gives or, on a board without them
//! (QEMU's `pc`), through configuration mechanism 1 (ports 0xCF8/0xCFC,
//! the first 256 bytes only), read with `kernel_core::pci`'s checked
//! logic. At boot the kernel surveys the
//! first bus of each window and logs each endpoint with its BARs and
//! interrupt capabilities; afterwards [`config`] reaches any function the
//! windows cover, for claims and for drivers' mediated accesses.
//!
//! Rules: a function's configuration page is mapped uncached and reached
//! only through `Ecam` (volatile accesses of the width asked, at an
//! offset `ConfigAccess` has checked); whatever a device answers is
//! judged by kernel-core, never trusted; a function that answers
//! inconsistently is reported and left alone.

use crate::arch::paging;
use crate::arch::pcicfg::PortConfig;
use crate::kprintln;
use kernel_core::acpi::PciFunction;
use kernel_core::acpi::mcfg::Mcfg;
use kernel_core::pci::bar::BarKind;
use kernel_core::pci::config::ConfigSpace;

/// The firmware's windows, kept for claims.
static MCFG: spin::Once<Mcfg> = spin::Once::new();

/// A function's configuration space, by whichever mechanism the board
/// has.
pub enum Config {
    Ecam(Ecam),
    Ports(PortConfig),
}

/// The configuration space of `f`: through ECAM if the firmware gave
/// windows (then only where one covers `f`), else through the ports
/// (segment 0 only).
pub fn config(f: PciFunction) -> Option<Config> {
    if !f.is_valid() {
        return None;
    }
    match MCFG.get() {
        Some(mcfg) => Ecam::map(mcfg, f).map(Config::Ecam),
        None if f.segment == 0 => Some(Config::Ports(PortConfig::new(f.bus, f.device, f.function))),
        None => None,
    }
}

impl ConfigSpace for Config {
    fn read8(&mut self, offset: u16) -> u8 {
        match self {
            Config::Ecam(c) => c.read8(offset),
            Config::Ports(c) => c.read8(offset),
        }
    }
    fn read16(&mut self, offset: u16) -> u16 {
        match self {
            Config::Ecam(c) => c.read16(offset),
            Config::Ports(c) => c.read16(offset),
        }
    }
    fn read32(&mut self, offset: u16) -> u32 {
        match self {
            Config::Ecam(c) => c.read32(offset),
            Config::Ports(c) => c.read32(offset),
        }
    }
    fn write8(&mut self, offset: u16, value: u8) {
        match self {
            Config::Ecam(c) => c.write8(offset, value),
            Config::Ports(c) => c.write8(offset, value),
        }
    }
    fn write16(&mut self, offset: u16, value: u16) {
        match self {
            Config::Ecam(c) => c.write16(offset, value),
            Config::Ports(c) => c.write16(offset, value),
        }
    }
    fn write32(&mut self, offset: u16, value: u32) {
        match self {
            Config::Ecam(c) => c.write32(offset, value),
            Config::Ports(c) => c.write32(offset, value),
        }
    }
}

/// One function's 4 KiB of configuration space, mapped.
pub struct Ecam {
    base: *mut u8,
}

impl Ecam {
    /// Maps the configuration page of `f`, if a window covers it.
    pub fn map(mcfg: &Mcfg, f: PciFunction) -> Option<Ecam> {
        let phys = mcfg.config_address(f)?;
        let base = paging::map_mmio(phys, 4096).ok()?;
        Some(Ecam { base })
    }

    fn at<T>(&self, offset: u16) -> *mut T {
        // Offsets stay inside the page: `& 0xfff`, and callers pass offsets
        // aligned to the access width (ConfigAccess, or kernel-core's own
        // fixed header offsets).
        self.base
            .wrapping_add(usize::from(offset & 0xfff))
            .cast::<T>()
    }
}

impl ConfigSpace for Ecam {
    fn read8(&mut self, offset: u16) -> u8 {
        // SAFETY: `at` stays inside the mapped configuration page.
        unsafe { core::ptr::read_volatile(self.at(offset)) }
    }
    fn read16(&mut self, offset: u16) -> u16 {
        // SAFETY: as in `read8`; the offset is 2-aligned.
        unsafe { core::ptr::read_volatile(self.at(offset & !1)) }
    }
    fn read32(&mut self, offset: u16) -> u32 {
        // SAFETY: as in `read8`; the offset is 4-aligned.
        unsafe { core::ptr::read_volatile(self.at(offset & !3)) }
    }
    fn write8(&mut self, offset: u16, value: u8) {
        // SAFETY: as in `read8`.
        unsafe { core::ptr::write_volatile(self.at(offset), value) }
    }
    fn write16(&mut self, offset: u16, value: u16) {
        // SAFETY: as in `read16`.
        unsafe { core::ptr::write_volatile(self.at(offset & !1), value) }
    }
    fn write32(&mut self, offset: u16, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(self.at(offset & !3), value) }
    }
}

/// Logs every endpoint on the first bus of each ECAM window, or, without
/// windows (`mcfg` `None`), on bus 0 through the ports.
pub fn survey(mcfg: Option<&Mcfg>) {
    let firsts: arrayvec::ArrayVec<(u16, u8), 16> = match mcfg {
        Some(m) => {
            let m = MCFG.call_once(|| m.clone());
            m.allocations
                .iter()
                .take(16)
                .map(|w| (w.segment, w.start_bus))
                .collect()
        }
        None => [(0, 0)].into_iter().collect(),
    };
    for (segment, bus) in firsts {
        for device in 0..32u8 {
            for function in 0..8u8 {
                let f = PciFunction::new(segment, bus, device, function);
                let Some(mut cfg) = config(f) else {
                    continue;
                };
                if cfg.read16(0) == 0xffff {
                    if function == 0 {
                        break;
                    }
                    continue;
                }
                report(f, &mut cfg);
            }
        }
    }
}

fn report(f: PciFunction, cfg: &mut Config) {
    let at = (f.bus, f.device, f.function);
    match kernel_core::pci::describe(cfg) {
        Ok(func) => {
            let h = &func.header;
            let mut line = arrayvec::ArrayString::<200>::new();
            for b in &func.bars {
                let kind = match b.kind {
                    BarKind::Io => "io",
                    BarKind::Mem32 => "mem32",
                    BarKind::Mem64 => "mem64",
                };
                let size = if b.size >= 1 << 20 {
                    (b.size >> 20, "MiB")
                } else if b.size >= 1 << 10 {
                    (b.size >> 10, "KiB")
                } else {
                    (b.size, "B")
                };
                let _ = core::fmt::write(
                    &mut line,
                    format_args!(" bar{} {kind} {:#x}+{} {}", b.index, b.base, size.0, size.1),
                );
            }
            if let Some(m) = func.caps.msi {
                let _ = core::fmt::write(&mut line, format_args!(" msi({})", m.vectors));
            }
            if let Some(m) = func.caps.msix {
                let _ = core::fmt::write(&mut line, format_args!(" msix({})", m.table_size));
            }
            kprintln!(
                "[kernel] pci {:02x}:{:02x}.{} {:04x}:{:04x} class {:02x}{:02x}:{line}",
                at.0,
                at.1,
                at.2,
                h.vendor,
                h.device,
                h.class,
                h.subclass
            );
        }
        Err(e) => kprintln!(
            "[kernel] pci {:02x}:{:02x}.{} left alone: {e}",
            at.0,
            at.1,
            at.2
        ),
    }
}
