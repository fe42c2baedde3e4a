//! What the kernel's objects need from the machine they run on, as three
//! traits: [`Machine`] (frames, physical memory, time, interrupt routing,
//! port I/O, the log, switching), [`AddressSpace`] (one process's user
//! page table) and [`UserFrame`] (one process's saved registers).
//!
//! The kernel implements them on the real x86_64 machine (`kernel::hw`);
//! the tests implement them on a fake one (`crate::fake`), so that the
//! scheduler, the process lifecycle, the bus and the system calls run on
//! the host.
//!
//! Rules: a `Machine` is a type, never a value: its operations are
//! associated functions, so the kernel state never holds (or borrows) the
//! machine while it holds a process; nothing here may fail in a way the
//! caller cannot report (allocation is `Option`, the rest cannot fail);
//! the register layout and the page-table format stay behind the traits
//! (kernel-core knows the ABI's register names only through `abi`).

use crate::acpi::PciFunction;
use crate::frame::Frame;
use crate::iommu::{Flush, Geometry};
use crate::pagetable::{TableFrames, TableMemory};
use crate::pci::ConfigSpace;
use crate::vm::{Codec, PageTableOps};
use abi::IntFrame;
use core::fmt;

/// The machine: the hooks the kernel's policy calls.
pub trait Machine: Sized + 'static {
    /// A user address space.
    type Space: AddressSpace;
    /// The saved user registers of a process.
    type Frame: UserFrame;

    // ---- frames and physical memory ----

    /// A fresh zeroed frame, if one can be had.
    fn alloc_frame() -> Option<Frame>;
    /// A fresh zeroed frame wholly below physical address `limit` (for a
    /// device that reaches only that far), if one can be had.
    fn alloc_frame_below(limit: u64) -> Option<Frame>;
    /// Drops one reference to `frame`; true if it became free.
    fn release_frame(frame: Frame) -> bool;
    /// Adds one reference to `frame` (it is in use).
    fn add_ref(frame: Frame);
    fn refcount(frame: Frame) -> u32;
    /// Frames free now.
    fn free_frames() -> u64;
    /// Frames the machine manages (RAM the kernel hands out).
    fn managed_frames() -> u64;
    /// Frames the kernel heap holds (after giving back what it can).
    fn heap_frames() -> u64;
    /// Cycles (`now`'s units) the CPU has spent idle since boot.
    fn idle_cycles() -> u64;
    /// Reads physical memory at `addr`: RAM the caller holds a reference
    /// to, or a boot module's reserved frames.
    fn read_phys(addr: u64, out: &mut [u8]);
    /// Writes physical memory at `addr` (as `read_phys`).
    fn write_phys(addr: u64, data: &[u8]);
    /// Copies `len` bytes of physical memory from `src` to `dst`, which may
    /// overlap (as memmove).
    fn copy_phys(dst: u64, src: u64, len: usize);
    /// How user page-table entries are encoded on this CPU.
    fn codec() -> Codec;
    /// A fresh user address space (an empty lower half, the kernel's upper
    /// half), its root table from `frames`.
    fn new_space(frames: &mut impl TableFrames) -> Option<Self::Space>;

    // ---- time and preemption ----

    /// A clock in cycles (the TSC).
    fn now() -> u64;
    /// Half a timer tick, in `now`'s units.
    fn half_tick() -> u64;
    /// Timer ticks per second.
    fn tick_hz() -> u64;
    /// Timer ticks since boot.
    fn ticks() -> u64;
    /// The TSC rate (Hz) the kernel converts with now.
    fn tsc_hz() -> u64;
    /// The TSC rate (Hz) the kernel measured at boot; 0 if it could not
    /// measure one (and assumed one).
    fn tsc_boot_hz() -> u64;
    /// Makes `hz` the TSC rate the kernel converts with.
    fn set_tsc_hz(hz: u64);
    /// Whether a timer tick is pending: long work stops here.
    fn preempt_due() -> bool;

    // ---- hardware devices ----

    /// The I/O ports of the kernel's own serial console, `[start, end)`: a
    /// hardware device claiming one takes the console from the kernel.
    const SERIAL_PORTS: (u32, u32);
    /// Reads an I/O port (`size` 1, 2 or 4).
    fn port_read(port: u16, size: u64) -> u64;
    /// Writes an I/O port (`size` 1, 2 or 4).
    fn port_write(port: u16, size: u64, value: u64);
    /// Routes line `gsi` to the kernel on CPU `cpu` (an online CPU's
    /// index; delivered as `hw` interrupts).
    fn irq_route(gsi: u32, level: bool, active_low: bool, cpu: usize);
    fn irq_mask(gsi: u32);
    fn irq_unmask(gsi: u32);

    // ---- PCI functions and the I/O MMU ----

    /// One function's configuration space, as the kernel reaches it.
    type Config: ConfigSpace;
    /// The memory the I/O MMU's tables live in.
    type IoTables: TableMemory;
    /// The configuration space of `f`, if the firmware's windows cover it
    /// (`None` also for a segment or bus no window has).
    fn pci_config(f: PciFunction) -> Option<Self::Config>;
    /// The I/O MMU that translates `f`'s requests, if one does (`None`:
    /// the function's DMA reaches physical addresses).
    fn iommu_of(f: PciFunction) -> Option<IommuLink>;
    /// Runs `f` over the I/O MMU's table memory.
    fn with_io_tables<R>(f: impl FnOnce(&mut Self::IoTables) -> R) -> R;
    /// Makes `f`'s requests translate in domain `did`, rooted at `root`
    /// (its unit's context cache is invalidated and waited for).
    fn iommu_attach(f: PciFunction, did: u16, root: Frame) -> Result<(), abi::Error>;
    /// Makes `f`'s requests translate nowhere again; the unit's context
    /// cache and domain `did`'s IOTLB entries are invalidated, waited for.
    fn iommu_detach(f: PciFunction, did: u16);
    /// Invalidates what `flush` names in domain `did` on `f`'s unit and
    /// waits until the unit has done it: afterwards no DMA of `f` uses
    /// a translation that was removed before the call.
    fn iommu_flush(f: PciFunction, did: u16, flush: &Flush);
    /// The message function `f` must send to raise the kernel's MSI
    /// vector `slot` (`kernel_core::devices::msi`) on CPU `cpu` (an
    /// online CPU's index): through an interrupt remapping entry that only
    /// `f` may use, where the machine remaps; `LimitReached` when no entry
    /// is free.
    fn msi_route(f: PciFunction, slot: u8, cpu: usize) -> Result<MsiRoute, abi::Error>;
    /// Withdraws a message `msi_route` made (the device no longer sends
    /// it); waits until the machine has forgotten it.
    fn msi_unroute(f: PciFunction, route: &MsiRoute);
    /// Reads device memory (a 4-byte register the kernel owns, such as an
    /// MSI-X table entry).
    fn mmio_read32(phys: u64) -> u32;
    /// Writes device memory (as `mmio_read32`).
    fn mmio_write32(phys: u64, value: u32);

    // ---- the log ----

    /// Appends formatted text to the kernel log.
    fn log(args: fmt::Arguments<'_>);
    /// Appends raw bytes.
    fn log_bytes(bytes: &[u8]);
    /// Copies log bytes from absolute position `pos`: (copied, next
    /// position, bytes lost before it).
    fn log_read(pos: u64, out: &mut [u8]) -> (usize, u64, u64);
    /// Bytes ever written to the log.
    fn log_written() -> u64;
    /// The ring's size.
    const LOG_RING_SIZE: usize;
    /// Whether the current kernel entry (or another CPU's) left work for
    /// the end of an entry: the log grew (klog's IRQ is raised then, not
    /// while logging, which happens under any lock), or the machine has
    /// memory to give back that was freed where it could not be. One
    /// test, so that the end of every system call checks for both at
    /// once; `settle` takes its slow path while it holds.
    fn exit_work_due() -> bool;
    /// Does the machine's part of that work and clears it; true if the
    /// log grew (the kernel then wakes klog's listeners). Called with the
    /// kernel's lock held and no other.
    fn take_exit_work() -> bool;
    /// The kernel stops writing the log to the serial port (a driver owns
    /// it now).
    fn stop_serial();

    // ---- processes ----

    /// The CPU this code runs on: an index below `kernel::MAX_CPUS`.
    fn cpu_index() -> usize;
    /// Asks CPU `cpu` (not this one) to look at its `Cpu` state soon: it
    /// is idle and has work, or should give its process the CPU. Returns
    /// at once.
    fn kick(cpu: usize);
    /// Makes CPU `cpu` (not this one) stop running its current process:
    /// returns once that CPU is in the kernel, out of the process's
    /// address space, and cannot return to it without the kernel's lock
    /// (which the caller holds). Everything of the process may then be
    /// freed.
    fn evict(cpu: usize);

    /// Makes `frame` the one the next return to user mode restores and
    /// `space` (if any) the address space it runs in. `frame` stays valid
    /// until another frame is made current.
    fn install(frame: *mut Self::Frame, space: Option<&Self::Space>);
    /// Leaves any user address space (the current one is being torn down).
    fn leave_space();
    /// The name of CPU exception `vector`, for reports.
    fn exception_name(vector: u64) -> &'static str;
    /// Init ended: the machine stops, with `code` for the host.
    fn power_off(code: u8) -> !;
    /// The boot modules: (physical address, length, command line).
    fn modules() -> &'static [Module];
}

