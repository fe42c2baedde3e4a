//! What can be wrong with a function, as the readers in this module find
//! it: [`PciError`] names the register or BAR at fault, for the kernel's
//! log, and turns into the [`abi::Error`] a claimer is given.
//!
//! Rules: a function that is not there is `NotFound`; one that is there
//! but is not a type 0 endpoint is `NotSupported`; a device whose answers
//! break the specification, or change while they are being read, is
//! `NotSupported` too (the kernel does not claim what it cannot describe).
//! No error leaves the function changed: every reader puts back what it
//! wrote before it decides anything.

use core::fmt;

/// Why a function cannot be described, or claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// Nothing answers: the vendor id reads 0xffff (or 0).
    Absent,
    /// The header is not type 0 (bridges, CardBus, reserved types): only
    /// endpoints are claimed.
    NotEndpoint { header_type: u8 },
    /// BAR `index` breaks the rules.
    Bar { index: u8, fault: BarFault },
    /// The capability at `at` (or the list's head pointer, `at` 0x34)
    /// breaks the rules.
    Capability { at: u8, fault: CapFault },
    /// The register at `offset` did not keep a value: it read back other
    /// than it was written, or changed between two reads.
    Unstable { offset: u16 },
}

/// What is wrong with a BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarFault {
    /// Memory type 01 or 11 (reserved).
    ReservedType,
    /// A 64-bit BAR in slot 5, which has no slot above it.
    Wide64InLastSlot,
    /// The writable address bits are not one run up to the top: no
    /// power-of-two size.
    NotPowerOfTwo,
    /// The base has bits set below the size.
    Misaligned,
    /// An I/O BAR that reaches port 0x10000 or above.
    IoAbove64K,
    /// The range ends past 2^64.
    Overflow,
}

/// What is wrong with a capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapFault {
    /// A pointer below 0x40 (into the header) or not a multiple of 4.
    BadPointer(u8),
    /// The list comes back to a capability already seen.
    Loop,
    /// More than 48 capabilities: more than fit in 0x40..0x100.
    TooMany,
    /// The structure runs past offset 0xff.
    Truncated,
    /// A second MSI or MSI-X capability.
    Duplicate,
    /// The MSI-X table or PBA names a BAR that is reserved (6, 7),
    /// unimplemented, the top half of a 64-bit BAR, or I/O.
    MsixBar,
    /// The MSI-X table or PBA does not lie inside its BAR.
    MsixOutsideBar,
    /// The MSI-X table and PBA overlap.
    MsixOverlap,
}

impl PciError {
    /// The system-call error a claimer gets.
    pub const fn error(self) -> abi::Error {
        match self {
            PciError::Absent => abi::Error::NotFound,
            PciError::NotEndpoint { .. }
            | PciError::Bar { .. }
            | PciError::Capability { .. }
            | PciError::Unstable { .. } => abi::Error::NotSupported,
        }
    }
}

impl From<PciError> for abi::Error {
    fn from(e: PciError) -> abi::Error {
        e.error()
    }
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PciError::Absent => f.write_str("no function"),
            PciError::NotEndpoint { header_type } => {
                write!(f, "header type {header_type:#x}, not an endpoint")
            }
            PciError::Bar { index, fault } => write!(f, "BAR {index}: {fault}"),
            PciError::Capability { at, fault } => write!(f, "capability at {at:#x}: {fault}"),
            PciError::Unstable { offset } => {
                write!(f, "register {offset:#x} does not keep its value")
            }
        }
    }
}

impl fmt::Display for BarFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BarFault::ReservedType => "reserved memory type",
            BarFault::Wide64InLastSlot => "64-bit BAR in the last slot",
            BarFault::NotPowerOfTwo => "size is not a power of two",
            BarFault::Misaligned => "base not aligned to the size",
            BarFault::IoAbove64K => "I/O range above 64 KiB",
            BarFault::Overflow => "range ends past 2^64",
        })
    }
}

impl fmt::Display for CapFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapFault::BadPointer(p) => write!(f, "bad pointer {p:#x}"),
            CapFault::Loop => f.write_str("the list loops"),
            CapFault::TooMany => f.write_str("too many capabilities"),
            CapFault::Truncated => f.write_str("runs past the first 256 bytes"),
            CapFault::Duplicate => f.write_str("a second MSI or MSI-X capability"),
            CapFault::MsixBar => f.write_str("MSI-X structure in a BAR that is not memory"),
            CapFault::MsixOutsideBar => f.write_str("MSI-X structure outside its BAR"),
            CapFault::MsixOverlap => f.write_str("MSI-X table and PBA overlap"),
        }
    }
}
