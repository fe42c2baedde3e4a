//! `set_handler`, `int_return`, `int_enable`, `irq_wait`, `irq_raise`:
//! the caller's interrupt state (see `abi::interrupt` and `upcall`).

use crate::kernel::Kernel;
use crate::machine::Machine;
use abi::Error;
use abi::interrupt::VECTOR_COUNT;

pub fn set_handler<M: Machine>(
    s: &mut Kernel<M>,
    entry: u64,
    base: u64,
    size: u64,
) -> Result<usize, Error> {
    crate::kernel::upcall::set_handler(s.current(), entry, base, size)?;
    Ok(0)
}

pub fn int_return<M: Machine>(s: &mut Kernel<M>, frame: u64) -> Result<(), Error> {
    crate::kernel::upcall::int_return(s.current(), frame)
}

pub fn int_enable<M: Machine>(s: &mut Kernel<M>, on: u64) -> Result<usize, Error> {
    if on > 1 {
        return Err(Error::InvalidArgument);
    }
    let p = s.current();
    let was = p.int_enabled;
    p.int_enabled = on == 1;
    Ok(was as usize)
}

pub fn irq_wait<M: Machine>(s: &mut Kernel<M>, mask: u64) -> Result<Option<usize>, Error> {
    super::irq_wait_on(s, mask, None)
}

pub fn irq_raise<M: Machine>(s: &mut Kernel<M>, vector: u64) -> Result<usize, Error> {
    if vector >= VECTOR_COUNT as u64 {
        return Err(Error::InvalidArgument);
    }
    let pid = s.current_pid();
    s.raise(pid, vector as u32);
    Ok(0)
}
