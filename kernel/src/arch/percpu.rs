//! Per-CPU state, reached through the GS segment base: what the entry
//! code needs on a kernel entry (the current process's frame, the kernel
//! stack, a scratch word for the user `rsp`), the CPU's index, its task
//! state segment and GDT, and its TLB mailbox (`tlb.rs`).
//!
//! Rules (the kernel-entry rules): in the kernel, GS's base is this CPU's
//! [`PerCpu`]; in user mode it is the user's (0: MH gives user mode no way
//! to set it, no FSGSBASE, and `wrmsr` is privileged), and `swapgs`
//! exchanges the two exactly at the ring boundary: first thing on a
//! SYSCALL and on an interrupt or exception from ring 3, last thing before
//! the `iretq` to ring 3. An entry that can arrive anywhere (NMI, machine
//! check, double fault, and every entry from ring 0, which the kernel
//! only takes in the idle loop or on a faulting `iretq`) does not trust
//! the ring: it reads the GS base and swaps only if it is not a kernel
//! address, and swaps back on the way out (see `entry.rs`). A CPU's
//! `PerCpu` is written by that CPU only, except the mailbox (atomics).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use kernel_core::smp::mailbox::Mailbox;
use x86_64::structures::gdt::GlobalDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;

/// The most CPUs the kernel starts (the scheduler's `MAX_CPUS`).
pub const MAX_CPUS: usize = 16;

/// One CPU's state. The first fields are read by the entry assembly at
/// the offsets below.
#[repr(C, align(64))]
pub struct PerCpu {
    /// This structure's own address (`gs:0`), so Rust finds it in one load.
    self_ptr: u64,
    /// The current process's `TrapFrame` (see `entry.rs`).
    pub(super) current_frame: u64,
    /// The user `rsp` during the SYSCALL entry.
    user_rsp: u64,
    /// The top of this CPU's kernel stack.
    pub(super) kstack_top: u64,
    /// This CPU's index (0 is the boot CPU).
    index: u64,
    /// Its local APIC id.
    pub apic_id: AtomicU32,
    /// The root of the user page table in CR3, 0 when it is the kernel's
    /// own (idle, or a space being torn down): which CPUs a space is live
    /// on, for TLB shootdowns.
    pub loaded_root: AtomicU64,
    /// The TLB mailbox (`tlb.rs`; the protocol is kernel-core's
    /// `smp::mailbox`): kinds of flush asked for, the generation of the
    /// latest request and the last one done.
    pub tlb: Mailbox,
    pub(super) tss: TaskStateSegment,
    pub(super) gdt: GlobalDescriptorTable,
}

pub const OFFSET_CURRENT_FRAME: usize = core::mem::offset_of!(PerCpu, current_frame);
pub const OFFSET_USER_RSP: usize = core::mem::offset_of!(PerCpu, user_rsp);
pub const OFFSET_KSTACK_TOP: usize = core::mem::offset_of!(PerCpu, kstack_top);
/// Where `rsp0` sits: the TSS's privilege stack table starts 4 bytes in.
pub const OFFSET_RSP0: usize = core::mem::offset_of!(PerCpu, tss) + 4;
const OFFSET_INDEX: usize = core::mem::offset_of!(PerCpu, index);
pub const OFFSET_LOADED_ROOT: usize = core::mem::offset_of!(PerCpu, loaded_root);

impl PerCpu {
    const fn new() -> PerCpu {
        PerCpu {
            self_ptr: 0,
            current_frame: 0,
            user_rsp: 0,
            kstack_top: 0,
            index: 0,
            apic_id: AtomicU32::new(0),
            loaded_root: AtomicU64::new(0),
            tlb: Mailbox::new(),
            tss: TaskStateSegment::new(),
            gdt: GlobalDescriptorTable::new(),
        }
    }

    /// The top of this CPU's kernel stack (set before it starts).
    pub fn kstack_top(&self) -> u64 {
        self.kstack_top
    }
}

struct Area([PerCpu; MAX_CPUS]);

