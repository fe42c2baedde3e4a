//! The misbehaving helper processes of the test image (see
//! tools/images/test.toml). Each does one thing the kernel must contain.

use core::arch::asm;
use core::hint::black_box;
use libmh::println;

/// How long the spinner busy-loops, in TSC ticks (about 0.4 s here).
const SPIN_TICKS: u64 = 1_000_000_000;
/// A gap between two TSC reads longer than this (about 0.4 ms) means the
/// spinner was preempted.
const PREEMPTION_GAP_TICKS: u64 = 1_000_000;
/// The spinner exits with `SPIN_EXIT_BASE + gaps seen` (at most 99 gaps).
pub const SPIN_EXIT_BASE: i32 = 100;
/// A kernel address: the kernel image is linked at -2 GiB + 1 MiB.
pub const KERNEL_ADDR: u64 = 0xffff_ffff_8010_0000;

fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged and side-effect free.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn run(what: &str) -> i32 {
    match what {
        // Write through a null pointer: #PF at address 0.
        "fault" => {
            let p = black_box(0usize) as *mut u64;
            // SAFETY: deliberately invalid; the kernel must kill us.
            unsafe { p.write_volatile(1) };
        }
        // A privileged instruction: #GP.
        "gp" => {
            // SAFETY: deliberately privileged; the kernel must kill us.
            unsafe { asm!("cli") };
        }
        // A software interrupt into a DPL-0 gate: #GP.
        "int" => {
            // SAFETY: as above.
            unsafe { asm!("int 0x80") };
        }
        // An undefined instruction: #UD.
        "ud" => {
            // SAFETY: as above.
            unsafe { asm!("ud2") };
        }
        // Read kernel memory: #PF at a kernel address.
        "kread" => {
            let p = black_box(KERNEL_ADDR) as *const u64;
            // SAFETY: as above.
            let v = unsafe { p.read_volatile() };
            black_box(v);
        }
        // Busy-loop without system calls, counting the times the CPU was
        // taken away (gaps in the TSC), then exit normally.
        "spin" => {
            let start = rdtsc();
            let mut last = start;
            let mut gaps = 0;
            while last.wrapping_sub(start) < SPIN_TICKS {
                let now = rdtsc();
                if now.wrapping_sub(last) > PREEMPTION_GAP_TICKS {
                    gaps += 1;
                }
                last = now;
            }
            return SPIN_EXIT_BASE + gaps.min(99);
        }
        _ => {
            println!("mhtest helper: unknown role '{what}'");
            return 2;
        }
    }
    println!("mhtest helper '{what}': survived what should have killed it");
    3
}

/// Exit status of a child whose exec failed: 200 + the error code.
pub fn report_exec_failure(e: abi::Error) -> i32 {
    println!("mhtest: exec failed: {e}");
    200 + e.code() as i32
}

/// The kernel's tick count now (for bounded waits).
pub fn ticks_now() -> u64 {
    libmh::process::sys_info().map_or(0, |i| i.ticks)
}

/// Whether `secs` seconds of ticks have passed since `since`.
pub fn seconds_passed(since: u64, secs: u64) -> bool {
    let hz = libmh::process::sys_info().map_or(100, |i| i.tick_hz.max(1));
    ticks_now().saturating_sub(since) >= secs * hz
}
