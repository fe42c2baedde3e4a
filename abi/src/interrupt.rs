//! Interrupts and faults delivered to user space.
//!
//! A process registers one handler (`set_handler(entry, stack_base,
//! stack_size)`). When it takes a CPU fault, or when it has interrupts
//! enabled and a vector is pending, the kernel writes an [`IntFrame`] on the
//! handler stack (below the current stack pointer if the process is
//! already on that stack, so handlers nest), and enters
//! `entry(frame: *mut IntFrame)` with interrupts disabled. The handler ends
//! with `int_return(frame)`, which restores every register from the frame
//! (which the handler may have changed) and the interrupt-enable state.

/// Number of interrupt vectors a process has (bits 0..62 of the pending
/// mask). Bit 63 is never used, so a mask returned by `irq_wait` is always
/// a non-negative system-call result.
pub const VECTOR_COUNT: u32 = 63;

/// Vector raised on a parent when one of its children exits.
pub const VECTOR_CHILD: u32 = 0;

/// [`IntFrame::kind`]: a CPU fault (`vector`, `error`, `addr`, `reason`).
pub const INT_KIND_FAULT: u32 = 0;
/// [`IntFrame::kind`]: pending interrupts (`pending`).
pub const INT_KIND_INTERRUPTS: u32 = 1;

/// Page-fault reason: the page was mapped (a protection violation); clear
/// means nothing was mapped there.
pub const FAULT_PRESENT: u64 = 1;
/// Page-fault reason: the access was a write.
pub const FAULT_WRITE: u64 = 2;
/// Page-fault reason: the access was an instruction fetch.
pub const FAULT_EXEC: u64 = 4;
/// Page-fault reason: the page is copy-on-write shared (read-only until
/// the process copies it and moves the copy over it).
pub const FAULT_COW: u64 = 8;
/// Page-fault reason: the page was writable before `fork` shared it, so a
/// write is legitimate (copy it if `FAULT_COW`, else `vm_protect` it back
/// to writable: it is private again, its other sharers are gone).
pub const FAULT_WAS_WRITABLE: u64 = 16;

/// The x86 page-fault vector.
pub const VECTOR_PAGE_FAULT: u64 = 14;

/// What a handler receives. Every field is read back by `int_return`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntFrame {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    /// [`INT_KIND_FAULT`] or [`INT_KIND_INTERRUPTS`].
    pub kind: u32,
    /// Whether interrupts were enabled in the interrupted context (1/0).
    pub int_enabled: u32,
    /// CPU vector (faults).
    pub vector: u64,
    /// CPU error code (faults), else 0.
    pub error: u64,
    /// Faulting address (page faults), else 0.
    pub addr: u64,
    /// `FAULT_*` bits (page faults), else 0.
    pub reason: u64,
    /// The pending vectors taken by this delivery (interrupts), else 0.
    pub pending: u64,
}
