//! CPU features and control registers, port I/O, the TSC, and power-off.
//!
//! Rules: features are probed once with CPUID and enabled only when present
//! (NX, SMEP, SMAP): code that depends on one asks [`features`] first. With
//! SMAP on, the kernel never touches user pages through user addresses: it
//! copies through the direct map (see `usercopy`).

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::port::Port;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

/// The CPU features the kernel uses when they exist.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub nx: bool,
    pub smep: bool,
    pub smap: bool,
}

static NX: AtomicBool = AtomicBool::new(false);
static SMEP: AtomicBool = AtomicBool::new(false);
static SMAP: AtomicBool = AtomicBool::new(false);

fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Probes and enables NX, SMEP, SMAP and CR0.WP.
pub fn init() -> Features {
    let max_ext = cpuid(0x8000_0000, 0).0;
    let nx = max_ext >= 0x8000_0001 && cpuid(0x8000_0001, 0).3 & (1 << 20) != 0;
    let max_std = cpuid(0, 0).0;
    let leaf7_ebx = if max_std >= 7 { cpuid(7, 0).1 } else { 0 };
    let smep = leaf7_ebx & (1 << 7) != 0;
    let smap = leaf7_ebx & (1 << 20) != 0;
    // SAFETY: each bit is set only when CPUID says the CPU has it; WP makes
    // the kernel honour read-only user pages, which the COW design needs.
    unsafe {
        if nx {
            Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE));
        }
        Cr0::update(|f| f.insert(Cr0Flags::WRITE_PROTECT));
        Cr4::update(|f| {
            if smep {
                f.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
            }
            if smap {
                f.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
            }
        });
    }
    NX.store(nx, Ordering::Relaxed);
    SMEP.store(smep, Ordering::Relaxed);
    SMAP.store(smap, Ordering::Relaxed);
    features()
}

/// The features enabled by [`init`].
pub fn features() -> Features {
    Features {
        nx: NX.load(Ordering::Relaxed),
        smep: SMEP.load(Ordering::Relaxed),
        smap: SMAP.load(Ordering::Relaxed),
    }
}

/// The time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged and side-effect free.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Writes the cache line holding `at` back to memory and drops it from
/// the caches, for hardware that reads memory without snooping them.
#[inline]
pub fn clflush(at: *const u8) {
    // SAFETY: CLFLUSH reads nothing and changes no memory's value; `at` is
    // a direct-map address of RAM (the caller's table), so it does not
    // fault. SSE2, which has it, is part of x86_64.
    unsafe { core::arch::x86_64::_mm_clflush(at) }
}

/// Waits about `us` microseconds (by the TSC, once calibrated).
pub fn delay_us(us: u64) {
    let per_us = (super::lapic::tsc_per_ms() / 1000).max(1);
    let start = rdtsc();
    while rdtsc().wrapping_sub(start) < us * per_us {
        core::hint::spin_loop();
    }
}

/// Reads the faulting address of the last page fault.
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device the kernel drives.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::new(port).write(value) }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// The port must belong to a device the kernel drives.
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::new(port).read() }
}

/// Reads 1, 2 or 4 bytes from an I/O port (a driver's, checked by the
/// bus against its hardware device's ranges).
///
/// # Safety
/// The port must belong to the hardware device of the caller.
pub unsafe fn port_read(port: u16, size: u64) -> u64 {
    // SAFETY: the caller vouches for the port.
    unsafe {
        match size {
            1 => Port::<u8>::new(port).read() as u64,
            2 => Port::<u16>::new(port).read() as u64,
            _ => Port::<u32>::new(port).read() as u64,
        }
    }
}

/// Writes 1, 2 or 4 bytes to an I/O port.
///
/// # Safety
/// As for [`port_read`].
pub unsafe fn port_write(port: u16, size: u64, value: u64) {
    // SAFETY: the caller vouches for the port.
    unsafe {
        match size {
            1 => Port::<u8>::new(port).write(value as u8),
            2 => Port::<u16>::new(port).write(value as u16),
            _ => Port::<u32>::new(port).write(value as u32),
        }
    }
}

/// Ends the QEMU run with `code` (see `abi::power`); halts if the
/// debug-exit device is absent.
pub fn power_off(code: u8) -> ! {
    // SAFETY: writing the isa-debug-exit port has no effect on real
    // hardware that lacks it; under QEMU it ends the emulator.
    unsafe { outb(abi::power::DEBUG_EXIT_PORT, code) };
    halt_forever()
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Waits for the next interrupt with interrupts enabled, then disables them
/// again. The handler runs in between, on the kernel stack.
#[inline]
pub fn idle_wait() {
    // SAFETY: `sti; hlt` is atomic with respect to interrupts (the STI
    // shadow), so a wake-up cannot slip in between and be lost.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}
