//! Hardware devices: a slice of the machine handed to a driver (see
//! `abi::hw`). The kernel performs each port access after checking it lies
//! in the device's ranges, maps device memory only from its MMIO ranges,
//! routes its interrupt lines through the I/O APIC to the vector the
//! driver chose, and pins (wires) pages exported for DMA.
//!
//! Rules: one owner per interrupt line; a level-triggered line stays masked
//! after each interrupt until the owner acknowledges it; a page a device
//! may still write is never reused: pages still exported when their owner
//! exits go into the device's quarantine, until the platform holder (who
//! has reset the hardware) releases them.

extern crate alloc;

use super::dma::{self, Fate};
use super::{Attachment, Device, DeviceId};
use crate::charged::ChargedFrames;
use crate::frame::Frame;
use crate::hwclaims::HwResources;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::Pid;
use crate::syscall::decode::Vector;
use crate::vm::Vm;
use abi::hw::{HW_IRQ_ACTIVE_LOW, HW_IRQ_LEVEL};
use abi::{Error, HwDeviceSpec};
use alloc::vec::Vec;

pub struct HwDevice {
    pub res: HwResources,
    /// Frames a device may still be writing (their owner exited).
    pub quarantine: Vec<Frame>,
    /// What the kernel keeps of a claimed PCI function.
    pub pci: Option<super::pci::PciDevice>,
}

/// Who takes an interrupt line.
#[derive(Clone, Copy, Debug)]
pub struct IrqOwner {
    pub pid: Pid,
    pub handle: u64,
    pub vector: u32,
    pub level: bool,
    /// The CPU the line is routed to, and the one that took its latest
    /// interrupt (`irqcpu::NONE` until one comes).
    pub cpu: u8,
    pub last_cpu: u8,
}

fn hw<M: Machine>(s: &mut Kernel<M>, dev: DeviceId) -> Result<&mut HwDevice, Error> {
    match s.devices.get_mut(dev)? {
        Device::Hardware(h) => Ok(h),
        _ => Err(Error::NotSupported),
    }
}

/// Platform CREATE: checks `spec`, claims its resources, registers it.
pub fn create<M: Machine>(s: &mut Kernel<M>, spec: &HwDeviceSpec) -> Result<(), Error> {
    let reserved = s.devices.reserved.as_ref().ok_or(Error::NotSupported)?;
    let res = s.devices.claims.check(spec, reserved)?;
    let (com_start, com_end) = M::SERIAL_PORTS;
    let serial = res.ports.iter().any(|&(a, b)| a < com_end && com_start < b);
    let name = res.name;
    if !s.current().names.allows(name.as_str()) {
        return Err(Error::AccessDenied);
    }
    if s.devices.lookup(name.as_str()).is_some() {
        return Err(Error::AlreadyExists);
    }
    register(s, res, None, 0)?;
    if serial {
        // A driver owns the UART now: the kernel keeps logging to its ring
        // only (the console server drains it through klog).
        M::stop_serial();
    }
    Ok(())
}

/// Registers a hardware device with checked resources `res` (its name
/// among them) and, for a claimed PCI function, its state: the creator
/// is charged for the record plus `extra_bytes`, the resources are
/// claimed. On any failure nothing stays registered, claimed or charged.
pub(super) fn register<M: Machine>(
    s: &mut Kernel<M>,
    res: HwResources,
    pci: Option<super::pci::PciDevice>,
    extra_bytes: u64,
) -> Result<DeviceId, Error> {
    let reserve = s.current().reserve;
    let bytes = super::DEVICE_BYTES + core::mem::size_of::<HwDevice>() as u64 + extra_bytes;
    let paid = super::user::charge(s, reserve, bytes)?;
    let name = res.name;
    let Ok(record) = crate::try_box(HwDevice {
        res: res.clone(),
        quarantine: Vec::new(),
        pci,
    }) else {
        super::user::refund(s, paid);
        return Err(Error::OutOfMemory);
    };
    let id = match s
        .devices
        .add(name.as_str(), Device::Hardware(record), Some(paid))
    {
        Ok(id) => id,
        Err((e, _)) => {
            super::user::refund(s, paid);
            return Err(e);
        }
    };
    if let Err(e) = s.devices.claims.add(id, res) {
        unregister(s, id);
        return Err(e);
    }
    Ok(id)
}

