//! Host tests for the MCFG parser over crafted tables in fake memory. The
//! "good" table is the one QEMU 7.2 builds for `-M q35` (see
//! [`QEMU_Q35_MCFG`]); the bad ones break one rule each.

use super::*;
use crate::acpi::tests::{RSDT, fix_checksum, mem, rsdp, rsdt, sdt, system_with};
use crate::testmem::FakeMem;
use crate::testrng::Rng;

const MCFG: u64 = 0x1_5000;
const ECAM: u64 = 0xb000_0000;

/// The MCFG of QEMU 7.2.22 (Debian), `-M q35`, as SeaBIOS left it in guest
/// memory: one allocation, base 0xb0000000, segment 0, buses 0 to 255.
const QEMU_Q35_MCFG: [u8; 60] = [
    0x4d, 0x43, 0x46, 0x47, 0x3c, 0x00, 0x00, 0x00, 0x01, 0x8c, 0x42, 0x4f, 0x43, 0x48, 0x53, 0x20,
    0x42, 0x58, 0x50, 0x43, 0x20, 0x20, 0x20, 0x20, 0x01, 0x00, 0x00, 0x00, 0x42, 0x58, 0x50, 0x43,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb0,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00,
];

fn allocation(base: u64, segment: u16, start: u8, end: u8) -> Vec<u8> {
    let mut v = base.to_le_bytes().to_vec();
    v.extend_from_slice(&segment.to_le_bytes());
    v.extend_from_slice(&[start, end, 0, 0, 0, 0]);
    v
}

fn mcfg_table(allocations: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![0; 8];
    body.extend(allocations.iter().flatten());
    sdt(b"MCFG", &body)
}

fn qemu_mcfg() -> Vec<u8> {
    mcfg_table(&[allocation(ECAM, 0, 0, 255)])
}

fn parse(table: &[u8]) -> Result<Option<Mcfg>, AcpiError> {
    let (m, at) = system_with(&[(MCFG, table)]);
    parse_mcfg(&m, at)
}

fn good(table: &[u8]) -> Mcfg {
    parse(table).unwrap().unwrap()
}

fn err(table: &[u8]) -> AcpiError {
    parse(table).unwrap_err()
}

fn f(segment: u16, bus: u8, device: u8, function: u8) -> PciFunction {
    PciFunction::new(segment, bus, device, function)
}

#[test]
fn builder_matches_qemu() {
    assert_eq!(qemu_mcfg()[36..], QEMU_Q35_MCFG[36..]);
    assert_eq!(good(&QEMU_Q35_MCFG), good(&qemu_mcfg()));
}

#[test]
fn qemu_q35() {
    let m = good(&QEMU_Q35_MCFG);
    assert_eq!(
        m.allocations.as_slice(),
        &[EcamAllocation {
            base: ECAM,
            segment: 0,
            start_bus: 0,
            end_bus: 255
        }]
    );
    let a = &m.allocations[0];
    assert_eq!(a.window(), (ECAM, ECAM + 256 * ECAM_BUS_SIZE));
    assert_eq!(m.config_address(f(0, 0, 0, 0)), Some(ECAM));
    // The SATA controller at 00:1f.2.
    assert_eq!(
        m.config_address(f(0, 0, 0x1f, 2)),
        Some(ECAM + (0x1f << 15) + (2 << 12))
    );
    assert_eq!(
        m.config_address(f(0, 255, 31, 7)),
        Some(ECAM + 256 * ECAM_BUS_SIZE - FUNCTION_CONFIG_SIZE)
    );
    assert_eq!(m.config_address(f(0, 0, 32, 0)), None);
    assert_eq!(m.config_address(f(0, 0, 0, 8)), None);
    assert_eq!(m.config_address(f(1, 0, 0, 0)), None);
    assert_eq!(m.allocation_for(0, 17), Some(a));
    assert_eq!(m.allocation_for(1, 17), None);
}

