//! The virtio 1.x PCI transport ("modern" virtio-pci), over MH's claimed
//! PCI function: the vendor capabilities are read through the kernel's
//! mediated configuration window, the BAR regions they point at are mapped
//! with `iomap` at the address and size the kernel gave the BAR, and the
//! common configuration structure drives reset, feature negotiation and
//! the queues (up to `QUEUES_MAX`).
//!
//! Rules: no BAR is ever written or sized here (the kernel refuses both;
//! its sizing is the truth); every capability's (BAR, offset, length) is
//! checked against that BAR before anything is mapped, so a malformed
//! device cannot make the driver touch memory it did not map; registers
//! are accessed volatile at their natural width (64-bit fields as two
//! 32-bit halves, which the specification allows); every wait for the
//! device is bounded.

use crate::deadline::Deadline;
use abi::Error;
use libmh::pci::{Bar, Function};
use libmh::println;

/// Where the capabilities' BAR regions are mapped: BAR `i`'s at `VA +
/// i * BAR_WINDOW` (a driver drives one device).
const VA: u64 = 0x5a00_0000_0000;
const BAR_WINDOW: u64 = 1 << 32;
const PAGE: u64 = 4096;

/// Vendor-specific capability: what virtio's structures are (types 1
/// common, 2 notify, 3 ISR, 4 device-specific).
const CAP_VENDOR: u8 = 0x09;
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_DEVICE: u8 = 4;

// The common configuration structure (virtio 1.2, 4.1.4.3).
const DEVICE_FEATURE_SELECT: u64 = 0x00;
const DEVICE_FEATURE: u64 = 0x04;
const DRIVER_FEATURE_SELECT: u64 = 0x08;
const DRIVER_FEATURE: u64 = 0x0c;
const CONFIG_MSIX_VECTOR: u64 = 0x10;
const DEVICE_STATUS: u64 = 0x14;
const CONFIG_GENERATION: u64 = 0x15;
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_SIZE: u64 = 0x18;
const QUEUE_MSIX_VECTOR: u64 = 0x1a;
const QUEUE_ENABLE: u64 = 0x1c;
const QUEUE_NOTIFY_OFF: u64 = 0x1e;
const QUEUE_DESC: u64 = 0x20;
const QUEUE_DRIVER: u64 = 0x28;
const QUEUE_DEVICE: u64 = 0x30;
const COMMON_LEN: u64 = 0x38;

/// Device status bits.
pub const STATUS_ACKNOWLEDGE: u8 = 1;
pub const STATUS_DRIVER: u8 = 2;
pub const STATUS_DRIVER_OK: u8 = 4;
pub const STATUS_FEATURES_OK: u8 = 8;
pub const STATUS_FAILED: u8 = 128;

/// "No MSI-X vector" in the vector registers.
pub const NO_VECTOR: u16 = 0xffff;

/// A mapped register region, every access bounds-checked.
#[derive(Clone, Copy, Debug)]
struct Region {
    va: u64,
    len: u64,
}

impl Region {
    /// The address of `size` bytes at `off`, if they lie inside.
    fn at(&self, off: u64, size: u64) -> Option<u64> {
        (off.checked_add(size)? <= self.len && off.is_multiple_of(size)).then_some(self.va + off)
    }

    fn read<T: Copy + Default>(&self, off: u64) -> T {
        match self.at(off, size_of::<T>() as u64) {
            // SAFETY: `at` checked that the access lies inside the region,
            // which `map` mapped (uncached device memory) for the life of
            // the driver, and is aligned to its size.
            Some(a) => unsafe { core::ptr::read_volatile(a as *const T) },
            None => T::default(),
        }
    }

    fn write<T: Copy>(&self, off: u64, v: T) {
        if let Some(a) = self.at(off, size_of::<T>() as u64) {
            // SAFETY: as in `read`.
            unsafe { core::ptr::write_volatile(a as *mut T, v) }
        }
    }
}

/// One virtio structure as a capability describes it.
#[derive(Clone, Copy, Debug, Default)]
struct Cap {
    bar: u8,
    offset: u64,
    len: u64,
}

/// The most queues a driver sets up (virtio-net: receive and transmit).
pub const QUEUES_MAX: usize = 4;

/// A virtio-pci device's registers.
pub struct Transport {
    /// The driver's name, for its log lines.
    name: &'static str,
    common: Region,
    device: Region,
    notify: Region,
    notify_multiplier: u64,
    /// Where each queue's notifications go, inside `notify`.
    queue_notify: [u64; QUEUES_MAX],
}

