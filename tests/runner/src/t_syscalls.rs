//! System-call tests: every call of the current ABI, its results and its
//! errors, including arguments that lie (bad numbers, pointers, lengths).

use crate::suite::{Suite, TestResult};
use crate::{ensure, ensure_eq};
use abi::layout::{USER_END, USER_STACK_TOP};
use abi::syscall::LOG_WRITE_MAX;
use abi::{Error, Sysno};
use libmh::process;
use libmh::raw::syscall6;

fn raw(n: u64, a: [u64; 6]) -> Result<usize, Error> {
    // SAFETY: these calls lie on purpose; the kernel must refuse them
    // without writing anywhere we own except the documented outputs.
    Error::decode(unsafe { syscall6(n, a[0], a[1], a[2], a[3], a[4], a[5]) })
}

fn log_write_raw(ptr: u64, len: u64) -> Result<usize, Error> {
    raw(Sysno::LogWrite as u64, [ptr, len, 0, 0, 0, 0])
}

pub fn run(s: &mut Suite) {
    // First, while the kernel log still holds the boot lines: the test
    // image boots on q35, whose I/O MMU the kernel turns on at boot.
    s.run("the_kernel_sizes_pci_bars_itself", || {
        // The boot survey of bus 0 through ECAM: QEMU's edu device has one
        // 1 MiB memory BAR and MSI, found by kernel-core's PCI logic.
        ensure!(
            log_contains(b"1234:11e8 class 00ff: bar0 mem32 0xfea00000+1 MiB msi(1)"),
            "the kernel did not describe the edu device"
        );
        Ok(())
    });
    s.run("the_io_mmu_translates_from_boot", || {
        ensure!(
            log_contains(b"I/O MMU at 0xfed90000: DMA remapping on"),
            "the kernel did not turn the I/O MMU on"
        );
        Ok(())
    });

    s.run("boot_reaches_user_mode_as_init", || {
        ensure_eq!(process::getpid(), 1);
        Ok(())
    });
    s.run("getpid_is_stable", || {
        ensure_eq!(process::getpid(), process::getpid());
        Ok(())
    });
    s.run("yield_returns", || {
        for _ in 0..10 {
            process::yield_now();
        }
        Ok(())
    });
    s.run("log_write_returns_length", || {
        ensure_eq!(
            process::log_write(b"mhtest: a line through log_write\n"),
            Ok(33)
        );
        ensure_eq!(process::log_write(b""), Ok(0));
        Ok(())
    });
    s.run("log_write_at_maximum_length", || {
        // A full-size write that reads as one short line.
        let mut buf = [b' '; LOG_WRITE_MAX];
        let text = b"mhtest: a 4096-byte write";
        buf[..text.len()].copy_from_slice(text);
        buf[LOG_WRITE_MAX - 1] = b'\n';
        ensure_eq!(process::log_write(&buf), Ok(LOG_WRITE_MAX));
        Ok(())
    });
    s.run("log_write_too_long_is_invalid", || {
        let buf = [b'x'; LOG_WRITE_MAX + 1];
        ensure_eq!(process::log_write(&buf), Err(Error::InvalidArgument));
        ensure_eq!(
            log_write_raw(buf.as_ptr() as u64, u64::MAX),
            Err(Error::InvalidArgument)
        );
        Ok(())
    });
    s.run("log_write_bad_pointers", || {
        let bad = [
            0,                           // null
            0x1000,                      // below USER_MIN
            0x1000_0000_0000,            // unmapped user address
            0xffff_8000_0000_0000,       // the kernel's direct map
            crate::helpers::KERNEL_ADDR, // the kernel image
            0x0000_8000_0000_0000,       // non-canonical
            USER_END - 4,                // runs past the user half
            u64::MAX - 3,                // wraps around
            USER_STACK_TOP - 4,          // half mapped: stack top
        ];
        for ptr in bad {
            ensure!(
                log_write_raw(ptr, 8) == Err(Error::BadAddress),
                "log_write({ptr:#x}, 8) = {:?}",
                log_write_raw(ptr, 8)
            );
        }
        Ok(())
    });
    s.run("unknown_syscall_numbers", || {
        let next = Sysno::ALL.len() as u64 + 1;
        for n in [0, next, next + 1, 1000, 0x8000_0000_0000_0000, u64::MAX] {
            ensure!(
                raw(n, [1, 2, 3, 4, 5, 6]) == Err(Error::NoSuchSyscall),
                "syscall {n:#x} = {:?}",
                raw(n, [1, 2, 3, 4, 5, 6])
            );
        }
        Ok(())
    });
    s.run("syscall_preserves_registers", preserves_registers);
    s.run("wait_child_rejects_unknown_flags", || {
        let mut st = abi::ExitStatus::default();
        let r = raw(Sysno::WaitChild as u64, [&raw mut st as u64, 2, 0, 0, 0, 0]);
        ensure_eq!(r, Err(Error::InvalidArgument));
        Ok(())
    });
    s.run("kernel_log_has_boot_banner", || {
        ensure!(
            log_contains(b"MH kernel: "),
            "no 'MH kernel: ' line in the kernel log"
        );
        ensure!(
            log_contains(b"kernel entry to first user instruction"),
            "no boot-time line in the kernel log"
        );
        Ok(())
    });
    s.run("log_read_errors", || {
        let mut buf = [0u8; 16];
        let far = raw(
            Sysno::LogRead as u64,
            [u64::MAX / 2, buf.as_mut_ptr() as u64, 16, 0, 0, 0],
        );
        ensure_eq!(far, Ok(0));
        let r = raw(Sysno::LogRead as u64, [0, 0, 16, 0, 0, 0]);
        ensure_eq!(r, Err(Error::BadAddress));
        // Read-only memory is not a valid output buffer.
        let ro: &'static [u8; 16] = b"read-only bytes!";
        let r = raw(Sysno::LogRead as u64, [0, ro.as_ptr() as u64, 16, 0, 0, 0]);
        ensure_eq!(r, Err(Error::BadAddress));
        Ok(())
    });
}

