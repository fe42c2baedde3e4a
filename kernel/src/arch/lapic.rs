//! The local APIC: end-of-interrupt, and the timer that drives preemption.
//!
//! Rules: the timer runs periodically at [`TICK_HZ`] on every CPU; its rate
//! is measured against PIT channel 2 at boot on the boot CPU (with the TSC
//! measured in the same window), never assumed, and the other CPUs use the
//! same count. Each CPU reaches its own local APIC at the same address.

use super::pic;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub const TIMER_VECTOR: u8 = 0x20;
/// The first of the vectors message-signalled interrupts arrive on (after
/// the I/O APIC's, up to the I/O MMU's fault vector).
pub const MSI_VECTOR_BASE: u8 = 0x70;
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// The inter-processor interrupt: "look at your mailbox and reschedule"
/// (see `tlb.rs`; the scheduler's requests travel in its own state).
pub const IPI_VECTOR: u8 = 0xf1;
/// Preemption ticks per second.
pub const TICK_HZ: u64 = 100;
/// Timer ticks since boot (counted by the trap glue on the boot CPU only,
/// so the count is time, whatever the number of CPUs).
pub static TICKS: AtomicU64 = AtomicU64::new(0);
/// How long the timer is measured against the PIT (one PIT tick, 838 ns,
/// is 0.04% of it).
const CALIBRATION_MS: u64 = 2;

const REG_ID: usize = 0x20;
const REG_TPR: usize = 0x80;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_LVT_LINT0: usize = 0x350;
const REG_LVT_LINT1: usize = 0x360;
const REG_LVT_ERROR: usize = 0x370;
const REG_ICR_LOW: usize = 0x300;
const REG_ICR_HIGH: usize = 0x310;
const ICR_PENDING: u32 = 1 << 12;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_LEVEL: u32 = 1 << 15;
const ICR_INIT: u32 = 5 << 8;
const ICR_STARTUP: u32 = 6 << 8;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;

static BASE: AtomicUsize = AtomicUsize::new(0);
static TSC_PER_MS: AtomicU64 = AtomicU64::new(0);
/// What calibration measured, kept when a better rate replaces it (0: it
/// could not measure, and `TSC_PER_MS` was assumed).
static TSC_BOOT_PER_MS: AtomicU64 = AtomicU64::new(0);
/// The timer's initial count for one tick (measured on the boot CPU; the
/// others share the bus clock).
static PERIOD: AtomicU64 = AtomicU64::new(0);

fn write(reg: usize, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: `base` is the LAPIC page mapped uncached by `init`; `reg` is a
    // register offset inside it.
    unsafe { core::ptr::write_volatile((base + reg) as *mut u32, value) }
}

fn read(reg: usize) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as in `write`.
    unsafe { core::ptr::read_volatile((base + reg) as *const u32) }
}

/// What calibration measured.
#[derive(Clone, Copy, Debug)]
pub struct TimerInfo {
    pub lapic_ticks_per_ms: u64,
    pub tsc_per_ms: u64,
    pub calibrated: bool,
}

/// Enables the LAPIC at `phys` (mapped uncached) and starts the periodic
/// preemption timer.
pub fn init(phys: u64) -> Result<TimerInfo, super::paging::MapError> {
    let base = super::paging::map_mmio(phys, 4096)?;
    BASE.store(base as usize, Ordering::Relaxed);
    enable();

    // Divide by 16; count down from the top for CALIBRATION_MS of PIT time
    // (short: under -icount every waited nanosecond is an instruction).
    write(REG_TIMER_DIVIDE, 0x3);
    write(REG_LVT_TIMER, LVT_MASKED);
    let mut tsc0 = 0;
    let mut tsc1 = 0;
    let mut remaining = 0;
    let calibrated = pic::stopwatch(
        CALIBRATION_MS,
        || {
            write(REG_TIMER_INIT, u32::MAX);
            tsc0 = super::cpu::rdtsc();
        },
        || {
            remaining = read(REG_TIMER_CURRENT);
            tsc1 = super::cpu::rdtsc();
        },
    );
    let (lapic_ticks_per_ms, tsc_per_ms) = if calibrated {
        (
            ((u32::MAX - remaining) as u64 / CALIBRATION_MS).max(1),
            ((tsc1 - tsc0) / CALIBRATION_MS).max(1),
        )
    } else {
        // No PIT gate: assume QEMU's 1 GHz LAPIC bus and a 1 GHz TSC.
        (1_000_000 / 16, 1_000_000)
    };
    TSC_PER_MS.store(tsc_per_ms, Ordering::Relaxed);
    TSC_BOOT_PER_MS.store(if calibrated { tsc_per_ms } else { 0 }, Ordering::Relaxed);
    write(REG_TIMER_INIT, 0);
    write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    let period = (lapic_ticks_per_ms * 1000 / TICK_HZ).clamp(1, u32::MAX as u64);
    PERIOD.store(period, Ordering::Relaxed);
    write(REG_TIMER_INIT, period as u32);
    Ok(TimerInfo {
        lapic_ticks_per_ms,
        tsc_per_ms,
        calibrated,
    })
}