/// Reads the virtio capabilities of `f`: (common, notify, isr, device,
/// notify multiplier). The first of each kind counts (as the
/// specification asks).
fn capabilities(f: Function) -> Result<([Option<Cap>; 4], u64), Error> {
    let mut caps = [None; 4];
    let mut multiplier = 0;
    // Status bit 4: the function has a capability list.
    if f.config_read(0x06, 2)? & 0x10 == 0 {
        return Err(Error::NotSupported);
    }
    let mut ptr = f.config_read(0x34, 1)? as u16 & 0xfc;
    // 48 capabilities fill the 192 bytes after the header: a longer chain
    // is a loop.
    for _ in 0..48 {
        if ptr < 0x40 {
            break;
        }
        let id = f.config_read(ptr, 1)? as u8;
        let next = f.config_read(ptr + 1, 1)? as u16 & 0xfc;
        if id == CAP_VENDOR {
            let kind = f.config_read(ptr + 3, 1)? as u8;
            let cap = Cap {
                bar: f.config_read(ptr + 4, 1)? as u8,
                offset: u64::from(f.config_read(ptr + 8, 4)?),
                len: u64::from(f.config_read(ptr + 12, 4)?),
            };
            if (CFG_COMMON..=CFG_DEVICE).contains(&kind) && caps[kind as usize - 1].is_none() {
                caps[kind as usize - 1] = Some(cap);
                if kind == CFG_NOTIFY {
                    multiplier = u64::from(f.config_read(ptr + 16, 4)?);
                }
            }
        }
        ptr = next;
    }
    Ok((caps, multiplier))
}

/// Maps, for each BAR the capabilities use, the pages that cover them;
/// returns each capability's region.
fn map(name: &str, f: Function, caps: &[Cap; 4]) -> Result<[Region; 4], Error> {
    let mut regions = [Region { va: 0, len: 0 }; 4];
    for bar in 0..6u8 {
        let used: Option<(u64, u64)> =
            caps.iter().filter(|c| c.bar == bar).fold(None, |span, c| {
                let (lo, hi) = span.unwrap_or((u64::MAX, 0));
                Some((lo.min(c.offset), hi.max(c.offset + c.len)))
            });
        let Some((lo, hi)) = used else { continue };
        let Bar::Mem { base, len, .. } = f.bar(u32::from(bar))? else {
            println!("{name}: BAR {bar} holds virtio registers but is not memory");
            return Err(Error::NotSupported);
        };
        if hi > len {
            println!("{name}: a capability reaches past BAR {bar} ({hi:#x} > {len:#x})");
            return Err(Error::NotSupported);
        }
        let start = lo & !(PAGE - 1);
        let end = hi.div_ceil(PAGE) * PAGE;
        let va = VA + u64::from(bar) * BAR_WINDOW;
        f.0.iomap(va, base + start, end - start)?;
        for (region, cap) in regions.iter_mut().zip(caps) {
            if cap.bar == bar {
                *region = Region {
                    va: va + cap.offset - start,
                    len: cap.len,
                };
            }
        }
    }
    Ok(regions)
}

impl Transport {
    /// Finds and maps the device's virtio structures; `name` is the
    /// driver's, for log lines.
    pub fn open(name: &'static str, f: Function) -> Result<Transport, Error> {
        let (caps, notify_multiplier) = capabilities(f)?;
        let [Some(common), Some(notify), Some(isr), Some(device)] = caps else {
            println!("{name}: the function lacks a virtio structure ({caps:?})");
            return Err(Error::NotSupported);
        };
        // Offsets and lengths are 32-bit values: their sums cannot overflow.
        if common.bar >= 6 || notify.bar >= 6 || isr.bar >= 6 || device.bar >= 6 {
            return Err(Error::NotSupported);
        }
        if common.len < COMMON_LEN || notify.len < 2 {
            println!("{name}: virtio structures too short ({caps:?})");
            return Err(Error::NotSupported);
        }
        let [common, notify, _isr, device] = map(name, f, &[common, notify, isr, device])?;
        Ok(Transport {
            name,
            common,
            device,
            notify,
            notify_multiplier,
            queue_notify: [0; QUEUES_MAX],
        })
    }

    pub fn status(&self) -> u8 {
        self.common.read(DEVICE_STATUS)
    }

    fn set_status(&self, s: u8) {
        self.common.write(DEVICE_STATUS, s);
    }

    /// Resets the device and waits (at most a second) until it says it is
    /// reset: from then on it does no DMA until the driver sets it up again.
    pub fn reset(&self) -> Result<(), Error> {
        self.set_status(0);
        let deadline = Deadline::after_ms(1000);
        while self.status() != 0 {
            if deadline.passed() {
                println!("{}: the device does not finish its reset", self.name);
                return Err(Error::IoError);
            }
            libmh::process::yield_now();
        }
        Ok(())
    }

