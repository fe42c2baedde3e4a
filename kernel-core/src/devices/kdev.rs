//! The kernel devices' ports (maps in `abi::kdev`): the registry (names
//! and their listing), bootfs (the boot modules, read by DMA) and klog
//! (the kernel log, read by DMA, with an IRQ when it grows).
//!
//! Rules: every port, size and selected index is checked; bootfs copies
//! only into memory the caller exported to its bootfs handle, and only
//! from the module's own bytes.

use super::{Attachment, Device, Devices, KernelDevice};
use crate::kernel::Kernel;
use crate::machine::Machine;
use abi::Error;
use abi::bus::{DEVICE_KIND_HARDWARE, DEVICE_KIND_KERNEL, DEVICE_KIND_USER};
use abi::kdev::*;

/// A registry attachment's `state[0]` when its select found nothing.
const NO_SELECTION: u64 = u64::MAX;

fn require_size(size: u64, allowed: &[u64]) -> Result<(), Error> {
    if allowed.contains(&size) {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}

/// `port_in` on a kernel device.
pub fn port_in<M: Machine>(
    devices: &Devices,
    kind: KernelDevice,
    state: &[u64; 4],
    port: u64,
    size: u64,
) -> Result<u64, Error> {
    require_size(size, &[4, 8])?;
    let port = u32::try_from(port).map_err(|_| Error::InvalidArgument)?;
    match kind {
        KernelDevice::Registry => {
            if port == REGISTRY_PORT_COUNT {
                return Ok(devices.count() as u64);
            }
            // The device the last select found (resolved then, so every
            // read describes the same one, or says it went away).
            let id = state[0];
            if id == NO_SELECTION {
                return Err(Error::NotFound);
            }
            let dev = devices.get(id)?;
            match port {
                p if (REGISTRY_PORT_NAME..REGISTRY_PORT_NAME + 8).contains(&p) => {
                    let name = devices.name_of(id).ok_or(Error::DeviceGone)?;
                    let at = 4 * (p - REGISTRY_PORT_NAME) as usize;
                    let mut word = [0u8; 4];
                    for (i, b) in name.as_bytes().iter().skip(at).take(4).enumerate() {
                        word[i] = *b;
                    }
                    Ok(u32::from_le_bytes(word) as u64)
                }
                REGISTRY_PORT_KIND => Ok(match dev {
                    Device::Kernel(_) => DEVICE_KIND_KERNEL,
                    Device::User(_) => DEVICE_KIND_USER,
                    Device::Hardware(_) => DEVICE_KIND_HARDWARE,
                } as u64),
                REGISTRY_PORT_CLIENTS => Ok(match dev {
                    Device::User(u) => u.client_count() as u64,
                    _ => 0,
                }),
                REGISTRY_PORT_SERVER => Ok(match dev {
                    Device::User(u) => u.server as u64,
                    _ => 0,
                }),
                REGISTRY_PORT_POSITION => Ok(state[1]),
                _ => Err(Error::InvalidArgument),
            }
        }
        KernelDevice::Mempool | KernelDevice::Proc => Err(Error::NotSupported),
        KernelDevice::Platform => match port {
            PLATFORM_PORT_QUARANTINED => {
                Ok(devices.hardware().map(|h| h.quarantine.len() as u64).sum())
            }
            _ => Err(Error::InvalidArgument),
        },
        KernelDevice::Klog => match port {
            KLOG_PORT_WRITTEN => Ok(M::log_written()),
            KLOG_PORT_DONE => Ok(state[2]),
            KLOG_PORT_LOST => Ok(state[3]),
            KLOG_PORT_POS_NOW => Ok(state[0]),
            KLOG_PORT_MARK => {
                require_size(size, &[8])?;
                Ok(devices.klog_mark)
            }
            _ => Err(Error::InvalidArgument),
        },
        KernelDevice::Bootfs => {
            if port == BOOTFS_PORT_COUNT {
                return Ok(M::modules().len() as u64);
            }
            if port == BOOTFS_PORT_DONE {
                return Ok(state[3]);
            }
            let m = M::modules().get(state[0] as usize).ok_or(Error::NotFound)?;
            match port {
                BOOTFS_PORT_SIZE => Ok(m.len),
                BOOTFS_PORT_CMDLINE_LEN => Ok(m.cmdline.len() as u64),
                _ => Err(Error::InvalidArgument),
            }
        }
    }
}

/// `port_out` on a kernel device; `state` and `exports` are the caller's
/// attachment's, `space` its memory.
pub fn port_out<M: Machine>(
    devices: &mut Devices,
    att: &mut Attachment,
    space: &mut M::Space,
    port: u64,
    size: u64,
    value: u64,
) -> Result<(), Error> {
    let Attachment::Kernel {
        kind,
        state,
        exports,
        ..
    } = att
    else {
        return Err(Error::NotSupported);
    };
    let port = u32::try_from(port).map_err(|_| Error::InvalidArgument)?;
    match (*kind, port) {
        (KernelDevice::Registry, REGISTRY_PORT_SELECT) => {
            require_size(size, &[4, 8])?;
            match devices.at_or_after(value) {
                Some((position, _, id)) => {
                    state[0] = id;
                    state[1] = position;
                }
                None => state[0] = NO_SELECTION,
            }
            Ok(())
        }
        (KernelDevice::Bootfs, BOOTFS_PORT_SELECT) => {
            require_size(size, &[4, 8])?;
            state[0] = value;
            Ok(())
        }
        (KernelDevice::Klog, KLOG_PORT_POS) => {
            require_size(size, &[8])?;
            state[0] = value;
            Ok(())
        }
        (KernelDevice::Klog, KLOG_PORT_MARK) => {
            require_size(size, &[8])?;
            devices.klog_mark = value;
            Ok(())
        }
        (KernelDevice::Klog, KLOG_PORT_LEN) => {
            require_size(size, &[4, 8])?;
            state[1] = value;
            Ok(())
        }
        (KernelDevice::Klog, KLOG_PORT_READ) => {
            require_size(size, &[8])?;
            let want = state[1].min(M::LOG_RING_SIZE as u64);
            let end = value.checked_add(want).ok_or(Error::InvalidArgument)?;
            if !exports
                .iter()
                .any(|e| value >= e.iova && end <= e.iova + e.len)
            {
                return Err(Error::AccessDenied);
            }
            let (mut pos, mut done, mut lost) = (state[0], 0u64, 0u64);
            let mut chunk = [0u8; 1024];
            while done < want {
                let n = ((want - done) as usize).min(chunk.len());
                let (copied, next, skipped) = M::log_read(pos, &mut chunk[..n]);
                if copied == 0 {
                    break;
                }
                crate::usercopy::copy_to_user::<M>(space, value + done, &chunk[..copied])?;
                lost += skipped;
                done += copied as u64;
                pos = next;
            }
            state[0] = pos;
            state[2] = done;
            state[3] = lost;
            Ok(())
        }
        (KernelDevice::Bootfs, BOOTFS_PORT_OFFSET) => {
            require_size(size, &[4, 8])?;
            state[1] = value;
            Ok(())
        }
        (KernelDevice::Bootfs, BOOTFS_PORT_LEN) => {
            require_size(size, &[4, 8])?;
            state[2] = value;
            Ok(())
        }
        (KernelDevice::Bootfs, BOOTFS_PORT_READ | BOOTFS_PORT_READ_CMDLINE) => {
            require_size(size, &[8])?;
            let m = M::modules().get(state[0] as usize).ok_or(Error::NotFound)?;
            let cmdline = (port == BOOTFS_PORT_READ_CMDLINE).then_some(m.cmdline.as_bytes());
            let len = cmdline.map_or(m.len as usize, <[u8]>::len);
            let start = (state[1] as usize).min(len);
            let n = (state[2] as usize).min(len - start);
            let end = value.checked_add(n as u64).ok_or(Error::InvalidArgument)?;
            if !exports
                .iter()
                .any(|e| value >= e.iova && end <= e.iova + e.len)
            {
                return Err(Error::AccessDenied);
            }
            // In pieces, so that a large read needs no large buffer; the
            // module's frames are reserved at boot and never handed out.
            let mut chunk = [0u8; 1024];
            let mut done = 0;
            while done < n {
                let k = (n - done).min(chunk.len());
                let at = start + done;
                match cmdline {
                    Some(c) => chunk[..k].copy_from_slice(&c[at..at + k]),
                    None => M::read_phys(m.phys + at as u64, &mut chunk[..k]),
                }
                crate::usercopy::copy_to_user::<M>(space, value + done as u64, &chunk[..k])?;
                done += k;
            }
            state[3] = n as u64;
            Ok(())
        }
        _ => Err(Error::InvalidArgument),
    }
}

/// `port_out` on the platform device: the spec is read from the caller's
/// export at iova `value`.
pub fn platform_out<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    port: u64,
    size: u64,
    value: u64,
) -> Result<(), Error> {
    require_size(size, &[8])?;
    let port = u32::try_from(port).map_err(|_| Error::InvalidArgument)?;
    if port != PLATFORM_PORT_CREATE && port != PLATFORM_PORT_RELEASE_QUARANTINE {
        return Err(Error::InvalidArgument);
    }
    let spec = {
        let p = s.current();
        let len = core::mem::size_of::<abi::HwDeviceSpec>() as u64;
        let end = value.checked_add(len).ok_or(Error::InvalidArgument)?;
        let Attachment::Kernel { exports, .. } = &p.bus.get(h)?.value else {
            return Err(Error::NotSupported);
        };
        if !exports
            .iter()
            .any(|e| value >= e.iova && end <= e.iova + e.len)
        {
            return Err(Error::AccessDenied);
        }
        let space = p.space.as_mut().ok_or(Error::BadAddress)?;
        crate::usercopy::UserPtr::<abi::HwDeviceSpec>::new(value)?.read::<M>(space)?
    };
    if port == PLATFORM_PORT_CREATE {
        super::hw::create(s, &spec)
    } else {
        let n = spec.name_len as usize;
        if n == 0 || n > spec.name.len() {
            return Err(Error::InvalidArgument);
        }
        let name = core::str::from_utf8(&spec.name[..n]).map_err(|_| Error::InvalidArgument)?;
        super::hw::release_quarantine(s, name)
    }
}

