//! Reports of CPU faults: a name for each vector, and the full report the
//! kernel prints before stopping when it faults itself.
//!
//! Rules: the report must work on a broken kernel, so it allocates nothing,
//! steals the log lock, and follows the frame-pointer chain only while each
//! frame lies inside a known kernel stack.

use super::entry::TrapFrame;

/// A short name for a CPU vector.
pub fn vector_name(vector: u64) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD error",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        _ => "exception",
    }
}

fn in_kernel_stack(addr: u64) -> bool {
    let s = super::boot::kernel_sections();
    addr >= s.stack.0 && addr + 16 <= s.stack.1
}

/// Prints everything known about a fault the kernel took itself, through
/// `log` (the caller's: arch has no log of its own).
pub fn report_kernel_fault(log: &dyn Fn(core::fmt::Arguments<'_>), frame: &TrapFrame) {
    let cr2 = super::cpu::cr2();
    log(format_args!(
        "\nKERNEL PANIC: {} (vector {}) in kernel mode\n",
        vector_name(frame.vector),
        frame.vector
    ));
    log(format_args!(
        "  error={:#x} rip={:#018x} cs={:#x} rflags={:#x} rsp={:#018x} cr2={:#018x}\n",
        frame.error, frame.rip, frame.cs, frame.rflags, frame.rsp, cr2
    ));
    log(format_args!(
        "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n",
        frame.rax, frame.rbx, frame.rcx, frame.rdx
    ));
    log(format_args!(
        "  rsi={:#018x} rdi={:#018x} rbp={:#018x} r8 ={:#018x}\n",
        frame.rsi, frame.rdi, frame.rbp, frame.r8
    ));
    log(format_args!(
        "  r9 ={:#018x} r10={:#018x} r11={:#018x} r12={:#018x}\n",
        frame.r9, frame.r10, frame.r11, frame.r12
    ));
    log(format_args!(
        "  r13={:#018x} r14={:#018x} r15={:#018x}\n",
        frame.r13, frame.r14, frame.r15
    ));
    backtrace(log, frame.rip, frame.rbp);
}

/// Prints the return addresses of the frame-pointer chain from `rbp`.
pub fn backtrace(log: &dyn Fn(core::fmt::Arguments<'_>), rip: u64, mut rbp: u64) {
    // The binary to look the addresses up in: the checked build has its
    // own target directory (see xtask's build.rs).
    let binary = if cfg!(feature = "lock-check") {
        "target/checked/x86_64-unknown-none/release/kernel"
    } else {
        "target/x86_64-unknown-none/release/kernel"
    };
    log(format_args!("  backtrace (addr2line -e {binary}):\n"));
    log(format_args!("    {rip:#018x}\n"));
    for _ in 0..24 {
        if !rbp.is_multiple_of(8) || !in_kernel_stack(rbp) {
            break;
        }
        // SAFETY: rbp is aligned and inside the kernel stack, which is
        // mapped; we only read two words.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        log(format_args!("    {ret:#018x}\n"));
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}
