//! The bus system calls, client side: attach, detach, info, restrict,
//! ports, exports, IRQ mapping, device memory; and what they share: a
//! handle's room and the heap charged for it.

use super::{Attachment, Device, DeviceId, hw, kdev, max_rights, user};
use crate::bus::Entry;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::{Block, Pid, State};
use crate::reserve::Account;
use crate::syscall::decode::{Handle, Port, Rights, Vector, VectorMask};
use crate::usercopy::USlice;
use crate::userdev::{ClientId, Export};
use abi::bus::*;
use abi::{DeviceInfo, Error};

/// Makes sure `pid`'s bus can take one more handle without allocating,
/// charging the process for any storage that takes.
pub fn reserve_handle<M: Machine>(s: &mut Kernel<M>, pid: Pid) -> Result<(), Error> {
    let p = s.get_mut(pid).ok_or(Error::NotFound)?;
    let grow = p.bus.growth_bytes() as u64;
    if grow == 0 {
        // Room without new storage: nothing to charge.
        return p.bus.reserve_one();
    }
    let (p, r) = s.proc_and_reserve(pid).ok_or(Error::NotFound)?;
    let mut account = Account {
        reserve: r,
        usage: &mut p.usage,
    };
    account.charge_bytes(grow)?;
    if let Err(e) = p.bus.reserve_one() {
        account.credit_bytes(grow);
        return Err(e);
    }
    p.bus_bytes += grow;
    Ok(())
}

/// Charges `bytes` of kernel heap made for process `pid` to its reserve.
pub fn charge_heap<M: Machine>(s: &mut Kernel<M>, pid: Pid, bytes: u64) -> Result<(), Error> {
    if bytes == 0 {
        return Ok(());
    }
    let (p, r) = s.proc_and_reserve(pid).ok_or(Error::NotFound)?;
    Account {
        reserve: r,
        usage: &mut p.usage,
    }
    .charge_bytes(bytes)
}

/// Credits `bytes` of kernel heap given back by process `pid`.
pub fn credit_heap<M: Machine>(s: &mut Kernel<M>, pid: Pid, bytes: u64) {
    if bytes == 0 {
        return;
    }
    if let Some((p, r)) = s.proc_and_reserve(pid) {
        Account {
            reserve: r,
            usage: &mut p.usage,
        }
        .credit_bytes(bytes);
    }
}

/// Puts an attachment on `pid`'s bus (charging any storage it takes).
pub fn bus_insert<M: Machine>(
    s: &mut Kernel<M>,
    pid: Pid,
    att: Attachment,
    rights: u32,
    close_on_exec: bool,
) -> Result<u64, Error> {
    reserve_handle(s, pid)?;
    let p = s.get_mut(pid).ok_or(Error::NotFound)?;
    p.bus.insert(att, rights, close_on_exec).map_err(|(e, _)| e)
}

/// Takes handle `h` off `pid`'s bus, crediting the storage the bus gives
/// back.
fn bus_remove<M: Machine>(s: &mut Kernel<M>, pid: Pid, h: u64) -> Result<Entry<Attachment>, Error> {
    let p = s.get_mut(pid).ok_or(Error::NotFound)?;
    let entry = p.bus.remove(h)?;
    let now = p.bus.storage_bytes() as u64;
    if now < p.bus_bytes {
        let freed = p.bus_bytes - now;
        p.bus_bytes = now;
        credit_heap(s, pid, freed);
    }
    Ok(entry)
}

/// Whether a bus slot holds a registry handle.
pub fn is_registry(att: &Attachment) -> bool {
    matches!(
        att,
        Attachment::Kernel {
            state: kdev::KernelState::Registry(_),
            ..
        }
    )
}

/// A device name as a `str`. Names are ASCII in practice, which is
/// checked a word at a time; anything else gets the full UTF-8 check.
fn name_str(bytes: &[u8]) -> Result<&str, Error> {
    // Zero-padded to whole words (names are at most 32 bytes), then one
    // test per word for a high bit.
    let mut padded = [0u8; DEVICE_NAME_MAX];
    let ascii = match padded.get_mut(..bytes.len()) {
        Some(head) => {
            head.copy_from_slice(bytes);
            padded.chunks_exact(8).fold(0, |any, w| {
                any | u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
            }) & 0x8080_8080_8080_8080
                == 0
        }
        None => false,
    };
    if ascii {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Ok(unsafe { core::str::from_utf8_unchecked(bytes) });
    }
    core::str::from_utf8(bytes).map_err(|_| Error::InvalidArgument)
}

