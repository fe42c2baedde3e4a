//! The scheduler and the process table: which process runs, and the
//! operations that change process states (create, block, wake, exit, reap).
//!
//! Policy: fixed priorities (0 most urgent), round-robin within a priority;
//! the LAPIC tick preempts the running process when another one at the same
//! or a more urgent level is ready, and waking a more urgent process
//! preempts at once. A process sleeping in `wait_child` restarts the call
//! when woken (its `rip` is moved back over the `syscall` instruction); the
//! other sleeping calls (`irq_wait`, `port_out_wait`, `dev_poll`) are
//! completed by whoever wakes them, so a fused call never repeats its
//! first half.
//!
//! Rules: all of this state sits behind one lock, taken by system calls and
//! traps from user mode (the kernel is not preemptible and runs with
//! interrupts off, so the lock is never contended); the idle loop runs
//! without it. Anything that stops the current process from continuing sets
//! `resched`; without it the exit path returns to the same process at once.

mod fastpath;
pub mod lock;

use crate::arch::{cpu, entry, paging};
use crate::process::{
    Block, DEFAULT_PRIORITY, INIT_PID, NO_PID, PRIORITY_LEVELS, Pid, Process, Procs, RECORD_BYTES,
    State,
};
use abi::{Error, ExitKind, ExitStatus};
use kernel_core::reserve::{Account, Reserve, ReserveId, Reserves};
use kernel_core::runqueue::RunQueue;
use lock::{Guard, Lock};

pub struct Scheduler {
    /// Every device (kept here: one lock covers processes and devices).
    pub devices: crate::bus::Devices,
    /// Every frame reserve.
    pub reserves: Reserves,
    /// Every process, by pid.
    procs: Procs,
    ready: RunQueue<PRIORITY_LEVELS>,
    /// The process whose frame is current; 0 before the first.
    current: Pid,
    /// The same process, for the system-call path (null before the first).
    current_ptr: *mut Process,
    /// The current process must not simply continue.
    resched: bool,
    /// A process woken by the current one as it went to sleep, to run next
    /// without a trip through the ready queue (the IPC hand-off).
    next: Option<Pid>,
    /// The TSC when the current process was given the CPU: a tick takes it
    /// away only after it has had half a tick (a tick that was pending when
    /// it came in — one a long system call stopped for — is not its).
    slice_start: u64,
}

// SAFETY: `current_ptr` points into a boxed process owned by `procs`, and
// the scheduler is only ever reached through the SCHED lock on one CPU.
unsafe impl Send for Scheduler {}

pub static SCHED: Lock<Scheduler> = Lock::new(Scheduler {
    devices: crate::bus::Devices::new(),
    reserves: Reserves::new(),
    procs: Procs::new(),
    ready: RunQueue::new(),
    current: 0,
    current_ptr: core::ptr::null_mut(),
    resched: true,
    next: None,
    slice_start: 0,
});

/// Length of the `syscall` instruction, for restarting a blocked call.
const SYSCALL_INSN_LEN: u64 = 2;

impl Scheduler {
    /// The running process.
    #[inline]
    pub fn current(&mut self) -> &mut Process {
        assert!(!self.current_ptr.is_null(), "no current process yet");
        // SAFETY: `current_ptr` is set by `switch_to` to a boxed process in
        // `procs`; a process leaves the table only when reaped or discarded,
        // which never happens to the current one (its parent does the
        // reaping while it runs), so the pointer is live.
        unsafe { &mut *self.current_ptr }
    }

    pub fn current_pid(&self) -> Pid {
        self.current
    }

    fn enqueue(&mut self, pid: Pid) {
        if let Some(p) = self.procs.get(pid) {
            // Links for every slot were made at spawn, so this cannot fail.
            let queued = self.ready.push(Procs::slot_of(pid), pid, p.priority);
            debug_assert!(queued, "run-queue link of pid {pid} reserved at spawn");
        }
    }

