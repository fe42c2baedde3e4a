//! Host tests for the DMAR parser over crafted tables in fake memory. The
//! "good" table is the one QEMU 7.2 builds for
//! `-M q35 -device intel-iommu,intremap=on` (read from a guest's memory,
//! see [`QEMU_Q35_DMAR`]); the bad ones break one rule each.

use super::*;
use crate::acpi::tests::{FACP, MADT, RSDT, XSDT, fix_checksum, mem, rsdp, sdt, system_with, xsdt};
use crate::acpi::{MAX_TABLE_LEN, parse_madt};
use crate::testmem::FakeMem;
use crate::testrng::Rng;

const DMAR: u64 = 0x1_4000;
const IOMMU_BASE: u64 = 0xfed9_0000;

/// The DMAR of QEMU 7.2.22 (Debian), `-M q35 -device intel-iommu,intremap=on`,
/// as SeaBIOS left it in guest memory: host address width 38 (39 bits),
/// INTR_REMAP; one DRHD without INCLUDE_PCI_ALL at 0xfed90000 on segment 0
/// whose scopes are the I/O APIC (id 0, requester id ff:00.0) and one
/// endpoint per function of the root bus (00:00.0, 00:01.0, 00:1f.0,
/// 00:1f.2, 00:1f.3). QEMU lists devices this way since 6.1, for its
/// `bypass_iommu` buses; before, the unit had INCLUDE_PCI_ALL and only the
/// I/O APIC scope.
const QEMU_Q35_DMAR: [u8; 112] = [
    0x44, 0x4d, 0x41, 0x52, 0x70, 0x00, 0x00, 0x00, 0x01, 0x28, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20,
    0x42, 0x58, 0x50, 0x43, 0x20, 0x20, 0x20, 0x20, 0x01, 0x00, 0x00, 0x00, 0x42, 0x58, 0x50, 0x43,
    0x01, 0x00, 0x00, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd9, 0xfe, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x08, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00,
    0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x02, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x03,
];

const ENDPOINT: u8 = 1;
const SUB_HIERARCHY: u8 = 2;
const IOAPIC: u8 = 3;
const HPET: u8 = 4;

fn scope(kind: u8, id: u8, bus: u8, path: &[(u8, u8)]) -> Vec<u8> {
    let mut v = vec![kind, (6 + 2 * path.len()) as u8, 0, 0, id, bus];
    for &(d, f) in path {
        v.extend_from_slice(&[d, f]);
    }
    v
}

/// A remapping structure: type, length, then `body`.
fn structure(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut v = kind.to_le_bytes().to_vec();
    v.extend_from_slice(&((4 + body.len()) as u16).to_le_bytes());
    v.extend_from_slice(body);
    v
}

fn drhd(flags: u8, segment: u16, base: u64, scopes: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![flags, 0];
    body.extend_from_slice(&segment.to_le_bytes());
    body.extend_from_slice(&base.to_le_bytes());
    body.extend(scopes.iter().flatten());
    structure(0, &body)
}

fn rmrr(segment: u16, base: u64, limit: u64, scopes: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&segment.to_le_bytes());
    body.extend_from_slice(&base.to_le_bytes());
    body.extend_from_slice(&limit.to_le_bytes());
    body.extend(scopes.iter().flatten());
    structure(1, &body)
}

fn dmar_table(haw: u8, flags: u8, structures: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![haw, flags];
    body.extend_from_slice(&[0; 10]);
    body.extend(structures.iter().flatten());
    sdt(b"DMAR", &body)
}

/// QEMU 7.2's q35 unit, built with the helpers.
fn qemu_unit() -> Vec<u8> {
    let mut scopes = vec![scope(IOAPIC, 0, 0xff, &[(0, 0)])];
    for (d, f) in [(0, 0), (1, 0), (0x1f, 0), (0x1f, 2), (0x1f, 3)] {
        scopes.push(scope(ENDPOINT, 0, 0, &[(d, f)]));
    }
    drhd(0, 0, IOMMU_BASE, &scopes)
}

