//! The `mempool` kernel device (`abi::kdev::MEMPOOL_PORT_*`): frame
//! reserves and their limits, for supervisors (init) and the mem server.
//! Attaching it needs `RIGHT_SYSTEM` on the registry handle.
//!
//! A reserve is shared by a process and everything it forks; a supervisor
//! gives each module a reserve of its own at fork ([`Pool::stage_child`]),
//! so a module's processes together hold no more than its limit.

use crate::dev::{self, Handle, REGISTRY};
use abi::Error;
use abi::kdev::*;

/// A limit in frames: `None` for no limit.
pub type Limit = Option<u64>;

fn encode(limit: Limit) -> u64 {
    limit.map_or(MEMPOOL_UNLIMITED, |l| l.min(MEMPOOL_UNLIMITED - 1))
}

fn decode(word: u64) -> Limit {
    (word < MEMPOOL_UNLIMITED).then_some(word)
}

/// A mempool handle.
#[derive(Clone, Copy, Debug)]
pub struct Pool(pub Handle);

impl Pool {
    /// Attaches mempool (read and write).
    pub fn open() -> Result<Pool, Error> {
        dev::attach(REGISTRY, "mempool", dev::RIGHT_READ | dev::RIGHT_WRITE).map(Pool)
    }

    pub fn close(self) -> Result<(), Error> {
        self.0.detach()
    }

    /// Selects process `pid` for the calls below that act on one.
    pub fn select(self, pid: u32) -> Result<(), Error> {
        self.0.port_out(MEMPOOL_PORT_SELECT, 4, pid as u64)
    }

    /// Frames the selected process's reserve holds.
    pub fn used(self) -> Result<u64, Error> {
        self.0.port_in(MEMPOOL_PORT_USED, 8)
    }

    /// Its limit.
    pub fn limit(self) -> Result<Limit, Error> {
        self.0.port_in(MEMPOOL_PORT_LIMIT_NOW, 8).map(decode)
    }

    /// Sets its limit.
    pub fn set_limit(self, limit: Limit) -> Result<(), Error> {
        self.0.port_out(MEMPOOL_PORT_LIMIT, 8, encode(limit))
    }

    /// Processes its reserve counts, and its process limit.
    pub fn processes(self) -> Result<(u32, u32), Error> {
        Ok((
            self.0.port_in(MEMPOOL_PORT_PROCESSES, 4)? as u32,
            self.0.port_in(MEMPOOL_PORT_PROCESS_LIMIT_NOW, 4)? as u32,
        ))
    }

    /// Sets its process limit.
    pub fn set_process_limit(self, n: u32) -> Result<(), Error> {
        self.0.port_out(MEMPOOL_PORT_PROCESS_LIMIT, 4, n as u64)
    }

    /// Gives the selected process a reserve of its own, limited to
    /// `limit` (what it holds moves with it).
    pub fn new_reserve(self, limit: Limit) -> Result<(), Error> {
        self.0.port_out(MEMPOOL_PORT_NEW_RESERVE, 8, encode(limit))
    }

    /// Frames free in the machine.
    pub fn free(self) -> Result<u64, Error> {
        self.0.port_in(MEMPOOL_PORT_FREE, 8)
    }

    /// The caller's next fork puts its child in a reserve of its own with
    /// `limit` and, if given, `processes` as its process limit.
    pub fn stage_child(self, limit: Limit, processes: Option<u32>) -> Result<(), Error> {
        self.0
            .port_out(MEMPOOL_PORT_CHILD_RESERVE, 8, encode(limit))?;
        if let Some(n) = processes {
            self.0.port_out(MEMPOOL_PORT_CHILD_PROCESSES, 4, n as u64)?;
        }
        Ok(())
    }
}

/// Gives the calling process a reserve of its own holding what it holds
/// now plus `extra` frames (a test, or a program fencing itself in).
pub fn limit_self(extra: u64) -> Result<(), Error> {
    let pool = Pool::open()?;
    let result = (|| {
        pool.select(crate::process::getpid())?;
        pool.new_reserve(None)?;
        let now = pool.used()?;
        pool.set_limit(Some(now + extra))
    })();
    let _ = pool.close();
    result
}
