//! The MH system-call ABI: the one place where numbers that cross the
//! user/kernel boundary are defined.
//!
//! Rules this crate keeps:
//! - every number here is stable: once released, a value never changes
//!   meaning; new ones are appended;
//! - every type that crosses the boundary is `#[repr(C)]` (or a plain
//!   integer), and its size and field offsets are pinned by tests;
//! - no dependencies beyond `bitflags`, `no_std`, no allocation, so that the
//!   kernel, `libmh`, the host tools and the generated C header all see the
//!   very same definitions.
#![no_std]

pub mod bus;
pub mod completion;
pub mod console;
pub mod disk;
pub mod error;
pub mod exit;
pub mod hw;
pub mod init;
pub mod interrupt;
pub mod kdev;
pub mod layout;
pub mod mem;
pub mod net;
pub mod nic;
pub mod power;
pub mod syscall;
pub mod sysinfo;
pub mod timer;
pub mod userdev;
pub mod vm;

pub use bus::DeviceInfo;
pub use error::Error;
pub use exit::{ExitKind, ExitStatus};
pub use hw::HwDeviceSpec;
pub use interrupt::IntFrame;
pub use syscall::Sysno;
pub use sysinfo::SysInfo;
pub use userdev::{DeviceConfig, Request};
