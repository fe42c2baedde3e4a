//! Processes begin and end: spawn, the family links, exit (zombies and
//! orphans), reaping, `wait_child`, and the kill of a process that faulted.
//!
//! Rules: a process that exits releases its memory at once and stays a
//! zombie (holding only its exit status and its record's charge) until
//! its parent reaps it; its live children go to init's list and its
//! zombies to init's queue; every step is linear in what the process holds
//! and in its children, never in the number of processes.

use super::Kernel;
use crate::charged::MachineFrames;
use crate::machine::{AddressSpace, Machine};
use crate::process::{Block, DEFAULT_PRIORITY, INIT_PID, NO_PID, Pid, Process, State, pid_slot};
use crate::reserve::{Account, ReserveId};
use crate::vm::{Released, release_entry};
use abi::{Error, ExitKind, ExitStatus};

impl<M: Machine> Kernel<M> {
    /// Adds a process (already loaded) drawing on `reserve` and makes it
    /// ready; its record is charged to the reserve and counted against
    /// its process limit. On failure the address space comes back so the
    /// caller can release it (and nothing was charged).
    pub fn spawn(
        &mut self,
        parent: Pid,
        name: &str,
        priority: Option<u8>,
        space: M::Space,
        reserve: ReserveId,
        init: impl FnOnce(&mut M::Frame),
    ) -> Result<Pid, (Error, M::Space)> {
        let Some(r) = self.reserves.get_mut(reserve) else {
            return Err((Error::NotFound, space));
        };
        if let Err(e) = r.add_process() {
            return Err((e, space));
        }
        if let Err(e) = r.charge_bytes(Process::<M>::RECORD_BYTES) {
            r.remove_process();
            return Err((e, space));
        }
        let undo = |s: &mut Kernel<M>| {
            if let Some(r) = s.reserves.get_mut(reserve) {
                r.credit_bytes(Process::<M>::RECORD_BYTES);
                r.remove_process();
            }
        };
        // A link for whichever slot the process gets (at most one past
        // the slots made so far).
        if self.ready.reserve(self.procs.slots_made() + 1).is_err() {
            undo(self);
            return Err((Error::OutOfMemory, space));
        }
        let priority = priority.unwrap_or(DEFAULT_PRIORITY);
        let mut proc = Process::new(NO_PID, parent, name, priority, space, reserve);
        proc.usage.kernel_bytes = Process::<M>::RECORD_BYTES;
        init(&mut proc.frame);
        let pid = match self.procs.insert(proc) {
            Ok(pid) => pid,
            Err((e, mut proc)) => {
                undo(self);
                let space = proc.space.take().expect("a new process has its space");
                return Err((e, space));
            }
        };
        self.reserves.hold(reserve);
        self.link_child(parent, pid);
        self.enqueue(pid);
        if self.cpus_online() > 1 {
            self.offer(priority);
        }
        Ok(pid)
    }

    /// Puts `child` at the head of `parent`'s live children.
    pub(super) fn link_child(&mut self, parent: Pid, child: Pid) {
        let Some(first) = self.procs.get(parent).map(|p| p.first_child) else {
            return;
        };
        if let Some(c) = self.procs.get_mut(child) {
            c.parent = parent;
            c.prev_sibling = NO_PID;
            c.next_sibling = first;
        }
        if let Some(f) = self.procs.get_mut(first) {
            f.prev_sibling = child;
        }
        if let Some(p) = self.procs.get_mut(parent) {
            p.first_child = child;
        }
    }

    /// Takes `child` out of its parent's live children.
    pub(super) fn unlink_child(&mut self, child: Pid) {
        let Some((parent, prev, next)) = self
            .procs
            .get(child)
            .map(|c| (c.parent, c.prev_sibling, c.next_sibling))
        else {
            return;
        };
        match self.procs.get_mut(prev) {
            Some(p) if prev != NO_PID => p.next_sibling = next,
            _ => {
                if let Some(p) = self.procs.get_mut(parent)
                    && p.first_child == child
                {
                    p.first_child = next;
                }
            }
        }
        if let Some(n) = self.procs.get_mut(next) {
            n.prev_sibling = prev;
        }
        if let Some(c) = self.procs.get_mut(child) {
            c.prev_sibling = NO_PID;
            c.next_sibling = NO_PID;
        }
    }

    /// Queues the zombie `child` for `parent` to reap.
    pub(super) fn push_zombie(&mut self, parent: Pid, child: Pid) {
        let Some(tail) = self.procs.get(parent).map(|p| p.zombie_tail) else {
            return;
        };
        if let Some(c) = self.procs.get_mut(child) {
            c.parent = parent;
            c.next_zombie = NO_PID;
        }
        match self.procs.get_mut(tail) {
            Some(t) if tail != NO_PID => t.next_zombie = child,
            _ => {
                if let Some(p) = self.procs.get_mut(parent) {
                    p.zombie_head = child;
                }
            }
        }
        if let Some(p) = self.procs.get_mut(parent) {
            p.zombie_tail = child;
        }
    }

