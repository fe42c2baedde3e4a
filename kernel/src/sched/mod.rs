//! The kernel's state behind its lock, and the way back to user mode.
//!
//! The state and every decision about it live in kernel-core
//! (`kernel_core::kernel::Kernel`, here over the real machine); this module
//! holds the one instance and the loop that waits for work: a system call
//! or trap ends in `settle`, which returns once a process can run, idling
//! with the lock released (and interrupts on) until then.

pub mod lock;

use crate::arch::{cpu, entry};
use crate::hw::Hw;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use kernel_core::kernel::Settled;
use lock::{Guard, Lock};

/// The kernel's state on this machine.
pub type Kernel = kernel_core::kernel::Kernel<Hw>;

/// TSC cycles spent in the idle wait since boot (`sys_info`).
pub static IDLE_CYCLES: AtomicU64 = AtomicU64::new(0);

/// The one instance.
pub static SCHED: Lock<Kernel> = Lock::new(Kernel::new());

/// Work for the way out of the kernel besides scheduling, one bit per
/// kind, so that the end of every entry tests one byte for all of it
/// (`Machine::exit_work`): set by whoever makes the work, on any CPU and
/// under any lock, and taken by `settle`'s slow path.
pub static EXIT_WORK: AtomicU8 = AtomicU8::new(0);
/// The log grew: klog's listeners are to be woken (`log.rs`).
pub const WORK_LOG: u8 = 1;
/// Multi-page heap blocks wait to be freed (`heap::reclaim`).
pub const WORK_FREE: u8 = 2;

/// Makes sure a runnable process is current, idling with interrupts on
/// (and the lock released) until one is. Called at the end of every trap
/// and system call, with the lock the call took.
#[inline(always)]
pub fn settle(mut s: Guard<'static, Kernel>) {
    // The heap's deferred frees are done inside (`Hw::exit_chores`), on
    // the slow path, which `EXIT_WORK` sends every entry to when there are
    // some.
    if s.settle() == Settled::Run {
        return;
    }
    idle_until_runnable(s);
}

/// `settle` once the CPU found nothing to run: out of line, so that the
/// common case above is straight code, not the head of a loop.
#[cold]
#[inline(never)]
fn idle_until_runnable(mut s: Guard<'static, Kernel>) {
    loop {
        drop(s);
        let start = cpu::rdtsc();
        cpu::idle_wait();
        IDLE_CYCLES.fetch_add(cpu::rdtsc().wrapping_sub(start), Ordering::Relaxed);
        s = SCHED.lock();
        if s.settle() == Settled::Run {
            return;
        }
    }
}

/// Gives this CPU to the first process it finds; never returns.
pub fn start() -> ! {
    settle(SCHED.lock());
    entry::enter_user()
}
