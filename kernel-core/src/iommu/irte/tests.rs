use super::*;
use crate::iommu::testframes::{Frames, Mem};
use crate::testrng::Rng;
use std::collections::BTreeMap;

/// QEMU 7.2 with intremap=on, eim=on: QI, IR, EIM, PT, IRO 0xf0.
const ECAP: Ecap = Ecap(0x0000_0000_0000_0f5a);

/// Memory that logs every write, to check the order entries are written in.
#[derive(Default)]
struct Logged {
    mem: Mem,
    writes: Vec<(usize, u64)>,
}

impl TableMemory for Logged {
    fn read(&self, table: Frame, index: usize) -> u64 {
        self.mem.read(table, index)
    }
    fn write(&mut self, table: Frame, index: usize, value: u64) {
        self.writes.push((index, value));
        self.mem.write(table, index, value);
    }
    fn entries(&self, table: Frame) -> &[u64; crate::pagetable::ENTRIES] {
        self.mem.entries(table)
    }
}

/// What QEMU 7.2 makes of an entry's source fields for a request from
/// `sid`: type 00 accepts anything, 01 compares under the qualifier's
/// mask (00 all bits, 01 all but bit 2, 10 all but 2:1, 11 all but 2:0),
/// 10 checks the bus against a range, 11 refuses.
fn qemu_accepts(hi: u64, sid: u16) -> bool {
    let source = hi as u16;
    let qualifier = ((hi >> 16) & 3) as usize;
    match (hi >> 18) & 3 {
        0 => true,
        1 => {
            let mask = [0xffff, 0xfffb, 0xfff9, 0xfff8][qualifier];
            source & mask == sid & mask
        }
        2 => {
            let bus = sid >> 8;
            (source & 0xff) <= bus && bus <= source >> 8
        }
        _ => false,
    }
}

#[test]
fn a_fixed_xapic_entry_bit_by_bit() {
    // Present, vector 0x41 in 23:16, APIC id 3 in 47:40; source 00:03.0
    // in 15:0, qualifier 00, validation type 01 in 19:18.
    let e = Irte::fixed((0, 0x18), 0x41, 3);
    assert_eq!(
        e.encode(ApicMode::XApic),
        Ok([0x0000_0300_0041_0001, 0x0000_0000_0004_0018])
    );
    // QEMU reads an xAPIC destination as bits 15:8 of the 32-bit field.
    let [lo, _] = e.encode(ApicMode::XApic).unwrap();
    assert_eq!(((lo >> 32) & 0xff00) >> 8, 3);
    assert_eq!(
        Irte::decode(e.encode(ApicMode::XApic).unwrap(), ApicMode::XApic),
        Some(e)
    );
}

#[test]
fn an_x2apic_entry_holds_the_whole_id() {
    let e = Irte::fixed((0x12, 0x34), 0xec, 0x1234_5678);
    assert_eq!(
        e.encode(ApicMode::X2Apic),
        Ok([0x1234_5678_00ec_0001, 0x0000_0000_0004_1234])
    );
    assert_eq!(e.source_id(), 0x1234);
    assert_eq!(
        Irte::decode(e.encode(ApicMode::X2Apic).unwrap(), ApicMode::X2Apic),
        Some(e)
    );
    // The same words read in xAPIC mode have reserved destination bits.
    assert_eq!(
        Irte::decode(e.encode(ApicMode::X2Apic).unwrap(), ApicMode::XApic),
        None
    );
}

#[test]
fn every_low_word_field() {
    let base = Irte::fixed((0, 8), 0x30, 1);
    let lo = |e: Irte| e.encode(ApicMode::XApic).unwrap()[0] & 0xffff;
    assert_eq!(lo(base), 0x0001);
    let logical = Irte {
        destination_mode: DestinationMode::Logical,
        ..base
    };
    assert_eq!(lo(logical), 0x0005);
    let hint = Irte {
        redirection_hint: true,
        ..base
    };
    assert_eq!(lo(hint), 0x0009);
    let level = Irte {
        trigger: Trigger::Level,
        ..base
    };
    assert_eq!(lo(level), 0x0011);
    let modes = [
        (Delivery::Fixed, 0x0001),
        (Delivery::LowestPriority, 0x0021),
        (Delivery::Smi, 0x0041),
        (Delivery::Nmi, 0x0081),
        (Delivery::Init, 0x00a1),
        (Delivery::ExtInt, 0x00e1),
    ];
    for (delivery, bits) in modes {
        let e = Irte { delivery, ..base };
        assert_eq!(lo(e), bits, "{delivery:?}");
        assert_eq!(
            Irte::decode(e.encode(ApicMode::XApic).unwrap(), ApicMode::XApic),
            Some(e)
        );
    }
}

