//! shell: the prompt (`mh> `) on the console. It lists processes and
//! devices, runs boot modules and waits for them (Ctrl-C ends the one
//! running), kills, reports uptime and memory, and reads and writes the
//! disk; `help` lists it all.
//! At the end of input (Ctrl-D, or the end of a pipe into `cargo xtask
//! run`) it exits, and init then powers the machine off. With the
//! argument `report-boot` it first logs `bench boot_to_shell <TSC> 1`
//! (the bench-boot image, for `cargo xtask bench`).
//!
//! Rules: every command's errors are reported on its own line and the
//! prompt comes back; the shell never exits on bad input, only at the end
//! of input or on `exit`.
#![no_std]
#![no_main]

mod commands;
mod disk;
mod jobs;
mod net;
mod out;

use libmh::console::{Console, Read};
use libmh::{Args, println, process};

libmh::entry!(main);

/// Vectors: console answers, Ctrl-C.
pub const V_DONE: u32 = 1;
pub const V_INTERRUPT: u32 = 2;

fn main(args: Args) -> i32 {
    let mut console = match open_console() {
        Ok(c) => c,
        Err(e) => {
            println!("shell: no console: {e}");
            return 1;
        }
    };
    if args.get(0) == Some("report-boot") {
        // For `cargo xtask bench` (tools/images/bench-boot.toml): under
        // -icount the TSC counts every guest instruction since power-on.
        // SAFETY: rdtsc has no side effects; user mode may run it.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        println!("bench boot_to_shell {tsc} 1");
    }
    say!(&console, "MH shell: type 'help' for the commands\n");
    let mut buf = [0u8; 256];
    loop {
        say!(&console, "mh> ");
        let n = match console.read_line(&mut buf) {
            Ok(Read::Line(n)) => n,
            Ok(Read::End) => {
                say!(&console, "\nshell: end of input; goodbye\n");
                return 0;
            }
            // Ctrl-C at the prompt: the line was discarded; prompt again.
            Ok(Read::Interrupted) => continue,
            // The console died (init restarts it): attach the new one.
            Err(libmh::Error::DeviceGone) => {
                let _ = console.close();
                console = match open_console() {
                    Ok(c) => c,
                    Err(e) => {
                        println!("shell: the console is gone for good: {e}");
                        return 1;
                    }
                };
                say!(&console, "shell: reattached to the restarted console\n");
                continue;
            }
            Err(e) => {
                println!("shell: cannot read the console: {e}");
                return 1;
            }
        };
        // A line longer than the buffer comes in pieces: the rest is
        // thrown away rather than run as commands of its own.
        if n == buf.len() && buf[n - 1] != b'\n' {
            let mut rest = [0u8; 256];
            while let Ok(Read::Line(m)) = console.read_line(&mut rest) {
                if m < rest.len() || rest[m - 1] == b'\n' {
                    break;
                }
            }
            say!(
                &console,
                "shell: line too long (at most 255 bytes); ignored\n"
            );
            continue;
        }
        let Ok(line) = core::str::from_utf8(&buf[..n]) else {
            say!(&console, "shell: the line is not UTF-8; ignored\n");
            continue;
        };
        if commands::run(&console, line.trim()) == commands::Flow::Exit {
            return 0;
        }
    }
}

/// The console may still be starting: look for it for a while.
fn open_console() -> Result<Console, libmh::Error> {
    let mut last = libmh::Error::NotFound;
    for _ in 0..100_000 {
        match Console::open(V_DONE, V_INTERRUPT) {
            Ok(c) => return Ok(c),
            Err(e @ libmh::Error::NotFound) => last = e,
            Err(e) => return Err(e),
        }
        process::yield_now();
    }
    Err(last)
}
