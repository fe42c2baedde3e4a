//! Claimed PCI functions on the fake machine: the claim's checks and what
//! it charges, the kernel's ports of a function, bus mastering that
//! follows the holders, DMA faults and MSI-X lines; and the helpers the
//! DMA tests (`dma_tests`) share.

use super::{Device, DeviceId};
use crate::acpi::PciFunction;
use crate::fake::pci::{IommuEvent, install_iommu, plug};
use crate::fake::{self, Fake};
use crate::hwclaims::Reserved;
use crate::iommu::Access;
use crate::kernel::Kernel;
use crate::kernel::tests::{SCRATCH, boot, call, fork};
use crate::pci::{Command, models};
use abi::bus::*;
use abi::hw::*;
use abi::kdev::*;
use abi::{Error, Sysno};

pub(super) const EDU_AT: PciFunction = PciFunction::new(0, 0, 3, 0);
pub(super) const BUF: u64 = 0x6000_0000_0000;
pub(super) const PAGE: u64 = 4096;
pub(super) const ALL: u32 =
    RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_IRQ | RIGHT_MAP | RIGHT_CLONE;

pub(super) fn poke(k: &mut Kernel<Fake>, va: u64, bytes: &[u8]) {
    let space = k.current().space.as_mut().unwrap();
    crate::usercopy::copy_to_user::<Fake>(space, va, bytes).unwrap();
}

pub(super) fn peek_u64(k: &mut Kernel<Fake>, va: u64) -> u64 {
    let space = k.current().space.as_mut().unwrap();
    let mut b = [0u8; 8];
    crate::usercopy::copy_from_user::<Fake>(space, va, &mut b).unwrap();
    u64::from_le_bytes(b)
}

pub(super) fn attach(k: &mut Kernel<Fake>, name: &str, rights: u32) -> Result<u64, Error> {
    let at = SCRATCH + 0x800;
    poke(k, at, name.as_bytes());
    let r = call(
        k,
        Sysno::Attach,
        [0, at, name.len() as u64, u64::from(rights), 0, 0],
    )
    .unwrap();
    Error::decode(r).map(|h| h as u64)
}

/// A kernel with an edu function at 00:03.0, optionally behind an I/O
/// MMU, and init holding platform.
pub(super) fn machine(iommu: bool) -> (Kernel<Fake>, u64) {
    let mut k = boot();
    k.devices.reserved = Some(Reserved {
        ports: vec![(0xcf8, 0xd00)],
        mmio: vec![],
        ram: vec![],
        gsi_count: 24,
        isa: Reserved::IDENTITY_ISA,
    });
    plug(EDU_AT, models::edu());
    if iommu {
        install_iommu();
    }
    let plat = attach(&mut k, "platform", RIGHT_READ | RIGHT_WRITE | RIGHT_DMA).unwrap();
    (k, plat)
}

/// Asks platform to claim `f` as `name`.
pub(super) fn claim(
    k: &mut Kernel<Fake>,
    plat: u64,
    name: &str,
    f: PciFunction,
) -> Result<(), Error> {
    let mut spec = PciClaimSpec {
        name_len: name.len() as u32,
        segment: f.segment,
        bus: f.bus,
        devfn: f.device << 3 | f.function,
        ..PciClaimSpec::default()
    };
    spec.name[..name.len()].copy_from_slice(name.as_bytes());
    let at = SCRATCH + 0x100;
    let bytes: [u8; core::mem::size_of::<PciClaimSpec>()] =
        // SAFETY: PciClaimSpec is plain repr(C) data without padding.
        unsafe { core::mem::transmute(spec) };
    poke(k, at, &bytes);
    let len = bytes.len() as u64;
    let iova = call(k, Sysno::Export, [plat, at, len, 0, 0, 0]).unwrap();
    assert!(iova > 0);
    let r = call(
        k,
        Sysno::PortOut,
        [
            plat,
            u64::from(PLATFORM_PORT_CLAIM_PCI),
            8,
            iova as u64,
            0,
            0,
        ],
    );
    assert_eq!(
        call(k, Sysno::Unexport, [plat, iova as u64, 0, 0, 0, 0]),
        Some(0)
    );
    Error::decode(r.unwrap()).map(|_| ())
}

pub(super) fn port_in(k: &mut Kernel<Fake>, h: u64, port: u32, size: u64) -> Result<u64, Error> {
    Error::decode(call(k, Sysno::PortIn, [h, u64::from(port), size, 0, 0, 0]).unwrap())
        .map(|v| v as u64)
}

