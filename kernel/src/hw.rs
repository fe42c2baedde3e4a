//! The real machine, as the kernel's objects see it: `Hw` implements
//! `kernel_core::machine::Machine` over the frame table, the direct map,
//! the LAPIC and I/O APIC, the port instructions, the log and the entry
//! code.
//!
//! Rules: this is glue: each hook is a call into `arch`, `mm` or `log`,
//! and no policy lives here (it is all in kernel-core, where the tests
//! run it on a fake machine).

use crate::arch::entry::TrapFrame;
use crate::arch::paging::{self, PageTable};
use crate::arch::phys;
use crate::arch::{cpu, entry, fault, ioapic, lapic, percpu, tlb};
use crate::mm::{self, frames};
use arrayvec::ArrayVec;
use core::fmt;
use core::sync::atomic::Ordering;
use kernel_core::acpi::PciFunction;
use kernel_core::frame::Frame;
use kernel_core::iommu::Flush;
use kernel_core::machine::{IommuLink, Machine, Module, MsiRoute};
use kernel_core::pagetable::TableFrames;
use kernel_core::vm::Codec;
use spin::Once;

/// The machine the kernel runs on.
pub struct Hw;

/// The boot modules, recorded once at boot for bootfs.
pub static MODULES: Once<ArrayVec<Module, 32>> = Once::new();

const _: () = assert!(ioapic::MAX_GSI as usize == kernel_core::devices::IRQ_LINES);
const _: () = assert!(
    percpu::MAX_CPUS == kernel_core::kernel::MAX_CPUS && percpu::MAX_CPUS.is_power_of_two()
);

impl Machine for Hw {
    type Space = PageTable;
    type Frame = TrapFrame;
    type Config = crate::pci::Config;
    type IoTables = crate::iommu::IoMemory;

    fn pci_config(f: PciFunction) -> Option<crate::pci::Config> {
        crate::pci::config(f)
    }

    fn iommu_of(f: PciFunction) -> Option<IommuLink> {
        crate::iommu::link_of(f)
    }

    fn with_io_tables<R>(f: impl FnOnce(&mut crate::iommu::IoMemory) -> R) -> R {
        crate::iommu::with_tables(f)
    }

    fn iommu_attach(f: PciFunction, did: u16, root: Frame) -> Result<(), abi::Error> {
        crate::iommu::attach(f, did, root)
    }

    fn iommu_detach(f: PciFunction, did: u16) {
        crate::iommu::detach(f, did)
    }

    fn iommu_flush(f: PciFunction, did: u16, flush: &Flush) {
        crate::iommu::flush(f, did, flush)
    }

    fn msi_route(f: PciFunction, slot: u8, cpu: usize) -> Result<MsiRoute, abi::Error> {
        crate::iommu::msi_route(f, lapic::MSI_VECTOR_BASE + slot, apic_of(cpu))
    }

    fn msi_unroute(f: PciFunction, route: &MsiRoute) {
        crate::iommu::msi_unroute(f, route)
    }

    fn mmio_read32(phys: u64) -> u32 {
        match paging::map_mmio(phys & !0xfff, 4096) {
            // SAFETY: the page was just mapped uncached; the kernel-core
            // caller names a 4-byte register of a BAR a claim sized.
            Ok(_) => unsafe { core::ptr::read_volatile(phys::to_virt(phys & !3).cast::<u32>()) },
            Err(_) => u32::MAX,
        }
    }

    fn mmio_write32(phys: u64, value: u32) {
        if paging::map_mmio(phys & !0xfff, 4096).is_ok() {
            // SAFETY: as in `mmio_read32`.
            unsafe { core::ptr::write_volatile(phys::to_virt(phys & !3).cast::<u32>(), value) }
        }
    }

    fn alloc_frame() -> Option<Frame> {
        mm::alloc_zeroed_frame()
    }

    fn alloc_frame_below(limit: u64) -> Option<Frame> {
        mm::alloc_zeroed_frame_below(limit)
    }

    fn release_frame(frame: Frame) -> bool {
        match frames::release(frame) {
            Ok(freed) => freed,
            Err(e) => {
                crate::kprintln!("[kernel] BUG: release({:#x}): {e:?}", frame.addr());
                false
            }
        }
    }

    fn add_ref(frame: Frame) {
        if let Err(e) = frames::add_ref(frame) {
            crate::kprintln!("[kernel] BUG: add_ref({:#x}): {e:?}", frame.addr());
        }
    }

    fn refcount(frame: Frame) -> u32 {
        frames::refcount(frame)
    }

    fn idle_cycles() -> u64 {
        crate::sched::IDLE_CYCLES.load(Ordering::Relaxed)
    }

    fn free_frames() -> u64 {
        frames::free_count() as u64
    }

    fn managed_frames() -> u64 {
        frames::managed_count() as u64
    }

    fn heap_frames() -> u64 {
        mm::heap::trim();
        mm::heap::frames_held()
    }

    fn read_phys(addr: u64, out: &mut [u8]) {
        // SAFETY: the caller reads RAM it holds a reference to, or a boot
        // module's reserved frames, all covered by the direct map.
        unsafe { core::ptr::copy_nonoverlapping(phys::to_virt(addr), out.as_mut_ptr(), out.len()) }
    }

