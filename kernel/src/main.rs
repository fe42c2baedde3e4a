//! The MH microkernel.
//!
//! Boot order: serial and log; descriptor tables and CPU features; the boot
//! loader's information (parsed defensively); ACPI (while the boot page
//! tables still map the first 4 GiB); the frame table; the kernel's own page
//! tables; the interrupt controllers and the preemption timer; then every
//! boot module becomes a process (the first is init, the parent of the
//! others) and the scheduler starts.
//!
//! Rules: nothing a user process does may panic the kernel; a panic is a
//! kernel bug and ends the run with `abi::power::EXIT_KERNEL_PANIC`.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod arch;
mod cpus;
mod exit_work;
mod firmware;
mod hw;
mod iommu;
mod log;
mod mm;
mod pci;
mod sched;
mod selftest;
mod trap;

use arch::phys::{self, BootPhysMemory};
use arch::{boot, cpu, entry, idt, ioapic, lapic, pic};
use arrayvec::ArrayVec;
use kernel_core::bootinfo::{self, BootInfo};

#[unsafe(no_mangle)]
extern "C" fn kmain() -> ! {
    log::init();
    let record = boot::boot_record();
    cpus::init_boot_cpu();
    idt::init();
    pic::disable();
    let features = cpu::init();
    entry::init_syscall();

    let boot_info =
        match bootinfo::parse_multiboot1(&BootPhysMemory, record.magic, record.info_phys) {
            Ok(info) => info,
            Err(e) => panic!("unusable boot information: {e}"),
        };
    // ACPI tables sit in reserved RAM that the final direct map leaves out:
    // read them while the boot tables still map the first 4 GiB.
    let tables = firmware::Tables::read();

    let mut reserved: ArrayVec<(u64, u64), 40> = ArrayVec::new();
    let sections = boot::kernel_sections();
    reserved.push((
        boot::image_phys(sections.text.0) & !0xfffff,
        boot::image_phys(sections.data.1),
    ));
    for m in &boot_info.modules {
        reserved.push((m.start, m.end));
    }
    let stats = match mm::init(&boot_info, &reserved, features.nx) {
        Ok(stats) => stats,
        Err(e) => panic!("cannot manage memory: {e}"),
    };

    tables.report();
    let madt = tables.madt.as_ref();
    let lapic_addr = madt.map_or(0xfee0_0000, |m| m.local_apic_addr);
    let mut ioapic_lines = 0;
    if let Some(m) = madt {
        for info in &m.io_apics {
            match ioapic::IoApic::init(info) {
                Ok(a) => {
                    kprintln!(
                        "[kernel] I/O APIC {} at {:#x}: GSIs {}..{}, all masked",
                        info.id,
                        info.addr,
                        a.gsi_base,
                        a.gsi_base + a.lines
                    );
                    ioapic_lines += a.lines;
                    let _ = ioapic::IOAPICS.lock().try_push(a);
                }
                Err(e) => kprintln!("[kernel] I/O APIC at {:#x} unusable: {e:?}", info.addr),
            }
        }
    }
    firmware::record_reserved(&boot_info, lapic_addr, &tables);
    if let Some(dmar) = &tables.dmar {
        iommu::init(dmar);
    }
    pci::survey(tables.mcfg.as_ref());
    let timer = match lapic::init(lapic_addr) {
        Ok(t) => t,
        Err(e) => panic!("cannot map the local APIC: {e:?}"),
    };
    // The units' fault events go to this CPU's local APIC, now up.
    iommu::enable_fault_events();

    record_modules(&boot_info);
    if let Err(e) = kernel_core::devices::init(&mut sched::SCHED.lock().devices) {
        panic!("cannot register the kernel devices: {e}");
    }
    let apic_ids = madt.map(|m| m.apic_ids.clone()).unwrap_or_default();
    cpus::start_others(&apic_ids);
    let loaded = start_modules(&boot_info);
    let now = cpu::rdtsc();
    kprintln!(
        "MH kernel: {} MiB RAM, {} MiB free, init started, {} of {} modules in bootfs, NX={} SMEP={} SMAP={}",
        stats.ram_bytes >> 20,
        (mm::frames::free_count() as u64 * 4096) >> 20,
        loaded,
        boot_info.modules.len(),
        features.nx,
        features.smep,
        features.smap,
    );
    kprintln!(
        "MH kernel: LAPIC timer {} ticks/ms ({}), TSC {} MHz (estimate), {} I/O APIC lines, tick {} Hz",
        timer.lapic_ticks_per_ms,
        if timer.calibrated {
            "calibrated with the PIT"
        } else {
            "PIT gate absent: assumed"
        },
        timer.tsc_per_ms / 1000,
        ioapic_lines,
        lapic::TICK_HZ,
    );
    kprintln!(
        "MH kernel: kernel entry to first user instruction: {} us ({} TSC ticks)",
        lapic::tsc_to_us(now - record.entry_tsc),
        now - record.entry_tsc,
    );
    selftest::run(boot_info.cmdline.as_str());
    if loaded == 0 {
        panic!("no boot module could be started");
    }
    sched::start()
}

/// Keeps the module list for bootfs.
fn record_modules(info: &BootInfo) {
    hw::MODULES.call_once(|| {
        info.modules
            .iter()
            .map(|m| kernel_core::machine::Module {
                phys: m.start,
                len: m.end - m.start,
                cmdline: m.cmdline,
            })
            .collect()
    });
}

/// Starts the first boot module as init; the others wait in bootfs for
/// init to start them (fork + exec). Returns how many started (0 or 1).
fn start_modules(info: &BootInfo) -> usize {
    let Some(module) = info.modules.first() else {
        return 0;
    };
    let cmdline = module.cmdline.as_str();
    let len = (module.end - module.start) as usize;
    // SAFETY: the module's frames are reserved (never allocated) and the
    // direct map covers them (mm::init maps every module).
    let image = unsafe { core::slice::from_raw_parts(phys::to_virt(module.start), len) };
    match sched::SCHED.lock().start_init(image, cmdline) {
        Ok(pid) => {
            kprintln!("[kernel] module 0 '{cmdline}' is pid {pid}");
            1
        }
        Err(e) => panic!("init ('{cmdline}') cannot start: {e}"),
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    log::force_write(format_args!("\nKERNEL PANIC: {info}\n"));
    let rbp: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack)) };
    arch::fault::backtrace(&log::force_write, 0, rbp);
    cpu::power_off(abi::power::EXIT_KERNEL_PANIC)
}