pub(super) fn port_out(
    k: &mut Kernel<Fake>,
    h: u64,
    port: u32,
    size: u64,
    v: u64,
) -> Result<(), Error> {
    Error::decode(call(k, Sysno::PortOut, [h, u64::from(port), size, v, 0, 0]).unwrap()).map(|_| ())
}

pub(super) fn export(
    k: &mut Kernel<Fake>,
    h: u64,
    va: u64,
    len: u64,
    flags: u64,
    list: (u64, u64),
) -> Result<u64, Error> {
    Error::decode(call(k, Sysno::Export, [h, va, len, flags, list.0, list.1]).unwrap())
        .map(|v| v as u64)
}

pub(super) fn unexport(k: &mut Kernel<Fake>, h: u64, iova: u64) -> Result<(), Error> {
    Error::decode(call(k, Sysno::Unexport, [h, iova, 0, 0, 0, 0]).unwrap()).map(|_| ())
}

pub(super) fn map(k: &mut Kernel<Fake>, va: u64, len: u64, prot: u64) {
    assert_eq!(call(k, Sysno::VmMap, [va, len, prot, 0, 0, 0]), Some(0));
}

pub(super) fn edu_id(k: &mut Kernel<Fake>) -> DeviceId {
    k.devices.lookup("edu").unwrap()
}

/// What the domain of `dev` maps at `iova`.
pub(super) fn translate(k: &mut Kernel<Fake>, dev: DeviceId, iova: u64) -> Option<(u64, Access)> {
    let Ok(Device::Hardware(h)) = k.devices.get(dev) else {
        panic!("not hardware");
    };
    let d = h.pci.as_ref().unwrap().dma.as_ref().unwrap();
    crate::fake::pci::with_tables(|mem| d.domain.translate(mem, iova)).map(|(f, a)| (f.addr(), a))
}

pub(super) fn command(f: PciFunction) -> u16 {
    fake::with(|s| s.pci.get(&f).unwrap().peek(4, 2) as u16)
}

pub(super) fn events() -> Vec<IommuEvent> {
    fake::with(|s| s.iommu.as_ref().unwrap().events.clone())
}

#[test]
fn a_claim_checks_everything_and_charges_its_creator() {
    let (mut k, plat) = machine(true);
    // The first export to platform makes its export list (charged).
    assert_eq!(
        claim(&mut k, plat, "x", PciFunction::new(0, 0, 4, 0)),
        Err(Error::NotFound)
    );
    let reserve = k.current().reserve;
    let used = k.reserves.get(reserve).unwrap().used();
    assert_eq!(
        claim(&mut k, plat, "x", PciFunction::new(0, 0, 4, 0)),
        Err(Error::NotFound)
    );
    assert_eq!(claim(&mut k, plat, "", EDU_AT), Err(Error::InvalidArgument));
    assert_eq!(
        claim(&mut k, plat, "a b", EDU_AT),
        Err(Error::InvalidArgument)
    );
    let mut bridge = crate::pci::fake::FakeFunction::endpoint(0x8086, 0x29c0);
    bridge.class(0x06, 0x00, 0x00, 0);
    plug(PciFunction::new(0, 0, 0, 0), bridge);
    assert_eq!(
        claim(&mut k, plat, "host", PciFunction::new(0, 0, 0, 0)),
        Err(Error::AccessDenied)
    );
    assert_eq!(
        k.reserves.get(reserve).unwrap().used(),
        used,
        "refusals charge nothing"
    );
    assert_eq!(claim(&mut k, plat, "edu", EDU_AT), Ok(()));
    // The record and every table the domain's window can need.
    let charged = k.reserves.get(reserve).unwrap().used() - used;
    assert!(
        charged >= super::dma::WINDOW_TABLE_FRAMES,
        "charged {charged} frames"
    );
    assert_eq!(
        claim(&mut k, plat, "edu", EDU_AT),
        Err(Error::AlreadyExists)
    );
    assert_eq!(claim(&mut k, plat, "edu2", EDU_AT), Err(Error::Busy));
    // Its resources: BAR 0's memory; decode on, bus mastering off.
    let dev = edu_id(&mut k);
    let Ok(Device::Hardware(h)) = k.devices.get(dev) else {
        panic!()
    };
    assert_eq!(
        h.res.mmio.as_slice(),
        &[(
            u64::from(models::EDU_BAR0),
            u64::from(models::EDU_BAR0) + (1 << 20)
        )]
    );
    assert_eq!(command(EDU_AT) & 0x6, 0x2);
    // The domain is attached to the function, with domain id slot + 1.
    assert!(
        matches!(events().as_slice(), [IommuEvent::Attach { f, did, .. }] if *f == EDU_AT && *did > 0)
    );
}

