//! One CPU's mailbox for work other CPUs ask of it (the kernel's TLB
//! shootdown, `arch/tlb.rs`): a set of kinds of work, the generation of
//! the latest request and the generation last done.
//!
//! The protocol: an initiator ORs its kinds in, then takes a new
//! generation ([`Mailbox::post`]), makes the target look (an IPI, in the
//! kernel) and waits until the target has done that generation
//! ([`Mailbox::wait`]). The target ([`Mailbox::service`]) reads the
//! requested generation *before* it takes the kinds, does them, then
//! publishes the generation as done. Why that order is enough: the
//! Acquire load that reads generation `g` synchronizes with the posts of
//! every generation up to `g` (each post's increment is a read-modify-
//! write, so it carries the earlier ones' release along), so each of
//! their ORs happened before the take; the take therefore sees those
//! kinds, unless an earlier take of the same target already had them —
//! and that earlier pass did them before this one publishes `g`. A
//! request whose kinds a pass takes before its generation exists is done
//! by that pass and published by the next one.
//!
//! Rules: only the target takes and finishes; anyone may post and wait.
//! A target's passes never overlap (the kernel services with interrupts
//! off), which is what makes "done" monotonic and the check below exact.
//! The "nothing to do" test ([`Mailbox::is_quiet`]) is two loads and a
//! compare, because the kernel makes it on every IPI and every turn of
//! its lock's spin loop. What the kinds mean is the caller's.

use super::sync::{AtomicU32, AtomicU64, Ordering, spin_loop};

/// A CPU's mailbox (see the module).
pub struct Mailbox {
    /// The kinds asked for and not yet taken.
    kinds: AtomicU32,
    /// The generation of the latest request.
    requested: AtomicU64,
    /// The latest generation the target has done.
    done: AtomicU64,
}

impl Default for Mailbox {
    fn default() -> Mailbox {
        Mailbox::new()
    }
}

impl Mailbox {
    /// An empty mailbox: nothing asked for, nothing done.
    #[cfg(not(loom))]
    pub const fn new() -> Mailbox {
        Mailbox {
            kinds: AtomicU32::new(0),
            requested: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// An empty mailbox (loom's atomics have no `const` constructor).
    #[cfg(loom)]
    pub fn new() -> Mailbox {
        Mailbox {
            kinds: AtomicU32::new(0),
            requested: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// Asks for `kinds`; returns the generation to wait for. The kinds go
    /// in first, so whoever sees the generation sees them.
    #[inline]
    pub fn post(&self, kinds: u32) -> u64 {
        self.kinds.fetch_or(kinds, Ordering::AcqRel);
        self.requested.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether every generation asked for is done (the target's hot
    /// check). Generations, not kinds: the kinds can be empty while a
    /// generation is still unpublished, its kinds taken by an earlier pass.
    /// `done` is Relaxed: only the target, which calls this, writes it.
    #[inline(always)]
    pub fn is_quiet(&self) -> bool {
        self.requested.load(Ordering::Acquire) == self.done.load(Ordering::Relaxed)
    }

    /// The target's step one: the generation asked for, then the kinds
    /// (cleared), in that order (see the module). Kinds may be 0: what a
    /// generation asked for may have gone with an earlier take.
    #[inline]
    pub fn take(&self) -> (u64, u32) {
        let generation = self.requested.load(Ordering::Acquire);
        let kinds = self.kinds.swap(0, Ordering::AcqRel);
        (generation, kinds)
    }

    /// The target's last step, once the kinds of its `take` are done:
    /// publishes `generation` (never lowering what is published).
    #[inline]
    pub fn finish(&self, generation: u64) {
        self.done.fetch_max(generation, Ordering::AcqRel);
    }

    /// Whether the target has done `generation` (and so everything asked
    /// for up to it); the Acquire makes the work visible to the caller.
    #[inline(always)]
    pub fn is_done(&self, generation: u64) -> bool {
        self.done.load(Ordering::Acquire) >= generation
    }

    /// The target's whole turn: if anything is asked for, takes it, runs
    /// `work` on the kinds and finishes. Only the quiet test is inline.
    #[inline(always)]
    pub fn service(&self, work: impl FnOnce(u32)) {
        if self.is_quiet() {
            return;
        }
        self.service_slow(work);
    }

    #[cold]
    fn service_slow(&self, work: impl FnOnce(u32)) {
        let (generation, kinds) = self.take();
        work(kinds);
        self.finish(generation);
    }

    /// Spins until the target has done `generation`, calling `meanwhile`
    /// on each turn: the kernel services its own mailbox there, so two
    /// CPUs asking each other at once both get answered.
    #[inline]
    pub fn wait(&self, generation: u64, mut meanwhile: impl FnMut()) {
        while !self.is_done(generation) {
            meanwhile();
            spin_loop();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
