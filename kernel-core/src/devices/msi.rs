//! Message-signalled interrupts of claimed PCI functions: line `i` of a
//! function is its MSI-X table entry `i` (or, for a function with only
//! MSI, its one message). `irq_map(h, line, vector)` gives the line one of
//! the kernel's MSI vectors, has the machine make the message for it
//! (through the interrupt-remapping table when there is one) and
//! programs the function; an interrupt on that vector raises `vector` on
//! the process that mapped the line.
//!
//! Rules: the kernel alone writes message addresses and data (the MSI-X
//! table pages are never the driver's to map, and the MSI and MSI-X
//! capabilities are not writable through the configuration window);
//! one owner per line; a line's message is made before the device is
//! told about it and withdrawn only after the device's entry is masked;
//! MSI vectors are a fixed pool (`MSI_VECTORS`), so a machine-wide count
//! of routed lines can run out: `LimitReached`, never a panic. Messages
//! are edge-triggered, so nothing is masked between an interrupt and
//! `irq_ack` (which is accepted and does nothing).

use super::DeviceId;
use super::pci::pci_of;
use crate::kernel::Kernel;
use crate::machine::{Machine, MsiRoute};
use crate::pci::{Command, ConfigSpace, Msi, MsiX};
use crate::process::Pid;
use abi::Error;

/// Lines one function offers at most (more MSI-X entries are not used).
pub const MSI_LINES: usize = 32;
/// Kernel vectors for message-signalled interrupts, machine-wide.
pub const MSI_VECTORS: usize = 128;

/// MSI-X message control: enable and function mask.
const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_FUNCTION_MASK: u16 = 1 << 14;
/// MSI message control: enable, and the multiple-message-enable field.
const MSI_ENABLE: u16 = 1;
const MSI_MME: u16 = 0b111 << 4;
/// An MSI-X entry's vector-control word: masked.
const ENTRY_MASKED: u32 = 1;

/// How a function signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    None,
    Msi(Msi),
    /// The table's physical address, with the capability.
    MsiX(MsiX, u64),
}

/// A routed line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    pub pid: Pid,
    pub handle: u64,
    pub vector: u32,
    /// Its index in the kernel's pool of MSI vectors.
    pub slot: u8,
    pub route: MsiRoute,
    /// The CPU the message is delivered to, and the one that took the
    /// latest (`irqcpu::NONE` until one comes).
    pub cpu: u8,
    pub last_cpu: u8,
}

/// The lines of one function.
#[derive(Clone, Debug)]
pub struct Lines {
    pub signal: Signal,
    pub lines: [Option<Line>; MSI_LINES],
}

impl Lines {
    /// The lines of a function signalling with `signal`.
    pub fn new(signal: Signal) -> Lines {
        Lines {
            signal,
            lines: [None; MSI_LINES],
        }
    }

    /// How many lines the function has.
    pub fn count(&self) -> u32 {
        match self.signal {
            Signal::None => 0,
            Signal::Msi(_) => 1,
            Signal::MsiX(x, _) => u32::from(x.table_size).min(MSI_LINES as u32),
        }
    }
}

/// What a claim leaves: both kinds of message off (a previous driver's,
/// or the firmware's, must not reach anyone).
pub fn quiesce<C: ConfigSpace>(cfg: &mut C, signal: Signal) {
    match signal {
        Signal::None => {}
        Signal::Msi(m) => {
            let c = cfg.read16(m.control());
            cfg.write16(m.control(), c & !MSI_ENABLE);
        }
        Signal::MsiX(x, _) => {
            let c = cfg.read16(x.control());
            cfg.write16(x.control(), c & !MSIX_ENABLE);
        }
    }
}