fn qemu_dmar() -> Vec<u8> {
    dmar_table(38, 1, &[qemu_unit()])
}

/// An RSDT listing a FACP, the MADT and `table` as the DMAR.
fn system(table: &[u8]) -> (FakeMem, u64) {
    system_with(&[(DMAR, table)])
}

fn parse(table: &[u8]) -> Result<Option<Dmar>, AcpiError> {
    let (m, at) = system(table);
    parse_dmar(&m, at)
}

fn good(table: &[u8]) -> Dmar {
    parse(table).unwrap().unwrap()
}

fn err(table: &[u8]) -> AcpiError {
    parse(table).unwrap_err()
}

fn f(bus: u8, device: u8, function: u8) -> PciFunction {
    PciFunction::new(0, bus, device, function)
}

#[test]
fn builder_matches_qemu() {
    // Everything after the header (OEM fields, checksum) is the same.
    assert_eq!(qemu_dmar()[36..], QEMU_Q35_DMAR[36..]);
    assert_eq!(good(&QEMU_Q35_DMAR), good(&qemu_dmar()));
}

#[test]
fn qemu_q35() {
    let d = good(&QEMU_Q35_DMAR);
    assert_eq!(d.host_address_width, 38);
    assert_eq!(d.address_bits(), 39);
    assert_eq!(d.flags, DmarFlags::INTR_REMAP);
    assert!(d.interrupt_remapping());
    assert!(d.reserved.is_empty());
    assert_eq!(d.units.len(), 1);
    let u = &d.units[0];
    assert_eq!(u.register_base, IOMMU_BASE);
    assert_eq!(u.register_size(), 4096);
    assert_eq!(u.segment, 0);
    assert!(!u.include_pci_all());
    assert_eq!(u.scopes.len(), 6);
    assert_eq!(
        u.scopes[0],
        DeviceScope {
            kind: ScopeKind::IoApic,
            enumeration_id: 0,
            start_bus: 0xff,
            path: [PathElem {
                device: 0,
                function: 0
            }]
            .into_iter()
            .collect(),
        }
    );
    // Listed functions are translated by the unit, others not at all.
    for (d_, f_) in [(0, 0), (1, 0), (0x1f, 0), (0x1f, 2), (0x1f, 3)] {
        assert_eq!(d.unit_for(f(0, d_, f_)), Some(u), "00:{d_:02x}.{f_}");
    }
    assert_eq!(d.unit_for(f(0, 2, 0)), None);
    assert_eq!(d.unit_for(f(1, 0, 0)), None);
    assert_eq!(d.unit_for(PciFunction::new(1, 0, 1, 0)), None);
    // The I/O APIC's scope is not a PCI function the unit translates.
    assert_eq!(d.unit_for(f(0xff, 0, 0)), None);
    let (unit, s) = d.platform_scope(ScopeKind::IoApic, 0).unwrap();
    assert_eq!(unit, u);
    assert_eq!(s.function(0), Some(f(0xff, 0, 0)));
    assert_eq!(d.platform_scope(ScopeKind::IoApic, 1), None);
    assert_eq!(d.platform_scope(ScopeKind::Hpet, 0), None);
}

#[test]
fn no_dmar_is_none() {
    let (m, at) = system_with(&[]);
    assert_eq!(parse_dmar(&m, at), Ok(None));
    // A table with another signature at the DMAR's place.
    assert_eq!(parse(&sdt(b"WAET", &[0; 4])), Ok(None));
}

#[test]
fn madt_still_found_next_to_dmar() {
    let (m, at) = system(&qemu_dmar());
    assert_eq!(parse_madt(&m, at).unwrap().cpu_count, 2);
}

