//! Host tests for ACPI parsing over crafted tables in fake memory.

use super::*;
use crate::testmem::FakeMem;

pub(super) const EBDA: u64 = 0x9_fc00;
pub(super) const RSDT: u64 = 0x1_0000;
pub(super) const XSDT: u64 = 0x1_1000;
pub(super) const MADT: u64 = 0x1_2000;
pub(super) const FACP: u64 = 0x1_3000;

pub(super) fn mem() -> FakeMem {
    let mut m = FakeMem::new(0, 0x10_0000);
    m.put(EBDA_SEGMENT_PTR, &((EBDA >> 4) as u16).to_le_bytes());
    m
}

pub(super) fn fix_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    bytes[at] = 0u8.wrapping_sub(sum(bytes));
}

pub(super) fn rsdp(rev: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut v = vec![0u8; if rev >= 2 { 36 } else { 20 }];
    v[..8].copy_from_slice(RSDP_SIG);
    v[9..15].copy_from_slice(b"MHTEST");
    v[15] = rev;
    v[16..20].copy_from_slice(&rsdt.to_le_bytes());
    fix_checksum(&mut v[..20], 8);
    if rev >= 2 {
        v[20..24].copy_from_slice(&36u32.to_le_bytes());
        v[24..32].copy_from_slice(&xsdt.to_le_bytes());
        fix_checksum(&mut v, 32);
    }
    v
}

pub(super) fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 36];
    v[..4].copy_from_slice(sig);
    v.extend_from_slice(body);
    let len = v.len() as u32;
    v[4..8].copy_from_slice(&len.to_le_bytes());
    v[8] = 1;
    fix_checksum(&mut v, 9);
    v
}

pub(super) fn rsdt(tables: &[u32]) -> Vec<u8> {
    sdt(
        b"RSDT",
        &tables
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .collect::<Vec<_>>(),
    )
}

pub(super) fn xsdt(tables: &[u64]) -> Vec<u8> {
    sdt(
        b"XSDT",
        &tables
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .collect::<Vec<_>>(),
    )
}

