//! The `syscall` instruction itself (see `abi::syscall` for the register
//! convention). These take raw words, so they can say anything: the safe
//! wrappers elsewhere in libmh are what programs should call.

use core::arch::asm;

/// A system call with six argument words; returns the raw result word.
///
/// # Safety
/// The kernel validates every argument, so no call can harm the kernel;
/// but a call may write to the caller's memory through any pointer
/// argument, which the caller must own.
#[inline(always)]
pub unsafe fn syscall6(n: u64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> isize {
    let ret: isize;
    // SAFETY: the syscall instruction clobbers only rcx and r11 (declared);
    // the kernel preserves every other register.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            in("r10") a3,
            in("r8") a4,
            in("r9") a5,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A system call with up to three argument words.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall3(n: u64, a0: u64, a1: u64, a2: u64) -> isize {
    let ret: isize;
    // SAFETY: as in syscall6.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A system call with six argument words that also answers in `rdi`,
/// `rsi`, `rdx` and `r10` (as `dev_poll` and `dev_reply_poll` do with a
/// null request pointer): returns the result word and those four.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall6_out4(
    n: u64,
    a0: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> (isize, [u64; 4]) {
    let ret: isize;
    let (w0, w1, w2, w3): (u64, u64, u64, u64);
    // SAFETY: as in syscall6; the four answer registers are declared as
    // outputs, the kernel preserves the rest.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            inlateout("rdi") a0 => w0,
            inlateout("rsi") a1 => w1,
            inlateout("rdx") a2 => w2,
            inlateout("r10") a3 => w3,
            in("r8") a4,
            in("r9") a5,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    (ret, [w0, w1, w2, w3])
}