// SAFETY: each entry's plain fields are written only by its own CPU (and
// by the boot CPU before that CPU starts); the fields other CPUs touch
// are atomics.
unsafe impl Sync for Area {}

static mut AREA: Area = Area([const { PerCpu::new() }; MAX_CPUS]);

/// CPUs that have finished starting (index order, no holes).
static ONLINE: AtomicUsize = AtomicUsize::new(1);
/// Set by a CPU once it runs on its own stack with its own tables.
static READY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// CPU `index`'s state, for another CPU to read its atomics.
pub fn of(index: usize) -> &'static PerCpu {
    // SAFETY: a shared reference to an element of a static; the fields
    // another CPU may change are atomics or written before that CPU
    // started (ordered by `mark_online`).
    let area = &raw const AREA;
    unsafe { &(*area).0[index] }
}

/// CPU `index`'s state for setting up, before it starts.
///
/// # Safety
/// Only the boot CPU, before CPU `index` runs (or CPU `index` itself),
/// and no other reference to its plain fields may be live.
pub(super) unsafe fn of_mut(index: usize) -> &'static mut PerCpu {
    // SAFETY: as the caller guarantees.
    let area = &raw mut AREA;
    unsafe { &mut (*area).0[index] }
}

/// Points GS at CPU `index`'s state (and the user's GS base at 0) and
/// records the stack the entry code switches to.
///
/// # Safety
/// Once per CPU, on that CPU, before anything reads GS; `kstack_top` is
/// the top of a mapped stack of its own.
pub unsafe fn install(index: usize, kstack_top: u64) {
    use x86_64::registers::model_specific::{GsBase, KernelGsBase};
    // SAFETY: as the caller guarantees: this CPU's entry, set up here.
    let me = unsafe { of_mut(index) };
    me.self_ptr = me as *const PerCpu as u64;
    me.index = index as u64;
    me.kstack_top = kstack_top;
    GsBase::write(x86_64::VirtAddr::new(me.self_ptr));
    KernelGsBase::write(x86_64::VirtAddr::new(0));
}

/// This CPU's index.
#[inline(always)]
pub fn index() -> usize {
    let i: u64;
    // SAFETY: GS points at this CPU's PerCpu in the kernel (see the
    // module's rules); the load has no side effect, and the value never
    // changes for the CPU (a kernel entry never moves to another CPU), hence
    // `pure` and `nomem`: repeated reads may be merged.
    unsafe {
        core::arch::asm!(
            "mov {}, gs:[{off}]",
            out(reg) i,
            off = const OFFSET_INDEX,
            options(nostack, preserves_flags, pure, nomem)
        )
    };
    i as usize
}

/// Stores `value` at byte `OFFSET` of this CPU's `PerCpu` (one `mov`
/// through GS: the entry paths' current frame, `rsp0`, the loaded root).
///
/// # Safety
/// In the kernel (GS is this CPU's), interrupts off; `OFFSET` is one of
/// the `OFFSET_*` constants, a u64 field that only this CPU writes (an
/// atomic other CPUs read counts: on x86 a plain store is its Release).
#[inline(always)]
pub unsafe fn store<const OFFSET: usize>(value: u64) {
    // SAFETY: as the caller guarantees.
    unsafe {
        core::arch::asm!(
            "mov gs:[{off}], {value}",
            value = in(reg) value,
            off = const OFFSET,
            options(nostack, preserves_flags)
        )
    };
}

/// This CPU's state.
#[inline(always)]
pub fn this() -> &'static PerCpu {
    of(index())
}

/// How many CPUs run (index `0..online()`).
#[inline]
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// CPU `index` has its tables and stack and will take interrupts.
pub fn mark_ready(index: usize) {
    READY[index].store(true, Ordering::Release);
}

pub(super) fn is_ready(index: usize) -> bool {
    READY[index].load(Ordering::Acquire)
}

/// Counts one more CPU as running (called by the boot CPU for each CPU
/// that reported ready, in index order).
pub(super) fn mark_online(count: usize) {
    ONLINE.store(count, Ordering::Release);
}