#[test]
fn an_msix_table_is_never_the_drivers_to_map() {
    let (mut k, plat) = machine(false);
    let at = PciFunction::new(0, 0, 5, 0);
    plug(at, models::virtio_net());
    assert_eq!(claim(&mut k, plat, "net", at), Ok(()));
    let id = k.devices.lookup("net").unwrap();
    let Ok(Device::Hardware(h)) = k.devices.get(id) else {
        panic!()
    };
    let bar1 = u64::from(models::VIRTIO_BAR1);
    assert!(
        !h.res.has_mmio(bar1, PAGE),
        "the MSI-X table page is mappable"
    );
    assert!(h.res.has_mmio(models::VIRTIO_BAR4, PAGE));
}

#[test]
fn the_kernels_ports_of_a_function() {
    let (mut k, plat) = machine(true);
    claim(&mut k, plat, "edu", EDU_AT).unwrap();
    let h = attach(&mut k, "edu", ALL).unwrap();
    assert_eq!(command(EDU_AT) & 0x4, 0x4, "a holder has bus mastering");
    assert_eq!(port_in(&mut k, h, HW_PORT_PCI_CONFIG, 4), Ok(0x11e8_1234));
    assert_eq!(
        port_in(&mut k, h, HW_PORT_PCI_BAR_BASE, 8),
        Ok(u64::from(models::EDU_BAR0))
    );
    assert_eq!(port_in(&mut k, h, HW_PORT_PCI_BAR_SIZE, 8), Ok(1 << 20));
    assert_eq!(
        port_in(&mut k, h, HW_PORT_PCI_BAR_KIND, 8),
        Ok(HW_BAR_MEM32)
    );
    assert_eq!(
        port_in(&mut k, h, HW_PORT_PCI_BAR_KIND + 8, 8),
        Ok(HW_BAR_NONE)
    );
    assert_eq!(
        port_in(&mut k, h, HW_PORT_PCI_BAR_KIND + 48, 8),
        Err(Error::InvalidArgument)
    );
    assert_eq!(port_in(&mut k, h, HW_PORT_PCI_IOMMU, 8), Ok(1));
    assert_eq!(port_in(&mut k, h, HW_PORT_PCI_ADDRESS, 8), Ok(3 << 3));
    assert_eq!(port_in(&mut k, h, HW_PORT_DMA_FAULTS, 8), Ok(0));
    assert_eq!(port_in(&mut k, h, HW_PORT_DMA_FAULT, 8), Ok(0));
    assert_eq!(
        port_in(&mut k, h, HW_PORT_DMA_FAULT + 16 * HW_DMA_FAULT_RECORDS, 8),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        port_in(&mut k, h, HW_PORT_PCI_IOMMU, 4),
        Err(Error::InvalidArgument)
    );
    assert_eq!(port_in(&mut k, h, 0x5_0000, 8), Err(Error::InvalidArgument));
    // The driver cannot turn bus mastering or decode off or on.
    assert_eq!(port_out(&mut k, h, HW_PORT_PCI_CONFIG + 4, 2, 0), Ok(()));
    assert_eq!(command(EDU_AT) & 0x6, 0x6);
    assert_eq!(
        port_out(&mut k, h, HW_PORT_PCI_CONFIG + 0x10, 4, !0),
        Err(Error::AccessDenied)
    );
    assert_eq!(
        port_out(&mut k, h, HW_PORT_PCI_BAR_BASE, 8, 0),
        Err(Error::InvalidArgument)
    );
    // Bus mastering follows the holders: a fork's copy holds it too.
    let child = fork(&mut k);
    assert_eq!(call(&mut k, Sysno::Detach, [h, 0, 0, 0, 0, 0]), Some(0));
    assert_eq!(command(EDU_AT) & 0x4, 0x4, "the child still holds it");
    assert_eq!(
        call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        None
    );
    assert_eq!(k.current_pid(), child);
    assert_eq!(call(&mut k, Sysno::Exit, [0, 0, 0, 0, 0, 0]), None);
    assert_eq!(
        call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        Some(child as isize)
    );
    assert_eq!(command(EDU_AT) & 0x4, 0, "no holder, no bus mastering");
}

