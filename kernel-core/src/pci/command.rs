//! The command register (offset 0x04): which of a function's resources
//! decode (I/O, memory), whether it may master the bus (DMA and MSI
//! writes), and whether it may assert its legacy interrupt. Pure helpers
//! compute a new command word from the old one; [`update_command`] does
//! the read, the write and the check.
//!
//! Rules: only the bits asked for change; every other bit (reserved ones
//! included) is written back as it was read. The kernel owns I/O and
//! memory decode and bus mastering ([`Command::KERNEL`]): it enables bus
//! mastering only for a function it has claimed, for that function alone,
//! and a driver's write never reaches those bits. What a driver may set
//! is [`Command::DRIVER`] (INTx disable), merged by
//! [`Command::merge_driver`]. A write is read back, and if the kernel's
//! bits did not take as written the device is [`PciError::Unstable`].

use super::config::{ConfigSpace, reg};
use super::error::PciError;

bitflags::bitflags! {
    /// The command register's bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Command: u16 {
        /// Decode the I/O BARs.
        const IO_SPACE = 1 << 0;
        /// Decode the memory BARs.
        const MEMORY_SPACE = 1 << 1;
        /// Master the bus: DMA, and MSI/MSI-X messages.
        const BUS_MASTER = 1 << 2;
        const SPECIAL_CYCLES = 1 << 3;
        const MEMORY_WRITE_INVALIDATE = 1 << 4;
        const VGA_PALETTE_SNOOP = 1 << 5;
        const PARITY_ERROR_RESPONSE = 1 << 6;
        const SERR = 1 << 8;
        const FAST_BACK_TO_BACK = 1 << 9;
        /// Do not assert INTx.
        const INTX_DISABLE = 1 << 10;
    }
}

impl Command {
    /// Both kinds of decode.
    pub const DECODE: Command = Command::IO_SPACE.union(Command::MEMORY_SPACE);
    /// The bits only the kernel sets: decode and bus mastering.
    pub const KERNEL: Command = Command::DECODE.union(Command::BUS_MASTER);
    /// The bits a driver may set through mediated config writes.
    pub const DRIVER: Command = Command::INTX_DISABLE;

    /// The command word `raw`, every bit kept (reserved ones too).
    pub const fn from_raw(raw: u16) -> Command {
        Command::from_bits_retain(raw)
    }

    const fn with(self, bits: Command, on: bool) -> Command {
        if on {
            self.union(bits)
        } else {
            self.difference(bits)
        }
    }

    pub const fn with_bus_master(self, on: bool) -> Command {
        self.with(Command::BUS_MASTER, on)
    }

    pub const fn with_memory_decode(self, on: bool) -> Command {
        self.with(Command::MEMORY_SPACE, on)
    }

    pub const fn with_io_decode(self, on: bool) -> Command {
        self.with(Command::IO_SPACE, on)
    }

    /// `disabled`: the function may not assert INTx.
    pub const fn with_intx_disabled(self, disabled: bool) -> Command {
        self.with(Command::INTX_DISABLE, disabled)
    }

    /// Neither I/O nor memory decode: what BAR sizing runs under.
    pub const fn without_decode(self) -> Command {
        self.difference(Command::DECODE)
    }

    /// What a driver's write of `requested` makes of the command word:
    /// [`Command::DRIVER`] bits from the request, all others as they are.
    pub const fn merge_driver(self, requested: u16) -> Command {
        let keep = self.bits() & !Command::DRIVER.bits();
        Command::from_bits_retain(keep | (requested & Command::DRIVER.bits()))
    }
}

pub fn read_command<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Command {
    Command::from_raw(cfg.read16(reg::COMMAND))
}

/// Reads the command word, writes `change(old)` (unless it is the same),
/// and reads it back. Returns the word read back; `Unstable` if its
/// [`Command::KERNEL`] bits are not those written (other bits may be
/// read-only on a given device, and are not checked).
pub fn update_command<C: ConfigSpace + ?Sized>(
    cfg: &mut C,
    change: impl FnOnce(Command) -> Command,
) -> Result<Command, PciError> {
    let old = read_command(cfg);
    let new = change(old);
    if new != old {
        cfg.write16(reg::COMMAND, new.bits());
    }
    let now = read_command(cfg);
    if now.intersection(Command::KERNEL) != new.intersection(Command::KERNEL) {
        return Err(PciError::Unstable {
            offset: reg::COMMAND,
        });
    }
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_change_only_their_bit() {
        let old = Command::from_raw(0xf800 | 0x0146); // reserved bits, MEM, BM, PER, SERR
        assert_eq!(old.with_bus_master(false).bits(), 0xf800 | 0x0142);
        assert_eq!(old.with_bus_master(true), old);
        assert_eq!(old.with_io_decode(true).bits(), 0xf800 | 0x0147);
        assert_eq!(old.with_memory_decode(false).bits(), 0xf800 | 0x0144);
        assert_eq!(old.with_intx_disabled(true).bits(), 0xf800 | 0x0546);
        assert_eq!(old.with_intx_disabled(true).with_intx_disabled(false), old);
        assert_eq!(old.without_decode().bits(), 0xf800 | 0x0144);
    }

    #[test]
    fn a_driver_write_reaches_only_intx_disable() {
        let old = Command::from_raw(0x0006); // MEM, BM
        assert_eq!(old.merge_driver(0xffff).bits(), 0x0406);
        assert_eq!(old.merge_driver(0x0000).bits(), 0x0006);
        assert_eq!(old.merge_driver(0x0001).bits(), 0x0006, "no I/O decode");
        let off = Command::from_raw(0x0400);
        assert_eq!(off.merge_driver(0x0007).bits(), 0x0000, "no bus master");
    }
}
