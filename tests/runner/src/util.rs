//! Helpers shared by the test groups: running code in a child, and
//! checking that a group gave back every frame it used.

use crate::suite::{Fail, TestResult};
use abi::{ExitKind, ExitStatus};
use libmh::process;

/// Runs `f` in a forked child and returns how the child ended. Only call
/// it when the caller has no other children.
pub fn in_child(f: impl FnOnce() -> i32) -> Result<ExitStatus, Fail> {
    match process::fork() {
        Ok(0) => process::exit(f() as i64),
        Ok(pid) => {
            let st =
                process::wait_child().map_err(|e| Fail::new(format_args!("wait_child: {e}")))?;
            if st.pid != pid {
                return Err(Fail::new(format_args!(
                    "reaped pid {} instead of {pid}",
                    st.pid
                )));
            }
            Ok(st)
        }
        Err(e) => Err(Fail::new(format_args!("fork: {e}"))),
    }
}

/// Runs `f` in a child and expects it to exit with status 0.
pub fn child_ok(f: impl FnOnce() -> i32) -> TestResult {
    let st = in_child(f)?;
    if st.kind != ExitKind::Exited as u32 || st.code != 0 {
        return Err(Fail::new(format_args!(
            "child ended with kind {} code {} (addr {:#x} rip {:#x})",
            st.kind, st.code, st.fault_addr, st.fault_ip
        )));
    }
    Ok(())
}

/// Runs `f` in a child and expects it to be killed by page fault at
/// `addr`.
pub fn child_page_faults_at(addr: u64, f: impl FnOnce() -> i32) -> TestResult {
    let st = in_child(f)?;
    if st.kind != ExitKind::Faulted as u32 || st.code != 14 || st.fault_addr != addr {
        return Err(Fail::new(format_args!(
            "child ended with kind {} code {} addr {:#x}, expected a page fault at {addr:#x}",
            st.kind, st.code, st.fault_addr
        )));
    }
    Ok(())
}

/// Frames outside the kernel heap that are free right now: what a leak of
/// pages or page tables would lower (kernel objects are counted by the
/// process and handle counts instead).
pub fn free_frames() -> u64 {
    process::sys_info().map_or(0, |i| i.free_frames + i.heap_frames + i.spare_tables)
}

/// Reads a byte of user memory (volatile: the compiler must not assume).
pub fn peek(addr: u64) -> u8 {
    // SAFETY: callers pass addresses they mapped, or want the fault.
    unsafe { (addr as *const u8).read_volatile() }
}

/// Writes a byte of user memory.
pub fn poke(addr: u64, v: u8) {
    // SAFETY: as in `peek`.
    unsafe { (addr as *mut u8).write_volatile(v) }
}

/// Touches every region the test groups use (their page tables stay once
/// made, like any process's), so that a group's free-frame baseline counts
/// only what can leak: pages, not the tables above them.
pub fn warm_up() {
    use abi::layout::{USER_HEAP_BASE, USER_STACK_MAX, USER_STACK_TOP};
    const P: u64 = 4096;
    for area in [0x5000_0000_0000u64, 0x5100_0000_0000, 0x5200_0000_0000] {
        let _ = libmh::vm::map(area, P, libmh::vm::PROT_RW);
        let _ = libmh::vm::unmap(area, P);
    }
    // Heap: the test pages sit in its first 8 MiB (four page tables).
    for mib in (0..8).step_by(2) {
        let page = USER_HEAP_BASE + (mib << 20);
        poke(page, 1);
        let _ = libmh::vm::unmap(page, P);
    }
    // Stack growth: one page at the bottom of the grown part.
    let low = USER_STACK_TOP - USER_STACK_MAX + P;
    let _ = libmh::vm::map(low, P, libmh::vm::PROT_RW);
    let _ = libmh::vm::unmap(low, P);
    // A COW copy in this process (it uses the scratch page).
    let _ = libmh::vm::map(0x5000_0000_0000, P, libmh::vm::PROT_RW);
    poke(0x5000_0000_0000, 1);
    if let Ok(st) = in_child(|| 0) {
        let _ = st;
    }
    // Still shared until the child was reaped; now private read-only: the
    // write goes through the "rewritable" path. Force a real copy too.
    let _ = in_child(|| {
        poke(0x5000_0000_0000, 2);
        0
    });
    poke(0x5000_0000_0000, 3);
    let _ = libmh::vm::unmap(0x5000_0000_0000, P);
}
