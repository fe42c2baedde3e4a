//! PCI Express functions as the kernel sees them: configuration space
//! through the ECAM windows the ACPI MCFG gives, read with
//! `kernel_core::pci`'s checked logic. At boot the kernel surveys the
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
use crate::kprintln;
use kernel_core::acpi::PciFunction;
use kernel_core::acpi::mcfg::Mcfg;
use kernel_core::pci::bar::BarKind;
use kernel_core::pci::config::ConfigSpace;

/// The firmware's windows, kept for claims.
static MCFG: spin::Once<Mcfg> = spin::Once::new();

/// The configuration space of `f`, if a window covers it.
pub fn config(f: PciFunction) -> Option<Ecam> {
    Ecam::map(MCFG.get()?, f)
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

/// Logs every endpoint on the first bus of each ECAM window.
pub fn survey(mcfg: &Mcfg) {
    let mcfg = MCFG.call_once(|| mcfg.clone());
    for window in &mcfg.allocations {
        for device in 0..32u8 {
            for function in 0..8u8 {
                let f = PciFunction::new(window.segment, window.start_bus, device, function);
                let Some(mut cfg) = Ecam::map(mcfg, f) else {
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

fn report(f: PciFunction, cfg: &mut Ecam) {
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
