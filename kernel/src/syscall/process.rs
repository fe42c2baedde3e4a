//! Process calls: `exit`, `wait_child`, `fork`, `exec`, `set_priority`,
//! `sys_info`.

use super::with_space;
use crate::arch::entry::TrapFrame;
use crate::arch::paging::{self, PageTable};
use crate::mm::{self, KernelFrames, codec};
use crate::process::PRIORITY_LEVELS;
use crate::sched::Scheduler;
use abi::syscall::{CMDLINE_MAX, EXEC_IMAGE_MAX, WAIT_NOHANG};
use abi::{Error, ExitKind, ExitStatus, SysInfo};
use alloc::vec::Vec;
use kernel_core::vm::fork_pte;

pub fn exit(s: &mut Scheduler, code: i64) {
    let pid = s.current_pid();
    let status = ExitStatus {
        pid,
        kind: ExitKind::Exited as u32,
        code,
        ..ExitStatus::default()
    };
    s.exit(pid, status);
}

pub fn wait_child(s: &mut Scheduler, out: u64, flags: u64) -> Result<Option<usize>, Error> {
    if flags & !WAIT_NOHANG != 0 {
        return Err(Error::InvalidArgument);
    }
    let pid = s.wait_child(out, flags & WAIT_NOHANG != 0)?;
    Ok(pid.map(|p| p as usize))
}

/// Copy-on-write fork: the child gets the parent's registers (with 0 as
/// this call's result), its handler and interrupt-enable state (not its
/// pending interrupts), its priority, and an address space sharing every
/// page (see `kernel_core::vm::fork_pte`).
pub fn fork(s: &mut Scheduler) -> Result<usize, Error> {
    // The caller's registers as its syscall saved them.
    let frame = s.current().frame;
    let mut child_space = paging::with_kernel_table(PageTable::new_user)
        .ok_or(Error::OutOfMemory)?
        .map_err(|_| Error::OutOfMemory)?;
    let codec = codec();
    let copied = with_space(s, |space| {
        space.fork_into(&mut child_space, |pte| {
            let forked = fork_pte(codec, &mut KernelFrames, pte)?;
            Ok((forked.parent, forked.child.unwrap_or(0)))
        })
    });
    if let Err(e) = copied {
        mm::release_user_space(child_space);
        return Err(e);
    }
    let parent = s.current();
    let (ppid, name, priority) = (parent.pid, parent.name, parent.priority);
    let (handler, int_enabled) = (parent.handler, parent.int_enabled);
    // The child holds a reference to every page the parent does, and
    // starts with the same limit.
    let reserve = parent.reserve;
    let names = parent.names.clone();
    let child_frame = TrapFrame { rax: 0, ..frame };
    let pid = s
        .spawn(ppid, name.as_str(), Some(priority), child_space, |f| {
            *f = child_frame
        })
        .map_err(|(e, space)| {
            mm::release_user_space(space);
            e
        })?;
    if let Some(child) = s.get_mut(pid) {
        child.handler = handler;
        child.int_enabled = int_enabled;
        child.reserve = reserve;
        child.names = names;
    }
    if let Err(e) = crate::bus::calls::fork_bus(s, ppid, pid) {
        s.discard(pid);
        return Err(e);
    }
    Ok(pid as usize)
}

/// Replaces the caller's program with the ELF image at `image`. The
/// command line is "name args…": the name becomes the process name, the
/// rest the program's arguments. On failure the caller is unchanged.
/// Survives exec: pid, parent, children, priority, pending interrupts,
/// the name scope.
/// Does not: the address space, the handler (the new program installs its
/// own), interrupt enabling.
pub fn exec(
    s: &mut Scheduler,
    image: u64,
    image_len: u64,
    cmdline: u64,
    cmdline_len: u64,
) -> Result<(), Error> {
    if image_len == 0 || image_len > EXEC_IMAGE_MAX as u64 || cmdline_len > CMDLINE_MAX as u64 {
        return Err(Error::InvalidArgument);
    }
    let mut bytes: Vec<u8> = Vec::new();
    bytes
        .try_reserve_exact(image_len as usize)
        .map_err(|_| Error::OutOfMemory)?;
    bytes.resize(image_len as usize, 0);
    let mut cmd = [0u8; CMDLINE_MAX];
    let cmd = &mut cmd[..cmdline_len as usize];
    with_space(s, |space| {
        crate::usercopy::copy_from_user(space, image, &mut bytes)?;
        crate::usercopy::copy_from_user(space, cmdline, cmd)
    })?;
    let cmd = core::str::from_utf8(cmd).map_err(|_| Error::InvalidArgument)?;
    let (name, args) = cmd
        .trim_start()
        .split_once(' ')
        .unwrap_or((cmd.trim_start(), ""));
    let loaded = paging::with_kernel_table(|k| crate::loader::load(k, &bytes, args.as_bytes()))
        .ok_or(Error::OutOfMemory)??;
    drop(bytes);

    let p = s.current();
    // The new image's pages are what the process holds now; they must fit
    // its limit.
    if p.reserve.limit.is_some_and(|limit| loaded.pages > limit) {
        mm::release_user_space(loaded.space);
        return Err(Error::OutOfMemory);
    }
    // The point of no return: the bus lets go of the old address space
    // (close-on-exec handles, exports, device mappings) while it still
    // exists, then the new one replaces it.
    crate::bus::calls::exec_bus(s);
    let p = s.current();
    p.reserve.used = loaded.pages;
    loaded.initial_frame(&mut p.frame);
    loaded.space.activate();
    if let Some(old) = p.space.replace(loaded.space) {
        mm::release_user_space(old);
    }
    p.handler = None;
    p.int_enabled = false;
    if !name.is_empty() {
        p.rename(name);
    }
    Ok(())
}

/// `set_priority(pid, priority)`: `pid` 0 means the caller. A process may
/// set its own priority or a child's, never more urgent than its own.
pub fn set_priority(s: &mut Scheduler, pid: u64, priority: u64) -> Result<usize, Error> {
    if priority >= PRIORITY_LEVELS as u64 {
        return Err(Error::InvalidArgument);
    }
    let priority = priority as u8;
    let me = s.current_pid();
    let mine = s.current().priority;
    let target = if pid == 0 {
        me
    } else {
        u32::try_from(pid).map_err(|_| Error::NotFound)?
    };
    if target != me {
        let child = s.get_mut(target).ok_or(Error::NotFound)?;
        if child.parent != me {
            return Err(Error::AccessDenied);
        }
    }
    if priority < mine {
        return Err(Error::AccessDenied);
    }
    s.set_priority(target, priority);
    Ok(0)
}

pub fn sys_info(s: &mut Scheduler, out: u64) -> Result<usize, Error> {
    mm::heap::trim();
    let info = SysInfo {
        free_frames: mm::frames::free_count() as u64,
        total_frames: mm::frames::managed_count() as u64,
        processes: s.process_count() as u64,
        ticks: crate::trap::TICKS.load(core::sync::atomic::Ordering::Relaxed),
        tick_hz: crate::arch::lapic::TICK_HZ,
        handles: s.current().bus.len() as u64,
        heap_frames: mm::heap::frames_held(),
    };
    with_space(s, |space| crate::usercopy::write_struct(space, out, &info))?;
    Ok(0)
}
