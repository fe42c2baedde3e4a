//! The `console-check` role (image `selftest-console`): exercises the
//! console server end to end. Three forked writers send long lines at
//! once (the host checks that each arrives whole); then the input the
//! host types after "ready for input" must come back as lines, with
//! backspace applied, Ctrl-C reported and discarding its line, and Ctrl-D
//! ending the input. In between, a kernel-log line written while a line
//! is unfinished must go above it, the unfinished line drawn again.

use abi::Error;
use core::fmt::Write;
use libmh::console::{Console, Read};
use libmh::print::FixedBuf;
use libmh::process;

const DONE: u32 = 6;
const INTERRUPT: u32 = 7;
/// The vector `console::sync`'s answer comes on.
const SYNC: u32 = 8;
pub const WRITERS: u32 = 3;
pub const LINES: u32 = 4;

/// Writer `k`'s line `i`: long enough to take many UART FIFO loads.
fn long_line(k: u32, i: u32, out: &mut FixedBuf<400>) {
    out.clear();
    let _ = write!(out, "writer {k} line {i} ");
    for j in 0..260 {
        let _ = out.write_char((b'a' + ((k * 7 + i + j) % 26) as u8) as char);
    }
    let _ = out.write_str(" end\n");
}

fn open() -> Result<Console, Error> {
    let mut last = Error::NotFound;
    for _ in 0..100_000 {
        match Console::open(DONE, INTERRUPT) {
            Ok(c) => return Ok(c),
            Err(e @ Error::NotFound) => last = e,
            Err(e) => return Err(e),
        }
        process::yield_now();
    }
    Err(last)
}

fn writer(k: u32) -> i32 {
    let Ok(c) = open() else { return 10 };
    let mut line = FixedBuf::<400>::new();
    for i in 0..LINES {
        long_line(k, i, &mut line);
        if c.write(line.bytes()).is_err() {
            return 11;
        }
        process::yield_now();
    }
    0
}

fn say(c: &Console, text: &str) {
    let _ = c.write(text.as_bytes());
}

pub fn run() -> i32 {
    for k in 0..WRITERS {
        match process::fork() {
            Ok(0) => process::exit(writer(k) as i64),
            Ok(_) => {}
            Err(_) => return 1,
        }
    }
    let mut failed = false;
    for _ in 0..WRITERS {
        match process::wait_child() {
            Ok(st) if st.code == 0 => {}
            _ => failed = true,
        }
    }
    let Ok(mut c) = open() else { return 2 };
    if failed {
        say(&c, "console-check: a writer failed\n");
        return 3;
    }
    say(&c, "console-check: writers done\n");
    // A log line while a client's line is unfinished (a prompt) goes
    // above it, and the unfinished line is drawn again after it: the host
    // looks for the erase before the log line and for the whole line.
    say(&c, "console-check: prompt> ");
    libmh::println!("console-check: a log line");
    if let Err(e) = libmh::console::sync(SYNC) {
        libmh::println!("console-check: sync failed: {e}");
        return 8;
    }
    say(&c, "typed\n");
    // Bad requests get errors and leave the server running.
    let h = c.handle();
    let r1 = h.port_out_wait(99, 8, 0, 1 << DONE);
    let r2 = h.port_in(0, 8);
    let bad = r1.is_ok() && r2.is_ok_and(|w| w & abi::console::CONSOLE_RESULT_ERROR != 0);
    let too_long = h
        .port_out_wait(abi::console::CONSOLE_PORT_WRITE, 8, 1 << 20, 1 << DONE)
        .is_ok()
        && h.port_in(0, 8)
            .is_ok_and(|w| w & abi::console::CONSOLE_RESULT_ERROR != 0);
    if !(bad && too_long) {
        libmh::println!("console-check: bad requests were not refused ({bad}, {too_long})");
        return 4;
    }
    if c.take_foreground().is_err() {
        say(&c, "console-check: cannot take the foreground\n");
        return 6;
    }
    say(&c, "console-check: ready for input\n");
    // Ctrl-C is a signal: it may arrive before the lines typed ahead of
    // it are read, so only the lines' order and the one interrupt count.
    let want: [&[u8]; 3] = [b"hello\n", b"world\n", b"after\n"];
    let (mut lines, mut interrupts, mut ok) = (0, 0, true);
    loop {
        let mut buf = [0u8; 64];
        match c.read_line(&mut buf) {
            Ok(Read::Line(n)) => {
                if want.get(lines) != Some(&&buf[..n]) {
                    libmh::println!("console-check: line {lines} is {:?}", &buf[..n]);
                    ok = false;
                }
                lines += 1;
            }
            Ok(Read::Interrupted) => {
                interrupts += 1;
                say(&c, "console-check: interrupted\n");
            }
            Ok(Read::End) => {
                say(&c, "console-check: end of input\n");
                break;
            }
            Err(e) => {
                libmh::println!("console-check: read failed: {e}");
                return 7;
            }
        }
        if lines + interrupts > 8 {
            break;
        }
    }
    ok &= lines == want.len() && interrupts == 1;
    if ok {
        say(&c, "console-check: all checks passed\n");
        0
    } else {
        5
    }
}
