//! Kernel entry and exit: the saved-register frame, the 256 interrupt
//! stubs, the SYSCALL entry and the single path back to user mode.
//!
//! The design is seL4's: there is one kernel stack per CPU, and a process's user
//! registers live in its process record, not on a kernel stack. On a
//! SYSCALL the entry code stores the registers into the current process's
//! [`TrapFrame`]; on an interrupt or exception from ring 3 the CPU pushes
//! them there through `TSS.rsp0`. The kernel then runs on the kernel
//! stack, may switch the current frame to another process, and leaves
//! through `resume_user`, which pops whatever frame is current. Nothing
//! survives on the kernel stack between entries, so switching processes is
//! just switching which frame is popped, and the Rust handlers never
//! return (there is nothing to return to). The current frame, the kernel
//! stack and the SYSCALL scratch word are per CPU, at fixed offsets of
//! the `PerCpu` that GS points at in the kernel (`percpu.rs` has the
//! `swapgs` rules: swapped exactly at the ring boundary, and checked
//! rather than assumed by every entry from ring 0 and every IST entry).
//!
//! Rules: the kernel runs with interrupts disabled except in the idle loop;
//! every entry sets RFLAGS to a known state (DF and AC clear) before Rust
//! code runs, because user mode controls both (SFMASK does it for
//! SYSCALL); a frame is always complete on the way out: the SYSCALL entry
//! skips only `cs`/`ss` (constant for every user frame, set when the frame
//! is made) and `vector`/`error` (about the last interrupt, not the call);
//! the frame layout below is shared with the assembly through
//! `offset_of!` and pinned by a size assertion.

use core::arch::global_asm;

/// User registers as saved on kernel entry (the order is the push order,
/// reversed).
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The vector of the last interrupt or exception that entered the
    /// kernel from this process (a SYSCALL leaves it alone).
    pub vector: u64,
    /// The CPU's error code with it, or 0.
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 176);
// The SYSCALL entry tells the fused IPC calls apart with one range check.
const _: () = assert!(abi::Sysno::DevReplyPoll as u64 == abi::Sysno::PortOutWait as u64 + 1);

/// RFLAGS a new user context starts with: IF set, everything else clear.
pub const USER_RFLAGS: u64 = 0x202;

