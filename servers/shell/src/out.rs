//! Output through the console device, a line at a time: `say!` formats
//! into a line buffer and writes it with one console write, so the
//! shell's lines never interleave with other programs' output.

use core::fmt::{self, Write};
use libmh::console::Console;

pub struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    pub const fn new() -> Line {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }

    pub fn send(&mut self, console: &Console) {
        let _ = console.write(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                // An over-long line is cut, not lost.
                return Ok(());
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Writes one formatted line (no newline added) to the console.
pub fn say(console: &Console, args: fmt::Arguments<'_>) {
    let mut line = Line::new();
    let _ = line.write_fmt(args);
    line.send(console);
}

#[macro_export]
macro_rules! say {
    ($console:expr, $($arg:tt)*) => { $crate::out::say($console, format_args!($($arg)*)) };
}
