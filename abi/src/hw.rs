//! Hardware devices: slices of the machine (I/O port ranges, MMIO ranges,
//! interrupt lines) that the `platform` device turns into devices on the
//! bus, so a driver can be given exactly its hardware and nothing else.
//!
//! There is no IOMMU in use: a DMA export to a hardware device wires the
//! page and hands back its physical address, and the device can reach any
//! memory it is told to. Isolation against a malicious driver needs the
//! IOMMU; what MH guarantees without one is that it never reuses a page a
//! device may still write (see `PLATFORM_PORT_RELEASE_QUARANTINE`).

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
