//! init: the first process. It starts the image's modules in manifest
//! order (waiting for each server to register its device), restarts the
//! servers that die, and exits — powering the machine off — when the last
//! program (a module that is not a restartable server) has ended. The
//! rules are in `supervisor`; the manifest fields in docs/manifest.md.
#![no_std]
#![no_main]

mod supervisor;

use libmh::{Args, println, process};

libmh::entry!(main);

/// The vector init's console sync waits on (init uses no other).
const SYNC_VECTOR: u32 = 9;

fn main(args: Args) -> i32 {
    println!("init: hello from MH init, pid {}", process::getpid());
    println!("init: arguments: '{}'", args.as_str());
    let mut supervisor = match supervisor::Supervisor::new() {
        Ok(s) => s,
        Err(e) => {
            println!("init: cannot read the boot modules: {e}");
            return 1;
        }
    };
    // The control device, for the shell's `kill` of a server; without it
    // init still supervises.
    let control = match libmh::dev::create(
        libmh::dev::REGISTRY,
        "init",
        1,
        abi::init::INIT_IOSPACE_SIZE,
        supervisor::V_CONTROL,
    ) {
        Ok(d) => Some(d),
        Err(e) => {
            println!("init: no control device: {e}");
            None
        }
    };
    supervisor.run(control);
    println!("init: no program left; goodbye");
    // Powering off follows at once: let the console show the last lines.
    if let Err(e) = libmh::console::sync(SYNC_VECTOR) {
        println!("init: the console did not sync: {e}");
    }
    0
}
