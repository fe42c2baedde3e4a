//! hello: the smallest MH program. It prints one line with its pid and
//! arguments, and exits with status 0.
#![no_std]
#![no_main]

use libmh::{Args, println, process};

libmh::entry!(main);

fn main(args: Args) -> i32 {
    println!(
        "hello from MH: pid {}, arguments '{}'",
        process::getpid(),
        args.as_str()
    );
    0
}
