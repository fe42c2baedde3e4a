//! The CPUs: the boot CPU's per-CPU state, starting the others from the
//! MADT's list, and a started CPU's way into the scheduler.
//!
//! Rules: every CPU runs the same kernel under the one kernel lock (see
//! docs/kernel.md, "Several CPUs"); a started CPU sets up its own
//! descriptor tables, GS, features, SYSCALL and local APIC before it says
//! it is ready, and takes its first interrupt only in the idle loop. The
//! boot CPU counts a CPU among the scheduler's only once it is ready.

use crate::arch::{cpu, entry, gdt, idt, lapic, paging, percpu, smp};
use crate::{kprintln, sched};

/// A CPU's kernel stack, in pages (as the boot CPU's).
const KERNEL_STACK_PAGES: u64 = 16;
/// Each IST stack, in pages.
const IST_STACK_PAGES: u64 = (gdt::IST_STACK_SIZE / 4096) as u64;

/// Sets up the boot CPU's per-CPU state: GS, GDT and TSS. First thing at
/// boot.
pub fn init_boot_cpu() {
    let top = crate::arch::boot::kernel_sections().stack.1;
    // SAFETY: once, on the boot CPU, before anything reads GS; the boot
    // stack is the kernel image's, mapped.
    unsafe { percpu::install(0, top) };
    let (df, nmi) = gdt::boot_ist_tops();
    gdt::init(0, df, nmi);
}

/// Starts every other CPU the MADT lists; returns how many CPUs run.
pub fn start_others(apic_ids: &[u32]) -> usize {
    percpu::of(0)
        .apic_id
        .store(lapic::id(), core::sync::atomic::Ordering::Relaxed);
    sched::SCHED.lock().cpu_online(0);
    let started = smp::start_all(
        apic_ids,
        |_| {
            Some(smp::Stacks {
                kernel: crate::mm::heap::alloc_stack(KERNEL_STACK_PAGES)?,
                double_fault: crate::mm::heap::alloc_stack(IST_STACK_PAGES)?,
                nmi: crate::mm::heap::alloc_stack(IST_STACK_PAGES)?,
            })
        },
        cpu::delay_us,
        secondary_main,
        |apic, why| {
            let why = match why {
                smp::Skipped::TooMany => "more CPUs than the kernel runs",
                smp::Skipped::NoStacks => "no memory for its stacks",
                smp::Skipped::NoAnswer => "it did not start",
            };
            kprintln!("[kernel] smp: CPU with APIC id {apic} skipped: {why}");
        },
    );
    {
        let mut s = sched::SCHED.lock();
        for i in 1..started.running {
            s.cpu_online(i);
        }
    }
    kprintln!(
        "[kernel] smp: {} of {} CPUs running",
        started.running,
        started.listed
    );
    started.running
}

/// A started CPU's first Rust code: on its own kernel stack, interrupts
/// off, still on the trampoline's page table.
extern "C" fn secondary_main(index: usize) -> ! {
    smp::took_params();
    let top = percpu::of(index).kstack_top();
    // SAFETY: once, on this CPU, before anything reads GS; `top` is the
    // stack this code runs on (the boot CPU mapped it).
    unsafe { percpu::install(index, top) };
    paging::activate_kernel_table();
    let (df, nmi) = smp::ist_stacks(index);
    gdt::init(index, df, nmi);
    idt::load();
    cpu::init();
    entry::init_syscall();
    lapic::init_secondary();
    percpu::mark_ready(index);
    sched::start()
}