fn fault_at(iova: u64, write: bool) -> crate::iommu::fault::FaultRecord {
    crate::iommu::fault::FaultRecord {
        source: (EDU_AT.bus, EDU_AT.device << 3 | EDU_AT.function),
        iova,
        write,
        reason: crate::iommu::fault::reason::WRITE_DENIED,
        interrupt_index: None,
        pasid: None,
        address_type: 0,
    }
}

#[test]
fn an_unclaimed_function_that_faults_loses_bus_mastering_until_claimed() {
    let (mut k, plat) = machine(true);
    let bm = |on: bool| {
        let mut cfg = <Fake as crate::machine::Machine>::pci_config(EDU_AT).unwrap();
        crate::pci::update_command(&mut cfg, |c| {
            if on {
                c | Command::BUS_MASTER
            } else {
                c - Command::BUS_MASTER
            }
        })
        .unwrap();
    };
    // Left running by the firmware.
    bm(true);
    super::pci::dma_fault(&mut k, 0, fault_at(0x2000, true));
    assert_eq!(command(EDU_AT) & 0x4, 0, "stopped at its first fault");
    let log = fake::with(|s| s.log_text());
    let line = log.lines().find(|l| l.contains("00:03.0")).unwrap();
    assert!(line.starts_with("[kernel] DMA fault from unclaimed pci 00:03.0 at 0x2000: "));
    assert!(
        line.ends_with("; bus mastering off until it is claimed"),
        "{line}"
    );
    // A claim and a holder turn it on again.
    claim(&mut k, plat, "edu", EDU_AT).unwrap();
    let h = attach(&mut k, "edu", ALL).unwrap();
    assert_eq!(command(EDU_AT) & 0x4, 0x4);
    assert_eq!(call(&mut k, Sysno::Detach, [h, 0, 0, 0, 0, 0]), Some(0));
}

#[test]
fn faults_reach_the_driver_and_a_storm_stops_the_function() {
    use crate::iommu::fault::STORM_FAULTS;
    let (mut k, plat) = machine(true);
    claim(&mut k, plat, "edu", EDU_AT).unwrap();
    let h = attach(&mut k, "edu", ALL).unwrap();
    let line = u64::from(HW_LINE_DMA_FAULT);
    assert_eq!(call(&mut k, Sysno::IrqMap, [h, line, 40, 0, 0, 0]), Some(0));
    // An unclaimed function's fault is logged and reaches no driver; a
    // function that is not there cannot be stopped.
    let mut stray = fault_at(0x1000, true);
    stray.source = (0, 7 << 3);
    super::pci::dma_fault(&mut k, 0, stray);
    assert_eq!(port_in(&mut k, h, HW_PORT_DMA_FAULTS, 8), Ok(0));
    let log = fake::with(|s| s.log_text());
    assert!(log.contains("DMA fault from unclaimed pci 00:07.0 at 0x1000: "));
    let logged = log.lines().find(|l| l.contains("00:07.0")).unwrap();
    assert!(!logged.contains("bus mastering off"), "{logged}");
    super::pci::dma_fault(&mut k, 0, fault_at(0x5000, true));
    assert_eq!(k.current().pending & (1 << 40), 1 << 40, "the driver heard");
    assert_eq!(port_in(&mut k, h, HW_PORT_DMA_FAULTS, 8), Ok(1));
    assert_eq!(port_in(&mut k, h, HW_PORT_DMA_FAULT, 8), Ok(0x5000));
    let info = port_in(&mut k, h, HW_PORT_DMA_FAULT + 8, 8).unwrap();
    assert_eq!(
        info & 0x1ff,
        u64::from(crate::iommu::fault::reason::WRITE_DENIED) | 1 << 8
    );
    assert_eq!(info >> 16, u64::from(EDU_AT.device) << 3);
    // Newest first, at most HW_DMA_FAULT_RECORDS kept.
    for i in 0..HW_DMA_FAULT_RECORDS as u64 {
        super::pci::dma_fault(&mut k, 0, fault_at(0x10_0000 + i * PAGE, false));
    }
    let newest = 0x10_0000 + (u64::from(HW_DMA_FAULT_RECORDS) - 1) * PAGE;
    assert_eq!(port_in(&mut k, h, HW_PORT_DMA_FAULT, 8), Ok(newest));
    let last = HW_PORT_DMA_FAULT + 16 * (HW_DMA_FAULT_RECORDS - 1);
    assert_eq!(port_in(&mut k, h, last, 8), Ok(0x10_0000));
    assert_eq!(command(EDU_AT) & 0x4, 0x4, "a few faults stop nothing");
    // A storm within one tick stops the function, and it stays stopped
    // while this driver holds it, even if another attaches.
    for i in 0..STORM_FAULTS as u64 {
        super::pci::dma_fault(&mut k, 0, fault_at(i * PAGE, true));
    }
    assert_eq!(command(EDU_AT) & 0x4, 0, "stopped");
    assert!(fake::with(|s| s.log_text()).contains("edu keeps faulting"));
    let h2 = attach(&mut k, "edu", ALL).unwrap();
    assert_eq!(command(EDU_AT) & 0x4, 0);
    // Once every holder has gone, the next driver starts afresh.
    assert_eq!(call(&mut k, Sysno::Detach, [h, 0, 0, 0, 0, 0]), Some(0));
    assert_eq!(call(&mut k, Sysno::Detach, [h2, 0, 0, 0, 0, 0]), Some(0));
    let h3 = attach(&mut k, "edu", ALL).unwrap();
    assert_eq!(command(EDU_AT) & 0x4, 0x4);
    // The fault line went with the handle that mapped it.
    assert_eq!(
        call(&mut k, Sysno::IrqMap, [h3, line, 41, 0, 0, 0]),
        Some(0)
    );
}

