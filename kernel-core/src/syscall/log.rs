//! `log_write` and `log_read`: the kernel log.
//!
//! Rules: both are `#[inline(never)]`: their 4 KiB buffers would otherwise
//! land in the dispatcher's stack frame, and every system call would pay
//! for the stack probe a frame over a page needs.

use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::usercopy::USlice;
use abi::Error;
use abi::syscall::LOG_WRITE_MAX;

#[inline(never)]
pub fn write<M: Machine>(s: &mut Kernel<M>, buf: USlice) -> Result<usize, Error> {
    let mut bytes = [0u8; LOG_WRITE_MAX];
    let space = s.current().space()?;
    buf.read::<M>(space, &mut bytes)?;
    M::log_bytes(&bytes[..buf.len()]);
    Ok(buf.len())
}

#[inline(never)]
pub fn read<M: Machine>(s: &mut Kernel<M>, pos: u64, buf: USlice) -> Result<usize, Error> {
    let mut bytes = [0u8; LOG_WRITE_MAX];
    let (copied, _next, lost) = M::log_read(pos, &mut bytes[..buf.len()]);
    if lost > 0 {
        return Err(Error::NotFound);
    }
    let space = s.current().space()?;
    buf.write::<M>(space, &bytes[..copied])?;
    Ok(copied)
}
