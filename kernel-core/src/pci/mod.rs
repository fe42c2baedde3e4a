//! PCI functions as hardware devices, the hardware-free half: what the
//! kernel reads, sizes and decides about a function before and while a
//! driver holds it. The kernel reaches each function's configuration
//! space (over ECAM) through [`ConfigSpace`]; here are the readers of its
//! header ([`probe`]), its BARs ([`size_bars`]) and its capability list
//! with MSI and MSI-X ([`capabilities`]), the command-register helpers
//! ([`Command`]), and the policy for a driver's configuration accesses
//! ([`ConfigPolicy`]). [`describe`] does the first three in order, as a
//! claim will.
//!
//! Rules kept by every file below:
//! - configuration space is touched only through [`ConfigSpace`], at
//!   offsets aligned to the access and below 4096 (below 256 for the
//!   capability list);
//! - every value a device returns is hostile: it is checked before use,
//!   every walk is bounded, and a malformed or changing answer is a
//!   [`PciError`] naming the register, never a panic, a loop, an
//!   overflow or an access out of range;
//! - what is written is put back: BAR sizing restores each BAR and the
//!   command register before it judges anything, so an error leaves the
//!   function as it was; only [`update_command`] and a policy's
//!   `write_through` change a function, and only as asked;
//! - only type 0 endpoints are claimable; nothing is allocated (fixed
//!   `ArrayVec`s); no `unsafe`.

pub mod bar;
pub mod caps;
pub mod command;
pub mod config;
pub mod error;
pub mod header;
pub mod policy;

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
pub(crate) mod models;
#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod tests;

pub use bar::{Bar, BarKind, Bars, size_bars};
pub use caps::{BarRegion, Capabilities, Capability, Msi, MsiX, capabilities};
pub use command::{Command, read_command, update_command};
pub use config::{ConfigAccess, ConfigSpace, Width};
pub use error::{BarFault, CapFault, PciError};
pub use header::{Header, probe, probe_endpoint};
pub use policy::{ConfigPolicy, Write};

/// What the kernel knows of a claimable function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub header: Header,
    pub bars: Bars,
    pub caps: Capabilities,
}

impl Function {
    /// The rules for a driver's configuration accesses to it.
    pub fn policy(&self) -> ConfigPolicy {
        ConfigPolicy::new(&self.caps)
    }
}

/// Probes a function (it must be a type 0 endpoint), sizes its BARs and
/// walks its capabilities. Leaves the function as it found it.
pub fn describe<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Result<Function, PciError> {
    let header = probe_endpoint(cfg)?;
    let bars = size_bars(cfg)?;
    let caps = capabilities(cfg, &bars)?;
    Ok(Function { header, bars, caps })
}
