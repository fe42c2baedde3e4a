//! Who owns which piece of the machine: the I/O port ranges, MMIO ranges
//! and interrupt lines claimed by hardware devices, and the checks a new
//! hardware device must pass (see `abi::hw`).
//!
//! Rules: a description is checked completely before anything is claimed;
//! no two devices share a port, a page of device memory or an interrupt
//! line; resources the kernel drives itself are never handed out; RAM is
//! never presented as device memory (that would let a driver map any
//! process's pages).

extern crate alloc;

use abi::Error;
use abi::hw::{
    HW_IRQ_ACTIVE_LOW, HW_IRQ_ISA, HW_IRQ_LEVEL, HW_IRQS, HW_MMIO_RANGES, HW_PORT_RANGES,
    HwDeviceSpec, ISA_IRQS,
};
use alloc::vec::Vec;
use arrayvec::{ArrayString, ArrayVec};

const PAGE: u64 = 4096;

/// MMIO ranges one device may hold: a PCI function's memory BARs, each
/// split at most once around the MSI-X structures the kernel keeps.
pub const MMIO_RANGES: usize = 2 * 6;
const _: () = assert!(MMIO_RANGES >= HW_MMIO_RANGES);

/// A checked hardware-device description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HwResources {
    pub name: ArrayString<32>,
    /// Port ranges as [start, end).
    pub ports: ArrayVec<(u32, u32), HW_PORT_RANGES>,
    /// MMIO ranges as [start, end), page-aligned.
    pub mmio: ArrayVec<(u64, u64), MMIO_RANGES>,
    /// (GSI, flags).
    pub irqs: ArrayVec<(u32, u32), HW_IRQS>,
}

impl HwResources {
    /// Whether `[port, port+size)` lies inside one of the port ranges.
    pub fn has_ports(&self, port: u64, size: u64) -> bool {
        let Some(end) = port.checked_add(size) else {
            return false;
        };
        self.ports
            .iter()
            .any(|&(a, b)| port >= a as u64 && end <= b as u64)
    }

    /// Whether `[phys, phys+len)` lies inside one of the MMIO ranges.
    pub fn has_mmio(&self, phys: u64, len: u64) -> bool {
        let Some(end) = phys.checked_add(len) else {
            return false;
        };
        self.mmio.iter().any(|&(a, b)| phys >= a && end <= b)
    }
}

/// What the kernel keeps for itself and what RAM is.
#[derive(Clone, Debug, Default)]
pub struct Reserved {
    pub ports: Vec<(u32, u32)>,
    pub mmio: Vec<(u64, u64)>,
    pub ram: Vec<(u64, u64)>,
    /// Interrupt lines (GSIs) the I/O APICs have.
    pub gsi_count: u32,
    /// Where each ISA IRQ goes: its GSI and `HW_IRQ_*` flags (from the
    /// MADT's overrides; identity, edge, active high otherwise).
    pub isa: [(u32, u32); ISA_IRQS as usize],
}

impl Reserved {
    /// ISA routes without overrides: IRQ n is GSI n, edge, active high.
    pub const IDENTITY_ISA: [(u32, u32); ISA_IRQS as usize] = {
        let mut routes = [(0, 0); ISA_IRQS as usize];
        let mut i = 0;
        while i < routes.len() {
            routes[i] = (i as u32, 0);
            i += 1;
        }
        routes
    };
}

/// A device name from an ABI spec's bytes: `InvalidArgument` if empty,
/// too long, not UTF-8, or holding spaces or control characters.
pub fn device_name(bytes: &[u8; 32], len: u32) -> Result<ArrayString<32>, Error> {
    let n = len as usize;
    if n == 0 || n > bytes.len() {
        return Err(Error::InvalidArgument);
    }
    let name = core::str::from_utf8(&bytes[..n]).map_err(|_| Error::InvalidArgument)?;
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidArgument);
    }
    ArrayString::from(name).map_err(|_| Error::InvalidArgument)
}

