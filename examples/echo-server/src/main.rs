//! echo-server: the smallest useful user device. It registers `echo`;
//! a value written to port 0 comes back at offset 0 of the writer's I/O
//! space, with IRQ line 0 raised. Writing port 1 makes the server exit
//! with status 3 on purpose, to show init restarting it.
#![no_std]
#![no_main]

use abi::userdev::REQUEST_OUT;
use libmh::{Args, dev, println};

libmh::entry!(main);

/// Port 0: echo the value.
const PORT_ECHO: u32 = 0;
/// Port 1: exit at once (for the supervision demo).
const PORT_CRASH: u32 = 1;

fn main(_args: Args) -> i32 {
    // One IRQ line, 8 bytes of I/O space per client, vector 1 for us.
    let echo = match dev::create("echo", 1, 8, 1) {
        Ok(d) => d,
        Err(e) => {
            println!("echo-server: cannot register 'echo': {e}");
            return 1;
        }
    };
    let mut next = echo.poll();
    loop {
        let request = match next {
            Ok(r) => r,
            Err(e) => {
                println!("echo-server: poll failed: {e}");
                return 2;
            }
        };
        next = match (request.kind, request.port) {
            (REQUEST_OUT, PORT_ECHO) => {
                // Answer (I/O space + line 0) and wait for the next, in one call.
                echo.reply_poll(request.client, 0, 8, request.value, Some(0))
            }
            (REQUEST_OUT, PORT_CRASH) => return 3,
            // Opens, closes, forks and unknown ports need no answer.
            _ => echo.poll(),
        };
    }
}
