//! Capability walks on fakes: the model devices' MSI and MSI-X, MSI
//! layouts, and hostile lists (loops, pointers into the header or
//! unaligned, structures past 0x100, duplicates, MSI-X tables and PBAs
//! outside their BAR or overlapping, lists that change as they are read).

use super::*;
use crate::pci::bar::{BarKind, size_bars};
use crate::pci::fake::{FakeFunction, Glitch, Op};
use crate::pci::models::{self, EDU_MSI, VIRTIO_MSIX, VIRTIO_VENDOR_CAPS};

fn walk(f: &mut FakeFunction, bars: &[Bar]) -> Result<Capabilities, PciError> {
    let r = capabilities(f, bars);
    assert!(!f.log.iter().any(|op| matches!(op, Op::Write { .. })));
    r
}

fn cap_error(f: &mut FakeFunction, bars: &[Bar], at: u8, fault: CapFault) {
    assert_eq!(walk(f, bars), Err(PciError::Capability { at, fault }));
}

fn mem(index: u8, size: u64) -> Bar {
    Bar {
        index,
        kind: BarKind::Mem32,
        prefetchable: false,
        base: 0xe000_0000,
        size,
    }
}

/// An endpoint with an MSI-X capability at 0x40 (table size `vectors`),
/// table and PBA dwords as given.
fn msix(vectors: u16, table: u32, pba: u32) -> FakeFunction {
    let mut f = FakeFunction::endpoint(0x8086, 0x10d3);
    let mut body = (vectors - 1).to_le_bytes().to_vec();
    body.extend_from_slice(&table.to_le_bytes());
    body.extend_from_slice(&pba.to_le_bytes());
    f.caps(&[(0x40, CAP_MSIX, &body)]);
    f
}

#[test]
fn edu_has_one_64_bit_msi_vector() {
    let mut f = models::edu();
    let caps = walk(&mut f, &[]).unwrap();
    assert_eq!(
        caps.list.as_slice(),
        &[Capability {
            id: CAP_MSI,
            offset: EDU_MSI
        }]
    );
    let msi = caps.msi.unwrap();
    assert_eq!(
        msi,
        Msi {
            offset: 0x40,
            addr64: true,
            per_vector_mask: false,
            vectors: 1
        }
    );
    assert_eq!(msi.size(), 16);
    assert_eq!(
        (
            msi.control(),
            msi.address(),
            msi.upper_address(),
            msi.data()
        ),
        (0x42, 0x44, Some(0x48), 0x4c)
    );
    assert_eq!(msi.mask_bits(), None);
    assert_eq!(caps.msix, None);
    assert_eq!(caps.find(CAP_MSI), Some(0x40));
    assert_eq!(caps.find(CAP_MSIX), None);
}

#[test]
fn virtio_has_msix_in_bar_1_and_vendor_capabilities() {
    let mut f = models::virtio_net();
    let bars = size_bars(&mut f).unwrap();
    f.log.clear();
    let caps = walk(&mut f, &bars).unwrap();
    assert_eq!(
        caps.msix,
        Some(MsiX {
            offset: VIRTIO_MSIX,
            table_size: 3,
            table: BarRegion {
                bar: 1,
                offset: 0,
                len: 48
            },
            pba: BarRegion {
                bar: 1,
                offset: 0x800,
                len: 8
            },
        })
    );
    let x = caps.msix.unwrap();
    assert_eq!(x.control(), 0x9a);
    assert_eq!((x.table.pages(), x.pba.pages()), ((0, 0x1000), (0, 0x1000)));
    assert_eq!(caps.msi, None);
    assert!(caps.vendor().eq(VIRTIO_VENDOR_CAPS));
    assert_eq!(caps.list.len(), 6);
    // Without the BARs, the MSI-X table has nowhere to be.
    cap_error(&mut f, &[], VIRTIO_MSIX, CapFault::MsixBar);
}

#[test]
fn no_list_without_the_status_bit() {
    let mut f = models::edu();
    f.set16(reg::STATUS, 0);
    assert_eq!(walk(&mut f, &[]).unwrap(), Capabilities::default());
    // A list whose head is 0 is empty.
    let mut f = models::edu();
    f.set8(reg::CAPABILITIES_PTR, 0);
    assert!(walk(&mut f, &[]).unwrap().list.is_empty());
}

#[test]
fn loops_are_found() {
    let mut f = FakeFunction::endpoint(1, 2);
    f.caps(&[(0x40, 0x01, &[]), (0x50, 0x09, &[]), (0x60, 0x09, &[])]);
    f.set8(0x61, 0x40);
    cap_error(&mut f, &[], 0x60, CapFault::Loop);
    let mut f = FakeFunction::endpoint(1, 2);
    f.caps(&[(0xfc, 0x09, &[])]);
    f.set8(0xfd, 0xfc);
    cap_error(&mut f, &[], 0xfc, CapFault::Loop);
}

#[test]
fn pointers_must_be_past_the_header_and_aligned() {
    for bad in [0x04, 0x34, 0x3c, 0x41, 0x42, 0x43, 0xff] {
        let mut f = FakeFunction::endpoint(1, 2);
        f.caps(&[(0x40, 0x09, &[])]);
        f.set8(0x41, bad);
        cap_error(&mut f, &[], 0x40, CapFault::BadPointer(bad));
        let mut f = FakeFunction::endpoint(1, 2);
        f.caps(&[(0x40, 0x09, &[])]);
        f.set8(reg::CAPABILITIES_PTR, bad);
        cap_error(&mut f, &[], 0x34, CapFault::BadPointer(bad));
    }
}

