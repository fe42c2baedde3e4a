//! Models of the wake-up of an idle CPU: a waker that makes work for CPU 1
//! and kicks it, against CPU 1's idle loop, which looks for work under the
//! kernel lock and, finding none, halts.
//!
//! The protocol, as the kernel has it: the waker, holding `SCHED`, makes
//! the process runnable and claims CPU 1 for it (`Cpu::resched`, in
//! kernel-core's scheduler), then kicks it (`Machine::kick`: the IPI,
//! vector 0xF1, the TLB shootdown's too) before it lets the lock go. CPU 1,
//! in `sched::settle`, looks under `SCHED`, finds nothing, releases the
//! lock with interrupts still off and runs `sti; hlt` (`cpu::idle_wait`);
//! when the halt ends it takes the lock again and looks again. Why no
//! wake-up is lost: a kick either comes before CPU 1's look (whose lock
//! it then follows, so the look sees the work) or after it, and then it
//! stays pending in the local APIC until `sti; hlt` — atomic, the STI
//! shadow — takes it and ends the halt.
//!
//! What is modelled: `SCHED` (its spin lock as `sched/lock.rs` has it,
//! CPU 1 answering its TLB mailbox while it spins), the work behind it,
//! CPU 1's mailbox (the kernel's `Mailbox`), CPU 1's one pending bit for
//! the IPI vector (kicks and shootdowns coalesce in it, as in the APIC's
//! IRR), and the halt as "block until that bit is set, then take it and
//! run the handler". What is assumed, not modelled: that an IPI sent
//! reaches the APIC and sets the bit, that the STI shadow makes `sti;
//! hlt` one step, that a pending interrupt ends a halt. A lost wake-up is
//! CPU 1 blocked for good after the waker is done: loom reports it as a
//! deadlock. (On the machine it would not hang: the local APIC timer ends
//! every halt within a tick, so a lost wake-up shows only as latency —
//! which is why it is checked here rather than by the suite.)
//!
//! Rules: each broken twin drops one of those assumptions or orders and
//! must panic.

use super::{Bound, check};
use kernel_core::smp::mailbox::Mailbox;
use loom::cell::UnsafeCell;
use loom::hint::spin_loop;
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::sync::{Condvar, Mutex};
use loom::thread;
use std::sync::Arc;

/// What the hardware does with an IPI and a halt (the real one first).
#[derive(Clone, Copy, PartialEq)]
enum Hardware {
    /// The local APIC: an IPI stays pending until the CPU takes it, and
    /// `sti; hlt` is one step.
    Real,
    /// `sti; nop; hlt`: an IPI pending at the `sti` is taken in the gap,
    /// its handler returns to the `hlt`, which then waits for another.
    GapBeforeHalt,
    /// An IPI that finds the CPU not halted is lost (no pending bit).
    NoLatch,
}

/// CPU 1's local APIC, for the one IPI vector.
struct Apic {
    hardware: Hardware,
    state: Mutex<Irq>,
    arrived: Condvar,
}

struct Irq {
    pending: bool,
    halted: bool,
}

impl Apic {
    fn new(hardware: Hardware) -> Apic {
        Apic {
            hardware,
            state: Mutex::new(Irq {
                pending: false,
                halted: false,
            }),
            arrived: Condvar::new(),
        }
    }

    /// An IPI arrives (a kick or a shootdown: the same vector).
    fn send(&self) {
        let mut irq = self.state.lock().unwrap();
        if self.hardware != Hardware::NoLatch || irq.halted {
            irq.pending = true;
            self.arrived.notify_all();
        }
    }

    /// `sti; hlt`, then the handler (`service`) and the `cli` after it:
    /// returns once an interrupt has ended the halt.
    fn idle_wait(&self, service: impl Fn()) {
        if self.hardware == Hardware::GapBeforeHalt {
            let mut irq = self.state.lock().unwrap();
            if core::mem::take(&mut irq.pending) {
                drop(irq);
                service();
            }
        }
        let mut irq = self.state.lock().unwrap();
        irq.halted = true;
        while !irq.pending {
            irq = self.arrived.wait(irq).unwrap();
        }
        irq.pending = false;
        irq.halted = false;
        drop(irq);
        service();
    }
}

/// `SCHED` as `sched/lock.rs` has it, over the one thing the wake-up
/// needs of the kernel's state: whether CPU 1 has a process to run (its
/// `resched`, and the process queued for it).
struct Sched {
    held: AtomicBool,
    work_for_1: UnsafeCell<bool>,
}

// SAFETY: `work_for_1` is only reached with the lock held (as for
// `lock::Lock`), and loom reports any access that is not ordered by it.
unsafe impl Sync for Sched {}