/// Undoes `register` (a claim that failed after it).
pub(super) fn unregister<M: Machine>(s: &mut Kernel<M>, id: DeviceId) {
    s.devices.claims.remove(id);
    if let Some((_, Some(paid))) = s.devices.remove(id) {
        super::user::refund(s, paid);
    }
}

/// Platform RELEASE_QUARANTINE for the device called `name`.
pub fn release_quarantine<M: Machine>(s: &mut Kernel<M>, name: &str) -> Result<(), Error> {
    if !s.current().names.allows(name) {
        return Err(Error::AccessDenied);
    }
    let id = s.devices.lookup(name).ok_or(Error::NotFound)?;
    let h = hw(s, id)?;
    super::dma::release_iovas(h);
    for frame in core::mem::take(&mut h.quarantine) {
        let _ = M::release_frame(frame);
    }
    Ok(())
}

/// `port_in` on a hardware device: only inside its port ranges.
pub fn port_in<M: Machine>(
    s: &mut Kernel<M>,
    dev: DeviceId,
    port: u64,
    size: u64,
) -> Result<u64, Error> {
    if super::irqcpu::is_port(port) {
        return super::irqcpu::port_in(s, dev, port, size);
    }
    if super::pci::is_kernel_port(port) && hw(s, dev)?.pci.is_some() {
        return super::pci::port_in(s, dev, port, size);
    }
    // Only a port in a range the platform holder gave this device, which
    // the kernel does not drive itself.
    check_port(hw(s, dev)?, port, size)?;
    Ok(M::port_read(port as u16, size))
}

/// `port_out` on a hardware device.
pub fn port_out<M: Machine>(
    s: &mut Kernel<M>,
    dev: DeviceId,
    port: u64,
    size: u64,
    value: u64,
) -> Result<(), Error> {
    if super::pci::is_kernel_port(port) && hw(s, dev)?.pci.is_some() {
        return super::pci::port_out(s, dev, port, size, value);
    }
    check_port(hw(s, dev)?, port, size)?;
    M::port_write(port as u16, size, value);
    Ok(())
}

fn check_port(h: &HwDevice, port: u64, size: u64) -> Result<(), Error> {
    if !matches!(size, 1 | 2 | 4) || !port.is_multiple_of(size) {
        return Err(Error::InvalidArgument);
    }
    if !h.res.has_ports(port, size) {
        return Err(Error::AccessDenied);
    }
    Ok(())
}

pub(super) fn vm_of<M: Machine>(
    s: &mut Kernel<M>,
    pid: Pid,
    f: impl FnOnce(&mut Vm<'_, M::Space, ChargedFrames<'_, M>>) -> Result<u64, Error>,
) -> Result<u64, Error> {
    let (p, r) = s.proc_and_reserve(pid).ok_or(Error::BadAddress)?;
    let space = p.space.as_mut().ok_or(Error::BadAddress)?;
    let mut frames = ChargedFrames::<M>::new(r, &mut p.usage);
    let mut vm = Vm {
        pt: space,
        frames: &mut frames,
        codec: M::codec(),
    };
    f(&mut vm)
}

/// Charges `grow` bytes to `pid` and makes the block of one of attachment
/// `h`'s lists (`make`), crediting the charge back if that fails.
pub fn reserve_list<M: Machine>(
    s: &mut Kernel<M>,
    pid: Pid,
    h: u64,
    grow: u64,
    make: impl FnOnce(&mut Attachment) -> Result<(), Error>,
) -> Result<(), Error> {
    super::calls::charge_heap(s, pid, grow)?;
    let made = match s.get_mut(pid).map(|p| p.bus.get_mut(h)) {
        Some(Ok(e)) => make(&mut e.value),
        _ => Err(Error::BadHandle),
    };
    if made.is_err() {
        super::calls::credit_heap(s, pid, grow);
    }
    made
}

