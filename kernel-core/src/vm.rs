//! User page states and every transition between them (seed 000's state
//! machine), with exact frame reference counts.
//!
//! A user page is unmapped, or it maps a frame as one of:
//! - **private**: the only reference to a RAM frame (refcount 1), any
//!   protection (none, R, RX, RW, RWX when allowed);
//! - **COW-shared**: one of the references to a frame shared by `fork`;
//!   never writable in hardware; remembers whether it was writable before
//!   (`was_writable`) so a write can be told from a bug;
//! - **wired**: a private page pinned for DMA (a wire count > 0): it cannot
//!   be unmapped, moved or re-protected until unwired;
//! - **I/O-mapped**: device memory, not reference-counted, never inherited.
//!
//! Rules this module keeps (the original C kernel broke each one):
//! - a frame's reference count equals the number of page-table entries
//!   that map it, on every path (unmap, move-over, fork, exit, exec);
//! - the last sharer of a COW frame gets it back as private *read-only*
//!   (and learns that it was writable, so it can ask for write again);
//! - `move(x, x)` changes nothing;
//! - a multi-page operation checks every page first and either happens to
//!   all of them or to none (allocation failures roll back);
//! - nothing here trusts its arguments: every address and length is
//!   checked and every failure is an `abi::Error`.
//!
//! The page tables and frames are reached through [`PageTableOps`] and
//! [`FrameOps`], which the kernel implements on real memory and the tests
//! on plain maps.

use crate::frame::Frame;
pub use crate::pagetable::TableFrames;
use crate::paging::{is_page_aligned, is_user_range};
use abi::Error;
use abi::interrupt::{FAULT_COW, FAULT_EXEC, FAULT_PRESENT, FAULT_WAS_WRITABLE, FAULT_WRITE};

use codec::PAGE;
pub use codec::{Codec, Kind, MAX_WIRES, Mapping, Prot};

/// The leaf entries of one address space.
pub trait PageTableOps {
    /// The leaf entry for the page at `va` (0 if there is none).
    fn entry(&mut self, va: u64) -> u64;
    /// Creates the tables above `va`'s leaf entry if missing (their frames
    /// from `frames`); on failure it leaves no new table behind.
    fn prepare(&mut self, frames: &mut impl TableFrames, va: u64) -> Result<(), Error>;
    /// Sets the leaf entry for `va`; its tables exist (`prepare` ran or the
    /// entry was mapped). Tables left empty by a cleared entry go back to
    /// `frames`.
    fn set(&mut self, frames: &mut impl TableFrames, va: u64, pte: u64);
    /// Forgets any cached translation of `va`.
    fn flush(&mut self, va: u64);
    /// Sets the entry for `va`, which must be zero (`AlreadyExists`,
    /// changing nothing, otherwise), making its tables (`OutOfMemory`:
    /// none left behind). A real table does it in one walk.
    fn set_new(&mut self, frames: &mut impl TableFrames, va: u64, pte: u64) -> Result<(), Error> {
        if self.entry(va) != 0 {
            return Err(Error::AlreadyExists);
        }
        self.prepare(frames, va)?;
        self.set(frames, va, pte);
        Ok(())
    }
    /// The tables `prepare` made for `va` were not used after all (a call
    /// that failed part way): a real table keeps them within its budget of
    /// empty tables, as if their last entry had gone.
    fn settle_empty(&mut self, _frames: &mut impl TableFrames, _va: u64) {}
    /// The lowest page in `[va, end)` whose leaf entry is not zero. A real
    /// table skips whole missing tables (2 MiB, 1 GiB, 512 GiB at a time),
    /// so a call over a huge, mostly empty range stays cheap; this default
    /// walks page by page and suits only small test tables.
    fn next_entry(&mut self, va: u64, end: u64) -> Option<u64> {
        let mut page = va;
        while page < end {
            if self.entry(page) != 0 {
                return Some(page);
            }
            page += PAGE;
        }
        None
    }
}

