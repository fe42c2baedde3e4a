//! The kernel's state, as one object: every process, every device, every
//! reserve, and what the CPU is doing (`Cpu`). The system calls, the
//! traps and the interrupts are its methods and the functions of
//! `crate::devices` and `crate::syscall`, generic over the machine
//! (`crate::machine`), so all of it runs on the host against a fake one.
//!
//! The files: this one (the state, and access to its parts), `sched`
//! (which process runs: queues, wakes, ticks, the switch), `lifecycle`
//! (processes begin and end: spawn, exit, reap, wait, fault kills),
//! `fastpath` (the IPC hand-off) and `upcall` (delivery to handlers).
//!
//! Rules: the state sits behind one lock in the kernel crate, taken by
//! system calls and traps from user mode (the kernel is not preemptible
//! and runs with interrupts off); the idle loop runs without it, so no
//! borrow of the state lives across a block or a switch. The per-CPU
//! part is `Cpu`, one per CPU, found by `Machine::cpu_index`: the current
//! process and the scheduler's view of it; everything else is shared.
//! Anything that stops the current process from continuing sets
//! `resched`; without it the exit path returns to the same process at
//! once. With several CPUs: a CPU's `Cpu` is changed by others only under
//! the lock and only to ask (`preempt`, `resched`, clearing `idle`) or to
//! evict (a process killed while it runs elsewhere: `Machine::evict`
//! first, then its `current` is cleared), and each such change is followed
//! by `Machine::kick`.

mod fastpath;
mod faults;
mod lifecycle;
mod sched;
pub mod upcall;

pub use faults::UserFault;
pub use lifecycle::release_space;
pub use sched::Settled;

use crate::devices::Devices;
use crate::machine::Machine;
use crate::process::{PRIORITY_LEVELS, Pid, Process, Procs};
use crate::reserve::{Reserve, ReserveId, Reserves};
use crate::runqueue::RunQueue;

/// What one CPU is doing: the current process and the scheduler's view of
/// it.
pub struct Cpu<M: Machine> {
    /// The process whose frame is current; 0 before the first.
    current: Pid,
    /// The same process, for the system-call path (null before the first).
    current_ptr: *mut Process<M>,
    /// The current process must not simply continue.
    resched: bool,
    /// A process woken by the current one as it went to sleep, to run next
    /// without a trip through the ready queue (the IPC hand-off).
    next: Option<Pid>,
    /// The clock when the current process was given the CPU: a tick takes
    /// it away only after it has had half a tick (a tick that was pending
    /// when it came in — one a long system call stopped for — is not its).
    slice_start: u64,
    /// The CPU runs processes (set by the machine as CPUs start).
    online: bool,
    /// The CPU waits for work, with no current process, and nobody has
    /// kicked it since.
    idle: bool,
    /// Another CPU found a more urgent process waiting: give the current
    /// one up at the next settle (it goes back to the ready queue then,
    /// by its own CPU, so it is never queued while it runs).
    preempt: bool,
    /// Which queue wins the next tie between the shared queue and this
    /// CPU's own (they alternate).
    tie_shared: bool,
}

impl<M: Machine> Cpu<M> {
    /// A CPU that runs no process yet.
    const fn idle() -> Cpu<M> {
        Cpu {
            current: 0,
            current_ptr: core::ptr::null_mut(),
            resched: true,
            next: None,
            slice_start: 0,
            online: false,
            idle: false,
            preempt: false,
            tie_shared: false,
        }
    }
}

/// The kernel's state.
pub struct Kernel<M: Machine> {
    /// Every device.
    pub devices: Devices,
    /// Every frame reserve.
    pub reserves: Reserves,
    /// Every process, by pid.
    procs: Procs<M>,
    ready: Ready,
    /// What each CPU is doing, by `Machine::cpu_index`.
    cpus: [Cpu<M>; MAX_CPUS],
    /// The CPUs that run processes, bit i for CPU i (each `Cpu::online`
    /// too): the scheduler's searches across CPUs visit only these.
    online: u64,
}

/// The most CPUs the kernel runs on.
pub const MAX_CPUS: usize = 16;

/// The ready queues: queue 0 for processes that may run anywhere, and
/// queue `1 + i` for those bound to CPU `i` (see `sched.rs`).
pub(crate) type Ready = RunQueue<PRIORITY_LEVELS, { 1 + MAX_CPUS }>;

/// The ready queue of CPU `cpu`'s bound processes.
#[inline(always)]
pub(crate) const fn local_queue(cpu: usize) -> usize {
    1 + cpu
}

/// Whether a process with `affinity` may run on CPU `cpu`.
#[inline(always)]
pub(crate) const fn allowed(affinity: u64, cpu: usize) -> bool {
    affinity == 0 || affinity & (1 << cpu) != 0
}

// SAFETY: `current_ptr` points into a boxed process owned by `procs`, and
// the state is only ever reached through the kernel's lock.
unsafe impl<M: Machine> Send for Kernel<M> {}

impl<M: Machine> Default for Kernel<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Machine> Kernel<M> {
    /// A kernel with no process and no device yet.
    pub const fn new() -> Kernel<M> {
        Kernel {
            devices: Devices::new(),
            reserves: Reserves::new(),
            procs: Procs::new(),
            ready: RunQueue::new(),
            cpus: [const { Cpu::idle() }; MAX_CPUS],
            online: 0,
        }
    }