#[test]
fn entries_that_cannot_be_encoded_are_refused() {
    let too_wide = Irte::fixed((0, 8), 0x30, 0x100);
    assert_eq!(
        too_wide.encode(ApicMode::XApic),
        Err(Error::InvalidArgument)
    );
    assert!(too_wide.encode(ApicMode::X2Apic).is_ok());
    for vector in [0, 2, 15] {
        let e = Irte::fixed((0, 8), vector, 0);
        assert_eq!(e.encode(ApicMode::XApic), Err(Error::InvalidArgument));
        let lowest = Irte {
            delivery: Delivery::LowestPriority,
            ..e
        };
        assert_eq!(lowest.encode(ApicMode::XApic), Err(Error::InvalidArgument));
        // An NMI ignores its vector.
        let nmi = Irte {
            delivery: Delivery::Nmi,
            ..e
        };
        assert!(nmi.encode(ApicMode::XApic).is_ok());
    }
    assert!(Irte::fixed((0, 8), 16, 0).encode(ApicMode::XApic).is_ok());
}

#[test]
fn entries_not_of_this_form_decode_to_none() {
    let good = Irte::fixed((0, 0x18), 0x41, 3)
        .encode(ApicMode::XApic)
        .unwrap();
    let [lo, hi] = good;
    assert!(Irte::decode(good, ApicMode::XApic).is_some());
    let bad_low = [
        (lo & !1, "not present"),
        (lo | 1 << 1, "faults disabled"),
        (lo | 1 << 8, "software bits"),
        (lo | 1 << 12, "reserved 14:12"),
        (lo | 1 << 15, "posted"),
        (lo | 1 << 24, "reserved 31:24"),
        (lo | 3 << 5, "delivery mode 011"),
        (lo | 6 << 5, "delivery mode 110"),
        (lo | 1 << 32, "xAPIC reserved 39:32"),
        (lo | 1 << 48, "xAPIC reserved 63:48"),
    ];
    for (w, why) in bad_low {
        assert_eq!(Irte::decode([w, hi], ApicMode::XApic), None, "{why}");
    }
    let bad_high = [
        (hi & !(3 << 18), "no source validation"),
        (hi ^ (3 << 18), "bus-range validation"),
        (hi | 3 << 18, "validation type 11"),
        (hi | 1 << 16, "a qualifier that masks function bits"),
        (hi | 1 << 20, "reserved 63:20"),
        (hi | 1 << 63, "reserved 63:20"),
    ];
    for (w, why) in bad_high {
        assert_eq!(Irte::decode([lo, w], ApicMode::XApic), None, "{why}");
    }
}

#[test]
fn the_source_check_admits_only_the_entry_s_own_function() {
    let hi = Irte::fixed((2, 0x19), 0x41, 0)
        .encode(ApicMode::XApic)
        .unwrap()[1];
    assert!(qemu_accepts(hi, 0x0219));
    for other in [0x0218u16, 0x021a, 0x021d, 0x0119, 0x0319, 0x0019, 0xffff] {
        assert!(!qemu_accepts(hi, other), "{other:#06x}");
    }
}

#[test]
fn remappable_msi_addresses() {
    let cases = [
        (0u16, 0xfee0_0018u32),
        (1, 0xfee0_0038),
        (2, 0xfee0_0058),
        (0x7fff, 0xfeef_fff8),
        (0x8000, 0xfee0_001c),
        (0xffff, 0xfeef_fffc),
    ];
    for (handle, address) in cases {
        let m = remappable_msi(handle);
        assert_eq!(m, MsiMessage { address, data: 0 }, "{handle:#x}");
        assert_eq!(msi_handle(m), Some(handle));
    }
    for handle in 0..=u16::MAX {
        assert_eq!(msi_handle(remappable_msi(handle)), Some(handle));
    }
}

