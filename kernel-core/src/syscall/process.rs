//! Process<M> calls: `exit`, `wait_child`, `fork`, `exec`, `set_priority`,
//! `sys_info`.

use crate::charged::{ChargedFrames, MachineFrames};
use crate::kernel::Kernel;
use crate::kernel::release_space;
use crate::machine::Machine;
use crate::machine::{AddressSpace, UserFrame};
use crate::process::{Pid, Process};
use crate::reserve::{Account, ReserveId, Usage};
use crate::usercopy::{USlice, UserPtr};
use crate::vm::fork_pte;
use abi::syscall::CMDLINE_MAX;
use abi::{Error, ExitKind, ExitStatus, SysInfo};
use alloc::vec::Vec;

pub fn exit<M: Machine>(s: &mut Kernel<M>, code: i64) {
    let pid = s.current_pid();
    let status = ExitStatus {
        pid,
        kind: ExitKind::Exited as u32,
        code,
        ..ExitStatus::default()
    };
    s.exit(pid, status);
}

/// Copy-on-write fork: the child gets the parent's registers (with 0 as
/// this call's result), its handler and interrupt-enable state (not its
/// pending interrupts), its priority, and an address space sharing every
/// page (see `crate::vm::fork_pte`). It draws on the parent's
/// reserve, which is charged first — for the child's reference to every
/// page, its page tables, its record and its bus — so a fork that does not
/// fit fails before any work (`OutOfMemory`, or `LimitReached` at the
/// reserve's process limit).
pub fn fork<M: Machine>(s: &mut Kernel<M>) -> Result<usize, Error> {
    // The caller's registers as its syscall saved them.
    let frame = s.current().frame;
    // The reserve the child draws on: the caller's, or one made for it
    // now (staged through mempool's CHILD_RESERVE).
    let staged = s.current().child_reserve.take();
    let reserve = match staged {
        None => s.current().reserve,
        Some(c) => {
            let (_, own) = s.current_and_reserve().ok_or(Error::BadAddress)?;
            let process_limit = c.process_limit.unwrap_or(own.process_limit());
            // The limit is for the program the child will exec, not for the
            // spawner's code it runs until then (which holds the spawner's
            // pages): it takes effect at that exec.
            let id = s.reserves.create(None, process_limit)?;
            if let Some(r) = s.reserves.get_mut(id) {
                r.set_pending_limit(c.limit);
            }
            id
        }
    };
    let result = fork_into(s, frame, reserve);
    if staged.is_some() {
        s.reserves.discard_if_unused(reserve);
    }
    result
}