/// `irq_map(h, line, vector)` on a claimed function.
pub fn map<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    dev: DeviceId,
    line: u64,
    vector: u32,
) -> Result<(), Error> {
    let pid = s.current_pid();
    let p = pci_of(s, dev).ok_or(Error::NotSupported)?;
    if line >= u64::from(p.msi.count()) {
        return Err(Error::InvalidArgument);
    }
    let i = line as usize;
    let cpu = super::irqcpu::choose(s, pid);
    let p = pci_of(s, dev).ok_or(Error::NotSupported)?;
    if let Some(l) = &mut p.msi.lines[i] {
        if (l.pid, l.handle) != (pid, h) {
            return Err(Error::Busy);
        }
        l.vector = vector;
        if usize::from(l.cpu) == cpu {
            return Ok(());
        }
        // Its owner's CPUs changed: the message is made again for the
        // new CPU (masked, withdrawn, then routed as a new line).
        unmap_line(s, dev, i);
    }
    let Some(p) = pci_of(s, dev) else {
        return Err(Error::DeviceGone);
    };
    let f = p.function;
    let signal = p.msi.signal;
    let slot = s
        .devices
        .msi_slots
        .iter()
        .position(Option::is_none)
        .ok_or(Error::LimitReached)?;
    let route = M::msi_route(f, slot as u8, cpu)?;
    s.devices.msi_slots[slot] = Some((dev, i as u8));
    let Some(p) = pci_of(s, dev) else {
        return Err(Error::DeviceGone);
    };
    p.msi.lines[i] = Some(Line {
        pid,
        handle: h,
        vector,
        slot: slot as u8,
        route,
        cpu: cpu as u8,
        last_cpu: super::irqcpu::NONE,
    });
    let mut cfg = M::pci_config(f).ok_or(Error::DeviceGone)?;
    match signal {
        Signal::None => {}
        Signal::Msi(m) => {
            cfg.write32(m.address(), route.address as u32);
            if let Some(upper) = m.upper_address() {
                cfg.write32(upper, (route.address >> 32) as u32);
            }
            cfg.write16(m.data(), route.data as u16);
            let c = cfg.read16(m.control());
            cfg.write16(m.control(), (c & !MSI_MME) | MSI_ENABLE);
        }
        Signal::MsiX(x, table) => {
            let entry = table + 16 * line;
            M::mmio_write32(entry + 12, ENTRY_MASKED);
            M::mmio_write32(entry, route.address as u32);
            M::mmio_write32(entry + 4, (route.address >> 32) as u32);
            M::mmio_write32(entry + 8, route.data);
            M::mmio_write32(entry + 12, 0);
            let c = cfg.read16(x.control());
            cfg.write16(x.control(), (c | MSIX_ENABLE) & !MSIX_FUNCTION_MASK);
        }
    }
    // Messages instead of the legacy pin.
    let _ = crate::pci::update_command(&mut cfg, |c| c | Command::INTX_DISABLE);
    Ok(())
}

/// Masks line `i` of `dev` and gives its vector back.
fn unmap_line<M: Machine>(s: &mut Kernel<M>, dev: DeviceId, i: usize) {
    let Some(p) = pci_of(s, dev) else {
        return;
    };
    let Some(line) = p.msi.lines[i].take() else {
        return;
    };
    let f = p.function;
    let signal = p.msi.signal;
    let others = p.msi.lines.iter().any(Option::is_some);
    if let Some(mut cfg) = M::pci_config(f) {
        match signal {
            Signal::None => {}
            Signal::Msi(m) => {
                let c = cfg.read16(m.control());
                cfg.write16(m.control(), c & !MSI_ENABLE);
            }
            Signal::MsiX(x, table) => {
                M::mmio_write32(table + 16 * i as u64 + 12, ENTRY_MASKED);
                if !others {
                    let c = cfg.read16(x.control());
                    cfg.write16(x.control(), c & !MSIX_ENABLE);
                }
            }
        }
    }
    // Only now, with the device told to stop, may the message go.
    M::msi_unroute(f, &line.route);
    s.devices.msi_slots[usize::from(line.slot)] = None;
}

/// Attachment `h` of `pid` is going: its lines are masked and freed.
pub fn release<M: Machine>(s: &mut Kernel<M>, dev: DeviceId, pid: Pid, h: u64) {
    let owned: arrayvec::ArrayVec<usize, MSI_LINES> = match pci_of(s, dev) {
        Some(p) => (0..MSI_LINES)
            .filter(|&i| p.msi.lines[i].is_some_and(|l| (l.pid, l.handle) == (pid, h)))
            .collect(),
        None => return,
    };
    for i in owned {
        unmap_line(s, dev, i);
    }
}

/// `irq_ack(h, line)`: messages need no unmasking; the line must be the
/// caller's.
pub fn ack<M: Machine>(s: &mut Kernel<M>, h: u64, dev: DeviceId, line: u64) -> Result<(), Error> {
    let pid = s.current_pid();
    let p = pci_of(s, dev).ok_or(Error::NotSupported)?;
    match p.msi.lines.get(line as usize) {
        Some(Some(l)) if (l.pid, l.handle) == (pid, h) => Ok(()),
        Some(_) => Err(Error::NotFound),
        None => Err(Error::InvalidArgument),
    }
}

/// The kernel's MSI vector `slot` fired: raise its line's vector on the
/// owner.
pub fn interrupt<M: Machine>(s: &mut Kernel<M>, slot: usize) {
    let Some(Some((dev, i))) = s.devices.msi_slots.get(slot).copied() else {
        return;
    };
    let owner = pci_of(s, dev).and_then(|p| p.msi.lines[usize::from(i)].as_mut());
    if let Some(l) = owner {
        l.last_cpu = M::cpu_index() as u8;
        let (pid, vector) = (l.pid, l.vector);
        s.raise(pid, vector);
    }
}
