//! Which CPU a hardware device's interrupt lines go to, and the ports that
//! tell a driver (`HW_PORT_IRQ_CPU`, `HW_PORT_IRQ_LAST_CPU`).
//!
//! Rules: a line is routed when it is mapped, to the lowest online CPU its
//! owner may run on (CPU 0 for an owner free to run anywhere), so a driver
//! bound to a CPU takes its interrupts there and is woken without an IPI;
//! the driver chooses by binding itself before `irq_map`, and mapping the
//! line again moves it. The CPU that took each line's latest interrupt is
//! recorded, so the choice is observable, not just the intent.

use super::DeviceId;
use super::pci::pci_of;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::Pid;
use abi::Error;
use abi::hw::{HW_IRQ_NO_CPU, HW_PORT_IRQ_CPU, HW_PORT_IRQ_LAST_CPU};

/// A line's CPU before any interrupt came (as stored in a byte).
pub const NONE: u8 = u8::MAX;

/// Lines the ports cover (lines `0..LINES`, 8 bytes each).
const LINES: u64 = 64;

/// The CPU `pid`'s lines are routed to.
pub fn choose<M: Machine>(s: &mut Kernel<M>, pid: Pid) -> usize {
    let affinity = s.get_mut(pid).map_or(0, |p| p.affinity);
    let allowed = s.effective_affinity(affinity);
    if allowed == 0 {
        0
    } else {
        allowed.trailing_zeros() as usize
    }
}

/// Whether `port` is one of this module's.
pub fn is_port(port: u64) -> bool {
    let first = u64::from(HW_PORT_IRQ_CPU);
    (first..u64::from(HW_PORT_IRQ_LAST_CPU) + 8 * LINES).contains(&port)
}

/// `port_in` on one of this module's ports of hardware device `dev`.
pub fn port_in<M: Machine>(
    s: &mut Kernel<M>,
    dev: DeviceId,
    port: u64,
    size: u64,
) -> Result<u64, Error> {
    if size != 8 || !port.is_multiple_of(8) {
        return Err(Error::InvalidArgument);
    }
    let (base, last) = if port >= u64::from(HW_PORT_IRQ_LAST_CPU) {
        (u64::from(HW_PORT_IRQ_LAST_CPU), true)
    } else {
        (u64::from(HW_PORT_IRQ_CPU), false)
    };
    let line = (port - base) / 8;
    let cpus = line_cpus(s, dev, line)?;
    let cpu = match cpus {
        Some((routed, taken)) => {
            if last {
                taken
            } else {
                routed
            }
        }
        None => NONE,
    };
    Ok(if cpu == NONE {
        HW_IRQ_NO_CPU
    } else {
        u64::from(cpu)
    })
}

/// Line `line` of `dev`, if mapped: (routed CPU, CPU of the latest
/// interrupt); `InvalidArgument` for a line the device does not have.
fn line_cpus<M: Machine>(
    s: &mut Kernel<M>,
    dev: DeviceId,
    line: u64,
) -> Result<Option<(u8, u8)>, Error> {
    let hw = match s.devices.get_mut(dev)? {
        super::Device::Hardware(h) => h,
        _ => return Err(Error::NotSupported),
    };
    if hw.pci.is_some() {
        let p = pci_of(s, dev).ok_or(Error::NotSupported)?;
        if line >= u64::from(p.msi.count()) {
            return Err(Error::InvalidArgument);
        }
        return Ok(p.msi.lines[line as usize].map(|l| (l.cpu, l.last_cpu)));
    }
    let &(gsi, _) = hw
        .res
        .irqs
        .get(line as usize)
        .ok_or(Error::InvalidArgument)?;
    Ok(s.devices
        .irq_owners
        .get(gsi as usize)
        .copied()
        .flatten()
        .map(|o| (o.cpu, o.last_cpu)))
}
