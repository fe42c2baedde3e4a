//! Configuration space as this module reaches it: the [`ConfigSpace`]
//! trait (one function's 4 KiB, read and written 8, 16 or 32 bits at a
//! time), the validated [`ConfigAccess`] a driver's request is decoded
//! into, and the offsets of the registers of the standard header.
//!
//! Rules: every offset this module passes to a [`ConfigSpace`] is below
//! [`CONFIG_SIZE`] and a multiple of the access width, and the capability
//! list is read below [`LEGACY_SIZE`]; an implementation must still not
//! trust its caller further than its own memory safety needs (over ECAM:
//! keep the offset inside the function's page). Reads never fail: a
//! function that is not there answers all ones, which the readers above
//! recognise. Nothing here checks what a device answers; that is the job
//! of each reader.

use abi::Error;

/// Bytes of configuration space of one function (PCI Express, through
/// ECAM).
pub const CONFIG_SIZE: u16 = 4096;
/// The first 256 bytes: the conventional PCI space, where the standard
/// header and the capability list live (extended capabilities start at
/// 0x100).
pub const LEGACY_SIZE: u16 = 256;
/// The standard (type 0 and type 1) header's length; device-specific
/// space and capabilities follow it.
pub const HEADER_SIZE: u16 = 0x40;

/// Offsets in the standard header.
pub mod reg {
    pub const VENDOR_ID: u16 = 0x00;
    pub const DEVICE_ID: u16 = 0x02;
    pub const COMMAND: u16 = 0x04;
    pub const STATUS: u16 = 0x06;
    /// Revision (byte 0x08), programming interface (0x09), subclass
    /// (0x0a), class (0x0b).
    pub const CLASS_REVISION: u16 = 0x08;
    pub const HEADER_TYPE: u16 = 0x0e;
    /// Base address register 0; BAR `i` is at `BAR0 + 4 * i` (six of them
    /// in a type 0 header).
    pub const BAR0: u16 = 0x10;
    /// Subsystem vendor id (0x2c) and subsystem id (0x2e), type 0 only.
    pub const SUBSYSTEM: u16 = 0x2c;
    pub const EXPANSION_ROM: u16 = 0x30;
    pub const CAPABILITIES_PTR: u16 = 0x34;
    /// Interrupt line (0x3c), pin (0x3d), min grant and max latency.
    pub const INTERRUPT: u16 = 0x3c;
}

/// Status register bit 4: the function has a capability list.
pub const STATUS_CAPABILITIES: u16 = 1 << 4;

/// One function's configuration space. The kernel implements it over the
/// function's ECAM page; the tests over fakes.
///
/// `&mut self` everywhere: config cycles to one function are serialised
/// by whoever holds it, so a BAR being sized is never seen half way by
/// anyone else.
pub trait ConfigSpace {
    fn read8(&mut self, offset: u16) -> u8;
    fn read16(&mut self, offset: u16) -> u16;
    fn read32(&mut self, offset: u16) -> u32;
    fn write8(&mut self, offset: u16, value: u8);
    fn write16(&mut self, offset: u16, value: u16);
    fn write32(&mut self, offset: u16, value: u32);

    /// The access `at`, zero-extended.
    fn read(&mut self, at: ConfigAccess) -> u32 {
        match at.width() {
            Width::Byte => u32::from(self.read8(at.offset())),
            Width::Word => u32::from(self.read16(at.offset())),
            Width::Dword => self.read32(at.offset()),
        }
    }

    /// Writes the low `at.width()` bytes of `value`.
    fn write(&mut self, at: ConfigAccess, value: u32) {
        match at.width() {
            Width::Byte => self.write8(at.offset(), value as u8),
            Width::Word => self.write16(at.offset(), value as u16),
            Width::Dword => self.write32(at.offset(), value),
        }
    }
}

/// The width of one configuration access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    Byte,
    Word,
    Dword,
}

impl Width {
    /// The width of `bytes` bytes (1, 2 or 4).
    pub const fn from_bytes(bytes: u64) -> Option<Width> {
        match bytes {
            1 => Some(Width::Byte),
            2 => Some(Width::Word),
            4 => Some(Width::Dword),
            _ => None,
        }
    }

    pub const fn bytes(self) -> u16 {
        match self {
            Width::Byte => 1,
            Width::Word => 2,
            Width::Dword => 4,
        }
    }

    /// The bits a value of this width has.
    pub const fn value_mask(self) -> u32 {
        match self {
            Width::Byte => 0xff,
            Width::Word => 0xffff,
            Width::Dword => u32::MAX,
        }
    }
}

/// An access a driver asked for, checked: a width of 1, 2 or 4 bytes at
/// an offset that is a multiple of it, wholly below [`CONFIG_SIZE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigAccess {
    offset: u16,
    width: Width,
}

impl ConfigAccess {
    /// `InvalidArgument` unless `size` is 1, 2 or 4, `offset` a multiple
    /// of it and `offset + size <= 4096`.
    pub const fn new(offset: u64, size: u64) -> Result<ConfigAccess, Error> {
        let Some(width) = Width::from_bytes(size) else {
            return Err(Error::InvalidArgument);
        };
        if !offset.is_multiple_of(size) || offset >= CONFIG_SIZE as u64 {
            return Err(Error::InvalidArgument);
        }
        // Aligned and below 4096, so the access ends at or before 4096.
        Ok(ConfigAccess {
            offset: offset as u16,
            width,
        })
    }

    pub const fn offset(self) -> u16 {
        self.offset
    }

    pub const fn width(self) -> Width {
        self.width
    }

    /// One past the last byte (at most 4096).
    pub const fn end(self) -> u16 {
        self.offset + self.width.bytes()
    }
}

/// The offset of BAR `index` (`index < 6`).
pub const fn bar_offset(index: usize) -> u16 {
    reg::BAR0 + 4 * index as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_aligned_sized_and_inside() {
        for (off, size) in [(0, 4), (0xffc, 4), (0xffe, 2), (0xfff, 1), (0x3d, 1)] {
            let a = ConfigAccess::new(off, size).unwrap();
            assert_eq!(u64::from(a.offset()), off);
            assert_eq!(u64::from(a.width().bytes()), size);
            assert!(a.end() <= CONFIG_SIZE);
        }
        for (off, size) in [
            (0, 0),
            (0, 3),
            (0, 8),
            (2, 4),
            (1, 2),
            (0x1000, 1),
            (0x1000, 4),
            (u64::MAX, 1),
            (u64::MAX - 3, 4),
        ] {
            assert_eq!(
                ConfigAccess::new(off, size),
                Err(Error::InvalidArgument),
                "{off:#x}/{size}"
            );
        }
    }
}
