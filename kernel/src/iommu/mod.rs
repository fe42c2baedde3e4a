//! The I/O MMU on this machine: at boot, each VT-d unit the DMAR lists
//! gets an empty root table and translation is turned on, so that no
//! device can reach memory at all; a claimed PCI function then gets a
//! context entry naming its own domain (kernel-core's `devices::dma`
//! builds the domain's tables), and every change is followed by the
//! invalidation that makes the unit forget the old state, waited for.
//!
//! Rules: the root and context tables come from `kernel_core::iommu` and
//! frames the kernel keeps for itself (not charged to any process: one
//! root table per unit, one context table per bus used), and stay as long
//! as the unit translates; a unit that does not answer, or describes
//! itself beyond its registers, is reported and left off, never trusted in
//! part; table writes are followed by a cache-line flush when a unit does
//! not snoop its table walks (ECAP.C clear); a unit that stops answering
//! an invalidation is reported (the function it serves stays blocked:
//! nothing is freed on the strength of an invalidation that did not
//! complete... except that the kernel cannot wait for ever, see `flush`).

mod queue;
mod remap;

pub use remap::{ioapic_route, msi_route, msi_unroute};

use crate::arch::ordered::Ordered;
use crate::arch::paging::DirectMap;
use crate::arch::vtd::Unit;
use crate::kprintln;
use crate::mm::frames;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel_core::acpi::PciFunction;
use kernel_core::acpi::dmar::Dmar;
use kernel_core::frame::Frame;
use kernel_core::iommu::Flush;
use kernel_core::iommu::caps::Geometry;
use kernel_core::iommu::context::RootTable;
use kernel_core::lockorder::Rank;
use kernel_core::machine::IommuLink;
use kernel_core::pagetable::{ENTRIES, TableFrames, TableMemory};

/// The kernel's own frames, for its I/O-MMU tables.
struct KernelFrames;

impl TableFrames for KernelFrames {
    fn alloc_table(&mut self) -> Option<Frame> {
        crate::mm::alloc_zeroed_frame()
    }

    fn free_table(&mut self, frame: Frame) {
        let _ = frames::release(frame);
    }
}

/// One unit that translates, with its tables.
pub struct Iommu {
    pub unit: Unit,
    pub root: RootTable,
    pub geometry: Geometry,
    /// Its register base: how the DMAR names it.
    pub base: u64,
    /// Its invalidation queue, when it has one (then every invalidation
    /// goes through it).
    queue: Option<queue::Queue>,
    /// Its interrupt remapping table, when it remaps.
    ir: Option<kernel_core::iommu::irte::IrTable>,
}

/// Every unit that translates.
pub static UNITS: Ordered<arrayvec::ArrayVec<Iommu, 8>> =
    Ordered::new(Rank::IommuUnits, arrayvec::ArrayVec::new_const());

/// The DMAR, kept to find which unit translates a function.
static DMAR: spin::Once<Dmar> = spin::Once::new();

/// Whether some unit walks its tables without snooping the CPU's caches.
static FLUSH_TABLE_WRITES: AtomicBool = AtomicBool::new(false);

/// The I/O MMU's tables, as the units read them: the direct map, with a
/// cache-line flush after each write when a unit does not snoop.
pub struct IoMemory(DirectMap);

impl TableMemory for IoMemory {
    fn read(&self, table: Frame, index: usize) -> u64 {
        self.0.read(table, index)
    }

    fn write(&mut self, table: Frame, index: usize, value: u64) {
        self.0.write(table, index, value);
        if FLUSH_TABLE_WRITES.load(Ordering::Relaxed) {
            let at = crate::arch::phys::to_virt(table.addr() + 8 * (index as u64 & 511));
            crate::arch::cpu::clflush(at);
        }
    }

    fn entries(&self, table: Frame) -> &[u64; ENTRIES] {
        self.0.entries(table)
    }
}

