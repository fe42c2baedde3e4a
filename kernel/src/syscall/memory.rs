//! `vm_map`, `vm_protect`, `vm_unmap`, `vm_move`: the caller's own pages,
//! through the state machine in `kernel_core::vm`.

use crate::mm::{ChargedFrames, codec};
use crate::process::Restart;
use crate::sched::Scheduler;
use abi::{Error, Sysno};
use kernel_core::vm::{Step, Vm};

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

/// Runs a resumable operation of `call` with `args`: from where an earlier
/// stop of the same call left it, stopping again at a tick (the call is
/// then made again when the process next runs: `Ok(None)`).
fn resumable(
    s: &mut Scheduler,
    call: Sysno,
    args: [u64; 3],
    op: impl FnOnce(
        &mut Vm<'_, crate::arch::paging::PageTable, ChargedFrames<'_>>,
        u64,
    ) -> Result<Step, Error>,
) -> Result<Option<usize>, Error> {
    let p = s.current();
    let from = match p.restart.take() {
        Some(r) if r.call == call && r.args == args => r.done,
        _ => 0,
    };
    let mut step = Step::Done;
    with_vm(s, |vm| {
        step = op(vm, from)?;
        Ok(())
    })?;
    match step {
        Step::Done => Ok(Some(0)),
        Step::Paused(done) => {
            s.current().restart = Some(Restart { call, args, done });
            s.restart_current();
            Ok(None)
        }
    }
}

fn due() -> bool {
    crate::trap::preempt_due()
}

pub fn map(s: &mut Scheduler, va: u64, len: u64, prot: u64) -> Result<Option<usize>, Error> {
    resumable(s, Sysno::VmMap, [va, len, prot], |vm, from| {
        vm.map_new_from(va, len, prot, from, &mut due)
    })
}

pub fn protect(s: &mut Scheduler, va: u64, len: u64, prot: u64) -> Result<Option<usize>, Error> {
    resumable(s, Sysno::VmProtect, [va, len, prot], |vm, from| {
        vm.protect_from(va, len, prot, from, &mut due)
    })
}

pub fn unmap(s: &mut Scheduler, va: u64, len: u64) -> Result<Option<usize>, Error> {
    resumable(s, Sysno::VmUnmap, [va, len, 0], |vm, _| {
        vm.unmap_step(va, len, &mut due)
    })
}

pub fn move_pages(s: &mut Scheduler, dst: u64, src: u64, len: u64) -> Result<usize, Error> {
    with_vm(s, |vm| vm.move_pages(dst, src, len))
}
