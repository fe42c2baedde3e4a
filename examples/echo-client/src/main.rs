//! echo-client: attaches the `echo` device (examples/echo-server), makes a
//! few round trips, and with the argument `crash` also shows recovery: it
//! asks the server to exit, sees `DeviceGone`, and attaches again once
//! init has restarted the server. With `attack` it shows that a client
//! cannot take a server down for good: a forked child keeps crashing the
//! server until init cuts it off (its attach is refused), and the parent
//! is still served.
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

/// The attacker: crashes the server until init cuts it off; returns how
/// many crashes that took.
fn attack() -> Result<u32, Error> {
    for crashes in 0.. {
        let h = match attach() {
            Ok(h) => h,
            Err(Error::AccessDenied) => return Ok(crashes),
            Err(e) => return Err(e),
        };
        match h.port_out_wait(1, 8, 0, 1 << VECTOR) {
            // The server died of it; if init cut us off meanwhile, our
            // handle was taken away too.
            Err(Error::DeviceGone) | Err(Error::BadHandle) => {}
            other => {
                println!("echo-client: the crash request gave {other:?}");
                return Err(Error::InvalidArgument);
            }
        }
        let _ = h.detach();
    }
    Err(Error::LimitReached)
}

fn run_attack() -> Result<(), Error> {
    match process::fork()? {
        0 => process::exit(match attack() {
            Ok(n) => {
                println!("echo-client: the attacker was cut off after {n} crashes");
                0
            }
            Err(e) => {
                println!("echo-client: the attack failed: {e}");
                1
            }
        }),
        pid => {
            let st = process::wait_child()?;
            if st.pid != pid || st.code != 0 {
                return Err(Error::InvalidArgument);
            }
        }
    }
    let h = attach()?;
    round_trip(h, 9)?;
    println!("echo-client: others are still served");
    h.detach()
}

fn main(args: Args) -> i32 {
    let has = |word: &str| args.as_str().split_whitespace().any(|a| a == word);
    let result = if has("attack") {
        run_attack()
    } else {
        run(has("crash"))
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            println!("echo-client: failed: {e}");
            1
        }
    }
}
