//! What a remapping unit can do, read from its capability registers (CAP
//! at offset 0x08, ECAP at 0x10), and the shape of the domains built for
//! it: how many levels their second-level tables have (the adjusted guest
//! address width, AGAW), how wide their IOVAs may be, and how wide the
//! physical addresses their entries hold.
//!
//! Rules: decoding is total (every `u64` decodes; a reserved field value
//! reads as the most cautious one it could mean); only 3- and 4-level
//! tables (39- and 48-bit AGAW) are built, so a unit that supports neither
//! is refused with `NotSupported`; a geometry's widths are checked once,
//! when it is made, and every object built from it can rely on them.

use abi::Error;

/// The adjusted guest address width of a domain, which fixes how many
/// levels its second-level page tables have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agaw {
    /// 39-bit IOVAs, 3 levels (512 GiB).
    Bits39,
    /// 48-bit IOVAs, 4 levels (256 TiB).
    Bits48,
}

impl Agaw {
    /// The AGAW for a table of `levels` levels: `NotSupported` for any
    /// count but 3 and 4 (VT-d also defines 5 levels, not built here).
    pub const fn from_levels(levels: u8) -> Result<Agaw, Error> {
        match levels {
            3 => Ok(Agaw::Bits39),
            4 => Ok(Agaw::Bits48),
            _ => Err(Error::NotSupported),
        }
    }

    /// Levels of second-level page tables.
    pub const fn levels(self) -> u8 {
        match self {
            Agaw::Bits39 => 3,
            Agaw::Bits48 => 4,
        }
    }

    /// Bits of IOVA the tables translate.
    pub const fn bits(self) -> u8 {
        12 + 9 * self.levels()
    }

    /// The encoding shared by the context entry's AW field and the bit
    /// of CAP.SAGAW that says the unit supports this width: 1 for 39
    /// bits, 2 for 48.
    pub const fn code(self) -> u64 {
        self.levels() as u64 - 2
    }

    /// The AGAW an AW field holds, if it is one of these.
    pub const fn from_code(code: u64) -> Option<Agaw> {
        match code {
            1 => Some(Agaw::Bits39),
            2 => Some(Agaw::Bits48),
            _ => None,
        }
    }
}

/// The capability register (CAP_REG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap(pub u64);

const fn field(value: u64, low: u32, bits: u32) -> u64 {
    (value >> low) & ((1 << bits) - 1)
}

impl Cap {
    /// Domain ids the unit supports (ND, bits 2:0: 16 << 2·ND). The
    /// reserved value 7 reads as 16, the fewest any unit has.
    pub const fn domains(self) -> u32 {
        let nd = field(self.0, 0, 3) as u32;
        if nd == 7 { 16 } else { 16 << (2 * nd) }
    }

    /// RWBF (bit 4): the write buffer must be flushed (GCMD.WBF) after
    /// the tables change.
    pub const fn write_buffer_flush(self) -> bool {
        self.0 & (1 << 4) != 0
    }

    /// CM (bit 7), caching mode: the unit may cache not-present entries
    /// (a virtual unit shadowing the tables does), so making an entry
    /// present needs an invalidation too, and domain id 0 is reserved.
    pub const fn caching_mode(self) -> bool {
        self.0 & (1 << 7) != 0
    }

    /// SAGAW (bits 12:8): bit `n` set means AGAW code `n` is supported.
    pub const fn sagaw(self) -> u8 {
        field(self.0, 8, 5) as u8
    }

    /// Whether the unit walks tables of this width.
    pub const fn supports(self, agaw: Agaw) -> bool {
        self.sagaw() & (1 << agaw.code()) != 0
    }

    /// MGAW (bits 21:16, stored as N − 1): bits of IOVA the unit accepts
    /// at all.
    pub const fn mgaw_bits(self) -> u8 {
        field(self.0, 16, 6) as u8 + 1
    }

    /// The first fault-recording register's offset from the register base
    /// (FRO, bits 33:24, in 16-byte units) and how many there are (NFR,
    /// bits 47:40, stored as N − 1).
    pub const fn fault_records(self) -> (u64, u32) {
        (field(self.0, 24, 10) * 16, field(self.0, 40, 8) as u32 + 1)
    }

    /// PSI (bit 39): page-selective IOTLB invalidation is supported.
    pub const fn page_selective(self) -> bool {
        self.0 & (1 << 39) != 0
    }

    /// MAMV (bits 53:48): the largest address mask a page-selective
    /// invalidation may carry (it covers 2^MAMV pages).
    pub const fn max_address_mask(self) -> u8 {
        field(self.0, 48, 6) as u8
    }

    /// DWD (bit 54): an IOTLB invalidation may ask the unit to drain the
    /// DMA writes it still holds for the pages being invalidated.
    pub const fn drain_writes(self) -> bool {
        self.0 & (1 << 54) != 0
    }

    /// DRD (bit 55): likewise for DMA reads.
    pub const fn drain_reads(self) -> bool {
        self.0 & (1 << 55) != 0
    }
}

