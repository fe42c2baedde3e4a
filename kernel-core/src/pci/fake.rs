//! Fake functions for the tests. [`FakeFunction`] is a register file with
//! the semantics BAR sizing relies on: each bit is writable or read-only,
//! so a write of all ones to a BAR reads back its size mask and type bits;
//! it can be made to answer differently from a given read on (a register
//! that changes between reads), and it logs every access and counts BAR
//! writes made while decode was on. [`Noise`] answers every read with a
//! random value. Both check that the code under test keeps the
//! [`ConfigSpace`] contract (aligned, below 4096), and [`assert_restored`]
//! that it put back every register it wrote.

use std::collections::HashMap;
use std::vec::Vec;

use super::config::{ConfigSpace, bar_offset, reg};
use crate::testrng::Rng;

/// One access, as logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read { offset: u16, width: u16, value: u32 },
    Write { offset: u16, width: u16, value: u32 },
}

fn check(offset: u16, width: u16) {
    assert!(
        offset < 4096 && offset.is_multiple_of(width),
        "bad access {offset:#x}/{width}"
    );
}

/// From the `from`th read (counting from 0) of `offset` at `width` on,
/// the value read is XORed with `xor`.
#[derive(Clone, Copy, Debug)]
pub struct Glitch {
    pub offset: u16,
    pub width: u16,
    pub from: usize,
    pub xor: u32,
}

pub struct FakeFunction {
    bytes: [u8; 4096],
    writable: [u8; 4096],
    pub log: Vec<Op>,
    /// BAR writes made while the command register had I/O or memory
    /// decode on.
    pub writes_while_decoding: usize,
    pub glitches: Vec<Glitch>,
    reads: HashMap<(u16, u16), usize>,
}

impl FakeFunction {
    /// A function with nothing set: it reads as absent (vendor 0xffff).
    pub fn empty() -> Self {
        let mut f = FakeFunction {
            bytes: [0; 4096],
            writable: [0; 4096],
            log: Vec::new(),
            writes_while_decoding: 0,
            glitches: Vec::new(),
            reads: HashMap::new(),
        };
        f.set16(reg::VENDOR_ID, 0xffff);
        f.set16(reg::DEVICE_ID, 0xffff);
        f
    }

    /// A type 0 endpoint with no BARs and no capabilities; the command
    /// register's IO, MEM, BM, PER, SERR and INTx-disable bits writable,
    /// the interrupt line too.
    pub fn endpoint(vendor: u16, device: u16) -> Self {
        let mut f = Self::empty();
        f.set16(reg::VENDOR_ID, vendor);
        f.set16(reg::DEVICE_ID, device);
        f.set_writable(reg::COMMAND, 2, 0x0547);
        f.set_writable(reg::INTERRUPT, 1, 0xff);
        f
    }

    /// Sets `width` bytes at `offset` (little-endian), whatever their
    /// writability.
    pub fn set(&mut self, offset: u16, width: u16, value: u32) {
        for i in 0..width {
            self.bytes[usize::from(offset + i)] = (value >> (8 * i)) as u8;
        }
    }

    pub fn set8(&mut self, offset: u16, value: u8) {
        self.set(offset, 1, value.into());
    }

    pub fn set16(&mut self, offset: u16, value: u16) {
        self.set(offset, 2, value.into());
    }

    pub fn set32(&mut self, offset: u16, value: u32) {
        self.set(offset, 4, value);
    }

    /// Which bits of the `width` bytes at `offset` a write changes.
    pub fn set_writable(&mut self, offset: u16, width: u16, mask: u32) {
        for i in 0..width {
            self.writable[usize::from(offset + i)] = (mask >> (8 * i)) as u8;
        }
    }

    /// The value now held, without logging.
    pub fn peek(&self, offset: u16, width: u16) -> u32 {
        (0..width).fold(0, |v, i| {
            v | u32::from(self.bytes[usize::from(offset + i)]) << (8 * i)
        })
    }

