//! virtio 1.x for MH's drivers (virtio-blk, virtio-net): the modern PCI
//! transport over a claimed function (`transport`), split virtqueues
//! (`queue`), the one range of DMA memory a driver gives its device
//! (`arena`), and bounded waits on the kernel's tick clock (`deadline`).
//!
//! Rules: everything a device says about itself is checked before it is
//! believed (capability bounds, used-ring indices, lengths); the device
//! only ever gets addresses inside the driver's arena; no wait for the
//! device is unbounded. Drivers name themselves (`Transport::open`'s
//! `name`) so that the library's log lines say whose device it was.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod arena;
pub mod deadline;
pub mod queue;
pub mod transport;

pub use arena::{Arena, PAGE};
pub use deadline::Deadline;
pub use queue::Queue;
pub use transport::{NO_VECTOR, Transport};

/// Feature bits every modern driver deals with (virtio 1.2, 6).
pub mod features {
    /// A virtio 1.x ("modern") device.
    pub const VERSION_1: u64 = 1 << 32;
    /// The device's DMA goes through the platform's I/O MMU. A device
    /// behind one must offer it (without it QEMU's device would bypass the
    /// I/O MMU and treat iovas as physical addresses), and a driver always
    /// accepts it when offered (QEMU refuses FEATURES_OK otherwise).
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
}

use abi::Error;
use libmh::dev::{self, Handle, REGISTRY};

/// virtio's PCI vendor id.
pub const VENDOR: u16 = 0x1af4;

/// The hardware device `hw_name` of the first virtio function with PCI
/// device id `device` (a modern one: 1041 net, 1042 block), claimed now
/// through `platform` or by an earlier instance of the driver (the claim
/// outlives it); with the platform handle, which the quarantine release
/// needs. `driver` names the driver in its log line.
pub fn claim(driver: &str, hw_name: &str, device: u16) -> Result<(Handle, Handle), Error> {
    let platform = dev::attach(
        REGISTRY,
        "platform",
        dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA,
    )?;
    let rights = dev::RIGHT_READ
        | dev::RIGHT_WRITE
        | dev::RIGHT_DMA
        | dev::RIGHT_IRQ
        | dev::RIGHT_MAP
        | dev::ATTACH_CLOSE_ON_EXEC;
    let hw = match dev::attach(REGISTRY, hw_name, rights) {
        Ok(h) => h,
        Err(Error::NotFound) => {
            let at = libmh::pci::find(platform, VENDOR, device)?.ok_or(Error::NotFound)?;
            match libmh::pci::claim(platform, hw_name, at) {
                Ok(()) | Err(Error::AlreadyExists) => {}
                Err(e) => return Err(e),
            }
            libmh::println!("{driver}: claimed {at} as '{hw_name}'");
            dev::attach(REGISTRY, hw_name, rights)?
        }
        Err(e) => return Err(e),
    };
    Ok((hw, platform))
}
