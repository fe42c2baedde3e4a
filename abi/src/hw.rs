//! Hardware devices: slices of the machine (I/O port ranges, MMIO ranges,
//! interrupt lines) that the `platform` device turns into devices on the
//! bus, so a driver can be given exactly its hardware and nothing else.
//!
//! Two kinds: a device made from a description of its resources
//! ([`HwDeviceSpec`], `PLATFORM_PORT_CREATE`: legacy hardware such as a
//! UART), and a PCI function claimed by its address ([`PciClaimSpec`],
//! `PLATFORM_PORT_CLAIM_PCI`), whose resources the kernel reads and sizes
//! itself and whose configuration space the driver reaches only through
//! the ports below ([`HW_PORT_PCI_CONFIG`]).
//!
//! DMA: on a machine with an I/O MMU every claimed PCI function has its
//! own translation domain, empty until its driver exports pages: `export`
//! maps them and returns an I/O virtual address (iova) that only this
//! function can use, and a DMA anywhere else is blocked and reported
//! ([`HW_LINE_DMA_FAULT`]). Without an I/O MMU (and for devices made with
//! `PLATFORM_PORT_CREATE`) a device sees physical addresses: `export`
//! wires the pages and hands back their physical addresses, all below
//! 4 GiB (a page above is moved below first, for devices that drive only
//! 32 address bits), and the device can reach any memory it is told to;
//! what MH guarantees then is only that it never reuses a page a device
//! may still write (see `PLATFORM_PORT_RELEASE_QUARANTINE`).

use crate::bus::DEVICE_NAME_MAX;

/// Port ranges one hardware device may have.
pub const HW_PORT_RANGES: usize = 8;
/// MMIO ranges one hardware device may have.
pub const HW_MMIO_RANGES: usize = 4;
/// Interrupt lines one hardware device may have.
pub const HW_IRQS: usize = 4;

/// [`HwIrq::flags`]: the line is level-triggered (masked after each
/// interrupt until `irq_ack`); else edge-triggered.
pub const HW_IRQ_LEVEL: u32 = 1;
/// [`HwIrq::flags`]: the line is active low.
pub const HW_IRQ_ACTIVE_LOW: u32 = 2;
/// [`HwIrq::flags`]: `gsi` holds a legacy ISA IRQ number (0–15), not a
/// GSI; the kernel routes it as the firmware says (the ACPI MADT's
/// interrupt source overrides give its GSI, polarity and trigger), so a
/// driver of a legacy device (a UART, the RTC) need not know the board.
/// Used alone: the other flags come from the firmware.
pub const HW_IRQ_ISA: u32 = 4;
/// ISA IRQ numbers `HW_IRQ_ISA` takes.
pub const ISA_IRQS: u32 = 16;

/// I/O ports `base .. base + len`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HwPortRange {
    pub base: u16,
    pub len: u16,
}

/// Physical addresses `base .. base + len` (page-aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HwMmioRange {
    pub base: u64,
    pub len: u64,
}

/// An interrupt line: an I/O APIC input (GSI) and how it signals.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HwIrq {
    pub gsi: u32,
    pub flags: u32,
}

/// What `platform`'s CREATE port reads (through DMA) to make a device.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HwDeviceSpec {
    pub name: [u8; DEVICE_NAME_MAX],
    pub name_len: u32,
    pub port_count: u32,
    pub mmio_count: u32,
    pub irq_count: u32,
    pub ports: [HwPortRange; HW_PORT_RANGES],
    pub mmio: [HwMmioRange; HW_MMIO_RANGES],
    pub irqs: [HwIrq; HW_IRQS],
}

/// What `platform`'s CLAIM_PCI port reads (through DMA): the PCI function
/// at `segment:bus:device.function` (`devfn` = device << 3 | function)
/// becomes the hardware device `name`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciClaimSpec {
    pub name: [u8; DEVICE_NAME_MAX],
    pub name_len: u32,
    pub segment: u16,
    pub bus: u8,
    pub devfn: u8,
}

// ---- ports of a claimed PCI function ----
// Above the 64 Ki I/O ports (which are the function's I/O BARs, as on
// any hardware device) lie ports the kernel answers itself.