global_asm!(
    r#"
    /* The general-purpose registers in TrapFrame order (rax pushed
       first, so it sits highest). */
    .macro push_gprs
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    .endm
    .macro pop_gprs
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    .endm

    .section .text
    .balign 16
    .global isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    push_gprs
    /* IST vectors (NMI, double fault, machine check) never use the process
       frame: handle them where they landed. */
    cmpq $2, 120(%rsp)
    je 1f
    cmpq $8, 120(%rsp)
    je 1f
    cmpq $18, 120(%rsp)
    je 1f
    testb $3, 144(%rsp)
    jz 1f
    swapgs
    movq %rsp, %rdi
    movq %gs:{kstack_top}, %rsp
    /* Clear DF and AC (user mode controls both; IF is already clear).
       Only now: a push at the old rsp would land below the process's
       frame, inside its process record. */
    pushq $2
    popfq
    /* Never returns: it leaves through resume_user. */
    call trap_from_user
    ud2
1:
    /* Paranoid: GS is the kernel's iff its base is a kernel (negative)
       address. r12 (saved above, callee-saved across the call) says
       whether to swap back. */
    movl $0xc0000101, %ecx
    rdmsr
    xorl %r12d, %r12d
    testl %edx, %edx
    js 2f
    swapgs
    movl $1, %r12d
2:
    movq %rsp, %rdi
    pushq $2
    popfq
    call trap_from_kernel
    testl %r12d, %r12d
    jz 3f
    swapgs
3:
    pop_gprs
    addq $16, %rsp
    iretq

    .balign 16
    .global syscall_entry
syscall_entry:
    /* Only what a system call can change is stored: the slots `cs`, `ss`
       (always the user selectors, set when the frame was made),
       `vector` and `error` (meaningful only after an interrupt or
       exception) are left as they are. The CPU put the user rip in rcx
       and rflags in r11, so those two slots get the same values:
       returning through the frame then gives the caller exactly what
       SYSRET would. */
    swapgs
    movq %rsp, %gs:{user_rsp}
    movq %gs:{current_frame}, %rsp
    movq %rcx, {rip}(%rsp)
    movq %rcx, {rcx}(%rsp)
    movq %r11, {rflags}(%rsp)
    movq %r11, {r11}(%rsp)
    movq %gs:{user_rsp}, %rcx
    movq %rcx, {rsp}(%rsp)
    movq %rax, {rax}(%rsp)
    movq %rdi, {rdi}(%rsp)
    movq %rsi, {rsi}(%rsp)
    movq %rdx, {rdx}(%rsp)
    movq %r10, {r10}(%rsp)
    movq %r8, {r8}(%rsp)
    movq %r9, {r9}(%rsp)
    movq %rbx, {rbx}(%rsp)
    movq %rbp, {rbp}(%rsp)
    movq %r12, {r12}(%rsp)
    movq %r13, {r13}(%rsp)
    movq %r14, {r14}(%rsp)
    movq %r15, {r15}(%rsp)
    movq %rsp, %rdi
    movq %gs:{kstack_top}, %rsp
    /* port_out_wait and dev_reply_poll (consecutive numbers; rax still
       holds the number) have a handler each, with the IPC fast path; the
       other calls pay one test and a jump for it. No handler returns:
       all leave through resume_user. */
    leaq -{port_out_wait}(%rax), %rcx
    cmpq $1, %rcx
    ja 2f
    je 1f
    call syscall_port_out_wait_from_user
    ud2
1:
    call syscall_reply_poll_from_user
    ud2
2:
    call syscall_from_user
    ud2

    .global resume_user
resume_user:
    movq %gs:{current_frame}, %rsp
    pop_gprs
    addq $16, %rsp
    swapgs
    iretq
"#,
    rip = const core::mem::offset_of!(TrapFrame, rip),
    rcx = const core::mem::offset_of!(TrapFrame, rcx),
    rflags = const core::mem::offset_of!(TrapFrame, rflags),
    r11 = const core::mem::offset_of!(TrapFrame, r11),
    rsp = const core::mem::offset_of!(TrapFrame, rsp),
    rax = const core::mem::offset_of!(TrapFrame, rax),
    rdi = const core::mem::offset_of!(TrapFrame, rdi),
    rsi = const core::mem::offset_of!(TrapFrame, rsi),
    rdx = const core::mem::offset_of!(TrapFrame, rdx),
    r10 = const core::mem::offset_of!(TrapFrame, r10),
    r8 = const core::mem::offset_of!(TrapFrame, r8),
    r9 = const core::mem::offset_of!(TrapFrame, r9),
    rbx = const core::mem::offset_of!(TrapFrame, rbx),
    rbp = const core::mem::offset_of!(TrapFrame, rbp),
    r12 = const core::mem::offset_of!(TrapFrame, r12),
    r13 = const core::mem::offset_of!(TrapFrame, r13),
    r14 = const core::mem::offset_of!(TrapFrame, r14),
    r15 = const core::mem::offset_of!(TrapFrame, r15),
    port_out_wait = const abi::Sysno::PortOutWait as u64,
    current_frame = const super::percpu::OFFSET_CURRENT_FRAME,
    user_rsp = const super::percpu::OFFSET_USER_RSP,
    kstack_top = const super::percpu::OFFSET_KSTACK_TOP,
    options(att_syntax)
);

unsafe extern "C" {
    fn syscall_entry();
    fn resume_user() -> !;
}

/// Makes `frame` the one the next return to user mode restores, and the one
/// the CPU saves into on the next entry from user mode.
///
/// # Safety
/// `frame` must point to a live frame in kernel memory and stay valid (not
/// freed or moved) until another frame is made current.
#[inline(always)]
pub unsafe fn set_current_frame(frame: *mut TrapFrame) {
    // SAFETY: this CPU's PerCpu (GS), with interrupts disabled: nothing
    // else reads its current frame meanwhile. One past a live kernel
    // object is a canonical kernel address, as rsp0 must be.
    unsafe {
        super::percpu::store::<{ super::percpu::OFFSET_CURRENT_FRAME }>(frame as u64);
        super::gdt::set_rsp0(frame.wrapping_add(1) as u64);
    }
}

/// Leaves the kernel into the current frame. The kernel stack is abandoned.
#[inline(always)]
pub fn enter_user() -> ! {
    // SAFETY: a current frame has been set by the scheduler; resume_user
    // restores it and irets to ring 3 with the selectors it holds.
    unsafe { resume_user() }
}

/// Programs the SYSCALL MSRs.
pub fn init_syscall() {
    use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
    use x86_64::registers::rflags::RFlags;
    use x86_64::structures::gdt::SegmentSelector;
    // SAFETY: the selectors match gdt.rs's fixed order; syscall_entry is the
    // entry defined above.
    unsafe {
        Star::write(
            SegmentSelector(super::gdt::USER_CS),
            SegmentSelector(super::gdt::USER_SS),
            SegmentSelector(super::gdt::KERNEL_CS),
            SegmentSelector(super::gdt::KERNEL_SS),
        )
        .expect("GDT order matches SYSCALL/SYSRET");
        LStar::write(x86_64::VirtAddr::new(syscall_entry as *const () as u64));
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::ALIGNMENT_CHECK
                | RFlags::NESTED_TASK,
        );
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }
}
