//! `vm_map`, `vm_protect`, `vm_unmap`, `vm_move`: the caller's own pages,
//! through the state machine in `kernel_core::vm`.

use crate::mm::{ChargedFrames, codec};
use crate::sched::Scheduler;
use abi::Error;
use kernel_core::vm::Vm;

fn with_vm(
    s: &mut Scheduler,
    f: impl FnOnce(&mut Vm<'_, crate::arch::paging::PageTable, ChargedFrames<'_>>) -> Result<(), Error>,
) -> Result<usize, Error> {
    let (p, r) = s.current_and_reserve().ok_or(Error::BadAddress)?;
    let space = p.space.as_mut().ok_or(Error::BadAddress)?;
    let mut frames = ChargedFrames::new(r, &mut p.usage);
    let mut vm = Vm {
        pt: space,
        frames: &mut frames,
        codec: codec(),
    };
    f(&mut vm)?;
    Ok(0)
}

pub fn map(s: &mut Scheduler, va: u64, len: u64, prot: u64) -> Result<usize, Error> {
    with_vm(s, |vm| vm.map_new(va, len, prot))
}

pub fn protect(s: &mut Scheduler, va: u64, len: u64, prot: u64) -> Result<usize, Error> {
    with_vm(s, |vm| vm.protect(va, len, prot))
}

pub fn unmap(s: &mut Scheduler, va: u64, len: u64) -> Result<usize, Error> {
    with_vm(s, |vm| vm.unmap(va, len))
}

pub fn move_pages(s: &mut Scheduler, dst: u64, src: u64, len: u64) -> Result<usize, Error> {
    with_vm(s, |vm| vm.move_pages(dst, src, len))
}