/// `irq_map(line, vector)`: routes the device's `line` to the caller.
pub fn irq_map<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    dev: DeviceId,
    line: u64,
    vector: Vector,
) -> Result<(), Error> {
    if hw(s, dev)?.pci.is_some() {
        if line == u64::from(abi::hw::HW_LINE_DMA_FAULT) {
            return super::pci::map_fault_line(s, h, dev, vector.get());
        }
        return super::msi::map(s, h, dev, line, vector.get());
    }
    let &(gsi, flags) = hw(s, dev)?
        .res
        .irqs
        .get(line as usize)
        .ok_or(Error::InvalidArgument)?;
    let pid = s.current_pid();
    let owner = &mut s.devices.irq_owners[gsi as usize];
    if owner.is_some_and(|o| (o.pid, o.handle) != (pid, h)) {
        return Err(Error::Busy);
    }
    let level = flags & HW_IRQ_LEVEL != 0;
    let cpu = super::irqcpu::choose(s, pid);
    s.devices.irq_owners[gsi as usize] = Some(IrqOwner {
        pid,
        handle: h,
        vector: vector.get(),
        level,
        cpu: cpu as u8,
        last_cpu: super::irqcpu::NONE,
    });
    M::irq_route(gsi, level, flags & HW_IRQ_ACTIVE_LOW != 0, cpu);
    Ok(())
}

/// `irq_ack(line)`: unmasks a level-triggered line again.
pub fn irq_ack<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    dev: DeviceId,
    line: u64,
) -> Result<(), Error> {
    if hw(s, dev)?.pci.is_some() {
        if line == u64::from(abi::hw::HW_LINE_DMA_FAULT) {
            return Ok(());
        }
        return super::msi::ack(s, h, dev, line);
    }
    let &(gsi, _) = hw(s, dev)?
        .res
        .irqs
        .get(line as usize)
        .ok_or(Error::InvalidArgument)?;
    let pid = s.current_pid();
    match s.devices.irq_owners[gsi as usize] {
        Some(o) if (o.pid, o.handle) == (pid, h) => {
            if o.level {
                M::irq_unmask(gsi);
            }
            Ok(())
        }
        _ => Err(Error::NotFound),
    }
}

/// A routed line fired: mask it if level-triggered, raise its owner's
/// vector.
pub fn interrupt<M: Machine>(s: &mut Kernel<M>, gsi: u32) {
    let Some(o) = s.devices.irq_owners.get(gsi as usize).copied().flatten() else {
        M::irq_mask(gsi);
        return;
    };
    if o.level {
        M::irq_mask(gsi);
    }
    if let Some(Some(owner)) = s.devices.irq_owners.get_mut(gsi as usize) {
        owner.last_cpu = M::cpu_index() as u8;
    }
    s.raise(o.pid, o.vector);
}

/// `iomap(va, phys, len)`: maps device memory from the device's ranges.
pub fn iomap<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    dev: DeviceId,
    va: u64,
    phys: u64,
    len: u64,
) -> Result<(), Error> {
    if !hw(s, dev)?.res.has_mmio(phys, len) {
        return Err(Error::AccessDenied);
    }
    let grow = match &s.current().bus.get(h)?.value {
        Attachment::Hardware { iomaps, .. } if iomaps.is_full() => return Err(Error::LimitReached),
        Attachment::Hardware { iomaps, .. } => iomaps.growth_bytes() as u64,
        _ => return Err(Error::NotSupported),
    };
    let pid = s.current_pid();
    reserve_list(s, pid, h, grow, |a| match a {
        Attachment::Hardware { iomaps, .. } => iomaps.reserve(),
        _ => Err(Error::NotSupported),
    })?;
    vm_of(s, pid, |vm| vm.map_io(va, phys, len).map(|()| 0))?;
    if let Attachment::Hardware { iomaps, .. } = &mut s.current().bus.get_mut(h)?.value {
        let _ = iomaps.try_push((va, len));
    }
    Ok(())
}