    pub fn class(&mut self, class: u8, subclass: u8, prog_if: u8, revision: u8) {
        self.set32(
            reg::CLASS_REVISION,
            u32::from_le_bytes([revision, prog_if, subclass, class]),
        );
    }

    /// BAR `index` holding `value`, with the bits of `writable` writable.
    pub fn raw_bar(&mut self, index: usize, value: u32, writable: u32) {
        self.set32(bar_offset(index), value);
        self.set_writable(bar_offset(index), 4, writable);
    }

    pub fn mem32_bar(&mut self, index: usize, base: u32, size: u32, prefetchable: bool) {
        let flags = if prefetchable { 0b1000 } else { 0 };
        self.raw_bar(index, base | flags, !(size - 1) & !0xf);
    }

    pub fn mem64_bar(&mut self, index: usize, base: u64, size: u64, prefetchable: bool) {
        let flags = 0b100 | if prefetchable { 0b1000 } else { 0 };
        let mask = !(size - 1);
        self.raw_bar(index, base as u32 | flags, mask as u32 & !0xf);
        self.raw_bar(index + 1, (base >> 32) as u32, (mask >> 32) as u32);
    }

    /// An I/O BAR; `decoder16`: the upper 16 address bits are hardwired
    /// to zero.
    pub fn io_bar(&mut self, index: usize, base: u16, size: u32, decoder16: bool) {
        let high = if decoder16 { 0xffff } else { u32::MAX };
        self.raw_bar(index, u32::from(base) | 1, !(size - 1) & !0b11 & high);
    }

    /// Capabilities `(offset, id, body)`, linked in the order given; the
    /// body starts at `offset + 2`.
    pub fn caps(&mut self, caps: &[(u8, u8, &[u8])]) {
        let status = self.peek(reg::STATUS, 2) as u16;
        self.set16(reg::STATUS, status | 1 << 4);
        self.set8(reg::CAPABILITIES_PTR, caps.first().map_or(0, |c| c.0));
        for (i, &(at, id, body)) in caps.iter().enumerate() {
            let next = caps.get(i + 1).map_or(0, |c| c.0);
            self.set8(at.into(), id);
            self.set8(u16::from(at) + 1, next);
            for (j, &b) in body.iter().enumerate() {
                self.set8(u16::from(at) + 2 + j as u16, b);
            }
        }
    }

    fn load(&mut self, offset: u16, width: u16) -> u32 {
        check(offset, width);
        let mut value = self.peek(offset, width);
        let n = self.reads.entry((offset, width)).or_insert(0);
        for g in &self.glitches {
            if g.offset == offset && g.width == width && *n >= g.from {
                value ^= g.xor;
            }
        }
        *n += 1;
        self.log.push(Op::Read {
            offset,
            width,
            value,
        });
        value
    }

    fn store(&mut self, offset: u16, width: u16, value: u32) {
        check(offset, width);
        self.log.push(Op::Write {
            offset,
            width,
            value,
        });
        let bars = bar_offset(0)..bar_offset(6);
        if (bars.contains(&offset) || offset == reg::EXPANSION_ROM)
            && self.peek(reg::COMMAND, 2) & 0b11 != 0
        {
            self.writes_while_decoding += 1;
        }
        for i in 0..width {
            let at = usize::from(offset + i);
            let w = self.writable[at];
            self.bytes[at] = (self.bytes[at] & !w) | ((value >> (8 * i)) as u8 & w);
        }
    }
}

impl ConfigSpace for FakeFunction {
    fn read8(&mut self, offset: u16) -> u8 {
        self.load(offset, 1) as u8
    }
    fn read16(&mut self, offset: u16) -> u16 {
        self.load(offset, 2) as u16
    }
    fn read32(&mut self, offset: u16) -> u32 {
        self.load(offset, 4)
    }
    fn write8(&mut self, offset: u16, value: u8) {
        self.store(offset, 1, value.into())
    }
    fn write16(&mut self, offset: u16, value: u16) {
        self.store(offset, 2, value.into())
    }
    fn write32(&mut self, offset: u16, value: u32) {
        self.store(offset, 4, value)
    }
}

