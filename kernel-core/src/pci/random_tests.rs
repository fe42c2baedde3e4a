//! Randomized functions: answers that are pure noise (every read random),
//! random but stable answers, random register files with BARs of every
//! shape, random BAR readings and random capability lists. Whatever they
//! say, nothing may panic, loop or read out of bounds, every register
//! written is put back as it was first read, and whatever is accepted
//! keeps the rules (power-of-two sizes, aligned bases, no overflow, MSI-X
//! inside its BAR, kernel-owned bytes never writable).

use super::bar::{BAR_SLOTS, RawBar, decode};
use super::config::{bar_offset, reg};
use super::fake::{self, FakeFunction, Noise, assert_restored};
use super::*;
use crate::testrng::Rng;

/// What any successful description must satisfy.
fn check_bars(bars: &Bars) {
    let mut next = 0;
    for b in bars {
        assert!(usize::from(b.index) >= next && usize::from(b.index) < BAR_SLOTS);
        assert!(b.size.is_power_of_two(), "{b:?}");
        assert_eq!(b.base % b.size, 0, "{b:?}");
        assert!(b.base.checked_add(b.size).is_some());
        match b.kind {
            BarKind::Io => {
                assert!(b.end() <= 0x1_0000 && b.size >= 4 && !b.prefetchable);
            }
            BarKind::Mem32 => assert!(b.end() <= 1 << 32 && b.size >= 16),
            BarKind::Mem64 => assert!(b.index < 5 && b.size >= 16),
        }
        next = usize::from(b.index) + if b.kind == BarKind::Mem64 { 2 } else { 1 };
    }
}

fn check_caps(caps: &Capabilities, bars: &Bars) {
    assert!(caps.list.len() <= 48);
    for c in &caps.list {
        assert!(c.offset >= 0x40 && c.offset % 4 == 0);
    }
    if let Some(m) = caps.msi {
        assert!(u16::from(m.offset) + u16::from(m.size()) <= 0x100);
        assert!(m.vectors.is_power_of_two() && m.vectors <= 32);
    }
    if let Some(x) = caps.msix {
        assert!((1..=2048).contains(&x.table_size));
        for r in [x.table, x.pba] {
            let bar = bars.iter().find(|b| b.index == r.bar).unwrap();
            assert!(bar.is_memory() && r.end() <= bar.size);
        }
    }
}

#[test]
fn random_answers_never_panic_and_everything_is_restored() {
    for seed in 0..3000u64 {
        let mut n = Noise::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        if seed % 2 == 0 {
            // Present and type 0, so the sizing and the walk are reached.
            n.pinned = vec![(0, 4, 0x11e8_1234), (reg::HEADER_TYPE, 1, 0)];
        }
        if seed % 4 == 0 {
            // Stable answers too, so BARs are judged and lists walked.
            n.sticky = Some(Default::default());
            n.pinned.push((reg::STATUS, 2, 1 << 4));
        }
        if seed % 8 == 0 {
            // No BARs, so the walk is reached.
            n.pinned
                .extend((0..BAR_SLOTS).map(|i| (bar_offset(i), 4, 0)));
        }
        // Each call on its own must put back what it first read.
        if let Ok(f) = describe(&mut n) {
            check_bars(&f.bars);
            check_caps(&f.caps, &f.bars);
        }
        assert_restored(&n.log);
        n.log.clear();
        if let Ok(bars) = size_bars(&mut n) {
            check_bars(&bars);
        }
        assert_restored(&n.log);
        n.log.clear();
        let _ = probe(&mut n);
        let _ = capabilities(&mut n, &[]);
        assert!(!n.log.iter().any(|op| matches!(op, fake::Op::Write { .. })));
        // The policy from whatever was found, and random driver accesses.
        let caps = capabilities(&mut n, &[]).unwrap_or_default();
        let p = ConfigPolicy::new(&caps);
        for _ in 0..32 {
            let Ok(at) = ConfigAccess::new(n.rng.below(0x1100), 1 << n.rng.below(3)) else {
                continue;
            };
            let value = n.rng.next() as u32;
            let _ = p.read_through(&mut n, at);
            if let Ok(Write::Direct) = p.write(at) {
                assert!(at.offset() >= 0x40 && at.end() <= 0x100);
            }
            let _ = p.write_through(&mut n, at, value);
        }
    }
}

/// A random register file: each BAR slot a random mix of the shapes
/// devices have and the shapes hostile ones might, the command register
/// random.
fn random_device(rng: &mut Rng) -> FakeFunction {
    let mut f = FakeFunction::endpoint(0x1234, 0x5678);
    f.set16(reg::COMMAND, rng.next() as u16 & 0x0547);
    let mut i = 0;
    while i < BAR_SLOTS {
        let size_bits = rng.below(64);
        match rng.below(8) {
            0 => f.raw_bar(i, rng.next() as u32, rng.next() as u32),
            1 => f.raw_bar(i, 0, 0),
            2 if (2..17).contains(&size_bits) => {
                let size = 1u32 << size_bits;
                let base = (rng.next() as u32 & 0xffff) & !(size - 1);
                f.io_bar(i, base as u16, size, rng.below(2) == 0);
            }
            3 if (4..32).contains(&size_bits) => {
                let size = 1u32 << size_bits;
                f.mem32_bar(i, rng.next() as u32 & !(size - 1), size, rng.below(2) == 0);
            }
            4 | 5 if size_bits >= 4 && i < 5 => {
                let size = 1u64 << size_bits;
                f.mem64_bar(i, rng.next() & !(size - 1), size, rng.below(2) == 0);
                i += 1;
            }
            6 => {
                // A 64-bit type with random masks in both halves.
                f.raw_bar(
                    i,
                    (rng.next() as u32 & !0xf) | 0b100,
                    rng.next() as u32 & !0xf,
                );
                if i < 5 {
                    f.raw_bar(i + 1, rng.next() as u32, rng.next() as u32);
                    i += 1;
                }
            }
            _ => f.mem32_bar(i, 0xe000_0000, 0x1000, false),
        }
        i += 1;
    }
    f
}

