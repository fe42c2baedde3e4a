//! A system-call fuzzer: forked children make thousands of calls with
//! random numbers and arguments drawn from values that tend to find bugs
//! (zero, ones, page sizes, the kernel half, all ones, real handles and
//! real buffers). The kernel must survive every call, the runner goes on,
//! and once the children are reaped every frame is back.
//!
//! Rules: each child gets a memory limit and a registry handle without
//! RIGHT_SYSTEM (so it cannot reach platform and claim the UART, mempool
//! or hardware devices) but with a device of its own and a client of it, its
//! forks exit at once (no fork bombs), calls that would sleep are made in
//! their non-blocking form, log writes are empty (random text on the
//! serial line could fake a test result), and a child still running at
//! its deadline (say, looping in a handler it installed at a random
//! address) is killed through proc.

use crate::suite::{Fail, Suite};
use crate::util::free_frames;
use crate::{ensure, ensure_eq};
use abi::kdev::MEMPOOL_PORT_SELECT;
use abi::{Error, Sysno};
use core::sync::atomic::{AtomicBool, Ordering};
use libmh::dev::{self, REGISTRY};
use libmh::timer::rdtsc;
use libmh::{process, procs};

/// Rounds per suite run: 256 × `CALLS` is over a million calls.
const ROUNDS: u64 = 256;
/// Hardware devices made by the t_hw group, if they exist.
const HW_DEVICES: [&str; 2] = ["t-rtc", "t-vga"];
const HW_RIGHTS: u32 = dev::RIGHT_READ
    | dev::RIGHT_WRITE
    | dev::RIGHT_DMA
    | dev::RIGHT_IRQ
    | dev::RIGHT_MAP
    | dev::RIGHT_CLONE;
/// What the fuzzing child asks for on the devices it attaches.
const CLIENT_RIGHTS: u32 =
    dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ | dev::RIGHT_DMA | dev::RIGHT_CLONE;
const CALLS: u32 = 4_000;
/// Frames a fuzzing child may hold (4 MiB).
const LIMIT_FRAMES: u64 = 1024;
/// Processes a fuzzing child and its forks may be at once.
const FUZZ_PROCESSES: u32 = 64;
/// TSC ticks a round may take before the child is killed.
const ROUND_TICKS: u64 = 2_000_000_000;

/// Set by `mhtest fuzz-trace <round>`: log every call before making it,
/// to find the one a failing round stops at.
static TRACE: AtomicBool = AtomicBool::new(false);

/// The seed of round `r` (the same in the suite and in `fuzz-trace`).
pub(crate) fn seed_of(r: u64) -> u64 {
    0x9e37_79b9_7f4a_7c15 ^ (r * 0x1234_5678_9abc)
}

/// `mhtest fuzz-range <from> <to>`: more rounds than the suite runs, for
/// hunting; prints the rounds that had to be killed. Ends 0 if the kernel
/// got through them all (which is the point: it must).
pub fn hunt(from: u64, to: u64) -> i32 {
    // Alone in its image, the hunter makes the hardware devices the suite's
    // t_hw group would have made, so the rounds reach them too.
    if let Err(e) = make_hardware_devices() {
        libmh::println!("mhtest: fuzz: no hardware devices: {e}");
    }
    for r in from..to {
        match round(seed_of(r)) {
            Ok(true) => libmh::println!("mhtest: fuzz round {r} ran into its deadline"),
            Ok(false) => {}
            Err(e) => {
                libmh::println!("mhtest: fuzz round {r}: {}", e.as_str());
                return 1;
            }
        }
        while process::try_wait_child().is_ok() {}
    }
    libmh::println!("mhtest: fuzz rounds {from}..{to} done");
    0
}

