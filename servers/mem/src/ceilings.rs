//! The ceilings the supervisor set, by pid: a fixed table, no allocation.
//!
//! Rules: one entry per pid; an entry lasts until the supervisor clears
//! it (init does when it reaps the process, before the pid can be reused)
//! or, when the table is full, until the process is found gone; a full
//! table of live processes refuses a new entry (`LimitReached`) rather
//! than forget one.

use abi::Error;

/// Entries the table holds.
pub const CEILINGS_MAX: usize = 256;

#[derive(Clone, Copy)]
struct Entry {
    pid: u32,
    frames: u64,
}

pub struct Ceilings {
    entries: [Option<Entry>; CEILINGS_MAX],
}

impl Ceilings {
    pub const fn new() -> Ceilings {
        Ceilings {
            entries: [None; CEILINGS_MAX],
        }
    }

    pub fn get(&self, pid: u32) -> Option<u64> {
        self.entries
            .iter()
            .flatten()
            .find(|e| e.pid == pid)
            .map(|e| e.frames)
    }

    /// Sets `pid`'s ceiling; when the table is full, first drops the
    /// entries of processes `alive` says are gone.
    pub fn set(&mut self, pid: u32, frames: u64, alive: impl Fn(u32) -> bool) -> Result<(), Error> {
        if let Some(e) = self.entries.iter_mut().flatten().find(|e| e.pid == pid) {
            e.frames = frames;
            return Ok(());
        }
        if !self.entries.iter().any(Option::is_none) {
            for slot in self.entries.iter_mut() {
                if slot.is_some_and(|e| !alive(e.pid)) {
                    *slot = None;
                }
            }
        }
        let free = self
            .entries
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(Error::LimitReached)?;
        *free = Some(Entry { pid, frames });
        Ok(())
    }

    /// Forgets `pid`'s ceiling (it falls back to its ancestors' or the
    /// default).
    pub fn clear(&mut self, pid: u32) {
        for slot in self.entries.iter_mut() {
            if slot.is_some_and(|e| e.pid == pid) {
                *slot = None;
            }
        }
    }
}
