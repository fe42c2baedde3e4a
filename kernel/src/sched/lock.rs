//! The scheduler's lock (`sched::SCHED`, the one lock over processes and
//! devices): a spin lock whose uncontended path is one exchange and a
//! test, since every system call and trap takes it.
//!
//! Rules: the uncontended path is one exchange and a test (`spin::Mutex`
//! took six instructions, with an alignment `nop` and a jump); a
//! contended CPU spins on a cold path of its own with interrupts off, and
//! answers its TLB mailbox while it spins (`arch::tlb`), because the
//! holder may be waiting for exactly that; taking it is an Acquire,
//! releasing it (dropping the guard) a Release, as for any mutex.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel_core::lockorder::Rank;

pub struct Lock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a guard, and at most one guard
// exists at a time (`held`), as for `spin::Mutex`.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    pub const fn new(value: T) -> Lock<T> {
        Lock {
            held: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning while another holder has it.
    #[inline(always)]
    pub fn lock(&self) -> Guard<'_, T> {
        crate::arch::ordered::taking(Rank::Sched);
        if self.held.swap(true, Ordering::Acquire) {
            self.wait();
        }
        Guard { lock: self }
    }

    /// Takes the lock; also says whether it had to wait for another
    /// holder (only then can another CPU have changed this CPU's part of
    /// the state since the kernel was entered: see `trap.rs`).
    #[inline(always)]
    pub fn lock_noting_wait(&self) -> (Guard<'_, T>, bool) {
        crate::arch::ordered::taking(Rank::Sched);
        let waited = self.held.swap(true, Ordering::Acquire);
        if waited {
            self.wait();
        }
        (Guard { lock: self }, waited)
    }

    #[cold]
    #[inline(never)]
    fn wait(&self) {
        while self.held.swap(true, Ordering::Acquire) {
            while self.held.load(Ordering::Relaxed) {
                // The holder may be waiting for this CPU to drop TLB
                // entries or leave a space (interrupts are off here).
                crate::arch::tlb::service();
                core::hint::spin_loop();
            }
        }
    }
}

/// The lock, held; released when dropped.
pub struct Guard<'a, T> {
    lock: &'a Lock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (see `Lock`).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one, and borrowed mutably.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        crate::arch::ordered::released(Rank::Sched);
        self.lock.held.store(false, Ordering::Release);
    }
}