/// `mhtest fuzz-trace <round>`: replays one round, logging each call.
pub fn trace_round(r: u64) -> i32 {
    TRACE.store(true, Ordering::Relaxed);
    match round(seed_of(r)) {
        Ok(killed) => killed as i32,
        Err(_) => 2,
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A buffer the fuzzer offers as a "good" pointer.
static mut SCRATCH: [u8; 8192] = [0; 8192];

fn argument(rng: &mut Rng) -> u64 {
    let scratch = (&raw mut SCRATCH) as u64;
    match rng.below(16) {
        0 => 0,
        1 => 1,
        2 => rng.below(8),
        3 => rng.below(64),
        4 => 4096,
        5 => u64::MAX,
        6 => 0xffff_8000_0000_0000 + rng.below(1 << 20) * 8,
        7 => 0x0000_7fff_ffff_f000,
        8 => scratch + rng.below(8192),
        9 => scratch,
        // Handle-shaped: slot | generation << 8.
        10 => rng.below(16) | (rng.below(4) << 8),
        11 => abi::layout::USER_HEAP_BASE + rng.below(64) * 4096,
        12 => 1 << rng.below(64),
        13 => i64::MIN as u64,
        14 => rng.below(0x1_0000),
        _ => rng.next(),
    }
}

fn fuzz(seed: u64) -> i32 {
    let mut rng = Rng(seed | 1);
    for _ in 0..CALLS {
        let number = 1 + rng.below(Sysno::ALL.len() as u64 + 3);
        let mut a = [0u64; 6];
        for x in &mut a {
            *x = argument(&mut rng);
        }
        match Sysno::from_raw(number) {
            // Ending or replacing ourselves would end the round early.
            Some(Sysno::Exit) => continue,
            // Writing random bytes (or the boot log read back) to the log
            // would put fake test lines on the serial line the harness
            // reads: keep writes empty, which still checks the pointer.
            Some(Sysno::LogWrite) => a[1] = 0,
            Some(Sysno::WaitChild) => a[1] = abi::syscall::WAIT_NOHANG,
            Some(Sysno::DevPoll) => a[2] = abi::syscall::POLL_NOWAIT,
            // These sleep when their arguments are good: keep only the
            // error paths (a mask naming vector 63, an unknown handle).
            Some(Sysno::IrqWait) => a[0] |= 1 << 63,
            Some(Sysno::PortOutWait) => a[4] |= 1 << 63,
            Some(Sysno::DevReplyPoll) => a[0] = 0xdead,
            _ => {}
        }
        if TRACE.load(Ordering::Relaxed) {
            libmh::println!("fuzz: call {number} {a:#x?}");
        }
        // SAFETY: lying to the kernel is the point; the memory the
        // arguments may name is this child's own or not ours at all.
        let r = unsafe { libmh::raw::syscall6(number, a[0], a[1], a[2], a[3], a[4], a[5]) };
        if Sysno::from_raw(number) == Some(Sysno::Fork) && r == 0 {
            // The forked child: leave at once.
            process::exit(0);
        }
    }
    0
}

/// Runs one fuzzing child to its end (or its deadline); returns whether
/// it had to be killed.
pub(crate) fn round(seed: u64) -> Result<bool, Fail> {
    let fail = |e: Error| Fail::new(format_args!("{e}"));
    // The fuzzer gets a reserve of its own, limited, made with it at fork
    // (so no step of it runs on the runner's, and no limit is set on a
    // child that may already be gone).
    let pool = libmh::mempool::Pool::open().map_err(fail)?;
    let staged = pool.stage_child(Some(LIMIT_FRAMES), Some(FUZZ_PROCESSES));
    let _ = pool.close();
    staged.map_err(fail)?;
    let pid = match process::fork().map_err(fail)? {
        0 => {
            // The hardware devices t_hw made (CMOS ports and IRQ, VGA
            // memory), attached with every right while it still may: the
            // random calls reach port I/O, IRQ routing, device-memory
            // mappings and DMA wiring through them.
            for name in HW_DEVICES {
                let _ = dev::attach(REGISTRY, name, HW_RIGHTS);
            }
            // Then away from platform, mempool and further hardware (no
            // RIGHT_SYSTEM); everything else it may reach.
            let rights = REGISTRY.info().map_or(0, |i| i.rights);
            let _ = REGISTRY.restrict(rights & !dev::RIGHT_SYSTEM);
            // Real device handles for the random ones to hit: a device it
            // serves, a client of it, and klog.
            let name = if seed & 1 == 0 { "fz-even" } else { "fz-odd" };
            let _ = dev::create(dev::REGISTRY, name, 2, 16, 3);
            let _ = dev::attach(REGISTRY, name, CLIENT_RIGHTS);
            let _ = dev::attach(REGISTRY, "klog", CLIENT_RIGHTS);
            process::exit(fuzz(seed) as i64)
        }
        pid => pid,
    };
    let deadline = rdtsc() + ROUND_TICKS;
    let mut killed = false;
    loop {
        match process::try_wait_child() {
            Ok(st) if st.pid == pid => return Ok(killed),
            // An orphaned fork of the child (init adopts orphans, and in
            // the test image init is this runner).
            Ok(_) => continue,
            Err(Error::WouldBlock) => {}
            Err(e) => return Err(fail(e)),
        }
        if !killed && rdtsc() > deadline {
            let h = procs::open(true).map_err(fail)?;
            let _ = procs::kill(h, pid);
            let _ = h.detach();
            killed = true;
        }
        process::yield_now();
    }
}

fn make_hardware_devices() -> Result<(), Error> {
    use abi::HwDeviceSpec;
    use abi::hw::{HwIrq, HwMmioRange, HwPortRange};
    let named = |name: &str| {
        let mut spec = HwDeviceSpec {
            name_len: name.len() as u32,
            ..HwDeviceSpec::default()
        };
        spec.name[..name.len()].copy_from_slice(name.as_bytes());
        spec
    };
    let mut rtc = named(HW_DEVICES[0]);
    rtc.port_count = 1;
    rtc.ports[0] = HwPortRange { base: 0x70, len: 2 };
    rtc.irq_count = 1;
    rtc.irqs[0] = HwIrq { gsi: 8, flags: 0 };
    let mut vga = named(HW_DEVICES[1]);
    vga.mmio_count = 1;
    vga.mmio[0] = HwMmioRange {
        base: 0xb8000,
        len: 0x1000,
    };
    let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA;
    let plat = dev::attach(REGISTRY, "platform", rights)?;
    for spec in [rtc, vga] {
        match dev::create_hardware(plat, &spec) {
            Ok(()) | Err(Error::AlreadyExists) => {}
            Err(e) => {
                let _ = plat.detach();
                return Err(e);
            }
        }
    }
    plat.detach()
}

pub(crate) fn release_hardware_quarantine() -> Result<(), Fail> {
    let fail = |e: Error| Fail::new(format_args!("{e}"));
    let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA;
    let plat = dev::attach(REGISTRY, "platform", rights).map_err(fail)?;
    for name in HW_DEVICES {
        match dev::release_quarantine(plat, name) {
            Ok(()) | Err(Error::NotFound) => {}
            Err(e) => return Err(fail(e)),
        }
    }
    let _ = plat.detach();
    Ok(())
}

/// Frames this process holds (its reserve's use), through mempool.
pub(crate) fn own_frames() -> Result<u64, Fail> {
    let fail = |e: Error| Fail::new(format_args!("{e}"));
    let pool =
        dev::attach(REGISTRY, "mempool", dev::RIGHT_READ | dev::RIGHT_WRITE).map_err(fail)?;
    let used = pool
        .port_out(MEMPOOL_PORT_SELECT, 4, u64::from(process::getpid()))
        .and_then(|()| pool.port_in(abi::kdev::MEMPOOL_PORT_USED, 8));
    let _ = pool.detach();
    used.map_err(fail)
}

/// Heavy (about 20 s of TCG time, most of the suite's): it runs in one of
/// `cargo xtask test`'s passes only, the one on 4 CPUs.
pub fn run(s: &mut Suite) {
    s.run_heavy("fuzz_random_syscalls_never_hurt_the_kernel", || {
        // A first round makes the page tables this runner keeps for good
        // (copy-on-write scratch, stack): not a leak, so not counted.
        crate::util::warm_up();
        round(0x5eed)?;
        while process::wait_child().is_ok() {}
        release_hardware_quarantine()?;
        let before = free_frames() + own_frames()?;
        let mut killed = 0;
        for r in 0..ROUNDS {
            libmh::println!("mhtest: fuzz round {r}");
            killed += round(seed_of(r))? as u32;
        }
        // Orphans of the children (their forks, which exit at once) go to
        // init, which is this runner in the test image: wait for every one
        // of them, so all their frames are back before counting.
        while process::wait_child().is_ok() {}
        // Pages a child exported to a hardware device and never took back
        // are quarantined at its exit (the device might still write them):
        // give them back, as a driver would after resetting its device.
        release_hardware_quarantine()?;
        ensure!(killed < ROUNDS as u32, "every round had to be killed");
        // Count this runner's own frames in: its stack may have grown.
        ensure_eq!(free_frames() + own_frames()?, before);
        Ok(())
    });
}
