//! Draining the kernel log (the `klog` device) to the UART: every line the
//! kernel and `log_write` produce after the console took the UART.
//!
//! Rules: the first console starts where the log stood before the UART
//! was claimed (the kernel printed everything before that itself); a
//! restarted one goes on from klog's shared mark, which each drain moves
//! to what is on the wire; bytes the ring lost before they could be read
//! are reported, not silently skipped; one drain sends at most
//! `DRAIN_MAX` bytes and then lets the server serve its clients (a process
//! that floods the log cannot keep the console from its requests or from
//! typed input: the rest follows on the next pass, which the drain asks
//! for itself).

use crate::screen::Screen;
use abi::kdev::*;
use libmh::Error;
use libmh::dev::{self, Handle, REGISTRY};

const CHUNK: usize = 1024;
/// The most bytes one drain sends before it gives the server back.
const DRAIN_MAX: usize = 16 * CHUNK;

/// The buffer klog copies into (the caller keeps it for the drain's life).
pub type Buffer = [u8; CHUNK];

pub struct Drain<'a> {
    h: Handle,
    iova: u64,
    buf: &'a mut Buffer,
    /// The vector klog's line is delivered as (raised again by a drain
    /// that stopped with data left).
    vector: u32,
}

impl<'a> Drain<'a> {
    /// Attaches klog at its current end, reading into `buf`, and delivers
    /// its growth as `vector`.
    pub fn open(vector: u32, buf: &'a mut Buffer) -> Result<Drain<'a>, Error> {
        let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA | dev::RIGHT_IRQ;
        let h = dev::attach(REGISTRY, "klog", rights)?;
        let iova = h.export(buf)?;
        // A console that went before us left its position in the mark: go
        // on from there (bytes the ring lost meanwhile are reported).
        // Otherwise start at the end: the kernel printed the rest itself.
        let end = h.port_in(KLOG_PORT_WRITTEN, 8)?;
        let mark = h.port_in(KLOG_PORT_MARK, 8)?;
        let start = if mark > 0 && mark <= end { mark } else { end };
        h.port_out(KLOG_PORT_POS, 8, start)?;
        h.port_out(KLOG_PORT_LEN, 8, CHUNK as u64)?;
        h.irq_map(KLOG_IRQ_DATA, vector)?;
        Ok(Drain {
            h,
            iova,
            buf,
            vector,
        })
    }

    /// Copies what the log gained to the screen, up to `DRAIN_MAX` bytes;
    /// if more is waiting, it raises klog's vector on the console itself
    /// so that the server comes back for it after its other work.
    pub fn drain(&mut self, screen: &mut Screen) {
        let mut sent = 0;
        loop {
            if sent >= DRAIN_MAX {
                let _ = libmh::process::irq_raise(self.vector);
                return;
            }
            let n = match self
                .h
                .port_out(KLOG_PORT_READ, 8, self.iova)
                .and_then(|()| self.h.port_in(KLOG_PORT_DONE, 4))
            {
                Ok(n) => n as usize,
                Err(_) => return,
            };
            if let Ok(lost) = self.h.port_in(KLOG_PORT_LOST, 8)
                && lost > 0
            {
                screen.log(b"\n[console: kernel log overran; lines lost]\n");
            }
            if n == 0 {
                return;
            }
            screen.log(&self.buf[..n.min(CHUNK)]);
            sent += n;
            if let Ok(pos) = self.h.port_in(KLOG_PORT_POS_NOW, 8) {
                let _ = self.h.port_out(KLOG_PORT_MARK, 8, pos);
            }
        }
    }
}
