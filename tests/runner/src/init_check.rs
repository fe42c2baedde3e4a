//! The `init-check` role: run from the shell (`run mhtest init-check` in
//! the selftest-shell image), it checks what init's control device
//! refuses — a stop asked by a process init did not start itself, and an
//! unknown port — and prints `init-check: ok` or what went wrong.

use abi::Error;
use abi::init::{INIT_IO_RESULT, INIT_IRQ_DONE};
use libmh::dev::{self, REGISTRY};
use libmh::println;

/// The vector init's answers arrive on.
const V_DONE: u32 = 7;

/// Writes `value` to `port` of the init device and returns init's answer.
fn ask(port: u32, value: u64) -> Result<(), Error> {
    let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ;
    let h = dev::attach(REGISTRY, "init", rights)?;
    let answer = h
        .irq_map(INIT_IRQ_DONE, V_DONE)
        .and_then(|()| h.port_out_wait(port, 8, value, 1 << V_DONE))
        .and_then(|_| h.port_in(INIT_IO_RESULT, 8));
    let _ = h.detach();
    libmh::init::decode(answer?)
}

pub fn run() -> i32 {
    // This process is the shell's child, not a module init started: init
    // refuses to stop anything for it, even a module it supervises (pid 2
    // is the console in every image with servers/init).
    let stop = libmh::init::stop(2, V_DONE);
    let unknown_port = ask(1, 0);
    let huge_pid = ask(abi::init::INIT_PORT_STOP, u64::MAX);
    println!("init-check: stop {stop:?}, unknown port {unknown_port:?}, pid 2^64-1 {huge_pid:?}");
    if stop == Err(Error::AccessDenied)
        && unknown_port == Err(Error::InvalidArgument)
        && huge_pid == Err(Error::AccessDenied)
    {
        println!("init-check: ok");
        0
    } else {
        println!("init-check: FAILED");
        1
    }
}