/// The extended capability register (ECAP_REG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecap(pub u64);

impl Ecap {
    /// C (bit 0): the unit snoops the CPU's caches when it walks tables.
    /// When clear, every table write must be flushed from the cache
    /// (`clflush`) before the hardware may see it.
    pub const fn coherent(self) -> bool {
        self.0 & 1 != 0
    }

    /// QI (bit 1): queued invalidation is supported.
    pub const fn queued_invalidation(self) -> bool {
        self.0 & (1 << 1) != 0
    }

    /// IR (bit 3): interrupt remapping is supported.
    pub const fn interrupt_remapping(self) -> bool {
        self.0 & (1 << 3) != 0
    }

    /// EIM (bit 4): interrupt remapping takes 32-bit (x2APIC) ids.
    pub const fn extended_interrupt_mode(self) -> bool {
        self.0 & (1 << 4) != 0
    }

    /// PT (bit 6): the pass-through translation type is supported.
    pub const fn pass_through(self) -> bool {
        self.0 & (1 << 6) != 0
    }

    /// SC (bit 7): the snoop bit of leaf entries is honoured.
    pub const fn snoop_control(self) -> bool {
        self.0 & (1 << 7) != 0
    }

    /// The IOTLB registers' offset from the register base (IRO, bits
    /// 17:8, in 16-byte units): the invalidate-address register is there,
    /// the IOTLB invalidate register 8 bytes further.
    pub const fn iotlb_offset(self) -> u64 {
        field(self.0, 8, 10) * 16
    }
}

/// Host physical addresses are at most this wide (the address field of
/// every entry ends at bit 51).
pub const MAX_HOST_BITS: u8 = 52;

/// The shape of a domain: its AGAW (levels), the IOVAs it may translate
/// (`0..2^iova_bits`) and the physical addresses its entries may hold
/// (`0..2^host_bits`, the DMAR's host address width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    agaw: Agaw,
    iova_bits: u8,
    host_bits: u8,
}

impl Geometry {
    /// A geometry of `levels` levels (`NotSupported` unless 3 or 4) for
    /// IOVAs of `iova_bits` bits (13 up to the AGAW's width) and physical
    /// addresses of `host_bits` bits (13..=52): `InvalidArgument` for
    /// widths out of range.
    pub const fn new(levels: u8, iova_bits: u8, host_bits: u8) -> Result<Geometry, Error> {
        let agaw = match Agaw::from_levels(levels) {
            Ok(a) => a,
            Err(e) => return Err(e),
        };
        if iova_bits <= 12 || iova_bits > agaw.bits() || host_bits <= 12 {
            return Err(Error::InvalidArgument);
        }
        if host_bits > MAX_HOST_BITS {
            return Err(Error::InvalidArgument);
        }
        Ok(Geometry {
            agaw,
            iova_bits,
            host_bits,
        })
    }

    /// The geometry for a unit with capabilities `cap` on a platform whose
    /// DMAR reports `host_bits` of physical address (`Dmar::address_bits`):
    /// the fewest levels the unit supports (3 if it can, walks are then
    /// one step shorter and 512 GiB of IOVA is plenty; else 4), with IOVAs
    /// no wider than its MGAW. `NotSupported` if SAGAW offers neither 39
    /// nor 48 bits.
    pub const fn choose(cap: Cap, host_bits: u8) -> Result<Geometry, Error> {
        let agaw = if cap.supports(Agaw::Bits39) {
            Agaw::Bits39
        } else if cap.supports(Agaw::Bits48) {
            Agaw::Bits48
        } else {
            return Err(Error::NotSupported);
        };
        let mgaw = cap.mgaw_bits();
        let iova_bits = if mgaw < agaw.bits() {
            mgaw
        } else {
            agaw.bits()
        };
        Geometry::new(agaw.levels(), iova_bits, host_bits)
    }

    pub const fn agaw(self) -> Agaw {
        self.agaw
    }

    pub const fn levels(self) -> u8 {
        self.agaw.levels()
    }

    pub const fn iova_bits(self) -> u8 {
        self.iova_bits
    }

    pub const fn host_bits(self) -> u8 {
        self.host_bits
    }

    /// One past the highest IOVA (`2^iova_bits`).
    pub const fn iova_end(self) -> u64 {
        1 << self.iova_bits
    }