#[test]
fn found_via_xsdt() {
    let (mut m, _) = system(&qemu_dmar());
    let at = 0xE_0040;
    m.put(at, &rsdp(2, 0xdead_0000, XSDT));
    m.put(XSDT, &xsdt(&[FACP, MADT, DMAR]));
    assert_eq!(parse_dmar(&m, at).unwrap().unwrap().units.len(), 1);
}

#[test]
fn include_pci_all_unit() {
    // QEMU before 6.1 (and most firmware): one unit for everything.
    let catch_all = drhd(1, 0, IOMMU_BASE, &[scope(IOAPIC, 0, 0xff, &[(0, 0)])]);
    let d = good(&dmar_table(38, 1, std::slice::from_ref(&catch_all)));
    assert!(d.units[0].include_pci_all());
    assert_eq!(d.unit_for(f(0, 3, 0)), Some(&d.units[0]));
    assert_eq!(d.unit_for(f(7, 31, 7)), Some(&d.units[0]));
    assert_eq!(d.unit_for(PciFunction::new(1, 0, 0, 0)), None);
    assert_eq!(d.unit_for(f(0, 32, 0)), None);
    assert_eq!(d.unit_for(f(0, 0, 8)), None);
    // A client platform: graphics has its own unit, listed first.
    let gfx = drhd(0, 0, 0xfed9_1000, &[scope(ENDPOINT, 0, 0, &[(2, 0)])]);
    let d = good(&dmar_table(38, 1, &[gfx, catch_all]));
    assert_eq!(d.unit_for(f(0, 2, 0)).unwrap().register_base, 0xfed9_1000);
    assert_eq!(d.unit_for(f(0, 2, 1)).unwrap().register_base, IOMMU_BASE);
    assert_eq!(d.unit_for(f(0, 3, 0)).unwrap().register_base, IOMMU_BASE);
    // A listing unit wins over INCLUDE_PCI_ALL whatever the order.
    let gfx = drhd(0, 0, 0xfed9_1000, &[scope(ENDPOINT, 0, 0, &[(2, 0)])]);
    let all = drhd(1, 0, IOMMU_BASE, &[]);
    let d = good(&dmar_table(38, 0, &[all, gfx]));
    assert_eq!(d.unit_for(f(0, 2, 0)).unwrap().register_base, 0xfed9_1000);
}

#[test]
fn one_include_pci_all_per_segment() {
    let a = drhd(1, 0, 0x1000, &[]);
    let b = drhd(1, 0, 0x2000, &[]);
    assert!(matches!(
        err(&dmar_table(38, 0, &[a.clone(), b])),
        AcpiError::Malformed { table: "DMAR", .. }
    ));
    let c = drhd(1, 1, 0x2000, &[]);
    let d = good(&dmar_table(38, 0, &[a, c]));
    assert_eq!(
        d.unit_for(PciFunction::new(1, 4, 0, 0))
            .unwrap()
            .register_base,
        0x2000
    );
}

#[test]
fn bridges_need_config_space() {
    // QEMU's layout with a root port at 00:05.0 and a device behind it on
    // bus 1: the port is listed as a sub-hierarchy, the device not at all.
    let unit = drhd(
        0,
        0,
        IOMMU_BASE,
        &[
            scope(IOAPIC, 0, 0xff, &[(0, 0)]),
            scope(ENDPOINT, 0, 0, &[(0, 0)]),
            scope(SUB_HIERARCHY, 0, 0, &[(5, 0)]),
        ],
    );
    let d = good(&dmar_table(38, 1, &[unit]));
    assert_eq!(d.units[0].scopes[2].kind, ScopeKind::PciSubHierarchy);
    assert!(d.unit_for(f(0, 5, 0)).is_some());
    assert_eq!(d.unit_for(f(1, 0, 0)), None);
    let port = |p: PciFunction| {
        (p == f(0, 5, 0)).then_some(BridgeBuses {
            secondary: 1,
            subordinate: 2,
        })
    };
    assert!(d.unit_for_with(f(1, 0, 0), port).is_some());
    assert!(d.unit_for_with(f(2, 3, 1), port).is_some());
    assert_eq!(d.unit_for_with(f(3, 0, 0), port), None);
    // An endpoint two hops down: 00:05.0 -> bus 1, device 00.0.
    let unit = drhd(
        0,
        0,
        IOMMU_BASE,
        &[scope(ENDPOINT, 0, 0, &[(5, 0), (0, 0)])],
    );
    let d = good(&dmar_table(38, 1, &[unit]));
    assert_eq!(d.units[0].scopes[0].function(0), None);
    assert_eq!(d.unit_for(f(1, 0, 0)), None);
    assert!(d.unit_for_with(f(1, 0, 0), port).is_some());
    assert_eq!(d.unit_for_with(f(1, 0, 1), port), None);
    assert_eq!(d.unit_for_with(f(1, 0, 0), |_| None), None);
}

