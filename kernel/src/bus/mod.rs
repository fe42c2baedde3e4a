//! The bus: every device, and each process's attachments to them.
//!
//! Devices live in one table, by id; the registry maps names to ids. A
//! process reaches a device only through a handle on its own bus (see
//! `kernel_core::bus`), with rights. Kernel devices (`kdev`) are served by
//! the kernel; user devices (`user`) by a process, through the request
//! queues of `kernel_core::userdev`.
//!
//! Rules: a device that goes away (its server exited or destroyed it) is
//! removed from the table at once, so every later operation through a
//! client's handle finds no device and fails with `DeviceGone`, and the
//! client may attach again once a new server registers the name; a handle
//! is only inherited by `fork` if it has the CLONE right (served devices
//! never are); `exec` drops close-on-exec handles.

pub mod calls;
pub mod hw;
pub mod kdev;
pub mod procdev;
pub mod user;

use crate::process::Pid;
use abi::Error;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use arrayvec::{ArrayString, ArrayVec};
use kernel_core::userdev::{Export, UserDevice};

pub type DeviceId = u32;

/// The kernel devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelDevice {
    Registry,
    Bootfs,
    Klog,
    Platform,
    Mempool,
    Proc,
}

pub enum Device {
    Kernel(KernelDevice),
    User(UserDevice),
    Hardware(hw::HwDevice),
}

/// What a bus slot holds.
#[derive(Clone, Debug)]
pub enum Attachment {
    /// A kernel device, with this attachment's state (a selected index,
    /// an offset: device-specific) and its exports.
    Kernel {
        dev: DeviceId,
        kind: KernelDevice,
        state: [u64; 4],
        exports: ArrayVec<Export, 8>,
    },
    /// A client of a user device.
    Client { dev: DeviceId, client: u32 },
    /// The server side of a user device.
    Serve { dev: DeviceId },
    /// A hardware device, with the pages this attachment wired for DMA
    /// (page address, iova) and the device memory it mapped (va, len):
    /// at most 8 and 4 per attachment (a driver needing more attaches the
    /// device again), which keeps every bus slot small.
    Hardware {
        dev: DeviceId,
        exports: ArrayVec<(u64, u64), 8>,
        iomaps: ArrayVec<(u64, u64), 4>,
    },
}

/// Every device, and the registry's names.
///
/// Devices sit in a slab; an id is `slot | generation << 16`, so the id of
/// a device that went away never reaches the device that took its slot
/// (its clients get `DeviceGone`, not someone else's device). Generations
/// come from one counter, not per slot, so empty slots at the end can be
/// given back without a later device reusing an old id.
pub struct Devices {
    slots: Vec<DeviceSlot>,
    names: BTreeMap<ArrayString<32>, DeviceId>,
    count: usize,
    next_generation: u32,
    /// Who wants klog's data IRQ: (process, handle, vector).
    pub klog_listeners: Vec<(Pid, u64, u32)>,
    /// Which hardware device owns which ports, memory and lines.
    pub claims: kernel_core::hwclaims::Claims<DeviceId>,
    /// Who takes each routed interrupt line (by GSI).
    pub irq_owners: [Option<hw::IrqOwner>; crate::arch::ioapic::MAX_GSI as usize],
}

struct DeviceSlot {
    generation: u32,
    device: Option<Device>,
}

const SLOT_BITS: u32 = 16;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;

impl Devices {
    pub const fn new() -> Devices {
        Devices {
            slots: Vec::new(),
            names: BTreeMap::new(),
            count: 0,
            next_generation: 0,
            klog_listeners: Vec::new(),
            claims: kernel_core::hwclaims::Claims::new(),
            irq_owners: [None; crate::arch::ioapic::MAX_GSI as usize],
        }
    }

    #[inline]
    pub fn get(&self, id: DeviceId) -> Result<&Device, Error> {
        match self.slots.get((id & SLOT_MASK) as usize) {
            Some(s) if s.generation == id >> SLOT_BITS => {
                s.device.as_ref().ok_or(Error::DeviceGone)
            }
            _ => Err(Error::DeviceGone),
        }
    }

    #[inline]
    pub fn get_mut(&mut self, id: DeviceId) -> Result<&mut Device, Error> {
        match self.slots.get_mut((id & SLOT_MASK) as usize) {
            Some(s) if s.generation == id >> SLOT_BITS => {
                s.device.as_mut().ok_or(Error::DeviceGone)
            }
            _ => Err(Error::DeviceGone),
        }
    }

    #[inline]
    pub fn user(&mut self, id: DeviceId) -> Result<&mut UserDevice, Error> {
        match self.get_mut(id)? {
            Device::User(u) => Ok(u),
            _ => Err(Error::NotSupported),
        }
    }