/// Turns this CPU's local APIC on with every local line masked.
fn enable() {
    write(REG_TPR, 0);
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_MASKED);
    write(REG_LVT_ERROR, LVT_MASKED);
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
}

/// Starts another CPU's local APIC and its preemption timer, at the rate
/// the boot CPU measured (every CPU's timer runs off the same bus clock).
pub fn init_secondary() {
    enable();
    write(REG_TIMER_DIVIDE, 0x3);
    write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    write(REG_TIMER_INIT, PERIOD.load(Ordering::Relaxed) as u32);
}

fn wait_icr_idle() {
    // Bounded: a local APIC that never accepts is a broken machine, and
    // the IPI is then simply lost (the caller's wait notices).
    for _ in 0..1_000_000 {
        if read(REG_ICR_LOW) & ICR_PENDING == 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

fn send_icr(apic_id: u32, low: u32) {
    wait_icr_idle();
    write(REG_ICR_HIGH, apic_id << 24);
    write(REG_ICR_LOW, low);
}

/// Sends [`IPI_VECTOR`] to the CPU with local APIC id `apic_id`.
#[inline]
pub fn send_ipi(apic_id: u32) {
    send_icr(apic_id, ICR_ASSERT | IPI_VECTOR as u32);
}

/// Sends INIT (assert, then the level de-assert older CPUs need).
pub fn send_init(apic_id: u32) {
    send_icr(apic_id, ICR_INIT | ICR_LEVEL | ICR_ASSERT);
    send_icr(apic_id, ICR_INIT | ICR_LEVEL);
    wait_icr_idle();
}

/// Sends a start-up IPI: the CPU begins in real mode at `page * 4096`.
pub fn send_startup(apic_id: u32, page: u8) {
    send_icr(apic_id, ICR_STARTUP | ICR_ASSERT | page as u32);
    wait_icr_idle();
}

/// Signals the end of the interrupt being handled.
#[inline]
pub fn eoi() {
    write(REG_EOI, 0);
}

/// The interrupt-request registers: bit `v % 32` of register `v / 32`.
const REG_IRR: usize = 0x200;

/// Whether a timer tick is waiting to be taken (it is, in the kernel,
/// which runs with interrupts off): long kernel work checks this to stop
/// at a tick, as a preemptible kernel would.
#[inline]
pub fn timer_pending() -> bool {
    let v = TIMER_VECTOR as usize;
    if BASE.load(Ordering::Relaxed) == 0 {
        return false;
    }
    read(REG_IRR + 0x10 * (v / 32)) & (1 << (v % 32)) != 0
}

/// This CPU's APIC id (where routed interrupts go).
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// TSC ticks in half a preemption tick: the least a process runs before a
/// tick may take the CPU from it (0 before calibration: any tick may).
#[inline]
pub fn half_tick_tsc() -> u64 {
    TSC_PER_MS.load(Ordering::Relaxed) * 500 / TICK_HZ
}

/// TSC ticks per millisecond (0 before calibration).
pub fn tsc_per_ms() -> u64 {
    TSC_PER_MS.load(Ordering::Relaxed)
}

/// TSC ticks per millisecond as calibration measured them (0 if assumed).
pub fn tsc_boot_per_ms() -> u64 {
    TSC_BOOT_PER_MS.load(Ordering::Relaxed)
}

/// Converts with `per_ms` from now on: a better measurement than the
/// boot calibration's (the timer server's, against the HPET).
pub fn set_tsc_per_ms(per_ms: u64) {
    TSC_PER_MS.store(per_ms.max(1), Ordering::Relaxed);
}

/// Converts TSC ticks to microseconds (0 before calibration).
pub fn tsc_to_us(ticks: u64) -> u64 {
    let per_ms = TSC_PER_MS.load(Ordering::Relaxed);
    (ticks * 1000).checked_div(per_ms).unwrap_or(0)
}
