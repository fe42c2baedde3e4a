//! PCI, in user space: configuration space through the 0xCF8/0xCFC
//! mechanism of a hardware device that owns ports 0xCF8..0xD00, and every
//! function turned into a hardware device of its own (its BARs as port and
//! memory ranges, its interrupt line) through the platform device.
//!
//! Rules: a BAR is sized the standard way (write all ones, read back,
//! restore) with the function's decoding left as it was; a function whose
//! resources another device already claims is reported and skipped, never
//! half-created.

use crate::dev::{self, Handle};
use abi::Error;
use abi::hw::{HW_IRQ_LEVEL, HwDeviceSpec, HwIrq, HwMmioRange, HwPortRange};

/// The configuration-space ports.
pub const CONFIG_PORTS: (u16, u16) = (0xcf8, 8);

/// A BAR as decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    None,
    Io { base: u16, len: u16 },
    Mem { base: u64, len: u64 },
}

/// One PCI function.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub irq_line: u8,
    pub irq_pin: u8,
    pub bars: [Bar; 6],
}

/// Configuration space, through a handle to the device owning 0xCF8..0xD00.
#[derive(Clone, Copy, Debug)]
pub struct Config(pub Handle);

impl Config {
    fn address(bus: u8, dev: u8, func: u8, off: u8) -> u64 {
        0x8000_0000
            | (bus as u64) << 16
            | (dev as u64) << 11
            | (func as u64) << 8
            | (off & 0xfc) as u64
    }

    pub fn read32(self, bus: u8, dev: u8, func: u8, off: u8) -> Result<u32, Error> {
        self.0
            .port_out(0xcf8, 4, Self::address(bus, dev, func, off))?;
        self.0.port_in(0xcfc, 4).map(|v| v as u32)
    }

    pub fn write32(self, bus: u8, dev: u8, func: u8, off: u8, value: u32) -> Result<(), Error> {
        self.0
            .port_out(0xcf8, 4, Self::address(bus, dev, func, off))?;
        self.0.port_out(0xcfc, 4, value as u64)
    }

    fn size_bar(self, b: u8, d: u8, f: u8, off: u8) -> Result<(u32, u32), Error> {
        let original = self.read32(b, d, f, off)?;
        self.write32(b, d, f, off, 0xffff_ffff)?;
        let mask = self.read32(b, d, f, off)?;
        self.write32(b, d, f, off, original)?;
        Ok((original, mask))
    }

    fn bars(self, b: u8, d: u8, f: u8) -> Result<[Bar; 6], Error> {
        let mut bars = [Bar::None; 6];
        let mut i = 0;
        while i < 6 {
            let off = 0x10 + 4 * i as u8;
            let (orig, mask) = self.size_bar(b, d, f, off)?;
            if mask == 0 || mask == 0xffff_ffff && orig == 0xffff_ffff {
                i += 1;
                continue;
            }
            if orig & 1 == 1 {
                let len = (!(mask & 0xffff_fffc)).wrapping_add(1) & 0xffff;
                if orig & 0xffff_fffc != 0 && len != 0 {
                    bars[i] = Bar::Io {
                        base: (orig & 0xfffc) as u16,
                        len: len as u16,
                    };
                }
                i += 1;
            } else {
                let wide = (orig >> 1) & 3 == 2;
                let mut base = (orig & 0xffff_fff0) as u64;
                let mut size_mask = (mask & 0xffff_fff0) as u64 | 0xffff_ffff_0000_0000;
                if wide && i < 5 {
                    let (hi, hi_mask) = self.size_bar(b, d, f, off + 4)?;
                    base |= (hi as u64) << 32;
                    size_mask = (size_mask & 0xffff_ffff) | (hi_mask as u64) << 32;
                }
                let len = (!size_mask).wrapping_add(1);
                if base != 0 && len != 0 {
                    bars[i] = Bar::Mem { base, len };
                }
                i += if wide { 2 } else { 1 };
            }
        }
        Ok(bars)
    }

