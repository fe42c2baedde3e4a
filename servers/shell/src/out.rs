//! Output through the console device, a line at a time: `say!` formats
//! into a line buffer and writes it with one console write, so the
//! shell's lines never interleave with other programs' output.

use core::fmt::{self, Write};
use libmh::console::Console;
use libmh::print::FixedBuf;

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
