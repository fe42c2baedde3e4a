//! The `proc` kernel device: the process table as ports (pid, parent,
//! state, priority, frames, name), `PROC_PORT_KILL`, `PROC_PORT_KILL_TREE`
//! and `PROC_PORT_REVOKE`.
//!
//! Rules: selecting needs WRITE, reading READ, killing RIGHT_KILL and that
//! the caller is the target or one of its ancestors (so a shell can end
//! what it ran, init anything, and no one a process outside its own
//! tree); a process already ended is `NotFound`; the walk up the parent
//! chain is bounded by the table size, so no parent loop can trap it; a
//! tree kill goes deepest first (so no victim is handed to init before it
//! dies) and is a restartable call: at a timer tick it stops, lets the
//! scheduler run, and the caller's `port_out` starts again where the tree
//! now stands.

use super::{KernelDevice, SIZE_4_8, SIZE_8, require_size, state_mut};
use crate::devices::calls::Out;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::{Pid, State};
use crate::syscall::decode::Handle;
use abi::kdev::*;
use abi::{Error, ExitKind, ExitStatus};

/// The process a proc handle selected (as written: checked at use).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub pid: u64,
}

super::attachment_state!(Selection, Proc);

impl Selection {
    fn pid(self) -> Result<Pid, Error> {
        u32::try_from(self.pid).map_err(|_| Error::NotFound)
    }
}

pub struct Proc;

impl KernelDevice for Proc {
    type State = Selection;

    fn port_in<M: Machine>(
        k: &mut Kernel<M>,
        selection: Selection,
        port: u32,
        size: u64,
    ) -> Result<u64, Error> {
        let wide = port == PROC_PORT_FRAMES || port == PROC_PORT_AFFINITY;
        require_size(size, if wide { SIZE_8 } else { SIZE_4_8 })?;
        if port == PROC_PORT_COUNT {
            return Ok(k.process_count() as u64);
        }
        let pid = selection.pid()?;
        if port == PROC_PORT_NEXT {
            return Ok(u64::from(k.next_pid_after(pid).unwrap_or(0)));
        }
        let p = k.get_mut(pid).ok_or(Error::NotFound)?;
        match port {
            PROC_PORT_PARENT => Ok(u64::from(p.parent)),
            PROC_PORT_STATE => Ok(u64::from(match p.state {
                State::Runnable => PROC_STATE_RUNNABLE,
                State::Blocked(_) => PROC_STATE_BLOCKED,
                State::Zombie => PROC_STATE_ZOMBIE,
            })),
            PROC_PORT_PRIORITY => Ok(u64::from(p.priority)),
            PROC_PORT_FRAMES => Ok(p.usage.frames()),
            PROC_PORT_AFFINITY => Ok(p.affinity),
            PROC_PORT_CPU => {
                let running = p.state == State::Runnable;
                Ok(u64::from(
                    k.cpu_of(pid)
                        .filter(|_| running)
                        .map_or(PROC_CPU_NONE, |c| c as u32),
                ))
            }
            n if (PROC_PORT_NAME..PROC_PORT_NAME + 8).contains(&n) => {
                Ok(crate::devices::name_word(&p.name, n - PROC_PORT_NAME))
            }
            _ => Err(Error::InvalidArgument),
        }
    }

    fn port_out<M: Machine>(
        k: &mut Kernel<M>,
        h: Handle,
        port: u32,
        size: u64,
        value: u64,
    ) -> Result<Out, Error> {
        require_size(size, SIZE_4_8)?;
        match port {
            PROC_PORT_SELECT => {
                state_mut::<Proc, M>(k, h)?.pid = value;
                Ok(Out::Done)
            }
            PROC_PORT_KILL | PROC_PORT_KILL_TREE | PROC_PORT_REVOKE => {
                if k.current().bus.get(h)?.rights & abi::bus::RIGHT_KILL == 0 {
                    return Err(Error::AccessDenied);
                }
                let target = state_mut::<Proc, M>(k, h)?.pid()?;
                let me = k.current_pid();
                match k.get_mut(target) {
                    None => return Err(Error::NotFound),
                    Some(p) if p.state == State::Zombie => return Err(Error::NotFound),
                    Some(_) => {}
                }
                if !k.is_ancestor_or_self(me, target) {
                    return Err(Error::AccessDenied);
                }
                match port {
                    PROC_PORT_KILL => {
                        kill(k, target, me);
                        Ok(Out::Done)
                    }
                    PROC_PORT_REVOKE => {
                        revoke(k, target, value)?;
                        Ok(Out::Done)
                    }
                    _ => kill_tree(k, target, me),
                }
            }
            _ => Err(Error::InvalidArgument),
        }
    }
}

/// Takes the name of the device handle `h` (the caller's) names out of
/// `target`'s name scope.
fn revoke<M: Machine>(s: &mut Kernel<M>, target: Pid, h: u64) -> Result<(), Error> {
    let dev = s.current().bus.get(h)?.value.device();
    let name = s
        .devices
        .name_of(dev)
        .ok_or(Error::DeviceGone)?
        .parse::<arrayvec::ArrayString<32>>()
        .map_err(|_| Error::InvalidArgument)?;
    let p = s.get_mut(target).ok_or(Error::NotFound)?;
    p.names.revoke(name.as_str())?;
    // What it holds of that name goes too: its next use is `BadHandle`.
    let held = crate::devices::lifecycle::handles_of(s, target, |_| true);
    for th in held {
        let Some(dev) = s
            .get_mut(target)
            .and_then(|p| p.bus.get(th).ok())
            .map(|e| e.value.device())
        else {
            continue;
        };
        if s.devices.name_of(dev) == Some(name.as_str()) {
            let _ = crate::devices::calls::detach_of(s, target, th);
        }
    }
    crate::klog!(M, "[kernel] pid {target} may no longer use '{name}'");
    Ok(())
}

/// The status of a process `killer` ended.
fn killed_by(target: Pid, killer: Pid) -> ExitStatus {
    ExitStatus {
        pid: target,
        kind: ExitKind::KilledBy as u32,
        code: i64::from(killer),
        ..ExitStatus::default()
    }
}

/// Ends `target` on behalf of `killer`.
fn kill<M: Machine>(s: &mut Kernel<M>, target: Pid, killer: Pid) {
    crate::klog!(M, "[kernel] pid {target} killed by pid {killer}");
    s.exit(target, killed_by(target, killer));
}

/// Ends `root` and everything below it, deepest first: from a cursor, go
/// down through first children to a process without live children, end
/// it, and go on from its parent. Each process is reached once per call
/// (the walk never starts over from the root), so a call costs what the
/// tree holds; at a timer tick the call stops and is made again, walking
/// down from the root once more to where the tree now ends. The caller is
/// never below `root` (it is an ancestor or `root` itself), so if it dies
/// it dies last. One line in the log per tree, not per process: a tree
/// may hold thousands.
fn kill_tree<M: Machine>(s: &mut Kernel<M>, root: Pid, killer: Pid) -> Result<Out, Error> {
    let mut cursor = root;
    loop {
        let mut leaf = cursor;
        while let Some(child) = s.first_child(leaf) {
            leaf = child;
        }
        if leaf == root {
            crate::klog!(
                M,
                "[kernel] pid {root} and all below it killed by pid {killer}"
            );
            s.exit(root, killed_by(root, killer));
            return Ok(Out::Done);
        }
        cursor = s.get_mut(leaf).map_or(root, |p| p.parent);
        s.exit(leaf, killed_by(leaf, killer));
        if M::preempt_due() {
            return Ok(Out::Restart);
        }
    }
}
