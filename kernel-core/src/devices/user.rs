//! User devices in the kernel: creating and destroying them, the server's
//! calls, and how a client's request reaches its server.
//!
//! A request is handed straight to a server sleeping in `dev_poll` on that
//! device (written into its request buffer, its call completed): no queue
//! round trip, no second system call (seL4's fast path, in spirit).
//! Otherwise it waits in the client's queue and the server's vector is
//! raised; the server takes queued requests round-robin across clients
//! (`crate::userdev`).
//!
//! Rules: the server's calls name clients by id, checked against the
//! device's client table; DMA reaches only what that client exported to
//! this device; when a device goes away every sleeper on it is woken with
//! `DeviceGone`; a device's record is charged to its server's reserve and
//! each client's record to the client's, and both charges come back when
//! the records go.

use super::{Attachment, DEVICE_BYTES, Device, DeviceId};
use crate::kernel::Kernel;
use crate::machine::{Machine, UserFrame};
use crate::process::{Block, State};
use crate::reserve::ReserveId;
use crate::usercopy::{USlice, UserPtr};
use crate::userdev::{Refund, UserDevice};
use abi::userdev::{ClientId, Request};
use abi::{DeviceConfig, Error};

/// Charges `bytes` to reserve `id` for an object that names it (the
/// reserve is held until the refund).
pub fn charge<M: Machine>(s: &mut Kernel<M>, id: ReserveId, bytes: u64) -> Result<Refund, Error> {
    s.reserves
        .get_mut(id)
        .ok_or(Error::OutOfMemory)?
        .charge_bytes(bytes)?;
    s.reserves.hold(id);
    Ok(Refund {
        reserve: id,
        bytes: bytes as usize,
    })
}

/// Gives back what `charge` took.
pub fn refund<M: Machine>(s: &mut Kernel<M>, r: Refund) {
    s.reserves.refund(r.reserve, r.bytes as u64);
}

/// Hands the next request of `dev` to its server if it sleeps in
/// `dev_poll`; otherwise raises the server's vector. Called after every
/// request is queued.
pub fn notify_server<M: Machine>(s: &mut Kernel<M>, dev: DeviceId) {
    let Ok(u) = s.devices.user(dev) else { return };
    let (server, vector) = (u.server, u.server_vector);
    // The server and the device together (the device again with it: the
    // first look only found the server).
    let (Some(p), devices) = s.proc_with_devices(server) else {
        return;
    };
    let out = match p.state {
        State::Blocked(Block::Poll { dev: d, out }) if d == dev => out,
        _ => return s.raise(server, vector),
    };
    let Ok(u) = devices.user(dev) else { return };
    let Some(r) = u.peek() else { return };
    // The head request goes to the sleeping server and is taken; if its
    // buffer is bad the request stays queued and the poll fails.
    match put_request(p, out, &r) {
        Ok(()) => {
            if let Some((_, Some(charge))) = u.take() {
                refund(s, charge);
            }
            s.complete(server, r.client as isize);
        }
        Err(e) => s.complete(server, e.to_ret()),
    }
}

/// Takes the head request of `dev` (which the caller has delivered); a
/// CLOSE ends the client's record, whose charge goes back.
fn take<M: Machine>(s: &mut Kernel<M>, dev: DeviceId) {
    if let Some((_, Some(r))) = s.devices.user(dev).ok().and_then(|u| u.take()) {
        refund(s, r);
    }
}

/// Gives request `r` to server `p`: in its registers `rdi`, `rsi`, `rdx`,
/// `r10` (`Request::to_words`) when `out` is null — no memory is touched,
/// which is what makes the round trip cheap — or written to `out`, leaving
/// its registers alone as every other call does.
fn put_request<M: Machine>(
    p: &mut crate::process::Process<M>,
    out: Option<UserPtr<Request>>,
    r: &Request,
) -> Result<(), Error> {
    let Some(out) = out else {
        p.frame.set_request_words(r.to_words());
        return Ok(());
    };
    let space = p.space()?;
    out.write::<M>(space, r)
}

/// `dev_create`: a new user device served by the caller, registered under
/// its name through `registry` (a registry handle of the caller's with
/// REGISTER: the capability to take a name, named by the caller rather
/// than found on its bus), its record charged to the caller's reserve.
pub fn create<M: Machine>(
    s: &mut Kernel<M>,
    registry: u64,
    config: &DeviceConfig,
) -> Result<u64, Error> {
    let pid = s.current_pid();
    let entry = s
        .current()
        .bus
        .require(registry, abi::bus::RIGHT_REGISTER)?;
    if !super::calls::is_registry(&entry.value) {
        return Err(Error::AccessDenied);
    }
    let dev = UserDevice::new(config, pid)?;
    let name = dev.name;
    if !s.current().names.allows(name.as_str()) {
        return Err(Error::AccessDenied);
    }
    if s.devices.lookup(name.as_str()).is_some() {
        return Err(Error::AlreadyExists);
    }
    // The handle first (so nothing can fail after the device exists but
    // before its server holds it), then the charge, then the device.
    super::calls::reserve_handle(s, pid)?;
    let reserve = s.current().reserve;
    let paid = charge(s, reserve, DEVICE_BYTES)?;
    let id = match s.devices.add(name.as_str(), Device::User(dev), Some(paid)) {
        Ok(id) => id,
        Err((e, _)) => {
            refund(s, paid);
            return Err(e);
        }
    };
    let rights = abi::bus::RIGHT_SERVE;
    match super::calls::bus_insert(s, pid, Attachment::Serve { dev: id }, rights, false) {
        Ok(h) => Ok(h),
        Err(e) => {
            destroy(s, id);
            Err(e)
        }
    }
}

