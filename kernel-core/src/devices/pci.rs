//! Claimed PCI functions: a hardware device the kernel made from a
//! function's own description (`PLATFORM_PORT_CLAIM_PCI`). The kernel
//! reads and sizes its BARs, keeps the MSI-X structures out of the
//! driver's reach, mediates every configuration access
//! (`kernel_core::pci::ConfigPolicy`), gives it an I/O MMU domain of its
//! own (see `dma`), and turns bus mastering on only while a driver holds
//! it.
//!
//! Rules: nothing is claimed until every check passed (a failed claim
//! leaves the function as it was and charges nothing); bridges (class
//! 0x06: the host bridge, the ISA bridge) stay the kernel's, whatever
//! their header says; a BAR's resources are the kernel's sizing, never a
//! value a driver wrote; bus mastering is on exactly while the device has
//! at least one attachment, and off before the last driver's exports are
//! undone; the ports above the I/O port space (`abi::hw::HW_PORT_PCI_*`)
//! are answered by the kernel, the configuration window through the
//! function's policy only.

extern crate alloc;

use super::Device;
use super::DeviceId;
use super::dma::DmaSpace;
use super::msi::{Lines, Signal};
use crate::acpi::PciFunction;
use crate::hwclaims::{HwResources, device_name};
use crate::iommu::fault::{FaultLog, FaultRecord, Verdict};
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::pci::{Bar, BarKind, Bars, Command, ConfigAccess, ConfigPolicy, ConfigSpace};
use crate::process::Pid;
use abi::Error;
use abi::hw::*;
use arrayvec::ArrayVec;

/// PCI class of bridges (host, ISA, PCI-to-PCI...): never handed out.
const CLASS_BRIDGE: u8 = 0x06;
const PAGE: u64 = 4096;

/// The second word of a fault record's ports (`abi::hw::HW_PORT_DMA_FAULT`).
fn info_word(r: &FaultRecord) -> u64 {
    u64::from(r.reason) | u64::from(r.write) << 8 | u64::from(r.source_id()) << 16
}

/// Who hears of a function's DMA faults: (process, handle, vector).
pub type FaultOwner = (Pid, u64, u32);

/// A claimed function's state.
pub struct PciDevice {
    pub function: PciFunction,
    pub policy: ConfigPolicy,
    pub bars: Bars,
    /// The function's domain, on a machine whose I/O MMU translates it.
    pub dma: Option<DmaSpace>,
    /// Attachments held now: bus mastering is on while there is one
    /// (and the function was not stopped for faulting).
    pub holders: u32,
    /// The DMA faults the I/O MMU reported, and the storm rule.
    pub faults: FaultLog,
    /// Who the fault line is mapped to.
    pub fault_owner: Option<FaultOwner>,
    /// Stopped for a fault storm: bus mastering stays off until every
    /// holder has gone.
    pub stopped: bool,
    /// Its message-signalled interrupts.
    pub msi: Lines,
}

impl PciDevice {
    /// Record `k`, newest first.
    fn fault(&self, k: usize) -> Option<FaultRecord> {
        self.faults
            .recent()
            .collect::<ArrayVec<_, 8>>()
            .iter()
            .rev()
            .nth(k)
            .map(|l| l.record)
    }
}

/// The function a claim names, checked.
fn function_of(spec: &PciClaimSpec) -> PciFunction {
    PciFunction::new(spec.segment, spec.bus, spec.devfn >> 3, spec.devfn & 7)
}

/// The pages of BAR `bar` the driver may map: the whole BAR, rounded out
/// to pages, minus the pages holding the MSI-X table and pending bits
/// (the kernel programs those). `InvalidArgument` for a memory BAR
/// smaller than a page that is not alone in it (it cannot be mapped
/// without its neighbours).
fn mappable(bar: &Bar, msix: &[(u64, u64)], out: &mut HwResources) -> Result<(), Error> {
    if bar.base == 0 {
        return Ok(()); // unassigned: nothing to map
    }
    let start = bar.base & !(PAGE - 1);
    let end = bar.end().checked_add(PAGE - 1).ok_or(Error::NotSupported)? & !(PAGE - 1);
    let mut pieces: ArrayVec<(u64, u64), 3> = ArrayVec::new();
    pieces.push((start, end));
    for &(a, b) in msix {
        let (a, b) = (start + a, start + b);
        let mut next: ArrayVec<(u64, u64), 3> = ArrayVec::new();
        for &(p, q) in &pieces {
            for piece in [(p, q.min(a)), (p.max(b), q)] {
                if piece.0 < piece.1 && next.try_push(piece).is_err() {
                    return Err(Error::NotSupported);
                }
            }
        }
        pieces = next;
    }
    for piece in pieces {
        out.mmio.try_push(piece).map_err(|_| Error::NotSupported)?;
    }
    Ok(())
}

