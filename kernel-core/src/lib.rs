//! The kernel's hardware-free logic (Hubris's `kerncore` idea): everything
//! here builds for the host and is unit-tested there with `cargo test`.
//!
//! Rules: no inline assembly, no access to physical memory except through
//! traits the kernel implements, no panics on data that comes from outside
//! the kernel (boot loader tables, ELF images, user arguments): such data is
//! parsed into `Result`s.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod acpi;
pub mod bootinfo;
pub mod elf;
pub mod frame;
pub mod klog;
pub mod le;
pub mod names;
pub mod paging;
pub mod slab;

pub mod bus;
pub mod hwclaims;
pub mod idtable;
pub mod runqueue;
#[cfg(test)]
mod testmem;
#[cfg(test)]
mod testrng;
pub mod userdev;
pub mod vm;
