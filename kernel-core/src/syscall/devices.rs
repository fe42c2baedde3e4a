//! The bus and user-device calls that are more than one call into
//! `crate::devices`: copying a name or a structure in or out, resolving a
//! serving handle, answering then polling.

use super::decode::{Handle, Port, Rights};
use crate::devices::{calls, user};
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::Block;
use crate::usercopy::{USlice, UserPtr};
use abi::bus::{DEVICE_NAME_MAX, NAME_LIST_MAX};
use abi::userdev::Request;
use abi::{DeviceConfig, DeviceInfo, Error};

/// `restrict_names(list, len)`: narrows the caller's name scope to the
/// NUL-separated names in `list` (crate::names has the rules).
pub fn restrict_names<M: Machine>(s: &mut Kernel<M>, list: USlice) -> Result<usize, Error> {
    let mut buf = [0u8; NAME_LIST_MAX];
    let space = s.current().space()?;
    list.read::<M>(space, &mut buf)?;
    s.current().names.narrow(&buf[..list.len()])?;
    Ok(0)
}

#[inline(always)]
pub fn attach<M: Machine>(
    s: &mut Kernel<M>,
    registry: Handle,
    name: USlice,
    rights: Rights,
    close_on_exec: bool,
) -> Result<usize, Error> {
    let mut buf = [0u8; DEVICE_NAME_MAX];
    let space = s.current().space()?;
    name.read::<M>(space, &mut buf)?;
    calls::attach(s, registry, &buf[..name.len()], rights, close_on_exec).map(|h| h as usize)
}

#[inline(always)]
pub fn info<M: Machine>(
    s: &mut Kernel<M>,
    h: Handle,
    out: UserPtr<DeviceInfo>,
) -> Result<usize, Error> {
    let info = calls::info(s, h)?;
    let space = s.current().space()?;
    out.write::<M>(space, &info)?;
    Ok(0)
}

/// `port_out`; `Ok(None)` when it stopped at a preemption point (the
/// call starts again when the caller next runs).
#[inline(always)]
pub fn port_out<M: Machine>(
    s: &mut Kernel<M>,
    h: Handle,
    port: Port,
    value: u64,
) -> Result<Option<usize>, Error> {
    match calls::port_out(s, h, port, value)? {
        calls::Out::Restart => {
            s.restart_current();
            Ok(None)
        }
        _ => Ok(Some(0)),
    }
}

pub fn dev_create<M: Machine>(
    s: &mut Kernel<M>,
    registry: Handle,
    config: UserPtr<DeviceConfig>,
) -> Result<usize, Error> {
    let space = s.current().space()?;
    let config = config.read::<M>(space)?;
    user::create(s, registry, &config).map(|h| h as usize)
}

#[inline(always)]
pub fn dev_poll<M: Machine>(
    s: &mut Kernel<M>,
    dev: Handle,
    out: Option<UserPtr<Request>>,
    nowait: bool,
) -> Result<Option<usize>, Error> {
    let dev = user::served(s, dev)?;
    user::poll(s, dev, out, nowait)
}

#[inline(always)]
pub fn dev_write_iospace<M: Machine>(
    s: &mut Kernel<M>,
    dev: Handle,
    client: u64,
    port: Port,
    value: u64,
) -> Result<usize, Error> {
    let dev = user::served(s, dev)?;
    s.devices
        .user(dev)?
        .write_iospace(client, u64::from(port.port), port.size, value)?;
    Ok(0)
}

#[inline(always)]
pub fn dev_irq<M: Machine>(
    s: &mut Kernel<M>,
    dev: Handle,
    client: u64,
    line: u64,
) -> Result<usize, Error> {
    let dev = user::served(s, dev)?;
    user::irq(s, dev, client, line).map(|()| 0)
}

#[inline(always)]
pub fn dev_dma<M: Machine>(
    s: &mut Kernel<M>,
    dev: Handle,
    client: u64,
    iova: u64,
    buf: USlice,
    to_client: bool,
) -> Result<usize, Error> {
    let dev = user::served(s, dev)?;
    user::dma(s, dev, client, iova, buf, to_client).map(|()| 0)
}

/// `dev_reply_poll`: answer one client (an I/O-space write, an IRQ), then
/// poll. Everything that can fail is checked before anything changes: a
/// bad line leaves the I/O space unwritten. When no request waits, the
/// server goes to sleep before the client is woken, so the client runs
/// next directly.
#[inline(always)]
pub fn dev_reply_poll<M: Machine>(
    s: &mut Kernel<M>,
    dev: Handle,
    client: u64,
    answer: Option<(Port, u64)>,
    line: Option<u64>,
    out: Option<UserPtr<Request>>,
) -> Result<Option<usize>, Error> {
    let dev = user::served(s, dev)?;
    let u = s.devices.user(dev)?;
    let target = match line {
        Some(line) => u.irq_target(client, line)?,
        None => None,
    };
    if let Some((port, value)) = answer {
        u.write_iospace(client, u64::from(port.port), port.size, value)?;
    }
    if line.is_some() {
        u.answered(client);
    }
    if u.pending_requests() == 0 {
        s.block_current(Block::Poll { dev, out });
        if let Some((pid, vector)) = target {
            s.raise(pid, vector);
        }
        return Ok(None);
    }
    if let Some((pid, vector)) = target {
        s.raise(pid, vector);
    }
    user::poll(s, dev, out, false)
}