impl Sched {
    /// Takes the lock: an exchange, and while that finds it held, spins
    /// on a plain load and calls `meanwhile` (the TLB mailbox) on each
    /// turn. `lock.rs` exchanges with `swap(true)`; a compare-exchange is
    /// the same to the lock (a failed swap writes back the `true` it
    /// found), and loom needs it: it shows a thread that spins after its
    /// own failed swap that swap's store again and again.
    fn lock(&self, meanwhile: impl Fn()) {
        while self
            .held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.held.load(Ordering::Relaxed) {
                meanwhile();
                spin_loop();
            }
        }
    }

    fn unlock(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// Whether CPU 1 has work; the caller holds the lock.
    fn work_for_1(&self) -> bool {
        // SAFETY: only read or written under the lock (loom checks it).
        self.work_for_1.with(|work| unsafe { *work })
    }

    /// Gives CPU 1 work; the caller holds the lock.
    fn give_work_to_1(&self) {
        // SAFETY: as in `work_for_1`.
        self.work_for_1.with_mut(|work| unsafe { *work = true });
    }
}

/// Everything the two CPUs share.
struct Cpus {
    sched: Sched,
    apic_1: Apic,
    /// CPU 1's TLB mailbox, and what its work has done.
    mailbox_1: Mailbox,
    flushed_1: AtomicU32,
}

impl Cpus {
    fn new(hardware: Hardware) -> Arc<Cpus> {
        Arc::new(Cpus {
            sched: Sched {
                held: AtomicBool::new(false),
                work_for_1: UnsafeCell::new(false),
            },
            apic_1: Apic::new(hardware),
            mailbox_1: Mailbox::new(),
            flushed_1: AtomicU32::new(0),
        })
    }

    /// CPU 1's `tlb::service`.
    fn service_1(&self) {
        self.mailbox_1.service(|kinds| {
            if kinds != 0 {
                self.flushed_1.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// CPU 1's `settle` loop: returns once it has work. Waiting for the
    /// lock it answers its mailbox, because the holder may be waiting for
    /// exactly that.
    fn idle_cpu(&self) {
        loop {
            self.sched.lock(|| self.service_1());
            if self.sched.work_for_1() {
                self.sched.unlock();
                return;
            }
            self.sched.unlock();
            self.apic_1.idle_wait(|| self.service_1());
        }
    }
}

/// How the waker goes about it.
#[derive(Clone, Copy, PartialEq)]
enum Waker {
    /// As the kernel does: work, then the kick, under `SCHED`.
    WorkThenKick,
    /// Work and kick under `SCHED`, then (still holding it) a TLB
    /// shootdown of CPU 1, as `heap::reclaim` does at the end of a call.
    WorkKickShootdown,
    /// Broken: the kick before the work is there.
    KickThenWork,
}

fn wake(hardware: Hardware, waker: Waker) {
    let m = Cpus::new(hardware);
    let cpu_0 = {
        let m = m.clone();
        thread::spawn(move || {
            if waker == Waker::KickThenWork {
                m.apic_1.send();
            }
            // CPU 0's own mailbox is empty: nothing to answer meanwhile.
            m.sched.lock(|| {});
            m.sched.give_work_to_1();
            if waker != Waker::KickThenWork {
                m.apic_1.send();
            }
            if waker == Waker::WorkKickShootdown {
                let generation = m.mailbox_1.post(1);
                m.apic_1.send();
                m.mailbox_1.wait(generation, || {});
                assert_eq!(
                    m.flushed_1.load(Ordering::Relaxed),
                    1,
                    "a shootdown ended before CPU 1 flushed"
                );
            }
            m.sched.unlock();
        })
    };
    m.idle_cpu();
    cpu_0.join().unwrap();
}

#[test]
fn a_kicked_idle_cpu_always_wakes() {
    check(Bound::Exhaustive, || {
        wake(Hardware::Real, Waker::WorkThenKick)
    });
}

#[test]
fn an_idle_cpu_answers_a_shootdown_from_the_lock_holder_and_wakes() {
    check(Bound::Exhaustive, || {
        wake(Hardware::Real, Waker::WorkKickShootdown)
    });
}

#[test]
#[should_panic(expected = "deadlock")]
fn broken_gap_between_sti_and_hlt_loses_a_wakeup() {
    check(Bound::Exhaustive, || {
        wake(Hardware::GapBeforeHalt, Waker::WorkThenKick)
    });
}

#[test]
#[should_panic(expected = "deadlock")]
fn broken_ipi_without_a_pending_bit_loses_a_wakeup() {
    check(Bound::Exhaustive, || {
        wake(Hardware::NoLatch, Waker::WorkThenKick)
    });
}

#[test]
#[should_panic(expected = "deadlock")]
fn broken_kick_before_the_work_loses_a_wakeup() {
    check(Bound::Exhaustive, || {
        wake(Hardware::Real, Waker::KickThenWork)
    });
}
