//! Which process runs: the ready queues, waking and completing sleepers,
//! raising interrupts, blocking, yielding, the tick, and the switch.
//!
//! Policy: fixed priorities (0 most urgent), round-robin within a
//! priority; a tick preempts the running process when another one at the
//! same or a more urgent level is ready and the running one has had half
//! a tick, and waking a more urgent process preempts at once. A process
//! sleeping in `wait_child` restarts the call when woken (it is moved back
//! over the `syscall` instruction); the other sleeping calls (`irq_wait`,
//! `port_out_wait`, `dev_poll`) are completed by whoever wakes them, so a
//! fused call never repeats its first half. A waker that goes to sleep
//! hands the CPU straight to the process it woke (`Cpu::next`), which
//! goes on with the waker's turn.

use super::Kernel;
use crate::machine::{Machine, UserFrame};
use crate::process::{Block, Pid, Process, State, pid_slot};
use abi::{Error, ExitKind, ExitStatus};

/// What `settle` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The current process runs next (its frame is installed).
    Run,
    /// No process is runnable: the CPU waits for an interrupt, then
    /// settles again.
    Idle,
}

impl<M: Machine> Kernel<M> {
    /// Queues `pid`, which this CPU runs or just made, where this CPU
    /// will find it: the shared queue, or this CPU's own for a process
    /// bound to CPUs this is one of (one bound elsewhere is placed, see
    /// `place`).
    pub(super) fn enqueue(&mut self, pid: Pid) {
        let me = M::cpu_index();
        let Some(p) = self.procs.get(pid) else {
            return;
        };
        let (priority, affinity) = (p.priority, self.effective_affinity(p.affinity));
        let queue = if affinity == 0 {
            0
        } else if super::allowed(affinity, me) {
            super::local_queue(me)
        } else {
            self.place(pid, priority, affinity);
            return;
        };
        // Links for every slot were made at spawn, so this cannot fail.
        let queued = self.ready.push_in(queue, pid_slot(pid), pid, priority);
        debug_assert!(queued, "run-queue link of pid {pid} reserved at spawn");
    }

    /// `affinity` as it applies now: 0 (anywhere) when it names every
    /// running CPU or none of them (a mask naming no running CPU would
    /// leave the process nowhere to run: it runs anywhere instead).
    pub(crate) fn effective_affinity(&self, affinity: u64) -> u64 {
        let online = self.online_mask();
        let a = affinity & online;
        if affinity == 0 || a == 0 || a == online {
            0
        } else {
            a
        }
    }

    /// Queues `pid`, bound to the CPUs of `affinity` (not 0), on the
    /// queue of the one of them doing the least urgent work, and makes
    /// that CPU take it if it should.
    pub(super) fn place(&mut self, pid: Pid, priority: u8, affinity: u64) {
        let target = self.least_urgent_cpu(affinity, false);
        let cpu = target.map_or_else(|| affinity.trailing_zeros() as usize, |(j, _)| j);
        self.ready
            .push_in(super::local_queue(cpu), pid_slot(pid), pid, priority);
        if let Some((j, rank)) = target
            && rank > u16::from(priority)
        {
            self.claim(j);
        }
    }

    /// Whether a process as urgent as `priority` waits for this CPU.
    fn waiting_here(&self, priority: u8) -> bool {
        self.ready.has_at_least(priority)
            || self
                .ready
                .has_at_least_in(super::local_queue(M::cpu_index()), priority)
    }

    /// The queue this CPU takes from next: the more urgent head of the
    /// shared queue and its own, alternating between the two on a tie so
    /// that neither starves the other at one level.
    fn next_queue(&mut self) -> Option<usize> {
        let me = M::cpu_index();
        let local = super::local_queue(me);
        match (self.ready.best_level(), self.ready.best_level_in(local)) {
            (None, None) => None,
            (Some(_), None) => Some(0),
            (None, Some(_)) => Some(local),
            (Some(g), Some(l)) if g != l => Some(if g < l { 0 } else { local }),
            _ => {
                let c = &mut self.cpus[me];
                c.tie_shared = !c.tie_shared;
                Some(if c.tie_shared { 0 } else { local })
            }
        }
    }

