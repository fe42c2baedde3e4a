//! The `init` device: init's control port for the session's programs
//! (the shell): stopping a server init supervises, which init then
//! restarts as the manifest says.
//!
//! Rules: only a program init started (a module without `restart`) may
//! ask, and only about modules init started; anyone else gets
//! `AccessDenied`, an unknown pid `NotFound`. All ports take size 8.

/// out: stop (kill) the module running as this pid; answered with the
/// result at `INIT_IO_RESULT` and line `INIT_IRQ_DONE`.
pub const INIT_PORT_STOP: u32 = 0;
/// I/O space: the last result (0, or `INIT_RESULT_ERROR | code`).
pub const INIT_IO_RESULT: u32 = 0;
/// Bytes of I/O space per client.
pub const INIT_IOSPACE_SIZE: u32 = 8;
/// IRQ line: a request was answered.
pub const INIT_IRQ_DONE: u32 = 0;
/// Set in a result word that carries an `Error` code (bit 62: `port_in`
/// cannot return words with bit 63 set).
pub const INIT_RESULT_ERROR: u64 = 0x4000_0000_0000_0000;
