//! libmh: the runtime every MH user program links against.
//!
//! It provides the entry point (`entry!`), the system calls as safe
//! functions returning `Result<_, abi::Error>`, `print!`/`println!` (one
//! kernel-log write per line, which the console server puts on the wire
//! whole), a panic handler that reports and exits, the global allocator
//! (`heap`, for programs that use `alloc`), and clients of the standard
//! devices (bootfs, PCI, the registry listing, proc, the console, the
//! timer, mem, the disk).
//!
//! Rules: libmh itself never allocates (a program that does not use
//! `alloc` maps no heap page); every wrapper that takes memory takes a Rust
//! reference, so the kernel only ever sees pointers to memory the program
//! owns (the raw `syscall` functions exist for tests that must lie).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod args;
pub mod bootfs;
pub mod console;
pub mod dev;
pub mod disk;
pub mod heap;
pub mod init;
pub mod mem;
pub mod mempool;
pub mod net;
pub mod nic;
pub mod pci;
pub mod print;
pub mod process;
pub mod procs;
pub mod raw;
pub mod registry;
pub mod rt;
pub mod server;
pub mod timer;
pub mod typed;
pub mod vm;

pub use abi::{Error, ExitKind, ExitStatus};
pub use args::Args;

/// The exit status of a program that panicked.
pub const PANIC_EXIT_CODE: i64 = 101;
/// The exit status of a program whose allocation failed for want of
/// memory (its reserve is at its ceiling, or the system has no more).
pub const OUT_OF_MEMORY_EXIT_CODE: i64 = 102;

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
    let pid = process::getpid();
    println!("panic in pid {pid}: {info}");
    if is_alloc_failure(info) {
        let (stats, grants) = heap::stats();
        println!(
            "libmh: pid {pid}: out of memory (heap {} KiB mapped, {} KiB in use; {grants} grants asked)",
            stats.mapped / 1024,
            stats.in_use / 1024
        );
        process::exit(OUT_OF_MEMORY_EXIT_CODE)
    }
    process::exit(PANIC_EXIT_CODE)
}

/// Whether the panic is the one `alloc` raises when an allocation fails
/// ("memory allocation of N bytes failed").
#[cfg(target_os = "none")]
fn is_alloc_failure(info: &core::panic::PanicInfo<'_>) -> bool {
    use core::fmt::Write;
    const PREFIX: &[u8] = b"memory allocation of ";
    struct Prefix {
        buf: [u8; PREFIX.len()],
        len: usize,
    }
    impl Write for Prefix {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let n = s.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
    let mut p = Prefix {
        buf: [0; PREFIX.len()],
        len: 0,
    };
    let _ = write!(p, "{}", info.message());
    p.buf[..p.len] == *PREFIX
}
