//! What happens after an interrupt, exception or system call has saved the
//! user's registers: the Rust side of `arch::entry`.
//!
//! Rules: a fault in user mode ends that process (until processes can
//! install handlers), never the kernel; a fault in kernel mode is a kernel
//! bug, reported in full before the machine stops; every path back to user
//! mode goes through `sched::settle`.

use crate::arch::entry::TrapFrame;
use crate::arch::{cpu, fault, lapic, pic};
use crate::sched;
use abi::Error;
use abi::interrupt::{FAULT_WAS_WRITABLE, VECTOR_PAGE_FAULT};
use core::sync::atomic::{AtomicU64, Ordering};

/// Timer ticks since boot.
pub static TICKS: AtomicU64 = AtomicU64::new(0);

/// Whether long kernel work should stop here and let the scheduler run (a
/// timer tick is due): the preemption point of restartable system calls.
#[inline]
pub fn preempt_due() -> bool {
    lapic::timer_pending()
}

fn is_device_vector(vector: u64) -> bool {
    let base = crate::arch::ioapic::VECTOR_BASE as u64;
    (base..base + crate::arch::ioapic::MAX_GSI as u64).contains(&vector)
}

/// A routed hardware line: hand it to its owner, then end the interrupt.
fn device_interrupt(vector: u64) {
    let gsi = (vector - crate::arch::ioapic::VECTOR_BASE as u64) as u32;
    crate::bus::hw::interrupt(&mut sched::SCHED.lock(), gsi);
    lapic::eoi();
}

fn is_pic_vector(vector: u64) -> bool {
    (pic::PIC_VECTOR_BASE as u64..pic::PIC_VECTOR_BASE as u64 + 16).contains(&vector)
}

/// `frame` is the current process's saved frame (a raw pointer: the
/// scheduler reaches the same memory through the process table). Never
/// returns: it leaves into whichever frame is current then, and because
/// it does not return, the compiler has no registers of its caller to
/// preserve.
#[unsafe(no_mangle)]
extern "C" fn trap_from_user(frame: *mut TrapFrame) -> ! {
    // SAFETY: the entry code passes the current, live frame.
    let frame = unsafe { frame.read() };
    let vector = frame.vector;
    match vector {
        0..=31 => user_fault(vector, frame.error, frame.rip),
        v if v == lapic::TIMER_VECTOR as u64 => {
            TICKS.fetch_add(1, Ordering::Relaxed);
            lapic::eoi();
            sched::SCHED.lock().tick();
        }
        v if v == lapic::SPURIOUS_VECTOR as u64 || is_pic_vector(v) => {}
        v if is_device_vector(v) => device_interrupt(v),
        v => {
            crate::kprintln!("[kernel] unexpected interrupt vector {v} from user mode");
            lapic::eoi();
        }
    }
    sched::settle(sched::SCHED.lock());
    crate::arch::entry::enter_user()
}

/// A CPU exception in user mode: resolved, delivered to the handler, or
/// fatal for the process.
fn user_fault(vector: u64, error: u64, rip: u64) {
    use crate::upcall::{Event, deliver};
    use kernel_core::vm::{Fault, Vm};
    let mut s = sched::SCHED.lock();
    let addr = if vector == VECTOR_PAGE_FAULT {
        cpu::cr2()
    } else {
        0
    };
    let p = s.current();
    let mut reason = 0;
    if vector == VECTOR_PAGE_FAULT {
        let Some(space) = p.space.as_mut() else {
            return;
        };
        let mut frames = crate::mm::KernelFrames;
        let mut vm = Vm {
            pt: space,
            frames: &mut frames,
            codec: crate::mm::codec(),
        };
        let write = error & 2 != 0;
        // A process must run on its own table. If it does not (a kernel
        // bug, like the one exit() once had), every access would fault
        // again and again as a "stale translation": say so and repair it
        // instead of looping for ever.
        if !vm.pt.is_active() {
            crate::kprintln!(
                "[kernel] bug: a process ran on another address space's page table (fault at {addr:#x}); switched back"
            );
            vm.pt.activate();
            return;
        }
        match vm.fault(addr, write, error & 16 != 0) {
            Fault::Retry => {
                x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(addr));
                return;
            }
            Fault::Deliver(r) => reason = r,
        }
        // Without a handler the kernel resolves what it safely can: a
        // write to a page that was writable before fork.
        if p.handler.is_none()
            && write
            && reason & FAULT_WAS_WRITABLE != 0
            && vm.break_cow(addr).is_ok()
        {
            return;
        }
    }
    let why = if p.handler.is_none() {
        ""
    } else {
        match deliver(
            p,
            Event::Fault {
                vector,
                error,
                addr,
                reason,
            },
        ) {
            Ok(()) => return,
            Err(Error::LimitReached) => " (handler stack overflow)",
            Err(_) => " (handler stack unusable)",
        }
    };
    sched::kill_current_for_fault(&mut s, vector, error, addr, rip, why);
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
        v if is_device_vector(v) => device_interrupt(v),
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

/// The argument words of the call whose frame is `frame`.
///
/// # Safety
/// `frame` must be the current process's frame, just filled by the entry
/// code, with no reference to it live.
#[inline(always)]
unsafe fn args(frame: *const TrapFrame) -> crate::syscall::Args {
    // SAFETY: as the caller guarantees.
    let f = unsafe { &*frame };
    crate::syscall::Args {
        number: f.rax,
        a: [f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9],
    }
}

/// The SYSCALL entry's Rust half for every call but the fused IPC ones;
/// like `trap_from_user` it never returns.
#[unsafe(no_mangle)]
extern "C" fn syscall_from_user(frame: *mut TrapFrame) -> ! {
    let mut s = sched::SCHED.lock();
    // SAFETY: the entry code passes the current process's frame.
    let args = unsafe { args(frame) };
    if let Some(ret) = crate::syscall::dispatch(&mut s, &args) {
        // SAFETY: the caller neither exited nor blocked, so it is still the
        // current process (only `settle` and the fast path switch) and
        // `frame` is still its frame; no reference to it is live.
        unsafe { (*frame).rax = ret as u64 };
    }
    sched::settle(s);
    crate::arch::entry::enter_user()
}

/// The SYSCALL entry's Rust half for `port_out_wait` and `dev_reply_poll`
/// (the entry code sorts them out by number): the IPC fast path, or the
/// general path when it declines. A function of its own, so that the
/// compiler allocates the fast path's registers without the dispatcher's.
#[unsafe(no_mangle)]
extern "C" fn syscall_ipc_from_user(frame: *mut TrapFrame) -> ! {
    let mut s = sched::SCHED.lock();
    // SAFETY: the entry code passes the current process's frame.
    let args = unsafe { args(frame) };
    if s.ipc_fast_path(args.number, &args.a) {
        // Handed off, and nothing for `settle` to do (see the fast path).
        drop(s);
        crate::arch::entry::enter_user()
    }
    // Declined, having changed nothing: the general path takes the call
    // from the start. (The lock is free in between, but nothing can run:
    // one CPU, interrupts off.)
    drop(s);
    syscall_from_user(frame)
}