#[test]
fn msix_lines_are_programmed_by_the_kernel_and_withdrawn_with_their_handle() {
    let (mut k, plat) = machine(true);
    let at = PciFunction::new(0, 0, 5, 0);
    plug(at, models::virtio_net());
    claim(&mut k, plat, "net", at).unwrap();
    let h = attach(&mut k, "net", ALL).unwrap();
    let table = u64::from(models::VIRTIO_BAR1);
    assert_eq!(call(&mut k, Sysno::Info, [h, SCRATCH, 0, 0, 0, 0]), Some(0));
    let map = |k: &mut Kernel<Fake>, h: u64, line: u64, v: u64| {
        Error::decode(call(k, Sysno::IrqMap, [h, line, v, 0, 0, 0]).unwrap()).map(|_| ())
    };
    assert_eq!(
        map(&mut k, h, 3, 40),
        Err(Error::InvalidArgument),
        "three lines"
    );
    assert_eq!(map(&mut k, h, 1, 40), Ok(()));
    let entry = |i: u64| {
        fake::with(|s| {
            [0, 4, 8, 12].map(|o| s.mmio.get(&(table + 16 * i + o)).copied().unwrap_or(0))
        })
    };
    let [lo, hi, data, control] = entry(1);
    assert_eq!(
        (lo >> 20, hi, control),
        (0xfee, 0, 0),
        "entry 1 programmed, unmasked"
    );
    assert_eq!(data, 0);
    assert_eq!(entry(0), [0; 4], "entry 0 untouched");
    let msix_control = fake::with(|s| {
        s.pci
            .get(&at)
            .unwrap()
            .peek(u16::from(models::VIRTIO_MSIX) + 2, 2)
    });
    assert_eq!(
        msix_control & 0xc000,
        0x8000,
        "enabled, not function-masked"
    );
    // The kernel's vector raises the owner's.
    let slot = k
        .devices
        .msi_slots
        .iter()
        .position(|s| s.is_some())
        .unwrap();
    super::msi::interrupt(&mut k, slot);
    assert_eq!(k.current().pending & (1 << 40), 1 << 40);
    // One owner per line; another handle may take another line.
    let h2 = attach(&mut k, "net", ALL).unwrap();
    assert_eq!(map(&mut k, h2, 1, 41), Err(Error::Busy));
    assert_eq!(map(&mut k, h2, 2, 41), Ok(()));
    assert_eq!(fake::with(|s| s.msi_routes.len()), 2);
    // Detached: its entry masked, its route and vector given back.
    assert_eq!(call(&mut k, Sysno::Detach, [h, 0, 0, 0, 0, 0]), Some(0));
    assert_eq!(entry(1)[3], 1, "masked");
    assert_eq!(fake::with(|s| s.msi_routes.len()), 1);
    assert_eq!(
        k.devices.msi_slots.iter().filter(|s| s.is_some()).count(),
        1
    );
    assert_eq!(call(&mut k, Sysno::Detach, [h2, 0, 0, 0, 0, 0]), Some(0));
    let msix_control = fake::with(|s| {
        s.pci
            .get(&at)
            .unwrap()
            .peek(u16::from(models::VIRTIO_MSIX) + 2, 2)
    });
    assert_eq!(msix_control & 0x8000, 0, "off with no line left");
}

