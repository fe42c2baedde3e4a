//! `print!` and `println!`.
//!
//! Rules: one `println!` is one system call, so lines from different
//! processes never interleave mid-line (up to [`LINE_MAX`] bytes; longer
//! output is sent in pieces).

use core::fmt::{self, Write};

/// Bytes buffered before a write is forced.
pub const LINE_MAX: usize = 512;

/// Formats into a stack buffer and writes it with as few calls as possible.
pub struct LineWriter {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Default for LineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl LineWriter {
    pub const fn new() -> LineWriter {
        LineWriter {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            let _ = crate::process::log_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == LINE_MAX {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut w = LineWriter::new();
    let _ = w.write_fmt(args);
    w.flush();
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::print::_print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::print::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
