//! Output through the console device, a line at a time: `say!` formats
//! into a line buffer and writes it with one console write, so the
//! shell's lines never interleave with other programs' output; a table
//! (`Block`) is gathered into one write, so that no log line lands
//! between its rows.

use core::fmt::{self, Write};
use libmh::console::Console;
use libmh::print::FixedBuf;

/// Bytes one console write takes (`abi::console::CONSOLE_WRITE_MAX`).
const WRITE_MAX: usize = abi::console::CONSOLE_WRITE_MAX as usize;

/// Writes one formatted line (no newline added) to the console; a line
/// longer than 512 bytes is cut.
pub fn say(console: &Console, args: fmt::Arguments<'_>) {
    let mut line = FixedBuf::<512>::new();
    let _ = line.write_fmt(args);
    let _ = console.write(line.bytes());
}

#[macro_export]
macro_rules! say {
    ($console:expr, $($arg:tt)*) => { $crate::out::say($console, format_args!($($arg)*)) };
}

/// Lines gathered for one console write; a table longer than one write
/// goes out in several, each ending at a line's end. Dropping it writes
/// what is left.
pub struct Block<'a> {
    console: &'a Console,
    buf: [u8; WRITE_MAX],
    len: usize,
}

impl<'a> Block<'a> {
    pub fn new(console: &'a Console) -> Block<'a> {
        Block {
            console,
            buf: [0; WRITE_MAX],
            len: 0,
        }
    }

    /// Adds one formatted line (cut at 512 bytes, like `say`).
    pub fn line(&mut self, args: fmt::Arguments<'_>) {
        let mut line = FixedBuf::<512>::new();
        let _ = line.write_fmt(args);
        let bytes = line.bytes();
        if self.len + bytes.len() > WRITE_MAX {
            self.flush();
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn flush(&mut self) {
        if self.len > 0 {
            let _ = self.console.write(&self.buf[..self.len]);
        }
        self.len = 0;
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}