#[test]
fn what_the_unit_makes_of_other_messages() {
    let m = remappable_msi(5);
    // Compatibility format: not remapped through the table.
    let compat = MsiMessage {
        address: 0xfee0_0000 | 3 << 12,
        data: 0x41,
    };
    assert_eq!(msi_handle(compat), None);
    // Bits 1:0 are not looked at.
    assert_eq!(
        msi_handle(MsiMessage {
            address: m.address | 0b11,
            ..m
        }),
        Some(5)
    );
    assert_eq!(
        msi_handle(MsiMessage {
            address: m.address & !0x00f0_0000 | 0x0010_0000,
            ..m
        }),
        None,
        "0xfe1x_xxxx is not the interrupt window"
    );
    assert_eq!(
        msi_handle(MsiMessage {
            address: 0xfed0_0018,
            data: 0
        }),
        None
    );
    // A subhandle is added; reserved data bits with one are refused.
    assert_eq!(msi_handle(MsiMessage { data: 3, ..m }), Some(8));
    assert_eq!(msi_handle(MsiMessage { data: 1 << 16, ..m }), None);
    assert_eq!(
        msi_handle(MsiMessage {
            data: 1,
            ..remappable_msi(0xffff)
        }),
        None
    );
    // Without the subhandle bit the data is not looked at.
    let plain = MsiMessage {
        address: m.address & !(1 << 3),
        data: 0xdead_beef,
    };
    assert_eq!(msi_handle(plain), Some(5));
}

fn table(f: &mut Frames, mode: ApicMode) -> IrTable {
    IrTable::new(f, ECAP, 39, mode).unwrap()
}

#[test]
fn making_a_table() {
    let mut f = Frames::new(0x100);
    let t = table(&mut f, ApicMode::XApic);
    assert_eq!(t.irta(), t.frame().addr() | 7);
    assert_eq!((t.entries_used(), t.mode()), (0, ApicMode::XApic));
    t.destroy(&mut f);
    let t = table(&mut f, ApicMode::X2Apic);
    assert_eq!(t.irta(), t.frame().addr() | 1 << 11 | 7);
    assert_eq!(t.irta(), 0x10_1807);
    t.destroy(&mut f);
    assert!(f.live.is_empty());
    // A unit without IR, or without EIM for x2APIC ids.
    assert_eq!(
        IrTable::new(&mut f, Ecap(0), 39, ApicMode::XApic).unwrap_err(),
        Error::NotSupported
    );
    let no_eim = Ecap(ECAP.0 & !(1 << 4));
    assert_eq!(
        IrTable::new(&mut f, no_eim, 39, ApicMode::X2Apic).unwrap_err(),
        Error::NotSupported
    );
    assert!(IrTable::new(&mut f, no_eim, 39, ApicMode::XApic).is_ok());
    for bits in [0, 12, 53] {
        assert_eq!(
            IrTable::new(&mut f, ECAP, bits, ApicMode::XApic).unwrap_err(),
            Error::InvalidArgument
        );
    }
    // A frame beyond the host width is given back.
    let mut high = Frames::new(1 << 27);
    assert_eq!(
        IrTable::new(&mut high, ECAP, 39, ApicMode::XApic).unwrap_err(),
        Error::NotSupported
    );
    assert!(high.live.is_empty());
    let mut none = Frames::new(0x100);
    none.budget = Some(0);
    assert_eq!(
        IrTable::new(&mut none, ECAP, 39, ApicMode::XApic).unwrap_err(),
        Error::OutOfMemory
    );
}

