//! `set_handler`, `int_return`, `int_enable`, `irq_wait`, `irq_raise`:
//! the caller's interrupt state (see `abi::interrupt` and `upcall`).

use crate::process::Block;
use crate::sched::SCHED;
use abi::Error;
use abi::interrupt::VECTOR_COUNT;

pub fn set_handler(entry: u64, base: u64, size: u64) -> Result<usize, Error> {
    crate::upcall::set_handler(SCHED.lock().current(), entry, base, size)?;
    Ok(0)
}

pub fn int_return(frame: u64) -> Result<(), Error> {
    crate::upcall::int_return(SCHED.lock().current(), frame)
}

pub fn int_enable(on: u64) -> Result<usize, Error> {
    if on > 1 {
        return Err(Error::InvalidArgument);
    }
    let mut s = SCHED.lock();
    let p = s.current();
    let was = p.int_enabled;
    p.int_enabled = on == 1;
    Ok(was as usize)
}

pub fn irq_wait(mask: u64) -> Result<Option<usize>, Error> {
    super::check_vector_mask(mask)?;
    let mut s = SCHED.lock();
    let p = s.current();
    let taken = p.pending & mask;
    if taken != 0 {
        p.pending &= !taken;
        return Ok(Some(taken as usize));
    }
    s.block_current(Block::Irq { mask, dev: None });
    Ok(None)
}

pub fn irq_raise(vector: u64) -> Result<usize, Error> {
    if vector >= VECTOR_COUNT as u64 {
        return Err(Error::InvalidArgument);
    }
    let mut s = SCHED.lock();
    let pid = s.current_pid();
    s.raise(pid, vector as u32);
    Ok(0)
}
