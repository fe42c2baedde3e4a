//! The I/O MMU on this machine: at boot, each VT-d unit the DMAR lists
//! gets an empty root table and translation is turned on, so that no
//! device can reach memory at all until a driver's exports map it into
//! its device's domain (that part is still to come: until then DMA from
//! every device is blocked on a machine with an I/O MMU).
//!
//! Rules: the tables come from `kernel_core::iommu` and frames the kernel
//! keeps for itself (not charged to any process: one root table per
//! unit), and stay as long as the unit translates; a unit that does not
//! answer, or describes itself beyond its registers, is reported and left
//! off, never trusted in part.

use crate::arch::vtd::Unit;
use crate::kprintln;
use crate::mm::frames;
use kernel_core::acpi::dmar::Dmar;
use kernel_core::frame::Frame;
use kernel_core::iommu::caps::Geometry;
use kernel_core::iommu::context::RootTable;
use kernel_core::pagetable::TableFrames;

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
}

/// Every unit that translates.
pub static UNITS: spin::Mutex<arrayvec::ArrayVec<Iommu, 8>> =
    spin::Mutex::new(arrayvec::ArrayVec::new_const());

/// Brings up every unit of `dmar`: an empty root table, translation on.
pub fn init(dmar: &Dmar) {
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
        let _ = units.try_push(Iommu {
            unit,
            root,
            geometry,
        });
        if let Some(u) = units.last() {
            kprintln!(
                "[kernel] I/O MMU at {base:#x}: DMA remapping on ({}-level tables, {}-bit iovas, {} domains, {} table frame); no device reaches memory until it is given some",
                u.geometry.levels(),
                u.geometry.iova_bits(),
                u.unit.cap.domains(),
                u.root.table_frames(),
            );
        }
    }
}
