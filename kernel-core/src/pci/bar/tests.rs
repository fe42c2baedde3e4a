//! BAR sizing on fakes: the model devices, I/O and memory BARs of every
//! width, unimplemented slots, and hostile answers (sizes that are not
//! powers of two or overflow, a 64-bit BAR in slot 5, reserved types,
//! I/O above 64 KiB, registers that change between reads), each checked
//! to leave every BAR and the command register as they were.

use super::*;
use crate::pci::fake::{FakeFunction, Glitch, Op, assert_restored};
use crate::pci::models::{self, EDU_BAR0, VIRTIO_BAR1, VIRTIO_BAR4};

/// Every BAR slot and the command register as they are now.
fn snapshot(f: &FakeFunction) -> [u32; 7] {
    let mut s = [0; 7];
    for (i, v) in s.iter_mut().take(6).enumerate() {
        *v = f.peek(bar_offset(i), 4);
    }
    s[6] = f.peek(reg::COMMAND, 2);
    s
}

/// Sizes `f`'s BARs and checks it was left as it was, decode off for
/// every BAR write.
fn sized(f: &mut FakeFunction) -> Result<Bars, PciError> {
    let before = snapshot(f);
    let r = size_bars(f);
    assert_eq!(snapshot(f), before, "left changed: {r:?}");
    assert_eq!(f.writes_while_decoding, 0);
    assert_restored(&f.log);
    r
}

fn one(f: &mut FakeFunction) -> Result<Bar, PciError> {
    let bars = sized(f)?;
    assert_eq!(bars.len(), 1, "{bars:?}");
    Ok(bars[0])
}

fn endpoint() -> FakeFunction {
    FakeFunction::endpoint(0x8086, 0x1234)
}

fn bar_error(f: &mut FakeFunction, index: u8, fault: BarFault) {
    assert_eq!(sized(f), Err(PciError::Bar { index, fault }));
}

