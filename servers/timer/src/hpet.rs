//! The HPET, through a hardware device made by `platform`: its register
//! page mapped with `iomap`, comparator 0 in one-shot 64-bit mode routed
//! to one I/O APIC line (edge-triggered, active high).
//!
//! Rules: the HPET only wakes the server; what is due is always decided
//! by the TSC clock, so an interrupt that is early, late or spurious (the
//! line may be shared with ISA IRQ 0) costs a wake-up, never a wrong
//! answer. A comparator is never left behind the counter: `arm` reports a
//! target the counter has already passed, so the caller handles it at
//! once instead of waiting for an interrupt that will not come.

use abi::Error;
use abi::hw::{HwIrq, HwMmioRange};
use libmh::dev::{self, REGISTRY};
use libmh::timer::rdtsc;

/// Where PC chipsets (and QEMU) put the HPET's registers.
pub const DEFAULT_BASE: u64 = 0xfed0_0000;
/// The GSI of ISA IRQ 0 on QEMU's PC (MADT interrupt source override);
/// the one line every HPET timer of QEMU's `pc` machine can be routed to.
pub const DEFAULT_GSI: u32 = 2;
/// The hardware device's name.
pub const DEVICE: &str = "hpet";
/// Where the register page is mapped in the server.
const VA: u64 = 0x5800_0000_0000;

const GCAP_ID: u64 = 0x000;
const GEN_CONF: u64 = 0x010;
const MAIN_COUNTER: u64 = 0x0f0;
const T0_CONF: u64 = 0x100;
const T0_COMPARATOR: u64 = 0x108;

const CAP_COUNT_64: u64 = 1 << 13;
const CONF_ENABLE: u64 = 1;
const CONF_LEGACY: u64 = 2;
const TN_INT_LEVEL: u64 = 1 << 1;
const TN_INT_ENABLE: u64 = 1 << 2;
const TN_PERIODIC: u64 = 1 << 3;
const TN_SIZE_64: u64 = 1 << 5;
const TN_32BIT_MODE: u64 = 1 << 8;
const TN_ROUTE_SHIFT: u64 = 9;
const TN_ROUTE_MASK: u64 = 0x1f << TN_ROUTE_SHIFT;
const TN_FSB: u64 = 1 << 14;

/// Femtoseconds per nanosecond.
const FS_PER_NS: u128 = 1_000_000;

/// A driven HPET.
pub struct Hpet {
    /// Counter period in femtoseconds.
    period_fs: u64,
}

fn read32(off: u64) -> u32 {
    // SAFETY: VA maps the HPET's register page (uncached device memory)
    // for the life of the server; `off` is a register offset inside it.
    unsafe { core::ptr::read_volatile((VA + off) as *const u32) }
}

fn write32(off: u64, v: u32) {
    // SAFETY: as in `read32`.
    unsafe { core::ptr::write_volatile((VA + off) as *mut u32, v) }
}

fn read64(off: u64) -> u64 {
    // Two 32-bit halves, which every HPET accepts; the high half is read
    // twice so a carry between the reads is seen.
    loop {
        let hi = read32(off + 4);
        let lo = read32(off);
        if read32(off + 4) == hi {
            return (hi as u64) << 32 | lo as u64;
        }
    }
}

fn write64(off: u64, v: u64) {
    write32(off + 4, (v >> 32) as u32);
    write32(off, v as u32);
}

impl Hpet {
    /// Finds (or makes) the `hpet` hardware device for the registers at
    /// `base` and line `gsi`, maps it, checks it is a usable HPET and
    /// starts its counter. The line is delivered as `vector`.
    pub fn open(base: u64, gsi: u32, vector: u32) -> Result<Hpet, Error> {
        let rights = dev::RIGHT_MAP | dev::RIGHT_IRQ | dev::ATTACH_CLOSE_ON_EXEC;
        // A previous timer server may have made the device already (it
        // outlives its driver); only if not, make it.
        let handle = match dev::attach(REGISTRY, DEVICE, rights) {
            Err(Error::NotFound) => {
                create(base, gsi)?;
                dev::attach(REGISTRY, DEVICE, rights)?
            }
            other => other?,
        };
        handle.iomap(VA, base, 0x1000)?;
        let cap = read64(GCAP_ID);
        let period_fs = cap >> 32;
        // A missing HPET reads all ones; the period is at most 100 ns.
        if cap == u64::MAX || period_fs == 0 || period_fs > 100_000_000 {
            return Err(Error::NotFound);
        }
        let t0 = read64(T0_CONF);
        let routable = (t0 >> 32) & (1 << gsi) != 0;
        if cap & CAP_COUNT_64 == 0 || t0 & TN_SIZE_64 == 0 || !routable {
            return Err(Error::NotSupported);
        }
        // Timer 0: edge, one-shot, 64-bit, routed to `gsi`, masked for now.
        let conf = (t0 & 0xffff_ffff)
            & !(TN_INT_LEVEL
                | TN_INT_ENABLE
                | TN_PERIODIC
                | TN_32BIT_MODE
                | TN_ROUTE_MASK
                | TN_FSB);
        write32(T0_CONF, (conf | (gsi as u64) << TN_ROUTE_SHIFT) as u32);
        let gen_conf = read64(GEN_CONF) & !CONF_LEGACY;
        write32(GEN_CONF, (gen_conf | CONF_ENABLE) as u32);
        handle.irq_map(0, vector)?;
        Ok(Hpet { period_fs })
    }

