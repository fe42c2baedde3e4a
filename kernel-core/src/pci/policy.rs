//! Mediated configuration access: what a driver may read and write in
//! the configuration space of a function it has claimed, decided per
//! access ([`ConfigPolicy`]). The kernel performs allowed accesses itself
//! ([`ConfigPolicy::read_through`], [`ConfigPolicy::write_through`]); the
//! driver never maps configuration space.
//!
//! Rules (an access is first a [`ConfigAccess`]: 1, 2 or 4 bytes,
//! aligned, below 4096, else `InvalidArgument`; a refused one is
//! `AccessDenied` and touches nothing):
//!
//! | bytes | read | write |
//! |---|---|---|
//! | 0x00–0x3f, the standard header | yes | only the command register, as a 16-bit write at 0x04 or a byte at 0x05, and only its INTx-disable bit; the kernel merges that bit into the current word ([`Write::Masked`]). IDs, status, BARs, the ROM BAR, the capability pointer, interrupt line and the rest: no |
//! | 0x40–0xff, capabilities and device-specific registers | yes | yes, unless a byte written is kernel-owned: the whole MSI, MSI-X, power-management and PCI Express capability structures, and the id and next-pointer bytes of every capability |
//! | 0x100–0xfff, PCI Express extended space | yes | no |
//!
//! Why: decode and bus mastering are the kernel's (they decide which
//! addresses the device answers and whether it can reach memory); BARs
//! are sized and placed by the kernel alone; MSI and MSI-X say where the
//! device's interrupt writes go, so the kernel programs them; power
//! management (a D3hot-to-D0 transition) and PCI Express device control
//! (function-level reset) can reset the BARs and command register under
//! the kernel's feet. Extended space holds structures the kernel has not
//! walked (SR-IOV, Resizable BAR, ATS, ACS), each able to change what
//! the device decodes or how its DMA is translated, so none of it is
//! writable. Reads are allowed everywhere: the standard registers have
//! no side effects when read and hold nothing the driver must not know,
//! and device-specific registers are the driver's own device.
//!
//! Not covered: device-specific registers may reach a BAR's contents
//! indirectly (virtio's PCI configuration access capability is a window
//! into any BAR, the MSI-X table included); the policy cannot know such
//! windows, and interrupt remapping, not this table, is what contains a
//! function's interrupt writes.

use abi::Error;

use super::caps::{CAP_MSI, CAP_MSIX, CAP_PCI_EXPRESS, CAP_POWER_MANAGEMENT, Capabilities, MsiX};
use super::command::Command;
use super::config::{ConfigAccess, ConfigSpace, HEADER_SIZE, LEGACY_SIZE, Width, reg};

/// Bytes of the power-management capability.
const PM_LEN: u16 = 8;
/// Bytes of a PCI Express capability (version 2, the largest).
const PCIE_LEN: u16 = 0x3c;
/// Bytes of the largest MSI layout (64-bit, per-vector masking).
const MSI_MAX_LEN: u16 = 24;

/// How an allowed write is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// As asked.
    Direct,
    /// Only the bits of the mask (relative to the access) come from the
    /// driver; the others keep the register's current value. Only given
    /// for registers without write-one-to-clear bits, so reading and
    /// writing back is harmless.
    Masked(u32),
}

/// The rules for one claimed function, fixed when it is claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigPolicy {
    /// One bit per byte of 0x40..0x100: the driver may write it.
    writable: [u64; 3],
}

impl ConfigPolicy {
    /// The policy for a function with these capabilities.
    pub fn new(caps: &Capabilities) -> ConfigPolicy {
        let mut p = ConfigPolicy {
            writable: [u64::MAX; 3],
        };
        for c in &caps.list {
            let len = match c.id {
                CAP_POWER_MANAGEMENT => PM_LEN,
                CAP_PCI_EXPRESS => PCIE_LEN,
                // The exact length if this is the MSI capability found;
                // the largest layout if the list was built otherwise.
                CAP_MSI => caps
                    .msi
                    .filter(|m| m.offset == c.offset)
                    .map_or(MSI_MAX_LEN, |m| m.size().into()),
                CAP_MSIX => MsiX::LEN.into(),
                _ => 2,
            };
            p.protect(c.offset.into(), len);
        }
        if let Some(msi) = caps.msi {
            p.protect(msi.offset.into(), msi.size().into());
        }
        if let Some(msix) = caps.msix {
            p.protect(msix.offset.into(), MsiX::LEN.into());
        }
        p
    }

    /// Makes `len` bytes from `at` kernel-owned (clipped at 0x100).
    fn protect(&mut self, at: u16, len: u16) {
        for byte in at..(at + len).min(LEGACY_SIZE) {
            if let Some(i) = byte.checked_sub(HEADER_SIZE) {
                self.writable[usize::from(i / 64)] &= !(1 << (i % 64));
            }
        }
    }

    /// Whether the driver may write byte `at` of 0x40..0x100.
    fn byte_writable(&self, at: u16) -> bool {
        match at.checked_sub(HEADER_SIZE) {
            Some(i) if at < LEGACY_SIZE => {
                self.writable[usize::from(i / 64)] & (1 << (i % 64)) != 0
            }
            _ => false,
        }
    }

    /// Every read is allowed (see the module's table).
    pub fn read(&self, _at: ConfigAccess) -> Result<(), Error> {
        Ok(())
    }

    /// Whether and how a driver's write at `at` is made.
    pub fn write(&self, at: ConfigAccess) -> Result<Write, Error> {
        let (offset, width) = (at.offset(), at.width());
        if offset < HEADER_SIZE {
            let driver = u32::from(Command::DRIVER.bits());
            return match (offset, width) {
                (reg::COMMAND, Width::Word) => Ok(Write::Masked(driver)),
                (o, Width::Byte) if o == reg::COMMAND + 1 => Ok(Write::Masked(driver >> 8)),
                _ => Err(Error::AccessDenied),
            };
        }
        if (offset..at.end()).all(|b| self.byte_writable(b)) {
            Ok(Write::Direct)
        } else {
            Err(Error::AccessDenied)
        }
    }

    /// A driver's read, made if allowed.
    pub fn read_through<C: ConfigSpace + ?Sized>(
        &self,
        cfg: &mut C,
        at: ConfigAccess,
    ) -> Result<u32, Error> {
        self.read(at)?;
        Ok(cfg.read(at))
    }

    /// A driver's write, made if allowed: as asked, or merged into the
    /// register's current value.
    pub fn write_through<C: ConfigSpace + ?Sized>(
        &self,
        cfg: &mut C,
        at: ConfigAccess,
        value: u32,
    ) -> Result<(), Error> {
        let value = value & at.width().value_mask();
        match self.write(at)? {
            Write::Direct => cfg.write(at, value),
            Write::Masked(mask) => {
                let old = cfg.read(at);
                cfg.write(at, (old & !mask) | (value & mask));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
