//! The caller's own memory: `vm_map`, `vm_protect`, `vm_unmap`, `vm_move`
//! (see docs/syscalls.md). Addresses and lengths are in bytes and must be
//! page-aligned.

use crate::raw::syscall3;
use abi::{Error, Sysno};

pub use abi::vm::{PROT_EXEC, PROT_READ, PROT_WRITE, VM_ALLOW_WX};

/// Read and write.
pub const PROT_RW: u64 = PROT_READ | PROT_WRITE;

fn call(n: Sysno, a0: u64, a1: u64, a2: u64) -> Result<(), Error> {
    // SAFETY: these calls take addresses, not pointers the kernel writes
    // through; the kernel checks them.
    Error::decode(unsafe { syscall3(n as u64, a0, a1, a2) }).map(|_| ())
}

/// Maps fresh zeroed pages at `[va, va+len)` with `prot`.
pub fn map(va: u64, len: u64, prot: u64) -> Result<(), Error> {
    call(Sysno::VmMap, va, len, prot)
}

/// Changes the protection of `[va, va+len)`.
pub fn protect(va: u64, len: u64, prot: u64) -> Result<(), Error> {
    call(Sysno::VmProtect, va, len, prot)
}

/// Unmaps `[va, va+len)`.
pub fn unmap(va: u64, len: u64) -> Result<(), Error> {
    call(Sysno::VmUnmap, va, len, 0)
}

/// Moves the pages at `[src, src+len)` to `dst`, replacing what was there.
pub fn move_pages(dst: u64, src: u64, len: u64) -> Result<(), Error> {
    call(Sysno::VmMove, dst, src, len)
}
