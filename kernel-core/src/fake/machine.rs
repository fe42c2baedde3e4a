//! The kernel's `Machine` trait on the fake machine: frames allocated,
//! shared and released with real contents and reference counts (and a
//! limit that makes allocation fail), physical memory read and written
//! through them, a clock that moves on every read, ports, interrupt
//! routing, the log, the installed frame and active space, power-off.
//!
//! Rules: every effect lands in this thread's `State` where a test can see
//! it; touching a frame the kernel does not hold, or releasing one twice,
//! panics; `power_off` unwinds with `PoweredOff` rather than return.

use super::{Fake, FakeFrame, FakeSpace, NEXT_SPACE, PAGE, PoweredOff, TablesOf, with};
use crate::acpi::PciFunction;
use crate::frame::Frame;
use crate::iommu::Flush;
use crate::machine::{IommuLink, Machine, Module, MsiRoute};
use crate::pagetable::{PageTree, TableFrames};
use crate::vm::Codec;
use std::fmt;

impl Machine for Fake {
    type Space = FakeSpace;
    type Frame = FakeFrame;
    type Config = super::pci::FakeConfig;
    type IoTables = TablesOf;

    fn pci_config(f: PciFunction) -> Option<Self::Config> {
        super::pci::config(f)
    }

    fn iommu_of(f: PciFunction) -> Option<IommuLink> {
        super::pci::iommu_of(f)
    }

    fn with_io_tables<R>(f: impl FnOnce(&mut TablesOf) -> R) -> R {
        super::pci::with_tables(f)
    }

    fn iommu_attach(f: PciFunction, did: u16, root: Frame) -> Result<(), abi::Error> {
        super::pci::attach(f, did, root);
        Ok(())
    }

    fn iommu_detach(f: PciFunction, did: u16) {
        super::pci::detach(f, did)
    }

    fn iommu_flush(f: PciFunction, did: u16, flush: &Flush) {
        super::pci::flush(f, did, flush)
    }

    fn idle_cycles() -> u64 {
        0
    }

    fn msi_route(f: PciFunction, slot: u8, cpu: usize) -> Result<MsiRoute, abi::Error> {
        with(|s| s.msi_cpus.insert(slot, cpu));
        super::pci::msi_route(f, slot)
    }

    fn msi_unroute(f: PciFunction, route: &MsiRoute) {
        super::pci::msi_unroute(f, route)
    }

    fn mmio_read32(phys: u64) -> u32 {
        with(|s| s.mmio.get(&phys).copied().unwrap_or(0))
    }

    fn mmio_write32(phys: u64, value: u32) {
        with(|s| s.mmio.insert(phys, value));
    }

    fn alloc_frame() -> Option<Frame> {
        with(|s| {
            if s.used() >= s.total {
                return None;
            }
            let pfn = s.free.pop().unwrap_or_else(|| {
                s.next_pfn += 1;
                s.next_pfn - 1
            });
            Some(s.take(pfn))
        })
    }

    fn alloc_frame_below(limit: u64) -> Option<Frame> {
        with(|s| {
            if s.used() >= s.total || s.refuse_below {
                return None;
            }
            let fits = |pfn: u64| {
                (pfn + 1)
                    .checked_mul(PAGE as u64)
                    .is_some_and(|e| e <= limit)
            };
            let pfn = if let Some(i) = s.free.iter().rposition(|&p| fits(p)) {
                s.free.remove(i)
            } else if fits(s.next_pfn) {
                s.next_pfn += 1;
                s.next_pfn - 1
            } else if s.low_next < s.low_end && fits(s.low_next) {
                s.low_next += 1;
                s.low_next - 1
            } else {
                return None;
            };
            Some(s.take(pfn))
        })
    }

    fn release_frame(frame: Frame) -> bool {
        with(|s| {
            let f = s.frame(frame.pfn());
            assert!(f.refs > 0, "frame {:#x} released twice", frame.pfn());
            f.refs -= 1;
            let last = f.refs == 0;
            s.refs -= 1;
            s.touched(frame.pfn());
            if last {
                s.frames.remove(&frame.pfn());
                s.free.push(frame.pfn());
                true
            } else {
                false
            }
        })
    }

    fn add_ref(frame: Frame) {
        with(|s| {
            s.frame(frame.pfn()).refs += 1;
            s.refs += 1;
            s.touched(frame.pfn());
        })
    }

    fn refcount(frame: Frame) -> u32 {
        with(|s| s.frames.get(&frame.pfn()).map_or(0, |f| f.refs))
    }

    fn free_frames() -> u64 {
        with(|s| s.total - s.used())
    }

    fn managed_frames() -> u64 {
        with(|s| s.total)
    }

    fn heap_frames() -> u64 {
        0
    }