/// What the kernel knows of the I/O MMU that translates a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IommuLink {
    /// The shape of the unit's domains.
    pub geometry: Geometry,
    /// Domain ids the unit has (ids `1..domains` are usable).
    pub domains: u32,
    /// The unit may cache not-present entries (caching mode): a new
    /// mapping must be invalidated too.
    pub flush_on_map: bool,
}

/// A message-signalled interrupt as a device sends it: a write of
/// `data` to `address`; `handle` names the remapping entry behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiRoute {
    pub address: u64,
    pub data: u32,
    pub handle: Option<u16>,
}

/// A boot module, as the boot loader left it in memory (its frames are
/// reserved for good).
#[derive(Clone, Debug)]
pub struct Module {
    pub phys: u64,
    pub len: u64,
    pub cmdline: arrayvec::ArrayString<256>,
}

/// One user address space: the page-state machine's table ([`PageTableOps`])
/// plus what the kernel does with a whole space.
pub trait AddressSpace: PageTableOps + Sized {
    /// The present leaf entry for user page `va`, if there is one.
    fn lookup(&self, va: u64) -> Option<u64>;
    /// Copies this space into `child` for fork (see
    /// `PageTree::fork_into`).
    fn fork_into(
        &mut self,
        child: &mut Self,
        child_frames: &mut impl TableFrames,
        f: &mut dyn FnMut(u64) -> Result<(u64, u64), abi::Error>,
    ) -> Result<(), abi::Error>;
    /// Releases the whole lower half: `leaf` gets every non-zero leaf
    /// entry, then every table goes back through `frames`.
    fn destroy(self, frames: &mut impl TableFrames, leaf: impl FnMut(u64));
    /// Table frames held (root included).
    fn table_frames(&self) -> u64;
    /// Tables that map nothing (spares, idle tables).
    fn spare_tables(&self) -> u64;
    /// Whether this is the space the CPU runs on now.
    fn is_active(&self) -> bool;
    /// Makes this the space the CPU runs on.
    fn activate(&self);
}

