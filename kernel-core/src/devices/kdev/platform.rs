//! The `platform` kernel device: the machine's resources handed out as
//! hardware devices. A driver's supervisor writes a `HwDeviceSpec` into
//! memory exported to its platform handle and asks the kernel to create
//! that device (`PLATFORM_PORT_CREATE`), to give back what is
//! quarantined for one (`PLATFORM_PORT_RELEASE_QUARANTINE`), or writes a
//! `PciClaimSpec` to claim a PCI function (`PLATFORM_PORT_CLAIM_PCI`).
//! The timer server writes the TSC rate it measured against the HPET
//! (`PLATFORM_PORT_TSC_HZ`), which replaces the kernel's estimate from
//! boot so that the system has one rate.
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
use crate::pci::ConfigSpace;
use crate::syscall::decode::Handle;
use crate::usercopy::{Pod, UserPtr};
use abi::hw::PciClaimSpec;
use abi::kdev::*;
use abi::{Error, HwDeviceSpec};

/// What a platform handle remembers: the PCI function it selected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selected {
    /// `segment << 16 | bus << 8 | devfn`.
    pub function: u32,
}

super::attachment_state!(Selected, Platform);

/// The identity word of the function at `address` (see
/// `PLATFORM_PORT_PCI_ID`).
fn pci_identity<M: Machine>(address: u32) -> u64 {
    let [devfn, bus, seg_lo, seg_hi] = address.to_le_bytes();
    let f = crate::acpi::PciFunction::new(
        u16::from_le_bytes([seg_lo, seg_hi]),
        bus,
        devfn >> 3,
        devfn & 7,
    );
    let Some(mut cfg) = M::pci_config(f) else {
        return 0;
    };
    let ids = cfg.read32(0);
    if ids as u16 == 0xffff || ids as u16 == 0 {
        return 0;
    }
    let class = cfg.read32(8) >> 8;
    u64::from(ids)
        | u64::from(class & 0xff) << 48
        | u64::from((class >> 8) & 0xff) << 40
        | u64::from(class >> 16) << 32
}

pub struct Platform;

/// Whether `hz` may replace the boot estimate `boot` (0: none) as the
/// TSC rate: a measurement, not a typo or a fuzzer's word, so near the
/// estimate — which a loaded host can throw off by a fifth, not by half.
pub fn tsc_rate_plausible(boot: u64, hz: u64) -> bool {
    if boot == 0 {
        return (1_000_000..=1_000_000_000_000).contains(&hz);
    }
    hz >= boot / 2 && hz <= boot.saturating_mul(2)
}

/// `PLATFORM_PORT_TSC_HZ` out: the system's TSC rate from now on, which
/// the log records beside the boot estimate.
fn set_tsc_hz<M: Machine>(hz: u64) -> Result<(), Error> {
    let boot = M::tsc_boot_hz();
    if !tsc_rate_plausible(boot, hz) {
        return Err(Error::InvalidArgument);
    }
    let before = M::tsc_hz();
    // The kernel converts per millisecond: the rate is kept to the kHz.
    M::set_tsc_hz(hz / 1000 * 1000);
    M::log(format_args!(
        "[kernel] TSC rate: {} kHz from now on, measured by a system server (the kernel's own estimate was {} kHz)\n",
        hz / 1000,
        before / 1000
    ));
    Ok(())
}

/// Reads the `T` at iova `at`, which must lie inside one export of `h`.
fn read_spec<T: Pod, M: Machine>(k: &mut Kernel<M>, h: Handle, at: u64) -> Result<T, Error> {
    let att = parts::<Platform, M>(k, h)?;
    let len = core::mem::size_of::<T>() as u64;
    crate::export::check_covered(att.exports.iter(), at, len)?;
    UserPtr::<T>::new(at)?.read::<M>(att.space)
}

impl KernelDevice for Platform {
    type State = Selected;

    fn port_in<M: Machine>(
        k: &mut Kernel<M>,
        state: Selected,
        port: u32,
        size: u64,
    ) -> Result<u64, Error> {
        require_size(size, SIZE_4_8)?;
        match port {
            PLATFORM_PORT_PCI_ID => Ok(pci_identity::<M>(state.function)),
            PLATFORM_PORT_TSC_HZ => Ok(M::tsc_hz()),
            PLATFORM_PORT_QUARANTINED => Ok(k
                .devices
                .hardware()
                .map(crate::devices::dma::quarantined_pages)
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
        match port {
            PLATFORM_PORT_CREATE | PLATFORM_PORT_RELEASE_QUARANTINE => {}
            PLATFORM_PORT_PCI_SELECT => {
                let at = parts::<Platform, M>(k, h)?;
                at.state.function = u32::try_from(value).map_err(|_| Error::InvalidArgument)?;
                return Ok(Out::Done);
            }
            PLATFORM_PORT_CLAIM_PCI => {
                let spec = read_spec::<PciClaimSpec, M>(k, h, value)?;
                crate::devices::pci::claim(k, &spec)?;
                return Ok(Out::Done);
            }
            PLATFORM_PORT_TSC_HZ => {
                set_tsc_hz::<M>(value)?;
                return Ok(Out::Done);
            }
            _ => return Err(Error::InvalidArgument),
        }
        let spec = read_spec::<HwDeviceSpec, M>(k, h, value)?;
        if port == PLATFORM_PORT_CREATE {
            hw::create(k, &spec)?;
        } else {
            let name = crate::hwclaims::device_name(&spec.name, spec.name_len)?;
            hw::release_quarantine(k, name.as_str())?;
        }
        Ok(Out::Done)
    }
}
