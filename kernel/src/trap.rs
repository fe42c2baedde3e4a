//! What happens after an interrupt, exception or system call has saved the
//! user's registers: the Rust side of `arch::entry`.
//!
//! Rules: a fault in user mode ends that process (until processes can
//! install handlers), never the kernel; a fault in kernel mode is a kernel
//! bug, reported in full before the machine stops; every path back to user
//! mode goes through `sched::settle`.

use crate::arch::entry::TrapFrame;
use crate::arch::{cpu, fault, lapic, percpu, pic, tlb, vtd};
use crate::sched;
use abi::interrupt::VECTOR_PAGE_FAULT;
use core::sync::atomic::Ordering;
use kernel_core::kernel::UserFault;

fn is_device_vector(vector: u64) -> bool {
    let base = crate::arch::ioapic::VECTOR_BASE as u64;
    (base..base + crate::arch::ioapic::MAX_GSI as u64).contains(&vector)
}

/// A routed hardware line: hand it to its owner, then end the interrupt.
fn device_interrupt(vector: u64) {
    let gsi = (vector - crate::arch::ioapic::VECTOR_BASE as u64) as u32;
    kernel_core::devices::hw::interrupt(&mut sched::SCHED.lock(), gsi);
    lapic::eoi();
}

/// An I/O MMU reported DMA faults.
fn iommu_fault() {
    crate::iommu::fault_event();
    lapic::eoi();
}

fn is_msi_vector(vector: u64) -> bool {
    let base = u64::from(lapic::MSI_VECTOR_BASE);
    (base..base + kernel_core::devices::msi::MSI_VECTORS as u64).contains(&vector)
}

/// A message-signalled interrupt: hand it to its line's owner.
fn msi_interrupt(vector: u64) {
    let slot = (vector - u64::from(lapic::MSI_VECTOR_BASE)) as usize;
    kernel_core::devices::msi::interrupt(&mut sched::SCHED.lock(), slot);
    lapic::eoi();
}

/// Every CPU's timer preempts, but only the boot CPU's counts time.
#[inline]
fn count_tick() {
    if percpu::index() == 0 {
        lapic::TICKS.fetch_add(1, Ordering::Relaxed);
    }
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
            count_tick();
            lapic::eoi();
            // One hold for the tick and the settle: the tick may queue the
            // current process, and another CPU must not take it from the
            // queue while this one still runs it.
            let mut s = sched::SCHED.lock();
            s.tick();
            sched::settle(s);
            crate::arch::entry::enter_user()
        }
        v if v == lapic::IPI_VECTOR as u64 => {
            // Answered before the lock: the sender may hold it, waiting.
            lapic::eoi();
            tlb::service();
        }
        v if v == lapic::SPURIOUS_VECTOR as u64 || is_pic_vector(v) => {}
        v if is_device_vector(v) => device_interrupt(v),
        v if v == vtd::FAULT_VECTOR as u64 => iommu_fault(),
        v if is_msi_vector(v) => msi_interrupt(v),
        v => {
            crate::kprintln!("[kernel] unexpected interrupt vector {v} from user mode");
            lapic::eoi();
        }
    }
    sched::settle(sched::SCHED.lock());
    crate::arch::entry::enter_user()
}

/// A CPU exception in user mode: the kernel's objects decide (see
/// `kernel_core::kernel::faults`).
fn user_fault(vector: u64, error: u64, rip: u64) {
    let page_fault = vector == VECTOR_PAGE_FAULT;
    sched::SCHED.lock().user_fault(UserFault {
        vector,
        error,
        addr: if page_fault { cpu::cr2() } else { 0 },
        pc: rip,
        // The page-fault error code's W and I/D bits.
        write: page_fault && error & 2 != 0,
        fetch: page_fault && error & 16 != 0,
    });
}

#[unsafe(no_mangle)]
extern "C" fn trap_from_kernel(frame: &mut TrapFrame) {
    match frame.vector {
        v if v == lapic::TIMER_VECTOR as u64 => {
            // Only the idle loop runs with interrupts on; the scheduler
            // looks for work when the loop wakes up.
            count_tick();
            lapic::eoi();
        }
        v if v == lapic::IPI_VECTOR as u64 => {
            lapic::eoi();
            tlb::service();
        }
        v if v == lapic::SPURIOUS_VECTOR as u64 || is_pic_vector(v) => {}
        v if is_device_vector(v) => device_interrupt(v),
        v if v == vtd::FAULT_VECTOR as u64 => iommu_fault(),
        v if is_msi_vector(v) => msi_interrupt(v),
        0..=31 => {
            fault::report_kernel_fault(&crate::log::force_write, frame);
            cpu::power_off(abi::power::EXIT_KERNEL_PANIC);
        }
        v => {
            crate::kprintln!("[kernel] unexpected interrupt vector {v} in kernel mode");
            lapic::eoi();
        }
    }
}