/// The process a mempool attachment selected, if it is alive.
fn mempool_selected<M: Machine>(
    s: &mut Kernel<M>,
    state: &[u64; 4],
) -> Result<crate::process::Pid, Error> {
    let pid = u32::try_from(state[0]).map_err(|_| Error::NotFound)?;
    match s.get_mut(pid) {
        Some(p) if p.state != crate::process::State::Zombie => Ok(pid),
        _ => Err(Error::NotFound),
    }
}

/// `port_in` on the memory pool: the selected process's reserve.
pub fn mempool_in<M: Machine>(
    s: &mut Kernel<M>,
    state: &[u64; 4],
    port: u64,
    size: u64,
) -> Result<u64, Error> {
    let port = u32::try_from(port).map_err(|_| Error::InvalidArgument)?;
    let wide = matches!(
        port,
        MEMPOOL_PORT_FREE | MEMPOOL_PORT_USED | MEMPOOL_PORT_LIMIT_NOW
    );
    require_size(size, if wide { &[8] } else { &[4, 8] })?;
    if port == MEMPOOL_PORT_FREE {
        return Ok(M::free_frames());
    }
    if !matches!(
        port,
        MEMPOOL_PORT_USED
            | MEMPOOL_PORT_LIMIT_NOW
            | MEMPOOL_PORT_PROCESSES
            | MEMPOOL_PORT_PROCESS_LIMIT_NOW
    ) {
        return Err(Error::InvalidArgument);
    }
    let pid = mempool_selected(s, state)?;
    let (_, r) = s.proc_and_reserve(pid).ok_or(Error::NotFound)?;
    Ok(match port {
        MEMPOOL_PORT_USED => r.used(),
        MEMPOOL_PORT_LIMIT_NOW => r.limit().unwrap_or(MEMPOOL_UNLIMITED),
        MEMPOOL_PORT_PROCESSES => u64::from(r.processes()),
        _ => u64::from(r.process_limit()),
    })
}

