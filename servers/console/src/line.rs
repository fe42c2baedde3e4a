//! The line discipline: turns received bytes into lines, with echo,
//! backspace, Ctrl-C (interrupt) and Ctrl-D (end of input).
//!
//! Rules: a line is complete at CR or LF (a CR LF pair counts once); a
//! line longer than `CONSOLE_LINE_MAX` is cut there; complete lines wait in
//! a bounded queue until a client reads them, and input beyond the queue
//! is dropped rather than growing anything; Ctrl-C
//! discards the line being typed; Ctrl-D on an empty line ends input for
//! good (reads then return 0), elsewhere it is ignored.

use abi::console::CONSOLE_LINE_MAX;
use arrayvec::ArrayVec;

const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;
const BACKSPACE: u8 = 0x08;
const DELETE: u8 = 0x7f;

/// What a received byte did, beyond filling the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Nothing,
    /// A line was completed (it is in the queue).
    Line,
    /// Ctrl-C: the line being typed was discarded.
    Interrupt,
    /// Ctrl-D on an empty line: input has ended.
    EndOfInput,
}

pub struct Line {
    typing: ArrayVec<u8, { CONSOLE_LINE_MAX as usize }>,
    /// Complete lines, each ending with "\n".
    ready: ArrayVec<u8, 4096>,
    last_was_cr: bool,
    pub ended: bool,
}

impl Line {
    pub const fn new() -> Line {
        Line {
            typing: ArrayVec::new_const(),
            ready: ArrayVec::new_const(),
            last_was_cr: false,
            ended: false,
        }
    }

    /// Takes one received byte; `echo` receives what the terminal should
    /// show.
    pub fn receive(&mut self, byte: u8, echo: &mut ArrayVec<u8, 64>) -> Event {
        let after_cr = core::mem::replace(&mut self.last_was_cr, byte == b'\r');
        if self.ended {
            return Event::Nothing;
        }
        match byte {
            b'\n' if after_cr => Event::Nothing,
            b'\r' | b'\n' => {
                let _ = echo.try_push(b'\n');
                self.finish_line()
            }
            CTRL_C => {
                self.typing.clear();
                let _ = echo.try_extend_from_slice(b"^C\n");
                Event::Interrupt
            }
            CTRL_D if self.typing.is_empty() => {
                self.ended = true;
                Event::EndOfInput
            }
            CTRL_D => Event::Nothing,
            BACKSPACE | DELETE => {
                if self.typing.pop().is_some() {
                    let _ = echo.try_extend_from_slice(b"\x08 \x08");
                }
                Event::Nothing
            }
            b if b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80 => {
                if self.typing.is_full() {
                    // Cut an over-long line where it is.
                    let event = self.finish_line();
                    let _ = self.typing.try_push(b);
                    let _ = echo.try_push(b);
                    return event;
                }
                let _ = self.typing.try_push(b);
                let _ = echo.try_push(b);
                Event::Nothing
            }
            _ => Event::Nothing,
        }
    }

    fn finish_line(&mut self) -> Event {
        if self.ready.remaining_capacity() < self.typing.len() + 1 {
            self.typing.clear();
            return Event::Nothing;
        }
        let _ = self.ready.try_extend_from_slice(&self.typing);
        let _ = self.ready.try_push(b'\n');
        self.typing.clear();
        Event::Line
    }

    /// Whether a complete line waits.
    pub fn has_line(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Takes the oldest complete line (at most `max` bytes of it; the rest
    /// stays for the next read) into `out`; returns its length.
    pub fn take_line(&mut self, max: usize, out: &mut [u8]) -> usize {
        let end = self
            .ready
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.ready.len(), |i| i + 1);
        let n = end.min(max).min(out.len());
        out[..n].copy_from_slice(&self.ready[..n]);
        self.ready.drain(..n);
        n
    }
}
