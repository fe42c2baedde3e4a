//! How a user page's state is written into its page-table entry: the
//! protection, the kind (private, COW-shared, I/O), `was_writable` and the
//! DMA wire count, in the hardware bits and the software-available ones.
//!
//! Rules: every state round-trips through `Codec::encode` and `decode`
//! exactly (tested for every combination); a COW page is never writable in
//! hardware; an entry this module did not write decodes as no mapping.

use crate::frame::Frame;
use crate::paging::{PTE_ADDR_MASK, PteFlags};
use abi::Error;
use abi::vm::{PROT_EXEC, PROT_MASK, PROT_READ, PROT_WRITE, VM_ALLOW_WX, VM_FLAGS_MASK};

pub(super) const PAGE: u64 = 4096;

/// Software bits of a user PTE.
pub(super) const PTE_COW: u64 = PteFlags::SW0.bits();
pub(super) const PTE_WAS_WRITABLE: u64 = PteFlags::SW1.bits();
pub(super) const PTE_IO: u64 = PteFlags::SW2.bits();
/// A mapping with no access: the frame is held but PRESENT is clear.
pub(super) const PTE_NOACCESS: u64 = 1 << 52;
pub(super) const WIRE_SHIFT: u64 = 53;
pub(super) const WIRE_MASK: u64 = 0x3f << WIRE_SHIFT;
/// The most times one page can be wired at once.
pub const MAX_WIRES: u8 = 63;

/// Access rights of a mapping, as the hardware enforces them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    pub const NONE: Prot = Prot {
        read: false,
        write: false,
        exec: false,
    };
    pub const R: Prot = Prot {
        read: true,
        write: false,
        exec: false,
    };
    pub const RX: Prot = Prot {
        read: true,
        write: false,
        exec: true,
    };
    pub const RW: Prot = Prot {
        read: true,
        write: true,
        exec: false,
    };
    pub const RWX: Prot = Prot {
        read: true,
        write: true,
        exec: true,
    };

    /// Decodes the `prot` argument of `vm_map`/`vm_protect`.
    pub fn from_abi(prot: u64) -> Result<Prot, Error> {
        if prot & !(PROT_MASK | VM_FLAGS_MASK) != 0 {
            return Err(Error::InvalidArgument);
        }
        let write = prot & PROT_WRITE != 0;
        let exec = prot & PROT_EXEC != 0;
        if write && exec && prot & VM_ALLOW_WX == 0 {
            return Err(Error::InvalidArgument);
        }
        // x86 cannot make a page writable or executable but unreadable.
        let read = prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0;
        Ok(Prot { read, write, exec })
    }

    pub(super) fn without_write(self) -> Prot {
        Prot {
            write: false,
            ..self
        }
    }
}

/// What kind of thing a mapping maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Private,
    Cow,
    Io,
}

/// A decoded user page-table entry that maps something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub frame: Frame,
    pub kind: Kind,
    pub prot: Prot,
    pub was_writable: bool,
    pub wires: u8,
}

impl Mapping {
    pub fn private(frame: Frame, prot: Prot) -> Mapping {
        Mapping {
            frame,
            kind: Kind::Private,
            prot,
            was_writable: false,
            wires: 0,
        }
    }

    pub(super) fn is_pinned(&self) -> bool {
        self.wires > 0 || self.kind == Kind::Io
    }
}

/// Turns mappings into PTE values and back. `nx` says whether the CPU has
/// no-execute (without it bit 63 is reserved and must stay clear).
#[derive(Clone, Copy, Debug)]
pub struct Codec {
    pub nx: bool,
}

impl Codec {
    pub fn encode(&self, m: &Mapping) -> u64 {
        let mut pte = (m.frame.addr() & PTE_ADDR_MASK) | PteFlags::USER.bits();
        if m.prot.read {
            pte |= PteFlags::PRESENT.bits();
        } else {
            pte |= PTE_NOACCESS;
        }
        if m.prot.write {
            pte |= PteFlags::WRITABLE.bits();
        }
        if !m.prot.exec && self.nx {
            pte |= PteFlags::NO_EXECUTE.bits();
        }
        match m.kind {
            Kind::Private => {}
            Kind::Cow => pte |= PTE_COW,
            Kind::Io => pte |= PTE_IO | PteFlags::NO_CACHE.bits() | PteFlags::WRITE_THROUGH.bits(),
        }
        if m.was_writable {
            pte |= PTE_WAS_WRITABLE;
        }
        pte | ((m.wires as u64) << WIRE_SHIFT)
    }

    /// The mapping an entry holds, or `None` for an unmapped page.
    pub fn decode(&self, pte: u64) -> Option<Mapping> {
        let present = pte & PteFlags::PRESENT.bits() != 0;
        if !present && pte & PTE_NOACCESS == 0 {
            return None;
        }
        let kind = if pte & PTE_IO != 0 {
            Kind::Io
        } else if pte & PTE_COW != 0 {
            Kind::Cow
        } else {
            Kind::Private
        };
        let prot = if present {
            Prot {
                read: true,
                write: pte & PteFlags::WRITABLE.bits() != 0,
                exec: !self.nx || pte & PteFlags::NO_EXECUTE.bits() == 0,
            }
        } else {
            Prot::NONE
        };
        Some(Mapping {
            frame: Frame::containing(pte & PTE_ADDR_MASK),
            kind,
            prot,
            was_writable: pte & PTE_WAS_WRITABLE != 0,
            wires: ((pte & WIRE_MASK) >> WIRE_SHIFT) as u8,
        })
    }
}