/// `port_out` on the memory pool: select a process, set its reserve's
/// limits, give it a reserve of its own.
pub fn mempool_out<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    port: u64,
    size: u64,
    value: u64,
) -> Result<(), Error> {
    let port = u32::try_from(port).map_err(|_| Error::InvalidArgument)?;
    if port == MEMPOOL_PORT_SELECT {
        require_size(size, &[4, 8])?;
        if let Attachment::Kernel { state, .. } = &mut s.current().bus.get_mut(h)?.value {
            state[0] = value;
        }
        return Ok(());
    }
    let state = match &s.current().bus.get(h)?.value {
        Attachment::Kernel { state, .. } => *state,
        _ => return Err(Error::NotSupported),
    };
    let limit = (value < MEMPOOL_UNLIMITED).then_some(value);
    let staged = |p: &mut crate::process::Process<M>| {
        *p.child_reserve.get_or_insert(crate::process::ChildReserve {
            limit: None,
            process_limit: None,
        })
    };
    match port {
        MEMPOOL_PORT_CHILD_RESERVE => {
            require_size(size, &[8])?;
            let p = s.current();
            let c = staged(p);
            p.child_reserve = Some(crate::process::ChildReserve { limit, ..c });
            Ok(())
        }
        MEMPOOL_PORT_CHILD_PROCESSES => {
            require_size(size, &[4, 8])?;
            let n = u32::try_from(value).map_err(|_| Error::InvalidArgument)?;
            let p = s.current();
            let c = staged(p);
            p.child_reserve = Some(crate::process::ChildReserve {
                process_limit: Some(n),
                ..c
            });
            Ok(())
        }
        MEMPOOL_PORT_LIMIT => {
            require_size(size, &[8])?;
            let pid = mempool_selected(s, &state)?;
            let (_, r) = s.proc_and_reserve(pid).ok_or(Error::NotFound)?;
            r.set_limit(limit);
            Ok(())
        }
        MEMPOOL_PORT_PROCESS_LIMIT => {
            require_size(size, &[4, 8])?;
            let n = u32::try_from(value).map_err(|_| Error::InvalidArgument)?;
            let pid = mempool_selected(s, &state)?;
            let (_, r) = s.proc_and_reserve(pid).ok_or(Error::NotFound)?;
            r.set_process_limit(n);
            Ok(())
        }
        MEMPOOL_PORT_NEW_RESERVE => {
            require_size(size, &[8])?;
            let pid = mempool_selected(s, &state)?;
            new_reserve(s, pid, limit)
        }
        _ => Err(Error::InvalidArgument),
    }
}

