//! Frame reserves: what a group of processes may take from the machine.
//!
//! Every process draws on one reserve; a fork child draws on its parent's,
//! so a module's processes — however many it forks — share one budget (the
//! supervisor gives each module a reserve of its own). A reserve counts, in
//! frames, everything the kernel holds on its processes' behalf: their
//! pages (one per page-table reference, so a copy-on-write page counts for
//! each sharer, and breaking the sharing costs nothing more), their page
//! tables, and the kernel objects made for them (process records, bus
//! tables, user devices, client records), whose heap bytes are summed and
//! rounded up to frames. A reserve also counts its processes (zombies
//! included) against a process limit.
//!
//! Rules: a charge that would pass the limit is refused (`OutOfMemory` for
//! memory, `LimitReached` for processes) and changes nothing; credits never
//! go below zero (a credit without its charge is a kernel bug, absorbed
//! rather than wrapped); a reserve lives while anything holds it — a
//! process, or an object still charged to it — and goes when the last
//! holder lets go; lowering a limit below what is used is allowed (nothing
//! new fits until use falls under it).

use crate::gentable::{GenTable, IdShape, Shape};
use abi::Error;

/// A reserve, as the kernel names it.
pub type ReserveId = u64;

/// The shape of reserve ids.
pub const RESERVE_SHAPE: IdShape = IdShape {
    slot_bits: 16,
    gen_bits: 40,
    wraps: false,
    grow_first: false,
};

/// The shape of reserve ids, as a type.
#[derive(Debug)]
pub struct ReserveIds;
impl Shape for ReserveIds {
    const SHAPE: IdShape = RESERVE_SHAPE;
}

const PAGE: u64 = 4096;

/// One reserve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reserve {
    /// Frames charged: pages and page tables.
    frames: u64,
    /// Kernel heap bytes charged (counted in whole frames).
    kernel_bytes: u64,
    /// None: no limit.
    limit: Option<u64>,
    /// A limit that takes effect at the next exec of one of its processes
    /// (a reserve made for a child at fork: the limit is for the program
    /// it will run, not for the spawner's code it runs until then).
    pending_limit: Option<u64>,
    processes: u32,
    process_limit: u32,
    /// Processes and charged objects that name this reserve.
    holders: u64,
}

impl Reserve {
    /// Frames used: pages, tables and kernel objects (rounded up).
    pub fn used(&self) -> u64 {
        self.frames + self.kernel_bytes.div_ceil(PAGE)
    }

    /// What `used` would be without `bytes` of its kernel heap charge
    /// (a transient buffer about to go).
    pub fn used_without(&self, bytes: u64) -> u64 {
        self.frames + self.kernel_bytes.saturating_sub(bytes).div_ceil(PAGE)
    }

    /// Kernel heap bytes charged.
    pub fn kernel_bytes(&self) -> u64 {
        self.kernel_bytes
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Sets the limit; for a reserve still waiting for its first exec
    /// (it has a pending limit), the new limit waits too, and the tighter
    /// of the two holds from that exec.
    pub fn set_limit(&mut self, limit: Option<u64>) {
        if self.pending_limit.is_some() {
            self.pending_limit = match (self.pending_limit, limit) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            };
            return;
        }
        self.limit = limit;
    }

    /// Sets a limit to take effect at the next exec (see `apply_pending`).
    pub fn set_pending_limit(&mut self, limit: Option<u64>) {
        self.pending_limit = limit;
    }

    /// The limit the reserve will have after an exec: the pending one if
    /// it is tighter than the current one.
    pub fn limit_after_exec(&self) -> Option<u64> {
        match (self.limit, self.pending_limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        }
    }

    /// An exec happened: a pending limit takes effect.
    pub fn apply_pending(&mut self) {
        self.limit = self.limit_after_exec();
        self.pending_limit = None;
    }

    pub fn processes(&self) -> u32 {
        self.processes
    }

    pub fn process_limit(&self) -> u32 {
        self.process_limit
    }

    pub fn set_process_limit(&mut self, limit: u32) {
        self.process_limit = limit;
    }

