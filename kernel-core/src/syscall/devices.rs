//! Decoding of the bus and user-device calls (see `bus::calls` and
//! `bus::user` for what they do).

use crate::devices::{calls, user};
use crate::kernel::Kernel;
use crate::machine::Machine;
use abi::bus::{DEVICE_NAME_MAX, NAME_LIST_MAX};
use abi::syscall::POLL_NOWAIT;
use abi::{DeviceConfig, Error};

fn copy_in<M: Machine, T: Copy + Default>(s: &mut Kernel<M>, ptr: u64) -> Result<T, Error> {
    let mut value = T::default();
    // SAFETY: T is a plain repr(C) abi type: any bytes are a value of it.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut((&raw mut value).cast::<u8>(), core::mem::size_of::<T>())
    };
    let space = s.current().space.as_mut().ok_or(Error::BadAddress)?;
    crate::usercopy::copy_from_user::<M>(space, ptr, bytes)?;
    Ok(value)
}

/// `restrict_names(list, len)`: narrows the caller's name scope to the
/// NUL-separated names in `list` (crate::names has the rules).
pub fn restrict_names<M: Machine>(s: &mut Kernel<M>, list: u64, len: u64) -> Result<usize, Error> {
    if len > NAME_LIST_MAX as u64 {
        return Err(Error::InvalidArgument);
    }
    let mut buf = [0u8; NAME_LIST_MAX];
    let bytes = &mut buf[..len as usize];
    {
        let space = s.current().space.as_mut().ok_or(Error::BadAddress)?;
        crate::usercopy::copy_from_user::<M>(space, list, bytes)?;
    }
    s.current().names.narrow(bytes)?;
    Ok(0)
}

pub fn attach<M: Machine>(
    s: &mut Kernel<M>,
    registry: u64,
    name: u64,
    len: u64,
    rights: u64,
) -> Result<usize, Error> {
    if len == 0 || len > DEVICE_NAME_MAX as u64 {
        return Err(Error::InvalidArgument);
    }
    let mut buf = [0u8; DEVICE_NAME_MAX];
    {
        let space = s.current().space.as_mut().ok_or(Error::BadAddress)?;
        crate::usercopy::copy_from_user::<M>(space, name, &mut buf[..len as usize])?;
    }
    calls::attach(s, registry, &buf[..len as usize], rights).map(|h| h as usize)
}

pub fn detach<M: Machine>(s: &mut Kernel<M>, h: u64) -> Result<usize, Error> {
    calls::detach(s, h).map(|()| 0)
}

pub fn info<M: Machine>(s: &mut Kernel<M>, h: u64, out: u64) -> Result<usize, Error> {
    let info = calls::info(s, h)?;
    let space = s.current().space.as_mut().ok_or(Error::BadAddress)?;
    crate::usercopy::write_struct::<M, _>(space, out, &info)?;
    Ok(0)
}

pub fn restrict<M: Machine>(s: &mut Kernel<M>, h: u64, rights: u64) -> Result<usize, Error> {
    calls::restrict(s, h, rights).map(|()| 0)
}

pub fn port_in<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    port: u64,
    size: u64,
) -> Result<usize, Error> {
    calls::port_in(s, h, port, size).map(|v| v as usize)
}

/// `port_out`; `Ok(None)` when it stopped at a preemption point (the
/// call starts again when the caller next runs).
pub fn port_out<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    port: u64,
    size: u64,
    value: u64,
) -> Result<Option<usize>, Error> {
    match calls::port_out(s, h, port, size, value)? {
        calls::Out::Restart => {
            s.restart_current();
            Ok(None)
        }
        _ => Ok(Some(0)),
    }
}

pub fn port_out_wait<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    port: u64,
    size: u64,
    value: u64,
    mask: u64,
) -> Result<Option<usize>, Error> {
    calls::port_out_wait(s, h, port, size, value, mask)
}