#[test]
fn several_segments_and_bus_ranges() {
    let m = good(&mcfg_table(&[
        allocation(ECAM, 0, 0, 0x3f),
        // Segment 1, buses 0x80..=0x8f: base is where bus 0 would be.
        allocation(0xe000_0000, 1, 0x80, 0x8f),
        // Overlaps the first: the first wins.
        allocation(0xc000_0000, 0, 0, 0xff),
    ]));
    assert_eq!(m.allocations.len(), 3);
    assert_eq!(
        m.config_address(f(0, 0x3f, 0, 0)),
        Some(ECAM + 0x3f * ECAM_BUS_SIZE)
    );
    assert_eq!(
        m.config_address(f(0, 0x40, 0, 0)),
        Some(0xc000_0000 + 0x40 * ECAM_BUS_SIZE)
    );
    assert_eq!(
        m.config_address(f(1, 0x80, 1, 0)),
        Some(0xe000_0000 + 0x80 * ECAM_BUS_SIZE + (1 << 15))
    );
    assert_eq!(m.config_address(f(1, 0x7f, 0, 0)), None);
    assert_eq!(m.config_address(f(1, 0x90, 0, 0)), None);
    assert_eq!(
        m.allocations[1].window(),
        (
            0xe000_0000 + 0x80 * ECAM_BUS_SIZE,
            0xe000_0000 + 0x90 * ECAM_BUS_SIZE
        )
    );
    // An allocation's own lookup checks its own range.
    assert_eq!(m.allocations[1].config_address(f(0, 0x80, 0, 0)), None);
    // One bus.
    let m = good(&mcfg_table(&[allocation(ECAM, 0, 5, 5)]));
    assert_eq!(
        m.allocations[0].window(),
        (ECAM + 5 * ECAM_BUS_SIZE, ECAM + 6 * ECAM_BUS_SIZE)
    );
    assert_eq!(m.config_address(f(0, 4, 0, 0)), None);
}

#[test]
fn no_mcfg_is_none() {
    let (m, at) = system_with(&[]);
    assert_eq!(parse_mcfg(&m, at), Ok(None));
    // QEMU's stand-in while the guest has ECAM off.
    let mut t = qemu_mcfg();
    t[..4].copy_from_slice(b"QEMU");
    fix_checksum(&mut t, 9);
    assert_eq!(parse(&t), Ok(None));
}

#[test]
fn empty_is_fine() {
    let m = good(&mcfg_table(&[]));
    assert!(m.allocations.is_empty());
    assert_eq!(m.config_address(f(0, 0, 0, 0)), None);
}

#[test]
fn bad_checksum() {
    let mut t = qemu_mcfg();
    t[47] ^= 0x10;
    assert_eq!(err(&t), AcpiError::BadChecksum("MCFG"));
}

#[test]
fn bad_lengths() {
    // Truncated before the reserved bytes end.
    for body in [0, 4, 7] {
        assert_eq!(
            err(&sdt(b"MCFG", &vec![0; body])),
            AcpiError::BadLength("MCFG")
        );
    }
    // Part of an allocation.
    for extra in [1, 8, 15] {
        let mut body = vec![0; 8];
        body.extend(allocation(ECAM, 0, 0, 255));
        body.extend(vec![0; extra]);
        assert_eq!(
            err(&sdt(b"MCFG", &body)),
            AcpiError::BadLength("MCFG"),
            "{extra}"
        );
    }
    // Shorter than an ACPI header.
    let mut t = qemu_mcfg();
    t[4..8].copy_from_slice(&35u32.to_le_bytes());
    fix_checksum(&mut t, 9);
    assert_eq!(err(&t), AcpiError::BadLength("MCFG"));
}

