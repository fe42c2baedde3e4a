use super::*;
use crate::testrng::Rng;

/// QEMU 7.2's CAP: one fault record, at 0x220.
const QEMU_CAP: Cap = Cap(0x00d2_008c_2226_0206);

/// A record's words built field by field from the specification's table,
/// independently of `decode`.
fn words(sid: u16, reason: u8, read: bool, lo: u64, pasid: Option<u32>, at: u64) -> [u64; 2] {
    let mut hi = u64::from(sid) | (u64::from(reason) << 32) | (at << 60) | (1 << 63);
    if read {
        hi |= 1 << 62;
    }
    if let Some(p) = pasid {
        hi |= (1 << 31) | (u64::from(p) << 40);
    }
    [lo, hi]
}

#[test]
fn a_write_fault_as_qemu_records_it() {
    // QEMU: low = the address with bits 11:0 cleared; high = SID, FR in
    // bits 39:32, T clear for a write, F.
    let r = FaultRecord::decode([0x1234_5abc, 0x8000_0005_0000_0018]).unwrap();
    assert_eq!(
        r,
        FaultRecord {
            source: (0, 0x18),
            iova: 0x1234_5000,
            write: true,
            reason: reason::WRITE_DENIED,
            interrupt_index: None,
            pasid: None,
            address_type: 0,
        }
    );
    assert_eq!(r.source_id(), 0x0018);
    assert!(!r.is_interrupt());
}

#[test]
fn a_read_fault_sets_bit_126() {
    let r = FaultRecord::decode([0x7f_ffff_f000, 0xc000_0006_0000_0311]).unwrap();
    assert_eq!(
        (r.source, r.iova, r.write),
        ((3, 0x11), 0x7f_ffff_f000, false)
    );
    assert_eq!(r.reason, reason::READ_DENIED);
    assert_eq!(r.source_id(), 0x0311);
}

#[test]
fn nothing_is_recorded_without_the_f_bit() {
    assert_eq!(FaultRecord::decode([0, 0]), None);
    assert_eq!(FaultRecord::decode([!0, !0 >> 1]), None);
    assert!(FaultRecord::decode([0, 1 << 63]).is_some());
}

#[test]
fn an_interrupt_fault_holds_an_index_not_an_address() {
    // Index 0x2a in bits 63:48 of the low word; reason 0x26; the type bit
    // set or not means nothing.
    let w = words(
        0x0108,
        reason::INTERRUPT_SOURCE_MISMATCH,
        true,
        0x002a << 48,
        None,
        0,
    );
    let r = FaultRecord::decode(w).unwrap();
    assert!(r.is_interrupt());
    assert_eq!((r.interrupt_index, r.iova, r.write), (Some(0x2a), 0, false));
    assert_eq!(r.source, (1, 8));
    let w = words(
        0x0108,
        reason::INTERRUPT_ENTRY_NOT_PRESENT,
        false,
        0xffff << 48,
        None,
        0,
    );
    assert_eq!(
        FaultRecord::decode(w).unwrap().interrupt_index,
        Some(0xffff)
    );
}

#[test]
fn pasid_and_address_type_fields() {
    let w = words(0xffff, 0x04, false, 0xdead_b000, Some(0xabcde), 2);
    // F and AT 2 (bits 63, 61), PV in 59:40, FR 4, PP (bit 31), SID.
    assert_eq!(w[1], 0xaabc_de04_8000_ffff);
    let r = FaultRecord::decode(w).unwrap();
    assert_eq!(
        (r.pasid, r.address_type, r.source),
        (Some(0xabcde), 2, (0xff, 0xff))
    );
    // PV without PP is no PASID.
    let r = FaultRecord::decode([0, (1 << 63) | (0xabcde << 40)]).unwrap();
    assert_eq!(r.pasid, None);
}

#[test]
fn every_reason_has_a_text() {
    use reason::*;
    let named = [
        ROOT_NOT_PRESENT,
        CONTEXT_NOT_PRESENT,
        CONTEXT_INVALID,
        BEYOND_ADDRESS_WIDTH,
        WRITE_DENIED,
        READ_DENIED,
        PAGE_TABLE_UNREADABLE,
        ROOT_TABLE_UNREADABLE,
        CONTEXT_TABLE_UNREADABLE,
        ROOT_RESERVED_BIT,
        CONTEXT_RESERVED_BIT,
        PAGE_ENTRY_RESERVED_BIT,
        TRANSLATION_TYPE_BLOCKED,
        INTERRUPT_REQUEST_RESERVED_BIT,
        INTERRUPT_INDEX_BEYOND_TABLE,
        INTERRUPT_ENTRY_NOT_PRESENT,
        INTERRUPT_TABLE_UNREADABLE,
        INTERRUPT_ENTRY_RESERVED_BIT,
        COMPATIBILITY_INTERRUPT_BLOCKED,
        INTERRUPT_SOURCE_MISMATCH,
    ];
    // The specification's numbering: 1..=0xd, then 0x20..=0x26.
    let expected: Vec<u8> = (0x01..=0x0d).chain(0x20..=0x26).collect();
    assert_eq!(named.to_vec(), expected);
    let reserved = reason_text(0);
    let scalable = reason_text(0x30);
    let mut texts = std::collections::HashSet::new();
    for r in named {
        let t = reason_text(r);
        assert!(t != reserved && t != scalable, "{r:#x} is named");
        assert!(texts.insert(t), "{r:#x} has its own text");
        assert_eq!(is_interrupt_reason(r), r >= 0x20, "{r:#x}");
    }
    for r in 0..=255u8 {
        assert!(!reason_text(r).is_empty());
        if !named.contains(&r) {
            let t = reason_text(r);
            assert!(t == reserved || t == scalable, "{r:#x}: {t}");
        }
    }
    assert_eq!(reason_text(0x0e), reserved);
    assert_eq!(reason_text(0x27), reserved);
    assert_eq!(reason_text(0x9f), scalable);
    assert_eq!(reason_text(0xa0), reserved);
}