    /// The first live child of `pid`, if any.
    pub fn first_child(&self, pid: Pid) -> Option<Pid> {
        self.procs
            .get(pid)
            .map(|p| p.first_child)
            .filter(|&c| c != NO_PID)
    }

    /// Whether `ancestor` is `pid` or one of its ancestors. The walk is
    /// bounded by the table size, so a parent loop cannot trap it.
    pub fn is_ancestor_or_self(&self, ancestor: Pid, pid: Pid) -> bool {
        let mut at = pid;
        for _ in 0..=self.procs.len() {
            if at == ancestor {
                return true;
            }
            match self.procs.get(at) {
                Some(p) if p.parent != at && p.parent != NO_PID => at = p.parent,
                _ => return false,
            }
        }
        false
    }

    /// Removes a process that never ran (a fork that failed half-way):
    /// releases what it holds and forgets it, leaving no zombie.
    pub fn discard(&mut self, pid: Pid) {
        crate::devices::lifecycle::exit_bus(self, pid);
        self.unlink_child(pid);
        self.release_memory(pid);
        self.ready.remove(pid_slot(pid));
        self.reap(pid);
    }

    /// Gives back what process `pid` holds of its reserve besides its
    /// record: its address space (pages and tables) and its kernel
    /// objects.
    pub(super) fn release_memory(&mut self, pid: Pid) {
        let Some((p, r)) = self.proc_and_reserve(pid) else {
            return;
        };
        let space = p.space.take();
        let mut account = Account {
            reserve: r,
            usage: &mut p.usage,
        };
        let u = *account.usage;
        account.credit_pages(u.pages);
        account.credit_tables(u.tables);
        account.credit_bytes(u.kernel_bytes.saturating_sub(Process::<M>::RECORD_BYTES));
        p.bus_bytes = 0;
        if let Some(space) = space {
            release_space::<M>(space);
        }
    }

    /// Forgets process `pid` (a reaped zombie, or a discarded child): its
    /// record's charge goes back to its reserve, which it stops holding.
    pub(super) fn reap(&mut self, pid: Pid) {
        let Some(p) = self.procs.remove(pid) else {
            return;
        };
        if let Some(r) = self.reserves.get_mut(p.reserve) {
            r.credit_bytes(Process::<M>::RECORD_BYTES);
            r.remove_process();
        }
        self.reserves.release(p.reserve);
    }

    /// Ends process `pid`: frees its memory, makes it a zombie for its
    /// parent to reap, hands its children (and their zombies) to init and
    /// wakes its parent. Linear in what the process holds and in its
    /// children, whatever the number of processes.
    pub fn exit(&mut self, pid: Pid, status: ExitStatus) {
        let Some(p) = self.procs.get_mut(pid) else {
            return;
        };
        if p.state == State::Zombie {
            return;
        }
        p.state = State::Zombie;
        p.exit = ExitStatus { pid, ..status };
        let parent = p.parent;
        // Killed while it runs on another CPU: stop it there before
        // anything of it is freed.
        self.evict_elsewhere(pid);
        // Detach everything first: clients close, served devices go away.
        crate::devices::lifecycle::exit_bus(self, pid);
        if pid == self.cpus[M::cpu_index()].current {
            // The dying table is the one in CR3 only when the process ends
            // itself; then leave it first. A process killed by another
            // (proc's KILL) is not current, and the killer, which returns to
            // user mode without a switch, keeps its own table.
            M::leave_space();
        }
        self.release_memory(pid);
        if self.procs.get(pid).is_none() {
            return;
        }
        self.ready.remove(pid_slot(pid));
        if pid == INIT_PID {
            power_off_after_init::<M>(&status);
        }
        // Its own status first: when its parent is init, the zombies it
        // hands over (below) are queued after it, so init reaps the child
        // it knows before the orphans (which, with several CPUs, may well
        // have ended before their parent).
        self.unlink_child(pid);
        self.push_zombie(parent, pid);
        // Children go to init: the live ones to its list, the zombies to
        // its queue.
        let mut orphaned_zombies = false;
        while let Some(child) = self.first_child(pid) {
            self.unlink_child(child);
            self.link_child(INIT_PID, child);
        }
        while let Some(z) = self.procs.get(pid).map(|p| p.zombie_head)
            && z != NO_PID
        {
            let next = self.procs.get(z).map_or(NO_PID, |c| c.next_zombie);
            if let Some(p) = self.procs.get_mut(pid) {
                p.zombie_head = next;
                if next == NO_PID {
                    p.zombie_tail = NO_PID;
                }
            }
            self.push_zombie(INIT_PID, z);
            orphaned_zombies = true;
        }
        if pid == self.cpus[M::cpu_index()].current {
            self.cpus[M::cpu_index()].resched = true;
        }
        self.raise(parent, abi::interrupt::VECTOR_CHILD);
        self.wake_child_waiter(parent);
        if orphaned_zombies {
            self.raise(INIT_PID, abi::interrupt::VECTOR_CHILD);
            self.wake_child_waiter(INIT_PID);
        }
    }