fn overlaps<T: PartialOrd + Copy>(a: (T, T), b: (T, T)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Every claim, by device.
#[derive(Clone, Debug, Default)]
pub struct Claims<Id: Copy + PartialEq> {
    claims: Vec<(Id, HwResources)>,
}

impl<Id: Copy + PartialEq> Claims<Id> {
    pub const fn new() -> Self {
        Claims { claims: Vec::new() }
    }

    /// Checks `spec` against the rules and the existing claims.
    pub fn check(&self, spec: &HwDeviceSpec, reserved: &Reserved) -> Result<HwResources, Error> {
        let name = device_name(&spec.name, spec.name_len)?;
        if spec.port_count as usize > HW_PORT_RANGES
            || spec.mmio_count as usize > HW_MMIO_RANGES
            || spec.irq_count as usize > HW_IRQS
            || spec.port_count + spec.mmio_count + spec.irq_count == 0
        {
            return Err(Error::InvalidArgument);
        }
        let mut r = HwResources {
            name: ArrayString::new(),
            ports: ArrayVec::new(),
            mmio: ArrayVec::new(),
            irqs: ArrayVec::new(),
        };
        r.name = name;
        for p in &spec.ports[..spec.port_count as usize] {
            let range = (p.base as u32, p.base as u32 + p.len as u32);
            if p.len == 0 || range.1 > 0x1_0000 {
                return Err(Error::InvalidArgument);
            }
            if reserved.ports.iter().any(|&k| overlaps(k, range)) {
                return Err(Error::AccessDenied);
            }
            if r.ports.iter().any(|&o| overlaps(o, range)) {
                return Err(Error::InvalidArgument);
            }
            r.ports.push(range);
        }
        for m in &spec.mmio[..spec.mmio_count as usize] {
            let end = m.base.checked_add(m.len).ok_or(Error::InvalidArgument)?;
            if m.len == 0 || m.base % PAGE != 0 || m.len % PAGE != 0 || end > 1 << 52 {
                return Err(Error::InvalidArgument);
            }
            let range = (m.base, end);
            if reserved
                .ram
                .iter()
                .chain(&reserved.mmio)
                .any(|&k| overlaps(k, range))
            {
                return Err(Error::AccessDenied);
            }
            if r.mmio.iter().any(|&o| overlaps(o, range)) {
                return Err(Error::InvalidArgument);
            }
            r.mmio.push(range);
        }
        for i in &spec.irqs[..spec.irq_count as usize] {
            let (gsi, flags) = if i.flags & HW_IRQ_ISA != 0 {
                if i.flags != HW_IRQ_ISA || i.gsi >= ISA_IRQS {
                    return Err(Error::InvalidArgument);
                }
                reserved.isa[i.gsi as usize]
            } else {
                (i.gsi, i.flags)
            };
            if gsi >= reserved.gsi_count
                || flags & !(HW_IRQ_LEVEL | HW_IRQ_ACTIVE_LOW) != 0
                || r.irqs.iter().any(|&(g, _)| g == gsi)
            {
                return Err(Error::InvalidArgument);
            }
            r.irqs.push((gsi, flags));
        }
        self.check_free(&r)?;
        Ok(r)
    }

    /// Checks resources the kernel found itself (a PCI function's BARs)
    /// against what it keeps, RAM, and the existing claims: `AccessDenied`
    /// for the kernel's own or RAM, `Busy` for another device's.
    pub fn check_found(&self, r: &HwResources, reserved: &Reserved) -> Result<(), Error> {
        for &range in &r.ports {
            if reserved.ports.iter().any(|&k| overlaps(k, range)) {
                return Err(Error::AccessDenied);
            }
        }
        for &range in &r.mmio {
            if reserved
                .ram
                .iter()
                .chain(&reserved.mmio)
                .any(|&k| overlaps(k, range))
            {
                return Err(Error::AccessDenied);
            }
        }
        self.check_free(r)
    }

    /// `Busy` if another device claims any of `r`.
    fn check_free(&self, r: &HwResources) -> Result<(), Error> {
        for (_, c) in &self.claims {
            let clash = c
                .ports
                .iter()
                .any(|&a| r.ports.iter().any(|&b| overlaps(a, b)))
                || c.mmio
                    .iter()
                    .any(|&a| r.mmio.iter().any(|&b| overlaps(a, b)))
                || c.irqs
                    .iter()
                    .any(|&(a, _)| r.irqs.iter().any(|&(b, _)| a == b));
            if clash {
                return Err(Error::Busy);
            }
        }
        Ok(())
    }

    /// Records a checked claim.
    pub fn add(&mut self, id: Id, r: HwResources) -> Result<(), Error> {
        self.claims.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        self.claims.push((id, r));
        Ok(())
    }

    /// Forgets a device's claims.
    pub fn remove(&mut self, id: Id) {
        self.claims.retain(|(i, _)| *i != id);
    }

    pub fn get(&self, id: Id) -> Option<&HwResources> {
        self.claims.iter().find(|(i, _)| *i == id).map(|(_, r)| r)
    }

    /// Whether any device claims a port in `[a, b)` (the tests' observer).
    #[cfg(test)]
    pub fn any_port_in(&self, a: u32, b: u32) -> bool {
        self.claims
            .iter()
            .any(|(_, c)| c.ports.iter().any(|&p| overlaps(p, (a, b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::hw::{HwIrq, HwMmioRange, HwPortRange};

    fn spec(name: &str) -> HwDeviceSpec {
        let mut s = HwDeviceSpec {
            name_len: name.len() as u32,
            ..HwDeviceSpec::default()
        };
        s.name[..name.len()].copy_from_slice(name.as_bytes());
        s
    }

    fn with_ports(name: &str, base: u16, len: u16) -> HwDeviceSpec {
        let mut s = spec(name);
        s.port_count = 1;
        s.ports[0] = HwPortRange { base, len };
        s
    }

    fn reserved() -> Reserved {
        Reserved {
            ports: vec![(0x20, 0x22), (0xf4, 0xf8)],
            mmio: vec![(0xfee0_0000, 0xfee0_1000)],
            ram: vec![(0x10_0000, 0x1000_0000)],
            gsi_count: 24,
            isa: Reserved::IDENTITY_ISA,
        }
    }

    #[test]
    fn isa_irqs_are_routed_as_the_firmware_says() {
        let mut res = reserved();
        // As on QEMU: ISA IRQ 0 is GSI 2; IRQ 9 level, active low.
        res.isa[0] = (2, 0);
        res.isa[9] = (9, HW_IRQ_LEVEL | HW_IRQ_ACTIVE_LOW);
        let c: Claims<u32> = Claims::new();
        let mut s = spec("isa");
        s.irq_count = 3;
        s.irqs[0] = HwIrq {
            gsi: 0,
            flags: HW_IRQ_ISA,
        };
        s.irqs[1] = HwIrq {
            gsi: 9,
            flags: HW_IRQ_ISA,
        };
        s.irqs[2] = HwIrq {
            gsi: 4,
            flags: HW_IRQ_ISA,
        };
        let r = c.check(&s, &res).unwrap();
        assert_eq!(
            r.irqs.as_slice(),
            &[(2, 0), (9, HW_IRQ_LEVEL | HW_IRQ_ACTIVE_LOW), (4, 0)]
        );
        // Only ISA numbers, and the flag alone.
        for bad in [
            HwIrq {
                gsi: 16,
                flags: HW_IRQ_ISA,
            },
            HwIrq {
                gsi: 4,
                flags: HW_IRQ_ISA | HW_IRQ_LEVEL,
            },
            HwIrq { gsi: 4, flags: 8 },
        ] {
            s.irq_count = 1;
            s.irqs[0] = bad;
            assert_eq!(
                c.check(&s, &res).err(),
                Some(Error::InvalidArgument),
                "{bad:?}"
            );
        }
        // Two lines that route to one GSI are one line.
        s.irq_count = 2;
        s.irqs[0] = HwIrq {
            gsi: 0,
            flags: HW_IRQ_ISA,
        };
        s.irqs[1] = HwIrq { gsi: 2, flags: 0 };
        assert_eq!(c.check(&s, &res).err(), Some(Error::InvalidArgument));
    }

    #[test]
    fn a_good_device_is_accepted_and_claimed() {
        let mut c: Claims<u32> = Claims::new();
        let mut s = with_ports("rtc", 0x70, 2);
        s.irq_count = 1;
        s.irqs[0] = HwIrq { gsi: 8, flags: 0 };
        s.mmio_count = 1;
        s.mmio[0] = HwMmioRange {
            base: 0xb8000,
            len: 0x1000,
        };
        let r = c.check(&s, &reserved()).unwrap();
        assert!(
            r.has_ports(0x70, 2)
                && r.has_ports(0x71, 1)
                && !r.has_ports(0x71, 2)
                && !r.has_ports(u64::MAX, 2)
        );
        assert!(r.has_mmio(0xb8000, 0x1000) && !r.has_mmio(0xb8800, 0x1000));
        c.add(1, r).unwrap();
        assert!(c.any_port_in(0x70, 0x71));
        assert_eq!(
            c.check(&with_ports("b", 0x71, 4), &reserved()),
            Err(Error::Busy)
        );
        c.remove(1);
        assert!(c.check(&with_ports("b", 0x71, 4), &reserved()).is_ok());
    }

    #[test]
    fn malformed_descriptions_are_refused() {
        let c: Claims<u32> = Claims::new();
        let r = reserved();
        assert_eq!(
            c.check(&spec("x"), &r),
            Err(Error::InvalidArgument),
            "no resources"
        );
        assert_eq!(
            c.check(&with_ports("", 0x70, 1), &r),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            c.check(&with_ports("a b", 0x70, 1), &r),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            c.check(&with_ports("x", 0x70, 0), &r),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            c.check(&with_ports("x", 0xffff, 2), &r),
            Err(Error::InvalidArgument)
        );
        let mut s = with_ports("x", 0x70, 1);
        s.port_count = 9;
        assert_eq!(c.check(&s, &r), Err(Error::InvalidArgument));
        let mut s = with_ports("x", 0x70, 4);
        s.port_count = 2;
        s.ports[1] = HwPortRange { base: 0x72, len: 1 };
        assert_eq!(c.check(&s, &r), Err(Error::InvalidArgument), "self-overlap");
        let mut s = spec("m");
        s.mmio_count = 1;
        s.mmio[0] = HwMmioRange {
            base: 0xb8001,
            len: 0x1000,
        };
        assert_eq!(c.check(&s, &r), Err(Error::InvalidArgument), "unaligned");
        s.mmio[0] = HwMmioRange {
            base: !0xfff,
            len: 0x2000,
        };
        assert_eq!(c.check(&s, &r), Err(Error::InvalidArgument), "overflow");
        let mut s = spec("i");
        s.irq_count = 1;
        s.irqs[0] = HwIrq { gsi: 24, flags: 0 };
        assert_eq!(c.check(&s, &r), Err(Error::InvalidArgument), "no such line");
        s.irqs[0] = HwIrq { gsi: 3, flags: 8 };
        assert_eq!(c.check(&s, &r), Err(Error::InvalidArgument), "unknown flag");
    }

    #[test]
    fn kernel_resources_and_ram_are_refused() {
        let c: Claims<u32> = Claims::new();
        let r = reserved();
        assert_eq!(
            c.check(&with_ports("pic", 0x21, 1), &r),
            Err(Error::AccessDenied)
        );
        assert_eq!(
            c.check(&with_ports("exit", 0xf0, 8), &r),
            Err(Error::AccessDenied)
        );
        let mut s = spec("ram");
        s.mmio_count = 1;
        s.mmio[0] = HwMmioRange {
            base: 0x20_0000,
            len: 0x1000,
        };
        assert_eq!(c.check(&s, &r), Err(Error::AccessDenied));
        s.mmio[0] = HwMmioRange {
            base: 0xfee0_0000,
            len: 0x1000,
        };
        assert_eq!(c.check(&s, &r), Err(Error::AccessDenied));
    }

    #[test]
    fn irq_and_mmio_clashes_are_busy() {
        let mut c: Claims<u32> = Claims::new();
        let mut a = spec("a");
        a.irq_count = 1;
        a.irqs[0] = HwIrq { gsi: 5, flags: 1 };
        a.mmio_count = 1;
        a.mmio[0] = HwMmioRange {
            base: 0xa0000,
            len: 0x2000,
        };
        c.add(1, c.check(&a, &reserved()).unwrap()).unwrap();
        let mut b = spec("b");
        b.irq_count = 1;
        b.irqs[0] = HwIrq { gsi: 5, flags: 0 };
        assert_eq!(c.check(&b, &reserved()), Err(Error::Busy));
        let mut m = spec("m");
        m.mmio_count = 1;
        m.mmio[0] = HwMmioRange {
            base: 0xa1000,
            len: 0x1000,
        };
        assert_eq!(c.check(&m, &reserved()), Err(Error::Busy));
    }
}