    /// The main counter.
    pub fn counter(&self) -> u64 {
        read64(MAIN_COUNTER)
    }

    /// A (TSC, counter) pair read as close together as we can: the
    /// counter between two TSC reads, the tightest of a few tries.
    fn sample(&self) -> (u64, u64) {
        let mut best = (u64::MAX, 0, 0);
        for _ in 0..16 {
            let t0 = rdtsc();
            let c = self.counter();
            let t1 = rdtsc();
            let width = t1.wrapping_sub(t0);
            if width < best.0 {
                best = (width, t0 + width / 2, c);
            }
        }
        (best.1, best.2)
    }

    /// Measures the TSC against the counter for about `ms` milliseconds
    /// (spinning); returns (TSC Hz, ns per TSC tick << `shift`).
    pub fn calibrate(&self, ms: u64, shift: u32) -> (u64, u64) {
        let (tsc0, c0) = self.sample();
        let ticks = (ms as u128 * 1_000_000 * FS_PER_NS / self.period_fs as u128) as u64;
        while self.counter().wrapping_sub(c0) < ticks {
            core::hint::spin_loop();
        }
        let (tsc1, c1) = self.sample();
        let fs = c1.wrapping_sub(c0) as u128 * self.period_fs as u128;
        let tsc = (tsc1.wrapping_sub(tsc0) as u128).max(1);
        let hz = fs_to_hz(fs, tsc);
        let mult = (fs << shift) / (tsc * FS_PER_NS);
        (hz, mult.min(u64::MAX as u128) as u64)
    }

    /// Makes the timer interrupt `delta_ns` from now (at least one tick).
    /// Returns false if the counter has already passed the target, i.e.
    /// no interrupt may come: the caller must look at the time again.
    pub fn arm_in(&self, delta_ns: u64) -> bool {
        let ticks = (delta_ns as u128 * FS_PER_NS).div_ceil(self.period_fs as u128);
        let ticks = ticks.clamp(1, 1 << 62) as u64;
        let target = self.counter().wrapping_add(ticks);
        write64(T0_COMPARATOR, target);
        let conf = read32(T0_CONF) as u64;
        write32(T0_CONF, (conf | TN_INT_ENABLE) as u32);
        // Signed distance: still ahead of the counter?
        (target.wrapping_sub(self.counter()) as i64) > 0
    }

    /// No interrupt wanted.
    pub fn disarm(&self) {
        let conf = read32(T0_CONF) as u64;
        write32(T0_CONF, (conf & !TN_INT_ENABLE) as u32);
    }
}

/// TSC ticks per second, from `tsc` ticks over `fs` femtoseconds.
fn fs_to_hz(fs: u128, tsc: u128) -> u64 {
    let hz = tsc * 1_000_000_000_000_000 / fs.max(1);
    hz.min(u64::MAX as u128) as u64
}

/// Makes the `hpet` hardware device through platform: one page of
/// registers at `base` and the line `gsi` (ISA-style: edge, active high).
fn create(base: u64, gsi: u32) -> Result<(), Error> {
    let platform = dev::attach(
        REGISTRY,
        "platform",
        dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA,
    )?;
    let mut spec = abi::HwDeviceSpec {
        name_len: DEVICE.len() as u32,
        mmio_count: 1,
        irq_count: 1,
        ..abi::HwDeviceSpec::default()
    };
    spec.name[..DEVICE.len()].copy_from_slice(DEVICE.as_bytes());
    spec.mmio[0] = HwMmioRange { base, len: 0x1000 };
    spec.irqs[0] = HwIrq { gsi, flags: 0 };
    let created = dev::create_hardware(platform, &spec);
    platform.detach()?;
    created
}