    /// Whether `frames` more frames and `bytes` more heap bytes fit.
    pub fn fits(&self, frames: u64, bytes: u64) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let used = self
            .frames
            .saturating_add(frames)
            .saturating_add(self.kernel_bytes.saturating_add(bytes).div_ceil(PAGE));
        used <= limit
    }

    /// Charges `n` frames, or refuses (`OutOfMemory`) past the limit.
    pub fn charge_frames(&mut self, n: u64) -> Result<(), Error> {
        if !self.fits(n, 0) {
            return Err(Error::OutOfMemory);
        }
        self.frames += n;
        Ok(())
    }

    /// Charges `n` frames whatever the limit: for what the reserve already
    /// paid for in another form (exec trades the old image for the new
    /// one, which it checked fits).
    pub fn force_frames(&mut self, n: u64) {
        self.frames = self.frames.saturating_add(n);
    }

    pub fn credit_frames(&mut self, n: u64) {
        self.frames = self.frames.saturating_sub(n);
    }

    /// Charges `n` heap bytes, or refuses (`OutOfMemory`) past the limit.
    pub fn charge_bytes(&mut self, n: u64) -> Result<(), Error> {
        if !self.fits(0, n) {
            return Err(Error::OutOfMemory);
        }
        self.kernel_bytes += n;
        Ok(())
    }

    pub fn credit_bytes(&mut self, n: u64) {
        self.kernel_bytes = self.kernel_bytes.saturating_sub(n);
    }

    /// Counts one more process (`LimitReached` at the process limit).
    pub fn add_process(&mut self) -> Result<(), Error> {
        if self.processes >= self.process_limit {
            return Err(Error::LimitReached);
        }
        self.processes += 1;
        Ok(())
    }

    pub fn remove_process(&mut self) {
        self.processes = self.processes.saturating_sub(1);
    }
}

/// What one process holds of its reserve (for `proc`, and so that a
/// process that leaves gives back exactly its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Page references.
    pub pages: u64,
    /// Page-table frames.
    pub tables: u64,
    /// Kernel heap bytes (its record, its bus table, ...).
    pub kernel_bytes: u64,
}

impl Usage {
    /// Frames, the kernel's bytes rounded up.
    pub fn frames(&self) -> u64 {
        self.pages + self.tables + self.kernel_bytes.div_ceil(PAGE)
    }
}

/// A process's usage and its reserve, charged together so they agree.
pub struct Account<'a> {
    pub reserve: &'a mut Reserve,
    pub usage: &'a mut Usage,
}

impl Account<'_> {
    pub fn charge_pages(&mut self, n: u64) -> Result<(), Error> {
        self.reserve.charge_frames(n)?;
        self.usage.pages += n;
        Ok(())
    }

    pub fn credit_pages(&mut self, n: u64) {
        let n = n.min(self.usage.pages);
        self.usage.pages -= n;
        self.reserve.credit_frames(n);
    }

    pub fn charge_tables(&mut self, n: u64) -> Result<(), Error> {
        self.reserve.charge_frames(n)?;
        self.usage.tables += n;
        Ok(())
    }

    pub fn credit_tables(&mut self, n: u64) {
        let n = n.min(self.usage.tables);
        self.usage.tables -= n;
        self.reserve.credit_frames(n);
    }

    pub fn charge_bytes(&mut self, n: u64) -> Result<(), Error> {
        self.reserve.charge_bytes(n)?;
        self.usage.kernel_bytes += n;
        Ok(())
    }

    pub fn credit_bytes(&mut self, n: u64) {
        let n = n.min(self.usage.kernel_bytes);
        self.usage.kernel_bytes -= n;
        self.reserve.credit_bytes(n);
    }

    /// Moves everything `usage` holds out of the reserve (the process
    /// leaves it).
    pub fn credit_all(&mut self) {
        let u = *self.usage;
        self.credit_pages(u.pages);
        self.credit_tables(u.tables);
        self.credit_bytes(u.kernel_bytes);
    }
}

/// Every reserve.
#[derive(Debug)]
pub struct Reserves {
    table: GenTable<Reserve, ReserveIds>,
}

impl Default for Reserves {
    fn default() -> Self {
        Self::new()
    }
}

impl Reserves {
    pub const fn new() -> Reserves {
        Reserves {
            table: GenTable::new(),
        }
    }

    /// A new reserve with no holder yet (the caller holds it at once).
    pub fn create(&mut self, limit: Option<u64>, process_limit: u32) -> Result<ReserveId, Error> {
        let r = Reserve {
            limit,
            process_limit,
            ..Reserve::default()
        };
        self.table.insert(r).map_err(|(e, _)| e)
    }