    /// Adds a process (already loaded) drawing on `reserve` and makes it
    /// ready; its record is charged to the reserve and counted against
    /// its process limit. On failure the address space comes back so the
    /// caller can release it (and nothing was charged).
    pub fn spawn(
        &mut self,
        parent: Pid,
        name: &str,
        priority: Option<u8>,
        space: paging::PageTable,
        reserve: ReserveId,
        init: impl FnOnce(&mut entry::TrapFrame),
    ) -> Result<Pid, (Error, paging::PageTable)> {
        let Some(r) = self.reserves.get_mut(reserve) else {
            return Err((Error::NotFound, space));
        };
        if let Err(e) = r.add_process() {
            return Err((e, space));
        }
        if let Err(e) = r.charge_bytes(RECORD_BYTES) {
            r.remove_process();
            return Err((e, space));
        }
        let undo = |s: &mut Scheduler| {
            if let Some(r) = s.reserves.get_mut(reserve) {
                r.credit_bytes(RECORD_BYTES);
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
        proc.usage.kernel_bytes = RECORD_BYTES;
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
        Ok(pid)
    }

    /// Puts `child` at the head of `parent`'s live children.
    fn link_child(&mut self, parent: Pid, child: Pid) {
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
    fn unlink_child(&mut self, child: Pid) {
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
    fn push_zombie(&mut self, parent: Pid, child: Pid) {
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

    /// The running process and the device table, together.
    #[inline]
    pub fn current_with_devices(&mut self) -> (&mut Process, &mut crate::bus::Devices) {
        assert!(!self.current_ptr.is_null(), "no current process yet");
        // SAFETY: as in `current`; the process record is a box of its own,
        // not part of the device table, so the two borrows do not overlap.
        (unsafe { &mut *self.current_ptr }, &mut self.devices)
    }

    /// Two different processes, both to change.
    pub fn pair_mut(&mut self, a: Pid, b: Pid) -> Option<(&mut Process, &mut Process)> {
        self.procs.pair_mut(a, b)
    }

    /// Process `pid` (if it exists) and the device table, together.
    #[inline]
    pub fn proc_with_devices(
        &mut self,
        pid: Pid,
    ) -> (Option<&mut Process>, &mut crate::bus::Devices) {
        (self.procs.get_mut(pid), &mut self.devices)
    }

    /// The running process and its reserve.
    #[inline]
    pub fn current_and_reserve(&mut self) -> Option<(&mut Process, &mut Reserve)> {
        if self.current_ptr.is_null() {
            return None;
        }
        // SAFETY: as in `current`: the pointer is to a live boxed process.
        let p = unsafe { &mut *self.current_ptr };
        let r = self.reserves.get_mut(p.reserve)?;
        Some((p, r))
    }

    /// The running process and reserve `id` (which need not be its own).
    #[inline]
    pub fn current_with_reserve(&mut self, id: ReserveId) -> Option<(&mut Process, &mut Reserve)> {
        if self.current_ptr.is_null() {
            return None;
        }
        // SAFETY: as in `current`.
        let p = unsafe { &mut *self.current_ptr };
        let r = self.reserves.get_mut(id)?;
        Some((p, r))
    }

    /// Process `pid` and its reserve.
    #[inline]
    pub fn proc_and_reserve(&mut self, pid: Pid) -> Option<(&mut Process, &mut Reserve)> {
        let p = self.procs.get_mut(pid)?;
        let r = self.reserves.get_mut(p.reserve)?;
        Some((p, r))
    }

    /// Puts the current process to sleep. A `Child` wait restarts its
    /// system call when woken; the others are completed by their waker.
    pub fn block_current(&mut self, why: Block) {
        let p = self.current();
        p.state = State::Blocked(why);
        if why == Block::Child {
            p.frame.rip -= SYSCALL_INSN_LEN;
        }
        self.resched = true;
    }

    /// Makes the current process's system call start again when it next
    /// runs (its `rip` goes back over the `syscall` instruction, its
    /// argument registers are as it left them) and gives the CPU away: a
    /// long call that reached a preemption point. The call finds its
    /// progress in the kernel's state, not in the registers.
    pub fn restart_current(&mut self) {
        self.current().frame.rip -= SYSCALL_INSN_LEN;
        self.yield_current();
    }

    /// Completes the call `pid` sleeps in with `ret` (a result word or an
    /// error) and makes it runnable.
    pub fn complete(&mut self, pid: Pid, ret: isize) {
        let Some(p) = self.procs.get_mut(pid) else {
            return;
        };
        p.frame.rax = ret as u64;
        if matches!(p.state, State::Blocked(_)) {
            p.state = State::Runnable;
            let prio = p.priority;
            self.made_runnable(pid, prio);
        }
    }

    /// The process `pid`, if it exists.
    #[inline]
    pub fn get_mut(&mut self, pid: Pid) -> Option<&mut Process> {
        self.procs.get_mut(pid)
    }

    /// The process after `pid` in table order (`NO_PID`: the first).
    pub fn next_pid_after(&self, pid: Pid) -> Option<Pid> {
        self.procs.next_after(pid)
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

    pub fn process_count(&self) -> usize {
        self.procs.len()
    }

    /// Makes `vector` pending on `pid`, waking it if it waits for it.
    pub fn raise(&mut self, pid: Pid, vector: u32) {
        let Some(p) = self.procs.get_mut(pid) else {
            return;
        };
        if p.state == State::Zombie {
            return;
        }
        p.pending |= 1u64 << vector;
        if let State::Blocked(Block::Irq { mask, .. }) = p.state
            && p.pending & mask != 0
        {
            let taken = p.pending & mask;
            p.pending &= !taken;
            p.frame.rax = taken;
            p.state = State::Runnable;
            let prio = p.priority;
            self.made_runnable(pid, prio);
        }
    }

    /// Wakes `pid` if it sleeps in `wait_child`.
    fn wake_child_waiter(&mut self, pid: Pid) {
        if self
            .procs
            .get(pid)
            .is_some_and(|p| p.state == State::Blocked(Block::Child))
        {
            self.wake(pid);
        }
    }

    /// Moves `pid` to another priority level.
    pub fn set_priority(&mut self, pid: Pid, priority: u8) {
        let Some(p) = self.procs.get_mut(pid) else {
            return;
        };
        p.priority = priority;
        let slot = Procs::slot_of(pid);
        if self.ready.remove(slot) {
            self.ready.push(slot, pid, priority);
        }
        // The current process may now be less urgent than a ready one.
        if pid == self.current {
            self.yield_current();
        }
    }

    fn wake(&mut self, pid: Pid) {
        let Some(p) = self.procs.get_mut(pid) else {
            return;
        };
        if !matches!(p.state, State::Blocked(_)) {
            return;
        }
        p.state = State::Runnable;
        let prio = p.priority;
        self.made_runnable(pid, prio);
    }

    /// Process `pid`, at `priority`, has just become runnable: it runs
    /// next, or waits its turn, or preempts the current process.
    fn made_runnable(&mut self, pid: Pid, priority: u8) {
        // The current process is in the table whenever the pointer is set
        // (see `current`), so it is read through the pointer, not looked up.
        let current = (!self.current_ptr.is_null() && self.current != pid).then(|| {
            let c = self.current();
            (c.state, c.priority)
        });
        // Direct hand-off: the waker sleeps and nothing more urgent waits,
        // so the woken process simply runs next.
        let waker_sleeps = matches!(current, Some((State::Blocked(_), _)));
        if waker_sleeps
            && self.next.is_none()
            && (priority == 0 || !self.ready.has_at_least(priority - 1))
        {
            self.next = Some(pid);
            return;
        }
        self.ready.push(Procs::slot_of(pid), pid, priority);
        if let Some((State::Runnable, current_priority)) = current
            && priority < current_priority
        {
            let cur = self.current;
            self.ready.push(Procs::slot_of(cur), cur, current_priority);
            self.resched = true;
        }
    }

    /// Sends the current process to the back of its level. With no one
    /// as urgent waiting it would be picked again at once, so it simply
    /// goes on.
    pub fn yield_current(&mut self) {
        let pid = self.current;
        let Some(p) = self.procs.get(pid) else {
            return;
        };
        if p.state != State::Runnable {
            // Asleep or ended: nothing to queue, something else runs.
            self.resched = true;
            return;
        }
        if !self.ready.has_at_least(p.priority) {
            return;
        }
        self.enqueue(pid);
        self.resched = true;
    }

    /// On a timer tick: preempt if someone as urgent is waiting and the
    /// current process has had its share of the CPU.
    pub fn tick(&mut self) {
        let pid = self.current;
        let had = cpu::rdtsc().wrapping_sub(self.slice_start);
        if let Some(p) = self.procs.get(pid)
            && p.state == State::Runnable
            && self.ready.has_at_least(p.priority)
            && had >= crate::arch::lapic::half_tick_tsc()
        {
            self.enqueue(pid);
            self.resched = true;
        }
    }

    /// Removes a process that never ran (a fork that failed half-way):
    /// releases what it holds and forgets it, leaving no zombie.
    pub fn discard(&mut self, pid: Pid) {
        crate::bus::calls::exit_bus(self, pid);
        self.unlink_child(pid);
        self.release_memory(pid);
        self.ready.remove(Procs::slot_of(pid));
        self.reap(pid);
    }

    /// Gives back what process `pid` holds of its reserve besides its
    /// record: its address space (pages and tables) and its kernel
    /// objects.
    fn release_memory(&mut self, pid: Pid) {
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
        account.credit_bytes(u.kernel_bytes.saturating_sub(RECORD_BYTES));
        p.bus_bytes = 0;
        if let Some(space) = space {
            crate::mm::release_user_space(space);
        }
    }

    /// Forgets process `pid` (a reaped zombie, or a discarded child): its
    /// record's charge goes back to its reserve, which it stops holding.
    fn reap(&mut self, pid: Pid) {
        let Some(p) = self.procs.remove(pid) else {
            return;
        };
        if let Some(r) = self.reserves.get_mut(p.reserve) {
            r.credit_bytes(RECORD_BYTES);
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
        // Detach everything first: clients close, served devices go away.
        crate::bus::calls::exit_bus(self, pid);
        if pid == self.current {
            // The dying table is the one in CR3 only when the process ends
            // itself; then leave it first. A process killed by another
            // (proc's KILL) is not current, and the killer, which returns to
            // user mode without a switch, keeps its own table.
            paging::activate_kernel_table();
        }
        self.release_memory(pid);
        if self.procs.get(pid).is_none() {
            return;
        }
        self.ready.remove(Procs::slot_of(pid));
        if pid == INIT_PID {
            crate::power_off_after_init(&status);
        }
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
        self.unlink_child(pid);
        self.push_zombie(parent, pid);
        if pid == self.current {
            self.resched = true;
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
    pub fn wait_child(&mut self, out: u64, nohang: bool) -> Result<Option<Pid>, Error> {
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
        let space = self.current().space.as_mut().ok_or(Error::BadAddress)?;
        crate::usercopy::write_struct(space, out, &status)?;
        let me = self.current();
        me.zombie_head = next;
        if next == NO_PID {
            me.zombie_tail = NO_PID;
        }
        self.reap(zombie);
        Ok(Some(zombie))
    }

    /// Makes the process to run next current; false if all are asleep.
    fn pick(&mut self) -> bool {
        if !self.resched {
            return true;
        }
        // A hand-off continues the waker's turn (its time goes on: a pair
        // of processes handing off to each other is still preempted at
        // ticks); a process from the ready queue starts a turn of its own.
        if let Some(pid) = self.next.take()
            && self.install_if_runnable(pid)
        {
            self.resched = false;
            return true;
        }
        while let Some(pid) = self.ready.pop() {
            if self.install_if_runnable(pid) {
                self.resched = false;
                self.slice_start = cpu::rdtsc();
                return true;
            }
        }
        false
    }

    /// Makes `pid` current if it is runnable (one look at the table for
    /// both).
    #[inline]
    fn install_if_runnable(&mut self, pid: Pid) -> bool {
        let Some(p) = self.procs.get_mut(pid) else {
            return false;
        };
        if p.state != State::Runnable {
            return false;
        }
        if pid != self.current {
            install(&mut self.current, &mut self.current_ptr, pid, p);
        }
        true
    }
}

/// Makes process `pid`, whose record is `p` and which is not the current
/// one, current: its table goes into CR3 and its frame becomes the one the
/// next return to user mode restores. (The fields are passed apart so the
/// IPC fast path can call it while it holds `p` from the table.)
#[inline(always)]
fn install(current: &mut Pid, current_ptr: &mut *mut Process, pid: Pid, p: &mut Process) {
    *current = pid;
    *current_ptr = p;
    if let Some(space) = &p.space {
        // Another process's table is (all but) never the one in CR3, so
        // no comparison first; reloading it would only flush the TLB.
        space.load();
    }
    // SAFETY: the frame lives in a boxed process that stays in the table
    // at least until another frame is made current (a process is only
    // removed when reaped, which happens while its parent runs).
    unsafe { entry::set_current_frame(&mut p.frame) };
}

/// Makes sure a runnable process is current, idling with interrupts on
/// (and the lock released) until one is. Called at the end of every trap
/// and system call, with the lock the call took.
#[inline(always)]
pub fn settle(mut s: Guard<'static, Scheduler>) {
    // The common case: the caller simply continues, with nothing to
    // deliver. (`resched` is set until a first process is current, so
    // `current` is there when it is clear.)
    if !s.resched && !crate::log::GREW.load(core::sync::atomic::Ordering::Relaxed) {
        let p = s.current();
        if p.pending == 0 || !p.int_enabled {
            return;
        }
    }
    settle_slow(s)
}

#[inline(never)]
fn settle_slow(mut s: Guard<'static, Scheduler>) {
    if crate::log::GREW.swap(false, core::sync::atomic::Ordering::Relaxed) {
        crate::bus::calls::notify_klog_listeners(&mut s);
    }
    loop {
        {
            if s.pick() {
                let p = s.current();
                if crate::upcall::deliver_pending(p) {
                    return;
                }
                let pid = s.current_pid();
                crate::kprintln!(
                    "[kernel] pid {pid} killed: its interrupts cannot be delivered (handler stack full or unusable)"
                );
                let status = ExitStatus {
                    pid,
                    kind: ExitKind::Killed as u32,
                    code: Error::LimitReached.code() as i64,
                    ..ExitStatus::default()
                };
                s.exit(pid, status);
                continue;
            }
        }
        drop(s);
        cpu::idle_wait();
        s = SCHED.lock();
    }
}

/// Gives the CPU to the first process; never returns.
pub fn start() -> ! {
    settle(SCHED.lock());
    entry::enter_user()
}

/// Kills the current process for a fault it cannot handle.
pub fn kill_current_for_fault(
    s: &mut Scheduler,
    vector: u64,
    error: u64,
    addr: u64,
    rip: u64,
    why: &str,
) {
    let pid = s.current;
    let name = s.current().name;
    crate::kprintln!(
        "[kernel] pid {pid} ({name}) killed: {} (vector {vector}) error={error:#x} addr={addr:#x} rip={rip:#x}{why}",
        crate::arch::fault::vector_name(vector),
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
    s.exit(pid, status);
}