/// Physical frames: allocation, contents and reference counts (and, as
/// [`TableFrames`], the frames of page tables).
pub trait FrameOps: TableFrames {
    fn alloc_zeroed(&mut self) -> Option<Frame>;
    /// A zeroed frame wholly below physical address `limit`, charged as
    /// `alloc_zeroed` is (the default asks `alloc_zeroed` and gives back
    /// a frame that is not below).
    fn alloc_zeroed_below(&mut self, limit: u64) -> Option<Frame> {
        let f = self.alloc_zeroed()?;
        if f.addr().checked_add(PAGE).is_some_and(|end| end <= limit) {
            return Some(f);
        }
        self.release(f);
        None
    }
    /// A frame below `limit` holding a copy of `old`, which is released:
    /// a page moves to another frame and stays paid for once.
    fn replace_below(&mut self, old: Frame, limit: u64) -> Option<Frame> {
        let new = self.alloc_zeroed_below(limit)?;
        self.copy(new, old);
        self.release(old);
        Some(new)
    }
    fn copy(&mut self, dst: Frame, src: Frame);
    fn add_ref(&mut self, frame: Frame);
    /// Drops one reference; true if the frame became free.
    fn release(&mut self, frame: Frame) -> bool;
    fn refcount(&self, frame: Frame) -> u32;
    /// Whether `n` more frames could be had at all (the reserve's limit,
    /// the machine's free frames): asked before a long operation starts,
    /// so that one that cannot succeed fails before doing any work.
    fn can_take(&self, _n: u64) -> bool {
        true
    }
}

/// The pages of `[va, va+len)`, after checking the range.
fn pages(va: u64, len: u64) -> Result<impl Iterator<Item = u64>, Error> {
    if len == 0 || !is_page_aligned(va) || !is_page_aligned(len) {
        return Err(Error::InvalidArgument);
    }
    if !is_user_range(va, len) {
        return Err(Error::BadAddress);
    }
    Ok((0..len / PAGE).map(move |i| va + i * PAGE))
}

/// The user-memory operations of one address space.
pub struct Vm<'a, P: PageTableOps, F: FrameOps> {
    pub pt: &'a mut P,
    pub frames: &'a mut F,
    pub codec: Codec,
}

/// How far a long operation got: all of it, or this many pages before a
/// preemption point stopped it (the caller starts it again from there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Done,
    Paused(u64),
}

/// Pages between two looks at the preemption check.
const PREEMPT_EVERY: u64 = 64;

/// What a user page fault means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Deliver it to the process with these `FAULT_*` reason bits.
    Deliver(u64),
    /// The page already allows the access (a stale translation): retry.
    Retry,
}

