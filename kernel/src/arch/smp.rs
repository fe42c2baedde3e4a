//! Starting the other CPUs: a real-mode trampoline copied to a fixed low
//! page, INIT-SIPI-SIPI for each CPU the MADT lists, and the first Rust
//! code of a started CPU, which builds its own tables and reports in.
//!
//! Rules: CPUs start one at a time (they share the trampoline's
//! parameters), each with its own kernel stack and IST stacks (mapped
//! with guard pages below them, from `stacks`), and the boot CPU waits for
//! each a bounded time: a CPU that does not report in is named and
//! skipped, never waited for forever. The trampoline runs on a small page
//! table of its own (the kernel half of the kernel's table, plus an
//! identity map of the first 2 MiB for the instant paging turns on),
//! below 4 GiB as a 32-bit CR3 needs; the started CPU moves to the
//! kernel's table before it runs anything else. Nothing is started after
//! boot, so the low pages the trampoline used are not needed again.

use super::percpu;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// The physical page the trampoline runs from (SIPI vector = page number).
const TRAMPOLINE: u64 = 0x8000;
/// Its page tables: PML4, PDPT and PD, one page each, just above it.
const TABLES: u64 = TRAMPOLINE + 0x1000;

/// What the trampoline reads, at its end (offsets shared with the
/// assembly below).
#[repr(C)]
struct Params {
    cr3: u64,
    cr4: u64,
    efer: u64,
    cr0: u64,
    stack: u64,
    entry: u64,
    index: u64,
}
const PARAMS_OFFSET: u64 = 0xf00;

