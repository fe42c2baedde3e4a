//! The fake machine's PCI functions and I/O MMU: functions are the PCI
//! tests' `FakeFunction` register files, placed at addresses; the I/O MMU
//! (when a test installs one) keeps each function's context (domain id
//! and table root), its tables in a map like a fake address space's, and
//! a log of every attach, detach and invalidation, in order.
//!
//! Rules: a function's configuration space is reached only through
//! [`FakeConfig`], which checks the `ConfigSpace` contract; an attach over
//! an attached function or a detach of an unattached one panics (the
//! kernel must never ask).

use super::{TablesOf, with};
use crate::acpi::PciFunction;
use crate::frame::Frame;
use crate::iommu::{Flush, Geometry};
use crate::machine::{IommuLink, MsiRoute};
use crate::pci::ConfigSpace;
use crate::pci::fake::FakeFunction;
use std::collections::HashMap;

/// What the fake I/O MMU was asked, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuEvent {
    Attach {
        f: PciFunction,
        did: u16,
        root: u64,
    },
    Detach {
        f: PciFunction,
        did: u16,
    },
    Flush {
        f: PciFunction,
        did: u16,
        range: (u64, u64),
        tables: bool,
    },
}

/// The fake I/O MMU.
pub struct FakeIommu {
    pub link: IommuLink,
    pub contexts: HashMap<PciFunction, (u16, Frame)>,
    pub tables: TablesOf,
    pub events: Vec<IommuEvent>,
}

impl FakeIommu {
    /// A unit with QEMU's shape: 3-level tables, 39-bit iovas.
    pub fn qemu() -> FakeIommu {
        FakeIommu {
            link: IommuLink {
                geometry: Geometry::new(3, 39, 46).expect("a valid geometry"),
                domains: 256,
                flush_on_map: false,
            },
            contexts: HashMap::new(),
            tables: TablesOf::default(),
            events: Vec::new(),
        }
    }
}

/// A fake function's configuration space, by address.
pub struct FakeConfig(pub PciFunction);

impl FakeConfig {
    fn on<R>(&self, f: impl FnOnce(&mut FakeFunction) -> R) -> R {
        with(|s| f(s.pci.get_mut(&self.0).expect("the function is there")))
    }
}

impl ConfigSpace for FakeConfig {
    fn read8(&mut self, offset: u16) -> u8 {
        self.on(|f| f.read8(offset))
    }
    fn read16(&mut self, offset: u16) -> u16 {
        self.on(|f| f.read16(offset))
    }
    fn read32(&mut self, offset: u16) -> u32 {
        self.on(|f| f.read32(offset))
    }
    fn write8(&mut self, offset: u16, value: u8) {
        self.on(|f| f.write8(offset, value))
    }
    fn write16(&mut self, offset: u16, value: u16) {
        self.on(|f| f.write16(offset, value))
    }
    fn write32(&mut self, offset: u16, value: u32) {
        self.on(|f| f.write32(offset, value))
    }
}

/// Places `function` at `f`.
pub fn plug(f: PciFunction, function: FakeFunction) {
    with(|s| s.pci.insert(f, function));
}

/// Gives the machine an I/O MMU translating every function.
pub fn install_iommu() {
    with(|s| s.iommu = Some(FakeIommu::qemu()));
}

pub(super) fn config(f: PciFunction) -> Option<FakeConfig> {
    with(|s| s.pci.contains_key(&f)).then_some(FakeConfig(f))
}

pub(super) fn iommu_of(_f: PciFunction) -> Option<IommuLink> {
    with(|s| s.iommu.as_ref().map(|u| u.link))
}

/// Runs `f` over the I/O MMU's tables.
pub fn with_tables<R>(f: impl FnOnce(&mut TablesOf) -> R) -> R {
    // Taken out while `f` runs, so that `f` may call back into the fake.
    let mut tables = with(|s| std::mem::take(&mut s.iommu.as_mut().expect("an I/O MMU").tables));
    let r = f(&mut tables);
    with(|s| s.iommu.as_mut().expect("an I/O MMU").tables = tables);
    r
}

pub(super) fn attach(f: PciFunction, did: u16, root: Frame) {
    with(|s| {
        let u = s.iommu.as_mut().expect("an I/O MMU");
        assert!(
            u.contexts.insert(f, (did, root)).is_none(),
            "{f:?} attached twice"
        );
        u.events.push(IommuEvent::Attach {
            f,
            did,
            root: root.addr(),
        });
    })
}

pub(super) fn detach(f: PciFunction, did: u16) {
    with(|s| {
        let u = s.iommu.as_mut().expect("an I/O MMU");
        assert!(u.contexts.remove(&f).is_some(), "{f:?} was not attached");
        u.events.push(IommuEvent::Detach { f, did });
    })
}

pub(super) fn flush(f: PciFunction, did: u16, flush: &Flush) {
    with(|s| {
        let u = s.iommu.as_mut().expect("an I/O MMU");
        u.events.push(IommuEvent::Flush {
            f,
            did,
            range: flush.range(),
            tables: flush.tables(),
        });
    })
}

pub(super) fn msi_route(f: PciFunction, slot: u8) -> Result<MsiRoute, abi::Error> {
    with(|s| {
        let used: Vec<u16> = s.msi_routes.values().copied().collect();
        let handle = (0..s.msi_handles)
            .find(|h| !used.contains(h))
            .ok_or(abi::Error::LimitReached)?;
        s.msi_routes.insert((f, slot), handle);
        Ok(MsiRoute {
            address: 0xfee0_0010 | u64::from(handle) << 5,
            data: 0,
            handle: Some(handle),
        })
    })
}

pub(super) fn msi_unroute(f: PciFunction, route: &MsiRoute) {
    with(|s| {
        let before = s.msi_routes.len();
        s.msi_routes
            .retain(|&(g, _), h| !(g == f && Some(*h) == route.handle));
        assert_eq!(s.msi_routes.len() + 1, before, "a route withdrawn twice");
    })
}
