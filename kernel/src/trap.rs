//! What happens after an interrupt, exception or system call has saved the
//! user's registers: the Rust side of `arch::entry`.
//!
//! Rules: a fault in user mode ends that process (until processes can
//! install handlers), never the kernel; a fault in kernel mode is a kernel
//! bug, reported in full before the machine stops; every path back to user
//! mode goes through `sched::settle`.

use crate::arch::entry::{SYSCALL_VECTOR, TrapFrame};
use crate::arch::{cpu, fault, lapic, pic};
use crate::sched;
use core::sync::atomic::{AtomicU64, Ordering};

/// Timer ticks since boot.
pub static TICKS: AtomicU64 = AtomicU64::new(0);

fn is_pic_vector(vector: u64) -> bool {
    (pic::PIC_VECTOR_BASE as u64..pic::PIC_VECTOR_BASE as u64 + 16).contains(&vector)
}

/// `frame` is the current process's saved frame (a raw pointer: the
/// scheduler reaches the same memory through the process table).
#[unsafe(no_mangle)]
extern "C" fn trap_from_user(frame: *mut TrapFrame) {
    // SAFETY: the entry code passes the current, live frame.
    let frame = unsafe { frame.read() };
    let vector = frame.vector;
    match vector {
        0..=31 => {
            let addr = if vector == 14 { cpu::cr2() } else { 0 };
            sched::kill_current_for_fault(vector, frame.error, addr, frame.rip);
        }
        v if v == lapic::TIMER_VECTOR as u64 => {
            TICKS.fetch_add(1, Ordering::Relaxed);
            lapic::eoi();
            sched::SCHED.lock().tick();
        }
        v if v == lapic::SPURIOUS_VECTOR as u64 || is_pic_vector(v) => {}
        v => {
            crate::kprintln!("[kernel] unexpected interrupt vector {v} from user mode");
            lapic::eoi();
        }
    }
    sched::settle();
}

#[unsafe(no_mangle)]
extern "C" fn trap_from_kernel(frame: &mut TrapFrame) {
    match frame.vector {
        v if v == lapic::TIMER_VECTOR as u64 => {
            // Only the idle loop runs with interrupts on; the scheduler
            // looks for work when the loop wakes up.
            TICKS.fetch_add(1, Ordering::Relaxed);
            lapic::eoi();
        }
        v if v == lapic::SPURIOUS_VECTOR as u64 || is_pic_vector(v) => {}
        0..=31 => {
            fault::report_kernel_fault(frame);
            cpu::power_off(abi::power::EXIT_KERNEL_PANIC);
        }
        v => {
            crate::kprintln!("[kernel] unexpected interrupt vector {v} in kernel mode");
            lapic::eoi();
        }
    }
}

#[unsafe(no_mangle)]
extern "C" fn syscall_from_user(frame: *mut TrapFrame) {
    // SAFETY: the entry code passes the current, live frame; no reference
    // to it is held while `dispatch` runs (it may reach the same memory
    // through the process table, e.g. to restart a blocked call).
    let saved = unsafe { frame.read() };
    debug_assert_eq!(saved.vector, SYSCALL_VECTOR);
    if let Some(ret) = crate::syscall::dispatch(&saved) {
        // SAFETY: as above; the frame still belongs to the caller, which
        // neither exited nor blocked (dispatch returned a value).
        unsafe { (*frame).rax = ret as u64 };
    }
    sched::settle();
}
