//! echo-server: the smallest useful user device. It registers `echo`;
//! a value written to port 0 comes back at offset 0 of the writer's I/O
//! space, with IRQ line 0 raised. Writing port 1 makes the server exit
//! with status 3 on purpose, to show init restarting it.
#![no_std]
#![no_main]

use abi::userdev::REQUEST_OUT;
use libmh::dev::{self, Request, Served};
use libmh::server::{self, Reply, Server};
use libmh::{Args, println};

libmh::entry!(main);

/// Port 0: echo the value.
const PORT_ECHO: u32 = 0;
/// Port 1: exit at once (for the supervision demo).
const PORT_CRASH: u32 = 1;
/// Our own vector (the framework waits on it).
const VECTOR: u32 = 1;

struct Echo;

impl Server for Echo {
    fn request(&mut self, _dev: Served, r: &Request) -> Reply {
        match (r.kind, r.port) {
            // Answer at I/O-space offset 0, announced on line 0.
            (REQUEST_OUT, PORT_ECHO) => Reply::word(0, r.value, 0),
            (REQUEST_OUT, PORT_CRASH) => Reply::Stop(3),
            // Opens, closes, forks and unknown ports need no answer.
            _ => Reply::None,
        }
    }
}

fn main(_args: Args) -> i32 {
    // One IRQ line, 8 bytes of I/O space per client.
    let echo = match dev::create(dev::REGISTRY, "echo", 1, 8, VECTOR) {
        Ok(d) => d,
        Err(e) => {
            println!("echo-server: cannot register 'echo': {e}");
            return 1;
        }
    };
    match server::serve(echo, VECTOR, 0, &mut Echo) {
        Ok(code) => code,
        Err(e) => {
            println!("echo-server: stopped: {e}");
            2
        }
    }
}
