//! Hardware devices: made through `platform` from QEMU's real hardware
//! (the CMOS clock's ports and interrupt, VGA text memory), then used:
//! ports inside and outside the ranges, claims that clash, resources the
//! kernel keeps, IRQ delivery and ownership, device memory, DMA wiring and
//! the quarantine of pages still exported at exit.

use crate::suite::{Fail, Suite};
use crate::util::{free_frames, in_child, peek, poke};
use crate::{ensure, ensure_eq};
use abi::hw::{HW_IRQ_ISA, HW_IRQ_LEVEL, HwIrq, HwMmioRange, HwPortRange};
use abi::kdev::*;
use abi::{Error, HwDeviceSpec};
use libmh::dev::{self, Handle, REGISTRY};
use libmh::{process, vm};

const RTC: &str = "t-rtc";
const ALL: u32 = dev::RIGHT_READ
    | dev::RIGHT_WRITE
    | dev::RIGHT_DMA
    | dev::RIGHT_IRQ
    | dev::RIGHT_MAP
    | dev::RIGHT_CLONE;
const V: u32 = 40;
const AREA: u64 = 0x5300_0000_0000;

fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

fn spec(name: &str) -> HwDeviceSpec {
    let mut s = HwDeviceSpec {
        name_len: name.len() as u32,
        ..HwDeviceSpec::default()
    };
    s.name[..name.len()].copy_from_slice(name.as_bytes());
    s
}

fn ports(name: &str, base: u16, len: u16) -> HwDeviceSpec {
    let mut s = spec(name);
    s.port_count = 1;
    s.ports[0] = HwPortRange { base, len };
    s
}

fn cmos_read(h: Handle, reg: u64) -> Result<u64, Error> {
    h.port_out(0x70, 1, reg)?;
    h.port_in(0x71, 1)
}

fn cmos_write(h: Handle, reg: u64, v: u64) -> Result<(), Error> {
    h.port_out(0x70, 1, reg)?;
    h.port_out(0x71, 1, v)
}

/// A handle to the CMOS clock device the tests below create (for other
/// tests that need a device without an I/O MMU).
pub fn rtc_handle() -> Result<Handle, Error> {
    dev::attach(REGISTRY, RTC, ALL)
}