fn fork_into<M: Machine>(
    s: &mut Kernel<M>,
    frame: M::Frame,
    reserve: ReserveId,
) -> Result<usize, Error> {
    let (p, r) = s.current_with_reserve(reserve).ok_or(Error::BadAddress)?;
    if r.processes() >= r.process_limit() {
        return Err(Error::LimitReached);
    }
    let (pages, tables) = (p.usage.pages, p.usage.tables);
    if !r.fits(pages + tables, Process::<M>::RECORD_BYTES + p.bus_bytes) {
        return Err(Error::OutOfMemory);
    }
    let codec = M::codec();
    let mut child_usage = Usage::default();
    let mut child_pages = 0u64;
    let copied = {
        let mut frames = ChargedFrames::<M>::new(r, &mut child_usage);
        match M::new_space(&mut frames) {
            Some(mut child_space) => {
                let space = p.space();
                let result = space.and_then(|space| {
                    space.fork_into(&mut child_space, &mut frames, &mut |pte| {
                        let forked = fork_pte(codec, &mut MachineFrames::<M>::new(), pte)?;
                        let child = forked.child.unwrap_or(0);
                        if child != 0 {
                            child_pages += 1;
                        }
                        Ok((forked.parent, child))
                    })
                });
                match result {
                    Ok(()) => Ok(child_space),
                    Err(e) => {
                        release_space::<M>(child_space);
                        Err(e)
                    }
                }
            }
            None => Err(Error::OutOfMemory),
        }
    };
    let child_space = match copied {
        Ok(space) => space,
        Err(e) => {
            // The child's tables were charged as they were made: give them
            // back (their frames went with the space).
            let (_, r) = s.current_with_reserve(reserve).ok_or(Error::BadAddress)?;
            r.credit_frames(child_usage.tables);
            return Err(e);
        }
    };
    let parent = s.current();
    let (ppid, name, priority, affinity) =
        (parent.pid, parent.name, parent.priority, parent.affinity);
    let (handler, int_enabled, depth) = (parent.handler, parent.int_enabled, parent.handler_depth);
    let names = parent.names.clone();
    let mut child_frame = frame;
    child_frame.set_result(0);
    let pid = match s.spawn(
        ppid,
        name.as_str(),
        Some(priority),
        child_space,
        reserve,
        |f| *f = child_frame,
    ) {
        Ok(pid) => pid,
        Err((e, space)) => {
            release_space::<M>(space);
            if let Some((_, r)) = s.current_with_reserve(reserve) {
                r.credit_frames(child_usage.tables);
            }
            return Err(e);
        }
    };
    if let Some((child, r)) = s.proc_and_reserve(pid) {
        child.handler = handler;
        child.int_enabled = int_enabled;
        child.handler_depth = depth;
        child.names = names;
        // Its references were checked to fit above; its tables are
        // charged already.
        r.force_frames(child_pages);
        child.usage.pages = child_pages;
        child.usage.tables = child_usage.tables;
    }
    if affinity != 0 {
        // Queued anywhere by spawn: now where the parent may run.
        s.set_affinity(pid, affinity);
    }
    if let Err(e) = crate::devices::lifecycle::fork_bus(s, ppid, pid) {
        s.discard(pid);
        return Err(e);
    }
    Ok(pid as usize)
}

/// Replaces the caller's program with the ELF image at `image`. The
/// command line is "name args…": the name becomes the process name, the
/// rest the program's arguments. On failure the caller is unchanged.
/// The work is charged first: the image copied in is charged to the
/// caller's reserve while it is read, and the new program must fit the
/// reserve in place of the old one (and in the machine's free frames)
/// before a page of it is made, so an image that cannot be loaded fails at
/// once. Survives exec: pid, parent, children, priority, pending
/// interrupts, the name scope, the reserve. Does not: the address space,
/// the handler (the new program installs its own), interrupt enabling.
pub fn exec<M: Machine>(s: &mut Kernel<M>, image: USlice, cmdline: USlice) -> Result<(), Error> {
    let (p, r) = s.current_and_reserve().ok_or(Error::BadAddress)?;
    let buffer = crate::slab::footprint(image.len()) as u64;
    Account {
        reserve: r,
        usage: &mut p.usage,
    }
    .charge_bytes(buffer)?;
    let result = exec_charged(s, image, cmdline, buffer);
    if let Some((p, r)) = s.current_and_reserve() {
        Account {
            reserve: r,
            usage: &mut p.usage,
        }
        .credit_bytes(buffer);
    }
    result
}

