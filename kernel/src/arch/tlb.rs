//! TLB coherence across CPUs: a mailbox per CPU, an inter-processor
//! interrupt to make it look, and a wait until it has.
//!
//! The protocol (kernel-core's `smp::mailbox`, where loom models check
//! it): the initiator posts the kinds of work it needs to the target's
//! mailbox, which gives it a generation, sends
//! [`super::lapic::IPI_VECTOR`] and spins until the target has done that
//! generation. The target, in [`service`], reads the requested generation
//! *before* taking the kinds, so every request of that generation or
//! earlier has its kinds in what it takes; it does them, then publishes
//! the generation as done. This file adds the x86 side: the flushes, the
//! IPI, and where the target services.
//!
//! Rules: the work is done wherever the target is: in the IPI handler
//! (from user mode or the idle loop), in the kernel lock's spin loop, or
//! in its own wait as an initiator, so a CPU that spins with interrupts
//! off still answers and two initiators never wait for each other. An
//! initiator holds no spin lock but the kernel lock while it waits (the
//! frame table, heap and page-table locks are never held across a
//! shootdown), so no target can be stuck behind it. No PCIDs: a CR3 load
//! drops every user translation, so a process switch needs no shootdown,
//! and a space is live on at most one CPU (its process's, since MH
//! processes have one thread) — the CPU whose `loaded_root` names it.

use super::percpu;
use core::sync::atomic::Ordering;

/// Drop the user half's translations (reload CR3).
pub const FLUSH_USER: u32 = 1;
/// Drop every translation, global kernel pages too.
pub const FLUSH_ALL: u32 = 2;
/// Leave the user address space: load the kernel's own table. The CPU
/// is in the kernel once this is done, so its process's registers are
/// saved and it will not return to user mode without the kernel lock.
pub const LEAVE: u32 = 4;

/// Does what this CPU's mailbox asks. Interrupts off.
#[inline]
pub fn service() {
    // The quiet test (two loads and a compare) is inlined here; the work
    // is a cold call.
    percpu::this().tlb.service(work);
}

/// Does `kinds` on this CPU.
fn work(kinds: u32) {
    if kinds & LEAVE != 0 {
        super::paging::activate_kernel_table();
    }
    if kinds & FLUSH_ALL != 0 {
        flush_all_local();
    } else if kinds & FLUSH_USER != 0 {
        reload_cr3();
    }
}

/// Asks CPU `target` for `kinds` and waits until it has done them.
pub fn request(target: usize, kinds: u32) {
    let t = percpu::of(target);
    let generation = t.tlb.post(kinds);
    super::lapic::send_ipi(t.apic_id.load(Ordering::Relaxed));
    t.tlb.wait(generation, service);
}

/// Asks every other running CPU for `kinds`, and waits for all.
pub fn request_all_others(kinds: u32) {
    let me = percpu::index();
    let online = percpu::online();
    if online <= 1 {
        return;
    }
    let mut generations = [0u64; percpu::MAX_CPUS];
    for (i, g) in generations.iter_mut().enumerate().take(online) {
        if i == me {
            continue;
        }
        let t = percpu::of(i);
        *g = t.tlb.post(kinds);
        super::lapic::send_ipi(t.apic_id.load(Ordering::Relaxed));
    }
    for (i, g) in generations.iter().enumerate().take(online) {
        if i == me {
            continue;
        }
        percpu::of(i).tlb.wait(*g, service);
    }
}

/// The CPU other than this one that has the user table `root` loaded.
pub fn live_elsewhere(root: u64) -> Option<usize> {
    let me = percpu::index();
    (0..percpu::online())
        .find(|&i| i != me && percpu::of(i).loaded_root.load(Ordering::Acquire) == root)
}

/// Records that this CPU now runs the user table `root` (0: the kernel's).
#[inline(always)]
pub fn note_loaded(root: u64) {
    // One store through GS (this CPU's `PerCpu`), on every process switch:
    // as the atomic's Release store, a plain `mov` on x86.
    // SAFETY: GS is this CPU's PerCpu in the kernel; the field is an
    // AtomicU64, which other CPUs only read.
    unsafe { percpu::store::<{ percpu::OFFSET_LOADED_ROOT }>(root) };
}

fn reload_cr3() {
    // SAFETY: reloading CR3 with its own value changes no mapping; it
    // drops the non-global translations.
    unsafe {
        let cr3: u64;
        core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack));
        core::arch::asm!("mov cr3, {}", in(reg) cr3, options(nostack));
    }
}

/// Drops every translation, global ones too (toggling CR4.PGE).
fn flush_all_local() {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    let cr4 = Cr4::read();
    if cr4.contains(Cr4Flags::PAGE_GLOBAL) {
        // SAFETY: clearing and restoring PGE flushes the TLB and changes
        // nothing else.
        unsafe {
            Cr4::write(cr4 - Cr4Flags::PAGE_GLOBAL);
            Cr4::write(cr4);
        }
    } else {
        reload_cr3();
    }
}