fn lapic(id: u8, flags: u32) -> Vec<u8> {
    let mut e = vec![LOCAL_APIC, 8, id, id];
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

fn ioapic(id: u8, addr: u32, gsi: u32) -> Vec<u8> {
    let mut e = vec![IO_APIC, 12, id, 0];
    e.extend_from_slice(&addr.to_le_bytes());
    e.extend_from_slice(&gsi.to_le_bytes());
    e
}

fn iso(source: u8, gsi: u32, flags: u16) -> Vec<u8> {
    let mut e = vec![SOURCE_OVERRIDE, 10, 0, source];
    e.extend_from_slice(&gsi.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

pub(super) fn madt(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
    body.extend_from_slice(&1u32.to_le_bytes());
    for e in entries {
        body.extend_from_slice(e);
    }
    sdt(b"APIC", &body)
}

pub(super) fn typical_entries() -> Vec<Vec<u8>> {
    vec![
        lapic(0, 1),
        lapic(1, 1),
        lapic(2, 0), // disabled
        lapic(3, 2), // online-capable but not enabled
        ioapic(2, 0xfec0_0000, 0),
        iso(0, 2, 0),
        iso(9, 9, 0b1111),
        vec![4, 6, 0xff, 5, 0, 1], // local APIC NMI: ignored
    ]
}

/// Memory with an RSDP v1 in the BIOS area, an RSDT listing a FACP and a MADT.
fn system() -> (FakeMem, u64) {
    let mut m = mem();
    let at = 0xE_0010;
    m.put(at, &rsdp(0, RSDT as u32, 0));
    m.put(RSDT, &rsdt(&[FACP as u32, MADT as u32]));
    m.put(FACP, &sdt(b"FACP", &[0; 8]));
    m.put(MADT, &madt(&typical_entries()));
    (m, at)
}

/// Where [`system_with`] puts the RSDP.
pub(super) const RSDP_AT: u64 = 0xE_0010;

/// Like [`system`], with `extra` tables at the given addresses listed in
/// the RSDT after the FACP and the MADT.
pub(super) fn system_with(extra: &[(u64, &[u8])]) -> (FakeMem, u64) {
    let mut m = mem();
    let mut list = vec![FACP as u32, MADT as u32];
    list.extend(extra.iter().map(|&(at, _)| at as u32));
    m.put(RSDP_AT, &rsdp(0, RSDT as u32, 0));
    m.put(RSDT, &rsdt(&list));
    m.put(FACP, &sdt(b"FACP", &[0; 8]));
    m.put(MADT, &madt(&typical_entries()));
    for &(at, bytes) in extra {
        m.put(at, bytes);
    }
    (m, RSDP_AT)
}

#[test]
fn find_table_by_signature() {
    let hpet = sdt(b"HPET", &[0; 20]);
    let (m, at) = system_with(&[(0x1_4000, &hpet)]);
    assert_eq!(find_table(&m, at, b"APIC"), Ok(Some(MADT)));
    assert_eq!(find_table(&m, at, b"HPET"), Ok(Some(0x1_4000)));
    assert_eq!(find_table(&m, at, b"DMAR"), Ok(None));
    // The first of two tables with one signature.
    let (m, at) = system_with(&[(0x1_4000, &hpet), (0x1_5000, &hpet)]);
    assert_eq!(find_table(&m, at, b"HPET"), Ok(Some(0x1_4000)));
    // Root-table errors are the caller's too.
    assert_eq!(
        find_table(&m, 0xE_0000, b"HPET"),
        Err(AcpiError::BadChecksum("RSDP"))
    );
}

#[test]
fn finds_rsdp_in_bios_area() {
    let (m, at) = system();
    assert_eq!(find_rsdp(&m), Some(at));
}

#[test]
fn prefers_ebda() {
    let (mut m, _) = system();
    m.put(EBDA + 0x20, &rsdp(0, RSDT as u32, 0));
    assert_eq!(find_rsdp(&m), Some(EBDA + 0x20));
    // Only the first KiB of the EBDA is searched.
    let (mut m, at) = system();
    m.put(EBDA + 0x400, &rsdp(0, RSDT as u32, 0));
    assert_eq!(find_rsdp(&m), Some(at));
}

#[test]
fn rsdp_search_rejects_bad_candidates() {
    let mut m = mem();
    let mut bad = rsdp(0, RSDT as u32, 0);
    bad[8] ^= 1;
    m.put(0xE_0000, &bad);
    // Valid but not on a 16-byte boundary.
    m.put(0xE_0108, &rsdp(0, RSDT as u32, 0));
    // v2 whose first 20 bytes are fine but extended checksum is not.
    let mut v2 = rsdp(2, RSDT as u32, XSDT);
    v2[32] ^= 1;
    m.put(0xE_0200, &v2);
    // v2 claiming a length other than 36.
    let mut v2 = rsdp(2, RSDT as u32, XSDT);
    v2[20] = 40;
    fix_checksum(&mut v2, 32);
    m.put(0xE_0300, &v2);
    assert_eq!(find_rsdp(&m), None);
    m.put(0xf_ffd0, &rsdp(2, RSDT as u32, XSDT));
    assert_eq!(find_rsdp(&m), Some(0xf_ffd0));
}

#[test]
fn rsdp_search_without_low_memory() {
    // Nothing readable at all: no panic, no result.
    let m = FakeMem::new(0x100_0000, 16);
    assert_eq!(find_rsdp(&m), None);
}

#[test]
fn parses_madt_via_rsdt() {
    let (m, at) = system();
    let madt = parse_madt(&m, at).unwrap();
    assert_eq!(madt.local_apic_addr, 0xfee0_0000);
    assert_eq!(madt.cpu_count, 2);
    assert_eq!(madt.apic_ids.len(), 2, "the enabled CPUs' APIC ids");
    assert_eq!(
        madt.io_apics.as_slice(),
        &[IoApicInfo {
            id: 2,
            addr: 0xfec0_0000,
            gsi_base: 0
        }]
    );
    assert_eq!(madt.overrides.len(), 2);
    assert_eq!(
        madt.isa_irq(0),
        IrqOverride {
            source: 0,
            gsi: 2,
            active_low: false,
            level_triggered: false
        }
    );
    assert_eq!(
        madt.isa_irq(9),
        IrqOverride {
            source: 9,
            gsi: 9,
            active_low: true,
            level_triggered: true
        }
    );
    assert_eq!(
        madt.isa_irq(4),
        IrqOverride {
            source: 4,
            gsi: 4,
            active_low: false,
            level_triggered: false
        }
    );
}

#[test]
fn polarity_and_trigger_encodings() {
    let (mut m, at) = system();
    // 1 = active high / edge explicitly; 3 = low / level.
    let entries = vec![iso(3, 3, 0b0101), iso(4, 20, 0b1100), iso(5, 21, 0b0011)];
    m.put(MADT, &madt(&entries));
    let madt = parse_madt(&m, at).unwrap();
    assert_eq!(
        madt.isa_irq(3),
        IrqOverride {
            source: 3,
            gsi: 3,
            active_low: false,
            level_triggered: false
        }
    );
    assert_eq!(
        madt.isa_irq(4),
        IrqOverride {
            source: 4,
            gsi: 20,
            active_low: false,
            level_triggered: true
        }
    );
    assert_eq!(
        madt.isa_irq(5),
        IrqOverride {
            source: 5,
            gsi: 21,
            active_low: true,
            level_triggered: false
        }
    );
}

#[test]
fn lapic_address_override() {
    let (mut m, at) = system();
    let mut e = vec![LOCAL_APIC_ADDR_OVERRIDE, 12, 0, 0];
    e.extend_from_slice(&0x1_2345_6000u64.to_le_bytes());
    m.put(MADT, &madt(&[lapic(0, 1), e]));
    assert_eq!(parse_madt(&m, at).unwrap().local_apic_addr, 0x1_2345_6000);
}

#[test]
fn uses_xsdt_when_present() {
    let (mut m, _) = system();
    let at = 0xE_0040;
    m.put(at, &rsdp(2, 0xdead_0000, XSDT)); // RSDT pointer unreadable: must not be used
    m.put(XSDT, &xsdt(&[FACP, MADT]));
    assert_eq!(parse_madt(&m, at).unwrap().cpu_count, 2);
    // Revision 2 with a null XSDT falls back to the RSDT.
    m.put(at, &rsdp(2, RSDT as u32, 0));
    assert_eq!(parse_madt(&m, at).unwrap().cpu_count, 2);
}

#[test]
fn bad_checksums() {
    let (m, _) = system();
    assert_eq!(
        parse_madt(&m, 0xE_0000).unwrap_err(),
        AcpiError::BadChecksum("RSDP")
    );
    let (mut m, at) = system();
    m.bytes[RSDT as usize + 20] ^= 0x55;
    assert_eq!(
        parse_madt(&m, at).unwrap_err(),
        AcpiError::BadChecksum("RSDT")
    );
    let (mut m, at) = system();
    m.bytes[MADT as usize + 40] ^= 0x55;
    assert_eq!(
        parse_madt(&m, at).unwrap_err(),
        AcpiError::BadChecksum("MADT")
    );
    // A root table with a valid checksum but the wrong signature.
    let (mut m, at) = system();
    m.put(RSDT, &sdt(b"XSDT", &(MADT as u32).to_le_bytes()));
    assert_eq!(
        parse_madt(&m, at).unwrap_err(),
        AcpiError::BadChecksum("RSDT")
    );
}

#[test]
fn bad_lengths() {
    // Root table shorter than its header.
    let (mut m, at) = system();
    let mut r = rsdt(&[]);
    r[4] = 20;
    fix_checksum(&mut r, 9);
    m.put(RSDT, &r);
    assert_eq!(
        parse_madt(&m, at).unwrap_err(),
        AcpiError::BadLength("RSDT")
    );
    // MADT claiming to be enormous.
    let (mut m, at) = system();
    m.put_u32(MADT + 4, 0xffff_fff0);
    assert_eq!(
        parse_madt(&m, at).unwrap_err(),
        AcpiError::BadLength("MADT")
    );
    // MADT too short for the local APIC address and flags.
    let (mut m, at) = system();
    m.put(MADT, &sdt(b"APIC", &[0; 4]));
    assert_eq!(
        parse_madt(&m, at).unwrap_err(),
        AcpiError::BadLength("MADT")
    );
}

#[test]
fn malformed_madt_entries() {
    let entry_err = AcpiError::BadLength("MADT entry");
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![lapic(0, 1), vec![0, 0]],        // zero length: would loop forever
        vec![vec![7, 1]],                     // length 1
        vec![lapic(0, 1), vec![1, 40, 0, 0]], // runs past the table
        vec![vec![IO_APIC, 4, 1, 0]],         // too short for its type
        vec![vec![LOCAL_APIC, 4, 0, 0]],
        vec![vec![SOURCE_OVERRIDE, 8, 0, 0, 0, 0, 0, 0]],
        vec![vec![LOCAL_APIC_ADDR_OVERRIDE, 8, 0, 0, 0, 0, 0, 0]],
        vec![lapic(0, 1), vec![9]], // a single trailing byte
    ];
    for entries in cases {
        let (mut m, at) = system();
        m.put(MADT, &madt(&entries));
        assert_eq!(parse_madt(&m, at).unwrap_err(), entry_err, "{entries:?}");
    }
}

#[test]
fn no_madt() {
    let (mut m, at) = system();
    m.put(RSDT, &rsdt(&[FACP as u32]));
    assert_eq!(parse_madt(&m, at).unwrap_err(), AcpiError::NoMadt);
    m.put(RSDT, &rsdt(&[]));
    assert_eq!(parse_madt(&m, at).unwrap_err(), AcpiError::NoMadt);
}

#[test]
fn unreadable_tables() {
    let (mut m, at) = system();
    m.put(RSDT, &rsdt(&[0xffff_0000]));
    assert_eq!(
        parse_madt(&m, at).unwrap_err(),
        AcpiError::Unreadable(0xffff_0000)
    );
    let (mut m, _) = system();
    let at = 0xE_0040;
    m.put(at, &rsdp(2, 0, u64::MAX - 8));
    assert!(matches!(
        parse_madt(&m, at).unwrap_err(),
        AcpiError::Unreadable(_)
    ));
    assert_eq!(
        parse_madt(&m, 0x200_0000).unwrap_err(),
        AcpiError::Unreadable(0x200_0000)
    );
    // MADT whose length runs off the end of readable memory.
    let (mut m, at) = system();
    let near_end = 0xf_ff00;
    m.put(RSDT, &rsdt(&[near_end as u32]));
    let mut t = madt(&typical_entries());
    t[4..8].copy_from_slice(&0x1000u32.to_le_bytes());
    m.put(near_end, &t[..0x100.min(t.len())]);
    assert!(matches!(
        parse_madt(&m, at).unwrap_err(),
        AcpiError::Unreadable(_)
    ));
}

#[test]
fn capacity_limits_do_not_fail() {
    let (mut m, at) = system();
    let mut entries: Vec<Vec<u8>> = (0..10)
        .map(|i| ioapic(i, 0xfec0_0000 + u32::from(i) * 0x1000, u32::from(i) * 24))
        .collect();
    entries.extend((0..20).map(|i| iso(i, u32::from(i), 0)));
    entries.extend((0..=255).map(|i| lapic(i, 1)));
    m.put(MADT, &madt(&entries));
    let madt = parse_madt(&m, at).unwrap();
    assert_eq!(madt.io_apics.len(), 8);
    assert_eq!(madt.overrides.len(), 16);
    assert_eq!(madt.cpu_count, 256);
    assert_eq!(madt.apic_ids.len(), 64);
    assert_eq!(madt.apic_ids[63], 63);
}

#[test]
fn errors_display() {
    assert_eq!(
        AcpiError::NoMadt.to_string(),
        "the ACPI tables have no MADT"
    );
    assert!(AcpiError::Unreadable(0x10).to_string().contains("0x10"));
    assert_eq!(
        AcpiError::TooMany {
            what: "DMAR hardware units",
            limit: 8
        }
        .to_string(),
        "the ACPI DMAR hardware units exceed MH's limit of 8"
    );
    assert_eq!(
        AcpiError::Malformed {
            table: "MCFG",
            why: "an allocation ends below its start bus"
        }
        .to_string(),
        "the ACPI MCFG is malformed: an allocation ends below its start bus"
    );
    assert_eq!(
        AcpiError::BadLength("DMAR device scope").to_string(),
        "the ACPI DMAR device scope has an invalid length"
    );
}

#[test]
fn pci_function_validity() {
    assert!(PciFunction::new(0, 255, 31, 7).is_valid());
    assert!(!PciFunction::new(0, 0, 32, 0).is_valid());
    assert!(!PciFunction::new(0, 0, 0, 8).is_valid());
}