#[test]
fn running_out_of_remapping_entries_is_an_error() {
    let (mut k, plat) = machine(true);
    let at = PciFunction::new(0, 0, 5, 0);
    plug(at, models::virtio_net());
    claim(&mut k, plat, "net", at).unwrap();
    let h = attach(&mut k, "net", ALL).unwrap();
    fake::with(|s| s.msi_handles = 2);
    let map = |k: &mut Kernel<Fake>, line: u64| {
        Error::decode(call(k, Sysno::IrqMap, [h, line, 40, 0, 0, 0]).unwrap())
    };
    assert_eq!(map(&mut k, 0), Ok(0));
    assert_eq!(map(&mut k, 1), Ok(0));
    assert_eq!(map(&mut k, 2), Err(Error::LimitReached));
    assert_eq!(
        k.devices.msi_slots.iter().filter(|s| s.is_some()).count(),
        2,
        "no vector kept"
    );
    // Remapping a mapped line changes only its vector.
    assert_eq!(
        Error::decode(call(&mut k, Sysno::IrqMap, [h, 1, 45, 0, 0, 0]).unwrap()),
        Ok(0)
    );
    assert_eq!(fake::with(|s| s.msi_routes.len()), 2);
}

#[test]
fn a_line_goes_to_its_owners_cpu_and_moves_when_mapped_again() {
    let (mut k, plat) = machine(true);
    for cpu in 0..4 {
        k.cpu_online(cpu);
    }
    let at = PciFunction::new(0, 0, 5, 0);
    plug(at, models::virtio_net());
    claim(&mut k, plat, "net", at).unwrap();
    let h = attach(&mut k, "net", ALL).unwrap();
    let map =
        |k: &mut Kernel<Fake>, line: u64, v: u64| call(k, Sysno::IrqMap, [h, line, v, 0, 0, 0]);
    let slot_cpu = |k: &Kernel<Fake>| {
        let slot = k
            .devices
            .msi_slots
            .iter()
            .position(|s| s.is_some())
            .unwrap();
        (slot, fake::with(|s| s.msi_cpus.get(&(slot as u8)).copied()))
    };
    // Not mapped: no CPU; a line the function lacks, a bad size.
    assert_eq!(
        port_in(&mut k, h, HW_PORT_IRQ_CPU + 8, 8),
        Ok(HW_IRQ_NO_CPU)
    );
    assert_eq!(
        port_in(&mut k, h, HW_PORT_IRQ_CPU + 8 * 3, 8),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        port_in(&mut k, h, HW_PORT_IRQ_CPU + 8, 4),
        Err(Error::InvalidArgument)
    );
    // An owner free to run anywhere: CPU 0.
    assert_eq!(map(&mut k, 1, 40), Some(0));
    assert_eq!(port_in(&mut k, h, HW_PORT_IRQ_CPU + 8, 8), Ok(0));
    assert_eq!(slot_cpu(&k).1, Some(0));
    assert_eq!(
        port_in(&mut k, h, HW_PORT_IRQ_LAST_CPU + 8, 8),
        Ok(HW_IRQ_NO_CPU)
    );
    // Bound to CPUs 2 and 3 (set here: the call would move it off this
    // CPU), mapped again: the message is made anew for CPU 2 (the old
    // one withdrawn), and the vector still reaches it.
    k.current().affinity = 0b1100;
    assert_eq!(map(&mut k, 1, 41), Some(0));
    assert_eq!(port_in(&mut k, h, HW_PORT_IRQ_CPU + 8, 8), Ok(2));
    let (slot, cpu) = slot_cpu(&k);
    assert_eq!(cpu, Some(2));
    assert_eq!(fake::with(|s| s.msi_routes.len()), 1);
    fake::with(|s| s.cpu = 2);
    super::msi::interrupt(&mut k, slot);
    fake::with(|s| s.cpu = 0);
    assert_eq!(k.current().pending & (1 << 41), 1 << 41);
    assert_eq!(port_in(&mut k, h, HW_PORT_IRQ_LAST_CPU + 8, 8), Ok(2));
    // Mapped again on the same CPU: only the vector changes.
    assert_eq!(map(&mut k, 1, 42), Some(0));
    assert_eq!(slot_cpu(&k).0, slot);
    assert_eq!(port_in(&mut k, h, HW_PORT_IRQ_LAST_CPU + 8, 8), Ok(2));
}
