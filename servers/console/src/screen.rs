//! What the terminal shows on its last line, so that kernel-log output
//! does not split a line a client is writing or a person is typing (the
//! shell's `mh> ` prompt and the input after it): everything the console
//! sends goes through here.
//!
//! Rules: clients' output and the echo of typed input are *line* bytes,
//! remembered from the last newline on; kernel-log output is *log* bytes.
//! Log output that arrives while a line is unfinished first erases that
//! line (`\r` and VT100 "erase line"), and once the log has ended its own
//! line the unfinished line is drawn again, so the log goes above the
//! prompt and the prompt with what was typed stays last. A line longer
//! than the memory kept cannot be redrawn: the log then starts on a line
//! of its own below it instead. Log output that ends mid-line (a partial
//! record) is ended with a newline before the next line bytes, which then
//! start with the redrawn line.

use crate::uart::Uart;
use arrayvec::ArrayVec;

/// `\r`, then VT100 EL (erase to the end of the line).
const ERASE_LINE: &[u8] = b"\r\x1b[K";
const BACKSPACE: u8 = 0x08;

pub struct Screen {
    pub uart: Uart,
    /// The unfinished line's bytes as shown (after the last newline).
    line: ArrayVec<u8, 512>,
    /// The unfinished line outgrew `line`: it cannot be redrawn.
    overflow: bool,
    /// The last log bytes sent did not end their line.
    log_open: bool,
}

impl Screen {
    pub fn new(uart: Uart) -> Screen {
        Screen {
            uart,
            line: ArrayVec::new(),
            overflow: false,
            log_open: false,
        }
    }

    /// A client's output or echoed input.
    pub fn line(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.log_open {
            self.uart.send(b"\n");
            self.log_open = false;
            self.redraw();
        }
        self.uart.send(bytes);
        for &b in bytes {
            self.remember(b);
        }
    }

    /// Kernel-log output.
    pub fn log(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let unfinished = !self.line.is_empty() || self.overflow;
        if !self.log_open && unfinished {
            if self.overflow {
                // Too long to draw again: leave it, and go below it.
                self.uart.send(b"\n");
                self.line.clear();
                self.overflow = false;
            } else {
                self.uart.send(ERASE_LINE);
            }
        }
        self.uart.send(bytes);
        self.log_open = !bytes.ends_with(b"\n");
        if !self.log_open {
            self.redraw();
        }
    }

    fn redraw(&mut self) {
        let line = core::mem::take(&mut self.line);
        self.uart.send(&line);
        self.line = line;
    }

    /// Tracks one shown byte: a newline ends the line, a backspace takes
    /// back the last byte (the echo of a deletion is `\x08 \x08`).
    fn remember(&mut self, b: u8) {
        match b {
            b'\n' => {
                self.line.clear();
                self.overflow = false;
            }
            BACKSPACE => {
                self.line.pop();
            }
            _ if self.overflow => {}
            _ => {
                if self.line.try_push(b).is_err() {
                    self.overflow = true;
                }
            }
        }
    }
}