    #[inline]
    pub fn get(&self, id: ReserveId) -> Option<&Reserve> {
        self.table.get(id)
    }

    #[inline]
    pub fn get_mut(&mut self, id: ReserveId) -> Option<&mut Reserve> {
        self.table.get_mut(id)
    }

    /// One more holder of `id` (a process joins it, or an object is
    /// charged to it).
    pub fn hold(&mut self, id: ReserveId) {
        if let Some(r) = self.table.get_mut(id) {
            r.holders += 1;
        }
    }

    /// One holder fewer; the reserve goes with its last one.
    pub fn release(&mut self, id: ReserveId) {
        let Some(r) = self.table.get_mut(id) else {
            return;
        };
        r.holders = r.holders.saturating_sub(1);
        if r.holders == 0 {
            self.table.remove(id);
        }
    }

    /// Removes `id` if nothing holds it (a reserve made for a child whose
    /// fork then failed).
    pub fn discard_if_unused(&mut self, id: ReserveId) {
        if self.table.get(id).is_some_and(|r| r.holders == 0) {
            self.table.remove(id);
        }
    }

    /// Gives `bytes` back to `id` and lets go of it (an object charged to
    /// it went away).
    pub fn refund(&mut self, id: ReserveId, bytes: u64) {
        if let Some(r) = self.table.get_mut(id) {
            r.credit_bytes(bytes);
        }
        self.release(id);
    }

    /// Reserves in the table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_change_nothing_when_refused() {
        let mut r = Reserve {
            limit: Some(10),
            process_limit: 2,
            ..Reserve::default()
        };
        r.charge_frames(8).unwrap();
        assert_eq!(r.charge_frames(3), Err(Error::OutOfMemory));
        assert_eq!(r.used(), 8);
        r.charge_bytes(4096).unwrap();
        assert_eq!(r.used(), 9);
        r.charge_bytes(1).unwrap();
        assert_eq!(r.used(), 10, "heap bytes round up to frames");
        assert_eq!(r.charge_bytes(4096), Err(Error::OutOfMemory));
        assert_eq!(r.charge_frames(1), Err(Error::OutOfMemory));
        r.credit_bytes(4097);
        r.credit_frames(100);
        assert_eq!(r.used(), 0, "credits stop at zero");
        r.add_process().unwrap();
        r.add_process().unwrap();
        assert_eq!(r.add_process(), Err(Error::LimitReached));
        r.remove_process();
        r.add_process().unwrap();
    }

    #[test]
    fn unlimited_reserves_take_anything_and_limits_may_drop_below_use() {
        let mut r = Reserve::default();
        r.charge_frames(u64::MAX / 2).unwrap();
        r.set_limit(Some(5));
        assert_eq!(r.charge_frames(1), Err(Error::OutOfMemory));
        r.force_frames(1);
        assert_eq!(r.used(), u64::MAX / 2 + 1);
    }

    #[test]
    fn a_pending_limit_waits_for_exec_and_never_loosens() {
        let mut r = Reserve::default();
        r.set_pending_limit(Some(10));
        r.charge_frames(100).unwrap();
        assert_eq!(r.limit(), None);
        assert_eq!(r.limit_after_exec(), Some(10));
        r.set_limit(Some(7));
        assert_eq!(r.limit(), None, "a limit set before the exec waits for it");
        r.apply_pending();
        assert_eq!(r.limit(), Some(7), "the tighter limit wins");
        r.set_pending_limit(Some(50));
        r.apply_pending();
        assert_eq!(r.limit(), Some(7));
    }

    #[test]
    fn a_reserve_lives_while_held() {
        let mut rs = Reserves::new();
        let id = rs.create(Some(100), 4).unwrap();
        rs.hold(id);
        rs.hold(id);
        rs.get_mut(id).unwrap().charge_bytes(500).unwrap();
        rs.refund(id, 500);
        assert_eq!(rs.get(id).map(|r| r.kernel_bytes()), Some(0));
        rs.release(id);
        assert!(rs.get(id).is_none(), "gone with its last holder");
        assert!(rs.is_empty());
        rs.refund(id, 1);
        rs.release(id);
        let again = rs.create(None, 1).unwrap();
        assert_ne!(again, id, "a dead reserve's id is never reissued");
    }
}
