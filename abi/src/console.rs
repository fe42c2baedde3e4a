//! The console device (`servers/console`, registered as `console`): the
//! serial line, shared.
//!
//! Output: a client exports a buffer, names it once with
//! `CONSOLE_PORT_OUT_BUFFER`, then rings `CONSOLE_PORT_WRITE` with a
//! length. The server copies those bytes by DMA and writes them all to the
//! UART before it looks at any other request, so one write is never
//! interleaved with another client's; libmh writes whole lines. The
//! result lands at `CONSOLE_IO_WRITE_RESULT` and line
//! `CONSOLE_IRQ_DONE` is raised.
//!
//! Input: the server keeps a line discipline (echo, backspace, Ctrl-C,
//! Ctrl-D). A client names an input buffer with `CONSOLE_PORT_IN_BUFFER`
//! and asks for a line with `CONSOLE_PORT_READ` (value: the most bytes it
//! takes); when a line is complete the server copies it (with its
//! newline) into the buffer, puts the length at `CONSOLE_IO_READ_RESULT`
//! and raises `CONSOLE_IRQ_DONE`. The foreground client is the last one
//! to ask for a line or to claim it with `CONSOLE_PORT_FOREGROUND`: Ctrl-C
//! discards the line being typed and raises `CONSOLE_IRQ_INTERRUPT` on it. Ctrl-D on an empty line is end of input:
//! the pending read (and every later one) completes with length 0.
//!
//! Results are byte counts, or `CONSOLE_RESULT_ERROR | code` with an
//! `Error` code. All ports take size 8.

/// out: the iova of the client's output buffer (inside an export).
pub const CONSOLE_PORT_OUT_BUFFER: u32 = 0;
/// out: write this many bytes of the output buffer (at most
/// `CONSOLE_WRITE_MAX`).
pub const CONSOLE_PORT_WRITE: u32 = 1;
/// out: the iova of the client's input buffer (inside an export).
pub const CONSOLE_PORT_IN_BUFFER: u32 = 2;
/// out: read one line of at most this many bytes into the input buffer.
pub const CONSOLE_PORT_READ: u32 = 3;
/// out (value ignored): make this client the foreground one, which Ctrl-C
/// interrupts (as asking for a line does); answered with DONE and a
/// write result of 0.
pub const CONSOLE_PORT_FOREGROUND: u32 = 4;
/// out (value ignored): answered (DONE, write result 0) once everything
/// the kernel log held when the request was taken is on the wire — for a
/// last word before powering off.
pub const CONSOLE_PORT_SYNC: u32 = 5;

/// I/O space: the result of the last write.
pub const CONSOLE_IO_WRITE_RESULT: u32 = 0;
/// I/O space: the result of the last read (0 at end of input).
pub const CONSOLE_IO_READ_RESULT: u32 = 8;
/// Bytes of I/O space per client.
pub const CONSOLE_IOSPACE_SIZE: u32 = 16;

/// IRQ line: a write or read finished (its result is in the I/O space).
pub const CONSOLE_IRQ_DONE: u32 = 0;
/// IRQ line: Ctrl-C was typed while this client was in the foreground.
pub const CONSOLE_IRQ_INTERRUPT: u32 = 1;
/// IRQ lines the console device has.
pub const CONSOLE_IRQ_LINES: u32 = 2;

/// The most bytes one write carries.
pub const CONSOLE_WRITE_MAX: u64 = 4096;
/// The longest input line (longer input is cut into lines of this size).
pub const CONSOLE_LINE_MAX: u64 = 512;
/// Set in a result word when it carries an `Error` code instead of a count
/// (bit 62: `port_in` cannot return words with bit 63 set).
pub const CONSOLE_RESULT_ERROR: u64 = 0x4000_0000_0000_0000;