#[test]
fn edu_has_one_megabyte_of_32_bit_memory() {
    let mut f = models::edu();
    let bars = sized(&mut f).unwrap();
    assert_eq!(
        bars.as_slice(),
        &[Bar {
            index: 0,
            kind: BarKind::Mem32,
            prefetchable: false,
            base: u64::from(EDU_BAR0),
            size: 1 << 20,
        }]
    );
    assert!(bars[0].is_assigned() && bars[0].is_memory());
    assert_eq!(bars[0].end(), 0xfeb0_0000);
    // Decode was on, so it was turned off first and back on last.
    let commands: Vec<_> = f
        .log
        .iter()
        .filter_map(|op| match *op {
            Op::Write {
                offset: 4, value, ..
            } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(commands, [0x0000, 0x0002]);
    assert!(matches!(f.log[2], Op::Read { offset: 4, .. }));
    assert!(matches!(
        f.log[3],
        Op::Write {
            offset: 4,
            value: 0,
            ..
        }
    ));
}

#[test]
fn virtio_has_a_32_bit_and_a_64_bit_prefetchable_bar() {
    let mut f = models::virtio_net();
    let bars = sized(&mut f).unwrap();
    assert_eq!(
        bars.as_slice(),
        &[
            Bar {
                index: 1,
                kind: BarKind::Mem32,
                prefetchable: false,
                base: u64::from(VIRTIO_BAR1),
                size: 0x1000,
            },
            Bar {
                index: 4,
                kind: BarKind::Mem64,
                prefetchable: true,
                base: VIRTIO_BAR4,
                size: 0x4000,
            },
        ]
    );
}

#[test]
fn decode_already_off_is_not_written() {
    let mut f = models::edu();
    f.set16(reg::COMMAND, 0x0404);
    sized(&mut f).unwrap();
    assert!(
        !f.log
            .iter()
            .any(|op| matches!(op, Op::Write { offset: 4, .. }))
    );
}

#[test]
fn io_bars_with_32_and_16_bit_decoders() {
    for decoder16 in [false, true] {
        let mut f = endpoint();
        f.io_bar(2, 0xc040, 0x20, decoder16);
        f.set16(reg::COMMAND, 0x0001);
        let bar = one(&mut f).unwrap();
        assert_eq!(
            bar,
            Bar {
                index: 2,
                kind: BarKind::Io,
                prefetchable: false,
                base: 0xc040,
                size: 0x20,
            }
        );
    }
    // The last ports of the space.
    let mut f = endpoint();
    f.io_bar(0, 0xffe0, 0x20, true);
    assert_eq!(one(&mut f).unwrap().end(), 0x1_0000);
}

#[test]
fn large_and_unassigned_64_bit_bars() {
    let mut f = endpoint();
    f.mem64_bar(0, 0x10_0000_0000, 8 << 30, true);
    f.mem64_bar(2, 0, 1 << 20, false);
    f.mem32_bar(5, 0, 0x10, false);
    let bars = sized(&mut f).unwrap();
    assert_eq!(bars.len(), 3);
    assert_eq!((bars[0].base, bars[0].size), (0x10_0000_0000, 8 << 30));
    assert_eq!((bars[1].index, bars[1].kind), (2, BarKind::Mem64));
    assert!(!bars[1].is_assigned());
    assert_eq!((bars[2].index, bars[2].size), (5, 0x10));
}

#[test]
fn unimplemented_bars_are_left_out() {
    let mut f = endpoint();
    f.raw_bar(0, 0, 0); // hardwired zero
    f.raw_bar(1, 0b1000, 0); // flags, but no address bits
    f.raw_bar(2, 0b0100, 0); // 64-bit, no address bits in either half
    f.raw_bar(3, 0, 0);
    f.raw_bar(4, 1, 0); // I/O, no address bits
    f.mem32_bar(5, 0xe000_0000, 0x1000, false);
    let bars = sized(&mut f).unwrap();
    assert_eq!(bars.len(), 1);
    assert_eq!(bars[0].index, 5);
    assert!(sized(&mut endpoint()).unwrap().is_empty());
}

#[test]
fn sizes_must_be_powers_of_two() {
    let mut f = endpoint();
    f.raw_bar(0, 0, 0xfff0_fff0);
    bar_error(&mut f, 0, BarFault::NotPowerOfTwo);
    // A 16-bit I/O decoder with a hole.
    let mut f = endpoint();
    f.raw_bar(3, 1, 0x0000_ff0c);
    bar_error(&mut f, 3, BarFault::NotPowerOfTwo);
    // A 32-bit I/O decoder with its upper half partly writable.
    let mut f = endpoint();
    f.raw_bar(1, 0x0000_c001, 0x00ff_fff0);
    bar_error(&mut f, 1, BarFault::NotPowerOfTwo);
}

#[test]
fn size_masks_that_overflow() {
    // A 64-bit BAR whose upper half is not writable: the mask is not one
    // run up to bit 63 (it would alias every 4 GiB).
    let mut f = endpoint();
    f.raw_bar(0, 0b0100, 0xffff_f000);
    f.raw_bar(1, 0, 0);
    bar_error(&mut f, 0, BarFault::NotPowerOfTwo);
    // A range ending exactly at 2^64.
    let mut f = endpoint();
    f.mem64_bar(2, 0xffff_ffff_f000_0000, 0x1000_0000, false);
    bar_error(&mut f, 2, BarFault::Overflow);
    // Only the top bit writable: 2^63 bytes, ending at 2^64 when placed.
    let mut f = endpoint();
    f.raw_bar(0, 0b0100, 0);
    f.raw_bar(1, 0x8000_0000, 0x8000_0000);
    bar_error(&mut f, 0, BarFault::Overflow);
    f.set32(bar_offset(1), 0);
    f.log.clear();
    assert_eq!(one(&mut f).unwrap().size, 1 << 63);
}

#[test]
fn a_64_bit_bar_in_slot_5_is_malformed() {
    let mut f = endpoint();
    f.mem32_bar(0, 0xe000_0000, 0x1000, false);
    f.raw_bar(5, 0xe010_0004, 0xffff_f000);
    bar_error(&mut f, 5, BarFault::Wide64InLastSlot);
}

#[test]
fn reserved_memory_types_are_malformed() {
    for ty in [0b010, 0b110] {
        let mut f = endpoint();
        f.raw_bar(1, 0xe000_0000 | ty, 0xffff_f000);
        bar_error(&mut f, 1, BarFault::ReservedType);
    }
}

#[test]
fn io_bars_stay_below_64k() {
    let mut f = endpoint();
    f.raw_bar(0, 0x0001_0001, 0xffff_fffc); // base 0x10000
    bar_error(&mut f, 0, BarFault::IoAbove64K);
    let mut f = endpoint();
    f.raw_bar(0, 0x0000_0001, 0xffff_0000); // 64 KiB of ports
    bar_error(&mut f, 0, BarFault::IoAbove64K);
}

#[test]
fn registers_that_change_between_reads() {
    let bar0 = bar_offset(0);
    // The BAR reads back another value after its original is restored.
    let mut f = models::edu();
    f.glitches.push(Glitch {
        offset: bar0,
        width: 4,
        from: 2,
        xor: 0x0010_0000,
    });
    assert_eq!(sized(&mut f), Err(PciError::Unstable { offset: bar0 }));
    // A glitch on the size read alone (the second glitch cancels the
    // first from the third read on): a read-only type bit that changes.
    let glitch_once = |xor| {
        let mut f = models::edu();
        for from in [1, 2] {
            f.glitches.push(Glitch {
                offset: bar0,
                width: 4,
                from,
                xor,
            });
        }
        f
    };
    assert_eq!(
        sized(&mut glitch_once(0b1000)),
        Err(PciError::Unstable { offset: bar0 })
    );
    // A size mask of 4 MiB for a base aligned only to 2 MiB.
    assert_eq!(
        sized(&mut glitch_once(0x0030_0000)),
        Err(PciError::Bar {
            index: 0,
            fault: BarFault::Misaligned
        })
    );
    // The command register does not read back what was restored.
    let mut f = models::edu();
    f.glitches.push(Glitch {
        offset: reg::COMMAND,
        width: 2,
        from: 1,
        xor: 0x0004,
    });
    assert_eq!(
        sized(&mut f),
        Err(PciError::Unstable {
            offset: reg::COMMAND
        })
    );
}

#[test]
fn decode_judges_readings_alone() {
    let raw = |original, mask| RawBar {
        original,
        mask,
        restored: original,
    };
    let mut r = [RawBar::default(); BAR_SLOTS];
    // A base with bits below its size: only a register that changed
    // between reads can say so.
    r[0] = raw(0xfea0_8000, 0xfff0_0000);
    assert_eq!(
        decode(&r),
        Err(PciError::Bar {
            index: 0,
            fault: BarFault::Misaligned
        })
    );
    r[0] = raw(0x0000_c011, 0xffff_ffe1);
    assert_eq!(
        decode(&r),
        Err(PciError::Bar {
            index: 0,
            fault: BarFault::Misaligned
        })
    );
    // A BAR that was unimplemented on one read and I/O on the next.
    r[0] = raw(0, 0xffff_ffe1);
    assert_eq!(decode(&r), Err(PciError::Unstable { offset: 0x10 }));
    r[0] = RawBar::default();
    r[3].restored = 1;
    assert_eq!(decode(&r), Err(PciError::Unstable { offset: 0x1c }));
}

#[test]
fn bridges_and_absent_functions_are_not_written() {
    let mut f = models::edu();
    f.set8(reg::HEADER_TYPE, 0x81);
    assert_eq!(
        size_bars(&mut f),
        Err(PciError::NotEndpoint { header_type: 1 })
    );
    let mut g = FakeFunction::empty();
    assert_eq!(size_bars(&mut g), Err(PciError::Absent));
    for log in [&f.log, &g.log] {
        assert!(!log.iter().any(|op| matches!(op, Op::Write { .. })));
    }
}

#[test]
fn size_of_takes_one_run_up_to_the_top() {
    assert_eq!(size_of(u64::MAX), Some(1));
    assert_eq!(size_of(!0xfff), Some(0x1000));
    assert_eq!(size_of(1 << 63), Some(1 << 63));
    assert_eq!(size_of(0), None);
    assert_eq!(size_of(0x0000_0000_ffff_f000), None);
    assert_eq!(size_of(!0xfff ^ (1 << 40)), None);
}