/// The argument registers of the current call, read where decoding needs
/// each one (a raw pointer: the kernel reaches the same frame through
/// the process table, and no reference to it is held).
#[derive(Clone, Copy)]
struct SavedWords(*const TrapFrame);

impl kernel_core::syscall::Words for SavedWords {
    #[inline(always)]
    fn word(self, i: usize) -> u64 {
        let f = self.0;
        // SAFETY: `f` is the current process's frame, filled by the entry
        // code; the calls' decoding reads its words before anything
        // changes the process (see the handlers below), and the reads go
        // through the raw pointer, with no reference made.
        unsafe {
            match i {
                0 => (*f).rdi,
                1 => (*f).rsi,
                2 => (*f).rdx,
                3 => (*f).r10,
                4 => (*f).r8,
                _ => (*f).r9,
            }
        }
    }
}

/// Reads this CPU's index once, at the top of an entry, so that every
/// later use (the compiler merges the reads: the value never changes in
/// an entry) finds it in a register instead of reading GS again on each
/// path.
#[inline(always)]
fn read_cpu_index_once() {
    let index = crate::arch::percpu::index();
    // SAFETY: an empty instruction that only "uses" the register.
    unsafe {
        core::arch::asm!("/* cpu {0} */", in(reg) index, options(nomem, nostack, preserves_flags))
    };
}

/// The SYSCALL entry's Rust half for every call but the fused IPC ones;
/// like `trap_from_user` it never returns.
#[unsafe(no_mangle)]
extern "C" fn syscall_from_user(frame: *mut TrapFrame) -> ! {
    let (mut s, waited) = sched::SCHED.lock_noting_wait();
    // Another CPU can evict this one's process only while holding the lock
    // and with this CPU's answer (given in the lock's spin loop, or in the
    // IPI handler, which settles before any return to user mode): a lock
    // taken without waiting means the process is still current.
    if waited && !s.has_current() {
        // Killed from another CPU while this one waited for the lock: the
        // call is void, and `frame` may be gone.
        sched::settle(s);
        crate::arch::entry::enter_user()
    }
    read_cpu_index_once();
    // SAFETY: the entry code passes the current process's frame, which
    // lives while the process is current.
    let number = unsafe { (*frame).rax };
    if let Some(ret) = kernel_core::syscall::dispatch_words(&mut s, number, SavedWords(frame)) {
        // SAFETY: the caller neither exited nor blocked, so it is still the
        // current process (only `settle` and the fast path switch) and
        // `frame` is still its frame; no reference to it is live.
        unsafe { (*frame).rax = ret as u64 };
    }
    sched::settle(s);
    crate::arch::entry::enter_user()
}

/// The SYSCALL entry's Rust half for `port_out_wait` (the entry code
/// sorts it out by number): the IPC fast path, or the general path when
/// it declines. A function of its own, so that the compiler allocates
/// the fast path's registers without the dispatcher's or the other
/// fused call's.
#[unsafe(no_mangle)]
extern "C" fn syscall_port_out_wait_from_user(frame: *mut TrapFrame) -> ! {
    let (mut s, waited) = sched::SCHED.lock_noting_wait();
    if waited && !s.has_current() {
        sched::settle(s);
        crate::arch::entry::enter_user()
    }
    read_cpu_index_once();
    // SAFETY: the caller is current (the lock was taken without waiting,
    // or it was checked above).
    if unsafe { s.ipc_fast_port_out_wait(SavedWords(frame)) } {
        // Handed off, and nothing for `settle` to do (see the fast path).
        drop(s);
        crate::arch::entry::enter_user()
    }
    // Declined, having changed nothing: the general path takes the call
    // from the start. (Another CPU may take the lock in between and even
    // evict this process; the general path checks for that.)
    drop(s);
    syscall_from_user(frame)
}

/// The same for `dev_reply_poll`.
#[unsafe(no_mangle)]
extern "C" fn syscall_reply_poll_from_user(frame: *mut TrapFrame) -> ! {
    let (mut s, waited) = sched::SCHED.lock_noting_wait();
    if waited && !s.has_current() {
        sched::settle(s);
        crate::arch::entry::enter_user()
    }
    read_cpu_index_once();
    // SAFETY: as for `port_out_wait`.
    if unsafe { s.ipc_fast_reply_poll(SavedWords(frame)) } {
        drop(s);
        crate::arch::entry::enter_user()
    }
    drop(s);
    syscall_from_user(frame)
}
