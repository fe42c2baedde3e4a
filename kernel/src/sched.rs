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
use crate::process::{Block, DEFAULT_PRIORITY, INIT_PID, PRIORITY_LEVELS, Pid, Process, State};
use abi::{Error, ExitKind, ExitStatus};
use kernel_core::idtable::IdTable;
use kernel_core::runqueue::RunQueue;
use lock::{Guard, Lock};

pub struct Scheduler {
    /// Every device (kept here: one lock covers processes and devices).
    pub devices: crate::bus::Devices,
    /// Every process, by pid (the lowest free pid is reused, as in Unix;
    /// nothing keeps a pid once its process is reaped).
    procs: IdTable<Process>,
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
}

// SAFETY: `current_ptr` points into a boxed process owned by `procs`, and
// the scheduler is only ever reached through the SCHED lock on one CPU.
unsafe impl Send for Scheduler {}

pub static SCHED: Lock<Scheduler> = Lock::new(Scheduler {
    devices: crate::bus::Devices::new(),
    procs: IdTable::new(),
    ready: RunQueue::new(),
    current: 0,
    current_ptr: core::ptr::null_mut(),
    resched: true,
    next: None,
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
        if let Some(p) = self.procs.get_mut(pid)
            && !p.queued
        {
            p.queued = true;
            let prio = p.priority;
            self.ready.push(pid, prio);
        }
    }

    /// Adds a process (already loaded) and makes it ready. On failure the
    /// address space comes back so the caller can release it.
    pub fn spawn(
        &mut self,
        parent: Pid,
        name: &str,
        priority: Option<u8>,
        space: paging::PageTable,
        init: impl FnOnce(&mut entry::TrapFrame),
    ) -> Result<Pid, (Error, paging::PageTable)> {
        let total = self.procs.len() + 1;
        if self.ready.reserve(total).is_err() {
            return Err((Error::OutOfMemory, space));
        }
        let pid = self.procs.free_id();
        let mut proc = Process::new(
            pid,
            parent,
            name,
            priority.unwrap_or(DEFAULT_PRIORITY),
            space,
        );
        init(&mut proc.frame);
        let boxed = match crate::process::try_box(proc) {
            Ok(b) => self.procs.insert(pid, b).map_err(|b| *b),
            Err(p) => Err(p),
        };
        match boxed {
            Ok(()) => {
                self.enqueue(pid);
                Ok(pid)
            }
            Err(mut proc) => {
                let space = proc.space.take().expect("a new process has its space");
                Err((Error::OutOfMemory, space))
            }
        }
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

    /// Completes the call `pid` sleeps in with `ret` (a result word or an
    /// error) and makes it runnable.
    pub fn complete(&mut self, pid: Pid, ret: isize) {
        if let Some(p) = self.procs.get_mut(pid) {
            p.frame.rax = ret as u64;
        }
        self.wake(pid);
    }

    /// The processes sleeping in a call on device `dev`.
    pub fn sleepers_on(&self, dev: crate::bus::DeviceId) -> alloc::vec::Vec<Pid> {
        self.procs
            .iter()
            .map(|(_, p)| p)
            .filter(|p| match p.state {
                State::Blocked(Block::Irq { dev: Some(d), .. }) => d == dev,
                State::Blocked(Block::Poll { dev: d, .. }) => d == dev,
                _ => false,
            })
            .map(|p| p.pid)
            .collect()
    }

    /// The process `pid`, if it exists.
    #[inline]
    pub fn get_mut(&mut self, pid: Pid) -> Option<&mut Process> {
        self.procs.get_mut(pid)
    }

    /// The lowest pid above `pid` in the table.
    pub fn next_pid_after(&self, pid: Pid) -> Option<Pid> {
        self.procs
            .iter()
            .map(|(id, _)| id)
            .filter(|&id| id > pid)
            .min()
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
                Some(p) if p.parent != at => at = p.parent,
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
            self.complete(pid, taken as isize);
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
        if p.queued {
            self.ready.remove(pid);
            self.ready.push(pid, priority);
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
        // Direct hand-off: the waker sleeps and nothing more urgent waits,
        // so the woken process simply runs next.
        let waker_sleeps = self.current != pid
            && !self.current_ptr.is_null()
            && matches!(self.current().state, State::Blocked(_));
        if waker_sleeps && self.next.is_none() && (prio == 0 || !self.ready.has_at_least(prio - 1))
        {
            self.next = Some(pid);
            return;
        }
        self.enqueue(pid);
        let cur = self.current;
        if let Some(c) = self.procs.get(cur)
            && c.state == State::Runnable
            && prio < c.priority
        {
            self.enqueue(cur);
            self.resched = true;
        }
    }

    /// Sends the current process to the back of its level.
    pub fn yield_current(&mut self) {
        let pid = self.current;
        self.enqueue(pid);
        self.resched = true;
    }

    /// On a timer tick: preempt if someone as urgent is waiting.
    pub fn tick(&mut self) {
        let pid = self.current;
        if let Some(p) = self.procs.get(pid)
            && p.state == State::Runnable
            && self.ready.has_at_least(p.priority)
        {
            self.enqueue(pid);
            self.resched = true;
        }
    }

    /// Removes a process that never ran (a fork that failed half-way):
    /// releases what it holds and forgets it, leaving no zombie.
    pub fn discard(&mut self, pid: Pid) {
        crate::bus::calls::exit_bus(self, pid);
        if let Some(mut p) = self.procs.remove(pid) {
            if p.queued {
                self.ready.remove(pid);
            }
            if let Some(space) = p.space.take() {
                crate::mm::release_user_space(space);
            }
        }
    }

    /// Ends process `pid`: frees its memory, makes it a zombie, hands its
    /// children to init and wakes its parent.
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
        let Some(p) = self.procs.get_mut(pid) else {
            return;
        };
        let space = p.space.take();
        if p.queued {
            p.queued = false;
            self.ready.remove(pid);
        }
        if let Some(space) = space {
            // The dying table is the one in CR3 only when the process ends
            // itself; then leave it first. A process killed by another
            // (proc's KILL) is not current, and the killer, which returns to
            // user mode without a switch, keeps its own table.
            if pid == self.current {
                paging::with_kernel_table(|k| k.activate());
            }
            crate::mm::release_user_space(space);
        }
        for child in self.procs.values_mut() {
            if child.parent == pid {
                child.parent = INIT_PID;
            }
        }
        if pid == INIT_PID {
            crate::power_off_after_init(&status);
        }
        if pid == self.current {
            self.resched = true;
        }
        self.raise(parent, abi::interrupt::VECTOR_CHILD);
        self.wake_child_waiter(parent);
        // An orphaned zombie may now be init's to reap.
        self.wake_child_waiter(INIT_PID);
    }

    /// Reaps one zombie child of the current process: copies its status to
    /// user memory at `out` first, so a bad pointer loses nothing. `None`
    /// means the caller now sleeps until a child exits.
    pub fn wait_child(&mut self, out: u64, nohang: bool) -> Result<Option<Pid>, Error> {
        let me = self.current;
        let mut any_child = false;
        let mut zombie = None;
        for (_, p) in self.procs.iter() {
            if p.parent == me {
                any_child = true;
                if p.state == State::Zombie {
                    zombie = Some((p.pid, p.exit));
                    break;
                }
            }
        }
        let Some((child, status)) = zombie else {
            if !any_child {
                return Err(Error::NoChildren);
            }
            if nohang {
                return Err(Error::WouldBlock);
            }
            self.block_current(Block::Child);
            return Ok(None);
        };
        let space = self.current().space.as_mut().ok_or(Error::BadAddress)?;
        crate::usercopy::write_struct(space, out, &status)?;
        // The table and the queues give back the memory a burst of
        // processes made them grow to.
        self.procs.remove(child);
        self.ready.shrink(self.procs.len());
        Ok(Some(child))
    }

    /// The process to run next, or None if all are asleep.
    fn pick(&mut self) -> Option<Pid> {
        if !self.resched {
            return Some(self.current);
        }
        if let Some(pid) = self.next.take()
            && self
                .procs
                .get(pid)
                .is_some_and(|p| p.state == State::Runnable)
        {
            self.resched = false;
            return Some(pid);
        }
        while let Some(pid) = self.ready.pop() {
            if let Some(p) = self.procs.get_mut(pid) {
                p.queued = false;
                if p.state == State::Runnable {
                    self.resched = false;
                    return Some(pid);
                }
            }
        }
        None
    }

    fn switch_to(&mut self, pid: Pid) {
        if pid == self.current {
            return;
        }
        let p = self.procs.get_mut(pid).expect("picked from the table");
        install(&mut self.current, &mut self.current_ptr, pid, p);
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
            if let Some(pid) = s.pick() {
                s.switch_to(pid);
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
    };
    s.exit(pid, status);
}