global_asm!(
    r#"
    .section .rodata
    .balign 16
    .global mh_trampoline_start
mh_trampoline_start:
    .code16
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl (0x8000 + tr_gdt_ptr - mh_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(0x8000 + tr_protected - mh_trampoline_start)
    .code32
tr_protected:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl (0x8000 + {params} + 8), %eax      /* cr4 (PAE, PGE, ...) */
    movl %eax, %cr4
    movl (0x8000 + {params}), %eax          /* cr3 (below 4 GiB) */
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    movl (0x8000 + {params} + 16), %eax     /* efer (LME, NXE, SCE) */
    xorl %edx, %edx
    wrmsr
    movl (0x8000 + {params} + 24), %eax     /* cr0 (PG, PE, WP, ...) */
    movl %eax, %cr0
    ljmpl $0x18, $(0x8000 + tr_long - mh_trampoline_start)
    .code64
tr_long:
    movq (0x8000 + {params} + 32), %rsp
    movq (0x8000 + {params} + 48), %rdi
    movq (0x8000 + {params} + 40), %rax
    jmp *%rax
    .balign 16
tr_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff   /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff   /* 0x10: data */
    .quad 0x00af9a000000ffff   /* 0x18: 64-bit code */
tr_gdt_ptr:
    .word tr_gdt_ptr - tr_gdt - 1
    .long 0x8000 + tr_gdt - mh_trampoline_start
    .global mh_trampoline_end
mh_trampoline_end:
    .text
"#,
    params = const PARAMS_OFFSET,
    options(att_syntax)
);

unsafe extern "C" {
    static mh_trampoline_start: u8;
    static mh_trampoline_end: u8;
}

/// Set by a started CPU once it has read the trampoline's parameters.
static TOOK_PARAMS: AtomicU64 = AtomicU64::new(0);

/// What a CPU needs before it starts: its stacks (top addresses).
pub struct Stacks {
    pub kernel: u64,
    pub double_fault: u64,
    pub nmi: u64,
}

/// The outcome of starting the CPUs.
pub struct Started {
    /// CPUs running, the boot CPU included.
    pub running: usize,
    /// CPUs the MADT listed (enabled ones), the boot CPU included.
    pub listed: usize,
}

/// Why a CPU was skipped.
#[derive(Clone, Copy, Debug)]
pub enum Skipped {
    /// More CPUs than the kernel runs.
    TooMany,
    /// No memory for its stacks.
    NoStacks,
    /// It did not report in after its start-up IPIs.
    NoAnswer,
}

/// Starts every CPU in `apic_ids` except this one, in order, giving CPU
/// `i` the index it gets here. `stacks(i)` makes CPU `i`'s stacks (None:
/// out of memory, the CPU is skipped); `wait_us(n)` waits n microseconds;
/// `entry` is the started CPU's Rust entry (called with its index, on
/// its kernel stack, interrupts off); `skipped` hears of each CPU (by
/// APIC id) that does not run.
pub fn start_all(
    apic_ids: &[u32],
    mut stacks: impl FnMut(usize) -> Option<Stacks>,
    wait_us: impl Fn(u64),
    entry: extern "C" fn(usize) -> !,
    mut skipped: impl FnMut(u32, Skipped),
) -> Started {
    let me = super::lapic::id();
    let listed = apic_ids.len().max(1);
    let mut next = 1;
    if apic_ids.iter().all(|&id| id == me) {
        return Started { running: 1, listed };
    }
    prepare_trampoline();
    for &apic in apic_ids {
        if apic == me {
            continue;
        }
        if next >= percpu::MAX_CPUS {
            skipped(apic, Skipped::TooMany);
            continue;
        }
        let Some(s) = stacks(next) else {
            skipped(apic, Skipped::NoStacks);
            continue;
        };
        if start_one(next, apic, &s, &wait_us, entry) {
            percpu::mark_online(next + 1);
            next += 1;
        } else {
            // Back to waiting for a start-up IPI, so that it cannot wake
            // later into the next CPU's parameters.
            super::lapic::send_init(apic);
            skipped(apic, Skipped::NoAnswer);
        }
    }
    Started {
        running: next,
        listed,
    }
}

fn start_one(
    index: usize,
    apic: u32,
    s: &Stacks,
    wait_us: &impl Fn(u64),
    entry: extern "C" fn(usize) -> !,
) -> bool {
    // SAFETY: CPU `index` has not started; only this CPU touches its
    // entry now.
    unsafe {
        let pc = percpu::of_mut(index);
        pc.apic_id.store(apic, Ordering::Relaxed);
        pc.kstack_top = s.kernel;
        AP_STACKS[index] = (s.double_fault, s.nmi);
    }
    write_params(&Params {
        cr3: TABLES,
        cr4: read_cr4(),
        // LME, NXE and SCE only: LMA is the CPU's to set.
        efer: read_efer() & (1 | 1 << 8 | 1 << 11),
        cr0: read_cr0(),
        // As if called: the ABI wants rsp + 8 16-byte aligned at entry.
        stack: s.kernel - 8,
        entry: entry as *const () as u64,
        index: index as u64,
    });
    TOOK_PARAMS.store(0, Ordering::Release);
    super::lapic::send_init(apic);
    // Modern CPUs need no 10 ms after INIT (Intel's SDM lists it for the
    // old external APICs); QEMU needs none at all. Two SIPIs, as the SDM
    // says, the second only if the first did not take.
    for wait in [200, 200_000] {
        super::lapic::send_startup(apic, (TRAMPOLINE >> 12) as u8);
        let mut waited = 0;
        while waited < wait {
            if percpu::is_ready(index) {
                return true;
            }
            wait_us(10);
            waited += 10;
        }
        if TOOK_PARAMS.load(Ordering::Acquire) != 0 {
            // It runs but has not finished setting up: give it the rest.
            break;
        }
    }
    for _ in 0..100_000 {
        if percpu::is_ready(index) {
            return true;
        }
        wait_us(10);
    }
    false
}

/// The IST stacks of each CPU that has not started yet, by index.
static mut AP_STACKS: [(u64, u64); percpu::MAX_CPUS] = [(0, 0); percpu::MAX_CPUS];

/// A started CPU's IST stack tops (double fault, NMI).
pub fn ist_stacks(index: usize) -> (u64, u64) {
    // SAFETY: written by the boot CPU before CPU `index` started, read by
    // that CPU afterwards (the start-up IPI orders the two).
    let stacks = &raw const AP_STACKS;
    unsafe { (*stacks)[index] }
}

/// Tells the boot CPU that this CPU has read its parameters (the next
/// CPU may then be given its own).
pub fn took_params() {
    TOOK_PARAMS.store(1, Ordering::Release);
}

fn read_cr0() -> u64 {
    x86_64::registers::control::Cr0::read_raw()
}

fn read_cr4() -> u64 {
    x86_64::registers::control::Cr4::read_raw()
}

fn read_efer() -> u64 {
    x86_64::registers::model_specific::Efer::read_raw()
}

fn write_params(p: &Params) {
    // SAFETY: the trampoline page is in the first MiB, which the frame
    // table never hands out, and the direct map covers it.
    unsafe {
        core::ptr::write_volatile(
            super::phys::to_virt(TRAMPOLINE + PARAMS_OFFSET).cast::<Params>(),
            Params { ..*p },
        )
    };
}

/// Copies the trampoline to its page and builds its page tables.
fn prepare_trampoline() {
    let start = (&raw const mh_trampoline_start) as usize;
    let end = (&raw const mh_trampoline_end) as usize;
    let len = end - start;
    assert!(
        len < PARAMS_OFFSET as usize,
        "trampoline overlaps its parameters"
    );
    let kernel_root = super::paging::kernel_root();
    // SAFETY: the four pages at TRAMPOLINE are in the first MiB (RAM the
    // frame table never hands out and no firmware table uses on a PC:
    // conventional memory above the BIOS data area), mapped by the direct
    // map; the code bytes come from the kernel image.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, super::phys::to_virt(TRAMPOLINE), len);
        let pml4 = super::phys::to_virt(TABLES).cast::<u64>();
        let pdpt = super::phys::to_virt(TABLES + 0x1000).cast::<u64>();
        let pd = super::phys::to_virt(TABLES + 0x2000).cast::<u64>();
        core::ptr::write_bytes(pml4, 0, 512 * 3);
        let kernel = super::phys::to_virt(kernel_root).cast::<u64>();
        for slot in super::paging::KERNEL_HALF_FIRST_SLOT..512 {
            *pml4.add(slot) = *kernel.add(slot);
        }
        *pml4 = (TABLES + 0x1000) | 3;
        *pdpt = (TABLES + 0x2000) | 3;
        // One 2 MiB page, identity: present, writable, large.
        *pd = 0x83;
    }
}