#[test]
fn fault_status_bits() {
    let s = FaultStatus(0x0000_0513);
    assert!(s.overflow() && s.pending() && s.queue_error());
    assert_eq!(s.first_record(), 5);
    // PPF is read-only: never written back.
    assert_eq!(s.acknowledgement(), 0x11);
    assert_eq!(FaultStatus(0xffff_ffff).acknowledgement(), 0x71);
    assert_eq!(FaultStatus(0x2).acknowledgement(), 0);
    assert!(!FaultStatus(0).pending() && !FaultStatus(0).overflow());
}

#[test]
fn where_the_records_are() {
    // QEMU: FRO 0x220, one record.
    assert_eq!(record_offset(QEMU_CAP, 0), Ok(0x220));
    assert_eq!(record_offset(QEMU_CAP, 1), Err(Error::InvalidArgument));
    assert_eq!(records_span(QEMU_CAP), (0x220, 0x230));
    assert_eq!(clear_write(QEMU_CAP, 0), Ok((0x228, 1 << 63)));
    assert_eq!(clear_write(QEMU_CAP, 1), Err(Error::InvalidArgument));
    // FRO 0x40 (× 16 = 0x400), NFR 7 (8 records).
    let cap = Cap((0x40 << 24) | (7 << 40));
    for i in 0..8 {
        assert_eq!(record_offset(cap, i), Ok(0x400 + 16 * u64::from(i)));
        assert_eq!(
            clear_write(cap, i),
            Ok((0x408 + 16 * u64::from(i), CLEAR_FAULT))
        );
    }
    assert_eq!(record_offset(cap, 8), Err(Error::InvalidArgument));
    assert_eq!(record_offset(cap, u32::MAX), Err(Error::InvalidArgument));
    assert_eq!(records_span(cap), (0x400, 0x480));
    // The farthest any unit can put them.
    assert_eq!(records_span(Cap(!0)), (0x3ff0, 0x4ff0));
}

#[test]
fn records_are_read_from_fri_round_the_ring() {
    let cap = Cap((0x40 << 24) | (7 << 40));
    let order: Vec<u32> = scan_order(FaultStatus(5 << 8 | 2), cap).collect();
    assert_eq!(order, [5, 6, 7, 0, 1, 2, 3, 4]);
    // A bogus FRI from the hardware stays in range.
    let order: Vec<u32> = scan_order(FaultStatus(203 << 8), cap).collect();
    assert_eq!(order, [3, 4, 5, 6, 7, 0, 1, 2]);
    let order: Vec<u32> = scan_order(FaultStatus(0xff << 8), QEMU_CAP).collect();
    assert_eq!(order, [0]);
}

fn fault(n: u64) -> FaultRecord {
    FaultRecord {
        source: (0, 0x18),
        iova: n * 0x1000,
        write: n.is_multiple_of(2),
        reason: reason::WRITE_DENIED,
        interrupt_index: None,
        pasid: None,
        address_type: 0,
    }
}

#[test]
fn the_log_keeps_the_last_eight_in_order() {
    let mut log = FaultLog::new();
    assert_eq!(
        (log.total(), log.recent().count(), log.last()),
        (0, 0, None)
    );
    for n in 0..3 {
        log.record(n * 1000, fault(n));
    }
    let seen: Vec<u64> = log.recent().map(|l| l.record.iova / 0x1000).collect();
    assert_eq!(seen, [0, 1, 2]);
    for n in 3..20 {
        log.record(n * 1000, fault(n));
    }
    assert_eq!(log.total(), 20);
    let seen: Vec<(u64, u64)> = log
        .recent()
        .map(|l| (l.at, l.record.iova / 0x1000))
        .collect();
    let expected: Vec<(u64, u64)> = (12..20).map(|n| (n * 1000, n)).collect();
    assert_eq!(seen, expected);
    assert_eq!(log.last().unwrap().record, fault(19));
    log.clear();
    assert_eq!((log.total(), log.recent().count()), (0, 0));
}

#[test]
fn a_log_is_small_and_fixed() {
    assert!(std::mem::size_of::<FaultLog>() < 1024);
}

