//! The line discipline: turns received bytes into lines, with echo,
//! backspace, Ctrl-C (interrupt) and Ctrl-D (end of input).
//!
//! Rules: a line is complete at CR or LF (a CR LF pair counts once); a
//! line longer than `CONSOLE_LINE_MAX` is cut there; complete lines wait in
//! a bounded queue until a client reads them, and input beyond the queue
//! is dropped rather than growing anything; Ctrl-C
//! discards the line being typed; Ctrl-D on an empty line ends input for
//! good (reads then return 0), elsewhere it is ignored.
//!
//! Echo: input typed while a reader waits is echoed as it comes (a person
//! at the prompt); input typed ahead is echoed when a reader takes it, so
//! a script piped in shows up interleaved with the output it causes, as
//! if typed at each prompt. Bytes not yet shown are always a suffix of the
//! queue (a reader only waits when the queue is empty).

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
    /// How much of `typing` has been echoed.
    typing_shown: usize,
    /// Complete lines, each ending with "\n".
    ready: ArrayVec<u8, 4096>,
    /// How many bytes at the end of `ready` have not been echoed yet.
    ready_unshown: usize,
    last_was_cr: bool,
    pub ended: bool,
}

impl Line {
    pub const fn new() -> Line {
        Line {
            typing: ArrayVec::new_const(),
            typing_shown: 0,
            ready: ArrayVec::new_const(),
            ready_unshown: 0,
            last_was_cr: false,
            ended: false,
        }
    }

    /// Takes one received byte; `live` says a reader waits (echo now);
    /// `echo` receives what the terminal should show.
    pub fn receive(&mut self, byte: u8, live: bool, echo: &mut ArrayVec<u8, 64>) -> Event {
        let after_cr = core::mem::replace(&mut self.last_was_cr, byte == b'\r');
        if self.ended {
            return Event::Nothing;
        }
        if live {
            self.show_typing(echo);
        }
        match byte {
            b'\n' if after_cr => Event::Nothing,
            b'\r' | b'\n' => {
                if live {
                    let _ = echo.try_push(b'\n');
                }
                self.finish_line(live)
            }
            CTRL_C => {
                self.typing.clear();
                self.typing_shown = 0;
                if live {
                    let _ = echo.try_extend_from_slice(b"^C\n");
                }
                Event::Interrupt
            }
            CTRL_D if self.typing.is_empty() => {
                self.ended = true;
                Event::EndOfInput
            }
            CTRL_D => Event::Nothing,
            BACKSPACE | DELETE => {
                if self.typing.pop().is_some() && self.typing_shown > self.typing.len() {
                    self.typing_shown = self.typing.len();
                    let _ = echo.try_extend_from_slice(b"\x08 \x08");
                }
                Event::Nothing
            }
            b if b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80 => {
                let mut event = Event::Nothing;
                if self.typing.is_full() {
                    // Cut an over-long line where it is.
                    event = self.finish_line(live);
                }
                let _ = self.typing.try_push(b);
                if live {
                    let _ = echo.try_push(b);
                    self.typing_shown = self.typing.len();
                }
                event
            }
            _ => Event::Nothing,
        }
    }

    /// A reader has come: show what was typed ahead on the current line.
    pub fn show_typing(&mut self, echo: &mut ArrayVec<u8, 64>) {
        if self.typing_shown < self.typing.len() {
            let rest = &self.typing[self.typing_shown..];
            let n = rest.len().min(echo.remaining_capacity());
            let _ = echo.try_extend_from_slice(&rest[..n]);
            self.typing_shown += n;
        }
    }

    fn finish_line(&mut self, live: bool) -> Event {
        let unshown = if live {
            0
        } else {
            self.typing.len() - self.typing_shown + 1
        };
        self.typing_shown = 0;
        if self.ready.remaining_capacity() < self.typing.len() + 1 {
            self.typing.clear();
            return Event::Nothing;
        }
        let _ = self.ready.try_extend_from_slice(&self.typing);
        let _ = self.ready.try_push(b'\n');
        self.ready_unshown += unshown;
        self.typing.clear();
        Event::Line
    }

    /// Whether a complete line waits.
    pub fn has_line(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Takes the oldest complete line (at most `max` bytes of it; the rest
    /// stays for the next read) into `out`; returns its length and where in
    /// `out` the part never echoed starts (show `out[from..n]`).
    pub fn take_line(&mut self, max: usize, out: &mut [u8]) -> (usize, usize) {
        let end = self
            .ready
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.ready.len(), |i| i + 1);
        let n = end.min(max).min(out.len());
        out[..n].copy_from_slice(&self.ready[..n]);
        let shown = self.ready.len() - self.ready_unshown;
        let from = shown.min(n);
        self.ready_unshown -= n - from;
        self.ready.drain(..n);
        (n, from)
    }
}
