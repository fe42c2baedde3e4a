//! The bus: every device, and each process's attachments to them.
//!
//! Devices live in one table, by id; the registry maps names to ids. A
//! process reaches a device only through a handle on its own bus (see
//! `crate::bus`), with rights. Kernel devices (`kdev`, one file each) are
//! served by the kernel; user devices (`user`) by a process, through the
//! request queues of `crate::userdev`; hardware devices (`hw`) are parts
//! of the machine handed to a driver. The system calls on handles are in
//! `calls`.
//!
//! Rules: a device that goes away (its server exited or destroyed it) is
//! removed from the table at once, so every later operation through a
//! client's handle finds no device and fails with `DeviceGone`, and the
//! client may attach again once a new server registers the name; a handle
//! is only inherited by `fork` if it has the CLONE right (served devices
//! never are); `exec` drops close-on-exec handles.

pub mod calls;
pub mod dma;
#[cfg(test)]
mod dma_tests;
pub mod hw;
pub mod irqcpu;
pub mod kdev;
pub mod lifecycle;
pub mod msi;
pub mod pci;
#[cfg(test)]
mod pci_tests;
#[cfg(test)]
mod tsc_tests;
pub mod user;

use crate::gentable::{GenTable, IdShape, Shape};
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::outline::OutOfLine;
use crate::process::Pid;
use crate::userdev::{ClientId, Export, Refund, UserDevice};
use abi::Error;
use arrayvec::ArrayString;

/// A device, as the kernel names it: an id of the device table.
pub type DeviceId = u64;

/// The shape of device ids: 16 bits of slot, 40 of generation (a slot
/// that has used them all retires), so the id of a device that went away
/// never names another.
const DEVICE_SHAPE: IdShape = IdShape {
    slot_bits: 16,
    gen_bits: 40,
    wraps: false,
    grow_first: false,
};

/// The shape, as a type.
pub struct DeviceShape;
impl Shape for DeviceShape {
    const SHAPE: IdShape = DEVICE_SHAPE;
}

pub enum Device {
    Kernel(kdev::Kind),
    User(UserDevice),
    Hardware(alloc::boxed::Box<hw::HwDevice>),
}

/// What a bus slot holds. The lists most attachments never use are kept
/// out of line (`OutOfLine`: no memory until the first item, charged to
/// the process), so a slot is a few words and moves cheaply.
#[derive(Debug)]
pub enum Attachment {
    /// A kernel device, with this attachment's state (which says which
    /// device it is) and its exports.
    Kernel {
        dev: DeviceId,
        state: kdev::KernelState,
        exports: OutOfLine<Export, 8>,
    },
    /// A client of a user device.
    Client { dev: DeviceId, client: ClientId },
    /// The server side of a user device.
    Serve { dev: DeviceId },
    /// A hardware device, with the ranges this attachment wired for DMA
    /// and the device memory it mapped (va, len): at most
    /// `dma::EXPORTS_PER_ATTACHMENT` and 4 per attachment (a driver
    /// needing more attaches the device again).
    Hardware {
        dev: DeviceId,
        exports: OutOfLine<dma::HwExport, { dma::EXPORTS_PER_ATTACHMENT }>,
        iomaps: OutOfLine<(u64, u64), 4>,
    },
}

impl Attachment {
    /// An attachment to kernel device `dev` with `state` (and no
    /// exports).
    pub fn kernel(dev: DeviceId, state: kdev::KernelState) -> Attachment {
        Attachment::Kernel {
            dev,
            state,
            exports: OutOfLine::new(),
        }
    }

    /// A fresh attachment to hardware device `dev` (nothing wired or
    /// mapped).
    pub fn hardware(dev: DeviceId) -> Attachment {
        Attachment::Hardware {
            dev,
            exports: OutOfLine::new(),
            iomaps: OutOfLine::new(),
        }
    }

    /// The device it names.
    pub fn device(&self) -> DeviceId {
        match *self {
            Attachment::Kernel { dev, .. }
            | Attachment::Client { dev, .. }
            | Attachment::Serve { dev }
            | Attachment::Hardware { dev, .. } => dev,
        }
    }

    /// The heap bytes its out-of-line lists hold (charged to its process).
    pub fn list_bytes(&self) -> u64 {
        let bytes = match self {
            Attachment::Kernel { exports, .. } => exports.held_bytes(),
            Attachment::Hardware {
                exports, iomaps, ..
            } => exports.held_bytes() + iomaps.held_bytes(),
            _ => 0,
        };
        bytes as u64
    }
}

