//! System-call decoding and dispatch.
//!
//! seL4's split: each call first decodes and checks every argument (numbers,
//! lengths, flags, user pointers) and only then acts; any failure is an
//! `abi::Error` returned to the caller, never a panic. The register
//! convention is in `abi::syscall`.

use crate::arch::entry::TrapFrame;
use crate::sched::SCHED;
use abi::syscall::{LOG_WRITE_MAX, WAIT_NOHANG};
use abi::{Error, ExitKind, ExitStatus, Sysno};

/// What a call produced: `Some(word)` for the caller's `rax`, or `None`
/// when the caller did not return (it exited, or blocked and will restart
/// the call when woken).
pub fn dispatch(frame: &TrapFrame) -> Option<isize> {
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let result = match Sysno::from_raw(frame.rax) {
        None => Err(Error::NoSuchSyscall),
        Some(Sysno::LogWrite) => log_write(args[0], args[1]),
        Some(Sysno::Exit) => {
            exit(args[0] as i64);
            return None;
        }
        Some(Sysno::GetPid) => Ok(SCHED.lock().current_pid() as usize),
        Some(Sysno::Yield) => {
            SCHED.lock().yield_current();
            Ok(0)
        }
        Some(Sysno::WaitChild) => match wait_child(args[0], args[1]) {
            Ok(Some(pid)) => Ok(pid as usize),
            Ok(None) => return None,
            Err(e) => Err(e),
        },
        Some(Sysno::LogRead) => log_read(args[0], args[1], args[2]),
        // Numbered in abi, implemented in the commits that follow.
        Some(_) => Err(Error::NoSuchSyscall),
    };
    Some(match result {
        Ok(v) => v as isize,
        Err(e) => e.to_ret(),
    })
}

fn log_write(ptr: u64, len: u64) -> Result<usize, Error> {
    if len > LOG_WRITE_MAX as u64 {
        return Err(Error::InvalidArgument);
    }
    let mut buf = [0u8; LOG_WRITE_MAX];
    let buf = &mut buf[..len as usize];
    {
        let mut s = SCHED.lock();
        let space = s.current().space.as_mut().ok_or(Error::BadAddress)?;
        crate::usercopy::copy_from_user(space, ptr, buf)?;
    }
    crate::log::write_bytes(buf);
    Ok(buf.len())
}

fn log_read(pos: u64, ptr: u64, len: u64) -> Result<usize, Error> {
    let len = len.min(LOG_WRITE_MAX as u64) as usize;
    let mut buf = [0u8; LOG_WRITE_MAX];
    let (copied, _next, lost) = crate::log::read_from(pos, &mut buf[..len]);
    if lost > 0 {
        return Err(Error::NotFound);
    }
    let mut s = SCHED.lock();
    let space = s.current().space.as_mut().ok_or(Error::BadAddress)?;
    crate::usercopy::copy_to_user(space, ptr, &buf[..copied])?;
    Ok(copied)
}

fn exit(code: i64) {
    let mut s = SCHED.lock();
    let pid = s.current_pid();
    let status = ExitStatus {
        pid,
        kind: ExitKind::Exited as u32,
        code,
        ..ExitStatus::default()
    };
    s.exit(pid, status);
}

fn wait_child(out: u64, flags: u64) -> Result<Option<u32>, Error> {
    if flags & !WAIT_NOHANG != 0 {
        return Err(Error::InvalidArgument);
    }
    SCHED.lock().wait_child(out, flags & WAIT_NOHANG != 0)
}