/// `attach(registry, name, rights | flags) -> handle`.
pub fn attach<M: Machine>(
    s: &mut Kernel<M>,
    registry: Handle,
    name: &[u8],
    rights: Rights,
    close_on_exec: bool,
) -> Result<u64, Error> {
    let rights = rights.0;
    let entry = s.current().bus.require(registry, RIGHT_LOOKUP)?;
    let registry_rights = entry.rights;
    let system = registry_rights & RIGHT_SYSTEM != 0;
    if !is_registry(&entry.value) {
        return Err(Error::AccessDenied);
    }
    let name = name_str(name)?;
    if name.is_empty() || name.len() > DEVICE_NAME_MAX {
        return Err(Error::InvalidArgument);
    }
    // Outside the caller's name scope, whether or not the name exists.
    if !s.current().names.allows(name) {
        return Err(Error::AccessDenied);
    }
    let id = s.devices.lookup(name).ok_or(Error::NotFound)?;
    let dev = s.devices.get(id)?;
    if rights & !max_rights(dev) != 0 {
        return Err(Error::AccessDenied);
    }
    // The privileged devices need a registry handle with RIGHT_SYSTEM.
    let privileged = match dev {
        Device::Kernel(kind) => kind.privileged(),
        Device::Hardware(_) => true,
        Device::User(_) => false,
    };
    if privileged && !system {
        return Err(Error::AccessDenied);
    }
    // The registry looked up through itself gives no more than the handle
    // used (else a restricted handle could win REGISTER or SYSTEM back).
    if matches!(dev, Device::Kernel(kdev::Kind::Registry)) && rights & !registry_rights != 0 {
        return Err(Error::AccessDenied);
    }
    let pid = s.current_pid();
    let user_device = matches!(dev, Device::User(_));
    let client_cost = match dev {
        Device::User(u) => u.client_cost() as u64,
        _ => 0,
    };
    let kind = match dev {
        Device::Kernel(kind) => Some(*kind),
        _ => None,
    };
    // Everything that can fail comes first (the handle's room, the
    // client's charge, its record); then nothing can, so no OPEN is ever
    // queued for an attach that fails.
    reserve_handle(s, pid)?;
    let att = if user_device {
        let reserve = s.current().reserve;
        let paid = user::charge(s, reserve, client_cost)?;
        match s.devices.user(id).and_then(|u| u.open(pid, paid)) {
            Ok(client) => Attachment::Client { dev: id, client },
            Err(e) => {
                user::refund(s, paid);
                return Err(e);
            }
        }
    } else if let Some(kind) = kind {
        Attachment::kernel(id, kind.fresh())
    } else {
        Attachment::hardware(id)
    };
    let hardware = matches!(att, Attachment::Hardware { .. });
    let h = s
        .current()
        .bus
        .insert(att, rights, close_on_exec)
        .map_err(|(e, _)| e)?;
    if user_device {
        user::notify_server(s, id);
    }
    if hardware {
        super::pci::held(s, id);
    }
    Ok(h)
}

/// Undoes what attachment `h` of `pid` holds: a client closes (its server
/// hears of it), a served device goes away, a hardware attachment gives
/// back its lines, mappings and exports (into quarantine if `exiting`).
pub(super) fn release<M: Machine>(
    s: &mut Kernel<M>,
    pid: Pid,
    h: u64,
    att: Attachment,
    exiting: bool,
) {
    credit_heap(s, pid, att.list_bytes());
    match att {
        Attachment::Client { dev, client } => {
            if let Ok(u) = s.devices.user(dev) {
                u.close(client);
                user::notify_server(s, dev);
            }
            // The handle was taken from a process asleep in port_out_wait
            // on it (a supervisor's revoke): the device is gone for that
            // process, and with its client closed nothing else would ever
            // wake it. (An exiting process is not woken: it is ending.)
            let sleeps_on_it = s.get_mut(pid).is_some_and(
                |p| matches!(p.state, State::Blocked(Block::Irq { dev: Some(d), .. }) if d == dev),
            );
            if sleeps_on_it && !exiting {
                s.complete(pid, Error::DeviceGone.to_ret());
            }
        }
        Attachment::Serve { dev } => user::destroy(s, dev),
        Attachment::Hardware { .. } => hw::release(s, pid, h, &att, exiting),
        Attachment::Kernel { .. } => {}
    }
}

/// `detach(handle)`.
#[inline(always)]
pub fn detach<M: Machine>(s: &mut Kernel<M>, h: u64) -> Result<(), Error> {
    let pid = s.current_pid();
    detach_of(s, pid, h)
}

/// Takes handle `h` off `pid`'s bus and undoes what it held.
#[inline(always)]
pub fn detach_of<M: Machine>(s: &mut Kernel<M>, pid: Pid, h: u64) -> Result<(), Error> {
    let entry = bus_remove(s, pid, h)?;
    kdev::klog::forget_listeners(s, |p, hh| (p, hh) == (pid, h));
    release(s, pid, h, entry.value, false);
    Ok(())
}