/// Removes device `dev`: its name is free again, its clients' next
/// operations fail with `DeviceGone`, whoever sleeps on it wakes with that
/// error, and every charge its records carried goes back. Linear in the
/// device's clients.
pub fn destroy<M: Machine>(s: &mut Kernel<M>, dev: DeviceId) {
    let Some((device, paid)) = s.devices.remove(dev) else {
        return;
    };
    if let Some(paid) = paid {
        refund(s, paid);
    }
    let Device::User(u) = device else {
        return;
    };
    let server = u.server;
    if s.get_mut(server)
        .is_some_and(|p| matches!(p.state, State::Blocked(Block::Poll { dev: d, .. }) if d == dev))
    {
        s.complete(server, Error::DeviceGone.to_ret());
    }
    // The device is out of the table: its clients can be walked while the
    // scheduler wakes their processes.
    for (_, c) in u.clients() {
        let sleeps_here = s.get_mut(c.pid).is_some_and(
            |p| matches!(p.state, State::Blocked(Block::Irq { dev: Some(d), .. }) if d == dev),
        );
        if sleeps_here {
            s.complete(c.pid, Error::DeviceGone.to_ret());
        }
    }
    for r in u.into_refunds() {
        refund(s, r);
    }
}

/// The device a `Serve` handle names, checked.
pub fn served<M: Machine>(s: &mut Kernel<M>, h: u64) -> Result<DeviceId, Error> {
    match s.current().bus.require(h, abi::bus::RIGHT_SERVE)?.value {
        Attachment::Serve { dev } => Ok(dev),
        _ => Err(Error::AccessDenied),
    }
}

/// `dev_poll`: the next request, or sleep until one comes (unless
/// `nowait`). `Ok(None)` means the caller sleeps.
pub fn poll<M: Machine>(
    s: &mut Kernel<M>,
    dev: DeviceId,
    out: Option<UserPtr<Request>>,
    nowait: bool,
) -> Result<Option<usize>, Error> {
    let r = s.devices.user(dev)?.peek();
    let Some(r) = r else {
        if nowait {
            return Err(Error::WouldBlock);
        }
        s.block_current(Block::Poll { dev, out });
        return Ok(None);
    };
    put_request(s.current(), out, &r)?;
    take(s, dev);
    Ok(Some(r.client as usize))
}

/// `dev_irq`: raises `line` on client `client` (nothing if unmapped).
pub fn irq<M: Machine>(
    s: &mut Kernel<M>,
    dev: DeviceId,
    client: ClientId,
    line: u64,
) -> Result<(), Error> {
    let u = s.devices.user(dev)?;
    let target = u.irq_target(client, line)?;
    u.answered(client);
    if let Some((pid, vector)) = target {
        s.raise(pid, vector);
    }
    Ok(())
}

/// `dev_dma_read` / `dev_dma_write`: copies between the server's buffer and
/// what `client` exported, page to page (no kernel buffer between), all or
/// nothing.
pub fn dma<M: Machine>(
    s: &mut Kernel<M>,
    dev: DeviceId,
    client: ClientId,
    iova: u64,
    buf: USlice,
    to_client: bool,
) -> Result<(), Error> {
    // The kernel is not preemptible: decoding bounded the length
    // (`decode::DMA_MAX`).
    let (buf, len) = (buf.addr(), buf.len() as u64);
    let client_pid = s
        .devices
        .user(dev)?
        .dma_target(client, iova, len, to_client)?;
    let server_pid = s.current_pid();
    let (from_pid, from, to_pid, to) = if to_client {
        (server_pid, buf, client_pid, iova)
    } else {
        (client_pid, iova, server_pid, buf)
    };
    if from_pid == to_pid {
        // A server that is its own client.
        let space = s
            .get_mut(from_pid)
            .and_then(|p| p.space.as_mut())
            .ok_or(Error::DeviceGone)?;
        return crate::usercopy::copy_user_to_user::<M>(space, from, None, to, len);
    }
    let (src, dst) = s.pair_mut(from_pid, to_pid).ok_or(Error::DeviceGone)?;
    let (Some(src), Some(dst)) = (src.space.as_mut(), dst.space.as_mut()) else {
        return Err(Error::DeviceGone);
    };
    crate::usercopy::copy_user_to_user::<M>(src, from, Some(dst), to, len)
}