pub fn run(s: &mut Suite) {
    let plat = match dev::attach(
        REGISTRY,
        "platform",
        dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA | dev::RIGHT_CLONE,
    ) {
        Ok(h) => h,
        Err(e) => {
            s.run("platform_attaches", || Err(fail(e)));
            return;
        }
    };

    s.run("platform_creates_a_hardware_device", || {
        let mut rtc = ports(RTC, 0x70, 2);
        rtc.irq_count = 1;
        // ISA IRQ 8, routed by the kernel as the MADT says (GSI 8 here).
        rtc.irqs[0] = HwIrq {
            gsi: 8,
            flags: HW_IRQ_ISA,
        };
        ensure_eq!(dev::create_hardware(plat, &rtc), Ok(()));
        let h = dev::attach(REGISTRY, RTC, ALL).map_err(fail)?;
        let info = h.info().map_err(fail)?;
        ensure_eq!((info.kind, info.irq_lines), (dev::DEVICE_KIND_HARDWARE, 1));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("hardware_ports_work_inside_their_ranges_only", || {
        let h = dev::attach(REGISTRY, RTC, ALL).map_err(fail)?;
        // Status register A of the CMOS clock: the divider bits are set.
        let a = cmos_read(h, 0x0a).map_err(fail)?;
        ensure!(a & 0x70 != 0 && a < 0x100, "register A {a:#x}");
        ensure_eq!(h.port_in(0x72, 1), Err(Error::AccessDenied));
        ensure_eq!(h.port_in(0x6f, 1), Err(Error::AccessDenied));
        ensure_eq!(h.port_in(0x70, 4), Err(Error::AccessDenied));
        ensure_eq!(h.port_in(0x71, 2), Err(Error::InvalidArgument));
        ensure_eq!(h.port_in(0x70, 8), Err(Error::InvalidArgument));
        ensure_eq!(h.port_out(0x20, 1, 0xff), Err(Error::AccessDenied));
        ensure_eq!(h.port_in(u32::MAX, 1), Err(Error::AccessDenied));
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("clashing_claims_are_busy", || {
        ensure_eq!(
            dev::create_hardware(plat, &ports("t-clash", 0x71, 1)),
            Err(Error::Busy)
        );
        let mut irq = spec("t-clash");
        irq.irq_count = 1;
        // The RTC's ISA IRQ 8 was claimed as the GSI it routes to.
        irq.irqs[0] = HwIrq { gsi: 8, flags: 0 };
        ensure_eq!(dev::create_hardware(plat, &irq), Err(Error::Busy));
        ensure_eq!(
            dev::create_hardware(plat, &ports(RTC, 0x80, 1)),
            Err(Error::AlreadyExists)
        );
        Ok(())
    });

    s.run("kernel_resources_and_ram_are_refused", || {
        ensure_eq!(
            dev::create_hardware(plat, &ports("t-pic", 0x20, 2)),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            dev::create_hardware(plat, &ports("t-exit", 0xf4, 1)),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            dev::create_hardware(plat, &ports("t-pit", 0x40, 4)),
            Err(Error::AccessDenied)
        );
        let mut ram = spec("t-ram");
        ram.mmio_count = 1;
        ram.mmio[0] = HwMmioRange {
            base: 0x20_0000,
            len: 0x1000,
        };
        ensure_eq!(dev::create_hardware(plat, &ram), Err(Error::AccessDenied));
        ram.mmio[0] = HwMmioRange {
            base: 0xfee0_0000,
            len: 0x1000,
        };
        ensure_eq!(dev::create_hardware(plat, &ram), Err(Error::AccessDenied));
        // The test image boots on q35: the I/O MMU's registers (from the
        // DMAR) and the PCI Express configuration window (from the MCFG)
        // are the kernel's; a driver holding them could undo the isolation.
        for (base, len) in [
            (0xfed9_0000, 0x1000),
            (0xb000_0000, 0x1000),
            (0xbfff_f000, 0x1000),
        ] {
            ram.mmio[0] = HwMmioRange { base, len };
            ensure_eq!(dev::create_hardware(plat, &ram), Err(Error::AccessDenied));
        }
        ram.mmio[0] = HwMmioRange {
            base: 0xb8010,
            len: 0x1000,
        };
        ensure_eq!(
            dev::create_hardware(plat, &ram),
            Err(Error::InvalidArgument)
        );
        let mut irq = spec("t-irq");
        irq.irq_count = 1;
        irq.irqs[0] = HwIrq { gsi: 200, flags: 0 };
        ensure_eq!(
            dev::create_hardware(plat, &irq),
            Err(Error::InvalidArgument)
        );
        // An ISA line is an ISA IRQ (0-15), and takes its flags from the
        // firmware.
        for bad in [
            HwIrq {
                gsi: 16,
                flags: HW_IRQ_ISA,
            },
            HwIrq {
                gsi: 3,
                flags: HW_IRQ_ISA | HW_IRQ_LEVEL,
            },
            HwIrq { gsi: 3, flags: 8 },
        ] {
            irq.irqs[0] = bad;
            ensure_eq!(
                dev::create_hardware(plat, &irq),
                Err(Error::InvalidArgument)
            );
        }
        ensure_eq!(
            dev::create_hardware(plat, &spec("t-empty")),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            dev::create_hardware(plat, &ports("", 0x80, 1)),
            Err(Error::InvalidArgument)
        );
        Ok(())
    });

    s.run("platform_port_refusals", || {
        let spec = ports("t-x", 0x80, 1);
        let ptr = &raw const spec as u64;
        ensure_eq!(
            plat.port_out(PLATFORM_PORT_CREATE, 8, ptr),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            plat.port_out(PLATFORM_PORT_CREATE, 4, 0),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(plat.port_out(9, 8, 0), Err(Error::InvalidArgument));
        ensure_eq!(plat.port_in(PLATFORM_PORT_QUARANTINED, 8), Ok(0));
        ensure_eq!(
            dev::release_quarantine(plat, "no-such"),
            Err(Error::NotFound)
        );
        ensure_eq!(
            dev::release_quarantine(plat, "bootfs"),
            Err(Error::NotSupported)
        );
        Ok(())
    });

    s.run("hardware_irq_reaches_its_owner_only", || {
        let h = dev::attach(REGISTRY, RTC, ALL).map_err(fail)?;
        ensure_eq!(h.irq_ack(0), Err(Error::NotFound));
        ensure_eq!(h.irq_map(1, V), Err(Error::InvalidArgument));
        ensure_eq!(h.irq_map(0, 63), Err(Error::InvalidArgument));
        ensure_eq!(h.irq_map(0, V), Ok(()));
        let other = dev::attach(REGISTRY, RTC, ALL).map_err(fail)?;
        ensure_eq!(other.irq_map(0, V), Err(Error::Busy));
        // The clock's periodic interrupt at 1024 Hz (rate 6), then off.
        let a = cmos_read(h, 0x0a).map_err(fail)?;
        cmos_write(h, 0x0a, (a & 0xf0) | 6).map_err(fail)?;
        let b = cmos_read(h, 0x0b).map_err(fail)?;
        cmos_write(h, 0x0b, b | 0x40).map_err(fail)?;
        let _ = cmos_read(h, 0x0c);
        let got = process::irq_wait(1 << V);
        cmos_write(h, 0x0b, b & !0x40).map_err(fail)?;
        let _ = cmos_read(h, 0x0c);
        ensure_eq!(got, Ok(1 << V));
        ensure_eq!(h.irq_ack(0), Ok(()));
        // Detaching frees the line for someone else.
        ensure_eq!(h.detach(), Ok(()));
        ensure_eq!(other.irq_map(0, V), Ok(()));
        ensure_eq!(other.detach(), Ok(()));
        Ok(())
    });

    s.run(
        "an_io_apic_line_goes_to_the_cpu_its_owner_is_bound_to",
        || {
            let (_, cpus) = process::cpu();
            let last = cpus.saturating_sub(1);
            ensure_eq!(process::set_affinity(0, 1 << last), Ok(()));
            let took = rtc_tick_cpu();
            let _ = process::set_affinity(0, 0);
            ensure_eq!(took?, (u64::from(last), u64::from(last)));
            Ok(())
        },
    );

    s.run("hardware_devices_need_the_system_right", || {
        let st = in_child(|| {
            let Ok(info) = REGISTRY.info() else { return 1 };
            if REGISTRY.restrict(info.rights & !dev::RIGHT_SYSTEM).is_err() {
                return 2;
            }
            let denied = dev::attach(REGISTRY, RTC, dev::RIGHT_READ).map(|_| ());
            (denied != Err(Error::AccessDenied)) as i32 * 3
        })?;
        ensure_eq!(st.code, 0);
        let h = dev::attach(REGISTRY, RTC, dev::RIGHT_READ).map_err(fail)?;
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    s.run("device_memory_maps_from_its_ranges_only", || {
        let mut vga = spec("t-vga");
        vga.mmio_count = 1;
        vga.mmio[0] = HwMmioRange {
            base: 0xb8000,
            len: 0x1000,
        };
        ensure_eq!(dev::create_hardware(plat, &vga), Ok(()));
        let h = dev::attach(REGISTRY, "t-vga", ALL).map_err(fail)?;
        ensure_eq!(h.iomap(AREA, 0xb8000, 0x1000), Ok(()));
        poke(AREA + 160, b'M');
        ensure_eq!(peek(AREA + 160), b'M');
        ensure_eq!(h.iomap(AREA, 0xb8000, 0x1000), Err(Error::AlreadyExists));
        ensure_eq!(
            h.iomap(AREA + 0x1000, 0xb9000, 0x1000),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            h.iomap(AREA + 0x1000, 0xb7000, 0x2000),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            h.iomap(AREA + 0x1001, 0xb8000, 0x1000),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            h.iomap(0xffff_8000_0000_0000, 0xb8000, 0x1000),
            Err(Error::BadAddress)
        );
        // Device memory is not a page a process can unmap or move itself.
        ensure_eq!(vm::unmap(AREA, 0x1000), Err(Error::Busy));
        ensure_eq!(h.iounmap(AREA + 0x10_0000, 0x1000), Err(Error::NotFound));
        ensure_eq!(h.iounmap(AREA, 0x1000), Ok(()));
        let no_map = dev::attach(REGISTRY, "t-vga", dev::RIGHT_READ).map_err(fail)?;
        ensure_eq!(
            no_map.iomap(AREA, 0xb8000, 0x1000),
            Err(Error::AccessDenied)
        );
        ensure_eq!((h.detach(), no_map.detach()), (Ok(()), Ok(())));
        Ok(())
    });

    s.run("dma_export_wires_the_page", || {
        let h = dev::attach(REGISTRY, RTC, ALL).map_err(fail)?;
        ensure_eq!(vm::map(AREA, 0x2000, vm::PROT_RW), Ok(()));
        // SAFETY: the two pages were just mapped read-write.
        let buf = unsafe { core::slice::from_raw_parts_mut((AREA + 0x10) as *mut u8, 64) };
        let iova = h.export(buf).map_err(fail)?;
        ensure!(
            iova & 0xfff == 0x10 && iova >= 0x10_0000,
            "iova {iova:#x} is not a physical address"
        );
        ensure_eq!(vm::unmap(AREA, 0x1000), Err(Error::Busy));
        ensure_eq!(vm::protect(AREA, 0x1000, vm::PROT_READ), Err(Error::Busy));
        // SAFETY: as above; this slice crosses into the second page.
        let across = unsafe { core::slice::from_raw_parts_mut((AREA + 0xff0) as *mut u8, 32) };
        ensure_eq!(h.export(across), Err(Error::InvalidArgument));
        ensure_eq!(h.unexport(iova + 1), Err(Error::NotFound));
        ensure_eq!(h.unexport(iova), Ok(()));
        ensure_eq!(vm::unmap(AREA, 0x2000), Ok(()));
        let no_dma = dev::attach(REGISTRY, RTC, dev::RIGHT_READ).map_err(fail)?;
        let mut small = [0u8; 8];
        ensure_eq!(no_dma.export(&mut small), Err(Error::AccessDenied));
        ensure_eq!((h.detach(), no_dma.detach()), (Ok(()), Ok(())));
        Ok(())
    });

    s.run("exit_with_exports_quarantines_the_frames", || {
        let before = free_frames();
        let st = in_child(|| {
            let Ok(h) = dev::attach(REGISTRY, RTC, ALL) else {
                return 1;
            };
            if vm::map(AREA, 0x1000, vm::PROT_RW).is_err() {
                return 2;
            }
            // SAFETY: just mapped.
            let buf = unsafe { core::slice::from_raw_parts_mut(AREA as *mut u8, 64) };
            if h.export(buf).is_err() {
                return 3;
            }
            0
        })?;
        ensure_eq!(st.code, 0);
        ensure_eq!(plat.port_in(PLATFORM_PORT_QUARANTINED, 8), Ok(1));
        ensure_eq!(free_frames(), before - 1);
        ensure_eq!(dev::release_quarantine(plat, RTC), Ok(()));
        ensure_eq!(plat.port_in(PLATFORM_PORT_QUARANTINED, 8), Ok(0));
        ensure_eq!(free_frames(), before);
        Ok(())
    });

    s.run("exec_quarantines_exports_of_kept_handles", || {
        let before = free_frames();
        let st = in_child(|| {
            let Ok(h) = dev::attach(REGISTRY, RTC, ALL) else {
                return 1;
            };
            if vm::map(AREA, 0x1000, vm::PROT_RW).is_err() {
                return 2;
            }
            // SAFETY: just mapped.
            let buf = unsafe { core::slice::from_raw_parts_mut(AREA as *mut u8, 64) };
            if h.export(buf).is_err() {
                return 3;
            }
            // The new program keeps the handle (port 0 is not the clock's:
            // AccessDenied, not BadHandle) but not the old address space.
            let mut code = crate::t_exec::PORT_IN_CODE;
            code[1..5].copy_from_slice(&(h.0 as u32).to_le_bytes());
            let image = crate::t_exec::tiny_elf_with(&code);
            crate::helpers::report_exec_failure(process::exec(&image, "kept"))
        })?;
        ensure_eq!(st.code, Error::AccessDenied.to_ret() as i64);
        ensure_eq!(plat.port_in(PLATFORM_PORT_QUARANTINED, 8), Ok(1));
        ensure_eq!(dev::release_quarantine(plat, RTC), Ok(()));
        ensure_eq!(free_frames(), before);
        Ok(())
    });

    s.run("fork_inherits_a_bare_hardware_handle", || {
        let h = dev::attach(REGISTRY, RTC, ALL).map_err(fail)?;
        ensure_eq!(h.irq_map(0, V), Ok(()));
        let st = in_child(|| {
            let ports_ok = cmos_read(h, 0x0a).is_ok();
            // The line stays the parent's.
            let line_is_parents = h.irq_ack(0) == Err(Error::NotFound);
            (!ports_ok) as i32 | ((!line_is_parents) as i32) << 1
        })?;
        ensure_eq!(st.code, 0);
        ensure_eq!(h.detach(), Ok(()));
        Ok(())
    });

    let _ = plat.detach();
}

/// Maps the clock's line (the caller bound to a CPU first), takes one
/// periodic interrupt: (the CPU the kernel routed the line to, the CPU
/// that took the interrupt).
fn rtc_tick_cpu() -> Result<(u64, u64), Fail> {
    use abi::hw::{HW_PORT_IRQ_CPU, HW_PORT_IRQ_LAST_CPU};
    let h = dev::attach(REGISTRY, RTC, ALL).map_err(fail)?;
    let tick = (|| {
        h.irq_map(0, V).map_err(fail)?;
        let routed = h.port_in(HW_PORT_IRQ_CPU, 8).map_err(fail)?;
        let a = cmos_read(h, 0x0a).map_err(fail)?;
        cmos_write(h, 0x0a, (a & 0xf0) | 6).map_err(fail)?;
        let b = cmos_read(h, 0x0b).map_err(fail)?;
        cmos_write(h, 0x0b, b | 0x40).map_err(fail)?;
        let _ = cmos_read(h, 0x0c);
        // A vector left pending by an earlier test may end the first wait
        // before any tick of this mapping: wait until the kernel records
        // one (a few ticks at most at 1024 Hz).
        let mut took = abi::hw::HW_IRQ_NO_CPU;
        for _ in 0..100 {
            let got = process::irq_wait(1 << V);
            let _ = cmos_read(h, 0x0c);
            let _ = h.irq_ack(0);
            ensure_eq!(got, Ok(1 << V));
            took = h.port_in(HW_PORT_IRQ_LAST_CPU, 8).map_err(fail)?;
            if took != abi::hw::HW_IRQ_NO_CPU {
                break;
            }
        }
        cmos_write(h, 0x0b, b & !0x40).map_err(fail)?;
        let _ = cmos_read(h, 0x0c);
        Ok((routed, took))
    })();
    let _ = h.detach();
    tick
}