    /// One past the highest physical address an entry may hold.
    pub const fn host_end(self) -> u64 {
        1 << self.host_bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2's CAP for `-device intel-iommu` (aw-bits 39), put together
    /// from its definitions: FRO 0x220, one fault record, ND 6 (16-bit
    /// domain ids), MAMV 18, PSI, 2 MiB and 1 GiB pages, MGAW 39, SAGAW
    /// 39-bit only, and read and write draining.
    const QEMU_CAP: u64 = 0x00d2_008c_2226_0206;

    #[test]
    fn qemu_caps_decode_and_choose_three_levels() {
        let cap = Cap(QEMU_CAP);
        assert_eq!(cap.domains(), 65536);
        assert!(!cap.write_buffer_flush());
        assert!(!cap.caching_mode());
        assert_eq!(cap.sagaw(), 0b00010);
        assert!(cap.supports(Agaw::Bits39) && !cap.supports(Agaw::Bits48));
        assert_eq!(cap.mgaw_bits(), 39);
        assert_eq!(cap.fault_records(), (0x220, 1));
        assert!(cap.page_selective());
        assert_eq!(cap.max_address_mask(), 18);
        assert!(cap.drain_reads() && cap.drain_writes());
        let g = Geometry::choose(cap, 39).unwrap();
        assert_eq!(
            (g.agaw(), g.levels(), g.iova_bits(), g.host_bits()),
            (Agaw::Bits39, 3, 39, 39)
        );
        assert_eq!((g.iova_end(), g.host_end()), (1 << 39, 1 << 39));
    }

    #[test]
    fn ecap_fields() {
        // QI, IR, EIM, PT, IRO 0xf0 (QEMU with intremap=on, eim=on).
        let e = Ecap(0x0000_0000_0000_0f5a);
        assert!(!e.coherent() && e.queued_invalidation() && e.interrupt_remapping());
        assert!(e.extended_interrupt_mode() && e.pass_through() && !e.snoop_control());
        assert_eq!(e.iotlb_offset(), 0xf0);
        assert!(Ecap(1).coherent());
        assert!(Ecap(1 << 7).snoop_control());
    }

    #[test]
    fn domain_counts_and_flags() {
        assert_eq!(Cap(0).domains(), 16);
        assert_eq!(Cap(2).domains(), 256);
        assert_eq!(Cap(7).domains(), 16, "reserved ND reads as the fewest");
        assert!(Cap(1 << 4).write_buffer_flush());
        assert!(Cap(1 << 7).caching_mode());
        assert_eq!(Cap(0xff << 40).fault_records(), (0, 256));
        assert!(Cap(1 << 54).drain_writes() && !Cap(1 << 54).drain_reads());
        assert!(Cap(1 << 55).drain_reads() && !Cap(1 << 55).drain_writes());
        // FRO is in 16-byte units: the largest (1023) puts the first record
        // at 0x3ff0.
        assert_eq!(Cap(0x3ff << 24).fault_records(), (0x3ff0, 1));
    }

    #[test]
    fn choice_prefers_three_levels_and_caps_at_mgaw() {
        let both = Cap((0b110 << 8) | (47 << 16));
        let g = Geometry::choose(both, 46).unwrap();
        assert_eq!((g.levels(), g.iova_bits()), (3, 39));
        let only48 = Cap((0b100 << 8) | (44 << 16));
        let g = Geometry::choose(only48, 46).unwrap();
        assert_eq!((g.levels(), g.iova_bits(), g.host_bits()), (4, 45, 46));
        // 57 bits (5 levels) only, or nothing: refused.
        assert_eq!(
            Geometry::choose(Cap((0b1000 << 8) | (56 << 16)), 46),
            Err(Error::NotSupported)
        );
        assert_eq!(Geometry::choose(Cap(0), 46), Err(Error::NotSupported));
        // A bad host width from the DMAR is refused too.
        assert_eq!(
            Geometry::choose(Cap(QEMU_CAP), 60),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn levels_other_than_three_or_four_are_refused() {
        for levels in [0, 1, 2, 5, 6, 255] {
            assert_eq!(Agaw::from_levels(levels), Err(Error::NotSupported));
            assert_eq!(Geometry::new(levels, 39, 39), Err(Error::NotSupported));
        }
        assert_eq!(Agaw::from_levels(3).unwrap().bits(), 39);
        assert_eq!(Agaw::from_levels(4).unwrap().bits(), 48);
    }

    #[test]
    fn widths_are_checked() {
        assert!(Geometry::new(3, 39, 52).is_ok());
        assert!(Geometry::new(4, 48, 13).is_ok());
        assert!(Geometry::new(3, 13, 39).is_ok());
        assert_eq!(Geometry::new(3, 40, 39), Err(Error::InvalidArgument));
        assert_eq!(Geometry::new(4, 49, 39), Err(Error::InvalidArgument));
        assert_eq!(Geometry::new(3, 12, 39), Err(Error::InvalidArgument));
        assert_eq!(Geometry::new(3, 39, 12), Err(Error::InvalidArgument));
        assert_eq!(Geometry::new(3, 39, 53), Err(Error::InvalidArgument));
    }

    #[test]
    fn agaw_codes_match_sagaw_bits_and_aw_values() {
        assert_eq!((Agaw::Bits39.code(), Agaw::Bits48.code()), (1, 2));
        for a in [Agaw::Bits39, Agaw::Bits48] {
            assert_eq!(Agaw::from_code(a.code()), Some(a));
        }
        for bad in [0, 3, 4, 7] {
            assert_eq!(Agaw::from_code(bad), None);
        }
    }
}