    /// Every hardware device.
    pub fn hardware(&self) -> impl Iterator<Item = &hw::HwDevice> {
        self.slots.iter().filter_map(|s| match &s.device {
            Some(Device::Hardware(h)) => Some(h),
            _ => None,
        })
    }

    /// The id registered under `name`.
    pub fn lookup(&self, name: &str) -> Option<DeviceId> {
        self.names.get(name).copied()
    }

    /// Adds a device under `name` (unique).
    pub fn add(&mut self, name: &str, device: Device) -> Result<DeviceId, Error> {
        let key = ArrayString::from(name).map_err(|_| Error::InvalidArgument)?;
        if self.names.contains_key(&key) {
            return Err(Error::AlreadyExists);
        }
        let slot = match self.slots.iter().position(|s| s.device.is_none()) {
            Some(slot) => slot,
            None if self.slots.len() <= SLOT_MASK as usize => {
                self.slots.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
                self.slots.push(DeviceSlot {
                    generation: 0,
                    device: None,
                });
                self.slots.len() - 1
            }
            None => return Err(Error::LimitReached),
        };
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & 0xffff;
        let s = &mut self.slots[slot];
        s.device = Some(device);
        s.generation = generation;
        let id = slot as u32 | generation << SLOT_BITS;
        self.names.insert(key, id);
        self.count += 1;
        Ok(id)
    }

    /// Removes a device and its name.
    pub fn remove(&mut self, id: DeviceId) -> Option<Device> {
        self.get(id).ok()?;
        let dev = self.slots[(id & SLOT_MASK) as usize].device.take()?;
        while self.slots.last().is_some_and(|s| s.device.is_none()) {
            self.slots.pop();
        }
        if self.slots.capacity() > 2 * self.slots.len().max(4) {
            self.slots.shrink_to_fit();
        }
        self.names.retain(|_, v| *v != id);
        self.count -= 1;
        Some(dev)
    }

    /// The registered names in order, with their ids.
    pub fn listing(&self) -> impl Iterator<Item = (&str, DeviceId)> {
        self.names.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

/// The most rights an attachment to each kind of device can hold.
pub fn max_rights(dev: &Device) -> u32 {
    use abi::bus::*;
    match dev {
        Device::Kernel(KernelDevice::Registry) => {
            RIGHT_LOOKUP | RIGHT_REGISTER | RIGHT_SYSTEM | RIGHT_READ | RIGHT_WRITE | RIGHT_CLONE
        }
        Device::Kernel(KernelDevice::Bootfs) => RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_CLONE,
        Device::Kernel(KernelDevice::Klog) => {
            RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_IRQ | RIGHT_CLONE
        }
        Device::Kernel(KernelDevice::Platform) => {
            RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_CLONE
        }
        Device::Kernel(KernelDevice::Mempool) => RIGHT_READ | RIGHT_WRITE | RIGHT_CLONE,
        Device::Kernel(KernelDevice::Proc) => RIGHT_READ | RIGHT_WRITE | RIGHT_KILL | RIGHT_CLONE,
        Device::Hardware(_) => {
            RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_IRQ | RIGHT_MAP | RIGHT_CLONE
        }
        Device::User(_) => RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_IRQ | RIGHT_CLONE,
    }
}

/// Registers the kernel devices at boot.
pub fn init(devices: &mut Devices) -> Result<(), Error> {
    devices.add("registry", Device::Kernel(KernelDevice::Registry))?;
    devices.add("bootfs", Device::Kernel(KernelDevice::Bootfs))?;
    devices.add("klog", Device::Kernel(KernelDevice::Klog))?;
    devices.add("platform", Device::Kernel(KernelDevice::Platform))?;
    devices.add("mempool", Device::Kernel(KernelDevice::Mempool))?;
    devices.add("proc", Device::Kernel(KernelDevice::Proc))?;
    Ok(())
}

/// Gives process `pid` a registry handle (init gets one with every right
/// at boot: it is handle 0, `abi::bus::REGISTRY_HANDLE_SLOT`).
pub fn give_registry(s: &mut crate::sched::Scheduler, pid: Pid, rights: u32) -> Result<u64, Error> {
    let id = s.devices.lookup("registry").ok_or(Error::NotFound)?;
    let att = Attachment::Kernel {
        dev: id,
        kind: KernelDevice::Registry,
        state: [0; 4],
        exports: ArrayVec::new(),
    };
    let p = s.get_mut(pid).ok_or(Error::NotFound)?;
    let rights = rights & max_rights(&Device::Kernel(KernelDevice::Registry));
    p.bus.insert(att, rights, false).map_err(|(e, _)| e)
}
