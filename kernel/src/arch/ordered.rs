//! Spin locks that know their place in the kernel's lock order
//! (`kernel_core::lockorder`), and the per-CPU record that checks it in
//! the checked build (feature `lock-check`, which the test images use).
//!
//! Rules: every kernel lock is an [`Ordered`] (or, for `SCHED`, calls
//! [`taking`] and [`released`] itself); in the checked build a lock taken
//! out of order stops the machine with both locks' names before it
//! spins, and [`assert_only`] checks what may be held across a wait for
//! another CPU. Without the feature all of it compiles to nothing, so the
//! fast paths of the release kernel pay no instruction for it. Once the
//! machine is panicking the record is no longer checked: the panic path
//! takes the log however it can.

use kernel_core::lockorder::Rank;

/// A spin lock at `rank` in the lock order.
pub struct Ordered<T> {
    rank: Rank,
    inner: spin::Mutex<T>,
}

impl<T> Ordered<T> {
    pub const fn new(rank: Rank, value: T) -> Ordered<T> {
        Ordered {
            rank,
            inner: spin::Mutex::new(value),
        }
    }

    /// Takes the lock, spinning while another CPU has it.
    #[inline(always)]
    pub fn lock(&self) -> OrderedGuard<'_, T> {
        taking(self.rank);
        OrderedGuard {
            rank: self.rank,
            guard: self.inner.lock(),
        }
    }

    /// Whether some CPU holds it (the panic path's question).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Releases the lock whoever holds it.
    ///
    /// # Safety
    /// Only on the way to stopping the machine: the holder never runs again.
    pub unsafe fn force_unlock(&self) {
        // SAFETY: as the caller guarantees.
        unsafe { self.inner.force_unlock() }
    }
}

/// An [`Ordered`] lock, held; released when dropped.
pub struct OrderedGuard<'a, T> {
    rank: Rank,
    guard: spin::MutexGuard<'a, T>,
}

impl<T> core::ops::Deref for OrderedGuard<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> core::ops::DerefMut for OrderedGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for OrderedGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // The record loses the lock a moment before the lock is free (the
        // inner guard drops after this): harmless, this CPU takes nothing
        // in between.
        released(self.rank);
    }
}

#[cfg(feature = "lock-check")]
mod check {
    use super::super::percpu::MAX_CPUS;
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use kernel_core::lockorder::{Held, Rank};

    /// Each CPU's held locks; the last slot is for code that runs before
    /// its CPU has a GS base (one CPU starts at a time).
    static HELD: [AtomicU32; MAX_CPUS + 1] = [const { AtomicU32::new(0) }; MAX_CPUS + 1];
    static PANICKING: AtomicBool = AtomicBool::new(false);

    fn slot() -> &'static AtomicU32 {
        use x86_64::registers::model_specific::GsBase;
        if GsBase::read().as_u64() == 0 {
            &HELD[MAX_CPUS]
        } else {
            &HELD[super::super::percpu::index()]
        }
    }

    pub fn taking(rank: Rank) {
        if PANICKING.load(Ordering::Relaxed) {
            return;
        }
        let slot = slot();
        // Only this CPU writes its slot.
        match Held::from_bits(slot.load(Ordering::Relaxed)).take(rank) {
            Ok(held) => slot.store(held.bits(), Ordering::Relaxed),
            Err(violation) => {
                PANICKING.store(true, Ordering::Relaxed);
                panic!("{violation}");
            }
        }
    }

    pub fn released(rank: Rank) {
        let slot = slot();
        let held = Held::from_bits(slot.load(Ordering::Relaxed)).release(rank);
        slot.store(held.bits(), Ordering::Relaxed);
    }

    pub fn assert_only(allowed: &[Rank], what: &str) {
        if PANICKING.load(Ordering::Relaxed) {
            return;
        }
        let held = Held::from_bits(slot().load(Ordering::Relaxed));
        if !held.only(allowed) {
            PANICKING.store(true, Ordering::Relaxed);
            let extra = held.innermost().map_or("?", Rank::name);
            panic!("lock order: {what} while holding {extra}");
        }
    }

    pub fn panicking() {
        PANICKING.store(true, Ordering::Relaxed);
    }
}

/// Records that this CPU takes the lock at `rank` (checked build: stops
/// the machine if the order forbids it).
#[inline(always)]
pub fn taking(rank: Rank) {
    #[cfg(feature = "lock-check")]
    check::taking(rank);
    #[cfg(not(feature = "lock-check"))]
    let _ = rank;
}

/// Records that this CPU released the lock at `rank`.
#[inline(always)]
pub fn released(rank: Rank) {
    #[cfg(feature = "lock-check")]
    check::released(rank);
    #[cfg(not(feature = "lock-check"))]
    let _ = rank;
}

/// Checks (checked build) that this CPU holds no lock but those in
/// `allowed` before `what`, a wait for another CPU.
#[inline(always)]
pub fn assert_only(allowed: &[Rank], what: &str) {
    #[cfg(feature = "lock-check")]
    check::assert_only(allowed, what);
    #[cfg(not(feature = "lock-check"))]
    let _ = (allowed, what);
}

/// The machine is stopping: no more checks (the panic path takes the log
/// whoever held it).
#[inline(always)]
pub fn panicking() {
    #[cfg(feature = "lock-check")]
    check::panicking();
}