#[test]
fn malformed_allocations() {
    for a in [
        allocation(ECAM, 0, 8, 7),                           // ends below its start
        allocation(ECAM + 0x1000, 0, 0, 255),                // base not 1 MiB-aligned
        allocation(0xffff_ffff_fff0_0000, 0, 0, 0),          // window past 2^64
        allocation(0u64.wrapping_sub(256 << 20), 0, 0, 255), // ends exactly at 2^64
    ] {
        assert!(
            matches!(
                err(&mcfg_table(std::slice::from_ref(&a))),
                AcpiError::Malformed { table: "MCFG", .. }
            ),
            "{a:?}"
        );
    }
    // The highest window that fits.
    let top = 0u64.wrapping_sub(257 << 20);
    let m = good(&mcfg_table(&[allocation(top, 0, 0, 255)]));
    assert_eq!(
        m.config_address(f(0, 255, 31, 7)),
        Some(top + (256 << 20) - 4096)
    );
}

#[test]
fn limit_refuses_not_truncates() {
    let many = |n: u16| -> Vec<_> { (0..n).map(|s| allocation(ECAM, s, 0, 255)).collect() };
    assert_eq!(
        good(&mcfg_table(&many(MAX_ALLOCATIONS as u16)))
            .allocations
            .len(),
        MAX_ALLOCATIONS
    );
    assert_eq!(
        err(&mcfg_table(&many(MAX_ALLOCATIONS as u16 + 1))),
        AcpiError::TooMany {
            what: "MCFG allocations",
            limit: MAX_ALLOCATIONS
        }
    );
}

#[test]
fn table_longer_than_readable_memory() {
    let mut m = mem();
    let near_end = 0xf_ffe0;
    m.put(0xE_0010, &rsdp(0, RSDT as u32, 0));
    m.put(RSDT, &rsdt(&[near_end as u32]));
    m.put(near_end, &qemu_mcfg()[..32]);
    assert!(matches!(
        parse_mcfg(&m, 0xE_0010),
        Err(AcpiError::Unreadable(_))
    ));
}

#[test]
fn hand_built_allocations_do_not_overflow() {
    let a = EcamAllocation {
        base: u64::MAX,
        segment: 0,
        start_bus: 1,
        end_bus: 255,
    };
    assert_eq!(a.window(), (u64::MAX, u64::MAX));
    assert_eq!(a.config_address(f(0, 1, 0, 0)), None);
}

#[test]
fn random_tables_never_panic() {
    let mut rng = Rng(0x3cf6_b000_0000_00ff);
    let base = mcfg_table(&[
        allocation(ECAM, 0, 0, 255),
        allocation(0xe000_0000, 1, 0x80, 0x8f),
    ]);
    let (mut m, at): (FakeMem, u64) = system_with(&[(MCFG, &base)]);
    let mut oks = 0;
    for round in 0..20_000 {
        let mut t = base.clone();
        if round % 2 == 0 {
            for _ in 0..=rng.below(4) {
                let i = rng.below(t.len() as u64) as usize;
                t[i] = rng.next() as u8;
            }
        } else {
            t.truncate(44);
            let n = rng.below(80) as usize;
            t.extend((0..n).map(|_| rng.next() as u8));
            let len = t.len() as u32;
            t[4..8].copy_from_slice(&len.to_le_bytes());
        }
        if round % 8 != 0 {
            fix_checksum(&mut t, 9);
        }
        m.put(MCFG, &t);
        if let Ok(Some(mcfg)) = parse_mcfg(&m, at) {
            oks += 1;
            for a in &mcfg.allocations {
                assert!(a.start_bus <= a.end_bus);
                let (lo, hi) = a.window();
                assert!(lo < hi);
            }
            for _ in 0..8 {
                let v = rng.next();
                let t = f(
                    (v & 1) as u16,
                    (v >> 8) as u8,
                    (v >> 16) as u8 & 0x3f,
                    (v >> 24) as u8 & 0xf,
                );
                if let Some(addr) = mcfg.config_address(t) {
                    assert!(t.is_valid());
                    assert_eq!(addr % FUNCTION_CONFIG_SIZE, 0);
                }
            }
        }
        m.put(MCFG, &vec![0; t.len()]);
    }
    assert!(oks > 1000, "{oks}");
}
