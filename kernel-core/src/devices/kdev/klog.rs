//! The `klog` kernel device: the kernel log ring, read by DMA into memory
//! the caller exported to its klog handle, with a data IRQ raised on
//! every listener when the log grows, and one shared mark.
//!
//! Rules: each handle reads from its own position; a reader that fell
//! behind the ring is told how many bytes it lost (`KLOG_PORT_LOST`), never
//! given stale bytes; a listener is one entry per (process, handle), paid
//! for by its process and dropped when the handle goes; the mark is a
//! position any holder may set, trusted for nothing but where a reader
//! may choose to start.

extern crate alloc;

use super::{KernelDevice, SIZE_4_8, SIZE_8, parts, require_size};
use crate::devices::calls::{Out, charge_heap, credit_heap};
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::process::Pid;
use crate::syscall::decode::{Handle, Vector};
use abi::Error;
use abi::kdev::*;
use alloc::vec::Vec;

/// Where a klog handle reads, and what its last read did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The log position of its next read.
    pub pos: u64,
    /// How many bytes a read copies at most.
    pub len: u64,
    /// Bytes the last read copied.
    pub done: u64,
    /// Bytes the last read found already overwritten.
    pub lost: u64,
}

super::attachment_state!(Cursor, Klog);

/// A process that wants the data IRQ through one of its handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listener {
    pid: Pid,
    handle: Handle,
    vector: u32,
}

/// What one listener costs its process.
pub const LISTENER_BYTES: u64 = 2 * core::mem::size_of::<Listener>() as u64;

/// What all klog handles share: the listeners and the mark.
#[derive(Default)]
pub struct Shared {
    listeners: Vec<Listener>,
    mark: u64,
}

impl Shared {
    pub const fn new() -> Shared {
        Shared {
            listeners: Vec::new(),
            mark: 0,
        }
    }

    /// Every listener as (process, handle, vector): the tests' view.
    #[cfg(test)]
    pub fn listeners(&self) -> Vec<(Pid, Handle, u32)> {
        self.listeners
            .iter()
            .map(|l| (l.pid, l.handle, l.vector))
            .collect()
    }
}

pub struct Klog;

impl KernelDevice for Klog {
    type State = Cursor;

    fn port_in<M: Machine>(
        k: &mut Kernel<M>,
        cursor: Cursor,
        port: u32,
        size: u64,
    ) -> Result<u64, Error> {
        require_size(size, SIZE_4_8)?;
        match port {
            KLOG_PORT_WRITTEN => Ok(M::log_written()),
            KLOG_PORT_DONE => Ok(cursor.done),
            KLOG_PORT_LOST => Ok(cursor.lost),
            KLOG_PORT_POS_NOW => Ok(cursor.pos),
            KLOG_PORT_MARK => {
                require_size(size, SIZE_8)?;
                Ok(k.devices.klog.mark)
            }
            _ => Err(Error::InvalidArgument),
        }
    }

    fn port_out<M: Machine>(
        k: &mut Kernel<M>,
        h: Handle,
        port: u32,
        size: u64,
        value: u64,
    ) -> Result<Out, Error> {
        match port {
            KLOG_PORT_MARK => {
                require_size(size, SIZE_8)?;
                k.devices.klog.mark = value;
                return Ok(Out::Done);
            }
            KLOG_PORT_POS | KLOG_PORT_LEN | KLOG_PORT_READ => {}
            _ => return Err(Error::InvalidArgument),
        }
        let at = parts::<Klog, M>(k, h)?;
        match port {
            KLOG_PORT_POS => {
                require_size(size, SIZE_8)?;
                at.state.pos = value;
            }
            KLOG_PORT_LEN => {
                require_size(size, SIZE_4_8)?;
                at.state.len = value;
            }
            _ => {
                require_size(size, SIZE_8)?;
                let want = at.state.len.min(M::LOG_RING_SIZE as u64);
                crate::export::check_writable(at.exports.iter(), value, want)?;
                let (mut pos, mut done, mut lost) = (at.state.pos, 0u64, 0u64);
                let mut chunk = [0u8; 1024];
                while done < want {
                    let n = ((want - done) as usize).min(chunk.len());
                    let (copied, next, skipped) = M::log_read(pos, &mut chunk[..n]);
                    if copied == 0 {
                        break;
                    }
                    crate::usercopy::copy_to_user::<M>(at.space, value + done, &chunk[..copied])?;
                    lost += skipped;
                    done += copied as u64;
                    pos = next;
                }
                *at.state = Cursor {
                    pos,
                    done,
                    lost,
                    ..*at.state
                };
            }
        }
        Ok(Out::Done)
    }

    fn irq_map<M: Machine>(
        k: &mut Kernel<M>,
        h: Handle,
        line: u64,
        vector: Vector,
    ) -> Result<(), Error> {
        if line != u64::from(KLOG_IRQ_DATA) {
            return Err(Error::InvalidArgument);
        }
        let pid = k.current_pid();
        let vector = vector.get();
        let listeners = &mut k.devices.klog.listeners;
        if let Some(l) = listeners.iter_mut().find(|l| (l.pid, l.handle) == (pid, h)) {
            l.vector = vector;
            return Ok(());
        }
        // A listener per klog handle: the process pays for its entry (the
        // list gives it back when the handle goes).
        charge_heap(k, pid, LISTENER_BYTES)?;
        let listeners = &mut k.devices.klog.listeners;
        if listeners.try_reserve(1).is_err() {
            credit_heap(k, pid, LISTENER_BYTES);
            return Err(Error::OutOfMemory);
        }
        listeners.push(Listener {
            pid,
            handle: h,
            vector,
        });
        Ok(())
    }
}

/// Drops the listeners `gone` selects (by process and handle), crediting
/// their processes; the list gives its memory back when it empties.
#[inline]
pub fn forget_listeners<M: Machine>(k: &mut Kernel<M>, gone: impl Fn(Pid, Handle) -> bool) {
    // Every detach and exit asks; most find no listener at all.
    if !k.devices.klog.listeners.is_empty() {
        forget_some(k, gone);
    }
}

fn forget_some<M: Machine>(k: &mut Kernel<M>, gone: impl Fn(Pid, Handle) -> bool) {
    let mut i = 0;
    while i < k.devices.klog.listeners.len() {
        let l = k.devices.klog.listeners[i];
        if !gone(l.pid, l.handle) {
            i += 1;
            continue;
        }
        k.devices.klog.listeners.swap_remove(i);
        credit_heap(k, l.pid, LISTENER_BYTES);
    }
    if k.devices.klog.listeners.is_empty() {
        k.devices.klog.listeners = Vec::new();
    }
}

/// Raises the data IRQ on every listener; called when the log grew.
pub fn notify_listeners<M: Machine>(k: &mut Kernel<M>) {
    for i in 0..k.devices.klog.listeners.len() {
        let l = k.devices.klog.listeners[i];
        k.raise(l.pid, l.vector);
    }
}