#[test]
fn an_entry_is_written_high_word_first_and_cleared_present_first() {
    let mut f = Frames::new(0x100);
    let mut t = table(&mut f, ApicMode::XApic);
    let mut mem = Logged::default();
    let h = t.alloc(&mut mem, (0, 0x18), 0x41, 3).unwrap();
    assert_eq!(h, 0);
    assert_eq!(
        mem.writes,
        [(1, 0x0000_0000_0004_0018), (0, 0x0000_0300_0041_0001)]
    );
    let h = t.alloc(&mut mem, (0, 0x20), 0x42, 0).unwrap();
    assert_eq!(h, 1);
    assert_eq!(mem.writes[2..], [(3, 0x0004_0020), (2, 0x0042_0001)]);
    mem.writes.clear();
    let r = t.free(&mut mem, 1).unwrap();
    assert_eq!(r.handle(), 1);
    assert_eq!(mem.writes, [(2, 0), (3, 0)]);
    t.release(r);
}

#[test]
fn alloc_until_full_then_free_and_reuse() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut t = table(&mut f, ApicMode::X2Apic);
    for i in 0..ENTRIES {
        let h = t.alloc(&mut mem, (1, i as u8), 0x20 + (i % 200) as u8, i as u32);
        assert_eq!(h, Ok(i as u16));
    }
    assert_eq!(t.entries_used(), ENTRIES);
    assert_eq!(t.alloc(&mut mem, (1, 0), 0x20, 0), Err(Error::LimitReached));
    // A freed entry is not present, and its handle is not handed out
    // until it is released.
    let r = t.free(&mut mem, 77).unwrap();
    assert_eq!((mem.read(t.frame(), 154), mem.read(t.frame(), 155)), (0, 0));
    assert_eq!(t.lookup(&mem, 77), None);
    assert_eq!(t.msi(77), Err(Error::NotFound));
    assert_eq!(
        t.free(&mut mem, 77).unwrap_err(),
        Error::NotFound,
        "freed twice"
    );
    assert_eq!(t.alloc(&mut mem, (9, 9), 0x30, 0), Err(Error::LimitReached));
    t.release(r);
    assert_eq!(t.alloc(&mut mem, (9, 9), 0x30, 5), Ok(77));
    assert_eq!(t.lookup(&mem, 77), Some(Irte::fixed((9, 9), 0x30, 5)));
    assert_eq!(t.entries_used(), ENTRIES);
}

#[test]
fn handles_beyond_the_table_are_refused() {
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut t = table(&mut f, ApicMode::XApic);
    let h = t.alloc(&mut mem, (0, 0x18), 0x41, 3).unwrap();
    assert_eq!(t.msi(h), Ok(remappable_msi(h)));
    assert_eq!(t.msi(h).unwrap().address, 0xfee0_0018);
    for bad in [256u16, 0x7fff, 0x8000, 0xffff] {
        assert_eq!(t.msi(bad), Err(Error::InvalidArgument), "{bad:#x}");
        assert_eq!(t.free(&mut mem, bad).unwrap_err(), Error::InvalidArgument);
        assert_eq!(t.lookup(&mem, bad), None);
    }
    assert_eq!(t.msi(1), Err(Error::NotFound));
    assert_eq!(t.free(&mut mem, 1).unwrap_err(), Error::NotFound);
    // A refused entry takes no slot and writes nothing.
    assert_eq!(
        t.alloc(&mut mem, (0, 0x18), 0x41, 0x100),
        Err(Error::InvalidArgument)
    );
    assert_eq!(mem.read(t.frame(), 2) | mem.read(t.frame(), 3), 0);
    assert_eq!(t.alloc(&mut mem, (0, 0x18), 0x42, 4), Ok(1));
}

