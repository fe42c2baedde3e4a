//! libmh: the runtime every MH user program links against.
//!
//! It provides the entry point (`entry!`), the system calls as safe
//! functions returning `Result<_, abi::Error>`, `print!`/`println!` (through
//! the kernel log for now), a panic handler that reports and exits, and
//! clients of the standard devices (bootfs, PCI, the timer).
//!
//! Rules: no allocation yet; every wrapper that takes memory takes a Rust
//! reference, so the kernel only ever sees pointers to memory the program
//! owns (the raw `syscall` functions exist for tests that must lie).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod args;
pub mod bootfs;
pub mod console;
pub mod dev;
pub mod pci;
pub mod print;
pub mod process;
pub mod procs;
pub mod raw;
pub mod registry;
pub mod rt;
pub mod timer;
pub mod vm;

pub use abi::{Error, ExitKind, ExitStatus};
pub use args::Args;

/// The exit status of a program that panicked.
pub const PANIC_EXIT_CODE: i64 = 101;

/// Declares the program's entry point: `fn main(args: Args) -> i32`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".text._start")]
        extern "C" fn _start(args_ptr: *const u8, args_len: usize) -> ! {
            // SAFETY: the kernel passes the argument string it copied onto
            // this program's stack, which stays mapped for its lifetime.
            let args = unsafe { $crate::Args::from_raw(args_ptr, args_len) };
            $crate::rt::init();
            let code: i32 = $main(args);
            $crate::process::exit(code as i64)
        }
    };
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic in pid {}: {}", process::getpid(), info);
    process::exit(PANIC_EXIT_CODE)
}
