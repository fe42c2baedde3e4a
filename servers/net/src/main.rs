//! net: the TCP/IP server. It takes the `net0` interface (the NIC driver's
//! one client), runs smoltcp over it (`stack`, over `phy`), and serves the
//! `net` user device (`abi::net`, docs/devices/net.md): the interface's
//! configuration and counters, pings, and clients' TCP and UDP sockets
//! (`sockets`).
//!
//! Start-up: register `net` first (a second server stops there), then
//! open `net0` and the timer, waiting for each (10 s at most: init starts
//! the driver and the timer alongside this server). The timer's alarms
//! wake the server when smoltcp has work due (DHCP, retransmissions, a
//! ping's deadline); frames wake it by the interface's line and requests
//! by the device's vector.
//!
//! Exit statuses: 2 a bad argument, 3 no `net0` or no timer, 4 `net`
//! cannot be registered, 5 the interface went away (init restarts the
//! server, which waits for the driver's return).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod phy;
mod service;
mod sockets;
mod stack;

use abi::Error;
use abi::net::{NET_IOSPACE_SIZE, NET_IRQ_LINES};
use libmh::dev::{self, REGISTRY};
use libmh::nic::{Nic, Vectors};
use libmh::timer::Timer;
use libmh::{Args, println, process};

/// The user device this server serves.
pub const NET_NAME: &str = "net";
/// Vectors: requests on `net`; the interface's lines; the timer's.
const V_REQUEST: u32 = 1;
const NIC_VECTORS: Vectors = Vectors {
    sent: 2,
    rx: 3,
    post_failed: 4,
};
const V_TIMER_REPLY: u32 = 5;
const V_ALARM: u32 = 6;
/// Where the interface's area is mapped.
const NIC_AREA: u64 = 0x5c00_0000_0000;

libmh::entry!(main);

fn main(args: Args) -> i32 {
    if let Some(word) = args.iter().next() {
        println!("net: unknown argument '{word}' (it takes none)");
        return 2;
    }
    let dev = match dev::create(
        REGISTRY,
        NET_NAME,
        NET_IRQ_LINES,
        NET_IOSPACE_SIZE,
        V_REQUEST,
    ) {
        Ok(d) => d,
        Err(e) => {
            println!("net: cannot register '{NET_NAME}': {e}");
            return 4;
        }
    };
    let Some(nic) = wait_for("net0", || Nic::open(NIC_AREA, NIC_VECTORS)) else {
        return 3;
    };
    let Some(timer) = wait_for("the timer", || Timer::open(V_TIMER_REPLY, V_ALARM)) else {
        return 3;
    };
    let mut service = service::Service::new(nic, timer, V_TIMER_REPLY, V_ALARM);
    let extra = 1 << NIC_VECTORS.rx | 1 << NIC_VECTORS.post_failed | 1 << V_ALARM;
    match libmh::server::serve(dev, V_REQUEST, extra, &mut service) {
        Ok(code) => code,
        Err(e) => {
            println!("net: stopped: {e}");
            1
        }
    }
}

/// Opens something another server provides, retrying while it is not
/// there yet (`NotFound`) for 10 seconds of kernel ticks.
fn wait_for<T>(what: &str, mut open: impl FnMut() -> Result<T, Error>) -> Option<T> {
    let hz = process::sys_info().map_or(100, |i| i.tick_hz.max(1));
    let start = process::sys_info().map_or(0, |i| i.ticks);
    loop {
        match open() {
            Ok(t) => return Some(t),
            Err(Error::NotFound | Error::Busy) => {
                let now = process::sys_info().map_or(u64::MAX, |i| i.ticks);
                if now.saturating_sub(start) >= 10 * hz {
                    println!("net: {what} is not there after 10 s");
                    return None;
                }
                process::yield_now();
            }
            Err(e) => {
                println!("net: cannot open {what}: {e}");
                return None;
            }
        }
    }
}