    /// Puts the current process to sleep. A `Child` wait restarts its
    /// system call when woken; the others are completed by their waker.
    pub fn block_current(&mut self, why: Block) {
        let p = self.current();
        p.state = State::Blocked(why);
        if why == Block::Child {
            p.frame.back_over_syscall();
        }
        self.cpus[M::cpu_index()].resched = true;
    }

    /// Makes the current process's system call start again when it next
    /// runs (its `rip` goes back over the `syscall` instruction, its
    /// argument registers are as it left them) and gives the CPU away: a
    /// long call that reached a preemption point. The call finds its
    /// progress in the kernel's state, not in the registers.
    pub fn restart_current(&mut self) {
        self.current().frame.back_over_syscall();
        self.yield_current();
    }

    /// Completes the call `pid` sleeps in with `ret` (a result word or an
    /// error) and makes it runnable.
    pub fn complete(&mut self, pid: Pid, ret: isize) {
        let Some(p) = self.procs.get_mut(pid) else {
            return;
        };
        // Only a sleeper's frame is the kernel's to write: a runnable
        // process may be running on another CPU.
        if matches!(p.state, State::Blocked(_)) {
            p.frame.set_result(ret as u64);
            p.state = State::Runnable;
            let prio = p.priority;
            self.made_runnable(pid, prio);
        }
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
        if p.state == State::Runnable {
            // Running elsewhere: that CPU delivers it at its next settle,
            // which the kick brings on. (Not `resched`: the process goes
            // on running, it is not queued.)
            if let Some(cpu) = self.cpu_of(pid)
                && cpu != M::cpu_index()
            {
                M::kick(cpu);
            }
            return;
        }
        if let State::Blocked(Block::Irq { mask, .. }) = p.state
            && p.pending & mask != 0
        {
            let taken = p.pending & mask;
            p.pending &= !taken;
            p.frame.set_result(taken);
            p.state = State::Runnable;
            let prio = p.priority;
            self.made_runnable(pid, prio);
        }
    }

    /// Wakes `pid` if it sleeps in `wait_child`.
    pub(super) fn wake_child_waiter(&mut self, pid: Pid) {
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
        let slot = pid_slot(pid);
        if let Some(queue) = self.ready.queue_of(slot) {
            self.ready.remove(slot);
            self.ready.push_in(queue, slot, pid, priority);
        }
        // The current process may now be less urgent than a ready one;
        // a process running elsewhere is weighed against the waiting ones.
        if pid == self.cpus[M::cpu_index()].current {
            self.yield_current();
        } else if let Some(level) = self.ready.best_level() {
            self.offer(level);
        }
    }

    /// Binds `pid` to the CPUs of `mask` (0: any CPU). A queued process
    /// moves to a queue it may be taken from; a running one on a CPU it
    /// may no longer use gives that CPU up at once.
    pub fn set_affinity(&mut self, pid: Pid, mask: u64) {
        let Some(p) = self.procs.get_mut(pid) else {
            return;
        };
        p.affinity = mask;
        let slot = pid_slot(pid);
        if self.ready.remove(slot) {
            self.enqueue_anywhere(pid);
        }
        if let Some(cpu) = self.cpu_of(pid)
            && !super::allowed(self.effective_affinity(mask), cpu)
        {
            if cpu == M::cpu_index() {
                self.yield_current();
            } else {
                let c = &mut self.cpus[cpu];
                c.preempt = true;
                c.resched = true;
                M::kick(cpu);
            }
        }
    }

    /// Queues `pid` (runnable, running nowhere) wherever it may run, and
    /// makes a CPU take it if one should.
    fn enqueue_anywhere(&mut self, pid: Pid) {
        let Some(p) = self.procs.get(pid) else {
            return;
        };
        let (priority, affinity) = (p.priority, self.effective_affinity(p.affinity));
        if affinity != 0 {
            self.place(pid, priority, affinity);
        } else {
            self.ready.push(pid_slot(pid), pid, priority);
            if self.cpus_online() > 1 {
                self.offer(priority);
            }
        }
    }