    /// Counts CPU `cpu` among those that run processes (the boot CPU, and
    /// each other one as it starts).
    pub fn cpu_online(&mut self, cpu: usize) {
        if let Some(c) = self.cpus.get_mut(cpu) {
            c.online = true;
            self.online |= 1 << cpu;
        }
    }

    /// How many CPUs run processes.
    pub fn cpus_online(&self) -> usize {
        (self.online.count_ones() as usize).max(1)
    }

    /// The CPUs that run processes, as a mask (bit i: CPU i).
    pub fn online_mask(&self) -> u64 {
        if self.online == 0 { 1 } else { self.online }
    }

    /// Whether this CPU still has a current process: false when it was
    /// evicted (its process killed from another CPU) while it waited for
    /// the lock, so the call or trap it entered for is void.
    #[inline(always)]
    pub fn has_current(&self) -> bool {
        !self.cpus[M::cpu_index()].current_ptr.is_null()
    }

    /// The CPU that runs `pid` now, if any (its current process).
    pub fn cpu_of(&self, pid: Pid) -> Option<usize> {
        if pid == 0 {
            return None;
        }
        self.cpus
            .iter()
            .position(|c| c.current == pid && !c.current_ptr.is_null())
    }

    /// The running process.
    #[inline]
    pub fn current(&mut self) -> &mut Process<M> {
        assert!(
            !self.cpus[M::cpu_index()].current_ptr.is_null(),
            "no current process yet"
        );
        // SAFETY: `current_ptr` is set by `switch_to` to a boxed process in
        // `procs`; a process leaves the table only when reaped or discarded,
        // which never happens to the current one (its parent does the
        // reaping while it runs), so the pointer is live.
        unsafe { &mut *self.cpus[M::cpu_index()].current_ptr }
    }

    pub fn current_pid(&self) -> Pid {
        self.cpus[M::cpu_index()].current
    }

    /// The running process and the device table, together.
    #[inline]
    pub fn current_with_devices(&mut self) -> (&mut Process<M>, &mut crate::devices::Devices) {
        assert!(
            !self.cpus[M::cpu_index()].current_ptr.is_null(),
            "no current process yet"
        );
        // SAFETY: as in `current`; the process record is a box of its own,
        // not part of the device table, so the two borrows do not overlap.
        (
            unsafe { &mut *self.cpus[M::cpu_index()].current_ptr },
            &mut self.devices,
        )
    }

    /// Two different processes, both to change.
    pub fn pair_mut(&mut self, a: Pid, b: Pid) -> Option<(&mut Process<M>, &mut Process<M>)> {
        self.procs.pair_mut(a, b)
    }

    /// Process<M> `pid` (if it exists) and the device table, together.
    #[inline]
    pub fn proc_with_devices(
        &mut self,
        pid: Pid,
    ) -> (Option<&mut Process<M>>, &mut crate::devices::Devices) {
        (self.procs.get_mut(pid), &mut self.devices)
    }

    /// The running process and its reserve.
    #[inline]
    pub fn current_and_reserve(&mut self) -> Option<(&mut Process<M>, &mut Reserve)> {
        if self.cpus[M::cpu_index()].current_ptr.is_null() {
            return None;
        }
        // SAFETY: as in `current`: the pointer is to a live boxed process.
        let p = unsafe { &mut *self.cpus[M::cpu_index()].current_ptr };
        let r = self.reserves.get_mut(p.reserve)?;
        Some((p, r))
    }

    /// The running process and reserve `id` (which need not be its own).
    #[inline]
    pub fn current_with_reserve(
        &mut self,
        id: ReserveId,
    ) -> Option<(&mut Process<M>, &mut Reserve)> {
        if self.cpus[M::cpu_index()].current_ptr.is_null() {
            return None;
        }
        // SAFETY: as in `current`.
        let p = unsafe { &mut *self.cpus[M::cpu_index()].current_ptr };
        let r = self.reserves.get_mut(id)?;
        Some((p, r))
    }

    /// Process<M> `pid` and its reserve.
    #[inline]
    pub fn proc_and_reserve(&mut self, pid: Pid) -> Option<(&mut Process<M>, &mut Reserve)> {
        let p = self.procs.get_mut(pid)?;
        let r = self.reserves.get_mut(p.reserve)?;
        Some((p, r))
    }

    /// The process `pid`, if it exists.
    #[inline]
    pub fn get_mut(&mut self, pid: Pid) -> Option<&mut Process<M>> {
        self.procs.get_mut(pid)
    }

    /// The process after `pid` in table order (`NO_PID`: the first).
    pub fn next_pid_after(&self, pid: Pid) -> Option<Pid> {
        self.procs.next_after(pid)
    }

    pub fn process_count(&self) -> usize {
        self.procs.len()
    }
}

#[cfg(test)]
mod audit;
#[cfg(test)]
mod fastpath_tests;
#[cfg(test)]
mod model;
#[cfg(test)]
mod smp_tests;
#[cfg(test)]
pub(crate) mod tests;