#[test]
fn a_full_list_of_48_is_walked() {
    let mut f = FakeFunction::endpoint(1, 2);
    let list: Vec<(u8, u8, &[u8])> = (0x40..=0xfc)
        .step_by(4)
        .map(|at| (at, 0x09, &[][..]))
        .collect();
    assert_eq!(list.len(), MAX_CAPS);
    f.caps(&list);
    let caps = walk(&mut f, &[]).unwrap();
    assert_eq!(caps.list.len(), 48);
    // Every header was read once, plus the status and the head pointer.
    assert_eq!(f.log.len(), 48 + 2);
}

#[test]
fn structures_must_end_by_0x100() {
    // A 64-bit MSI with per-vector masking takes 24 bytes.
    let mut f = FakeFunction::endpoint(1, 2);
    f.caps(&[(0xec, CAP_MSI, &[0x80, 0x01])]);
    cap_error(&mut f, &[], 0xec, CapFault::Truncated);
    let mut f = FakeFunction::endpoint(1, 2);
    f.caps(&[(0xe8, CAP_MSI, &[0x80, 0x01])]);
    assert_eq!(walk(&mut f, &[]).unwrap().msi.unwrap().size(), 24);
    let mut f = FakeFunction::endpoint(1, 2);
    f.caps(&[(0xf8, CAP_MSIX, &[0, 0])]);
    cap_error(&mut f, &[mem(0, 0x1000)], 0xf8, CapFault::Truncated);
}

#[test]
fn one_msi_and_one_msix_at_most() {
    let mut f = FakeFunction::endpoint(1, 2);
    f.caps(&[(0x40, CAP_MSI, &[0, 0]), (0x50, CAP_MSI, &[0, 0])]);
    cap_error(&mut f, &[], 0x50, CapFault::Duplicate);
    let mut f = msix(1, 0, 0x800);
    f.caps(&[
        (0x40, CAP_MSIX, &[0; 10]),
        (0x50, 0x09, &[]),
        (0x60, CAP_MSIX, &[0; 10]),
    ]);
    f.set32(0x48, 0x800);
    f.set32(0x68, 0x800);
    cap_error(&mut f, &[mem(0, 0x1000)], 0x60, CapFault::Duplicate);
}

#[test]
fn msi_layouts() {
    for (control, len, data, mask, vectors) in [
        (0x0000u16, 12, 0x48, None, 1),
        (0x000a, 12, 0x48, None, 32),
        (0x000e, 12, 0x48, None, 1), // reserved: one vector
        (0x0100, 20, 0x48, Some(0x4c), 1),
        (0x0186, 24, 0x4c, Some(0x50), 8),
    ] {
        let mut f = FakeFunction::endpoint(1, 2);
        f.caps(&[(0x40, CAP_MSI, &control.to_le_bytes())]);
        let msi = walk(&mut f, &[]).unwrap().msi.unwrap();
        assert_eq!((msi.size(), msi.data(), msi.mask_bits()), (len, data, mask));
        assert_eq!(msi.vectors, vectors, "{control:#x}");
    }
}

#[test]
fn msix_structures_must_lie_in_a_memory_bar() {
    let bars = [
        mem(0, 0x1000),
        Bar {
            index: 1,
            kind: BarKind::Io,
            prefetchable: false,
            base: 0xc000,
            size: 0x100,
        },
        Bar {
            index: 2,
            kind: BarKind::Mem64,
            prefetchable: true,
            base: 1 << 32,
            size: 0x8000,
        },
    ];
    // Inside: the table fills a 32 KiB BAR exactly.
    let caps = walk(&mut msix(2048, 2, 0x800), &bars).unwrap();
    let x = caps.msix.unwrap();
    assert_eq!((x.table.len, x.table.end()), (0x8000, 0x8000));
    assert_eq!((x.pba.bar, x.pba.len), (0, 256));
    for (table, pba, fault) in [
        (0x1000, 0x800, CapFault::MsixOutsideBar), // table past BAR 0
        (0x0ff8, 0x800, CapFault::MsixOutsideBar), // table ends past it
        (0, 0x1000, CapFault::MsixOutsideBar),     // PBA past it
        (0xffff_fff8, 0x800, CapFault::MsixOutsideBar),
        (1, 0x800, CapFault::MsixBar), // an I/O BAR
        (3, 0x800, CapFault::MsixBar), // the top half of BAR 2
        (4, 0x800, CapFault::MsixBar), // unimplemented
        (6, 0x800, CapFault::MsixBar), // reserved
        (0, 7, CapFault::MsixBar),
        (0, 0x10, CapFault::MsixOverlap),    // PBA inside the table
        (0x20, 0x58, CapFault::MsixOverlap), // PBA at the table's end
    ] {
        let mut f = msix(4, table, pba);
        cap_error(&mut f, &bars, 0x40, fault);
    }
    // Table and PBA in different BARs may share offsets.
    assert!(walk(&mut msix(4, 0x2, 0x0), &bars).is_ok());
    // Just apart.
    assert!(walk(&mut msix(4, 0, 0x40), &bars).is_ok());
}

#[test]
fn a_list_that_changes_as_it_is_read_still_ends() {
    for xor in [0x4000u32, 0x0400, 0xff00, 0x0100, 0x8000] {
        let mut f = models::virtio_net();
        let bars = size_bars(&mut f).unwrap();
        f.log.clear();
        for at in [0x98u16, 0x84, 0x70, 0x60, 0x50, 0x40] {
            f.glitches.push(Glitch {
                offset: at,
                width: 2,
                from: 0,
                xor,
            });
        }
        let _ = walk(&mut f, &bars);
        assert!(f.log.len() <= 2 + 48 * 4);
    }
}
