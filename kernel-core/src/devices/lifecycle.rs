//! The bus's part in a process's life: what `fork` copies to the child's
//! bus, what `exec` drops or forgets, what `exit` releases.
//!
//! Rules: the child's handles keep their values (a program's handle
//! numbers mean the same after fork); only handles with RIGHT_CLONE are
//! copied and a served device never is (a device has one server); a
//! hardware attachment is copied bare (lines, mappings and exports stay
//! with the parent); every copy is charged to the child; exec forgets
//! everything tied to the old address space; exit releases every handle,
//! its served devices with them, and records the client whose request
//! the process was serving when it ended.

use super::calls::{credit_heap, detach, release};
use super::{Attachment, hw, kdev, user};
use crate::bus::Entry;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::Pid;
use crate::reserve::Account;
use abi::Error;
use abi::bus::*;
use arrayvec::ArrayVec;

/// The handles on `pid`'s bus that `keep` selects (a bus has at most
/// `BUS_SLOTS`, so they fit on the stack: no allocation, which could fail).
pub fn handles_of<M: Machine>(
    s: &mut Kernel<M>,
    pid: Pid,
    keep: impl Fn(&Entry<Attachment>) -> bool,
) -> ArrayVec<u64, { BUS_SLOTS as usize }> {
    let mut hs = ArrayVec::new();
    if let Some(p) = s.get_mut(pid) {
        for (h, e) in p.bus.iter() {
            if keep(e) {
                let _ = hs.try_push(h);
            }
        }
    }
    hs
}

/// Fork: the child's bus gets every handle with the CLONE right, at the
/// same value; user devices see a CLONE request (the child's client record
/// charged to the child's reserve). Served devices stay with the parent.
pub fn fork_bus<M: Machine>(s: &mut Kernel<M>, parent: Pid, child: Pid) -> Result<(), Error> {
    for h in handles_of(s, parent, |e| e.rights & RIGHT_CLONE != 0) {
        let Some(Ok(e)) = s.get_mut(parent).map(|p| p.bus.get(h)) else {
            continue;
        };
        let (rights, coe) = (e.rights, e.close_on_exec);
        let copy = match e.value {
            Attachment::Serve { .. } => continue,
            // A hardware attachment is inherited bare: lines, mappings and
            // exports stay with the parent.
            Attachment::Hardware { dev, .. } => Attachment::hardware(dev),
            Attachment::Kernel { dev, state, .. } => Attachment::kernel(dev, state),
            Attachment::Client { dev, client } => match s.devices.user(dev) {
                Ok(u) => {
                    let cost = u.client_cost() as u64;
                    let reserve = s.get_mut(child).ok_or(Error::NotFound)?.reserve;
                    let paid = user::charge(s, reserve, cost)?;
                    match s
                        .devices
                        .user(dev)
                        .and_then(|u| u.clone_client(client, child, paid))
                    {
                        Ok(client) => Attachment::Client { dev, client },
                        Err(e) => {
                            user::refund(s, paid);
                            return Err(e);
                        }
                    }
                }
                // The device is gone: the child inherits a dead handle, as
                // the parent holds one.
                Err(_) => Attachment::Client { dev, client },
            },
        };
        let dev = match copy {
            Attachment::Client { dev, .. } => Some(dev),
            _ => None,
        };
        if let Attachment::Hardware { dev, .. } = copy {
            // Counted before the insert: a failed one releases it.
            super::pci::held(s, dev);
        }
        let (c, r) = s.proc_and_reserve(child).ok_or(Error::NotFound)?;
        if let Err((e, att)) = c.bus.insert_at(h, copy, rights, coe) {
            release(s, child, h, att, false);
            return Err(e);
        }
        // The child's bus mirrors the parent's slots: charge what it grew.
        let now = c.bus.storage_bytes() as u64;
        if now > c.bus_bytes {
            let grew = now - c.bus_bytes;
            Account {
                reserve: r,
                usage: &mut c.usage,
            }
            .charge_bytes(grew)?;
            c.bus_bytes = now;
        }
        if let Some(dev) = dev {
            user::notify_server(s, dev);
        }
    }
    Ok(())
}

/// Exec: close-on-exec handles go; the others forget everything tied to
/// the old address space (exports, device mappings), which exec is about
/// to replace: their addresses would name the new program's pages.
pub fn exec_bus<M: Machine>(s: &mut Kernel<M>) {
    let pid = s.current_pid();
    for h in handles_of(s, pid, |e| e.close_on_exec) {
        let _ = detach(s, h);
    }
    for h in handles_of(s, pid, |_| true) {
        let Ok(e) = s.current().bus.get_mut(h) else {
            continue;
        };
        match &mut e.value {
            Attachment::Hardware { .. } => hw::forget_address_space(s, pid, h),
            &mut Attachment::Client { dev, client } => {
                if let Ok(u) = s.devices.user(dev) {
                    u.clear_exports(client);
                }
            }
            Attachment::Kernel { exports, .. } => {
                let freed = exports.clear() as u64;
                credit_heap(s, pid, freed);
            }
            Attachment::Serve { .. } => {}
        }
    }
}

/// Exit: every handle of `pid` goes (its served devices with them). The
/// bus's storage is credited with the rest of the process's memory. If
/// the process was serving a request when it ended, the client that made
/// it is named in its exit status (`ExitStatus::culprit`).
pub fn exit_bus<M: Machine>(s: &mut Kernel<M>, pid: Pid) {
    let Some(p) = s.get_mut(pid) else { return };
    let all = core::mem::take(&mut p.bus);
    kdev::klog::forget_listeners(s, |p, _| p == pid);
    let mut culprit = 0;
    for (h, e) in all.into_entries() {
        if let Attachment::Serve { dev } = e.value
            && culprit == 0
            && let Ok(u) = s.devices.user(dev)
            && let Some((_, client_pid)) = u.in_flight()
        {
            culprit = client_pid;
        }
        release(s, pid, h, e.value, true);
    }
    if let Some(p) = s.get_mut(pid) {
        p.exit.culprit = culprit;
    }
}