#[test]
fn reserved_regions() {
    let usb = scope(ENDPOINT, 0, 0, &[(0x1d, 0)]);
    let gfx = scope(ENDPOINT, 0, 0, &[(2, 0)]);
    let structures = [
        qemu_unit(),
        rmrr(0, 0x7d00_0000, 0x7d0f_ffff, &[usb.clone(), gfx.clone()]),
        rmrr(0, 0xe_8000, 0xe_8fff, &[usb]),
        rmrr(1, 0x1000, 0x1fff, &[gfx]),
    ];
    let d = good(&dmar_table(38, 1, &structures));
    assert_eq!(d.reserved.len(), 3);
    assert_eq!(d.reserved[0].base, 0x7d00_0000);
    assert_eq!(d.reserved[0].limit, 0x7d0f_ffff);
    assert_eq!(d.reserved[0].scopes.len(), 2);
    let bases = |t| d.reserved_for(t).map(|r| r.base).collect::<Vec<_>>();
    assert_eq!(bases(f(0, 0x1d, 0)), [0x7d00_0000, 0xe_8000]);
    assert_eq!(bases(f(0, 2, 0)), [0x7d00_0000]);
    assert_eq!(bases(PciFunction::new(1, 0, 2, 0)), [0x1000]);
    assert!(bases(f(0, 3, 0)).is_empty());
    // A one-byte region is fine; one that ends before it starts is not.
    assert_eq!(
        good(&dmar_table(38, 0, &[rmrr(0, 5, 5, &[])]))
            .reserved
            .len(),
        1
    );
    assert!(matches!(
        err(&dmar_table(38, 0, &[rmrr(0, 0x2000, 0x1fff, &[])])),
        AcpiError::Malformed { table: "DMAR", .. }
    ));
}

#[test]
fn platform_devices() {
    let unit = drhd(
        1,
        0,
        IOMMU_BASE,
        &[
            scope(IOAPIC, 8, 0xf0, &[(0x1f, 0)]),
            scope(IOAPIC, 9, 0, &[(5, 4)]),
            scope(HPET, 0, 0, &[(0x1f, 7)]),
            scope(5, 1, 0, &[(0x15, 1)]),
            scope(0x42, 0, 0, &[(0, 0)]),
        ],
    );
    let d = good(&dmar_table(45, 0, &[unit]));
    let s = &d.units[0].scopes;
    assert_eq!(s[3].kind, ScopeKind::AcpiNamespace);
    assert_eq!(s[4].kind, ScopeKind::Other(0x42));
    let rid = |k, id| d.platform_scope(k, id).and_then(|(_, s)| s.function(0));
    assert_eq!(rid(ScopeKind::IoApic, 8), Some(f(0xf0, 0x1f, 0)));
    assert_eq!(rid(ScopeKind::IoApic, 9), Some(f(0, 5, 4)));
    assert_eq!(rid(ScopeKind::Hpet, 0), Some(f(0, 0x1f, 7)));
    assert_eq!(rid(ScopeKind::AcpiNamespace, 1), Some(f(0, 0x15, 1)));
    // Platform and unknown scopes are not PCI scopes: 00:00.0 comes from
    // INCLUDE_PCI_ALL, not from the Other scope.
    assert_eq!(d.unit_for(f(0, 0, 0)), Some(&d.units[0]));
}