/// What the function's BARs give the driver: I/O ports and memory.
fn resources(
    name: arrayvec::ArrayString<32>,
    func: &crate::pci::Function,
) -> Result<HwResources, Error> {
    let mut r = HwResources {
        name,
        ports: ArrayVec::new(),
        mmio: ArrayVec::new(),
        irqs: ArrayVec::new(),
    };
    for bar in &func.bars {
        match bar.kind {
            BarKind::Io => {
                if bar.base == 0 {
                    continue;
                }
                let end = bar.end();
                if end > 0x1_0000 {
                    return Err(Error::NotSupported);
                }
                r.ports
                    .try_push((bar.base as u32, end as u32))
                    .map_err(|_| Error::NotSupported)?;
            }
            BarKind::Mem32 | BarKind::Mem64 => {
                let mut kept: ArrayVec<(u64, u64), 2> = ArrayVec::new();
                if let Some(x) = func.caps.msix {
                    for region in [x.table, x.pba] {
                        if region.bar == bar.index {
                            kept.push(region.pages());
                        }
                    }
                }
                mappable(bar, &kept, &mut r)?;
            }
        }
    }
    Ok(r)
}

/// Platform CLAIM_PCI: makes the function `spec` names a hardware device.
pub fn claim<M: Machine>(s: &mut Kernel<M>, spec: &PciClaimSpec) -> Result<(), Error> {
    let name = device_name(&spec.name, spec.name_len)?;
    if !s.current().names.allows(name.as_str()) {
        return Err(Error::AccessDenied);
    }
    if s.devices.lookup(name.as_str()).is_some() {
        return Err(Error::AlreadyExists);
    }
    let f = function_of(spec);
    let claimed = s
        .devices
        .hardware()
        .any(|h| h.pci.as_ref().is_some_and(|p| p.function == f));
    if claimed {
        return Err(Error::Busy);
    }
    let mut cfg = M::pci_config(f).ok_or(Error::NotFound)?;
    let func = crate::pci::describe(&mut cfg)?;
    if func.header.class == CLASS_BRIDGE {
        return Err(Error::AccessDenied);
    }
    let res = resources(name, &func)?;
    let reserved = s.devices.reserved.as_ref().ok_or(Error::NotSupported)?;
    s.devices.claims.check_found(&res, reserved)?;
    // Decode on for what the BARs need, bus mastering off until a driver
    // attaches; put back as it was if the claim fails after this.
    let before = crate::pci::read_command(&mut cfg);
    let mut decode = Command::empty();
    for bar in &func.bars {
        decode |= match bar.kind {
            BarKind::Io => Command::IO_SPACE,
            _ => Command::MEMORY_SPACE,
        };
    }
    crate::pci::update_command(&mut cfg, |c| (c | decode) - Command::BUS_MASTER)?;
    super::msi::quiesce(&mut cfg, signal_of(&func));
    let made = register(s, f, res, &func);
    if made.is_err() {
        let _ = crate::pci::update_command(&mut cfg, |_| before);
    }
    made
}

/// How the function signals: MSI-X if it can (its table's address from
/// the kernel's sizing of the BAR that holds it), else MSI.
fn signal_of(func: &crate::pci::Function) -> Signal {
    if let Some(x) = func.caps.msix {
        let bar = func
            .bars
            .iter()
            .find(|b| b.index == x.table.bar && b.base != 0);
        if let Some(b) = bar {
            return Signal::MsiX(x, b.base + u64::from(x.table.offset));
        }
    }
    match func.caps.msi {
        Some(m) => Signal::Msi(m),
        None => Signal::None,
    }
}

/// Registers the claimed function as a hardware device, with its domain.
fn register<M: Machine>(
    s: &mut Kernel<M>,
    f: PciFunction,
    res: HwResources,
    func: &crate::pci::Function,
) -> Result<(), Error> {
    let link = M::iommu_of(f);
    // The creator pays for the record and for the most I/O page tables
    // the domain's window can need, so exports never charge anyone else.
    let tables = link.map_or(0, |_| super::dma::WINDOW_TABLE_FRAMES * PAGE);
    let pci = PciDevice {
        function: f,
        policy: func.policy(),
        bars: func.bars.clone(),
        dma: None,
        holders: 0,
        faults: FaultLog::new(),
        fault_owner: None,
        stopped: false,
        msi: Lines::new(signal_of(func)),
    };
    let id = super::hw::register(s, res, Some(pci), tables)?;
    let Some(link) = link else {
        return Ok(());
    };
    let domain = super::dma::domain_id(id, link).and_then(|did| DmaSpace::new::<M>(f, did, link));
    match (domain, pci_of(s, id)) {
        (Ok(space), Some(p)) => {
            p.dma = Some(space);
            Ok(())
        }
        (Err(e), _) => {
            super::hw::unregister(s, id);
            Err(e)
        }
        // Registered a moment ago under the same lock: always there.
        (Ok(_), None) => Err(Error::DeviceGone),
    }
}

