//! The `registry` kernel device: the names of every device, as a listing
//! read through ports (count, select by position, name, kind, clients,
//! server). Attaching and registering go through it as a handle (see
//! `calls::attach` and `user::create`), not through its ports.
//!
//! Rules: a selection is resolved when it is made (the device found at
//! or after a position), so every later read describes that one device or
//! says it went away (`DeviceGone`); a select that found nothing makes
//! every read but the count `NotFound`; a fresh handle has position 0
//! selected, which is always the registry itself (the first device made).

use super::{KernelDevice, SIZE_4_8, require_size, state_mut};
use crate::devices::calls::Out;
use crate::devices::{Device, DeviceId};
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::syscall::decode::Handle;
use abi::Error;
use abi::bus::{DEVICE_KIND_HARDWARE, DEVICE_KIND_KERNEL, DEVICE_KIND_USER};
use abi::kdev::*;

/// The registry's own id: it is the first device registered at boot.
pub const REGISTRY_ID: DeviceId = 0;

/// What a registry handle selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The device the last select found; `None` if it found none.
    pub selected: Option<DeviceId>,
    /// Its position in the device table.
    pub position: u64,
}

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor {
            selected: Some(REGISTRY_ID),
            position: 0,
        }
    }
}

super::attachment_state!(Cursor, Registry);

pub struct Registry;

impl KernelDevice for Registry {
    type State = Cursor;

    fn port_in<M: Machine>(
        k: &mut Kernel<M>,
        cursor: Cursor,
        port: u32,
        size: u64,
    ) -> Result<u64, Error> {
        require_size(size, SIZE_4_8)?;
        let devices = &k.devices;
        if port == REGISTRY_PORT_COUNT {
            return Ok(devices.count() as u64);
        }
        let id = cursor.selected.ok_or(Error::NotFound)?;
        let dev = devices.get(id)?;
        match port {
            p if (REGISTRY_PORT_NAME..REGISTRY_PORT_NAME + 8).contains(&p) => {
                let name = devices.name_of(id).ok_or(Error::DeviceGone)?;
                Ok(crate::devices::name_word(name, p - REGISTRY_PORT_NAME))
            }
            REGISTRY_PORT_KIND => Ok(u64::from(match dev {
                Device::Kernel(_) => DEVICE_KIND_KERNEL,
                Device::User(_) => DEVICE_KIND_USER,
                Device::Hardware(_) => DEVICE_KIND_HARDWARE,
            })),
            REGISTRY_PORT_CLIENTS => Ok(match dev {
                Device::User(u) => u.client_count() as u64,
                _ => 0,
            }),
            REGISTRY_PORT_SERVER => Ok(match dev {
                Device::User(u) => u64::from(u.server),
                _ => 0,
            }),
            REGISTRY_PORT_POSITION => Ok(cursor.position),
            _ => Err(Error::InvalidArgument),
        }
    }

    fn port_out<M: Machine>(
        k: &mut Kernel<M>,
        h: Handle,
        port: u32,
        size: u64,
        value: u64,
    ) -> Result<Out, Error> {
        if port != REGISTRY_PORT_SELECT {
            return Err(Error::InvalidArgument);
        }
        require_size(size, SIZE_4_8)?;
        let found = k.devices.at_or_after(value).map(|(pos, _, id)| (pos, id));
        let cursor = state_mut::<Registry, M>(k, h)?;
        match found {
            Some((position, id)) => {
                *cursor = Cursor {
                    selected: Some(id),
                    position,
                }
            }
            None => cursor.selected = None,
        }
        Ok(Out::Done)
    }
}