    fn device_features(&self) -> u64 {
        self.common.write(DEVICE_FEATURE_SELECT, 0u32);
        let lo: u32 = self.common.read(DEVICE_FEATURE);
        self.common.write(DEVICE_FEATURE_SELECT, 1u32);
        let hi: u32 = self.common.read(DEVICE_FEATURE);
        u64::from(hi) << 32 | u64::from(lo)
    }

    /// Resets the device and negotiates: `required` must be offered (else
    /// `NotSupported`), `wanted` is taken where offered. Returns what was
    /// agreed once the device has accepted it (FEATURES_OK reads back).
    pub fn negotiate(&self, required: u64, wanted: u64) -> Result<u64, Error> {
        self.reset()?;
        self.set_status(STATUS_ACKNOWLEDGE);
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        let offered = self.device_features();
        if offered & required != required {
            println!(
                "{}: the device lacks features {:#x} (offers {offered:#x})",
                self.name,
                required & !offered
            );
            self.set_status(STATUS_FAILED);
            return Err(Error::NotSupported);
        }
        let agreed = offered & (required | wanted);
        self.common.write(DRIVER_FEATURE_SELECT, 0u32);
        self.common.write(DRIVER_FEATURE, agreed as u32);
        self.common.write(DRIVER_FEATURE_SELECT, 1u32);
        self.common.write(DRIVER_FEATURE, (agreed >> 32) as u32);
        let s = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
        self.set_status(s);
        if self.status() & STATUS_FEATURES_OK == 0 {
            println!("{}: the device refused features {agreed:#x}", self.name);
            self.set_status(STATUS_FAILED);
            return Err(Error::NotSupported);
        }
        Ok(agreed)
    }

    /// Queue `q`'s largest size (0: no such queue).
    pub fn queue_max(&self, q: u16) -> u16 {
        self.common.write(QUEUE_SELECT, q);
        self.common.read(QUEUE_SIZE)
    }

    /// Sets queue `q` (below `QUEUES_MAX`) up with `size` entries at these
    /// device addresses and MSI-X vector `vector` (`NO_VECTOR` for none);
    /// returns whether the device took the vector. Enables the queue.
    pub fn queue_setup(
        &mut self,
        q: u16,
        size: u16,
        (desc, driver, device): (u64, u64, u64),
        vector: u16,
    ) -> Result<bool, Error> {
        if usize::from(q) >= QUEUES_MAX {
            return Err(Error::InvalidArgument);
        }
        let c = &self.common;
        c.write(QUEUE_SELECT, q);
        c.write(QUEUE_SIZE, size);
        for (off, addr) in [
            (QUEUE_DESC, desc),
            (QUEUE_DRIVER, driver),
            (QUEUE_DEVICE, device),
        ] {
            c.write(off, addr as u32);
            c.write(off + 4, (addr >> 32) as u32);
        }
        // The device's configuration-change interrupt is not used.
        c.write(CONFIG_MSIX_VECTOR, NO_VECTOR);
        c.write(QUEUE_MSIX_VECTOR, vector);
        let vector_taken = vector != NO_VECTOR && c.read::<u16>(QUEUE_MSIX_VECTOR) == vector;
        let off = u64::from(c.read::<u16>(QUEUE_NOTIFY_OFF)) * self.notify_multiplier;
        if self.notify.at(off, 2).is_none() {
            println!(
                "{}: queue {q}'s notification address is outside its structure",
                self.name
            );
            return Err(Error::NotSupported);
        }
        self.queue_notify[usize::from(q)] = off;
        c.write(QUEUE_ENABLE, 1u16);
        Ok(vector_taken)
    }

    /// The driver is ready: the device may start using the queue.
    pub fn driver_ok(&self) {
        let s = self.status();
        self.set_status(s | STATUS_DRIVER_OK);
    }

    /// Tells the device queue `q` (one `queue_setup` set up) has new
    /// buffers.
    pub fn notify(&self, q: u16) {
        if let Some(&off) = self.queue_notify.get(usize::from(q)) {
            self.notify.write(off, q);
        }
    }

    /// The length of the device-specific configuration structure.
    pub fn device_len(&self) -> u64 {
        self.device.len
    }

    /// A field of the device-specific configuration (zero where the
    /// structure is shorter: a device that says less is believed to say
    /// nothing there).
    pub fn device_read<T: Copy + Default>(&self, off: u64) -> T {
        self.device.read(off)
    }

    /// Reads the device configuration consistently: `read` runs until the
    /// configuration generation is the same before and after it (at most
    /// 16 tries: a device that changes it forever is broken).
    pub fn config<T>(&self, read: impl Fn(&Transport) -> T) -> Result<T, Error> {
        for _ in 0..16 {
            let before: u8 = self.common.read(CONFIG_GENERATION);
            let value = read(self);
            if self.common.read::<u8>(CONFIG_GENERATION) == before {
                return Ok(value);
            }
        }
        Err(Error::IoError)
    }
}