/// A process's saved user registers, as the system-call ABI names them.
pub trait UserFrame: Copy + Default + 'static {
    /// The registers a process starts a program with.
    fn start(entry: u64, stack_top: u64, arg0: u64, arg1: u64) -> Self;
    /// The system-call number and its six argument words.
    fn syscall(&self) -> (u64, [u64; 6]);
    /// The word a system call returns (rax).
    fn result(&self) -> u64;
    fn set_result(&mut self, value: u64);
    /// The four words a request arrives in when a server polls with no
    /// buffer (`Request::to_words`: rdi, rsi, rdx, r10).
    fn set_request_words(&mut self, words: [u64; 4]);
    /// Moves the program counter back over the `syscall` instruction, so
    /// the call is made again when the process next runs.
    fn back_over_syscall(&mut self);
    fn pc(&self) -> u64;
    fn sp(&self) -> u64;
    /// The registers as the handler sees them (`abi::IntFrame`'s register
    /// fields; the rest left zero).
    fn snapshot(&self) -> IntFrame;
    /// Takes the registers back from a frame a handler returns (flags are
    /// limited to what user code may set).
    fn restore(&mut self, frame: &IntFrame);
    /// Enters a handler: `pc`, `sp`, the frame's address as the first
    /// argument, fresh flags.
    fn enter_handler(&mut self, pc: u64, sp: u64, arg: u64);
}
