//! Models of the TLB mailbox (`Mailbox`): initiators posting to a target
//! and waiting, the target servicing whenever it looks.
//!
//! What is modelled: the mailbox's atomics and steps exactly as the kernel
//! runs them (`post`, `service`, `wait`), and the work as a counter per
//! kind that the target's work bumps — Relaxed, so only the mailbox's own
//! orderings can make a count visible to an initiator whose wait has
//! ended. What is assumed: that an IPI makes its target look after the
//! post it follows, and that a CPU spinning on a mailbox sees a change to
//! it eventually. Both are a CPU's latch (`Cpu::look`): a CPU that has
//! looked and found nothing to do sleeps until an IPI or a finish it may
//! be waiting for sets its latch. That keeps every execution finite (loom
//! gives no fairness: two spinners could otherwise starve a third
//! forever) and turns a lost request into a deadlock loom names. A latch
//! also orders (its wake-up is a release and an acquire), which could
//! hide a missing order on a path through it; the `RELAXED_DONE` twin
//! shows the wait's own Acquire is still what is tested.
//!
//! Rules: each broken twin changes one thing the protocol's comments say
//! it must not, and must panic.

use super::{Bound, check};
use kernel_core::smp::mailbox::Mailbox;
use loom::hint::spin_loop;
use loom::sync::Notify;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::thread;
use std::sync::Arc;

/// How many kinds the models use (one per initiator).
const KINDS: usize = 2;

/// The mailbox steps a model drives: the kernel's [`Mailbox`], or a
/// broken twin.
trait Protocol: Send + Sync + 'static {
    fn new() -> Self;
    fn post(&self, kinds: u32) -> u64;
    fn service(&self, work: impl FnOnce(u32));
    fn wait(&self, generation: u64, meanwhile: impl FnMut());
    fn is_done(&self, generation: u64) -> bool;
}

impl Protocol for Mailbox {
    fn new() -> Mailbox {
        Mailbox::new()
    }
    fn post(&self, kinds: u32) -> u64 {
        Mailbox::post(self, kinds)
    }
    fn service(&self, work: impl FnOnce(u32)) {
        Mailbox::service(self, work)
    }
    fn wait(&self, generation: u64, meanwhile: impl FnMut()) {
        Mailbox::wait(self, generation, meanwhile)
    }
    fn is_done(&self, generation: u64) -> bool {
        Mailbox::is_done(self, generation)
    }
}

/// One CPU: its mailbox, what its work has done (per kind), and its
/// latch: set by an IPI to it and by any finish it may be waiting for, so
/// that it looks again (see the module).
struct Cpu<P> {
    mailbox: P,
    done: [AtomicU32; KINDS],
    look: Notify,
}

/// The CPUs of a model.
struct World<P> {
    cpus: Vec<Cpu<P>>,
}

impl<P: Protocol> World<P> {
    fn new(cpus: usize) -> Arc<World<P>> {
        let cpu = |_| Cpu {
            mailbox: P::new(),
            done: core::array::from_fn(|_| AtomicU32::new(0)),
            look: Notify::new(),
        };
        Arc::new(World {
            cpus: (0..cpus).map(cpu).collect(),
        })
    }