/// in/out (size 1, 2 or 4, aligned): byte `port - HW_PORT_PCI_CONFIG`
/// (below 4096) of the function's configuration space. Reads are allowed
/// everywhere; writes only where the driver may change the function
/// (docs/hardware-devices.md has the table): not the IDs, BARs, command
/// register bits other than INTx disable, nor the MSI, MSI-X, power
/// management and PCI Express capabilities (`AccessDenied`).
pub const HW_PORT_PCI_CONFIG: u32 = 0x1_0000;
/// in (size 8): where BAR `i` lies (`HW_PORT_PCI_BAR_BASE + 8 * i`,
/// `i < 6`): a physical address for a memory BAR (map it with `iomap`),
/// a port number for an I/O BAR; 0 if the slot is not implemented (or is
/// the top half of a 64-bit BAR).
pub const HW_PORT_PCI_BAR_BASE: u32 = 0x2_0000;
/// in (size 8): BAR `i`'s size in bytes, as the kernel sized it
/// (`HW_PORT_PCI_BAR_SIZE + 8 * i`); 0 if not implemented.
pub const HW_PORT_PCI_BAR_SIZE: u32 = 0x2_0100;
/// in (size 8): BAR `i`'s kind (`HW_PORT_PCI_BAR_KIND + 8 * i`): one of
/// `HW_BAR_*`, with `HW_BAR_PREFETCHABLE` added for prefetchable memory.
pub const HW_PORT_PCI_BAR_KIND: u32 = 0x2_0200;
/// in (size 8): 1 if an I/O MMU translates this function's DMA (`export`
/// returns iovas of its own domain), 0 if it sees physical addresses.
pub const HW_PORT_PCI_IOMMU: u32 = 0x2_0300;
/// in (size 8): the function's address, `segment << 16 | bus << 8 |
/// devfn`.
pub const HW_PORT_PCI_ADDRESS: u32 = 0x2_0308;
/// in (size 8): DMA faults the I/O MMU reported for this function since it
/// was claimed.
pub const HW_PORT_DMA_FAULTS: u32 = 0x3_0000;
/// in (size 8): the most recent DMA faults, newest first: record `k`
/// (`k < HW_DMA_FAULT_RECORDS`) is at `HW_PORT_DMA_FAULT + 16 * k`: the
/// word at `+0` is the iova (page address), the word at `+8` is
/// `reason | write << 8 | source << 16` (reason as the VT-d specification
/// numbers it, write 1 for a write request, source the requester's
/// `bus << 8 | devfn`); both 0 past the last record.
pub const HW_PORT_DMA_FAULT: u32 = 0x3_0100;
/// How many recent DMA faults a function keeps.
pub const HW_DMA_FAULT_RECORDS: u32 = 8;
/// in (size 8): the CPU line `i` is delivered to (`HW_PORT_IRQ_CPU + 8 *
/// i`, `i < 64`): the lowest CPU its owner may run on when it mapped the
/// line, CPU 0 for an owner not bound to some CPUs; [`HW_IRQ_NO_CPU`] if
/// the line is not mapped. Bind the driver (`set_affinity`, the
/// manifest's `cpus`) before `irq_map` to choose the CPU; mapping the
/// line again after a new binding moves it. Any hardware device, PCI or
/// not.
pub const HW_PORT_IRQ_CPU: u32 = 0x4_0000;
/// in (size 8): the CPU that took line `i`'s latest interrupt since it
/// was mapped (`HW_PORT_IRQ_LAST_CPU + 8 * i`), [`HW_IRQ_NO_CPU`] if none.
pub const HW_PORT_IRQ_LAST_CPU: u32 = 0x4_0200;
/// [`HW_PORT_IRQ_CPU`], [`HW_PORT_IRQ_LAST_CPU`]: no CPU (as `PROC_CPU_NONE`).
pub const HW_IRQ_NO_CPU: u64 = u32::MAX as u64;

/// [`HW_PORT_PCI_BAR_KIND`]: no BAR.
pub const HW_BAR_NONE: u64 = 0;
/// [`HW_PORT_PCI_BAR_KIND`]: an I/O BAR (ports).
pub const HW_BAR_IO: u64 = 1;
/// [`HW_PORT_PCI_BAR_KIND`]: a 32-bit memory BAR.
pub const HW_BAR_MEM32: u64 = 2;
/// [`HW_PORT_PCI_BAR_KIND`]: a 64-bit memory BAR.
pub const HW_BAR_MEM64: u64 = 3;
/// [`HW_PORT_PCI_BAR_KIND`], added: the memory is prefetchable.
pub const HW_BAR_PREFETCHABLE: u64 = 0x100;

/// The interrupt line (for `irq_map`) raised on a claimed PCI function's
/// driver when the I/O MMU blocks one of its DMAs; the records are at
/// [`HW_PORT_DMA_FAULT`].
pub const HW_LINE_DMA_FAULT: u32 = 63;

/// `export` flag: the device may only read the pages (the I/O MMU maps
/// them read-only; a user device's server cannot DMA-write them).
pub const EXPORT_DEVICE_READS_ONLY: u64 = 1;
/// Every `export` flag.
pub const EXPORT_FLAGS: u64 = EXPORT_DEVICE_READS_ONLY;

/// Pages of one I/O virtual address window: what a claimed PCI
/// function's exports can hold at once (64 MiB).
pub const HW_DMA_WINDOW_PAGES: u64 = 16 * 1024;
