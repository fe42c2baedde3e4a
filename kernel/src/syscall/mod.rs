//! System-call decoding and dispatch.
//!
//! seL4's split: each call first decodes and checks every argument (numbers,
//! lengths, flags, user pointers) and only then acts; any failure is an
//! `abi::Error` returned to the caller, never a panic. The register
//! convention is in `abi::syscall`; the calls live in the submodules by
//! subject.

mod devices;
mod interrupts;
mod log;
mod memory;
mod process;

use crate::arch::entry::TrapFrame;
use crate::sched::{SCHED, Scheduler};
use abi::{Error, Sysno};

/// What a call produced: `Some(word)` for the caller's `rax`, or `None`
/// when the caller does not simply return (it exited, exec'd, returned
/// from a handler, or blocked and will restart the call when woken).
pub fn dispatch(frame: &TrapFrame) -> Option<isize> {
    let a = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let result = match Sysno::from_raw(frame.rax) {
        None => Err(Error::NoSuchSyscall),
        Some(Sysno::LogWrite) => log::write(a[0], a[1]),
        Some(Sysno::LogRead) => log::read(a[0], a[1], a[2]),
        Some(Sysno::Exit) => {
            process::exit(a[0] as i64);
            return None;
        }
        Some(Sysno::GetPid) => Ok(SCHED.lock().current_pid() as usize),
        Some(Sysno::Yield) => {
            SCHED.lock().yield_current();
            Ok(0)
        }
        Some(Sysno::WaitChild) => return blocking(process::wait_child(a[0], a[1])),
        Some(Sysno::Fork) => process::fork(frame),
        Some(Sysno::Exec) => return silent(process::exec(a[0], a[1], a[2], a[3])),
        Some(Sysno::SetPriority) => process::set_priority(a[0], a[1]),
        Some(Sysno::SysInfo) => process::sys_info(a[0]),
        Some(Sysno::VmMap) => memory::map(a[0], a[1], a[2]),
        Some(Sysno::VmProtect) => memory::protect(a[0], a[1], a[2]),
        Some(Sysno::VmUnmap) => memory::unmap(a[0], a[1]),
        Some(Sysno::VmMove) => memory::move_pages(a[0], a[1], a[2]),
        Some(Sysno::SetHandler) => interrupts::set_handler(a[0], a[1], a[2]),
        Some(Sysno::IntReturn) => return silent(interrupts::int_return(a[0])),
        Some(Sysno::IntEnable) => interrupts::int_enable(a[0]),
        Some(Sysno::IrqWait) => return blocking(interrupts::irq_wait(a[0])),
        Some(Sysno::IrqRaise) => interrupts::irq_raise(a[0]),
        Some(Sysno::Attach) => devices::attach(a[0], a[1], a[2], a[3]),
        Some(Sysno::Detach) => devices::detach(a[0]),
        Some(Sysno::Info) => devices::info(a[0], a[1]),
        Some(Sysno::Restrict) => devices::restrict(a[0], a[1]),
        Some(Sysno::PortIn) => devices::port_in(a[0], a[1], a[2]),
        Some(Sysno::PortOut) => devices::port_out(a[0], a[1], a[2], a[3]),
        Some(Sysno::Export) => devices::export(a[0], a[1], a[2]),
        Some(Sysno::Unexport) => devices::unexport(a[0], a[1]),
        Some(Sysno::IrqMap) => devices::irq_map(a[0], a[1], a[2]),
        Some(Sysno::IrqAck) => devices::irq_ack(a[0], a[1]),
        Some(Sysno::DevCreate) => devices::dev_create(a[0]),
        Some(Sysno::DevPoll) => return blocking(devices::dev_poll(a[0], a[1], a[2])),
        Some(Sysno::DevWriteIospace) => devices::dev_write_iospace(a[0], a[1], a[2], a[3], a[4]),
        Some(Sysno::DevIrq) => devices::dev_irq(a[0], a[1], a[2]),
        Some(Sysno::DevDmaRead) => devices::dev_dma(a[0], a[1], a[2], a[3], a[4], false),
        Some(Sysno::DevDmaWrite) => devices::dev_dma(a[0], a[1], a[4], a[2], a[3], true),
        Some(Sysno::PortOutWait) => {
            return blocking(devices::port_out_wait(a[0], a[1], a[2], a[3], a[4]));
        }
        Some(Sysno::DevReplyPoll) => {
            return blocking(devices::dev_reply_poll(a[0], a[1], a[2], a[3], a[4], a[5]));
        }
    };
    Some(encode(result))
}

fn encode(result: Result<usize, Error>) -> isize {
    match result {
        Ok(v) => v as isize,
        Err(e) => e.to_ret(),
    }
}

/// A call that, on success, has already set up the caller's registers.
fn silent(result: Result<(), Error>) -> Option<isize> {
    result.err().map(|e| e.to_ret())
}

/// A call that may have put the caller to sleep (`Ok(None)`).
fn blocking(result: Result<Option<usize>, Error>) -> Option<isize> {
    match result {
        Ok(None) => None,
        Ok(Some(v)) => Some(v as isize),
        Err(e) => Some(e.to_ret()),
    }
}

/// Checks an interrupt-vector mask (non-empty, vectors 0..62 only).
pub fn check_vector_mask(mask: u64) -> Result<(), Error> {
    let all = (1u64 << abi::interrupt::VECTOR_COUNT) - 1;
    if mask == 0 || mask & !all != 0 {
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

/// Runs `f` on the caller's address space.
fn with_space<R>(
    s: &mut Scheduler,
    f: impl FnOnce(&mut crate::arch::paging::PageTable) -> Result<R, Error>,
) -> Result<R, Error> {
    let space = s.current().space.as_mut().ok_or(Error::BadAddress)?;
    f(space)
}
