//! init: the first process. For now it greets, reports what it was given,
//! and exits, which powers the machine off cleanly; it grows into the
//! supervisor of the servers as they arrive.
#![no_std]
#![no_main]

use libmh::{Args, println, process};

libmh::entry!(main);

fn main(args: Args) -> i32 {
    println!("init: hello from MH init, pid {}", process::getpid());
    println!("init: arguments: '{}'", args.as_str());
    match libmh::bootfs::spawn_boot_modules() {
        Ok(n) => println!("init: started {n} boot modules"),
        Err(e) => println!("init: cannot start the boot modules: {e}"),
    }
    // Reap what we started before powering off.
    while let Ok(status) = process::wait_child() {
        println!(
            "init: child {} ended (kind {}, code {})",
            status.pid, status.kind, status.code
        );
    }
    println!("init: nothing left to do; goodbye");
    0
}
