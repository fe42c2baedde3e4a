//! Interrupt remapping: each unit that offers it gets a table of
//! remapping entries, and every message-signalled interrupt a claimed
//! function may send names an entry that only that function can use (the
//! entry's source-id check), which says which vector it raises. A device
//! that its driver programs to write into the interrupt window
//! (0xFEEx_xxxx) therefore raises nothing but its own entries' vectors:
//! another entry fails the source check, an absent one is not present,
//! and compatibility-format messages (which would name any vector
//! directly) are blocked, because the kernel never sets CFI.
//!
//! Rules: an entry is written (present last) before its message is given
//! to the device, and cleared, invalidated and waited for only after the
//! device's entry is masked (kernel-core's `devices::msi` keeps that
//! order); without a remapping unit for a function, its messages are
//! compatibility format (`pc`: no isolation of interrupts, as documented).

use super::queue::{Forget, forget};
use super::{UNITS, unit_index, with_tables};
use crate::arch::ordered::Ordered;
use crate::kprintln;
use kernel_core::acpi::PciFunction;
use kernel_core::acpi::dmar::ScopeKind;
use kernel_core::iommu::irte::{
    ApicMode, Delivery, DestinationMode, IrTable, Irte, Trigger, remappable_msi,
};
use kernel_core::machine::MsiRoute;

/// Gives `u` an interrupt remapping table and turns remapping on (it
/// must have its queue).
pub fn start(u: &mut super::Iommu, host_bits: u8) -> Result<(), &'static str> {
    let table = IrTable::new(
        &mut super::KernelFrames,
        u.unit.ecap,
        host_bits,
        ApicMode::XApic,
    )
    .map_err(|_| "no remapping table")?;
    u.unit
        .set_interrupt_table(table.irta())
        .map_err(|_| "the unit did not take the table")?;
    u.ir = Some(table);
    forget(u, Forget::InterruptEntries).map_err(|_| "the entry cache was not invalidated")?;
    u.unit
        .enable_interrupt_remapping()
        .map_err(|_| "the unit did not turn remapping on")
}

/// The message `f` sends to raise `vector` on the CPU whose local APIC
/// is `apic` (an xAPIC id: 8 bits).
pub fn msi_route(f: PciFunction, vector: u8, apic: u32) -> Result<MsiRoute, abi::Error> {
    let apic = apic & 0xff;
    let mut units = UNITS.lock();
    let remapping = unit_index(&units, f).filter(|&i| units[i].ir.is_some());
    let Some(i) = remapping else {
        return Ok(MsiRoute {
            address: 0xfee0_0000 | u64::from(apic) << 12,
            data: u32::from(vector),
            handle: None,
        });
    };
    let u = &mut units[i];
    let source = (f.bus, f.device << 3 | f.function);
    let Some(table) = &mut u.ir else {
        return Err(abi::Error::NotSupported);
    };
    let handle = with_tables(|mem| table.alloc(mem, source, vector, apic))?;
    if u.unit.cap.caching_mode() {
        let _ = forget(u, Forget::InterruptEntry(handle));
    }
    let m = remappable_msi(handle);
    Ok(MsiRoute {
        address: u64::from(m.address),
        data: m.data,
        handle: Some(handle),
    })
}

/// Withdraws a message `msi_route` made: the entry is cleared, the unit
/// made to forget it (waited for), and only then may it be given again.
pub fn msi_unroute(f: PciFunction, route: &MsiRoute) {
    let Some(handle) = route.handle else {
        return;
    };
    let mut units = UNITS.lock();
    let Some(i) = unit_index(&units, f) else {
        return;
    };
    let u = &mut units[i];
    let Some(table) = &mut u.ir else {
        return;
    };
    let Ok(retired) = with_tables(|mem| table.free(mem, handle)) else {
        return;
    };
    match forget(u, Forget::InterruptEntry(handle)) {
        Ok(()) => {
            if let Some(table) = &mut u.ir {
                table.release(retired);
            }
        }
        // Never handed out again: the unit may still hold it.
        Err(e) => kprintln!(
            "[kernel] I/O MMU at {:#x}: entry {handle} kept out of use: {e:?}",
            u.base
        ),
    }
}

/// The remapping entry each I/O APIC line uses, by GSI.
static IOAPIC_ENTRIES: Ordered<[Option<u16>; crate::arch::ioapic::MAX_GSI as usize]> = Ordered::new(
    kernel_core::lockorder::Rank::IoApicEntries,
    [None; crate::arch::ioapic::MAX_GSI as usize],
);

/// Routes I/O APIC line `gsi` to its kernel vector on the CPU whose local
/// APIC is `apic`:
/// through a remapping entry that only that I/O APIC may use (its source
/// id from the DMAR) where a unit remaps its interrupts, since VT-d
/// hardware blocks the compatibility format once remapping is on; in
/// compatibility format otherwise.
pub fn ioapic_route(gsi: u32, level: bool, active_low: bool, apic: u32) {
    let remapped = ioapic_entry(gsi, level, apic & 0xff);
    match remapped {
        Some(handle) => crate::arch::ioapic::route_remapped(gsi, level, active_low, handle),
        None => crate::arch::ioapic::route(gsi, level, active_low, apic),
    }
}

/// A fresh remapping entry for `gsi` (its old one freed), if its I/O APIC
/// is behind a unit that remaps.
fn ioapic_entry(gsi: u32, level: bool, apic: u32) -> Option<u16> {
    let id = crate::arch::ioapic::id_of(gsi)?;
    let (drhd, scope) = super::DMAR.get()?.platform_scope(ScopeKind::IoApic, id)?;
    let f = scope.function(drhd.segment)?;
    let vector = crate::arch::ioapic::VECTOR_BASE + gsi as u8;
    let mut units = UNITS.lock();
    let u = units
        .iter_mut()
        .find(|u| u.base == drhd.register_base && u.ir.is_some())?;
    let mut entries = IOAPIC_ENTRIES.lock();
    let slot = entries.get_mut(gsi as usize)?;
    let entry = Irte {
        source: (f.bus, f.device << 3 | f.function),
        vector,
        destination: apic,
        delivery: Delivery::Fixed,
        trigger: if level { Trigger::Level } else { Trigger::Edge },
        destination_mode: DestinationMode::Physical,
        redirection_hint: false,
    };
    let table = u.ir.as_mut()?;
    if let Some(old) = slot.take() {
        // The line is masked while it is rerouted (its owner changed).
        if let Ok(retired) = with_tables(|mem| table.free(mem, old))
            && forget(u, Forget::InterruptEntry(old)).is_ok()
            && let Some(table) = &mut u.ir
        {
            table.release(retired);
        }
    }
    let table = u.ir.as_mut()?;
    match with_tables(|mem| table.alloc_entry(mem, &entry)) {
        Ok(handle) => {
            let _ = forget(u, Forget::InterruptEntry(handle));
            *slot = Some(handle);
            Some(handle)
        }
        Err(e) => {
            kprintln!("[kernel] I/O APIC line {gsi}: no remapping entry ({e}); routed unremapped");
            None
        }
    }
}