/// Scans the whole kernel log for `needle`.
pub fn log_contains(needle: &[u8]) -> bool {
    let mut buf = [0u8; 4096];
    let mut window = [0u8; 4096 + 256];
    // The ring holds the last 64 KiB: start inside what it still has
    // (a busy suite, the fuzzer's reports for one, wraps it).
    let written = libmh::dev::attach(libmh::dev::REGISTRY, "klog", libmh::dev::RIGHT_READ)
        .and_then(|h| {
            let w = h.port_in(abi::kdev::KLOG_PORT_WRITTEN, 8);
            let _ = h.detach();
            w
        })
        .unwrap_or(0);
    let mut pos = written.saturating_sub(60 * 1024);
    let mut carry = 0usize;
    loop {
        let n = match process::log_read(pos, &mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        window[carry..carry + n].copy_from_slice(&buf[..n]);
        let len = carry + n;
        if window[..len].windows(needle.len()).any(|w| w == needle) {
            return true;
        }
        // Keep a tail so a match across two reads is still found.
        carry = needle.len().min(len).min(256);
        window.copy_within(len - carry..len, 0);
        pos += n as u64;
    }
}

fn preserves_registers() -> TestResult {
    let pattern: [u64; 12] = [
        0x1111_1111_1111_1111,
        0x2222_2222_2222_2222,
        0x3333_3333_3333_3333,
        0x4444_4444_4444_4444,
        0x5555_5555_5555_5555,
        0x6666_6666_6666_6666,
        0x7777_7777_7777_7777,
        0x8888_8888_8888_8888,
        0x9999_9999_9999_9999,
        0xaaaa_aaaa_aaaa_aaaa,
        0xbbbb_bbbb_bbbb_bbbb,
        0xcccc_cccc_cccc_cccc,
    ];
    let mut out = [0u64; 12];
    // SAFETY: saves every register it changes (rbx and rbp by hand, the
    // rest as clobbers), makes a getpid call, and stores what came back.
    unsafe {
        core::arch::asm!(
            "push rbx",
            "push rbp",
            "mov rbx, [rax + 0]",
            "mov rbp, [rax + 8]",
            "mov rdi, [rax + 16]",
            "mov rsi, [rax + 24]",
            "mov rdx, [rax + 32]",
            "mov r8,  [rax + 40]",
            "mov r9,  [rax + 48]",
            "mov r10, [rax + 56]",
            "mov r12, [rax + 64]",
            "mov r13, [rax + 72]",
            "mov r14, [rax + 80]",
            "mov r15, [rax + 88]",
            "push rcx",
            "mov eax, 3",
            "syscall",
            "pop rax",
            "mov [rax + 0], rbx",
            "mov [rax + 8], rbp",
            "mov [rax + 16], rdi",
            "mov [rax + 24], rsi",
            "mov [rax + 32], rdx",
            "mov [rax + 40], r8",
            "mov [rax + 48], r9",
            "mov [rax + 56], r10",
            "mov [rax + 64], r12",
            "mov [rax + 72], r13",
            "mov [rax + 80], r14",
            "mov [rax + 88], r15",
            "pop rbp",
            "pop rbx",
            inout("rax") pattern.as_ptr() => _,
            inout("rcx") out.as_mut_ptr() => _,
            out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        );
    }
    for (i, (&got, &want)) in out.iter().zip(pattern.iter()).enumerate() {
        ensure!(
            got == want,
            "register slot {i}: {got:#x}, expected {want:#x}"
        );
    }
    Ok(())
}