    pub(super) fn wake(&mut self, pid: Pid) {
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

    /// Process<M> `pid`, at `priority`, has just become runnable: it runs
    /// next, or waits its turn, or preempts the current process.
    pub(super) fn made_runnable(&mut self, pid: Pid, priority: u8) {
        // The current process is in the table whenever the pointer is set
        // (see `current`), so it is read through the pointer, not looked up.
        let current = (!self.cpus[M::cpu_index()].current_ptr.is_null()
            && self.cpus[M::cpu_index()].current != pid)
            .then(|| {
                let c = self.current();
                (c.state, c.priority)
            });
        // Direct hand-off: the waker sleeps and nothing more urgent waits,
        // so the woken process simply runs next.
        let waker_sleeps = matches!(current, Some((State::Blocked(_), _)));
        let affinity = self.procs.get(pid).map_or(0, |p| p.affinity);
        if waker_sleeps
            && self.cpus[M::cpu_index()].next.is_none()
            && (priority == 0 || !self.waiting_here(priority - 1))
            && super::allowed(affinity, M::cpu_index())
        {
            self.cpus[M::cpu_index()].next = Some(pid);
            return;
        }
        let affinity = self.effective_affinity(affinity);
        if affinity != 0 {
            self.place(pid, priority, affinity);
            return;
        }
        self.ready.push(pid_slot(pid), pid, priority);
        if self.cpus_online() == 1 {
            if let Some((State::Runnable, current_priority)) = current
                && priority < current_priority
            {
                self.preempt_here();
            }
            return;
        }
        self.offer(priority);
    }

    /// The current process gives the CPU up to a more urgent one: back to
    /// the ready queue (its own CPU queues it, so it is never queued while
    /// it runs), and the CPU picks again.
    fn preempt_here(&mut self) {
        let cur = self.cpus[M::cpu_index()].current;
        self.enqueue(cur);
        self.cpus[M::cpu_index()].resched = true;
    }

    /// A process at `priority` waits in the ready queue: makes sure a CPU
    /// takes it if any runs something less urgent (the machine-wide rule:
    /// a runnable process never waits while a CPU runs a less urgent one).
    /// The CPU to take it is the one doing the least urgent work — an idle
    /// one first — and each CPU is claimed for one waiting process at a
    /// time (a kicked idle CPU, a CPU asked to preempt, this CPU when it is
    /// about to pick anyway), so a burst of wake-ups spreads.
    pub(super) fn offer(&mut self, priority: u8) {
        let me = M::cpu_index();
        // This CPU picks next anyway (its process sleeps or ends): it
        // takes the most urgent waiting process itself.
        let mine = self.cpus[me].current;
        let mine_runs = !self.cpus[me].current_ptr.is_null()
            && self
                .procs
                .get(mine)
                .is_some_and(|p| p.state == State::Runnable);
        if self.cpus[me].online && !mine_runs && self.cpus[me].next.is_none() {
            return;
        }
        if let Some((j, rank)) = self.least_urgent_cpu(0, false)
            && rank > u16::from(priority)
        {
            self.claim(j);
        }
    }

    /// Among the running CPUs `affinity` allows (0: all; not this one if
    /// `others_only`), the one doing the least urgent work, and how urgent
    /// that is (an idle CPU ranks below every priority), leaving out CPUs
    /// already claimed for a waiting process.
    fn least_urgent_cpu(&self, affinity: u64, others_only: bool) -> Option<(usize, u16)> {
        let me = M::cpu_index();
        const IDLE: u16 = u16::MAX;
        let mut worst: Option<(usize, u16)> = None;
        // Only the online CPUs the affinity allows: the wake-up path runs
        // this, and most machines have far fewer CPUs than `MAX_CPUS`.
        let mut candidates = self.online & if affinity == 0 { u64::MAX } else { affinity };
        while candidates != 0 {
            let j = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let Some(c) = self.cpus.get(j) else {
                break;
            };
            // Claimed already: asked to preempt, or kicked out of idle
            // (`idle` clear, `resched` still set).
            if (others_only && j == me) || (j != me && (c.preempt || (c.resched && !c.idle))) {
                continue;
            }
            let rank = if c.idle && j != me {
                IDLE
            } else if c.current_ptr.is_null() {
                continue;
            } else {
                match self.procs.get(c.current) {
                    Some(p) if p.state == State::Runnable => u16::from(p.priority),
                    _ => continue,
                }
            };
            if worst.is_none_or(|(_, r)| rank > r) {
                worst = Some((j, rank));
            }
        }
        worst
    }

    /// Makes CPU `j` (found by `least_urgent_cpu`, doing less urgent work)
    /// take the most urgent waiting process: this CPU by preempting its
    /// own process, another by a kick.
    fn claim(&mut self, j: usize) {
        let me = M::cpu_index();
        if j == me {
            if !self.cpus[me].resched {
                self.preempt_here();
            }
            return;
        }
        let c = &mut self.cpus[j];
        if c.idle {
            c.idle = false;
        } else {
            c.preempt = true;
        }
        c.resched = true;
        M::kick(j);
    }

    /// Sends the current process to the back of its level. With no one
    /// as urgent waiting it would be picked again at once, so it simply
    /// goes on.
    pub fn yield_current(&mut self) {
        let pid = self.cpus[M::cpu_index()].current;
        let Some(p) = self.procs.get(pid) else {
            return;
        };
        if p.state != State::Runnable {
            // Asleep or ended: nothing to queue, something else runs.
            self.cpus[M::cpu_index()].resched = true;
            return;
        }
        let allowed_here = super::allowed(self.effective_affinity(p.affinity), M::cpu_index());
        if !self.waiting_here(p.priority) && allowed_here {
            return;
        }
        self.enqueue(pid);
        self.cpus[M::cpu_index()].resched = true;
    }

    /// On a timer tick: preempt if someone as urgent is waiting and the
    /// current process has had its share of the CPU.
    pub fn tick(&mut self) {
        let pid = self.cpus[M::cpu_index()].current;
        let had = M::now().wrapping_sub(self.cpus[M::cpu_index()].slice_start);
        if let Some(p) = self.procs.get(pid)
            && p.state == State::Runnable
            && self.waiting_here(p.priority)
            && had >= M::half_tick()
        {
            self.enqueue(pid);
            self.cpus[M::cpu_index()].resched = true;
        }
    }

    /// Makes the process to run next current; false if all are asleep.
    pub(super) fn pick(&mut self) -> bool {
        if !self.cpus[M::cpu_index()].resched {
            return true;
        }
        // A hand-off continues the waker's turn (its time goes on: a pair
        // of processes handing off to each other is still preempted at
        // ticks); a process from the ready queue starts a turn of its own.
        if let Some(pid) = self.cpus[M::cpu_index()].next.take()
            && self.install_if_runnable(pid)
        {
            self.cpus[M::cpu_index()].resched = false;
            return true;
        }
        while let Some(pid) = self.next_queue().and_then(|q| self.ready.pop_from(q)) {
            if self.install_if_runnable(pid) {
                self.cpus[M::cpu_index()].resched = false;
                self.cpus[M::cpu_index()].slice_start = M::now();
                return true;
            }
        }
        false
    }

    /// Makes `pid` current if it is runnable (one look at the table for
    /// both).
    #[inline]
    pub(super) fn install_if_runnable(&mut self, pid: Pid) -> bool {
        let Some(p) = self.procs.get_mut(pid) else {
            return false;
        };
        if p.state != State::Runnable {
            return false;
        }
        if pid != self.cpus[M::cpu_index()].current {
            install(
                &mut self.cpus[M::cpu_index()].current,
                &mut self.cpus[M::cpu_index()].current_ptr,
                pid,
                p,
            );
        }
        true
    }

    /// Makes sure a runnable process is current, with its pending
    /// interrupts delivered: called at the end of every trap and system
    /// call. `Idle` when none can run.
    #[inline(always)]
    pub fn settle(&mut self) -> Settled {
        // Work the entry left (a grown log, deferred frees) is done out of
        // line and then the quick test goes on: an entry that only freed
        // memory should not pay for the whole slow path. (Waking klog's
        // listeners may set `resched`, which is tested after it.)
        if M::exit_work_due() {
            self.exit_work();
        }
        // The common case: the caller simply continues, with nothing to
        // deliver. (`resched` is set until a first process is current, so
        // `current` is there when it is clear.)
        if !self.cpus[M::cpu_index()].resched {
            // SAFETY: `resched` is clear only once a process is current, so
            // the pointer is set, and it points into the table (see
            // `current`).
            let p = unsafe { &*self.cpus[M::cpu_index()].current_ptr };
            if p.pending == 0 || !p.int_enabled {
                return Settled::Run;
            }
        }
        self.settle_slow()
    }

    /// Takes the work a kernel entry left (`Machine::take_exit_work`).
    #[cold]
    #[inline(never)]
    fn exit_work(&mut self) {
        if M::take_exit_work() {
            crate::devices::kdev::klog::notify_listeners(self);
        }
    }

    #[inline(never)]
    fn settle_slow(&mut self) -> Settled {
        // Work left meanwhile (by this slow path's own exits, say) waits
        // for the next entry's end; the idle path below takes it too.
        let me = M::cpu_index();
        if core::mem::take(&mut self.cpus[me].preempt) {
            // Another CPU found someone more urgent waiting (see `offer`).
            let cur = self.cpus[me].current;
            if !self.cpus[me].current_ptr.is_null()
                && self
                    .procs
                    .get(cur)
                    .is_some_and(|p| p.state == State::Runnable)
            {
                self.enqueue(cur);
            }
        }
        self.cpus[me].idle = false;
        while self.pick() {
            if super::upcall::deliver_pending(self.current()) {
                // What this CPU left in the shared queue (a process it
                // preempted, one that yielded, the loser of a tie with its
                // own queue) may be more urgent than what it now runs (a
                // hand-off is taken without looking at the queues), or
                // than another CPU's work. This CPU picks again in the
                // first case (never returning to user mode with its
                // process queued, where another CPU could take it too);
                // the others are offered it in the second.
                if self.cpus_online() > 1
                    && let Some(level) = self.ready.best_level()
                {
                    if level < self.current().priority {
                        self.preempt_here();
                        continue;
                    }
                    if let Some((j, rank)) = self.least_urgent_cpu(0, true)
                        && rank > u16::from(level)
                    {
                        self.claim(j);
                    }
                }
                return Settled::Run;
            }
            let pid = self.current_pid();
            crate::klog!(
                M,
                "[kernel] pid {pid} killed: its interrupts cannot be delivered (handler stack full or unusable)"
            );
            let status = ExitStatus {
                pid,
                kind: ExitKind::Killed as u32,
                code: Error::LimitReached.code() as i64,
                ..ExitStatus::default()
            };
            self.exit(pid, status);
        }
        // Nothing to run: the CPU leaves the last process's space (so a
        // later teardown of it needs nothing from this CPU) and waits.
        let c = &mut self.cpus[me];
        c.current = 0;
        c.current_ptr = core::ptr::null_mut();
        c.resched = true;
        c.idle = true;
        M::leave_space();
        Settled::Idle
    }

    /// Stops process `pid` from running on another CPU, if it does: that
    /// CPU is out of its space and its registers are saved when this
    /// returns, and it will pick another process.
    pub(super) fn evict_elsewhere(&mut self, pid: Pid) {
        let Some(cpu) = self.cpu_of(pid) else {
            return;
        };
        if cpu == M::cpu_index() {
            return;
        }
        M::evict(cpu);
        let c = &mut self.cpus[cpu];
        c.current = 0;
        c.current_ptr = core::ptr::null_mut();
        c.resched = true;
        c.preempt = false;
    }
}

/// Makes process `pid`, whose record is `p` and which is not the current
/// one, current: the machine runs its frame and its address space next.
/// (The fields are passed apart so the IPC fast path can call it while it
/// holds `p` from the table.)
#[inline(always)]
pub(super) fn install<M: Machine>(
    current: &mut Pid,
    current_ptr: &mut *mut Process<M>,
    pid: Pid,
    p: &mut Process<M>,
) {
    *current = pid;
    *current_ptr = p;
    // The frame lives in a boxed process that stays in the table at least
    // until another frame is made current (a process is only removed when
    // reaped, which happens while its parent runs).
    M::install(&mut p.frame, p.space.as_ref());
}
