//! echo-client: attaches the `echo` device (examples/echo-server), makes a
//! few round trips, and with the argument `crash` also shows recovery: it
//! asks the server to exit, sees `DeviceGone`, and attaches again once
//! init has restarted the server.
#![no_std]
#![no_main]

use abi::Error;
use libmh::dev::{self, Handle, REGISTRY};
use libmh::{Args, println, process};

libmh::entry!(main);

/// The vector the device's IRQ line 0 is delivered as.
const VECTOR: u32 = 5;
/// How many times to look for the device before giving up (it may not be
/// registered yet, or be restarting).
const ATTACH_TRIES: u32 = 200_000;

fn attach() -> Result<Handle, Error> {
    let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ;
    let mut last = Error::NotFound;
    for _ in 0..ATTACH_TRIES {
        match dev::attach(REGISTRY, "echo", rights) {
            Ok(h) => {
                h.irq_map(0, VECTOR)?;
                return Ok(h);
            }
            Err(e @ Error::NotFound) => last = e,
            Err(e) => return Err(e),
        }
        process::yield_now();
    }
    Err(last)
}

/// Writes `value` to port 0, waits for the answer, and checks it.
fn round_trip(h: Handle, value: u64) -> Result<(), Error> {
    h.port_out_wait(0, 8, value, 1 << VECTOR)?;
    match h.port_in(0, 8)? {
        v if v == value => Ok(()),
        _ => Err(Error::BadImage),
    }
}

fn run(crash: bool) -> Result<(), Error> {
    let h = attach()?;
    for value in [1, 42, 0xdead_beef] {
        round_trip(h, value)?;
    }
    println!("echo-client: 3 round trips ok");
    if !crash {
        return h.detach();
    }
    // Port 1 makes the server exit without answering: the wait ends with
    // DeviceGone, and so does everything else on this handle.
    match h.port_out_wait(1, 8, 0, 1 << VECTOR) {
        Err(Error::DeviceGone) => println!("echo-client: the server went away; attaching again"),
        other => {
            println!("echo-client: expected DeviceGone, got {other:?}");
            return Err(Error::InvalidArgument);
        }
    }
    h.detach()?;
    let h = attach()?;
    round_trip(h, 7)?;
    println!("echo-client: reattached after the server restarted; round trip ok");
    h.detach()
}

fn main(args: Args) -> i32 {
    let crash = args.as_str().split_whitespace().any(|a| a == "crash");
    match run(crash) {
        Ok(()) => 0,
        Err(e) => {
            println!("echo-client: failed: {e}");
            1
        }
    }
}