/// Sends every unit's fault events to this CPU (its local APIC must be
/// up).
pub fn enable_fault_events() {
    let apic = crate::arch::lapic::id();
    for u in UNITS.lock().iter() {
        if !u
            .unit
            .enable_fault_events(crate::arch::vtd::FAULT_VECTOR, apic)
        {
            kprintln!(
                "[kernel] I/O MMU at {:#x}: its fault records cannot be read; DMA faults go unreported",
                u.base
            );
        }
    }
}

/// A unit raised its fault event: each record it holds goes to the
/// function that faulted (kernel-core's `devices::pci::dma_fault`).
pub fn fault_event() {
    let mut faults: arrayvec::ArrayVec<(u16, [u64; 2]), 64> = arrayvec::ArrayVec::new();
    {
        let units = UNITS.lock();
        let dmar = DMAR.get();
        for u in units.iter() {
            let segment = dmar
                .and_then(|d| d.units.iter().find(|x| x.register_base == u.base))
                .map_or(0, |x| x.segment);
            u.unit.take_faults(&mut |words| {
                let _ = faults.try_push((segment, words));
            });
        }
    }
    let mut k = crate::sched::SCHED.lock();
    for (segment, words) in faults {
        if let Some(record) = kernel_core::iommu::fault::FaultRecord::decode(words) {
            kernel_core::devices::pci::dma_fault(&mut k, segment, record);
        }
    }
}

/// Runs `f` over the I/O MMU's table memory.
pub fn with_tables<R>(f: impl FnOnce(&mut IoMemory) -> R) -> R {
    f(&mut IoMemory(DirectMap))
}

/// The unit translating `f`: its index in `UNITS`.
fn unit_index(units: &[Iommu], f: PciFunction) -> Option<usize> {
    let drhd = DMAR.get()?.unit_for(f)?;
    units.iter().position(|u| u.base == drhd.register_base)
}

/// What kernel-core needs to know of the unit translating `f`.
pub fn link_of(f: PciFunction) -> Option<IommuLink> {
    let units = UNITS.lock();
    let u = &units[unit_index(&units, f)?];
    Some(IommuLink {
        geometry: u.geometry,
        domains: u.unit.cap.domains(),
        flush_on_map: u.unit.cap.caching_mode(),
    })
}

/// Points `f`'s context entry at domain `did` (tables at `root`).
pub fn attach(f: PciFunction, did: u16, root: Frame) -> Result<(), abi::Error> {
    let mut units = UNITS.lock();
    let i = unit_index(&units, f).ok_or(abi::Error::NotSupported)?;
    let u = &mut units[i];
    let agaw = u.geometry.agaw();
    let devfn = f.device << 3 | f.function;
    with_tables(|mem| {
        u.root
            .attach(mem, &mut KernelFrames, f.bus, devfn, did, root, agaw)
    })?;
    // Not-present entries are cached only in caching mode, but an entry
    // this function had before (a claim after a release) may be.
    if let Err(e) = queue::forget(u, queue::Forget::Contexts(did)) {
        kprintln!("[kernel] I/O MMU at {:#x}: {e:?}", u.base);
    }
    Ok(())
}

/// Clears `f`'s context entry and makes the unit forget it and `did`'s
/// translations.
pub fn detach(f: PciFunction, did: u16) {
    let mut units = UNITS.lock();
    let Some(i) = unit_index(&units, f) else {
        return;
    };
    let u = &mut units[i];
    let devfn = f.device << 3 | f.function;
    if let Some(detached) = with_tables(|mem| u.root.detach(mem, f.bus, devfn)) {
        debug_assert_eq!(detached.domain_id, did);
        if let Err(e) = queue::forget(u, queue::Forget::Detached(&detached)) {
            kprintln!("[kernel] I/O MMU at {:#x}: {e:?}", u.base);
        }
    }
}

