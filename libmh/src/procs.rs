//! The process table through the `proc` kernel device: listing (for `ps`)
//! and `kill`.
//!
//! Rules: like the registry listing, a walk is a series of snapshots — a
//! process may end or appear between two reads; an entry that vanishes
//! mid-read is skipped.

use crate::dev::{self, Handle, Name, REGISTRY};
use abi::Error;
use abi::kdev::*;

/// One process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub pid: u32,
    pub parent: u32,
    /// `PROC_STATE_*`.
    pub state: u32,
    pub priority: u32,
    /// Frames it holds.
    pub frames: u64,
    name: Name,
}

impl Entry {
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The state as a word for listings.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            PROC_STATE_RUNNABLE => "running",
            PROC_STATE_BLOCKED => "sleeping",
            PROC_STATE_ZOMBIE => "zombie",
            _ => "?",
        }
    }
}

/// Attaches `proc` (READ and WRITE to list, plus KILL if `kill`).
pub fn open(kill: bool) -> Result<Handle, Error> {
    let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | if kill { dev::RIGHT_KILL } else { 0 };
    dev::attach(REGISTRY, "proc", rights)
}

fn read(h: Handle, pid: u32) -> Result<Entry, Error> {
    h.port_out(PROC_PORT_SELECT, 4, pid as u64)?;
    let name = Name::read(h, PROC_PORT_NAME)?;
    Ok(Entry {
        pid,
        parent: h.port_in(PROC_PORT_PARENT, 4)? as u32,
        state: h.port_in(PROC_PORT_STATE, 4)? as u32,
        priority: h.port_in(PROC_PORT_PRIORITY, 4)? as u32,
        frames: h.port_in(PROC_PORT_FRAMES, 8)?,
        name,
    })
}

/// Calls `f` on every process, in the kernel's table order (not pid
/// order: a later slot can hold a smaller pid). A process that ends
/// meanwhile is skipped; the walk goes on from its slot.
pub fn for_each(h: Handle, mut f: impl FnMut(&Entry)) -> Result<(), Error> {
    let mut pid = 0;
    // Each step moves to a later slot, so this ends after one step per
    // slot; the bound only guards against a kernel bug.
    for _ in 0..=PROCESSES_MAX {
        h.port_out(PROC_PORT_SELECT, 4, pid as u64)?;
        let next = h.port_in(PROC_PORT_NEXT, 4)? as u32;
        if next == 0 {
            return Ok(());
        }
        if let Ok(e) = read(h, next) {
            f(&e);
        }
        pid = next;
    }
    Ok(())
}

/// Ends process `pid` (one of the caller's descendants, or itself).
pub fn kill(h: Handle, pid: u32) -> Result<(), Error> {
    h.port_out(PROC_PORT_SELECT, 4, pid as u64)?;
    h.port_out(PROC_PORT_KILL, 4, 0)
}

/// Ends process `pid` and every process below it (one of the caller's
/// descendants, or itself and its descendants). A large tree takes the
/// call a while: the kernel gives way to other processes at timer ticks
/// and goes on where it stopped.
pub fn kill_tree(h: Handle, pid: u32) -> Result<(), Error> {
    h.port_out(PROC_PORT_SELECT, 4, pid as u64)?;
    h.port_out(PROC_PORT_KILL_TREE, 4, 0)
}

/// Takes the name of `device`'s device out of process `pid`'s name scope,
/// and cuts its attachments to devices of that name (a supervisor's answer
/// to a client that keeps crashing a server).
pub fn revoke(h: Handle, pid: u32, device: Handle) -> Result<(), Error> {
    h.port_out(PROC_PORT_SELECT, 4, pid as u64)?;
    h.port_out(PROC_PORT_REVOKE, 8, device.0)
}
