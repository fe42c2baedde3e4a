//! The `platform` kernel device: the machine's resources handed out as
//! hardware devices. A driver's supervisor writes a `HwDeviceSpec` into
//! memory exported to its platform handle and asks the kernel to create
//! that device (`PLATFORM_PORT_CREATE`) or to give back the frames
//! quarantined for one (`PLATFORM_PORT_RELEASE_QUARANTINE`).
//!
//! Rules: the spec is read from one export of the handle, whole, before
//! anything is checked (so the kernel checks the copy, never memory the
//! caller can still change); what a spec may claim is decided by
//! `hwclaims` (nothing the kernel or another device holds, no RAM);
//! attaching platform needs `RIGHT_SYSTEM`.

use super::{KernelDevice, SIZE_4_8, SIZE_8, parts, require_size};
use crate::devices::calls::Out;
use crate::devices::hw;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::syscall::decode::Handle;
use crate::usercopy::UserPtr;
use abi::kdev::*;
use abi::{Error, HwDeviceSpec};

/// A platform handle remembers nothing between calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stateless;

super::attachment_state!(Stateless, Platform);

pub struct Platform;

impl KernelDevice for Platform {
    type State = Stateless;

    fn port_in<M: Machine>(
        k: &mut Kernel<M>,
        _: Stateless,
        port: u32,
        size: u64,
    ) -> Result<u64, Error> {
        require_size(size, SIZE_4_8)?;
        match port {
            PLATFORM_PORT_QUARANTINED => Ok(k
                .devices
                .hardware()
                .map(|h| h.quarantine.len() as u64)
                .sum()),
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
        require_size(size, SIZE_8)?;
        if port != PLATFORM_PORT_CREATE && port != PLATFORM_PORT_RELEASE_QUARANTINE {
            return Err(Error::InvalidArgument);
        }
        let spec = {
            let at = parts::<Platform, M>(k, h)?;
            let len = core::mem::size_of::<HwDeviceSpec>() as u64;
            crate::export::check_covered(at.exports.iter(), value, len)?;
            UserPtr::<HwDeviceSpec>::new(value)?.read::<M>(at.space)?
        };
        if port == PLATFORM_PORT_CREATE {
            hw::create(k, &spec)?;
        } else {
            let n = spec.name_len as usize;
            if n == 0 || n > spec.name.len() {
                return Err(Error::InvalidArgument);
            }
            let name = core::str::from_utf8(&spec.name[..n]).map_err(|_| Error::InvalidArgument)?;
            hw::release_quarantine(k, name)?;
        }
        Ok(Out::Done)
    }
}