#[test]
fn flags_and_size() {
    let mut unit = qemu_unit();
    unit[5] = 3; // 8 pages of registers
    unit[4] = 0x81; // INCLUDE_PCI_ALL and a reserved bit, kept
    let d = good(&dmar_table(47, 0b111 | 0x80, &[unit]));
    assert_eq!(d.address_bits(), 48);
    assert!(d.flags.contains(
        DmarFlags::INTR_REMAP | DmarFlags::X2APIC_OPT_OUT | DmarFlags::DMA_CTRL_PLATFORM_OPT_IN
    ));
    assert_eq!(d.flags.bits(), 0x87);
    assert_eq!(d.units[0].register_size(), 8 * 4096);
    assert!(d.units[0].include_pci_all());
    assert_eq!(d.units[0].flags.bits(), 0x81);
    let d = good(&dmar_table(38, 2, &[]));
    assert!(!d.interrupt_remapping());
    assert!(d.flags.contains(DmarFlags::X2APIC_OPT_OUT));
    assert!(d.units.is_empty());
}

#[test]
fn other_structures_skipped() {
    let atsr = structure(2, &[1, 0, 0, 0]); // QEMU's, with device-iotlb=on
    let atsr_scoped = structure(2, &[0, 0, 0, 0, SUB_HIERARCHY, 8, 0, 0, 0, 0, 5, 0]);
    let mut rhsa_body = vec![0; 4];
    rhsa_body.extend_from_slice(&IOMMU_BASE.to_le_bytes());
    rhsa_body.extend_from_slice(&1u32.to_le_bytes());
    let rhsa = structure(3, &rhsa_body);
    let andd = structure(4, b"\0\0\0\x01\\_SB.I2C0\0");
    let satc = structure(5, &[0, 0, 0, 0, ENDPOINT, 8, 0, 0, 0, 0, 2, 0]);
    let unknown = structure(0x99, &[]);
    let unknown_body = structure(6, &[0xff; 30]);
    let structures = [
        qemu_unit(),
        atsr,
        atsr_scoped,
        rhsa,
        andd,
        satc,
        unknown,
        unknown_body,
        rmrr(0, 0x1000, 0x1fff, &[]),
    ];
    let d = good(&dmar_table(38, 1, &structures));
    assert_eq!(d.units.len(), 1);
    assert_eq!(d.reserved.len(), 1);
    // Skipped does not mean unchecked: each must still be long enough.
    for (kind, short) in [(2u16, 3usize), (3, 15), (4, 3), (5, 3)] {
        let t = dmar_table(38, 1, &[qemu_unit(), structure(kind, &vec![0; short])]);
        assert_eq!(
            err(&t),
            AcpiError::BadLength("DMAR remapping structure"),
            "type {kind}"
        );
    }
}

#[test]
fn bad_checksum() {
    let mut t = qemu_dmar();
    t[60] ^= 1;
    assert_eq!(err(&t), AcpiError::BadChecksum("DMAR"));
}

#[test]
fn truncated_header() {
    // Too short for the host address width, flags and reserved bytes.
    for body in [0, 1, 2, 11] {
        let t = sdt(b"DMAR", &vec![0; body]);
        assert_eq!(err(&t), AcpiError::BadLength("DMAR"), "{body} bytes");
    }
    // Shorter than an ACPI header.
    let mut t = qemu_dmar();
    t[4..8].copy_from_slice(&20u32.to_le_bytes());
    fix_checksum(&mut t, 9);
    assert_eq!(err(&t), AcpiError::BadLength("DMAR"));
    // Longer than any table we accept.
    let mut t = qemu_dmar();
    t[4..8].copy_from_slice(&(MAX_TABLE_LEN + 1).to_le_bytes());
    assert_eq!(err(&t), AcpiError::BadLength("DMAR"));
}

