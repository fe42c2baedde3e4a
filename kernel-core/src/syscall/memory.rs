//! `vm_map`, `vm_protect`, `vm_unmap`, `vm_move`: the caller's own pages,
//! through the state machine in `crate::vm`.

use super::decode::Pages;
use crate::charged::ChargedFrames;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::Restart;
use crate::vm::{Step, Vm};
use abi::{Error, Sysno};

fn with_vm<M: Machine>(
    s: &mut Kernel<M>,
    f: impl FnOnce(&mut Vm<'_, M::Space, ChargedFrames<'_, M>>) -> Result<(), Error>,
) -> Result<usize, Error> {
    let (p, r) = s.current_and_reserve().ok_or(Error::BadAddress)?;
    let space = p.space.as_mut().ok_or(Error::BadAddress)?;
    let mut frames = ChargedFrames::<M>::new(r, &mut p.usage);
    let mut vm = Vm {
        pt: space,
        frames: &mut frames,
        codec: M::codec(),
    };
    f(&mut vm)?;
    Ok(0)
}

/// Runs a resumable operation of `call` with `args`: from where an earlier
/// stop of the same call left it, stopping again at a tick (the call is
/// then made again when the process next runs: `Ok(None)`).
#[inline(always)]
fn resumable<M: Machine>(
    s: &mut Kernel<M>,
    call: Sysno,
    args: [u64; 3],
    op: impl FnOnce(&mut Vm<'_, M::Space, ChargedFrames<'_, M>>, u64) -> Result<Step, Error>,
) -> Result<Option<usize>, Error> {
    let p = s.current();
    let from = match p.restart.take() {
        Some(r) if r.call == call && r.args == args => r.done,
        _ => 0,
    };
    let (p, r) = s.current_and_reserve().ok_or(Error::BadAddress)?;
    let space = p.space.as_mut().ok_or(Error::BadAddress)?;
    let mut frames = ChargedFrames::<M>::new(r, &mut p.usage);
    let mut vm = Vm {
        pt: space,
        frames: &mut frames,
        codec: M::codec(),
    };
    let step = op(&mut vm, from)?;
    match step {
        Step::Done => Ok(Some(0)),
        Step::Paused(done) => {
            s.current().restart = Some(Restart { call, args, done });
            s.restart_current();
            Ok(None)
        }
    }
}

fn due<M: Machine>() -> bool {
    M::preempt_due()
}

#[inline(always)]
pub fn map<M: Machine>(s: &mut Kernel<M>, pages: Pages, prot: u64) -> Result<Option<usize>, Error> {
    let Pages { va, len } = pages;
    resumable(s, Sysno::VmMap, [va, len, prot], |vm, from| {
        vm.map_new_from(va, len, prot, from, &mut due::<M>)
    })
}

#[inline(always)]
pub fn protect<M: Machine>(
    s: &mut Kernel<M>,
    pages: Pages,
    prot: u64,
) -> Result<Option<usize>, Error> {
    let Pages { va, len } = pages;
    resumable(s, Sysno::VmProtect, [va, len, prot], |vm, from| {
        vm.protect_from(va, len, prot, from, &mut due::<M>)
    })
}

#[inline(always)]
pub fn unmap<M: Machine>(s: &mut Kernel<M>, pages: Pages) -> Result<Option<usize>, Error> {
    let Pages { va, len } = pages;
    resumable(s, Sysno::VmUnmap, [va, len, 0], |vm, _| {
        vm.unmap_step(va, len, &mut due::<M>)
    })
}

pub fn move_pages<M: Machine>(
    s: &mut Kernel<M>,
    dst: u64,
    src: u64,
    len: u64,
) -> Result<usize, Error> {
    with_vm(s, |vm| vm.move_pages(dst, src, len))
}
