//! Reading the registry's listing: which devices are registered, of what
//! kind, with how many clients and which server (the `registry` kernel
//! device's ports, `abi::kdev::REGISTRY_PORT_*`).
//!
//! Rules: the listing is read port by port, so it is a series of snapshots,
//! not one: a device may come or go between two reads, and an entry whose
//! selection fails part way is skipped rather than reported half-read.

use crate::dev::{Name, REGISTRY};
use abi::Error;
use abi::kdev::*;

/// One registered device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    name: Name,
    /// `abi::bus::DEVICE_KIND_*`.
    pub kind: u32,
    /// Its clients now.
    pub clients: u32,
    /// Its server's pid (user devices), else 0.
    pub server: u32,
}

impl Entry {
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

/// How many devices are registered now.
pub fn count() -> Result<u32, Error> {
    REGISTRY.port_in(REGISTRY_PORT_COUNT, 4).map(|n| n as u32)
}

/// The first registered device at or after table position `at`, and its
/// position (`NotFound` past the last).
pub fn entry_at(at: u64) -> Result<(u64, Entry), Error> {
    REGISTRY.port_out(REGISTRY_PORT_SELECT, 8, at)?;
    let position = REGISTRY.port_in(REGISTRY_PORT_POSITION, 8)?;
    let entry = Entry {
        name: Name::read(REGISTRY, REGISTRY_PORT_NAME)?,
        kind: REGISTRY.port_in(REGISTRY_PORT_KIND, 4)? as u32,
        clients: REGISTRY.port_in(REGISTRY_PORT_CLIENTS, 4)? as u32,
        server: REGISTRY.port_in(REGISTRY_PORT_SERVER, 4)? as u32,
    };
    Ok((position, entry))
}

/// Calls `f` on every registered device (see the module rules), in table
/// order.
pub fn for_each(mut f: impl FnMut(&Entry)) -> Result<(), Error> {
    let mut at = 0;
    loop {
        match entry_at(at) {
            Ok((position, e)) => {
                f(&e);
                at = position + 1;
            }
            Err(Error::NotFound) => return Ok(()),
            // The device at the position went between two reads: skip it.
            Err(Error::DeviceGone) => at += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Whether a device called `name` is registered now.
pub fn is_registered(name: &str) -> Result<bool, Error> {
    let mut found = false;
    for_each(|e| found |= e.name() == name)?;
    Ok(found)
}