pub fn export<M: Machine>(s: &mut Kernel<M>, h: u64, va: u64, len: u64) -> Result<usize, Error> {
    calls::export(s, h, va, len).map(|iova| iova as usize)
}

pub fn unexport<M: Machine>(s: &mut Kernel<M>, h: u64, iova: u64) -> Result<usize, Error> {
    calls::unexport(s, h, iova).map(|()| 0)
}

pub fn irq_map<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    line: u64,
    vector: u64,
) -> Result<usize, Error> {
    calls::irq_map(s, h, line, vector).map(|()| 0)
}

pub fn irq_ack<M: Machine>(s: &mut Kernel<M>, h: u64, line: u64) -> Result<usize, Error> {
    calls::irq_ack(s, h, line).map(|()| 0)
}

pub fn dev_create<M: Machine>(s: &mut Kernel<M>, config: u64) -> Result<usize, Error> {
    let config: DeviceConfig = copy_in(s, config)?;
    user::create(s, &config).map(|h| h as usize)
}

pub fn dev_poll<M: Machine>(
    s: &mut Kernel<M>,
    dev: u64,
    out: u64,
    flags: u64,
) -> Result<Option<usize>, Error> {
    if flags & !POLL_NOWAIT != 0 {
        return Err(Error::InvalidArgument);
    }
    let dev = user::served(s, dev)?;
    user::poll(s, dev, out, flags & POLL_NOWAIT != 0)
}

pub fn dev_write_iospace<M: Machine>(
    s: &mut Kernel<M>,
    dev: u64,
    client: u64,
    port: u64,
    size: u64,
    value: u64,
) -> Result<usize, Error> {
    let dev = user::served(s, dev)?;
    s.devices
        .user(dev)?
        .write_iospace(client, port, size, value)?;
    Ok(0)
}

pub fn dev_irq<M: Machine>(
    s: &mut Kernel<M>,
    dev: u64,
    client: u64,
    line: u64,
) -> Result<usize, Error> {
    let dev = user::served(s, dev)?;
    user::irq(s, dev, client, line).map(|()| 0)
}

pub fn dev_dma<M: Machine>(
    s: &mut Kernel<M>,
    dev: u64,
    client: u64,
    iova: u64,
    buf: u64,
    len: u64,
    to_client: bool,
) -> Result<usize, Error> {
    let dev = user::served(s, dev)?;
    user::dma(s, dev, client, iova, buf, len, to_client).map(|()| 0)
}

/// `dev_reply_poll(dev, client, port_size, value, line, out)`: answer one
/// client (I/O-space write unless `port_size` is 0, IRQ unless `line` is
/// `u64::MAX`), then poll. When no request waits, the server goes to
/// sleep before the client is woken, so the client runs next directly.
pub fn dev_reply_poll<M: Machine>(
    s: &mut Kernel<M>,
    dev: u64,
    client: u64,
    port_size: u64,
    value: u64,
    line: u64,
    out: u64,
) -> Result<Option<usize>, Error> {
    let dev = user::served(s, dev)?;
    let u = s.devices.user(dev)?;
    if port_size != 0 {
        let (port, size) = (port_size >> 8, port_size & 0xff);
        u.write_iospace(client, port, size, value)?;
    }
    let target = if line == u64::MAX {
        None
    } else {
        let target = u.irq_target(client, line)?;
        u.answered(client);
        target
    };
    if u.pending_requests() == 0 {
        s.block_current(crate::process::Block::Poll { dev, out });
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

pub fn iomap<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    va: u64,
    phys: u64,
    len: u64,
) -> Result<usize, Error> {
    calls::iomap(s, h, va, phys, len).map(|()| 0)
}

pub fn iounmap<M: Machine>(s: &mut Kernel<M>, h: u64, va: u64, len: u64) -> Result<usize, Error> {
    calls::iounmap(s, h, va, len).map(|()| 0)
}