/// `table` with the DRHD's length field at offset 50 replaced by `len`.
fn with_unit_len(len: u16) -> Vec<u8> {
    let mut t = qemu_dmar();
    t[50..52].copy_from_slice(&len.to_le_bytes());
    fix_checksum(&mut t, 9);
    t
}

#[test]
fn malformed_structures() {
    let bad = AcpiError::BadLength("DMAR remapping structure");
    // The unit runs past the table, by one byte or by a lot.
    assert_eq!(err(&with_unit_len(65)), bad);
    assert_eq!(err(&with_unit_len(0xffff)), bad);
    // Zero and tiny lengths: would loop or make no progress.
    for len in [0, 1, 3] {
        assert_eq!(err(&with_unit_len(len)), bad, "length {len}");
    }
    let zero = vec![0x02, 0, 0, 0];
    assert_eq!(err(&dmar_table(38, 1, &[qemu_unit(), zero])), bad);
    // A unit too short for its fixed fields, and an RMRR.
    assert_eq!(err(&dmar_table(38, 1, &[structure(0, &[0; 11])])), bad);
    assert_eq!(err(&dmar_table(38, 1, &[structure(1, &[0; 19])])), bad);
    // One to three stray bytes after the last structure.
    for extra in 1..4 {
        let t = dmar_table(38, 1, &[qemu_unit(), vec![0; extra]]);
        assert_eq!(err(&t), bad, "{extra} trailing bytes");
    }
    // A shorter unit length that leaves a scope half inside: the scope
    // then runs past its structure.
    assert_eq!(
        err(&with_unit_len(60)),
        AcpiError::BadLength("DMAR device scope")
    );
}

#[test]
fn malformed_scopes() {
    let bad = AcpiError::BadLength("DMAR device scope");
    let cases: Vec<Vec<u8>> = vec![
        vec![ENDPOINT, 0, 0, 0, 0, 0, 0, 0], // zero length: would loop
        vec![ENDPOINT, 1],
        vec![ENDPOINT, 6, 0, 0, 0, 0],          // no path
        vec![ENDPOINT, 9, 0, 0, 0, 0, 0, 0, 0], // odd: half a path element
        vec![ENDPOINT, 255, 0, 0, 0, 0, 0, 0],  // runs past the unit
        vec![ENDPOINT, 10, 0, 0, 0, 0, 0, 0],   // two bytes past
        vec![ENDPOINT],                         // a stray byte
    ];
    for s in cases {
        let unit = drhd(
            0,
            0,
            IOMMU_BASE,
            &[scope(IOAPIC, 0, 0xff, &[(0, 0)]), s.clone()],
        );
        assert_eq!(err(&dmar_table(38, 1, &[unit])), bad, "{s:?}");
        let region = rmrr(0, 0, 0xfff, std::slice::from_ref(&s));
        assert_eq!(err(&dmar_table(38, 1, &[region])), bad, "{s:?}");
    }
    // Path elements out of range.
    for path in [[(32, 0)], [(0, 8)], [(0xff, 0xff)]] {
        let unit = drhd(0, 0, IOMMU_BASE, &[scope(ENDPOINT, 0, 0, &path)]);
        assert!(matches!(
            err(&dmar_table(38, 1, &[unit])),
            AcpiError::Malformed { table: "DMAR", .. }
        ));
    }
}

#[test]
fn unaligned_register_base() {
    let unit = drhd(1, 0, IOMMU_BASE + 0x800, &[]);
    assert!(matches!(
        err(&dmar_table(38, 1, &[unit])),
        AcpiError::Malformed { table: "DMAR", .. }
    ));
}

