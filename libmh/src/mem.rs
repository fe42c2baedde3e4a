//! The mem device's client (`abi::mem`, docs/devices/mem.md): asking for
//! more reserve, reading usage, and — for the mem server's supervisor —
//! setting ceilings and limits.
//!
//! [`top_up`] is what libmh itself uses when the kernel refuses a page
//! with `OutOfMemory` (the allocator, and the fault handler growing the
//! heap and stack regions): it attaches `mem` once per process, on first
//! need, and keeps the handle (with CLONE, so a forked child shares the
//! connection as its own client; close-on-exec, so a new program starts
//! without it).
//!
//! Rules: every request is a `port_out_wait` on the reply vector, so a
//! reply is never left pending; libmh's own connection waits on
//! [`LIBMH_VECTOR`], which programs must not use for anything else; the
//! server, not this code, decides what a process may have.

use crate::dev::{self, Handle, REGISTRY};
use abi::Error;
use abi::kdev::MEMPOOL_UNLIMITED;
use abi::mem::*;
use core::sync::atomic::{AtomicU64, Ordering};

/// The name the mem server registers.
pub const NAME: &str = "mem";
/// The vector libmh's own mem connection takes its replies on.
pub const LIBMH_VECTOR: u32 = 61;
/// Frames [`top_up`] asks for at least (64 KiB).
pub const TOP_UP_BATCH: u64 = 16;

/// A process's memory as the mem server saw it at its last request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Frames it holds.
    pub used: u64,
    /// Its reserve limit in frames (None: no limit).
    pub limit: Option<u64>,
    /// The most its limit may be raised to.
    pub ceiling: u64,
}

/// An open mem device.
#[derive(Clone, Copy, Debug)]
pub struct Mem {
    handle: Handle,
    vector: u32,
}

impl Mem {
    /// Attaches `mem`; replies come on `vector`. The handle follows `fork`
    /// and is dropped by `exec`.
    pub fn open(vector: u32) -> Result<Mem, Error> {
        Mem::open_at(REGISTRY, NAME, vector)
    }

    /// [`Mem::open`] for a device called `name`, found through `registry`.
    pub fn open_at(registry: Handle, name: &str, vector: u32) -> Result<Mem, Error> {
        let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ | dev::RIGHT_CLONE;
        let handle = dev::attach(registry, name, rights | dev::ATTACH_CLOSE_ON_EXEC)?;
        match handle.irq_map(MEM_IRQ_REPLY, vector) {
            Ok(()) => Ok(Mem { handle, vector }),
            Err(e) => {
                let _ = handle.detach();
                Err(e)
            }
        }
    }

    /// The device handle (for raw port access).
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// One request: writes `value` to `port` and waits for the result.
    pub fn request(&self, port: u32, value: u64) -> Result<u64, Error> {
        self.handle
            .port_out_wait(port, 8, value, 1 << self.vector)?;
        mem_decode_result(self.handle.port_in(MEM_IO_RESULT, 8)?)
    }

    /// Asks for `frames` more reserve; returns the new limit.
    pub fn grant(&self, frames: u64) -> Result<u64, Error> {
        self.request(MEM_PORT_GRANT, frames)
    }

    /// The caller's usage, fresh from the server.
    pub fn usage(&self) -> Result<Usage, Error> {
        self.request(MEM_PORT_USAGE, 0)?;
        let limit = self.handle.port_in(MEM_IO_LIMIT, 8)?;
        Ok(Usage {
            used: self.handle.port_in(MEM_IO_USED, 8)?,
            limit: (limit < MEMPOOL_UNLIMITED).then_some(limit),
            ceiling: self.handle.port_in(MEM_IO_CEILING, 8)?,
        })
    }

    /// Supervisor only: sets process `pid`'s ceiling.
    pub fn set_ceiling(&self, pid: u32, frames: u64) -> Result<u64, Error> {
        self.request(MEM_PORT_SELECT, pid as u64)?;
        self.request(MEM_PORT_CEILING, frames)
    }

    /// Supervisor only: clears process `pid`'s ceiling (do it when the
    /// process has ended, before its pid is reused).
    pub fn clear_ceiling(&self, pid: u32) -> Result<(), Error> {
        self.set_ceiling(pid, 0).map(|_| ())
    }

    /// Supervisor only: sets process `pid`'s reserve limit (at most its
    /// ceiling).
    pub fn set_limit(&self, pid: u32, frames: u64) -> Result<u64, Error> {
        self.request(MEM_PORT_SELECT, pid as u64)?;
        self.request(MEM_PORT_LIMIT, frames)
    }

    /// Detaches the device.
    pub fn close(self) -> Result<(), Error> {
        self.handle.detach()
    }
}

/// libmh's own connection's handle, or `NONE`.
static CONNECTION: AtomicU64 = AtomicU64::new(NONE);
const NONE: u64 = u64::MAX;

/// libmh's own connection to the mem server, attached on first use.
pub fn connection() -> Result<Mem, Error> {
    let h = CONNECTION.load(Ordering::Relaxed);
    if h != NONE {
        return Ok(Mem {
            handle: Handle(h),
            vector: LIBMH_VECTOR,
        });
    }
    let m = Mem::open(LIBMH_VECTOR)?;
    CONNECTION.store(m.handle.0, Ordering::Relaxed);
    Ok(m)
}

/// Runs `f` on libmh's connection; if its server went away (and a new
/// one registered), attaches again once and runs `f` again.
pub fn with_connection<R>(f: impl Fn(Mem) -> Result<R, Error>) -> Result<R, Error> {
    let m = connection()?;
    match f(m) {
        Err(Error::DeviceGone) => {
            CONNECTION.store(NONE, Ordering::Relaxed);
            let _ = m.close();
            f(connection()?)
        }
        other => other,
    }
}

/// Asks the mem server for at least `frames` more reserve (at least
/// [`TOP_UP_BATCH`]); returns the new limit. `NotFound` when there is no
/// mem server; its refusal (`OutOfMemory`) otherwise.
pub fn top_up(frames: u64) -> Result<u64, Error> {
    let want = frames.clamp(TOP_UP_BATCH, MEM_GRANT_MAX);
    with_connection(|m| m.grant(want))
}