/// The PCI state of hardware device `dev`, if it is a claimed function.
pub fn pci_of<M: Machine>(s: &mut Kernel<M>, dev: DeviceId) -> Option<&mut PciDevice> {
    match s.devices.get_mut(dev) {
        Ok(Device::Hardware(h)) => h.pci.as_mut(),
        _ => None,
    }
}

/// Sets bus mastering of `f` on or off.
fn bus_master<M: Machine>(f: PciFunction, on: bool) {
    let set = |c: Command| {
        if on {
            c | Command::BUS_MASTER
        } else {
            c - Command::BUS_MASTER
        }
    };
    let done = M::pci_config(f).map(|mut cfg| crate::pci::update_command(&mut cfg, set));
    if !matches!(done, Some(Ok(_))) {
        crate::klog!(
            M,
            "[kernel] pci {:02x}:{:02x}.{}: bus mastering did not turn {}",
            f.bus,
            f.device,
            f.function,
            if on { "on" } else { "off" }
        );
    }
}

/// A new attachment of `dev` exists: the first turns bus mastering on.
pub fn held<M: Machine>(s: &mut Kernel<M>, dev: DeviceId) {
    if let Some(p) = pci_of(s, dev) {
        p.holders += 1;
        if p.holders == 1 && !p.stopped {
            bus_master::<M>(p.function, true);
        }
    }
}

/// An attachment of `dev` is going: the last turns bus mastering off
/// (before its exports are undone, so the function stops reaching them).
pub fn let_go<M: Machine>(s: &mut Kernel<M>, dev: DeviceId) {
    if let Some(p) = pci_of(s, dev) {
        p.holders = p.holders.saturating_sub(1);
        if p.holders == 0 {
            bus_master::<M>(p.function, false);
            p.stopped = false;
        }
    }
}

/// Whether `port` is one the kernel answers for a claimed function.
pub fn is_kernel_port(port: u64) -> bool {
    port >= u64::from(HW_PORT_PCI_CONFIG)
}

/// `port_in` at or above `HW_PORT_PCI_CONFIG` on device `dev`.
pub fn port_in<M: Machine>(
    s: &mut Kernel<M>,
    dev: DeviceId,
    port: u64,
    size: u64,
) -> Result<u64, Error> {
    let p = pci_of(s, dev).ok_or(Error::InvalidArgument)?;
    if let Some(offset) = config_offset(port) {
        let at = ConfigAccess::new(offset, size)?;
        let mut cfg = M::pci_config(p.function).ok_or(Error::DeviceGone)?;
        return p.policy.read_through(&mut cfg, at).map(u64::from);
    }
    if size != 8 || !port.is_multiple_of(8) {
        return Err(Error::InvalidArgument);
    }
    let bar = |base: u32| {
        let i = port.checked_sub(u64::from(base))? / 8;
        (i < 6).then(|| p.bars.iter().find(|b| u64::from(b.index) == i))
    };
    let port32 = u32::try_from(port).map_err(|_| Error::InvalidArgument)?;
    let value = match port32 {
        HW_PORT_PCI_BAR_BASE..HW_PORT_PCI_BAR_SIZE => match bar(HW_PORT_PCI_BAR_BASE) {
            Some(b) => b.map_or(0, |b| b.base),
            None => return Err(Error::InvalidArgument),
        },
        HW_PORT_PCI_BAR_SIZE..HW_PORT_PCI_BAR_KIND => match bar(HW_PORT_PCI_BAR_SIZE) {
            Some(b) => b.map_or(0, |b| b.size),
            None => return Err(Error::InvalidArgument),
        },
        HW_PORT_PCI_BAR_KIND..HW_PORT_PCI_IOMMU => match bar(HW_PORT_PCI_BAR_KIND) {
            Some(b) => b.map_or(HW_BAR_NONE, |b| {
                let kind = match b.kind {
                    BarKind::Io => HW_BAR_IO,
                    BarKind::Mem32 => HW_BAR_MEM32,
                    BarKind::Mem64 => HW_BAR_MEM64,
                };
                kind | if b.prefetchable {
                    HW_BAR_PREFETCHABLE
                } else {
                    0
                }
            }),
            None => return Err(Error::InvalidArgument),
        },
        HW_PORT_PCI_IOMMU => u64::from(p.dma.is_some()),
        HW_PORT_PCI_ADDRESS => {
            let f = p.function;
            u64::from(f.segment) << 16
                | u64::from(f.bus) << 8
                | u64::from(f.device << 3 | f.function)
        }
        HW_PORT_DMA_FAULTS => p.faults.total(),
        _ => {
            let k = port32
                .checked_sub(HW_PORT_DMA_FAULT)
                .filter(|k| k / 16 < HW_DMA_FAULT_RECORDS)
                .ok_or(Error::InvalidArgument)?;
            match p.fault((k / 16) as usize) {
                None => 0,
                Some(r) if k % 16 == 0 => r.iova,
                Some(r) => info_word(&r),
            }
        }
    };
    Ok(value)
}