/// A function that answers every read with a random value, except the
/// `pinned` registers `(offset, width, value)`. A `sticky` one picks each
/// register's value at its first read and keeps it (ignoring writes): a
/// random device that does not change under its reader.
pub struct Noise {
    pub rng: Rng,
    pub pinned: Vec<(u16, u16, u32)>,
    pub log: Vec<Op>,
    pub sticky: Option<HashMap<(u16, u16), u32>>,
}

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise {
            rng: Rng(seed | 1),
            pinned: Vec::new(),
            log: Vec::new(),
            sticky: None,
        }
    }

    fn load(&mut self, offset: u16, width: u16) -> u32 {
        check(offset, width);
        let pinned = self.pinned.iter().find(|p| p.0 == offset && p.1 == width);
        let kept = self.sticky.as_ref().and_then(|k| k.get(&(offset, width)));
        let value = match pinned.map(|p| p.2).or(kept.copied()) {
            Some(v) => v,
            // Mostly random; now and then all ones or zero, the values
            // that end lists and mean "absent".
            None => match self.rng.below(16) {
                0 => u32::MAX,
                1 => 0,
                _ => self.rng.next() as u32,
            },
        } & (u32::MAX >> (32 - 8 * width));
        if let Some(k) = &mut self.sticky {
            k.insert((offset, width), value);
        }
        self.log.push(Op::Read {
            offset,
            width,
            value,
        });
        value
    }

    fn store(&mut self, offset: u16, width: u16, value: u32) {
        check(offset, width);
        self.log.push(Op::Write {
            offset,
            width,
            value,
        });
    }
}

impl ConfigSpace for Noise {
    fn read8(&mut self, offset: u16) -> u8 {
        self.load(offset, 1) as u8
    }
    fn read16(&mut self, offset: u16) -> u16 {
        self.load(offset, 2) as u16
    }
    fn read32(&mut self, offset: u16) -> u32 {
        self.load(offset, 4)
    }
    fn write8(&mut self, offset: u16, value: u8) {
        self.store(offset, 1, value.into())
    }
    fn write16(&mut self, offset: u16, value: u16) {
        self.store(offset, 2, value.into())
    }
    fn write32(&mut self, offset: u16, value: u32) {
        self.store(offset, 4, value)
    }
}

/// Every register written was read first, with the same width and at the
/// same offset (no access overlaps it otherwise), and its last write put
/// back the value that first read returned.
pub fn assert_restored(log: &[Op]) {
    let mut first: HashMap<(u16, u16), u32> = HashMap::new();
    let mut last: HashMap<(u16, u16), u32> = HashMap::new();
    for op in log {
        match *op {
            Op::Read {
                offset,
                width,
                value,
            } => {
                first.entry((offset, width)).or_insert(value);
            }
            Op::Write {
                offset,
                width,
                value,
            } => {
                assert!(
                    first.contains_key(&(offset, width)),
                    "{offset:#x}/{width} written before it was read: {log:x?}"
                );
                last.insert((offset, width), value);
            }
        }
    }
    for (&(offset, width), &value) in &last {
        assert_eq!(
            value,
            first[&(offset, width)],
            "{offset:#x}/{width} not restored"
        );
        for op in log {
            let (o, w) = match *op {
                Op::Read { offset, width, .. } | Op::Write { offset, width, .. } => (offset, width),
            };
            let overlaps = o < offset + width && offset < o + w;
            assert!(
                !overlaps || (o, w) == (offset, width),
                "{o:#x}/{w} overlaps the written {offset:#x}/{width}"
            );
        }
    }
}