    fn write_phys(addr: u64, data: &[u8]) {
        // SAFETY: the caller writes RAM it holds a reference to (covered
        // by the direct map), not memory the kernel itself uses.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), phys::to_virt(addr), data.len()) }
    }

    fn copy_phys(dst: u64, src: u64, len: usize) {
        // SAFETY: as in `read_phys` and `write_phys`; `copy` allows the
        // ranges to overlap.
        unsafe { core::ptr::copy(phys::to_virt(src), phys::to_virt(dst), len) }
    }

    fn codec() -> Codec {
        mm::codec()
    }

    fn new_space(frames: &mut impl TableFrames) -> Option<PageTable> {
        paging::with_kernel_table(|k| PageTable::new_user(k, frames).ok()).flatten()
    }

    #[inline(always)]
    fn now() -> u64 {
        cpu::rdtsc()
    }

    fn half_tick() -> u64 {
        lapic::half_tick_tsc()
    }

    fn tick_hz() -> u64 {
        lapic::TICK_HZ
    }

    fn ticks() -> u64 {
        lapic::TICKS.load(Ordering::Relaxed)
    }

    fn tsc_hz() -> u64 {
        lapic::tsc_per_ms() * 1000
    }

    fn tsc_boot_hz() -> u64 {
        lapic::tsc_boot_per_ms() * 1000
    }

    fn set_tsc_hz(hz: u64) {
        lapic::set_tsc_per_ms(hz / 1000)
    }

    #[inline]
    fn preempt_due() -> bool {
        lapic::timer_pending()
    }

    const SERIAL_PORTS: (u32, u32) = (0x3f8, 0x400);

    fn port_read(port: u16, size: u64) -> u64 {
        // SAFETY: the caller checked that the port belongs to a hardware
        // device its caller holds, which the kernel does not drive itself.
        unsafe { cpu::port_read(port, size) }
    }

    fn port_write(port: u16, size: u64, value: u64) {
        // SAFETY: as in `port_read`.
        unsafe { cpu::port_write(port, size, value) }
    }

    fn irq_route(gsi: u32, level: bool, active_low: bool, cpu: usize) {
        crate::iommu::ioapic_route(gsi, level, active_low, apic_of(cpu))
    }

    fn irq_mask(gsi: u32) {
        ioapic::mask(gsi)
    }

    fn irq_unmask(gsi: u32) {
        ioapic::unmask(gsi)
    }

    fn log(args: fmt::Arguments<'_>) {
        crate::log::write_fmt(args)
    }

    fn log_bytes(bytes: &[u8]) {
        crate::log::write_bytes(bytes)
    }

    fn log_read(pos: u64, out: &mut [u8]) -> (usize, u64, u64) {
        crate::log::read_from(pos, out)
    }

    fn log_written() -> u64 {
        crate::log::total_written()
    }

    const LOG_RING_SIZE: usize = crate::log::LOG_RING_SIZE;

    #[inline(always)]
    fn exit_work_due() -> bool {
        crate::exit_work::due()
    }

    fn take_exit_work() -> bool {
        let work = crate::exit_work::take();
        if work & crate::exit_work::HEAP_DEFERRED != 0 {
            crate::mm::heap::reclaim();
        }
        work & crate::exit_work::LOG_GREW != 0
    }

    fn stop_serial() {
        crate::log::stop_serial()
    }

    #[inline(always)]
    fn cpu_index() -> usize {
        // Masked (MAX_CPUS is a power of two, and every index is below
        // it): the compiler then knows `cpus[i]` is in bounds, which
        // keeps the checks off the system-call path.
        percpu::index() & (percpu::MAX_CPUS - 1)
    }

    fn kick(cpu: usize) {
        lapic::send_ipi(percpu::of(cpu).apic_id.load(Ordering::Relaxed));
    }

    fn evict(cpu: usize) {
        tlb::request(cpu, tlb::LEAVE);
    }

    #[inline(always)]
    fn install(frame: *mut TrapFrame, space: Option<&PageTable>) {
        if let Some(space) = space {
            // Another process's table is (all but) never the one in CR3, so
            // no comparison first; reloading it would only flush the TLB.
            space.load();
        }
        // SAFETY: the caller guarantees the frame lives in a process record
        // that stays put until another frame is installed.
        unsafe { entry::set_current_frame(frame) };
    }

    fn leave_space() {
        paging::activate_kernel_table();
        tlb::note_loaded(0);
    }

    fn exception_name(vector: u64) -> &'static str {
        fault::vector_name(vector)
    }

    fn power_off(code: u8) -> ! {
        crate::log::reclaim_serial();
        cpu::power_off(code)
    }

    fn modules() -> &'static [Module] {
        MODULES.get().map_or(&[], |m| m.as_slice())
    }
}

/// The local APIC id of online CPU `cpu` (the boot CPU's for an index no
/// CPU has, which the kernel never passes).
fn apic_of(cpu: usize) -> u32 {
    if cpu < percpu::online() {
        percpu::of(cpu).apic_id.load(Ordering::Relaxed)
    } else {
        percpu::of(0).apic_id.load(Ordering::Relaxed)
    }
}