fn exec_charged<M: Machine>(
    s: &mut Kernel<M>,
    image: USlice,
    cmdline: USlice,
    buffer: u64,
) -> Result<(), Error> {
    let mut bytes: Vec<u8> = Vec::new();
    bytes
        .try_reserve_exact(image.len())
        .map_err(|_| Error::OutOfMemory)?;
    bytes.resize(image.len(), 0);
    let mut cmd = [0u8; CMDLINE_MAX];
    let cmd = &mut cmd[..cmdline.len()];
    {
        let space = s.current().space()?;
        image.read::<M>(space, &mut bytes)?;
        cmdline.read::<M>(space, cmd)?;
    }
    let cmd = core::str::from_utf8(cmd).map_err(|_| Error::InvalidArgument)?;
    let (name, args) = cmd
        .trim_start()
        .split_once(' ')
        .unwrap_or((cmd.trim_start(), ""));
    // Charge first: the new image must fit where the old one (and the
    // copy of the image, gone by then) was.
    let plan = crate::loader::plan(&bytes)?;
    let (p, r) = s.current_and_reserve().ok_or(Error::BadAddress)?;
    let old = p.usage.pages + p.usage.tables;
    let need = plan.pages + plan.tables;
    let after = r.used_without(buffer).saturating_sub(old) + need;
    let fits = r.limit_after_exec().is_none_or(|limit| after <= limit);
    if !fits || M::free_frames() < need {
        return Err(Error::OutOfMemory);
    }
    let loaded = crate::loader::load::<M>(&bytes, args.as_bytes())?;
    drop(bytes);

    // The point of no return: the bus lets go of the old address space
    // (close-on-exec handles, exports, device mappings) while it still
    // exists, then the new one replaces it, and the reserve holds the new
    // image instead of the old.
    crate::devices::lifecycle::exec_bus(s);
    let (p, r) = s.current_and_reserve().ok_or(Error::BadAddress)?;
    let mut account = Account {
        reserve: r,
        usage: &mut p.usage,
    };
    let u = *account.usage;
    account.credit_pages(u.pages);
    account.credit_tables(u.tables);
    account.reserve.force_frames(loaded.pages + loaded.tables);
    account.reserve.apply_pending();
    account.usage.pages = loaded.pages;
    account.usage.tables = loaded.tables;
    p.frame = loaded.initial_frame();
    loaded.space.activate();
    if let Some(old) = p.space.replace(loaded.space) {
        release_space::<M>(old);
    }
    p.handler = None;
    p.handler_depth = 0;
    p.int_enabled = false;
    if !name.is_empty() {
        p.rename(name);
    }
    Ok(())
}

/// The process a scheduling call names: the caller (`pid` 0 or its own)
/// or one of its children; `NotFound`, or `AccessDenied` for any other.
fn self_or_child<M: Machine>(s: &mut Kernel<M>, pid: u64) -> Result<Pid, Error> {
    let me = s.current_pid();
    let target = if pid == 0 {
        me
    } else {
        u32::try_from(pid).map_err(|_| Error::NotFound)?
    };
    if target != me && s.get_mut(target).ok_or(Error::NotFound)?.parent != me {
        return Err(Error::AccessDenied);
    }
    Ok(target)
}

/// `set_priority(pid, priority)`: `pid` 0 means the caller. A process may
/// set its own priority or a child's, never more urgent than its own.
pub fn set_priority<M: Machine>(s: &mut Kernel<M>, pid: u64, priority: u8) -> Result<usize, Error> {
    let mine = s.current().priority;
    let target = self_or_child(s, pid)?;
    if priority < mine {
        return Err(Error::AccessDenied);
    }
    s.set_priority(target, priority);
    Ok(0)
}

/// `set_affinity(pid, mask)`: `pid` 0 means the caller; the same rule as
/// `set_priority` (itself or a child).
pub fn set_affinity<M: Machine>(s: &mut Kernel<M>, pid: u64, mask: u64) -> Result<usize, Error> {
    let target = self_or_child(s, pid)?;
    if mask != 0 && mask & s.online_mask() == 0 {
        return Err(Error::InvalidArgument);
    }
    s.set_affinity(target, mask);
    Ok(0)
}

pub fn sys_info<M: Machine>(s: &mut Kernel<M>, out: UserPtr<SysInfo>) -> Result<usize, Error> {
    // The heap gives back what it can first, so the figures are exact.
    let heap_frames = M::heap_frames();
    let info = SysInfo {
        free_frames: M::free_frames(),
        total_frames: M::managed_frames(),
        processes: s.process_count() as u64,
        ticks: M::ticks(),
        tick_hz: M::tick_hz(),
        handles: s.current().bus.len() as u64,
        heap_frames,
        spare_tables: s.current().space.as_ref().map_or(0, |sp| sp.spare_tables()),
        idle_cycles: M::idle_cycles(),
        cpu: M::cpu_index() as u32,
        cpus: s.cpus_online() as u32,
    };
    let space = s.current().space()?;
    out.write::<M>(space, &info)?;
    Ok(0)
}