#[test]
fn exactly_eight_fill_the_ring_without_wrapping() {
    let mut log = FaultLog::default();
    for n in 0..RECENT as u64 {
        log.record(n * 1000, fault(n));
    }
    let seen: Vec<u64> = log.recent().map(|l| l.record.iova / 0x1000).collect();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
    log.record(9000, fault(8));
    let seen: Vec<u64> = log.recent().map(|l| l.record.iova / 0x1000).collect();
    assert_eq!(seen, (1..9).collect::<Vec<_>>());
}

#[test]
fn sixty_four_at_once_are_kept_the_sixty_fifth_stops() {
    let mut log = FaultLog::new();
    for n in 0..STORM_FAULTS as u64 {
        assert_eq!(log.record(500, fault(n)), Verdict::Keep, "fault {n}");
    }
    assert_eq!(log.record(500, fault(64)), Verdict::Stop);
    assert_eq!(log.record(500, fault(65)), Verdict::Stop, "still storming");
    assert_eq!(log.total(), 66);
}

#[test]
fn the_storm_window_at_its_boundary() {
    // 64 faults at tick 1000, then one 99 ticks later: 65 within less
    // than 100 ticks.
    let burst = |last: u64| {
        let mut log = FaultLog::new();
        for n in 0..STORM_FAULTS as u64 {
            assert_eq!(log.record(1000, fault(n)), Verdict::Keep);
        }
        log.record(last, fault(64))
    };
    assert_eq!(burst(1000 + STORM_TICKS - 1), Verdict::Stop);
    assert_eq!(burst(1000 + STORM_TICKS), Verdict::Keep);
    assert_eq!(burst(u64::MAX), Verdict::Keep);
}

#[test]
fn a_steady_sixty_four_a_second_is_kept_more_is_stopped() {
    // 16 faults every 25 ticks: 64 in every window, never 65.
    let mut log = FaultLog::new();
    for step in 0..40u64 {
        for k in 0..16 {
            assert_eq!(
                log.record(step * 25, fault(k)),
                Verdict::Keep,
                "step {step}"
            );
        }
    }
    // One a tick: the 65th is within 64 ticks of the first.
    let mut log = FaultLog::new();
    let verdicts: Vec<Verdict> = (0..70).map(|t| log.record(t, fault(t))).collect();
    assert!(verdicts[..64].iter().all(|&v| v == Verdict::Keep));
    assert!(verdicts[64..].iter().all(|&v| v == Verdict::Stop));
}

#[test]
fn a_clock_that_goes_backwards_does_not_panic() {
    let mut log = FaultLog::new();
    for n in 0..STORM_FAULTS as u64 {
        log.record(u64::MAX - n, fault(n));
    }
    // Earlier than every time before: no time has passed.
    assert_eq!(log.record(0, fault(64)), Verdict::Stop);
}

#[test]
fn random_records_decode_to_their_fields() {
    let mut rng = Rng(0x5eed_fa17);
    for _ in 0..5000 {
        let sid = rng.next() as u16;
        let reason = rng.next() as u8;
        let read = rng.next() & 1 == 1;
        let pasid = (rng.next() & 1 == 1).then(|| (rng.next() & 0xf_ffff) as u32);
        let at = rng.below(4);
        let lo = rng.next();
        let r = FaultRecord::decode(words(sid, reason, read, lo, pasid, at)).unwrap();
        assert_eq!((r.source_id(), r.reason, r.pasid), (sid, reason, pasid));
        assert_eq!(u64::from(r.address_type), at);
        if is_interrupt_reason(reason) {
            assert_eq!((r.iova, r.write), (0, false));
            assert_eq!(r.interrupt_index, Some((lo >> 48) as u16));
        } else {
            assert_eq!((r.iova, r.write), (lo & !0xfff, !read));
            assert_eq!(r.interrupt_index, None);
        }
        // Any words at all decode without panicking.
        let _ = FaultRecord::decode([rng.next(), rng.next()]);
        let _ = scan_order(FaultStatus(rng.next() as u32), Cap(rng.next())).count();
    }
}

#[test]
fn random_fault_times_match_a_sliding_window_count() {
    let mut rng = Rng(0x0057_0e11);
    for _ in 0..200 {
        let mut log = FaultLog::new();
        let mut times: Vec<u64> = Vec::new();
        let mut now = rng.below(1000);
        // Bursty gaps: often none, sometimes long.
        for n in 0..400 {
            now += match rng.below(4) {
                0 => 0,
                1 => rng.below(3),
                2 => rng.below(10),
                _ => rng.below(200),
            };
            // The model: earlier faults less than STORM_TICKS ago.
            let within = times.iter().filter(|&&t| now - t < STORM_TICKS).count();
            let expected = if within >= STORM_FAULTS {
                Verdict::Stop
            } else {
                Verdict::Keep
            };
            assert_eq!(log.record(now, fault(n)), expected, "fault {n} at {now}");
            times.push(now);
        }
        assert_eq!(log.total(), 400);
    }
}
