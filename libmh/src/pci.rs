//! PCI functions, in user space: finding one through the `platform`
//! device (`PLATFORM_PORT_PCI_SELECT` / `PLATFORM_PORT_PCI_ID`), claiming
//! it as a hardware device (`PLATFORM_PORT_CLAIM_PCI`), and driving a
//! claimed one ([`Function`]): its configuration space through the
//! kernel's mediated window, its BARs as the kernel sized them, whether
//! an I/O MMU translates its DMA, and the DMA faults it caused.
//!
//! Rules: nothing here touches configuration space directly (the kernel
//! keeps the 0xCF8 ports and the ECAM windows); a BAR's address and size
//! are the kernel's, never decoded from the raw register, so a driver
//! maps exactly what the kernel will let it map.

use crate::dev::{self, Handle};
use abi::Error;
use abi::hw::*;
use abi::kdev::{PLATFORM_PORT_PCI_ID, PLATFORM_PORT_PCI_SELECT};

/// Where a function is: segment, bus, device (< 32), function (< 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    pub segment: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Address {
    pub const fn new(bus: u8, device: u8, function: u8) -> Address {
        Address {
            segment: 0,
            bus,
            device,
            function,
        }
    }

    /// As the platform ports take it: `segment << 16 | bus << 8 | devfn`.
    pub const fn word(self) -> u64 {
        (self.segment as u64) << 16
            | (self.bus as u64) << 8
            | ((self.device as u64) << 3 | (self.function as u64 & 7))
    }
}

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// What a function says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
}

/// What answers at `at`, if anything.
pub fn identify(platform: Handle, at: Address) -> Result<Option<Identity>, Error> {
    if at.device >= 32 || at.function >= 8 {
        return Err(Error::InvalidArgument);
    }
    platform.port_out(PLATFORM_PORT_PCI_SELECT, 8, at.word())?;
    let id = platform.port_in(PLATFORM_PORT_PCI_ID, 8)?;
    if id == 0 {
        return Ok(None);
    }
    Ok(Some(Identity {
        vendor: id as u16,
        device: (id >> 16) as u16,
        class: (id >> 32) as u8,
        subclass: (id >> 40) as u8,
        prog_if: (id >> 48) as u8,
    }))
}

/// Calls `each` for every function that answers on `bus` (segment 0).
pub fn scan(
    platform: Handle,
    bus: u8,
    each: &mut dyn FnMut(Address, Identity),
) -> Result<(), Error> {
    for device in 0..32 {
        for function in 0..8 {
            let at = Address::new(bus, device, function);
            match identify(platform, at)? {
                Some(id) => each(at, id),
                None if function == 0 => break,
                None => {}
            }
        }
    }
    Ok(())
}

/// The first function on bus 0 with these ids.
pub fn find(platform: Handle, vendor: u16, device: u16) -> Result<Option<Address>, Error> {
    let mut found = None;
    scan(platform, 0, &mut |at, id| {
        if found.is_none() && (id.vendor, id.device) == (vendor, device) {
            found = Some(at);
        }
    })?;
    Ok(found)
}

/// Claims the function at `at` as the hardware device `name`.
pub fn claim(platform: Handle, name: &str, at: Address) -> Result<(), Error> {
    dev::claim_pci(platform, name, at.segment, at.bus, at.device, at.function)
}

/// A BAR, as the kernel sized it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    None,
    Io {
        base: u16,
        len: u16,
    },
    Mem {
        base: u64,
        len: u64,
        prefetchable: bool,
    },
}

/// A claimed function, through a handle to its hardware device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function(pub Handle);

impl Function {
    /// Reads `size` (1, 2 or 4) bytes of configuration space at `offset`.
    pub fn config_read(self, offset: u16, size: u32) -> Result<u32, Error> {
        let port = HW_PORT_PCI_CONFIG + u32::from(offset);
        self.0.port_in(port, size).map(|v| v as u32)
    }

    /// Writes configuration space (only where the kernel lets drivers).
    pub fn config_write(self, offset: u16, size: u32, value: u32) -> Result<(), Error> {
        let port = HW_PORT_PCI_CONFIG + u32::from(offset);
        self.0.port_out(port, size, u64::from(value))
    }

    /// BAR `index` (< 6).
    pub fn bar(self, index: u32) -> Result<Bar, Error> {
        if index >= 6 {
            return Err(Error::InvalidArgument);
        }
        let base = self.0.port_in(HW_PORT_PCI_BAR_BASE + 8 * index, 8)?;
        let len = self.0.port_in(HW_PORT_PCI_BAR_SIZE + 8 * index, 8)?;
        let kind = self.0.port_in(HW_PORT_PCI_BAR_KIND + 8 * index, 8)?;
        Ok(match kind & 0xff {
            HW_BAR_IO => Bar::Io {
                base: base as u16,
                len: len as u16,
            },
            HW_BAR_MEM32 | HW_BAR_MEM64 => Bar::Mem {
                base,
                len,
                prefetchable: kind & HW_BAR_PREFETCHABLE != 0,
            },
            _ => Bar::None,
        })
    }

    /// Whether an I/O MMU translates the function's DMA (then exports
    /// give iovas of its own domain, else physical addresses).
    pub fn translated(self) -> Result<bool, Error> {
        self.0.port_in(HW_PORT_PCI_IOMMU, 8).map(|v| v != 0)
    }

    /// DMA faults the I/O MMU reported for the function so far.
    pub fn dma_faults(self) -> Result<u64, Error> {
        self.0.port_in(HW_PORT_DMA_FAULTS, 8)
    }

    /// Recent fault `k` (0 the newest): (iova, reason, write), or `None`.
    pub fn dma_fault(self, k: u32) -> Result<Option<(u64, u8, bool)>, Error> {
        let iova = self.0.port_in(HW_PORT_DMA_FAULT + 16 * k, 8)?;
        let info = self.0.port_in(HW_PORT_DMA_FAULT + 16 * k + 8, 8)?;
        if iova == 0 && info == 0 {
            return Ok(None);
        }
        Ok(Some((iova, info as u8, info & (1 << 8) != 0)))
    }
}
