//! The legacy 8259 PICs and the PIT: the PICs are remapped out of the
//! exception range and masked for good (the I/O APIC routes IRQs); PIT
//! channel 2 serves only as a stopwatch to calibrate the LAPIC timer and
//! the TSC.

use super::cpu::{inb, outb};

/// Where the (masked) PICs would deliver a spurious interrupt.
pub const PIC_VECTOR_BASE: u8 = 0xe0;

/// Remaps both PICs to `PIC_VECTOR_BASE..+16` and masks every line.
pub fn disable() {
    // SAFETY: the PIC ports belong to the kernel; this is the standard
    // ICW1..ICW4 sequence followed by masking every line.
    unsafe {
        outb(0x20, 0x11);
        outb(0xa0, 0x11);
        outb(0x21, PIC_VECTOR_BASE);
        outb(0xa1, PIC_VECTOR_BASE + 8);
        outb(0x21, 4);
        outb(0xa1, 2);
        outb(0x21, 1);
        outb(0xa1, 1);
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
}

const PIT_HZ: u64 = 1_193_182;

/// Runs `during` while PIT channel 2 counts down `ms` milliseconds, and
/// reports whether the countdown really finished (it cannot on machines
/// without the port-0x61 gate, such as QEMU's microvm).
pub fn stopwatch(ms: u64, start: impl FnOnce(), stop: impl FnOnce()) -> bool {
    let count = (PIT_HZ * ms / 1000).min(0xffff) as u16;
    // SAFETY: ports 0x42, 0x43 and 0x61 are the PIT and its gate, which the
    // kernel owns during boot; the speaker output stays disabled.
    unsafe {
        let gate = (inb(0x61) & !0x02) & !0x01;
        outb(0x61, gate);
        outb(0x43, 0xb0);
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        start();
        outb(0x61, gate | 0x01);
        let mut spins: u64 = 0;
        let done = loop {
            if inb(0x61) & 0x20 != 0 {
                break true;
            }
            spins += 1;
            if spins > 50_000_000 {
                break false;
            }
        };
        stop();
        outb(0x61, gate);
        done
    }
}
