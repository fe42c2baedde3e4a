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
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::kernel::Settled;
use lock::{Guard, Lock};

/// The kernel's state on this machine.
pub type Kernel = kernel_core::kernel::Kernel<Hw>;

/// TSC cycles spent in the idle wait since boot (`sys_info`).
pub static IDLE_CYCLES: AtomicU64 = AtomicU64::new(0);

/// The one instance.
pub static SCHED: Lock<Kernel> = Lock::new(Kernel::new());

/// Makes sure a runnable process is current, idling with interrupts on
/// (and the lock released) until one is. Called at the end of every trap
/// and system call, with the lock the call took.
#[inline(always)]
pub fn settle(mut s: Guard<'static, Kernel>) {
    loop {
        // `Kernel::settle` takes the work an entry left (the deferred heap
        // frees, klog's listeners) before anything else.
        if s.settle() == Settled::Run {
            return;
        }
        // Work left while settling (a process it ended freed memory):
        // taken, and what it woke seen, before this CPU sleeps.
        if crate::exit_work::due() {
            continue;
        }
        idle(s);
        s = SCHED.lock();
    }
}

/// Waits, with the lock released and interrupts on, until this CPU may
/// find work (out of line: the end of a system call never needs it).
#[cold]
#[inline(never)]
fn idle(s: Guard<'static, Kernel>) {
    drop(s);
    let start = cpu::rdtsc();
    cpu::idle_wait();
    IDLE_CYCLES.fetch_add(cpu::rdtsc().wrapping_sub(start), Ordering::Relaxed);
}

/// Gives this CPU to the first process it finds; never returns.
pub fn start() -> ! {
    settle(SCHED.lock());
    entry::enter_user()
}