// A bus slot must stay small: the lists are out of line.
const _: () = assert!(core::mem::size_of::<Attachment>() <= 64);

struct DeviceEntry {
    name: ArrayString<32>,
    device: Device,
    /// What its creator's reserve was charged for it.
    charge: Option<Refund>,
}

/// What the kernel charges a device's creator for its record, its name in
/// the registry and its share of the device table.
pub const DEVICE_BYTES: u64 = 2 * core::mem::size_of::<DeviceEntry>() as u64 + 96;

/// A device name as the registry's map keys it: its bytes, zero-padded,
/// as words, and its length. Hashing and comparing it are a few word
/// operations (a `str` key would call `memcmp`, which costs more than
/// the rest of a lookup).
#[derive(Clone, Copy)]
struct NameKey {
    words: [u64; 4],
    len: u8,
}

impl PartialEq for NameKey {
    fn eq(&self, other: &NameKey) -> bool {
        // Without branches or a `memcmp` call: names differ in a few words
        // at most.
        let diff = self
            .words
            .iter()
            .zip(&other.words)
            .fold(0, |d, (a, b)| d | (a ^ b));
        diff == 0 && self.len == other.len
    }
}

impl Eq for NameKey {}

impl core::hash::Hash for NameKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        // Every word goes through the (seeded) hasher, so names chosen to
        // collide cannot be made without knowing the seed. The length is
        // not needed: `eq` settles names that differ only in trailing
        // zero bytes.
        for &w in &self.words {
            state.write_u64(w);
        }
    }
}

impl NameKey {
    /// The key of `name`; `None` when it is longer than a device name.
    fn of(name: &str) -> Option<NameKey> {
        let bytes = name.as_bytes();
        let mut padded = [0u8; 32];
        padded.get_mut(..bytes.len())?.copy_from_slice(bytes);
        let mut words = [0u64; 4];
        for (w, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        Some(NameKey {
            words,
            len: bytes.len() as u8,
        })
    }
}

/// Every device, and the registry's names.
pub struct Devices {
    table: GenTable<DeviceEntry, DeviceShape>,
    names: Option<hashbrown::HashMap<NameKey, DeviceId>>,
    /// What every klog handle shares (its listeners, its mark).
    pub klog: kdev::klog::Shared,
    /// Which hardware device owns which ports, memory and lines.
    pub claims: crate::hwclaims::Claims<DeviceId>,
    /// Who takes each routed interrupt line (by GSI).
    pub irq_owners: [Option<hw::IrqOwner>; IRQ_LINES],
    /// Which function's line each of the kernel's MSI vectors is.
    pub msi_slots: [Option<(DeviceId, u8)>; msi::MSI_VECTORS],
    /// What the kernel keeps for itself, and RAM (no hardware device may
    /// claim it): set once at boot.
    pub reserved: Option<crate::hwclaims::Reserved>,
}

/// The most interrupt lines (GSIs) the kernel routes to hardware devices.
pub const IRQ_LINES: usize = 64;

impl Default for Devices {
    fn default() -> Self {
        Self::new()
    }
}

impl Devices {
    pub const fn new() -> Devices {
        Devices {
            table: GenTable::new(),
            names: None,
            klog: kdev::klog::Shared::new(),
            claims: crate::hwclaims::Claims::new(),
            irq_owners: [None; IRQ_LINES],
            msi_slots: [None; msi::MSI_VECTORS],
            reserved: None,
        }
    }

    #[inline]
    pub fn get(&self, id: DeviceId) -> Result<&Device, Error> {
        self.table
            .get(id)
            .map(|e| &e.device)
            .ok_or(Error::DeviceGone)
    }

    #[inline]
    pub fn get_mut(&mut self, id: DeviceId) -> Result<&mut Device, Error> {
        self.table
            .get_mut(id)
            .map(|e| &mut e.device)
            .ok_or(Error::DeviceGone)
    }

    #[inline]
    pub fn user(&mut self, id: DeviceId) -> Result<&mut UserDevice, Error> {
        match self.get_mut(id)? {
            Device::User(u) => Ok(u),
            _ => Err(Error::NotSupported),
        }
    }

    /// The name device `id` was registered under.
    pub fn name_of(&self, id: DeviceId) -> Option<&str> {
        self.table.get(id).map(|e| e.name.as_str())
    }

    /// Every hardware device.
    pub fn hardware(&self) -> impl Iterator<Item = &hw::HwDevice> {
        self.table.iter().filter_map(|(_, e)| match &e.device {
            Device::Hardware(h) => Some(&**h),
            _ => None,
        })
    }

