//! PCI functions claimed through `platform`, and DMA through the I/O MMU,
//! driven with QEMU's `edu` device (hw/misc/edu.c: a 1 MiB BAR 0 whose
//! registers program a DMA engine between RAM and a 4 KiB buffer inside
//! the device at device address 0x40000).
//!
//! The tests act as a driver that means harm: after each DMA they check
//! that exactly the exported pages changed, that DMA to anything else
//! reached nothing, and that the kernel never let the driver touch what
//! makes the isolation (BARs, bus mastering, MSI, other functions).

use crate::suite::{Fail, Suite};
use crate::util::{free_frames, in_child};
use crate::{ensure, ensure_eq};
use abi::Error;
use abi::kdev::*;
use libmh::dev::{self, Handle, REGISTRY};
use libmh::pci::{self, Address, Bar, Function};
use libmh::timer::rdtsc;
use libmh::{process, vm};

pub(crate) const EDU: &str = "t-edu";
pub(crate) const ALL: u32 = dev::RIGHT_READ
    | dev::RIGHT_WRITE
    | dev::RIGHT_DMA
    | dev::RIGHT_IRQ
    | dev::RIGHT_MAP
    | dev::RIGHT_CLONE;
/// Where the tests map edu's registers and their buffers.
const REGS: u64 = 0x5400_0000_0000;
const BUFS: u64 = 0x5400_0010_0000;
pub(crate) const PAGE: u64 = 4096;
/// The vector the tests take DMA faults on.
pub(crate) const FAULT_VECTOR: u32 = 41;
/// The vector the tests take edu's MSI on.
pub(crate) const MSI_VECTOR: u32 = 42;
/// A vector no line is mapped to, which a forgery would have to raise.
pub(crate) const FORGED_VECTOR: u32 = 43;

/// edu's registers (offsets in BAR 0).
const EDU_ID: usize = 0x00;
const EDU_LIVENESS: usize = 0x04;
const EDU_DMA_SRC: usize = 0x80;
const EDU_DMA_DST: usize = 0x88;
const EDU_DMA_COUNT: usize = 0x90;
const EDU_DMA_CMD: usize = 0x98;
const EDU_CMD_START: u64 = 1;
const EDU_CMD_TO_RAM: u64 = 2;
/// edu's buffer, in its own address space.
pub(crate) const EDU_BUFFER: u64 = 0x4_0000;
/// Bytes per DMA: QEMU 7.2's edu stops the machine for a transfer that
/// fills its whole 4 KiB buffer (an off-by-one in its range check), so
/// the tests move half pages.
const DMA: u64 = 2048;
const DMA_BYTES: usize = DMA as usize;

pub(crate) fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

pub(crate) fn reg32(at: usize) -> *mut u32 {
    (REGS as usize + at) as *mut u32
}

pub(crate) fn reg64(at: usize) -> *mut u64 {
    (REGS as usize + at) as *mut u64
}

/// The edu function's registers, mapped at `REGS`.
pub(crate) struct Edu {
    pub(crate) h: Handle,
}

impl Edu {
    pub(crate) fn open() -> Result<Edu, Fail> {
        let h = dev::attach(REGISTRY, EDU, ALL).map_err(fail)?;
        let Bar::Mem { base, .. } = Function(h).bar(0).map_err(fail)? else {
            return Err(Fail::new(format_args!("edu's BAR 0 is not memory")));
        };
        h.iomap(REGS, base, PAGE).map_err(fail)?;
        Ok(Edu { h })
    }

    pub(crate) fn close(self) -> Result<(), Fail> {
        self.h.iounmap(REGS, PAGE).map_err(fail)?;
        self.h.detach().map_err(fail)
    }

    /// Runs one DMA of `len` bytes and waits for edu to finish it.
    pub(crate) fn dma(&self, src: u64, dst: u64, len: u64, to_ram: bool) -> Result<(), Fail> {
        // SAFETY: REGS maps edu's register page (iomap above); the
        // registers take 8-byte accesses from 0x80 on.
        unsafe {
            reg64(EDU_DMA_SRC).write_volatile(src);
            reg64(EDU_DMA_DST).write_volatile(dst);
            reg64(EDU_DMA_COUNT).write_volatile(len);
            let dir = if to_ram { EDU_CMD_TO_RAM } else { 0 };
            reg64(EDU_DMA_CMD).write_volatile(EDU_CMD_START | dir);
        }
        // edu moves the data 100 ms (of virtual time) later; 2^34 cycles
        // is several seconds at any clock rate QEMU gives.
        let start = rdtsc();
        // SAFETY: as above.
        while unsafe { reg64(EDU_DMA_CMD).read_volatile() } & EDU_CMD_START != 0 {
            if rdtsc().wrapping_sub(start) > 1 << 34 {
                return Err(Fail::new(format_args!("edu's DMA did not finish")));
            }
            process::yield_now();
        }
        Ok(())
    }