/// `port_out` at or above `HW_PORT_PCI_CONFIG` on device `dev`: only the
/// configuration window is writable.
pub fn port_out<M: Machine>(
    s: &mut Kernel<M>,
    dev: DeviceId,
    port: u64,
    size: u64,
    value: u64,
) -> Result<(), Error> {
    let p = pci_of(s, dev).ok_or(Error::InvalidArgument)?;
    let offset = config_offset(port).ok_or(Error::InvalidArgument)?;
    let at = ConfigAccess::new(offset, size)?;
    let mut cfg = M::pci_config(p.function).ok_or(Error::DeviceGone)?;
    p.policy.write_through(&mut cfg, at, value as u32)
}

/// The configuration-space offset a port names, if it is in the window.
fn config_offset(port: u64) -> Option<u64> {
    let offset = port.checked_sub(u64::from(HW_PORT_PCI_CONFIG))?;
    (offset < 4096).then_some(offset)
}

/// Reads the configuration space of `dev`'s function (for the kernel's
/// own use: tests, reports).
pub fn read_config<M: Machine>(s: &mut Kernel<M>, dev: DeviceId, offset: u16) -> Option<u32> {
    let f = pci_of(s, dev)?.function;
    M::pci_config(f).map(|mut c| c.read32(offset & !3))
}

/// `irq_map` of the fault line (`HW_LINE_DMA_FAULT`) of device `dev`.
pub fn map_fault_line<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    dev: DeviceId,
    vector: u32,
) -> Result<(), Error> {
    let pid = s.current_pid();
    let p = pci_of(s, dev).ok_or(Error::InvalidArgument)?;
    if p.fault_owner.is_some_and(|(o, oh, _)| (o, oh) != (pid, h)) {
        return Err(Error::Busy);
    }
    p.fault_owner = Some((pid, h, vector));
    Ok(())
}

/// Attachment `h` of `pid` is going: it hears no more faults.
pub fn forget_fault_owner<M: Machine>(s: &mut Kernel<M>, dev: DeviceId, pid: Pid, h: u64) {
    if let Some(p) = pci_of(s, dev)
        && p.fault_owner.is_some_and(|(o, oh, _)| (o, oh) == (pid, h))
    {
        p.fault_owner = None;
    }
}

/// The I/O MMU of `segment` reported `record`: kept on the function that
/// made the request, whose driver hears of it; a function that keeps
/// faulting is stopped (bus mastering off). A function no one claimed
/// has no business making requests (firmware may have left it running):
/// its first fault is logged and its bus mastering turned off at once, so
/// that it cannot flood the log; a claim turns it on again with the first
/// holder.
pub fn dma_fault<M: Machine>(s: &mut Kernel<M>, segment: u16, record: FaultRecord) {
    let (bus, devfn) = record.source;
    let f = PciFunction::new(segment, bus, devfn >> 3, devfn & 7);
    let found = s
        .devices
        .hardware_ids()
        .find(|&(_, h)| h.pci.as_ref().is_some_and(|p| p.function == f))
        .map(|(id, _)| id);
    let Some(dev) = found else {
        let stopped = M::pci_config(f)
            .map(|mut cfg| crate::pci::update_command(&mut cfg, |c| c - Command::BUS_MASTER));
        crate::klog!(
            M,
            "[kernel] DMA fault from unclaimed pci {:02x}:{:02x}.{} at {:#x}: {}{}",
            bus,
            devfn >> 3,
            devfn & 7,
            record.iova,
            crate::iommu::fault::reason_text(record.reason),
            if matches!(stopped, Some(Ok(_))) {
                "; bus mastering off until it is claimed"
            } else {
                ""
            }
        );
        return;
    };
    let now = M::ticks();
    let Some(p) = pci_of(s, dev) else {
        return;
    };
    let stop = p.faults.record(now, record) == Verdict::Stop && !p.stopped;
    let owner = p.fault_owner;
    if stop {
        p.stopped = true;
        bus_master::<M>(f, false);
        let name = s.devices.name_of(dev).unwrap_or("?");
        crate::klog!(
            M,
            "[kernel] {name} keeps faulting: bus mastering off until its drivers let go"
        );
    }
    if let Some((pid, _, vector)) = owner {
        s.raise(pid, vector);
    }
}