/// Moves `pid` out of its reserve into a new one limited to `limit`.
fn new_reserve<M: Machine>(
    s: &mut Kernel<M>,
    pid: crate::process::Pid,
    limit: Option<u64>,
) -> Result<(), Error> {
    use crate::reserve::Account;
    let (p, old) = s.proc_and_reserve(pid).ok_or(Error::NotFound)?;
    let usage = p.usage;
    let old_id = p.reserve;
    let process_limit = old.process_limit();
    if limit.is_some_and(|l| usage.frames() > l) {
        return Err(Error::OutOfMemory);
    }
    let new_id = s.reserves.create(limit, process_limit)?;
    s.reserves.hold(new_id);
    let (p, old) = s.proc_and_reserve(pid).ok_or(Error::NotFound)?;
    Account {
        reserve: old,
        usage: &mut p.usage,
    }
    .credit_all();
    old.remove_process();
    p.usage = crate::reserve::Usage::default();
    p.reserve = new_id;
    let (p, new) = s.proc_and_reserve(pid).ok_or(Error::NotFound)?;
    let mut account = Account {
        reserve: new,
        usage: &mut p.usage,
    };
    // What it held fits (checked above): these cannot fail.
    account.reserve.force_frames(usage.pages + usage.tables);
    account.usage.pages = usage.pages;
    account.usage.tables = usage.tables;
    let _ = account.charge_bytes(usage.kernel_bytes);
    let _ = new.add_process();
    s.reserves.release(old_id);
    Ok(())
}