#[test]
fn limits_refuse_not_truncate() {
    let unit = |i: u64| drhd(0, 0, IOMMU_BASE + i * 0x1000, &[]);
    let units: Vec<_> = (0..MAX_UNITS as u64).map(unit).collect();
    assert_eq!(good(&dmar_table(38, 1, &units)).units.len(), MAX_UNITS);
    let units: Vec<_> = (0..=MAX_UNITS as u64).map(unit).collect();
    assert_eq!(
        err(&dmar_table(38, 1, &units)),
        AcpiError::TooMany {
            what: "DMAR hardware units",
            limit: MAX_UNITS
        }
    );

    let endpoints = |n: usize| -> Vec<_> {
        (0..n)
            .map(|i| scope(ENDPOINT, 0, (i / 32) as u8, &[((i % 32) as u8, 0)]))
            .collect()
    };
    let t = dmar_table(
        38,
        1,
        &[drhd(0, 0, IOMMU_BASE, &endpoints(MAX_UNIT_SCOPES))],
    );
    assert_eq!(good(&t).units[0].scopes.len(), MAX_UNIT_SCOPES);
    let t = dmar_table(
        38,
        1,
        &[drhd(0, 0, IOMMU_BASE, &endpoints(MAX_UNIT_SCOPES + 1))],
    );
    assert!(matches!(
        err(&t),
        AcpiError::TooMany {
            limit: MAX_UNIT_SCOPES,
            ..
        }
    ));

    let regions: Vec<_> = (0..=MAX_RMRRS as u64)
        .map(|i| rmrr(0, i << 12, (i << 12) + 0xfff, &[]))
        .collect();
    assert_eq!(
        good(&dmar_table(38, 1, &regions[..MAX_RMRRS]))
            .reserved
            .len(),
        MAX_RMRRS
    );
    assert_eq!(
        err(&dmar_table(38, 1, &regions)),
        AcpiError::TooMany {
            what: "DMAR reserved memory regions",
            limit: MAX_RMRRS
        }
    );
    let t = dmar_table(38, 1, &[rmrr(0, 0, 0xfff, &endpoints(MAX_RMRR_SCOPES))]);
    assert_eq!(good(&t).reserved[0].scopes.len(), MAX_RMRR_SCOPES);
    let t = dmar_table(38, 1, &[rmrr(0, 0, 0xfff, &endpoints(MAX_RMRR_SCOPES + 1))]);
    assert!(matches!(
        err(&t),
        AcpiError::TooMany {
            limit: MAX_RMRR_SCOPES,
            ..
        }
    ));

    let path = [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)];
    let t = dmar_table(
        38,
        1,
        &[drhd(
            0,
            0,
            IOMMU_BASE,
            &[scope(ENDPOINT, 0, 0, &path[..MAX_PATH])],
        )],
    );
    assert_eq!(good(&t).units[0].scopes[0].path.len(), MAX_PATH);
    let t = dmar_table(
        38,
        1,
        &[drhd(0, 0, IOMMU_BASE, &[scope(ENDPOINT, 0, 0, &path)])],
    );
    assert!(matches!(
        err(&t),
        AcpiError::TooMany {
            limit: MAX_PATH,
            ..
        }
    ));
}

#[test]
fn table_longer_than_readable_memory() {
    let mut m = mem();
    let near_end = 0xf_ff00;
    m.put(0xE_0010, &rsdp(0, RSDT as u32, 0));
    m.put(RSDT, &crate::acpi::tests::rsdt(&[near_end as u32]));
    let mut t = qemu_dmar();
    t[4..8].copy_from_slice(&0x1000u32.to_le_bytes());
    m.put(near_end, &t);
    assert!(matches!(
        parse_dmar(&m, 0xE_0010),
        Err(AcpiError::Unreadable(_))
    ));
    // Only the signature is readable.
    let mut m = FakeMem::new(0, 0x10_0000);
    m.put(0xE_0010, &rsdp(0, RSDT as u32, 0));
    m.put(RSDT, &crate::acpi::tests::rsdt(&[0xf_fffc]));
    m.put(0xf_fffc, b"DMAR");
    assert!(matches!(
        parse_dmar(&m, 0xE_0010),
        Err(AcpiError::Unreadable(_))
    ));
}