    fn read_phys(addr: u64, out: &mut [u8]) {
        with(|s| {
            let mut done = 0;
            while done < out.len() {
                let at = addr as usize + done;
                let (pfn, off) = ((at / PAGE) as u64, at % PAGE);
                let n = (PAGE - off).min(out.len() - done);
                out[done..done + n].copy_from_slice(&s.frame(pfn).bytes[off..off + n]);
                done += n;
            }
        })
    }

    fn write_phys(addr: u64, data: &[u8]) {
        with(|s| {
            let mut done = 0;
            while done < data.len() {
                let at = addr as usize + done;
                let (pfn, off) = ((at / PAGE) as u64, at % PAGE);
                let n = (PAGE - off).min(data.len() - done);
                s.frame(pfn).bytes[off..off + n].copy_from_slice(&data[done..done + n]);
                done += n;
            }
        })
    }

    fn copy_phys(dst: u64, src: u64, len: usize) {
        let mut buf = vec![0u8; len];
        Self::read_phys(src, &mut buf);
        Self::write_phys(dst, &buf);
    }

    fn codec() -> Codec {
        Codec { nx: true }
    }

    fn new_space(frames: &mut impl TableFrames) -> Option<FakeSpace> {
        let root = frames.alloc_table()?;
        let id = NEXT_SPACE.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        Some(FakeSpace {
            tree: PageTree::new(root),
            mem: TablesOf::default(),
            id,
        })
    }

    fn now() -> u64 {
        with(|s| {
            s.now += 1;
            s.now
        })
    }

    fn half_tick() -> u64 {
        1000
    }

    fn tick_hz() -> u64 {
        100
    }

    fn ticks() -> u64 {
        with(|s| s.ticks)
    }

    fn tsc_hz() -> u64 {
        with(|s| s.tsc_hz)
    }

    fn tsc_boot_hz() -> u64 {
        super::FAKE_TSC_BOOT_HZ
    }

    fn set_tsc_hz(hz: u64) {
        with(|s| s.tsc_hz = hz)
    }

    fn preempt_due() -> bool {
        with(|s| s.preempt)
    }

    const SERIAL_PORTS: (u32, u32) = (0x3f8, 0x400);

    fn port_read(port: u16, _size: u64) -> u64 {
        with(|s| s.ports.get(&port).copied().unwrap_or(0))
    }

    fn port_write(port: u16, _size: u64, value: u64) {
        with(|s| s.ports.insert(port, value));
    }

    fn irq_route(gsi: u32, level: bool, active_low: bool, cpu: usize) {
        with(|s| {
            s.routes.insert(gsi, (level, active_low, true));
            s.irq_cpus.insert(gsi, cpu);
        });
    }

    fn irq_mask(gsi: u32) {
        with(|s| {
            if let Some(r) = s.routes.get_mut(&gsi) {
                r.2 = false;
            }
        })
    }

    fn irq_unmask(gsi: u32) {
        with(|s| {
            if let Some(r) = s.routes.get_mut(&gsi) {
                r.2 = true;
            }
        })
    }

    fn log(args: fmt::Arguments<'_>) {
        Self::log_bytes(args.to_string().as_bytes())
    }

    fn log_bytes(bytes: &[u8]) {
        with(|s| {
            s.log.extend_from_slice(bytes);
            s.log_grew = true;
        })
    }

    fn log_read(pos: u64, out: &mut [u8]) -> (usize, u64, u64) {
        with(|s| {
            let pos = (pos as usize).min(s.log.len());
            let n = out.len().min(s.log.len() - pos);
            out[..n].copy_from_slice(&s.log[pos..pos + n]);
            (n, (pos + n) as u64, 0)
        })
    }

    fn log_written() -> u64 {
        with(|s| s.log.len() as u64)
    }

    const LOG_RING_SIZE: usize = 64 * 1024;

    fn exit_work_due() -> bool {
        with(|s| s.log_grew)
    }

    fn take_exit_work() -> bool {
        with(|s| core::mem::take(&mut s.log_grew))
    }

    fn stop_serial() {
        with(|s| s.serial_stopped = true)
    }

    fn cpu_index() -> usize {
        with(|s| s.cpu)
    }

    fn kick(cpu: usize) {
        with(|s| s.kicks.push(cpu))
    }

    fn evict(cpu: usize) {
        with(|s| s.evictions.push(cpu))
    }

    fn install(frame: *mut FakeFrame, space: Option<&FakeSpace>) {
        let root = space.map(|sp| sp.tree.root().addr());
        with(|s| {
            s.installed = Some((frame as usize, root));
            if root.is_some() {
                s.active_root = root;
            }
        })
    }

    fn leave_space() {
        with(|s| s.active_root = None)
    }

    fn exception_name(_vector: u64) -> &'static str {
        "fake exception"
    }

    fn power_off(code: u8) -> ! {
        with(|s| s.powered_off = Some(code));
        // A test that ends init catches this (see `PoweredOff`).
        std::panic::panic_any(PoweredOff(code))
    }

    fn modules() -> &'static [Module] {
        with(|s| s.modules)
    }
}
