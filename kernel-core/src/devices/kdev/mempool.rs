//! The `mempool` kernel device: the machine's free frames, and the
//! memory reserves of processes — read a selected process's use and
//! limits, set them, give it a reserve of its own, and stage the reserve
//! the caller's next fork gives its child. The mem server holds it.
//!
//! Rules: attaching needs `RIGHT_SYSTEM`; a selection names a process by
//! pid and is resolved at each use (an ended or unknown one is
//! `NotFound`); a limit below what a process already holds is refused
//! (`OutOfMemory`) rather than taking anything away; a new reserve takes
//! over exactly what the process held, so totals stay exact.

use super::{KernelDevice, SIZE_4_8, SIZE_8, require_size, state_mut};
use crate::devices::calls::Out;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::{ChildReserve, Pid, State};
use crate::reserve::{Account, Usage};
use crate::syscall::decode::Handle;
use abi::Error;
use abi::kdev::*;

/// The process a mempool handle selected (as written: checked at use).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub pid: u64,
}

super::attachment_state!(Selection, Mempool);

impl Selection {
    /// The selected process, if it is alive.
    fn live<M: Machine>(self, k: &mut Kernel<M>) -> Result<Pid, Error> {
        let pid = u32::try_from(self.pid).map_err(|_| Error::NotFound)?;
        match k.get_mut(pid) {
            Some(p) if p.state != State::Zombie => Ok(pid),
            _ => Err(Error::NotFound),
        }
    }
}

pub struct Mempool;

impl KernelDevice for Mempool {
    type State = Selection;

    fn port_in<M: Machine>(
        k: &mut Kernel<M>,
        selection: Selection,
        port: u32,
        size: u64,
    ) -> Result<u64, Error> {
        let wide = matches!(
            port,
            MEMPOOL_PORT_FREE | MEMPOOL_PORT_USED | MEMPOOL_PORT_LIMIT_NOW
        );
        require_size(size, if wide { SIZE_8 } else { SIZE_4_8 })?;
        if port == MEMPOOL_PORT_FREE {
            return Ok(M::free_frames());
        }
        if !matches!(
            port,
            MEMPOOL_PORT_USED
                | MEMPOOL_PORT_LIMIT_NOW
                | MEMPOOL_PORT_PROCESSES
                | MEMPOOL_PORT_PROCESS_LIMIT_NOW
        ) {
            return Err(Error::InvalidArgument);
        }
        let pid = selection.live(k)?;
        let (_, r) = k.proc_and_reserve(pid).ok_or(Error::NotFound)?;
        Ok(match port {
            MEMPOOL_PORT_USED => r.used(),
            MEMPOOL_PORT_LIMIT_NOW => r.limit().unwrap_or(MEMPOOL_UNLIMITED),
            MEMPOOL_PORT_PROCESSES => u64::from(r.processes()),
            _ => u64::from(r.process_limit()),
        })
    }

    fn port_out<M: Machine>(
        k: &mut Kernel<M>,
        h: Handle,
        port: u32,
        size: u64,
        value: u64,
    ) -> Result<Out, Error> {
        let wide = matches!(
            port,
            MEMPOOL_PORT_CHILD_RESERVE | MEMPOOL_PORT_LIMIT | MEMPOOL_PORT_NEW_RESERVE
        );
        let known = wide
            || matches!(
                port,
                MEMPOOL_PORT_SELECT | MEMPOOL_PORT_CHILD_PROCESSES | MEMPOOL_PORT_PROCESS_LIMIT
            );
        if !known {
            return Err(Error::InvalidArgument);
        }
        require_size(size, if wide { SIZE_8 } else { SIZE_4_8 })?;
        let selection = state_mut::<Mempool, M>(k, h)?;
        if port == MEMPOOL_PORT_SELECT {
            selection.pid = value;
            return Ok(Out::Done);
        }
        let selection = *selection;
        let limit = (value < MEMPOOL_UNLIMITED).then_some(value);
        let count = || u32::try_from(value).map_err(|_| Error::InvalidArgument);
        match port {
            MEMPOOL_PORT_CHILD_RESERVE => stage(k, |c| c.limit = limit),
            MEMPOOL_PORT_CHILD_PROCESSES => {
                let n = count()?;
                stage(k, |c| c.process_limit = Some(n));
            }
            MEMPOOL_PORT_LIMIT => {
                let pid = selection.live(k)?;
                let (_, r) = k.proc_and_reserve(pid).ok_or(Error::NotFound)?;
                r.set_limit(limit);
            }
            MEMPOOL_PORT_PROCESS_LIMIT => {
                let n = count()?;
                let pid = selection.live(k)?;
                let (_, r) = k.proc_and_reserve(pid).ok_or(Error::NotFound)?;
                r.set_process_limit(n);
            }
            _ => {
                let pid = selection.live(k)?;
                new_reserve(k, pid, limit)?;
            }
        }
        Ok(Out::Done)
    }
}

/// Changes the reserve the caller's next fork gives its child.
fn stage<M: Machine>(k: &mut Kernel<M>, change: impl FnOnce(&mut ChildReserve)) {
    let p = k.current();
    let staged = p.child_reserve.get_or_insert(ChildReserve {
        limit: None,
        process_limit: None,
    });
    change(staged);
}

/// Moves `pid` out of its reserve into a new one limited to `limit`.
fn new_reserve<M: Machine>(k: &mut Kernel<M>, pid: Pid, limit: Option<u64>) -> Result<(), Error> {
    let (p, old) = k.proc_and_reserve(pid).ok_or(Error::NotFound)?;
    let usage = p.usage;
    let old_id = p.reserve;
    let process_limit = old.process_limit();
    if limit.is_some_and(|l| usage.frames() > l) {
        return Err(Error::OutOfMemory);
    }
    let new_id = k.reserves.create(limit, process_limit)?;
    k.reserves.hold(new_id);
    let (p, old) = k.proc_and_reserve(pid).ok_or(Error::NotFound)?;
    Account {
        reserve: old,
        usage: &mut p.usage,
    }
    .credit_all();
    old.remove_process();
    p.usage = Usage::default();
    p.reserve = new_id;
    let (p, new) = k.proc_and_reserve(pid).ok_or(Error::NotFound)?;
    let mut account = Account {
        reserve: new,
        usage: &mut p.usage,
    };
    // What it held fits (checked above): these cannot fail.
    account.reserve.force_frames(usage.pages + usage.tables);
    account.usage.pages = usage.pages;
    account.usage.tables = usage.tables;
    let _ = account.charge_bytes(usage.kernel_bytes);
    let _ = new.add_process();
    k.reserves.release(old_id);
    Ok(())
}
