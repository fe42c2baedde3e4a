//! A client of the console device (`servers/console`, protocol in
//! `abi::console`): whole writes that never interleave with other
//! clients', and line input with Ctrl-C.
//!
//! Rules: one `Console` per process at a time — its two buffers live at a
//! fixed place (`CONSOLE_AREA`), mapped by `open` and exported to the
//! device; a forked child inherits the mapping but not the device's view
//! of it, so it calls `open` again (which replaces both). Every call waits
//! for the server's answer and returns its result.

use crate::dev::Handle;
use crate::typed::{self, Client};
use crate::{process, vm};
use abi::Error;
use abi::console::*;

type Port = typed::Console;

/// The name the console server registers.
pub const DEVICE_NAME: &str = <typed::Console as typed::Class>::NAME;

/// Where the output and input buffers live (one page each).
const CONSOLE_AREA: u64 = 0x0000_7d00_0000_0000;
const PAGE: u64 = 4096;

/// What a read saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// A line of this many bytes (with its "\n", unless it was cut).
    Line(usize),
    /// Input has ended (Ctrl-D on an empty line, or the end of piped input).
    End,
    /// Ctrl-C was typed while this client waited; the read is still
    /// pending at the server and completes on a later `read_line`.
    Interrupted,
}

pub struct Console {
    h: typed::Handle<Port, Client>,
    done: u32,
    interrupt: u32,
    reading: bool,
}

impl Console {
    /// Attaches the console, delivering its lines as vectors `done` and
    /// `interrupt` (distinct, 0..63, not used for anything else).
    pub fn open(done: u32, interrupt: u32) -> Result<Console, Error> {
        let h = typed::Handle::<Port, Client>::attach()?;
        let set_up = (|| {
            let _ = vm::unmap(CONSOLE_AREA, 2 * PAGE);
            vm::map(CONSOLE_AREA, 2 * PAGE, vm::PROT_RW)?;
            // SAFETY: the two pages were just mapped read-write for the
            // console alone; nothing else in this process refers to them.
            let (out, input) = unsafe { (buffer(0), buffer(1)) };
            let out_iova = h.export(out)?;
            let in_iova = h.export(input)?;
            h.map_line(Port::DONE, done)?;
            h.map_line(Port::INTERRUPT, interrupt)?;
            h.write(Port::OUT_BUFFER, out_iova)?;
            h.write(Port::IN_BUFFER, in_iova)
        })();
        match set_up {
            Ok(()) => Ok(Console {
                h,
                done,
                interrupt,
                reading: false,
            }),
            Err(e) => {
                let _ = h.detach();
                Err(e)
            }
        }
    }

    /// Writes `bytes` (in pieces of `CONSOLE_WRITE_MAX`); each piece goes
    /// out whole.
    pub fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        for piece in bytes.chunks(CONSOLE_WRITE_MAX as usize) {
            // SAFETY: the output page is ours (see `open`) and no other
            // reference to it lives across this call.
            let out = unsafe { buffer(0) };
            out[..piece.len()].copy_from_slice(piece);
            self.h
                .write_wait(Port::WRITE, piece.len() as u64, 1 << self.done)?;
            result(self.h.read(Port::WRITE_RESULT)?)?;
        }
        Ok(())
    }

    /// Makes this client the one Ctrl-C interrupts (reading a line does
    /// that too).
    pub fn take_foreground(&self) -> Result<(), Error> {
        self.h.write_wait(Port::FOREGROUND, 0, 1 << self.done)?;
        result(self.h.read(Port::WRITE_RESULT)?).map(|_| ())
    }

    /// Reads one line into `buf` (at most `CONSOLE_LINE_MAX` bytes).
    pub fn read_line(&mut self, buf: &mut [u8]) -> Result<Read, Error> {
        let max = buf.len().min(CONSOLE_LINE_MAX as usize) as u64;
        if max == 0 {
            return Err(Error::InvalidArgument);
        }
        let mask = (1 << self.done) | (1 << self.interrupt);
        let got = if self.reading {
            process::irq_wait(mask)?
        } else {
            self.reading = true;
            self.h.write_wait(Port::READ, max, mask)?
        };
        if got & (1 << self.done) == 0 {
            return Ok(Read::Interrupted);
        }
        self.reading = false;
        let n = result(self.h.read(Port::READ_RESULT)?)? as usize;
        if n == 0 {
            return Ok(Read::End);
        }
        // SAFETY: the input page is ours; the server wrote it by DMA
        // before raising DONE.
        let input = unsafe { buffer(1) };
        // The count is the server's word: never more than was asked for,
        // nor than the page holds.
        let n = n.min(buf.len()).min(input.len());
        buf[..n].copy_from_slice(&input[..n]);
        Ok(Read::Line(n))
    }

    /// The untyped handle (for tests that must send what the typed one
    /// cannot).
    pub fn handle(&self) -> Handle {
        self.h.raw()
    }

    /// Detaches the console (the buffers stay mapped until the next open).
    pub fn close(self) -> Result<(), Error> {
        self.h.detach()
    }
}

/// Waits until the console has put everything the kernel log holds now on
/// the wire (no-op without a console): for a program about to power the
/// machine off. `vector` is used for the wait and must be otherwise unused.
pub fn sync(vector: u32) -> Result<(), Error> {
    let h = match typed::Handle::<Port, typed::ReadWriteIrq>::attach() {
        Ok(h) => h,
        Err(Error::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    let synced = h
        .map_line(Port::DONE, vector)
        .and_then(|()| h.write_wait(Port::SYNC, 0, 1 << vector));
    let _ = h.detach();
    synced.map(|_| ())
}

/// Decodes a result word of the console's I/O space.
fn result(word: u64) -> Result<u64, Error> {
    if word & CONSOLE_RESULT_ERROR != 0 {
        return Err(Error::from_code((word & 0xffff_ffff) as u32).unwrap_or(Error::NotSupported));
    }
    Ok(word)
}

/// Page `i` of the console area.
///
/// # Safety
/// The area must be mapped (by `Console::open`), and the caller must not
/// hold another reference to the same page.
unsafe fn buffer(i: u64) -> &'static mut [u8] {
    // SAFETY: per the function's contract.
    unsafe { core::slice::from_raw_parts_mut((CONSOLE_AREA + i * PAGE) as *mut u8, PAGE as usize) }
}
