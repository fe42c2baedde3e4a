//! The frame sources the kernel's memory operations draw on: the
//! machine's own ([`MachineFrames`], charging no one) and one process's
//! ([`ChargedFrames`], charging its reserve).
//!
//! Rules: every page and page table made for a process comes through
//! `ChargedFrames`, which charges it to the process's reserve first (and
//! refuses it past the limit) and credits every one it lets go;
//! copy-on-write copies and the copies fork makes of wired pages cost
//! nothing more (the reserve already counts one reference per sharer), so
//! they go through `MachineFrames`, as do the kernel's own tables and
//! operations already paid for.

use crate::frame::Frame;
use crate::machine::Machine;
use crate::pagetable::TableFrames;
use crate::reserve::{Account, Reserve, Usage};
use crate::vm::FrameOps;
use core::marker::PhantomData;

/// The machine's frames, charging no one.
pub struct MachineFrames<M: Machine>(PhantomData<M>);

impl<M: Machine> MachineFrames<M> {
    pub const fn new() -> Self {
        MachineFrames(PhantomData)
    }
}

impl<M: Machine> Default for MachineFrames<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Machine> TableFrames for MachineFrames<M> {
    fn alloc_table(&mut self) -> Option<Frame> {
        M::alloc_frame()
    }

    fn free_table(&mut self, frame: Frame) {
        let _ = M::release_frame(frame);
    }
}

impl<M: Machine> FrameOps for MachineFrames<M> {
    fn alloc_zeroed(&mut self) -> Option<Frame> {
        M::alloc_frame()
    }

    fn alloc_zeroed_below(&mut self, limit: u64) -> Option<Frame> {
        M::alloc_frame_below(limit)
    }

    fn copy(&mut self, dst: Frame, src: Frame) {
        M::copy_phys(dst.addr(), src.addr(), crate::paging::PAGE_SIZE as usize);
    }

    fn add_ref(&mut self, frame: Frame) {
        M::add_ref(frame)
    }

    fn release(&mut self, frame: Frame) -> bool {
        M::release_frame(frame)
    }

    fn refcount(&self, frame: Frame) -> u32 {
        M::refcount(frame)
    }

    fn can_take(&self, n: u64) -> bool {
        M::free_frames() >= n
    }
}

/// One process's frames: charged to its reserve (see the module comment).
pub struct ChargedFrames<'a, M: Machine> {
    pub account: Account<'a>,
    machine: PhantomData<M>,
}

impl<'a, M: Machine> ChargedFrames<'a, M> {
    pub fn new(reserve: &'a mut Reserve, usage: &'a mut Usage) -> Self {
        ChargedFrames {
            account: Account { reserve, usage },
            machine: PhantomData,
        }
    }
}

impl<M: Machine> TableFrames for ChargedFrames<'_, M> {
    fn alloc_table(&mut self) -> Option<Frame> {
        self.account.charge_tables(1).ok()?;
        let f = M::alloc_frame();
        if f.is_none() {
            self.account.credit_tables(1);
        }
        f
    }

    fn free_table(&mut self, frame: Frame) {
        self.account.credit_tables(1);
        let _ = M::release_frame(frame);
    }
}

impl<M: Machine> FrameOps for ChargedFrames<'_, M> {
    fn alloc_zeroed(&mut self) -> Option<Frame> {
        self.account.charge_pages(1).ok()?;
        let f = M::alloc_frame();
        if f.is_none() {
            self.account.credit_pages(1);
        }
        f
    }

    fn alloc_zeroed_below(&mut self, limit: u64) -> Option<Frame> {
        self.account.charge_pages(1).ok()?;
        let f = M::alloc_frame_below(limit);
        if f.is_none() {
            self.account.credit_pages(1);
        }
        f
    }

    /// The page was paid for and stays one page: the move charges
    /// nothing, so a process at its limit can still move one.
    fn replace_below(&mut self, old: Frame, limit: u64) -> Option<Frame> {
        let new = M::alloc_frame_below(limit)?;
        self.copy(new, old);
        let _ = M::release_frame(old);
        Some(new)
    }

    fn copy(&mut self, dst: Frame, src: Frame) {
        MachineFrames::<M>::new().copy(dst, src)
    }

    fn add_ref(&mut self, frame: Frame) {
        M::add_ref(frame)
    }

    fn release(&mut self, frame: Frame) -> bool {
        self.account.credit_pages(1);
        M::release_frame(frame)
    }

    fn refcount(&self, frame: Frame) -> u32 {
        M::refcount(frame)
    }

    fn can_take(&self, n: u64) -> bool {
        self.account.reserve.fits(n, 0) && M::free_frames() >= n
    }
}
