//! The identity of a function, from its standard header: vendor and
//! device ids, class, header type and multifunction bit, the legacy
//! interrupt pin and line ([`probe`]).
//!
//! Rules: a vendor id of 0xffff (what an empty slot answers) or 0 (never
//! assigned) is [`PciError::Absent`]. Any header type is described, so
//! that enumeration can see bridges, but only type 0 (an endpoint, with
//! six BARs) is claimable: [`Header::require_endpoint`] and
//! [`probe_endpoint`] refuse type 1 (PCI-to-PCI bridges, whose BAR slots
//! 2–5 hold bus numbers and forwarding windows), type 2 (CardBus) and the
//! reserved types with [`PciError::NotEndpoint`]. An interrupt pin
//! outside 1–4 (INTA–INTD) is no pin. The id is read again at the end: a
//! function that changed under the probe (was removed, or lies) is
//! [`PciError::Unstable`]. Nothing is written.

use super::config::{ConfigSpace, STATUS_CAPABILITIES, reg};
use super::error::PciError;

/// Header type 0: an endpoint.
pub const HEADER_ENDPOINT: u8 = 0x00;
/// Header type 1: a PCI-to-PCI bridge.
pub const HEADER_BRIDGE: u8 = 0x01;
/// Header type 2: a CardBus bridge.
pub const HEADER_CARDBUS: u8 = 0x02;
/// Bit 7 of the header type byte: the device has functions 1–7 too.
pub const HEADER_MULTIFUNCTION: u8 = 0x80;

/// What a function's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub vendor: u16,
    pub device: u16,
    pub revision: u8,
    pub prog_if: u8,
    pub subclass: u8,
    pub class: u8,
    /// Bits 6:0 of the header type byte (0 endpoint, 1 bridge, 2 CardBus).
    pub header_type: u8,
    /// Bit 7 of the header type byte (meaningful on function 0).
    pub multifunction: bool,
    /// Status bit 4: the function has a capability list.
    pub has_capabilities: bool,
    /// The legacy interrupt pin, 1–4 for INTA–INTD; `None` if the
    /// function uses none (or reports a reserved value).
    pub interrupt_pin: Option<u8>,
    /// The interrupt line firmware wrote (a scratch register: the ACPI
    /// routing, not this, says where a pin goes).
    pub interrupt_line: u8,
    /// Subsystem vendor and subsystem id (type 0 headers only).
    pub subsystem: Option<(u16, u16)>,
}

impl Header {
    pub const fn is_endpoint(&self) -> bool {
        self.header_type == HEADER_ENDPOINT
    }

    /// `NotEndpoint` unless this is a type 0 header.
    pub const fn require_endpoint(&self) -> Result<(), PciError> {
        if self.is_endpoint() {
            Ok(())
        } else {
            Err(PciError::NotEndpoint {
                header_type: self.header_type,
            })
        }
    }
}

/// The vendor and device ids, or `Absent`.
pub(super) fn ids<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Result<u32, PciError> {
    let id = cfg.read32(reg::VENDOR_ID);
    match id as u16 {
        0xffff | 0 => Err(PciError::Absent),
        _ => Ok(id),
    }
}

/// `Absent`, or `NotEndpoint` unless the header type byte says type 0.
/// Two reads; what [`super::bar::size_bars`] checks before it writes.
pub(super) fn check_endpoint<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Result<(), PciError> {
    ids(cfg)?;
    let header_type = cfg.read8(reg::HEADER_TYPE) & !HEADER_MULTIFUNCTION;
    if header_type == HEADER_ENDPOINT {
        Ok(())
    } else {
        Err(PciError::NotEndpoint { header_type })
    }
}

/// Reads the header of any present function.
pub fn probe<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Result<Header, PciError> {
    let id = ids(cfg)?;
    let class = cfg.read32(reg::CLASS_REVISION);
    let type_byte = cfg.read8(reg::HEADER_TYPE);
    let status = cfg.read16(reg::STATUS);
    let interrupt = cfg.read16(reg::INTERRUPT);
    let header_type = type_byte & !HEADER_MULTIFUNCTION;
    let subsystem = if header_type == HEADER_ENDPOINT {
        let s = cfg.read32(reg::SUBSYSTEM);
        Some((s as u16, (s >> 16) as u16))
    } else {
        None
    };
    if cfg.read32(reg::VENDOR_ID) != id {
        return Err(PciError::Unstable {
            offset: reg::VENDOR_ID,
        });
    }
    let pin = (interrupt >> 8) as u8;
    Ok(Header {
        vendor: id as u16,
        device: (id >> 16) as u16,
        revision: class as u8,
        prog_if: (class >> 8) as u8,
        subclass: (class >> 16) as u8,
        class: (class >> 24) as u8,
        header_type,
        multifunction: type_byte & HEADER_MULTIFUNCTION != 0,
        has_capabilities: status & STATUS_CAPABILITIES != 0,
        interrupt_pin: if (1..=4).contains(&pin) {
            Some(pin)
        } else {
            None
        },
        interrupt_line: interrupt as u8,
        subsystem,
    })
}

/// [`probe`], then [`Header::require_endpoint`]: the header of a function
/// the kernel may claim.
pub fn probe_endpoint<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Result<Header, PciError> {
    let header = probe(cfg)?;
    header.require_endpoint()?;
    Ok(header)
}