#[test]
fn encoded_entries_round_trip_and_never_set_bits_qemu_refuses() {
    let mut rng = Rng(0x1e7e_0001);
    let deliveries = [
        Delivery::Fixed,
        Delivery::LowestPriority,
        Delivery::Smi,
        Delivery::Nmi,
        Delivery::Init,
        Delivery::ExtInt,
    ];
    let mut encoded = 0;
    for _ in 0..20_000 {
        let mode = if rng.next() & 1 == 0 {
            ApicMode::XApic
        } else {
            ApicMode::X2Apic
        };
        let e = Irte {
            source: (rng.next() as u8, rng.next() as u8),
            vector: rng.next() as u8,
            destination: if rng.next() & 1 == 0 {
                rng.below(0x100) as u32
            } else {
                rng.next() as u32
            },
            delivery: deliveries[rng.below(6) as usize],
            trigger: if rng.next() & 1 == 0 {
                Trigger::Edge
            } else {
                Trigger::Level
            },
            destination_mode: if rng.next() & 1 == 0 {
                DestinationMode::Physical
            } else {
                DestinationMode::Logical
            },
            redirection_hint: rng.next() & 1 == 0,
        };
        let Ok([lo, hi]) = e.encode(mode) else {
            assert!(
                (mode == ApicMode::XApic && e.destination > 0xff)
                    || (e.vector < 16 && e.delivery.uses_vector())
            );
            continue;
        };
        encoded += 1;
        assert_eq!(Irte::decode([lo, hi], mode), Some(e));
        // QEMU's reserved fields (14:12, 31:24; high 63:20), posted mode
        // and the software bits stay clear; the entry is present.
        assert_eq!(lo & 0xff00_7f00, 0, "{e:?}");
        assert_eq!(hi & !0xf_ffff, 0, "{e:?}");
        assert_eq!(lo & 1, 1);
        assert!(qemu_accepts(hi, e.source_id()));
        // Any words decode without panicking.
        let _ = Irte::decode([rng.next(), rng.next()], mode);
    }
    assert!(encoded > 10_000);
}

#[test]
fn random_allocs_and_frees_match_a_model() {
    let mut rng = Rng(0x1e7e_0002);
    let (mut mem, mut f) = (Mem::default(), Frames::new(0x100));
    let mut t = table(&mut f, ApicMode::XApic);
    let mut live: BTreeMap<u16, Irte> = BTreeMap::new();
    let mut retired: Vec<Retired> = Vec::new();
    for step in 0..20_000 {
        match rng.below(10) {
            0..=4 => {
                let e = Irte::fixed(
                    (rng.next() as u8, rng.next() as u8),
                    16 + rng.below(240) as u8,
                    rng.below(0x100) as u32,
                );
                let used = live.len() + retired.len();
                match t.alloc_entry(&mut mem, &e) {
                    Ok(h) => {
                        assert!(usize::from(h) < ENTRIES);
                        assert!(!live.contains_key(&h));
                        assert!(retired.iter().all(|r| r.handle() != h));
                        // The lowest slot neither live nor retiring.
                        let lowest = (0..ENTRIES as u16)
                            .find(|s| {
                                !live.contains_key(s) && retired.iter().all(|r| r.handle() != *s)
                            })
                            .unwrap();
                        assert_eq!(h, lowest);
                        live.insert(h, e);
                    }
                    Err(err) => {
                        assert_eq!((err, used), (Error::LimitReached, ENTRIES), "step {step}");
                    }
                }
            }
            5..=7 => {
                let h = rng.below(ENTRIES as u64 + 4) as u16;
                match t.free(&mut mem, h) {
                    Ok(r) => {
                        assert!(live.remove(&h).is_some());
                        retired.push(r);
                    }
                    Err(Error::NotFound) => assert!(!live.contains_key(&h)),
                    Err(e) => assert_eq!(
                        (e, usize::from(h) >= ENTRIES),
                        (Error::InvalidArgument, true)
                    ),
                }
            }
            _ => {
                if !retired.is_empty() {
                    let r = retired.swap_remove(rng.below(retired.len() as u64) as usize);
                    t.release(r);
                }
            }
        }
        assert_eq!(t.entries_used(), live.len());
        if step % 97 == 0 {
            for h in 0..ENTRIES as u16 {
                assert_eq!(t.lookup(&mem, h), live.get(&h).copied(), "handle {h}");
                let words = [
                    mem.read(t.frame(), 2 * usize::from(h)),
                    mem.read(t.frame(), 2 * usize::from(h) + 1),
                ];
                if !live.contains_key(&h) {
                    assert_eq!(words, [0, 0], "a handle not handed out is not present");
                }
            }
        }
    }
    for r in retired {
        t.release(r);
    }
    t.destroy(&mut f);
    assert!(f.live.is_empty());
}