#[test]
fn fits_on_the_kernel_stack() {
    // Returned by value at boot, on a 64 KiB stack.
    assert!(
        core::mem::size_of::<Dmar>() <= 6 * 1024,
        "{}",
        core::mem::size_of::<Dmar>()
    );
}

/// Checks what a parsed table promises, and that lookups do not panic.
fn check_invariants(d: &Dmar, rng: &mut Rng) {
    for u in &d.units {
        assert_eq!(u.register_base & 0xfff, 0);
        assert!(u.register_size() <= 128 << 20);
        for s in &u.scopes {
            assert!(!s.path.is_empty());
            assert!(s.path.iter().all(|p| p.device < 32 && p.function < 8));
        }
    }
    for r in &d.reserved {
        assert!(r.limit >= r.base);
        assert!(r.scopes.iter().all(|s| !s.path.is_empty()));
    }
    for _ in 0..8 {
        let v = rng.next();
        let t = PciFunction::new(
            (v & 1) as u16,
            (v >> 8) as u8,
            (v >> 16) as u8 & 0x3f,
            (v >> 24) as u8 & 0xf,
        );
        let _ = d.unit_for(t);
        let _ = d.unit_for_with(t, |_| {
            Some(BridgeBuses {
                secondary: (v >> 32) as u8,
                subordinate: (v >> 40) as u8,
            })
        });
        let _ = d.reserved_for(t).count();
        let _ = d.platform_scope(ScopeKind::from((v >> 48) as u8 & 7), (v >> 56) as u8);
    }
}

#[test]
fn random_tables_never_panic() {
    let mut rng = Rng(0x0d3a_2c0f_fee0_0001);
    let usb = scope(ENDPOINT, 0, 0, &[(0x1d, 0)]);
    let base = dmar_table(
        38,
        1,
        &[
            qemu_unit(),
            drhd(
                1,
                0,
                0xfed9_1000,
                &[scope(SUB_HIERARCHY, 0, 0, &[(5, 0), (0, 0)])],
            ),
            rmrr(0, 0x7d00_0000, 0x7d0f_ffff, &[usb]),
            structure(2, &[1, 0, 0, 0]),
        ],
    );
    let (mut m, at) = system(&base);
    let mut oks = 0;
    for round in 0..20_000 {
        let mut t = base.clone();
        match round % 3 {
            // A few bytes changed: after the ACPI header, or anywhere.
            0 | 1 => {
                let from = if round % 3 == 0 { 36 } else { 0 };
                for _ in 0..=rng.below(4) {
                    let i = from + rng.below((t.len() - from) as u64) as usize;
                    t[i] = rng.next() as u8;
                }
            }
            // Random bytes after the DMAR header, any length.
            _ => {
                t.truncate(48);
                let n = rng.below(200) as usize;
                t.extend((0..n).map(|_| {
                    // Small values make plausible types and lengths.
                    let v = rng.next();
                    if v & 1 == 0 {
                        (v >> 8) as u8 & 0x1f
                    } else {
                        (v >> 8) as u8
                    }
                }));
                let len = t.len() as u32;
                t[4..8].copy_from_slice(&len.to_le_bytes());
            }
        }
        // Usually a right checksum, so the structure walk is reached.
        if round % 8 != 0 {
            fix_checksum(&mut t, 9);
        }
        m.put(DMAR, &t);
        if let Ok(Some(d)) = parse_dmar(&m, at) {
            oks += 1;
            check_invariants(&d, &mut rng);
        }
        m.put(DMAR, &vec![0; t.len()]);
    }
    // The mutations leave a fair share of tables valid.
    assert!(oks > 1000, "{oks}");
}