impl<P: PageTableOps, F: FrameOps> Vm<'_, P, F> {
    fn get(&mut self, va: u64) -> Option<Mapping> {
        self.codec.decode(self.pt.entry(va))
    }

    fn put(&mut self, va: u64, m: Option<&Mapping>) {
        let pte = m.map_or(0, |m| self.codec.encode(m));
        self.pt.set(self.frames, va, pte);
        self.pt.flush(va);
    }

    /// The mapping at `va` (the tests' observer).
    #[cfg(test)]
    pub fn mapping(&mut self, va: u64) -> Option<Mapping> {
        self.get(va)
    }

    /// Maps fresh zeroed pages at `[va, va+len)`; every page must be
    /// unmapped (`AlreadyExists` otherwise).
    pub fn map_new(&mut self, va: u64, len: u64, prot: u64) -> Result<(), Error> {
        self.map_new_from(va, len, prot, 0, &mut || false)
            .map(|_| ())
    }

    /// `map_new`, resumable: starts at page `from` (0 for a new call, what
    /// an earlier `Paused` said for one that stopped), and every 64 pages
    /// asks `due` whether to stop there (`Paused(pages done)`). The checks
    /// happen on the first call only (the caller keeps the process from
    /// running in between); a failure part way undoes every page the call
    /// made, in this piece and the earlier ones.
    pub fn map_new_from(
        &mut self,
        va: u64,
        len: u64,
        prot: u64,
        from: u64,
        due: &mut dyn FnMut() -> bool,
    ) -> Result<Step, Error> {
        let prot = Prot::from_abi(prot)?;
        let _ = pages(va, len)?;
        let total = len / PAGE;
        if len == PAGE {
            return self.map_one_new(va, prot).map(|()| Step::Done);
        }
        if from == 0 {
            if self.any_mapped(va, len) {
                return Err(Error::AlreadyExists);
            }
            // Charge first: a map that cannot fit fails before a page is
            // made.
            if !self.frames.can_take(total) {
                return Err(Error::OutOfMemory);
            }
        }
        let mut i = from.min(total);
        while i < total {
            let page = va + i * PAGE;
            let made = self.pt.prepare(self.frames, page).and_then(|()| {
                let frame = self.frames.alloc_zeroed().ok_or(Error::OutOfMemory)?;
                self.put(page, Some(&Mapping::private(frame, prot)));
                Ok(())
            });
            if let Err(e) = made {
                // A failed prepare has taken down the tables it made; a
                // prepare that worked before the page could be had leaves
                // them to be settled.
                self.pt.settle_empty(self.frames, page);
                for page in pages(va, len)?.take(i as usize) {
                    self.drop_mapping(page);
                }
                return Err(e);
            }
            i += 1;
            if i.is_multiple_of(PREEMPT_EVERY) && i < total && due() {
                return Ok(Step::Paused(i));
            }
        }
        Ok(Step::Done)
    }

    /// Unmaps `page` and releases its frame (the caller checked it is not
    /// pinned).
    /// Whether any page of `[va, va+len)` has an entry.
    fn any_mapped(&mut self, va: u64, len: u64) -> bool {
        self.pt.next_entry(va, va + len).is_some()
    }

    /// `map_new` of the single page `va` (the commonest call: a heap or
    /// stack page on demand): the check, the tables and the entry in one
    /// walk of the table. The errors and their order are `map_new`'s.
    fn map_one_new(&mut self, va: u64, prot: Prot) -> Result<(), Error> {
        let frame = if self.frames.can_take(1) {
            self.frames.alloc_zeroed()
        } else {
            None
        };
        let Some(frame) = frame else {
            // Which error: a page already there is reported first.
            return Err(if self.pt.entry(va) != 0 {
                Error::AlreadyExists
            } else {
                Error::OutOfMemory
            });
        };
        let pte = self.codec.encode(&Mapping::private(frame, prot));
        match self.pt.set_new(self.frames, va, pte) {
            Ok(()) => {
                self.pt.flush(va);
                Ok(())
            }
            Err(e) => {
                self.frames.release(frame);
                Err(e)
            }
        }
    }

    fn drop_mapping(&mut self, page: u64) {
        if let Some(m) = self.get(page) {
            self.release_mapping(page, &m);
        }
    }

    /// Unmaps `page`, whose mapping is `m`, and releases its frame.
    fn release_mapping(&mut self, page: u64, m: &Mapping) {
        self.put(page, None);
        if m.kind != Kind::Io {
            self.frames.release(m.frame);
        }
    }

    /// Changes the protection of `[va, va+len)`. Every page must be mapped
    /// and not pinned; a COW page can be made writable only when it is no
    /// longer shared (then it becomes private).
    pub fn protect(&mut self, va: u64, len: u64, prot: u64) -> Result<(), Error> {
        self.protect_from(va, len, prot, 0, &mut || false)
            .map(|_| ())
    }

    /// `protect`, resumable as `map_new_from` is: from page `from`, asking
    /// `due` every 64 pages whether to stop (`Paused(pages done)`); the
    /// checks of every page happen on the first call only.
    pub fn protect_from(
        &mut self,
        va: u64,
        len: u64,
        prot: u64,
        from: u64,
        due: &mut dyn FnMut() -> bool,
    ) -> Result<Step, Error> {
        let prot = Prot::from_abi(prot)?;
        let checks = if from == 0 { len / PAGE } else { 0 };
        for page in pages(va, len)?.take(checks as usize) {
            let m = self.get(page).ok_or(Error::NotFound)?;
            if m.is_pinned() {
                return Err(Error::Busy);
            }
            if m.kind == Kind::Cow && prot.write && self.frames.refcount(m.frame) > 1 {
                return Err(Error::Busy);
            }
        }
        for (i, page) in pages(va, len)?.enumerate().skip(from as usize) {
            let Some(mut m) = self.get(page) else {
                continue;
            };
            if prot.write {
                // Checked above: a COW page here is no longer shared.
                m.kind = Kind::Private;
                m.was_writable = false;
            }
            // A COW page stays read-only whatever else it may do.
            m.prot = if m.kind == Kind::Cow {
                prot.without_write()
            } else {
                prot
            };
            self.put(page, Some(&m));
            let n = i as u64 + 1;
            if n.is_multiple_of(PREEMPT_EVERY) && n < len / PAGE && due() {
                return Ok(Step::Paused(n));
            }
        }
        Ok(Step::Done)
    }

    /// Unmaps `[va, va+len)`; unmapped pages in the range are skipped.
    /// Pinned pages make the whole call fail with `Busy`.
    pub fn unmap(&mut self, va: u64, len: u64) -> Result<(), Error> {
        self.unmap_step(va, len, &mut || false).map(|_| ())
    }

    /// `unmap` that asks `due` every 64 pages unmapped whether to stop
    /// there (`Paused`): calling it again with the same arguments finishes
    /// it (what is unmapped already is skipped).
    pub fn unmap_step(
        &mut self,
        va: u64,
        len: u64,
        due: &mut dyn FnMut() -> bool,
    ) -> Result<Step, Error> {
        let _ = pages(va, len)?;
        let end = va + len;
        if len == PAGE {
            // One page (the common case): one look at it.
            match self.get(va) {
                Some(m) if m.is_pinned() => return Err(Error::Busy),
                Some(m) => self.release_mapping(va, &m),
                None => {}
            }
            return Ok(Step::Done);
        }
        // Only the mapped pages are visited: a huge, mostly empty range
        // must not keep the (non-preemptible) kernel busy.
        let mut at = va;
        while let Some(page) = self.pt.next_entry(at, end) {
            if self.get(page).is_some_and(|m| m.is_pinned()) {
                return Err(Error::Busy);
            }
            at = page + PAGE;
        }
        let mut at = va;
        let mut n = 0u64;
        while let Some(page) = self.pt.next_entry(at, end) {
            self.drop_mapping(page);
            at = page + PAGE;
            n += 1;
            if n.is_multiple_of(PREEMPT_EVERY) && at < end && due() {
                return Ok(Step::Paused(n));
            }
        }
        Ok(Step::Done)
    }

    /// Makes the tables for every page of `[va, va+len)`; if one cannot be
    /// had, the tables made for the others are settled (they must not
    /// stay behind, empty and uncounted) and the call fails.
    fn prepare_all(&mut self, va: u64, len: u64) -> Result<(), Error> {
        for (i, page) in pages(va, len)?.enumerate() {
            if let Err(e) = self.pt.prepare(self.frames, page) {
                for done in pages(va, len)?.take(i) {
                    if self.pt.entry(done) == 0 {
                        self.pt.settle_empty(self.frames, done);
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Moves the mappings of `[src, src+len)` to `[dst, dst+len)`,
    /// releasing what `dst` mapped. Every source page must be mapped; no
    /// page of either range may be pinned; the ranges may not overlap
    /// (unless equal, which changes nothing).
    pub fn move_pages(&mut self, dst: u64, src: u64, len: u64) -> Result<(), Error> {
        let dst_pages = pages(dst, len)?;
        let src_pages = pages(src, len)?;
        if dst == src {
            return Ok(());
        }
        if dst.abs_diff(src) < len {
            return Err(Error::InvalidArgument);
        }
        for (d, s) in dst_pages.zip(src_pages) {
            let m = self.get(s).ok_or(Error::NotFound)?;
            if m.is_pinned() || self.get(d).is_some_and(|m| m.is_pinned()) {
                return Err(Error::Busy);
            }
        }
        // Create every destination table first, so nothing below can fail.
        self.prepare_all(dst, len)?;
        for (d, s) in pages(dst, len)?.zip(pages(src, len)?) {
            let moving = self.get(s);
            let replaced = self.get(d);
            // The destination entry is overwritten, never cleared first:
            // clearing it could empty its table, which would then go.
            self.put(d, moving.as_ref());
            if let Some(old) = replaced
                && old.kind != Kind::Io
            {
                self.frames.release(old.frame);
            }
            self.put(s, None);
        }
        Ok(())
    }

    /// Classifies a user page fault at `va`; `write`/`exec` describe the
    /// access. A write to a COW page whose frame is no longer shared turns
    /// it back into a private read-only page first (the process is told it
    /// was writable, and may `protect` it).
    pub fn fault(&mut self, va: u64, write: bool, exec: bool) -> Fault {
        let access = if write { FAULT_WRITE } else { 0 } | if exec { FAULT_EXEC } else { 0 };
        // A kernel address is never the process's: whatever maps it (the
        // kernel's own pages are present), the access is refused.
        if !is_user_range(va, 1) {
            return Fault::Deliver(access);
        }
        let Some(mut m) = self.get(va & !(PAGE - 1)) else {
            return Fault::Deliver(access);
        };
        let allowed = m.prot.read && (!write || m.prot.write) && (!exec || m.prot.exec);
        if allowed {
            return Fault::Retry;
        }
        let mut reason = FAULT_PRESENT | access;
        if m.was_writable {
            reason |= FAULT_WAS_WRITABLE;
        }
        if m.kind == Kind::Cow {
            if write && self.frames.refcount(m.frame) == 1 {
                m.kind = Kind::Private;
                self.put(va & !(PAGE - 1), Some(&m));
            } else {
                reason |= FAULT_COW;
            }
        }
        Fault::Deliver(reason)
    }

    /// Makes the COW page at `va` privately writable, copying it if it is
    /// still shared: what the kernel does before writing user memory for a
    /// system call, and for processes with no fault handler. Only pages
    /// that were writable before `fork` qualify (`BadAddress` otherwise).
    pub fn break_cow(&mut self, va: u64) -> Result<(), Error> {
        let page = va & !(PAGE - 1);
        let mut m = self.get(page).ok_or(Error::BadAddress)?;
        if !m.was_writable || !matches!(m.kind, Kind::Cow | Kind::Private) || !m.prot.read {
            return Err(Error::BadAddress);
        }
        if m.kind == Kind::Cow && self.frames.refcount(m.frame) > 1 {
            let copy = self.frames.alloc_zeroed().ok_or(Error::OutOfMemory)?;
            self.frames.copy(copy, m.frame);
            self.frames.release(m.frame);
            m.frame = copy;
        }
        m.kind = Kind::Private;
        m.prot.write = true;
        m.was_writable = false;
        self.put(page, Some(&m));
        Ok(())
    }

    /// The frame mapped at user page `va`, if any.
    pub fn frame_at(&mut self, va: u64) -> Option<Frame> {
        self.get(va & !(PAGE - 1)).map(|m| m.frame)
    }

    /// Maps device memory `[phys, phys+len)` at `[va, va+len)`, read-write
    /// and uncached; every page must be unmapped. (The caller checked that
    /// the physical range belongs to a device the process holds.)
    pub fn map_io(&mut self, va: u64, phys: u64, len: u64) -> Result<(), Error> {
        if !phys.is_multiple_of(PAGE) {
            return Err(Error::InvalidArgument);
        }
        for page in pages(va, len)? {
            if self.get(page).is_some() {
                return Err(Error::AlreadyExists);
            }
        }
        self.prepare_all(va, len)?;
        for (i, page) in pages(va, len)?.enumerate() {
            let m = Mapping {
                frame: Frame::containing(phys + i as u64 * PAGE),
                kind: Kind::Io,
                prot: Prot::RW,
                was_writable: false,
                wires: 0,
            };
            self.put(page, Some(&m));
        }
        Ok(())
    }

    /// Removes the device-memory mappings in `[va, va+len)` (other pages in
    /// the range are left alone); returns how many pages it unmapped.
    pub fn unmap_io(&mut self, va: u64, len: u64) -> Result<u64, Error> {
        let mut n = 0;
        let _ = pages(va, len)?;
        let mut at = va;
        while let Some(page) = self.pt.next_entry(at, va + len) {
            if self.get(page).is_some_and(|m| m.kind == Kind::Io) {
                self.put(page, None);
                n += 1;
            }
            at = page + PAGE;
        }
        Ok(n)
    }
}

mod codec;
mod inherit;
mod wire;
pub use inherit::{ForkedEntry, Released, fork_pte, release_entry};
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cow;
#[cfg(test)]
mod tests_tree;
#[cfg(test)]
mod tests_wire;