    /// CPU `me`'s turn at its own mailbox (the kernel's `tlb::service`);
    /// a pass that finishes a generation tells the others to look.
    fn service(&self, me: usize) {
        let cpu = &self.cpus[me];
        let mut finished = false;
        cpu.mailbox.service(|kinds| {
            finished = true;
            for (kind, count) in cpu.done.iter().enumerate() {
                if kinds & (1 << kind) != 0 {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        if finished {
            for (i, other) in self.cpus.iter().enumerate() {
                if i != me {
                    other.look.notify();
                }
            }
        }
    }

    /// How often CPU `cpu` has done kind `kind`, as the caller sees it.
    fn done(&self, cpu: usize, kind: usize) -> u32 {
        self.cpus[cpu].done[kind].load(Ordering::Relaxed)
    }

    /// CPU `me` asks CPU `target` for kind `kind` (the kernel's
    /// `tlb::request`: post, IPI, wait), servicing its own mailbox on
    /// each turn of the wait if `serve`.
    fn request(&self, me: usize, target: usize, kind: usize, serve: bool) {
        let generation = self.cpus[target].mailbox.post(1 << kind);
        self.cpus[target].look.notify();
        self.cpus[target].mailbox.wait(generation, || {
            if serve {
                self.service(me);
            }
            self.cpus[me].look.wait();
        });
        assert!(
            self.done(target, kind) >= 1,
            "a wait ended before its kind {kind} was done"
        );
    }

    /// CPU `me` answers its mailbox until it has done `requests` of them
    /// (the model knows how many will come).
    fn serve_until(&self, me: usize, requests: u64) {
        loop {
            self.service(me);
            if self.cpus[me].mailbox.is_done(requests) {
                return;
            }
            self.cpus[me].look.wait();
        }
    }
}

/// (a) CPU 0 the target of CPUs 1 and 2, which post different kinds at
/// once and wait without a mailbox of their own to answer.
fn two_initiators<P: Protocol>() {
    let world = World::<P>::new(1 + KINDS);
    let initiators: Vec<_> = (0..KINDS)
        .map(|kind| {
            let world = world.clone();
            thread::spawn(move || world.request(1 + kind, 0, kind, false))
        })
        .collect();
    world.serve_until(0, KINDS as u64);
    for initiator in initiators {
        initiator.join().unwrap();
    }
    for kind in 0..KINDS {
        assert_eq!(world.done(0, kind), 1, "kind {kind} done exactly once");
    }
}

#[test]
fn two_initiators_are_both_answered_with_their_work_done() {
    check(Bound::Preemptions(2), two_initiators::<Mailbox>);
}

/// (b) Two CPUs asking each other at once, each servicing its own
/// mailbox while it waits if `serve` (and afterwards, until the other is
/// answered: a CPU goes on answering IPIs once its own request is done).
fn crossed<P: Protocol>(serve: bool) {
    let world = World::<P>::new(2);
    let other = {
        let world = world.clone();
        thread::spawn(move || {
            world.request(1, 0, 1, serve);
            world.serve_until(1, 1);
        })
    };
    world.request(0, 1, 0, serve);
    world.serve_until(0, 1);
    other.join().unwrap();
    assert_eq!((world.done(0, 1), world.done(1, 0)), (1, 1));
}

#[test]
fn two_cpus_shooting_each_other_down_never_deadlock() {
    check(Bound::Exhaustive, || crossed::<Mailbox>(true));
}

/// The rule (b) checks, broken: initiators that only spin while they
/// wait never answer each other.
#[test]
#[should_panic(expected = "deadlock")]
fn broken_initiators_that_do_not_service_while_waiting_deadlock() {
    check(Bound::Exhaustive, || crossed::<Mailbox>(false));
}

/// How a [`Broken`] twin differs from [`Mailbox`].
const TAKE_FIRST: u8 = 0;
const QUIET_BY_KINDS: u8 = 1;
const RELAXED_DONE: u8 = 2;

/// A twin of [`Mailbox`] with one of its rules broken (`HOW`).
struct Broken<const HOW: u8> {
    kinds: AtomicU32,
    requested: AtomicU64,
    done: AtomicU64,
}

impl<const HOW: u8> Protocol for Broken<HOW> {
    fn new() -> Self {
        Broken {
            kinds: AtomicU32::new(0),
            requested: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    fn post(&self, kinds: u32) -> u64 {
        self.kinds.fetch_or(kinds, Ordering::AcqRel);
        self.requested.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn service(&self, work: impl FnOnce(u32)) {
        let quiet = if HOW == QUIET_BY_KINDS {
            // Broken: "nothing to do" judged by the kinds, so a generation
            // whose kinds an earlier pass took is never published.
            self.kinds.load(Ordering::Acquire) == 0
        } else {
            self.requested.load(Ordering::Acquire) == self.done.load(Ordering::Relaxed)
        };
        if quiet {
            return;
        }
        let (generation, kinds) = if HOW == TAKE_FIRST {
            // Broken: the kinds taken before the generation is read, so a
            // generation can be published whose kinds came after the take.
            let kinds = self.kinds.swap(0, Ordering::AcqRel);
            (self.requested.load(Ordering::Acquire), kinds)
        } else {
            let generation = self.requested.load(Ordering::Acquire);
            (generation, self.kinds.swap(0, Ordering::AcqRel))
        };
        work(kinds);
        self.done.fetch_max(generation, Ordering::AcqRel);
    }

    fn wait(&self, generation: u64, mut meanwhile: impl FnMut()) {
        // Broken if RELAXED_DONE: seeing the generation done does not make
        // the work visible.
        let order = if HOW == RELAXED_DONE {
            Ordering::Relaxed
        } else {
            Ordering::Acquire
        };
        while self.done.load(order) < generation {
            meanwhile();
            spin_loop();
        }
    }

    fn is_done(&self, generation: u64) -> bool {
        self.done.load(Ordering::Acquire) >= generation
    }
}

#[test]
#[should_panic(expected = "a wait ended before its kind")]
fn broken_take_before_generation_ends_a_wait_early() {
    check(Bound::Preemptions(2), two_initiators::<Broken<TAKE_FIRST>>);
}

#[test]
#[should_panic(expected = "deadlock")]
fn broken_quiet_test_on_kinds_leaves_a_wait_hanging() {
    check(
        Bound::Preemptions(2),
        two_initiators::<Broken<QUIET_BY_KINDS>>,
    );
}

#[test]
#[should_panic(expected = "a wait ended before its kind")]
fn broken_relaxed_done_check_misses_the_work() {
    check(
        Bound::Preemptions(2),
        two_initiators::<Broken<RELAXED_DONE>>,
    );
}
