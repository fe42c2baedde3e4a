//! Process system calls: exit, getpid, yield, wait_child, and the kernel
//! log.

use crate::raw::syscall3;
use abi::syscall::WAIT_NOHANG;
use abi::{Error, ExitStatus, Sysno};

fn call(n: Sysno, a0: u64, a1: u64, a2: u64) -> Result<usize, Error> {
    // SAFETY: every pointer argument passed by this module comes from a
    // Rust reference the caller holds.
    Error::decode(unsafe { syscall3(n as u64, a0, a1, a2) })
}

/// Ends the calling process with `code`.
pub fn exit(code: i64) -> ! {
    let _ = call(Sysno::Exit, code as u64, 0, 0);
    // The kernel never returns from exit; spin if it somehow did.
    loop {
        core::hint::spin_loop();
    }
}

/// The caller's process id.
pub fn getpid() -> u32 {
    call(Sysno::GetPid, 0, 0, 0).unwrap_or(0) as u32
}

/// Lets other ready processes of the same priority run first.
pub fn yield_now() {
    let _ = call(Sysno::Yield, 0, 0, 0);
}

/// Waits for a child to exit and reaps it.
pub fn wait_child() -> Result<ExitStatus, Error> {
    let mut status = ExitStatus::default();
    call(Sysno::WaitChild, &raw mut status as u64, 0, 0)?;
    Ok(status)
}

/// Reaps an exited child if there is one (`WouldBlock` if none yet).
pub fn try_wait_child() -> Result<ExitStatus, Error> {
    let mut status = ExitStatus::default();
    call(Sysno::WaitChild, &raw mut status as u64, WAIT_NOHANG, 0)?;
    Ok(status)
}

/// Appends bytes to the kernel log.
pub fn log_write(bytes: &[u8]) -> Result<usize, Error> {
    call(
        Sysno::LogWrite,
        bytes.as_ptr() as u64,
        bytes.len() as u64,
        0,
    )
}

/// Reads kernel-log bytes from absolute position `pos` into `buf`.
pub fn log_read(pos: u64, buf: &mut [u8]) -> Result<usize, Error> {
    call(
        Sysno::LogRead,
        pos,
        buf.as_mut_ptr() as u64,
        buf.len() as u64,
    )
}
