//! The bus system calls, client side: attach, detach, info, restrict,
//! ports, exports, IRQ mapping; and the bus's part in fork, exec and exit.

use super::{Attachment, Device, DeviceId, KernelDevice, hw, kdev, max_rights, user};
use crate::bus::Entry;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::{Block, Pid};
use crate::reserve::Account;
use crate::syscall::decode::{Handle, Port, Rights, Vector, VectorMask};
use crate::userdev::{ClientId, Export};
use abi::bus::*;
use abi::{DeviceInfo, Error};
use arrayvec::ArrayVec;

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

/// A device name as a `str`. Names are ASCII in practice, which is
/// checked a word at a time; anything else gets the full UTF-8 check.
fn name_str(bytes: &[u8]) -> Result<&str, Error> {
    if bytes.iter().fold(0, |any, &b| any | b) < 0x80 {
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
    match entry.value {
        Attachment::Kernel {
            kind: KernelDevice::Registry,
            ..
        } => {}
        _ => return Err(Error::AccessDenied),
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
    let privileged = matches!(
        dev,
        Device::Kernel(KernelDevice::Platform | KernelDevice::Mempool) | Device::Hardware(_)
    );
    if privileged && !system {
        return Err(Error::AccessDenied);
    }
    // The registry looked up through itself gives no more than the handle
    // used (else a restricted handle could win REGISTER or SYSTEM back).
    if matches!(dev, Device::Kernel(KernelDevice::Registry)) && rights & !registry_rights != 0 {
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
        Attachment::kernel(id, kind)
    } else {
        Attachment::hardware(id)
    };
    let h = s
        .current()
        .bus
        .insert(att, rights, close_on_exec)
        .map_err(|(e, _)| e)?;
    if user_device {
        user::notify_server(s, id);
    }
    Ok(h)
}

/// Undoes what attachment `h` of `pid` holds: a client closes (its server
/// hears of it), a served device goes away, a hardware attachment gives
/// back its lines, mappings and exports (into quarantine if `exiting`).
fn release<M: Machine>(s: &mut Kernel<M>, pid: Pid, h: u64, att: Attachment, exiting: bool) {
    credit_heap(s, pid, att.list_bytes());
    match att {
        Attachment::Client { dev, client } => {
            if let Ok(u) = s.devices.user(dev) {
                u.close(client);
                user::notify_server(s, dev);
            }
        }
        Attachment::Serve { dev } => user::destroy(s, dev),
        Attachment::Hardware { .. } => hw::release(s, pid, h, &att, exiting),
        Attachment::Kernel { .. } => {}
    }
}

/// `detach(handle)`.
pub fn detach<M: Machine>(s: &mut Kernel<M>, h: u64) -> Result<(), Error> {
    let pid = s.current_pid();
    detach_of(s, pid, h)
}

/// Takes handle `h` off `pid`'s bus and undoes what it held.
pub fn detach_of<M: Machine>(s: &mut Kernel<M>, pid: Pid, h: u64) -> Result<(), Error> {
    let entry = bus_remove(s, pid, h)?;
    forget_klog_listener(s, |p, hh| (p, hh) == (pid, h));
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
            info.irq_lines = hwd.res.irqs.len() as u32;
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
pub fn port_in<M: Machine>(s: &mut Kernel<M>, h: Handle, port: Port) -> Result<u64, Error> {
    let (port, size) = (u64::from(port.port), port.size);
    // Only the few words that route the read are copied out of the bus
    // slot, not the attachment (the route is all a read needs).
    enum Route {
        Client(DeviceId, ClientId),
        Kernel(KernelDevice, [u64; 4]),
        Hardware(DeviceId),
    }
    let route = match &s.current().bus.require(h, RIGHT_READ)?.value {
        Attachment::Client { dev, client } => Route::Client(*dev, *client),
        Attachment::Kernel { kind, state, .. } => Route::Kernel(*kind, *state),
        Attachment::Hardware { dev, .. } => Route::Hardware(*dev),
        Attachment::Serve { .. } => return Err(Error::NotSupported),
    };
    let value = match route {
        Route::Client(dev, client) => s.devices.user(dev)?.read_iospace(client, port, size)?,
        Route::Kernel(KernelDevice::Mempool, state) => kdev::mempool_in(s, &state, port, size)?,
        Route::Kernel(KernelDevice::Proc, _) => super::procdev::port_in(s, h, port, size)?,
        Route::Kernel(kind, state) => kdev::port_in::<M>(&s.devices, kind, &state, port, size)?,
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
        Attachment::Kernel {
            kind: KernelDevice::Platform,
            ..
        } => kdev::platform_out(s, h, port, size, value).map(|()| Out::Done),
        Attachment::Kernel {
            kind: KernelDevice::Mempool,
            ..
        } => kdev::mempool_out(s, h, port, size, value).map(|()| Out::Done),
        Attachment::Kernel {
            kind: KernelDevice::Proc,
            ..
        } => super::procdev::port_out(s, h, port, size, value).map(|k| match k {
            super::procdev::Killed::Done => Out::Done,
            super::procdev::Killed::Restart => Out::Restart,
        }),
        Attachment::Kernel { .. } => {
            let (p, devices) = s.current_with_devices();
            let space = p.space.as_mut().ok_or(Error::BadAddress)?;
            let att = &mut p.bus.get_mut(h)?.value;
            kdev::port_out::<M>(devices, att, space, port, size, value)?;
            Ok(Out::Done)
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

/// `export(handle, va, len) -> iova`.
pub fn export<M: Machine>(s: &mut Kernel<M>, h: Handle, va: u64, len: u64) -> Result<u64, Error> {
    let entry = s.current().bus.require_mut(h, RIGHT_DMA)?;
    match &mut entry.value {
        Attachment::Client { dev, client } => {
            let (dev, client) = (*dev, *client);
            s.devices.user(dev)?.export(client, va, len)
        }
        Attachment::Kernel { exports, .. } => {
            let end = va + len;
            if exports.iter().any(|e| va < e.iova + e.len && e.iova < end) {
                return Err(Error::AlreadyExists);
            }
            if exports.is_full() {
                return Err(Error::LimitReached);
            }
            let grow = exports.growth_bytes() as u64;
            let pid = s.current_pid();
            hw::reserve_list(s, pid, h, grow, |a| match a {
                Attachment::Kernel { exports, .. } => exports.try_push(Export { iova: va, len }),
                _ => Err(Error::NotSupported),
            })?;
            Ok(va)
        }
        Attachment::Hardware { .. } => hw::export(s, h, va, len),
        Attachment::Serve { .. } => Err(Error::NotSupported),
    }
}

/// `unexport(handle, iova)`.
pub fn unexport<M: Machine>(s: &mut Kernel<M>, h: u64, iova: u64) -> Result<(), Error> {
    let entry = s.current().bus.require_mut(h, RIGHT_DMA)?;
    match &mut entry.value {
        Attachment::Client { dev, client } => {
            let (dev, client) = (*dev, *client);
            s.devices.user(dev)?.unexport(client, iova)
        }
        Attachment::Kernel { exports, .. } => {
            let i = exports
                .iter()
                .position(|e| e.iova == iova)
                .ok_or(Error::NotFound)?;
            exports.remove(i);
            Ok(())
        }
        Attachment::Hardware { .. } => hw::unexport(s, h, iova),
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
    let vector = u64::from(vector.get());
    match s.current().bus.require(h, RIGHT_IRQ)?.value {
        Attachment::Client { dev, client } => s.devices.user(dev)?.irq_map(client, line, vector),
        Attachment::Kernel {
            kind: KernelDevice::Klog,
            ..
        } => {
            if line != abi::kdev::KLOG_IRQ_DATA as u64 {
                return Err(Error::InvalidArgument);
            }
            let pid = s.current_pid();
            let listeners = &mut s.devices.klog_listeners;
            if let Some(l) = listeners.iter_mut().find(|l| (l.0, l.1) == (pid, h)) {
                l.2 = vector as u32;
                return Ok(());
            }
            // A listener per klog handle: the process pays for its entry
            // (the list gives it back when it detaches or exits).
            charge_heap(s, pid, KLOG_LISTENER_BYTES)?;
            let listeners = &mut s.devices.klog_listeners;
            if listeners.try_reserve(1).is_err() {
                credit_heap(s, pid, KLOG_LISTENER_BYTES);
                return Err(Error::OutOfMemory);
            }
            listeners.push((pid, h, vector as u32));
            Ok(())
        }
        Attachment::Hardware { dev, .. } => hw::irq_map(s, h, dev, line, vector),
        _ => Err(Error::NotSupported),
    }
}

/// What one klog listener costs its process.
const KLOG_LISTENER_BYTES: u64 = 2 * core::mem::size_of::<(Pid, u64, u32)>() as u64;

/// Drops klog listeners (crediting their processes); the list gives its
/// memory back when it empties.
fn forget_klog_listener<M: Machine>(s: &mut Kernel<M>, gone: impl Fn(Pid, u64) -> bool) {
    let mut i = 0;
    while i < s.devices.klog_listeners.len() {
        let (pid, h, _) = s.devices.klog_listeners[i];
        if !gone(pid, h) {
            i += 1;
            continue;
        }
        s.devices.klog_listeners.swap_remove(i);
        credit_heap(s, pid, KLOG_LISTENER_BYTES);
    }
    if s.devices.klog_listeners.is_empty() {
        s.devices.klog_listeners = alloc::vec::Vec::new();
    }
}

/// Raises klog's data IRQ on every listener; called when the log grew.
pub fn notify_klog_listeners<M: Machine>(s: &mut Kernel<M>) {
    for i in 0..s.devices.klog_listeners.len() {
        let (pid, _, vector) = s.devices.klog_listeners[i];
        s.raise(pid, vector);
    }
}

/// `irq_ack(handle, line)`: user-device lines need no acknowledgement
/// (they are edge-like: each `dev_irq` raises the vector once).
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

/// The handles on `pid`'s bus that `keep` selects (a bus has at most
/// `BUS_SLOTS`, so they fit on the stack: no allocation, which could fail).
pub fn handles_of<M: Machine>(
    s: &mut Kernel<M>,
    pid: Pid,
    keep: impl Fn(&Entry<Attachment>) -> bool,
) -> ArrayVec<u64, { BUS_SLOTS as usize }> {
    let mut hs = ArrayVec::new();
    if let Some(p) = s.get_mut(pid) {
        for (h, e) in p.bus.iter() {
            if keep(e) {
                let _ = hs.try_push(h);
            }
        }
    }
    hs
}

/// Fork: the child's bus gets every handle with the CLONE right, at the
/// same value; user devices see a CLONE request (the child's client record
/// charged to the child's reserve). Served devices stay with the parent.
pub fn fork_bus<M: Machine>(s: &mut Kernel<M>, parent: Pid, child: Pid) -> Result<(), Error> {
    for h in handles_of(s, parent, |e| e.rights & RIGHT_CLONE != 0) {
        let Some(Ok(e)) = s.get_mut(parent).map(|p| p.bus.get(h)) else {
            continue;
        };
        let (rights, coe) = (e.rights, e.close_on_exec);
        let copy = match e.value {
            Attachment::Serve { .. } => continue,
            // A hardware attachment is inherited bare: lines, mappings and
            // exports stay with the parent.
            Attachment::Hardware { dev, .. } => Attachment::hardware(dev),
            Attachment::Kernel {
                dev, kind, state, ..
            } => Attachment::kernel_with_state(dev, kind, state),
            Attachment::Client { dev, client } => match s.devices.user(dev) {
                Ok(u) => {
                    let cost = u.client_cost() as u64;
                    let reserve = s.get_mut(child).ok_or(Error::NotFound)?.reserve;
                    let paid = user::charge(s, reserve, cost)?;
                    match s
                        .devices
                        .user(dev)
                        .and_then(|u| u.clone_client(client, child, paid))
                    {
                        Ok(client) => Attachment::Client { dev, client },
                        Err(e) => {
                            user::refund(s, paid);
                            return Err(e);
                        }
                    }
                }
                // The device is gone: the child inherits a dead handle, as
                // the parent holds one.
                Err(_) => Attachment::Client { dev, client },
            },
        };
        let dev = match copy {
            Attachment::Client { dev, .. } => Some(dev),
            _ => None,
        };
        let (c, r) = s.proc_and_reserve(child).ok_or(Error::NotFound)?;
        if let Err((e, att)) = c.bus.insert_at(h, copy, rights, coe) {
            release(s, child, h, att, false);
            return Err(e);
        }
        // The child's bus mirrors the parent's slots: charge what it grew.
        let now = c.bus.storage_bytes() as u64;
        if now > c.bus_bytes {
            let grew = now - c.bus_bytes;
            Account {
                reserve: r,
                usage: &mut c.usage,
            }
            .charge_bytes(grew)?;
            c.bus_bytes = now;
        }
        if let Some(dev) = dev {
            user::notify_server(s, dev);
        }
    }
    Ok(())
}

/// Exec: close-on-exec handles go; the others forget everything tied to
/// the old address space (exports, device mappings), which exec is about
/// to replace: their addresses would name the new program's pages.
pub fn exec_bus<M: Machine>(s: &mut Kernel<M>) {
    let pid = s.current_pid();
    for h in handles_of(s, pid, |e| e.close_on_exec) {
        let _ = detach(s, h);
    }
    for h in handles_of(s, pid, |_| true) {
        let Ok(e) = s.current().bus.get_mut(h) else {
            continue;
        };
        match &mut e.value {
            Attachment::Hardware { .. } => hw::forget_address_space(s, pid, h),
            &mut Attachment::Client { dev, client } => {
                if let Ok(u) = s.devices.user(dev) {
                    u.clear_exports(client);
                }
            }
            Attachment::Kernel { exports, .. } => {
                let freed = exports.clear() as u64;
                credit_heap(s, pid, freed);
            }
            Attachment::Serve { .. } => {}
        }
    }
}

/// Exit: every handle of `pid` goes (its served devices with them). The
/// bus's storage is credited with the rest of the process's memory. If
/// the process was serving a request when it ended, the client that made
/// it is named in its exit status (`ExitStatus::culprit`).
pub fn exit_bus<M: Machine>(s: &mut Kernel<M>, pid: Pid) {
    let Some(p) = s.get_mut(pid) else { return };
    let all = core::mem::take(&mut p.bus);
    forget_klog_listener(s, |p, _| p == pid);
    let mut culprit = 0;
    for (h, e) in all.into_entries() {
        if let Attachment::Serve { dev } = e.value
            && culprit == 0
            && let Ok(u) = s.devices.user(dev)
            && let Some((_, client_pid)) = u.in_flight()
        {
            culprit = client_pid;
        }
        release(s, pid, h, e.value, true);
    }
    if let Some(p) = s.get_mut(pid) {
        p.exit.culprit = culprit;
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
