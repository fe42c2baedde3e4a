//! PCI configuration mechanism 1: a function's configuration space
//! through I/O ports 0xCF8 (address) and 0xCFC (data), for boards with no
//! ECAM window (QEMU's `pc`). Only the first 256 bytes are reachable: a
//! read beyond them answers all ones, a write beyond them is dropped.
//!
//! Rules: the two ports are the kernel's (no hardware device may claim
//! them), and every access is an address write and a data access made
//! with the scheduler lock held, so no two accesses interleave.

use kernel_core::pci::ConfigSpace;
use x86_64::instructions::port::Port;

const ADDRESS: u16 = 0xcf8;
const DATA: u16 = 0xcfc;
/// Bytes the mechanism reaches.
const REACH: u16 = 256;

/// One function's configuration space, by bus, device and function.
pub struct PortConfig {
    address: u32,
}

impl PortConfig {
    /// Function `device.function` of `bus` (`device < 32`, `function < 8`;
    /// others are masked into range).
    pub fn new(bus: u8, device: u8, function: u8) -> PortConfig {
        PortConfig {
            address: 0x8000_0000
                | u32::from(bus) << 16
                | u32::from(device & 31) << 11
                | u32::from(function & 7) << 8,
        }
    }

    fn select(&self, offset: u16) {
        // SAFETY: 0xCF8 is configuration mechanism 1's address port, which
        // the kernel keeps for itself.
        unsafe { Port::<u32>::new(ADDRESS).write(self.address | u32::from(offset & 0xfc)) }
    }
}

impl ConfigSpace for PortConfig {
    fn read8(&mut self, offset: u16) -> u8 {
        if offset >= REACH {
            return 0xff;
        }
        self.select(offset);
        // SAFETY: the data port of the function just selected.
        unsafe { Port::<u8>::new(DATA + (offset & 3)).read() }
    }
    fn read16(&mut self, offset: u16) -> u16 {
        if offset >= REACH {
            return 0xffff;
        }
        self.select(offset);
        // SAFETY: as in `read8`; 2-aligned, so inside the data dword.
        unsafe { Port::<u16>::new(DATA + (offset & 2)).read() }
    }
    fn read32(&mut self, offset: u16) -> u32 {
        if offset >= REACH {
            return u32::MAX;
        }
        self.select(offset);
        // SAFETY: as in `read8`.
        unsafe { Port::<u32>::new(DATA).read() }
    }
    fn write8(&mut self, offset: u16, value: u8) {
        if offset < REACH {
            self.select(offset);
            // SAFETY: as in `read8`.
            unsafe { Port::<u8>::new(DATA + (offset & 3)).write(value) }
        }
    }
    fn write16(&mut self, offset: u16, value: u16) {
        if offset < REACH {
            self.select(offset);
            // SAFETY: as in `read16`.
            unsafe { Port::<u16>::new(DATA + (offset & 2)).write(value) }
        }
    }
    fn write32(&mut self, offset: u16, value: u32) {
        if offset < REACH {
            self.select(offset);
            // SAFETY: as in `read8`.
            unsafe { Port::<u32>::new(DATA).write(value) }
        }
    }
}
