//! System-call decoding and dispatch.
//!
//! seL4's split: each call first decodes and checks every argument (numbers,
//! lengths, flags, user pointers) and only then acts; any failure is an
//! `abi::Error` returned to the caller, never a panic. The register
//! convention is in `abi::syscall`; the calls live in the submodules by
//! subject.

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

/// Runs `f` on the caller's address space.
fn with_space<R>(
    s: &mut Scheduler,
    f: impl FnOnce(&mut crate::arch::paging::PageTable) -> Result<R, Error>,
) -> Result<R, Error> {
    let space = s.current().space.as_mut().ok_or(Error::BadAddress)?;
    f(space)
}