    /// Every hardware device, with its id.
    pub fn hardware_ids(&self) -> impl Iterator<Item = (DeviceId, &hw::HwDevice)> {
        self.table.iter().filter_map(|(id, e)| match &e.device {
            Device::Hardware(h) => Some((id, &**h)),
            _ => None,
        })
    }

    /// The id registered under `name`.
    pub fn lookup(&self, name: &str) -> Option<DeviceId> {
        self.names.as_ref()?.get(&NameKey::of(name)?).copied()
    }

    /// Adds a device under `name` (unique); `charge` is what its creator
    /// paid, handed back by `remove`.
    #[allow(clippy::result_large_err)] // the error hands the device back
    pub fn add(
        &mut self,
        name: &str,
        device: Device,
        charge: Option<Refund>,
    ) -> Result<DeviceId, (Error, Device)> {
        let (Ok(name), Some(key)) = (ArrayString::from(name), NameKey::of(name)) else {
            return Err((Error::InvalidArgument, device));
        };
        let names = self.names.get_or_insert_with(hashbrown::HashMap::new);
        if names.contains_key(&key) {
            return Err((Error::AlreadyExists, device));
        }
        // Room first, so that the insert below cannot allocate (and so
        // cannot fail, or panic).
        if names.try_reserve(1).is_err() {
            return Err((Error::OutOfMemory, device));
        }
        let entry = DeviceEntry {
            name,
            device,
            charge,
        };
        let id = self
            .table
            .insert(entry)
            .map_err(|(e, entry)| (e, entry.device))?;
        names.insert(key, id);
        Ok(id)
    }

    /// Removes a device and its name; returns it with its creator's charge.
    pub fn remove(&mut self, id: DeviceId) -> Option<(Device, Option<Refund>)> {
        let e = self.table.remove(id)?;
        if let (Some(names), Some(key)) = (&mut self.names, NameKey::of(&e.name)) {
            names.remove(&key);
        }
        Some((e.device, e.charge))
    }

    /// The first device at or after position `at` of the table (positions
    /// are slots: a walk selects 0, then one past each position it read),
    /// with its position, name and id.
    pub fn at_or_after(&self, at: u64) -> Option<(u64, &str, DeviceId)> {
        let at = usize::try_from(at).ok()?;
        let id = self.table.next_from(at)?;
        let e = self.table.get(id)?;
        Some((DEVICE_SHAPE.slot(id) as u64, e.name.as_str(), id))
    }

    pub fn count(&self) -> usize {
        self.table.len()
    }

    /// What device `id`'s creator was charged (for the model tests).
    #[cfg(test)]
    pub fn charge_of(&self, id: DeviceId) -> Option<Refund> {
        self.table.get(id).and_then(|e| e.charge)
    }
}

/// The most rights an attachment to each kind of device can hold.
pub fn max_rights(dev: &Device) -> u32 {
    use abi::bus::*;
    match dev {
        Device::Kernel(kind) => kind.max_rights(),
        Device::Hardware(_) => {
            RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_IRQ | RIGHT_MAP | RIGHT_CLONE
        }
        Device::User(_) => RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_IRQ | RIGHT_CLONE,
    }
}

/// Registers the kernel devices at boot.
pub fn init(devices: &mut Devices) -> Result<(), Error> {
    kdev::init(devices)?;
    debug_assert_eq!(
        devices.lookup("registry"),
        Some(kdev::registry::REGISTRY_ID)
    );
    Ok(())
}

/// Gives process `pid` a registry handle (init gets one with every right
/// at boot: it is handle 0, `abi::bus::REGISTRY_HANDLE_SLOT`).
pub fn give_registry<M: Machine>(s: &mut Kernel<M>, pid: Pid, rights: u32) -> Result<u64, Error> {
    let id = s.devices.lookup("registry").ok_or(Error::NotFound)?;
    let kind = kdev::Kind::Registry;
    let att = Attachment::kernel(id, kind.fresh());
    calls::bus_insert(s, pid, att, rights & kind.max_rights(), false)
}

/// Word `k` of a name read four bytes at a time through ports: bytes
/// `4k..4k+4`, little-endian, zero past the end.
pub fn name_word(name: &str, k: u32) -> u64 {
    let mut word = [0u8; 4];
    let bytes = name.as_bytes().iter().skip(4 * k as usize).take(4);
    for (w, b) in word.iter_mut().zip(bytes) {
        *w = *b;
    }
    u64::from(u32::from_le_bytes(word))
}
