//! The `proc` kernel device: the process table as ports (pid, parent,
//! state, priority, frames, name), `PROC_PORT_KILL` and
//! `PROC_PORT_KILL_TREE`.
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

use super::Attachment;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::{Pid, State};
use abi::kdev::*;
use abi::{Error, ExitKind, ExitStatus};

fn selected<M: Machine>(s: &mut Kernel<M>, h: u64) -> Result<Pid, Error> {
    match &s.current().bus.get(h)?.value {
        Attachment::Kernel { state, .. } => u32::try_from(state[0]).map_err(|_| Error::NotFound),
        _ => Err(Error::NotSupported),
    }
}

/// `port_in` on proc (READ was checked by the caller).
pub fn port_in<M: Machine>(s: &mut Kernel<M>, h: u64, port: u64, size: u64) -> Result<u64, Error> {
    let port = u32::try_from(port).map_err(|_| Error::InvalidArgument)?;
    let wide = port == PROC_PORT_FRAMES;
    if !(size == 8 || (size == 4 && !wide)) {
        return Err(Error::InvalidArgument);
    }
    if port == PROC_PORT_COUNT {
        return Ok(s.process_count() as u64);
    }
    let pid = selected(s, h)?;
    if port == PROC_PORT_NEXT {
        return Ok(u64::from(s.next_pid_after(pid).unwrap_or(0)));
    }
    let p = s.get_mut(pid).ok_or(Error::NotFound)?;
    match port {
        PROC_PORT_PARENT => Ok(u64::from(p.parent)),
        PROC_PORT_STATE => Ok(u64::from(match p.state {
            State::Runnable => PROC_STATE_RUNNABLE,
            State::Blocked(_) => PROC_STATE_BLOCKED,
            State::Zombie => PROC_STATE_ZOMBIE,
        })),
        PROC_PORT_PRIORITY => Ok(u64::from(p.priority)),
        PROC_PORT_FRAMES => Ok(p.usage.frames()),
        n if (PROC_PORT_NAME..PROC_PORT_NAME + 8).contains(&n) => {
            let at = 4 * (n - PROC_PORT_NAME) as usize;
            let mut word = [0u8; 4];
            for (i, b) in p.name.as_bytes().iter().skip(at).take(4).enumerate() {
                word[i] = *b;
            }
            Ok(u64::from(u32::from_le_bytes(word)))
        }
        _ => Err(Error::InvalidArgument),
    }
}

/// What a kill port did: finished, or stopped at a tick to go on later.
pub enum Killed {
    Done,
    Restart,
}

/// `port_out` on proc (WRITE was checked by the caller).
pub fn port_out<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    port: u64,
    size: u64,
    value: u64,
) -> Result<Killed, Error> {
    if size != 4 && size != 8 {
        return Err(Error::InvalidArgument);
    }
    match u32::try_from(port).map_err(|_| Error::InvalidArgument)? {
        PROC_PORT_SELECT => {
            if let Attachment::Kernel { state, .. } = &mut s.current().bus.get_mut(h)?.value {
                state[0] = value;
            }
            Ok(Killed::Done)
        }
        port @ (PROC_PORT_KILL | PROC_PORT_KILL_TREE | PROC_PORT_REVOKE) => {
            if s.current().bus.get(h)?.rights & abi::bus::RIGHT_KILL == 0 {
                return Err(Error::AccessDenied);
            }
            let target = selected(s, h)?;
            let me = s.current_pid();
            match s.get_mut(target) {
                None => return Err(Error::NotFound),
                Some(p) if p.state == State::Zombie => return Err(Error::NotFound),
                Some(_) => {}
            }
            if !s.is_ancestor_or_self(me, target) {
                return Err(Error::AccessDenied);
            }
            match port {
                PROC_PORT_KILL => {
                    kill(s, target, me);
                    Ok(Killed::Done)
                }
                PROC_PORT_REVOKE => {
                    revoke(s, target, value)?;
                    Ok(Killed::Done)
                }
                _ => kill_tree(s, target, me),
            }
        }
        _ => Err(Error::InvalidArgument),
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
    let held = super::calls::handles_of(s, target, |_| true);
    for th in held {
        let Some(dev) = s
            .get_mut(target)
            .and_then(|p| p.bus.get(th).ok())
            .map(|e| e.value.device())
        else {
            continue;
        };
        if s.devices.name_of(dev) == Some(name.as_str()) {
            let _ = super::calls::detach_of(s, target, th);
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
fn kill_tree<M: Machine>(s: &mut Kernel<M>, root: Pid, killer: Pid) -> Result<Killed, Error> {
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
            return Ok(Killed::Done);
        }
        cursor = s.get_mut(leaf).map_or(root, |p| p.parent);
        s.exit(leaf, killed_by(leaf, killer));
        if M::preempt_due() {
            return Ok(Killed::Restart);
        }
    }
}