/// `iounmap(va, len)`: removes one mapping made through `h`, named
/// exactly as `iomap` made it.
pub fn iounmap<M: Machine>(s: &mut Kernel<M>, h: u64, va: u64, len: u64) -> Result<(), Error> {
    let pid = s.current_pid();
    match &s.current().bus.get(h)?.value {
        Attachment::Hardware { iomaps, .. } if iomaps.contains(&(va, len)) => {}
        Attachment::Hardware { .. } => return Err(Error::NotFound),
        _ => return Err(Error::NotSupported),
    }
    vm_of(s, pid, |vm| vm.unmap_io(va, len))?;
    if let Attachment::Hardware { iomaps, .. } = &mut s.current().bus.get_mut(h)?.value {
        iomaps.retain(|m| *m != (va, len));
    }
    Ok(())
}

/// Exec replaces the address space under a kept attachment: its mappings
/// go with the old space, and its exports are undone into quarantine (the
/// device may still write them). Its interrupt lines stay.
pub fn forget_address_space<M: Machine>(s: &mut Kernel<M>, pid: Pid, h: u64) {
    // The lists are taken out of the slot (its memory is credited below).
    let Some(Attachment::Hardware {
        dev,
        exports,
        iomaps,
    }) = s
        .get_mut(pid)
        .and_then(|p| p.bus.get_mut(h).ok())
        .map(|e| &mut e.value)
    else {
        return;
    };
    let dev = *dev;
    let mut exports = core::mem::take(exports);
    let mut iomaps = core::mem::take(iomaps);
    for e in exports.iter() {
        dma::undo_export(s, pid, dev, e, Fate::Quarantine { exiting: true });
    }
    let freed = exports.clear() + iomaps.clear();
    super::calls::credit_heap(s, pid, freed as u64);
}

/// Keeps `frame` out of circulation until the device's quarantine is
/// released (an extra reference holds it).
pub(super) fn quarantine<M: Machine>(s: &mut Kernel<M>, dev: DeviceId, frame: Frame) {
    M::add_ref(frame);
    let kept = hw(s, dev).is_ok_and(|h| {
        let room = h.quarantine.try_reserve(1).is_ok();
        if room {
            h.quarantine.push(frame);
        }
        room
    });
    if !kept {
        crate::klog!(
            M,
            "[kernel] frame {:#x} kept out of use for good (quarantine full)",
            frame.addr()
        );
    }
}

/// Undoes what attachment `h` of `pid` holds on a hardware device: its
/// interrupt lines are masked and freed, its device mappings go, and its
/// exports are unwired, or, when the process is exiting, their frames go
/// into the device's quarantine (the device may still be writing them).
pub fn release<M: Machine>(s: &mut Kernel<M>, pid: Pid, h: u64, att: &Attachment, exiting: bool) {
    let Attachment::Hardware {
        dev,
        exports,
        iomaps,
    } = att
    else {
        return;
    };
    for gsi in 0..s.devices.irq_owners.len() {
        if s.devices.irq_owners[gsi].is_some_and(|o| (o.pid, o.handle) == (pid, h)) {
            s.devices.irq_owners[gsi] = None;
            M::irq_mask(gsi as u32);
        }
    }
    // Bus mastering off first (if this was the last holder), so the
    // function stops reaching what is undone below.
    super::pci::forget_fault_owner(s, *dev, pid, h);
    super::msi::release(s, *dev, pid, h);
    super::pci::let_go(s, *dev);
    for &(va, len) in iomaps.iter() {
        let _ = vm_of(s, pid, |vm| vm.unmap_io(va, len));
    }
    for e in exports.iter() {
        dma::undo_export(s, pid, *dev, e, Fate::Quarantine { exiting });
    }
}
