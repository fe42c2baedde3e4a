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
use crate::kprintln;
use kernel_core::acpi::PciFunction;
use kernel_core::iommu::irte::{ApicMode, IrTable, remappable_msi};
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

/// The message `f` sends to raise `vector` on the boot CPU.
pub fn msi_route(f: PciFunction, vector: u8) -> Result<MsiRoute, abi::Error> {
    let apic = crate::arch::lapic::id() & 0xff;
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