/// Invalidates what `flush` names in domain `did`, waited for.
pub fn flush(f: PciFunction, did: u16, flush: &Flush) {
    let mut units = UNITS.lock();
    let Some(i) = unit_index(&units, f) else {
        return;
    };
    let u = &mut units[i];
    if let Err(e) = queue::forget(u, queue::Forget::Translations(did, flush)) {
        // The unit did not answer within the bound: it is reported; what
        // the caller frees next may still be reachable through it, which
        // only a unit that ignores its own invalidations could do.
        kprintln!("[kernel] I/O MMU at {:#x}: {e:?}", u.base);
    }
}

/// Brings up every unit of `dmar`: an empty root table, translation on.
pub fn init(dmar: &Dmar) {
    let dmar = DMAR.call_once(|| dmar.clone());
    let bits = dmar.address_bits().min(u32::from(u8::MAX)) as u8;
    for drhd in &dmar.units {
        let base = drhd.register_base;
        let unit = match Unit::open(base, drhd.register_size()) {
            Ok(u) => u,
            Err(e) => {
                kprintln!("[kernel] I/O MMU at {base:#x} unusable: {e:?}");
                continue;
            }
        };
        let geometry = match Geometry::choose(unit.cap, bits) {
            Ok(g) => g,
            Err(e) => {
                kprintln!("[kernel] I/O MMU at {base:#x}: no usable page-table format ({e})");
                continue;
            }
        };
        let root = match RootTable::new(&mut KernelFrames, geometry.host_bits()) {
            Ok(r) => r,
            Err(e) => {
                kprintln!("[kernel] I/O MMU at {base:#x}: no root table ({e})");
                continue;
            }
        };
        if let Err(e) = unit.enable_translation(root.root().addr()) {
            kprintln!("[kernel] I/O MMU at {base:#x} did not start: {e:?}");
            root.destroy(&mut crate::arch::paging::DirectMap, &mut KernelFrames);
            continue;
        }
        if !unit.translating() {
            kprintln!("[kernel] I/O MMU at {base:#x} says translation is off after enabling it");
            root.destroy(&mut crate::arch::paging::DirectMap, &mut KernelFrames);
            continue;
        }
        let mut units = UNITS.lock();
        // The DMAR parser takes at most as many units as the list holds.
        if !unit.ecap.coherent() {
            FLUSH_TABLE_WRITES.store(true, Ordering::Relaxed);
        }
        let mut u = Iommu {
            unit,
            root,
            geometry,
            base,
            queue: None,
            ir: None,
        };
        // Queued invalidation (interrupt remapping needs it), then
        // interrupt remapping, each where the unit offers it.
        let mut interrupts = "interrupts not remapped (the unit cannot)";
        if u.unit.ecap.queued_invalidation() {
            match queue::Queue::start(&u.unit, bits) {
                Ok(q) => u.queue = Some(q),
                Err(e) => kprintln!("[kernel] I/O MMU at {base:#x}: no invalidation queue: {e}"),
            }
        }
        if u.queue.is_some() && u.unit.ecap.interrupt_remapping() && dmar.interrupt_remapping() {
            interrupts = match remap::start(&mut u, bits) {
                Ok(()) => "interrupt remapping on",
                Err(e) => {
                    kprintln!("[kernel] I/O MMU at {base:#x}: interrupt remapping off: {e}");
                    "interrupts not remapped"
                }
            };
        }
        kprintln!(
            "[kernel] I/O MMU at {base:#x}: DMA remapping on ({}-level tables, {}-bit iovas, {} domains, {} table frame), {}, {interrupts}; no device reaches memory until it is given some",
            u.geometry.levels(),
            u.geometry.iova_bits(),
            u.unit.cap.domains(),
            u.root.table_frames(),
            if u.queue.is_some() {
                "queued invalidation"
            } else {
                "register invalidation"
            },
        );
        let _ = units.try_push(u);
    }
}
