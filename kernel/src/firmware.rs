//! The firmware's description of the machine: the ACPI tables the kernel
//! reads once at boot (MADT: interrupt controllers and ISA routing; DMAR:
//! the I/O MMU; MCFG: PCI Express configuration windows), and what they
//! mean for hardware devices (what no driver may claim).
//!
//! Rules: the tables are parsed by kernel-core's checked parsers while the
//! boot page tables still map the first 4 GiB; a table that is absent or
//! malformed is reported once and treated as absent (the standard APIC
//! addresses, no I/O MMU, no ECAM), never trusted in part.

use crate::arch::ioapic;
use crate::arch::phys::BootPhysMemory;
use crate::kprintln;
use crate::sched;
use kernel_core::acpi::dmar::{self, Dmar};
use kernel_core::acpi::mcfg::{self, Mcfg};
use kernel_core::acpi::{self, AcpiError, Madt};
use kernel_core::bootinfo::BootInfo;
use kernel_core::hwclaims::Reserved;

/// The tables, each as parsed, or why it could not be.
pub struct Tables {
    rsdp: bool,
    pub madt: Option<Madt>,
    madt_error: Option<AcpiError>,
    pub dmar: Option<Dmar>,
    dmar_error: Option<AcpiError>,
    pub mcfg: Option<Mcfg>,
    mcfg_error: Option<AcpiError>,
}

impl Tables {
    /// Finds and parses the tables (before the boot page tables go).
    pub fn read() -> Tables {
        let mem = &BootPhysMemory;
        let Some(rsdp) = acpi::find_rsdp(mem) else {
            return Tables {
                rsdp: false,
                madt: None,
                madt_error: None,
                dmar: None,
                dmar_error: None,
                mcfg: None,
                mcfg_error: None,
            };
        };
        let (madt, madt_error) = split(acpi::parse_madt(mem, rsdp).map(Some));
        let (dmar, dmar_error) = split(dmar::parse_dmar(mem, rsdp));
        let (mcfg, mcfg_error) = split(mcfg::parse_mcfg(mem, rsdp));
        Tables {
            rsdp: true,
            madt,
            madt_error,
            dmar,
            dmar_error,
            mcfg,
            mcfg_error,
        }
    }

    /// Says in the log what was found (once the log may allocate).
    pub fn report(&self) {
        if !self.rsdp {
            kprintln!("[kernel] no ACPI RSDP; using the standard APIC addresses");
            return;
        }
        if let Some(e) = &self.madt_error {
            kprintln!("[kernel] ACPI MADT unusable ({e}); using the standard APIC addresses");
        }
        if let Some(e) = &self.dmar_error {
            kprintln!("[kernel] ACPI DMAR unusable ({e}); no I/O MMU");
        }
        if let Some(e) = &self.mcfg_error {
            kprintln!("[kernel] ACPI MCFG unusable ({e}); no PCI Express configuration windows");
        }
        for u in self.dmar.iter().flat_map(|d| d.units.iter()) {
            let d = self.dmar.as_ref().map_or(0, |d| d.address_bits());
            kprintln!(
                "[kernel] I/O MMU (VT-d) at {:#x}, segment {}, {}-bit addresses, {} devices in scope, interrupt remapping {}",
                u.register_base,
                u.segment,
                d,
                u.scopes.len(),
                if self.dmar.as_ref().is_some_and(|d| d.interrupt_remapping()) {
                    "offered"
                } else {
                    "absent"
                },
            );
        }
        for e in self.mcfg.iter().flat_map(|m| m.allocations.iter()) {
            kprintln!(
                "[kernel] PCI Express configuration at {:#x}, segment {}, buses {}..={}",
                e.base,
                e.segment,
                e.start_bus,
                e.end_bus
            );
        }
    }
}

/// A table's parse as (table, error).
fn split<T>(r: Result<Option<T>, AcpiError>) -> (Option<T>, Option<AcpiError>) {
    match r {
        Ok(t) => (t, None),
        Err(e) => (None, Some(e)),
    }
}

/// Records what hardware devices may never claim: the ports and memory the
/// kernel drives (the I/O MMU's registers and the PCI configuration
/// windows among them: a driver that reached those could undo the
/// isolation), and RAM.
pub fn record_reserved(info: &BootInfo, lapic: u64, tables: &Tables) {
    let madt = tables.madt.as_ref();
    use kernel_core::bootinfo::MemKind;
    let mut r = Reserved {
        // PICs, PIT and its gate, the debug-exit device, and PCI
        // configuration mechanism 1 (0xCF8/0xCFC: a driver with it could
        // reprogram any function; the kernel mediates instead).
        ports: alloc::vec![
            (0x20, 0x22),
            (0xa0, 0xa2),
            (0x40, 0x44),
            (0x61, 0x62),
            (0xf4, 0xf8),
            (0xcf8, 0xd00)
        ],
        mmio: alloc::vec![(lapic & !0xfff, (lapic & !0xfff) + 0x1000)],
        ram: info
            .memory
            .iter()
            .filter(|m| {
                matches!(
                    m.kind,
                    MemKind::Usable | MemKind::AcpiReclaimable | MemKind::AcpiNvs
                )
            })
            .map(|m| (m.start & !0xfff, (m.end + 0xfff) & !0xfff))
            .collect(),
        gsi_count: ioapic::gsi_count(),
        isa: Reserved::IDENTITY_ISA,
    };
    // Legacy devices' lines as the firmware wired them.
    if let Some(m) = madt {
        for (irq, route) in r.isa.iter_mut().enumerate() {
            let o = m.isa_irq(irq as u8);
            let level = if o.level_triggered {
                abi::hw::HW_IRQ_LEVEL
            } else {
                0
            };
            let low = if o.active_low {
                abi::hw::HW_IRQ_ACTIVE_LOW
            } else {
                0
            };
            *route = (o.gsi, level | low);
        }
    }
    for a in madt.iter().flat_map(|m| m.io_apics.iter()) {
        r.mmio.push((a.addr & !0xfff, (a.addr & !0xfff) + 0x1000));
    }
    for u in tables.dmar.iter().flat_map(|d| d.units.iter()) {
        r.mmio
            .push((u.register_base, u.register_base + u.register_size()));
    }
    for e in tables.mcfg.iter().flat_map(|m| m.allocations.iter()) {
        r.mmio.push(e.window());
    }
    sched::SCHED.lock().devices.reserved = Some(r);
}