#[test]
fn random_devices_are_sized_within_the_rules_and_left_as_found() {
    let mut rng = Rng(0x0005_eed0_f9c1);
    let mut sized = 0;
    for _ in 0..20_000 {
        let mut f = random_device(&mut rng);
        let before: Vec<u32> = (0..BAR_SLOTS).map(|i| f.peek(bar_offset(i), 4)).collect();
        let command = f.peek(reg::COMMAND, 2);
        if let Ok(bars) = size_bars(&mut f) {
            check_bars(&bars);
            sized += 1;
        }
        let after: Vec<u32> = (0..BAR_SLOTS).map(|i| f.peek(bar_offset(i), 4)).collect();
        assert_eq!(before, after);
        assert_eq!(f.peek(reg::COMMAND, 2), command);
        assert_eq!(f.writes_while_decoding, 0);
        assert_restored(&f.log);
    }
    assert!(sized > 1000, "only {sized} sized");
}

#[test]
fn random_readings_decode_within_the_rules() {
    let mut rng = Rng(0xdec0de);
    for _ in 0..100_000 {
        let mut raw = [RawBar::default(); BAR_SLOTS];
        for r in &mut raw {
            let original = rng.next() as u32;
            // Masks mostly one run of ones from the top, like devices.
            let mask = match rng.below(3) {
                0 => rng.next() as u32,
                _ => (u32::MAX << rng.below(32)) | (original & 0xf),
            };
            r.original = original;
            r.mask = mask;
            r.restored = if rng.below(50) == 0 {
                rng.next() as u32
            } else {
                original
            };
        }
        if let Ok(bars) = decode(&raw) {
            check_bars(&bars);
        }
    }
}

/// A random capability list: up to 48 capabilities at distinct random
/// slots, linked in random order, with MSI and MSI-X bodies of random
/// shapes; now and then a byte of it corrupted.
fn random_caps(rng: &mut Rng) -> FakeFunction {
    let mut f = FakeFunction::endpoint(1, 2);
    for off in (0x40..0x100).step_by(4) {
        f.set32(off, rng.next() as u32);
    }
    let mut slots: Vec<u8> = (0x40..=0xfc).step_by(4).collect();
    for i in (1..slots.len()).rev() {
        slots.swap(i, rng.below(i as u64 + 1) as usize);
    }
    slots.truncate(rng.below(49) as usize);
    let mut list = Vec::new();
    for &at in &slots {
        let id = match rng.below(6) {
            0 => caps::CAP_MSI,
            1 => caps::CAP_MSIX,
            2 => caps::CAP_POWER_MANAGEMENT,
            3 => caps::CAP_PCI_EXPRESS,
            _ => caps::CAP_VENDOR,
        };
        list.push((at, id, &[][..]));
    }
    f.caps(&list);
    for &(at, id, _) in &list {
        let at = u16::from(at);
        if id == caps::CAP_MSIX && at <= 0xf4 {
            // Table and PBA mostly in BAR 0 or 2, at small offsets.
            let dword = |rng: &mut Rng| {
                (rng.below(0x2000) as u32 & !7) | [0, 0, 2, 1, 6][rng.below(5) as usize]
            };
            f.set16(at + 2, rng.below(80) as u16);
            let (t, p) = (dword(rng), dword(rng));
            f.set32(at + 4, t);
            f.set32(at + 8, p);
        }
    }
    if rng.below(4) == 0 {
        f.set8(0x40 + rng.below(0xc0) as u16, rng.next() as u8);
    }
    f
}

#[test]
fn random_capability_lists_end_within_bounds() {
    let mut rng = Rng(0xca95);
    let mut walked = 0;
    for _ in 0..20_000 {
        let mut f = random_caps(&mut rng);
        let bars: Bars = [mem_bar(0, 1 << rng.below(16)), mem_bar(2, 1 << 13)]
            .into_iter()
            .collect();
        if let Ok(caps) = capabilities(&mut f, &bars) {
            check_caps(&caps, &bars);
            let p = ConfigPolicy::new(&caps);
            if let Some(m) = caps.msi {
                let at = u16::from(m.offset);
                for b in at..at + u16::from(m.size()) {
                    assert!(p.write(ConfigAccess::new(b.into(), 1).unwrap()).is_err());
                }
            }
            if let Some(x) = caps.msix {
                assert!(
                    p.write(ConfigAccess::new(x.control().into(), 2).unwrap())
                        .is_err()
                );
            }
            walked += 1;
        }
        assert!(f.log.len() <= 2 + 48 * 4);
        assert!(!f.log.iter().any(|op| matches!(op, fake::Op::Write { .. })));
    }
    assert!(walked > 2000, "only {walked} lists walked");
}

fn mem_bar(index: u8, size: u64) -> Bar {
    Bar {
        index,
        kind: BarKind::Mem32,
        prefetchable: false,
        base: 0,
        size: size.max(16),
    }
}