    /// Reaps one zombie child of the current process: copies its status to
    /// user memory at `out` first, so a bad pointer loses nothing. `None`
    /// means the caller now sleeps until a child exits.
    pub fn wait_child(
        &mut self,
        out: crate::usercopy::UserPtr<ExitStatus>,
        nohang: bool,
    ) -> Result<Option<Pid>, Error> {
        let me = self.current();
        let zombie = me.zombie_head;
        if zombie == NO_PID {
            if me.first_child == NO_PID {
                return Err(Error::NoChildren);
            }
            if nohang {
                return Err(Error::WouldBlock);
            }
            self.block_current(Block::Child);
            return Ok(None);
        }
        let (status, next) = match self.procs.get(zombie) {
            Some(z) => (z.exit, z.next_zombie),
            None => return Err(Error::NoChildren),
        };
        let space = self.current().space()?;
        out.write::<M>(space, &status)?;
        let me = self.current();
        me.zombie_head = next;
        if next == NO_PID {
            me.zombie_tail = NO_PID;
        }
        self.reap(zombie);
        Ok(Some(zombie))
    }

    /// Starts the first process, init, from `image` with command line
    /// `cmdline` ("name args…"): its own reserve (no memory limit, no
    /// process limit beyond the table's: init gives each module one of its
    /// own) and the registry with every right (handle 0), from which every
    /// other capability flows.
    pub fn start_init(&mut self, image: &[u8], cmdline: &str) -> Result<Pid, Error> {
        let (path, args) = cmdline.split_once(' ').unwrap_or((cmdline, ""));
        let name = path.rsplit('/').next().unwrap_or(path);
        let loaded = crate::loader::load::<M>(image, args.as_bytes())?;
        let frame = loaded.initial_frame();
        let (pages, tables) = (loaded.pages, loaded.tables);
        let reserve = match self.reserves.create(None, u32::MAX) {
            Ok(r) => r,
            Err(e) => {
                release_space::<M>(loaded.space);
                return Err(e);
            }
        };
        let pid = match self.spawn(NO_PID, name, None, loaded.space, reserve, |f| *f = frame) {
            Ok(pid) => pid,
            Err((e, space)) => {
                release_space::<M>(space);
                return Err(e);
            }
        };
        if let Some((p, r)) = self.proc_and_reserve(pid) {
            r.force_frames(pages + tables);
            p.usage.pages = pages;
            p.usage.tables = tables;
        }
        crate::devices::give_registry(self, pid, abi::bus::RIGHTS_ALL)?;
        Ok(pid)
    }

    /// Kills the current process for a fault it cannot handle.
    pub fn kill_current_for_fault(
        &mut self,
        vector: u64,
        error: u64,
        addr: u64,
        rip: u64,
        why: &str,
    ) {
        let pid = self.cpus[M::cpu_index()].current;
        let name = self.current().name;
        crate::klog!(
            M,
            "[kernel] pid {pid} ({name}) killed: {} (vector {vector}) error={error:#x} addr={addr:#x} rip={rip:#x}{why}",
            M::exception_name(vector),
        );
        let status = ExitStatus {
            pid,
            kind: ExitKind::Faulted as u32,
            code: vector as i64,
            fault_addr: addr,
            fault_ip: rip,
            fault_error: error,
            ..ExitStatus::default()
        };
        self.exit(pid, status);
    }
}

/// Releases a user address space: what every leaf maps, then the page
/// tables themselves. The caller credits the owner's reserve with what
/// its usage says it held (so the teardown needs no reserve). Wired frames
/// are kept out of circulation: a device may still be writing them.
pub fn release_space<M: Machine>(space: M::Space) {
    let codec = M::codec();
    let mut frames = MachineFrames::<M>::new();
    space.destroy(&mut MachineFrames::<M>::new(), |pte| {
        if let Released::StillWired(frame) = release_entry(codec, &mut frames, pte) {
            crate::klog!(
                M,
                "[kernel] frame {:#x} was wired at exit: kept out of use",
                frame.addr()
            );
        }
    });
}

/// Init is gone: the run is over.
fn power_off_after_init<M: Machine>(status: &ExitStatus) -> ! {
    let clean = status.kind == ExitKind::Exited as u32 && status.code == 0;
    if status.kind == ExitKind::Exited as u32 {
        crate::klog!(
            M,
            "[kernel] init exited with status {}; powering off",
            status.code
        );
    } else {
        crate::klog!(
            M,
            "[kernel] init was killed (vector {}); powering off",
            status.code
        );
    }
    M::power_off(if clean {
        abi::power::EXIT_CLEAN
    } else {
        abi::power::EXIT_INIT_FAILED
    })
}