    /// Calls `each` for every function on bus 0 and behind its bridges.
    pub fn scan(self, each: &mut dyn FnMut(Function)) -> Result<(), Error> {
        self.scan_bus(0, each, 0)
    }

    fn scan_bus(self, bus: u8, each: &mut dyn FnMut(Function), depth: u32) -> Result<(), Error> {
        for d in 0..32u8 {
            for f in 0..8u8 {
                let id = self.read32(bus, d, f, 0)?;
                if id & 0xffff == 0xffff {
                    if f == 0 {
                        break;
                    }
                    continue;
                }
                let class = self.read32(bus, d, f, 8)?;
                let header = (self.read32(bus, d, f, 0x0c)? >> 16) as u8;
                let irq = self.read32(bus, d, f, 0x3c)?;
                let bridge = header & 0x7f == 1;
                let func = Function {
                    bus,
                    dev: d,
                    func: f,
                    vendor: id as u16,
                    device: (id >> 16) as u16,
                    class: (class >> 24) as u8,
                    subclass: (class >> 16) as u8,
                    irq_line: irq as u8,
                    irq_pin: (irq >> 8) as u8,
                    bars: if header & 0x7f == 0 {
                        self.bars(bus, d, f)?
                    } else {
                        [Bar::None; 6]
                    },
                };
                each(func);
                if bridge && depth < 8 {
                    let secondary = (self.read32(bus, d, f, 0x18)? >> 8) as u8;
                    if secondary > bus {
                        self.scan_bus(secondary, each, depth + 1)?;
                    }
                }
                if f == 0 && header & 0x80 == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The hardware-device description of a PCI function, named
/// `pci-BB.DD.F`. `with_irq` includes its interrupt line (level-triggered).
pub fn spec(f: &Function, with_irq: bool) -> HwDeviceSpec {
    let mut s = HwDeviceSpec::default();
    let mut name = arrayvec::ArrayString::<32>::new();
    let _ = core::fmt::write(
        &mut name,
        format_args!("pci-{:02x}.{:02x}.{}", f.bus, f.dev, f.func),
    );
    s.name[..name.len()].copy_from_slice(name.as_bytes());
    s.name_len = name.len() as u32;
    for bar in f.bars {
        match bar {
            Bar::Io { base, len } if (s.port_count as usize) < s.ports.len() => {
                s.ports[s.port_count as usize] = HwPortRange { base, len };
                s.port_count += 1;
            }
            Bar::Mem { base, len } if (s.mmio_count as usize) < s.mmio.len() => {
                let start = base & !0xfff;
                let end = (base + len + 0xfff) & !0xfff;
                s.mmio[s.mmio_count as usize] = HwMmioRange {
                    base: start,
                    len: end - start,
                };
                s.mmio_count += 1;
            }
            _ => {}
        }
    }
    if with_irq && f.irq_pin != 0 && f.irq_line < 24 {
        s.irqs[0] = HwIrq {
            gsi: f.irq_line as u32,
            flags: HW_IRQ_LEVEL,
        };
        s.irq_count = 1;
    }
    s
}

/// Makes a hardware device of every PCI function that has resources
/// (skipping the ones whose resources are taken); returns how many.
pub fn create_devices(platform: Handle, config: Config) -> Result<u32, Error> {
    let mut made = 0;
    config.scan(&mut |f| {
        let mut r = dev::create_hardware(platform, &spec(&f, true));
        if r == Err(Error::Busy) {
            // Functions sharing one interrupt line: the first takes it.
            r = dev::create_hardware(platform, &spec(&f, false));
        }
        match r {
            Ok(()) => made += 1,
            Err(Error::InvalidArgument) => {} // no resources at all
            Err(e) => crate::println!(
                "pci {:02x}.{:02x}.{}: not a device: {e}",
                f.bus,
                f.dev,
                f.func
            ),
        }
    })?;
    Ok(made)
}