/// `restrict(handle, rights)`.
pub fn restrict<M: Machine>(s: &mut Kernel<M>, h: Handle, rights: Rights) -> Result<(), Error> {
    s.current().bus.restrict(h, rights.0)
}

/// `info(handle)`.
pub fn info<M: Machine>(s: &mut Kernel<M>, h: u64) -> Result<DeviceInfo, Error> {
    let entry = s.current().bus.get(h)?;
    let rights = entry.rights;
    let (id, client) = match entry.value {
        Attachment::Kernel { dev, .. }
        | Attachment::Serve { dev }
        | Attachment::Hardware { dev, .. } => (dev, 0),
        Attachment::Client { dev, client } => (dev, client),
    };
    let mut info = DeviceInfo {
        rights,
        client,
        ..DeviceInfo::default()
    };
    let name = s.devices.name_of(id).ok_or(Error::DeviceGone)?;
    info.name[..name.len()].copy_from_slice(name.as_bytes());
    match s.devices.get(id)? {
        Device::Kernel(_) => info.kind = DEVICE_KIND_KERNEL,
        Device::Hardware(hwd) => {
            info.kind = DEVICE_KIND_HARDWARE;
            info.irq_lines = match &hwd.pci {
                Some(p) => p.msi.count(),
                None => hwd.res.irqs.len() as u32,
            };
        }
        Device::User(u) => {
            info.kind = DEVICE_KIND_USER;
            info.irq_lines = u.irq_lines;
            info.iospace_size = u.iospace_size;
            info.server_pid = u.server;
            info.clients = u.client_count() as u32;
        }
    }
    Ok(info)
}

/// `port_in(handle, port, size)`.
#[inline(always)]
pub fn port_in<M: Machine>(s: &mut Kernel<M>, h: Handle, port: Port) -> Result<u64, Error> {
    let (port, size) = (u64::from(port.port), port.size);
    // Only the few words that route the read are copied out of the bus
    // slot, not the attachment (the route is all a read needs).
    enum Route {
        Client(DeviceId, ClientId),
        Kernel(kdev::KernelState),
        Hardware(DeviceId),
    }
    let route = match &s.current().bus.require(h, RIGHT_READ)?.value {
        Attachment::Client { dev, client } => Route::Client(*dev, *client),
        Attachment::Kernel { state, .. } => Route::Kernel(*state),
        Attachment::Hardware { dev, .. } => Route::Hardware(*dev),
        Attachment::Serve { .. } => return Err(Error::NotSupported),
    };
    let value = match route {
        Route::Client(dev, client) => s.devices.user(dev)?.read_iospace(client, port, size)?,
        Route::Kernel(state) => kdev::port_in(s, state, port as u32, size)?,
        Route::Hardware(dev) => hw::port_in(s, dev, port, size)?,
    };
    // A result must stay a non-negative word: 8-byte values with the top
    // bit set cannot be returned.
    if value > isize::MAX as u64 {
        return Err(Error::InvalidArgument);
    }
    Ok(value)
}

/// What a `port_out` did.
pub enum Out {
    /// Done (a kernel or hardware device).
    Done,
    /// Queued a request on a user device.
    Queued,
    /// Stopped at a preemption point: the call starts again.
    Restart,
}

/// `port_out(handle, port, size, value)`.
pub fn port_out<M: Machine>(
    s: &mut Kernel<M>,
    h: Handle,
    port: Port,
    value: u64,
) -> Result<Out, Error> {
    let (port, size) = (u64::from(port.port), port.size);
    let p = s.current();
    let entry = p.bus.require_mut(h, RIGHT_WRITE)?;
    match entry.value {
        Attachment::Client { dev, client } => {
            s.devices.user(dev)?.out(client, port, size, value)?;
            user::notify_server(s, dev);
            Ok(Out::Queued)
        }
        Attachment::Kernel { state, .. } => {
            kdev::port_out(s, state.kind(), h, port as u32, size, value)
        }
        Attachment::Hardware { dev, .. } => {
            hw::port_out(s, dev, port, size, value).map(|()| Out::Done)
        }
        Attachment::Serve { .. } => Err(Error::NotSupported),
    }
}

/// `port_out_wait`: `port_out`, then sleep until a vector of `mask` is
/// pending (woken with `DeviceGone` if the device goes away meanwhile).
/// The caller goes to sleep before its server is told, so a server waiting
/// in `dev_poll` runs next directly (the scheduler's hand-off).
#[inline(always)]
pub fn port_out_wait<M: Machine>(
    s: &mut Kernel<M>,
    h: Handle,
    port: Port,
    value: u64,
    mask: VectorMask,
) -> Result<Option<usize>, Error> {
    let Attachment::Client { dev, client } = s.current().bus.require(h, RIGHT_WRITE)?.value else {
        // Not a user device: an ordinary port_out, then the wait.
        if let Out::Restart = port_out(s, h, port, value)? {
            s.restart_current();
            return Ok(None);
        }
        return crate::syscall::irq_wait_on(s, mask, None);
    };
    // The common case (the server already polls for this) never gets
    // here: sched/fastpath.rs hands the request over directly. This is
    // the general path: queue, then wake or hand to the server.
    s.devices
        .user(dev)?
        .out(client, u64::from(port.port), port.size, value)?;
    let mask = mask.bits();
    let p = s.current();
    let taken = p.pending & mask;
    if taken != 0 {
        p.pending &= !taken;
    } else {
        s.block_current(Block::Irq {
            mask,
            dev: Some(dev),
        });
    }
    user::notify_server(s, dev);
    Ok((taken != 0).then_some(taken as usize))
}

