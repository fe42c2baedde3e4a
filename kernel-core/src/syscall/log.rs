//! `log_write` and `log_read`: the kernel log.
//!
//! Rules: both are `#[inline(never)]`: their 4 KiB buffers would otherwise
//! land in the dispatcher's stack frame, and every system call would pay
//! for the stack probe a frame over a page needs.

use super::with_space;
use crate::kernel::Kernel;
use crate::machine::Machine;
use abi::Error;
use abi::syscall::LOG_WRITE_MAX;

#[inline(never)]
pub fn write<M: Machine>(s: &mut Kernel<M>, ptr: u64, len: u64) -> Result<usize, Error> {
    if len > LOG_WRITE_MAX as u64 {
        return Err(Error::InvalidArgument);
    }
    let mut buf = [0u8; LOG_WRITE_MAX];
    let buf = &mut buf[..len as usize];
    with_space(s, |space| {
        crate::usercopy::copy_from_user::<M>(space, ptr, buf)
    })?;
    M::log_bytes(buf);
    Ok(buf.len())
}

#[inline(never)]
pub fn read<M: Machine>(s: &mut Kernel<M>, pos: u64, ptr: u64, len: u64) -> Result<usize, Error> {
    let len = len.min(LOG_WRITE_MAX as u64) as usize;
    let mut buf = [0u8; LOG_WRITE_MAX];
    let (copied, _next, lost) = M::log_read(pos, &mut buf[..len]);
    if lost > 0 {
        return Err(Error::NotFound);
    }
    with_space(s, |space| {
        crate::usercopy::copy_to_user::<M>(space, ptr, &buf[..copied])
    })?;
    Ok(copied)
}
