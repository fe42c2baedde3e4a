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
pub mod directmap;
pub mod elf;
pub mod frame;
pub mod klog;
pub mod le;
pub mod names;
pub mod outline;
pub mod pagetable;
pub mod paging;
pub mod pci;
pub mod slab;
pub mod smp;

pub mod bus;
pub mod charged;
pub mod devices;
pub mod export;
#[cfg(test)]
pub mod fake;
pub mod gentable;
pub mod hwclaims;
pub mod iommu;
pub mod kernel;
pub mod loader;
pub mod lockorder;
pub mod machine;
pub mod process;
pub mod reserve;
pub mod runqueue;
pub mod syscall;
#[cfg(test)]
mod testmem;
#[cfg(test)]
mod testrng;
pub mod usercopy;
pub mod userdev;
pub mod vm;

extern crate alloc;

/// A line for the kernel log, through machine `$m`:
/// `klog!(M, "pid {pid} killed")`.
#[macro_export]
macro_rules! klog {
    ($m:ty, $($arg:tt)*) => {
        <$m as $crate::machine::Machine>::log(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Boxes a value, or hands it back if the heap is exhausted (no panic,
/// and nothing the value owns is lost). `Box::try_new` is not stable.
#[allow(clippy::result_large_err)] // the error is the value itself, handed back
pub fn try_box<T>(value: T) -> Result<alloc::boxed::Box<T>, T> {
    let layout = core::alloc::Layout::new::<T>();
    if layout.size() == 0 {
        return Ok(alloc::boxed::Box::new(value));
    }
    // SAFETY: the layout is not zero-sized; the pointer is checked for
    // null, written before use, and handed to Box with the same layout the
    // global allocator will free it with.
    unsafe {
        let ptr = alloc::alloc::alloc(layout).cast::<T>();
        if ptr.is_null() {
            return Err(value);
        }
        ptr.write(value);
        Ok(alloc::boxed::Box::from_raw(ptr))
    }
}