/// `export(handle, va, len, flags, pages, pages_len) -> iova`.
#[inline(always)]
pub fn export<M: Machine>(
    s: &mut Kernel<M>,
    h: Handle,
    va: u64,
    len: u64,
    device_writes: bool,
    pages: USlice,
) -> Result<u64, Error> {
    let entry = s.current().bus.require_mut(h, RIGHT_DMA)?;
    match &mut entry.value {
        Attachment::Client { dev, client } => {
            let (dev, client) = (*dev, *client);
            s.devices.user(dev)?.export(client, va, len, device_writes)
        }
        Attachment::Kernel { exports, .. } => {
            let export = Export::new_in(exports.iter(), va, len, device_writes)?;
            if exports.is_full() {
                return Err(Error::LimitReached);
            }
            let grow = exports.growth_bytes() as u64;
            let pid = s.current_pid();
            hw::reserve_list(s, pid, h, grow, |a| match a {
                Attachment::Kernel { exports, .. } => exports.try_push(export),
                _ => Err(Error::NotSupported),
            })?;
            Ok(va)
        }
        Attachment::Hardware { .. } => super::dma::export(s, h, va, len, device_writes, pages),
        Attachment::Serve { .. } => Err(Error::NotSupported),
    }
}

/// `unexport(handle, iova)`.
#[inline(always)]
pub fn unexport<M: Machine>(s: &mut Kernel<M>, h: u64, iova: u64) -> Result<(), Error> {
    let entry = s.current().bus.require_mut(h, RIGHT_DMA)?;
    match &mut entry.value {
        Attachment::Client { dev, client } => {
            let (dev, client) = (*dev, *client);
            s.devices.user(dev)?.unexport(client, iova)
        }
        Attachment::Kernel { exports, .. } => {
            let i = crate::export::position(exports.iter(), iova)?;
            exports.remove(i);
            Ok(())
        }
        Attachment::Hardware { .. } => super::dma::unexport(s, h, iova),
        Attachment::Serve { .. } => Err(Error::NotSupported),
    }
}

/// `irq_map(handle, line, vector)`.
pub fn irq_map<M: Machine>(
    s: &mut Kernel<M>,
    h: Handle,
    line: u64,
    vector: Vector,
) -> Result<(), Error> {
    match s.current().bus.require(h, RIGHT_IRQ)?.value {
        Attachment::Client { dev, client } => s.devices.user(dev)?.irq_map(client, line, vector),
        Attachment::Kernel { state, .. } => kdev::irq_map(s, state.kind(), h, line, vector),
        Attachment::Hardware { dev, .. } => hw::irq_map(s, h, dev, line, vector),
        _ => Err(Error::NotSupported),
    }
}

/// `irq_ack(handle, line)`: user-device lines need no acknowledgement
/// (they are edge-like: each `dev_irq` raises the vector once).
#[inline(always)]
pub fn irq_ack<M: Machine>(s: &mut Kernel<M>, h: u64, line: u64) -> Result<(), Error> {
    match s.current().bus.require(h, RIGHT_IRQ)?.value {
        Attachment::Client { dev, .. } => {
            if line >= s.devices.user(dev)?.irq_lines as u64 {
                return Err(Error::InvalidArgument);
            }
            Ok(())
        }
        Attachment::Hardware { dev, .. } => hw::irq_ack(s, h, dev, line),
        _ => Err(Error::NotSupported),
    }
}

/// `iomap(handle, va, phys, len)`.
pub fn iomap<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    va: u64,
    phys: u64,
    len: u64,
) -> Result<(), Error> {
    match s.current().bus.require(h, RIGHT_MAP)?.value {
        Attachment::Hardware { dev, .. } => hw::iomap(s, h, dev, va, phys, len),
        _ => Err(Error::NotSupported),
    }
}

/// `iounmap(handle, va, len)`.
pub fn iounmap<M: Machine>(s: &mut Kernel<M>, h: u64, va: u64, len: u64) -> Result<(), Error> {
    s.current().bus.require(h, RIGHT_MAP)?;
    hw::iounmap(s, h, va, len)
}
