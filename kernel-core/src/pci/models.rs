//! Two devices as QEMU presents them, as fakes for the tests: the `edu`
//! teaching device (hw/misc/edu.c: one 1 MiB 32-bit memory BAR, a 64-bit
//! capable single-vector MSI capability, INTA) and a modern-only
//! virtio-net function (the virtio 1.x PCI transport: a 32-bit BAR 1
//! holding the MSI-X table and PBA, a 64-bit prefetchable BAR 4 holding
//! the regions its vendor capabilities describe).

use super::config::reg;
use super::fake::FakeFunction;

pub const EDU_VENDOR: u16 = 0x1234;
pub const EDU_DEVICE: u16 = 0x11e8;
pub const EDU_BAR0: u32 = 0xfea0_0000;
pub const EDU_MSI: u8 = 0x40;

pub const VIRTIO_VENDOR: u16 = 0x1af4;
pub const VIRTIO_NET_MODERN: u16 = 0x1041;
pub const VIRTIO_BAR1: u32 = 0xfebd_1000;
pub const VIRTIO_BAR4: u64 = 0x8_0000_0000;
pub const VIRTIO_MSIX: u8 = 0x98;
/// The vendor capabilities, head first: PCI configuration access,
/// notifications, device configuration, ISR, common configuration.
pub const VIRTIO_VENDOR_CAPS: [u8; 5] = [0x84, 0x70, 0x60, 0x50, 0x40];

/// QEMU's `edu`, as firmware leaves it: BAR 0 assigned, memory decode on.
pub fn edu() -> FakeFunction {
    let mut f = FakeFunction::endpoint(EDU_VENDOR, EDU_DEVICE);
    f.class(0xff, 0x00, 0x00, 0x10);
    f.set32(reg::SUBSYSTEM, 0x1100_1af4);
    f.set16(reg::INTERRUPT, 0x010b); // INTA, line 11
    f.mem32_bar(0, EDU_BAR0, 1 << 20, false);
    f.set16(reg::COMMAND, 0x0002);
    // MSI: control 0x0080 (64-bit addresses, one vector, no masking),
    // address low, address high, data.
    f.caps(&[(EDU_MSI, 0x05, &[0x80, 0x00])]);
    let at = u16::from(EDU_MSI);
    f.set_writable(at + 2, 2, 0x0071); // enable, multiple message enable
    f.set_writable(at + 4, 4, !0b11);
    f.set_writable(at + 8, 4, u32::MAX);
    f.set_writable(at + 12, 2, 0xffff);
    f
}

/// A virtio vendor capability body (after id and next): its length,
/// type, BAR, then offset and length in that BAR, then `extra`.
fn virtio_cap(cfg_type: u8, bar: u8, offset: u32, length: u32, extra: &[u8]) -> Vec<u8> {
    let mut b = vec![16 + extra.len() as u8, cfg_type, bar, 0, 0, 0];
    b.extend_from_slice(&offset.to_le_bytes());
    b.extend_from_slice(&length.to_le_bytes());
    b.extend_from_slice(extra);
    b
}

/// A modern virtio-net function (device 0x1041) with three MSI-X
/// vectors.
pub fn virtio_net() -> FakeFunction {
    let mut f = FakeFunction::endpoint(VIRTIO_VENDOR, VIRTIO_NET_MODERN);
    f.class(0x02, 0x00, 0x00, 0x01);
    f.set32(reg::SUBSYSTEM, 0x0001_1af4);
    f.set16(reg::INTERRUPT, 0x010a);
    f.mem32_bar(1, VIRTIO_BAR1, 0x1000, false);
    f.mem64_bar(4, VIRTIO_BAR4, 0x4000, true);
    f.set16(reg::COMMAND, 0x0006);
    let pci_cfg = virtio_cap(5, 0, 0, 0, &[0; 4]);
    let notify = virtio_cap(2, 4, 0x3000, 0x1000, &4u32.to_le_bytes());
    let device = virtio_cap(4, 4, 0x2000, 0x1000, &[]);
    let isr = virtio_cap(3, 4, 0x1000, 0x1000, &[]);
    let common = virtio_cap(1, 4, 0x0000, 0x1000, &[]);
    // MSI-X: table size 3 (encoded 2), table at BAR 1 + 0, PBA at
    // BAR 1 + 0x800.
    let msix = [0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00];
    f.caps(&[
        (VIRTIO_MSIX, 0x11, &msix),
        (0x84, 0x09, &pci_cfg),
        (0x70, 0x09, &notify),
        (0x60, 0x09, &device),
        (0x50, 0x09, &isr),
        (0x40, 0x09, &common),
    ]);
    f.set_writable(u16::from(VIRTIO_MSIX) + 2, 2, 0xc000); // enable, function mask
    // The PCI configuration access capability's BAR, offset, length and
    // data are the driver's.
    f.set_writable(0x84 + 4, 1, 0xff);
    f.set_writable(0x84 + 8, 4, u32::MAX);
    f.set_writable(0x84 + 12, 4, u32::MAX);
    f.set_writable(0x84 + 16, 4, u32::MAX);
    f
}
