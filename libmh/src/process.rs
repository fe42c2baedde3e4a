//! Process system calls: exit, getpid, yield, wait_child, and the kernel
//! log.

use crate::raw::{syscall3, syscall6};
use abi::syscall::WAIT_NOHANG;
use abi::{Error, ExitStatus, SysInfo, Sysno};

// Inlined (like the `#[inline]` calls built on it): otherwise a call as
// small as `getpid` pays a function call around its `syscall`.
#[inline]
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
#[inline]
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

/// Forks: `Ok(0)` in the child, the child's pid in the parent.
pub fn fork() -> Result<u32, Error> {
    call(Sysno::Fork, 0, 0, 0).map(|pid| pid as u32)
}

/// Replaces this program with the ELF `image`; `cmdline` is "name args…".
/// Returns only on failure.
pub fn exec(image: &[u8], cmdline: &str) -> Error {
    // SAFETY: both pointers come from references the caller holds.
    let r = unsafe {
        syscall6(
            Sysno::Exec as u64,
            image.as_ptr() as u64,
            image.len() as u64,
            cmdline.as_ptr() as u64,
            cmdline.len() as u64,
            0,
            0,
        )
    };
    match Error::decode(r) {
        Err(e) => e,
        Ok(_) => Error::InvalidArgument,
    }
}

/// Starts `image` as a child: fork, then exec in the child (which exits
/// with status 127 if exec fails). Returns the child's pid.
pub fn spawn(image: &[u8], cmdline: &str) -> Result<u32, Error> {
    match fork()? {
        0 => {
            let e = exec(image, cmdline);
            crate::println!("spawn: exec of '{cmdline}' failed: {e}");
            exit(127)
        }
        pid => Ok(pid),
    }
}

/// Sets the priority (0 most urgent) of the caller (`pid` 0) or a child.
pub fn set_priority(pid: u32, priority: u8) -> Result<(), Error> {
    call(Sysno::SetPriority, pid as u64, priority as u64, 0).map(|_| ())
}

/// Binds the caller (`pid` 0) or a child to the CPUs of `mask` (bit i:
/// CPU i; 0: every CPU). `InvalidArgument` if it names no running CPU.
pub fn set_affinity(pid: u32, mask: u64) -> Result<(), Error> {
    call(Sysno::SetAffinity, pid as u64, mask, 0).map(|_| ())
}

/// The CPU the caller runs on now (it may move at any preemption unless
/// bound to one CPU with [`set_affinity`]) and how many CPUs run.
pub fn cpu() -> (u32, u32) {
    sys_info().map_or((0, 1), |i| (i.cpu, i.cpus))
}

/// The kernel's counters.
pub fn sys_info() -> Result<SysInfo, Error> {
    let mut info = SysInfo::default();
    call(Sysno::SysInfo, &raw mut info as u64, 0, 0)?;
    Ok(info)
}

/// Allows (true) or holds (false) delivery of pending interrupts to the
/// handler; returns the previous setting.
pub fn int_enable(on: bool) -> Result<bool, Error> {
    call(Sysno::IntEnable, on as u64, 0, 0).map(|was| was == 1)
}

/// Sleeps until a vector in `mask` is pending; takes and returns those.
#[inline]
pub fn irq_wait(mask: u64) -> Result<u64, Error> {
    call(Sysno::IrqWait, mask, 0, 0).map(|v| v as u64)
}

/// Makes `vector` pending on the caller.
pub fn irq_raise(vector: u32) -> Result<(), Error> {
    call(Sysno::IrqRaise, vector as u64, 0, 0).map(|_| ())
}