    /// Copies `DMA` bytes from RAM at `src` into edu and back out to
    /// `dst`.
    pub(crate) fn copy(&self, src: u64, dst: u64) -> Result<(), Fail> {
        self.dma(src, EDU_BUFFER, DMA, false)?;
        self.dma(EDU_BUFFER, dst, DMA, true)
    }
}

/// `pages` fresh pages at BUFS + `at`, each filled with its own byte.
pub(crate) fn buffers(at: u64, pages: u64, fill: u8) -> Result<&'static mut [u8], Fail> {
    let va = BUFS + at;
    vm::map(va, pages * PAGE, vm::PROT_RW).map_err(fail)?;
    // SAFETY: just mapped read-write, and only this slice names it.
    let b = unsafe { core::slice::from_raw_parts_mut(va as *mut u8, (pages * PAGE) as usize) };
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = fill.wrapping_add((i / PAGE as usize) as u8);
    }
    Ok(b)
}

pub(crate) fn unmap(at: u64, pages: u64) -> Result<(), Fail> {
    vm::unmap(BUFS + at, pages * PAGE).map_err(fail)
}

pub fn run(s: &mut Suite) {
    let plat = match dev::attach(
        REGISTRY,
        "platform",
        dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA | dev::RIGHT_CLONE,
    ) {
        Ok(h) => h,
        Err(e) => {
            s.run("platform_attaches_for_pci", || Err(fail(e)));
            return;
        }
    };
    let mut edu_at = None;

    s.run("pci_functions_are_found_through_platform", || {
        let mut host_bridge = false;
        let mut functions = 0;
        pci::scan(plat, 0, &mut |at, id| {
            functions += 1;
            host_bridge |= at == Address::new(0, 0, 0) && (id.vendor, id.class) == (0x8086, 6);
            if (id.vendor, id.device) == (0x1234, 0x11e8) {
                edu_at = Some(at);
            }
        })
        .map_err(fail)?;
        ensure!(
            host_bridge,
            "no host bridge at 00:00.0 ({functions} functions)"
        );
        ensure!(edu_at.is_some(), "no edu among {functions} functions");
        // Nothing answers at a free slot; the arguments are checked.
        ensure_eq!(pci::identify(plat, Address::new(0, 0x1e, 0)), Ok(None));
        ensure_eq!(
            pci::identify(plat, Address::new(0, 32, 0)),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            plat.port_out(PLATFORM_PORT_PCI_SELECT, 8, 1 << 32),
            Err(Error::InvalidArgument)
        );
        Ok(())
    });
    let Some(edu_at) = edu_at else {
        return;
    };

    s.run("bridges_and_configuration_ports_stay_the_kernels", || {
        ensure_eq!(
            pci::claim(plat, "t-host", Address::new(0, 0, 0)),
            Err(Error::AccessDenied)
        );
        ensure_eq!(
            pci::claim(plat, "t-none", Address::new(0, 0x1e, 0)),
            Err(Error::NotFound)
        );
        let mut cf8 = abi::HwDeviceSpec {
            name_len: 5,
            port_count: 1,
            ..abi::HwDeviceSpec::default()
        };
        cf8.name[..5].copy_from_slice(b"t-cf8");
        cf8.ports[0] = abi::hw::HwPortRange {
            base: 0xcf8,
            len: 8,
        };
        ensure_eq!(dev::create_hardware(plat, &cf8), Err(Error::AccessDenied));
        Ok(())
    });

    s.run("a_pci_function_is_claimed_once", || {
        let before = free_frames();
        ensure_eq!(pci::claim(plat, EDU, edu_at), Ok(()));
        ensure_eq!(pci::claim(plat, EDU, edu_at), Err(Error::AlreadyExists));
        ensure_eq!(pci::claim(plat, "t-edu2", edu_at), Err(Error::Busy));
        ensure_eq!(
            pci::claim(plat, "bad name", edu_at),
            Err(Error::InvalidArgument)
        );
        // Its domain's root table, at least.
        ensure!(free_frames() < before, "the claim took no frame");
        let h = dev::attach(REGISTRY, EDU, ALL).map_err(fail)?;
        ensure_eq!(h.info().map(|i| i.kind), Ok(dev::DEVICE_KIND_HARDWARE));
        ensure_eq!((h.detach(), Ok::<(), Error>(())), (Ok(()), Ok(())));
        Ok(())
    });

    s.run("a_claimed_function_shows_its_bars_and_domain", || {
        let f = Function(dev::attach(REGISTRY, EDU, ALL).map_err(fail)?);
        let Bar::Mem { base, len, .. } = f.bar(0).map_err(fail)? else {
            return Err(Fail::new(format_args!("BAR 0 is {:?}", f.bar(0))));
        };
        ensure!(
            base != 0 && base % PAGE == 0 && len == 1 << 20,
            "BAR 0 {base:#x}+{len:#x}"
        );
        ensure_eq!(f.bar(1), Ok(Bar::None));
        ensure_eq!(f.bar(6), Err(Error::InvalidArgument));
        ensure_eq!(f.translated(), Ok(true));
        ensure_eq!(
            f.0.port_in(abi::hw::HW_PORT_PCI_ADDRESS, 8),
            Ok(edu_at.word())
        );
        // Only memory the BAR holds can be mapped.
        ensure_eq!(f.0.iomap(REGS, base + len, PAGE), Err(Error::AccessDenied));
        ensure_eq!(f.0.detach(), Ok(()));
        Ok(())
    });

    s.run(
        "configuration_access_is_limited_to_the_claimed_function",
        || {
            let f = Function(dev::attach(REGISTRY, EDU, ALL).map_err(fail)?);
            ensure_eq!(f.config_read(0, 4), Ok(0x11e8_1234));
            // Bus mastering is on while a driver holds the function.
            let command = f.config_read(4, 2).map_err(fail)?;
            ensure!(
                command & 0x6 == 0x6,
                "command {command:#x}: memory decode and bus master"
            );
            // The driver may set INTx disable and nothing else of the command
            // register; writes to IDs, BARs and the MSI capability are refused.
            ensure_eq!(f.config_write(4, 2, 0x0400), Ok(()));
            ensure_eq!(f.config_read(4, 2), Ok(command | 0x0400));
            ensure_eq!(f.config_write(4, 2, command), Ok(()));
            ensure_eq!(f.config_read(4, 2), Ok(command));
            let bar0 = f.config_read(0x10, 4).map_err(fail)?;
            ensure_eq!(
                f.config_write(0x10, 4, 0xffff_ffff),
                Err(Error::AccessDenied)
            );
            ensure_eq!(f.config_read(0x10, 4), Ok(bar0));
            ensure_eq!(f.config_write(0, 2, 0), Err(Error::AccessDenied));
            ensure_eq!(f.config_write(0x40, 4, 0), Err(Error::AccessDenied), "MSI");
            ensure_eq!(
                f.config_write(0x100, 4, 0),
                Err(Error::AccessDenied),
                "extended space"
            );
            // Accesses are aligned, sized and inside the window.
            ensure_eq!(f.config_read(1, 2), Err(Error::InvalidArgument));
            ensure_eq!(f.config_read(0, 8), Err(Error::InvalidArgument));
            ensure_eq!(
                f.0.port_in(abi::hw::HW_PORT_PCI_CONFIG + 0x1000, 4),
                Err(Error::InvalidArgument)
            );
            ensure_eq!(
                f.0.port_out(abi::hw::HW_PORT_PCI_BAR_BASE, 8, 0),
                Err(Error::InvalidArgument)
            );
            ensure_eq!(
                f.0.port_in(abi::hw::HW_PORT_PCI_BAR_BASE + 4, 8),
                Err(Error::InvalidArgument)
            );
            // The registers are the driver's: edu answers through the BAR.
            ensure_eq!(f.0.detach(), Ok(()));
            let e = Edu::open()?;
            // SAFETY: REGS maps edu's registers.
            let (id, live) = unsafe {
                reg32(EDU_LIVENESS).write_volatile(0x1234_5678);
                (
                    reg32(EDU_ID).read_volatile(),
                    reg32(EDU_LIVENESS).read_volatile(),
                )
            };
            ensure_eq!((id >> 16, live), (0x0100, !0x1234_5678));
            e.close()
        },
    );

    s.run("dma_reaches_exactly_the_exported_pages", || {
        let e = Edu::open()?;
        let a = buffers(0, 1, 0xa0)?;
        let b = buffers(PAGE, 1, 0x00)?;
        let c = buffers(2 * PAGE, 1, 0xc0)?;
        let ia = e.h.export_read_only(a).map_err(fail)?;
        let ib = e.h.export(b).map_err(fail)?;
        ensure!(
            ia != ib && ia % PAGE == 0 && ib % PAGE == 0,
            "iovas {ia:#x} {ib:#x}"
        );
        e.copy(ia, ib)?;
        ensure!(
            b[..DMA_BYTES].iter().all(|&x| x == 0xa0),
            "B did not get A's bytes"
        );
        ensure!(
            b[DMA_BYTES..].iter().all(|&x| x == 0),
            "B changed past the DMA"
        );
        // A is read-only to the device: a write to it is blocked.
        b.fill(0xb0);
        e.copy(ib, ia)?;
        ensure!(
            a.iter().all(|&x| x == 0xa0),
            "the device wrote a read-only export"
        );
        // An iova nothing is mapped at reads as zeros and writes nowhere.
        e.copy(ib + 64 * PAGE, ib)?;
        ensure!(
            b[..DMA_BYTES].iter().all(|&x| x == 0),
            "an unmapped iova read as data"
        );
        e.copy(ib, ib + 64 * PAGE)?;
        ensure!(c.iter().all(|&x| x == 0xc0), "an unexported page changed");
        // Withdrawn, an iova reaches nothing any more.
        b.fill(0x5b);
        ensure_eq!(e.h.unexport(ia), Ok(()));
        ensure_eq!(e.h.unexport(ia), Err(Error::NotFound));
        e.copy(ia, ib)?;
        ensure!(
            b[..DMA_BYTES].iter().all(|&x| x == 0),
            "an unexported iova still reached A"
        );
        ensure_eq!(e.h.unexport(ib), Ok(()));
        unmap(0, 3)?;
        e.close()
    });

    crate::t_pci_irq::run(s);

    s.run("a_multi_page_export_is_one_iova_range", || {
        let e = Edu::open()?;
        let src = buffers(0, 4, 0x10)?;
        let dst = buffers(4 * PAGE, 4, 0x00)?;
        let is = e.h.export_read_only(&src[100..]).map_err(fail)?;
        ensure_eq!(is % PAGE, 100);
        let id = e.h.export(dst).map_err(fail)?;
        // Page 2 of one range to page 3 of the other.
        e.copy(is - 100 + 2 * PAGE, id + 3 * PAGE)?;
        let page3 = 3 * PAGE as usize;
        ensure!(
            dst[page3..page3 + DMA_BYTES].iter().all(|&x| x == 0x12),
            "page 3 is not src's page 2"
        );
        ensure!(
            dst[..page3].iter().all(|&x| x & 0xf0 == 0),
            "other pages changed"
        );
        // The whole range is wired: none of it can be unmapped.
        ensure_eq!(vm::unmap(BUFS + 6 * PAGE, PAGE), Err(Error::Busy));
        ensure_eq!(e.h.unexport(is), Ok(()));
        ensure_eq!(e.h.unexport(id + 4), Err(Error::NotFound));
        ensure_eq!(e.h.unexport(id), Ok(()));
        unmap(0, 8)?;
        e.close()
    });

    s.run("multi_page_export_errors", || {
        let e = Edu::open()?;
        let b = buffers(0, 2, 0)?;
        // A hole in the range: nothing stays wired or mapped.
        ensure_eq!(vm::unmap(BUFS + PAGE, PAGE), Ok(()));
        // SAFETY: only the first page is mapped; the kernel checks them all.
        let holed = unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr(), 2 * PAGE as usize) };
        ensure_eq!(e.h.export(holed), Err(Error::BadAddress));
        ensure_eq!(
            vm::unmap(BUFS, PAGE),
            Ok(()),
            "the first page was left wired"
        );
        // A page the process may not write cannot be given to the device
        // to write; it can be given to read.
        vm::map(BUFS, PAGE, vm::PROT_READ).map_err(fail)?;
        // SAFETY: mapped read-only; the slice is never written here.
        let ro = unsafe { core::slice::from_raw_parts_mut(BUFS as *mut u8, 64) };
        ensure_eq!(e.h.export(ro), Err(Error::AccessDenied));
        let i = e.h.export_read_only(ro).map_err(fail)?;
        ensure_eq!(e.h.unexport(i), Ok(()));
        // Unknown flags, an empty range, too many ranges.
        ensure_eq!(
            e.h.export_with(BUFS, 64, 2, &mut []),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            e.h.export_with(BUFS, 0, 0, &mut []),
            Err(Error::InvalidArgument)
        );
        let mut iovas = [0u64; 16];
        for io in iovas.iter_mut() {
            *io = e.h.export_read_only(ro).map_err(fail)?;
        }
        ensure_eq!(e.h.export_read_only(ro), Err(Error::LimitReached));
        for io in iovas {
            ensure_eq!(e.h.unexport(io), Ok(()));
        }
        // More than the domain's window.
        let huge = abi::hw::HW_DMA_WINDOW_PAGES * PAGE + PAGE;
        ensure_eq!(
            e.h.export_with(BUFS, huge, 0, &mut []),
            Err(Error::LimitReached)
        );
        ensure_eq!(vm::unmap(BUFS, PAGE), Ok(()));
        e.close()
    });

    s.run("dma_by_physical_address_reaches_nothing", || {
        let e = Edu::open()?;
        let secret = buffers(0, 1, 0x5e)?;
        let out = buffers(PAGE, 1, 0x77)?;
        let io = e.h.export(out).map_err(fail)?;
        // A device without an I/O MMU (made with CREATE) sees physical
        // addresses: exporting the secret page to one tells its address.
        let rtc = crate::t_hw::rtc_handle().map_err(fail)?;
        let phys = rtc.export(secret).map_err(fail)?;
        // The kernel image starts at 1 MiB (`kernel/linker.ld`).
        for target in [phys, 0x10_0000] {
            e.copy(target, io)?;
            ensure!(
                out[..DMA_BYTES].iter().all(|&x| x == 0),
                "read {target:#x} by its physical address"
            );
            out.fill(0x77);
            e.copy(io, target)?;
        }
        ensure!(
            secret.iter().all(|&x| x == 0x5e),
            "wrote the secret by its physical address"
        );
        ensure_eq!((rtc.unexport(phys), e.h.unexport(io)), (Ok(()), Ok(())));
        ensure_eq!(rtc.detach(), Ok(()));
        unmap(0, 2)?;
        e.close()
    });

    s.run(
        "a_dead_drivers_iovas_and_frames_stay_quarantined_until_release",
        || {
            let before = free_frames();
            let quarantined = plat.port_in(PLATFORM_PORT_QUARANTINED, 8).map_err(fail)?;
            let st = in_child(|| {
                let Ok(e) = Edu::open() else { return 1 };
                let Ok(b) = buffers(0, 3, 0) else { return 2 };
                if e.h.export(b).is_err() {
                    return 3;
                }
                0
            })?;
            ensure_eq!(st.code, 0);
            // The domain no longer maps the pages, but the device may finish
            // a transfer it translated before: the three frames and the
            // three iovas stay out of use until the platform holder says
            // the device was reset.
            ensure_eq!(
                plat.port_in(PLATFORM_PORT_QUARANTINED, 8),
                Ok(quarantined + 6)
            );
            ensure_eq!(free_frames(), before - 3);
            // A new holder turns bus mastering on again.
            let f = Function(dev::attach(REGISTRY, EDU, dev::RIGHT_READ).map_err(fail)?);
            ensure_eq!(dev::release_quarantine(plat, EDU), Ok(()));
            ensure_eq!(plat.port_in(PLATFORM_PORT_QUARANTINED, 8), Ok(quarantined));
            ensure_eq!(free_frames(), before);
            ensure!(
                f.config_read(4, 2).map_err(fail)? & 4 != 0,
                "a holder has bus mastering"
            );
            ensure_eq!(f.0.detach(), Ok(()));
            Ok(())
        },
    );

    let _ = plat.detach();
}
