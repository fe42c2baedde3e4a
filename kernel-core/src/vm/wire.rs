//! Wiring: pinning user pages for DMA (the wired page state of
//! `kernel_core::vm`), and moving a page below an address first for a
//! device that cannot reach above it.
//!
//! Rules: a wired page is private, so its frame is its own and cannot
//! change while a device may use it; a page may move only before it is
//! wired; every failure leaves the page valid (a COW page made private
//! stays so, as a write fault would leave it).

use super::codec::{Kind, MAX_WIRES, PAGE};
use super::{FrameOps, PageTableOps, Vm};
use crate::frame::Frame;
use crate::paging::is_user_range;
use abi::Error;

impl<P: PageTableOps, F: FrameOps> Vm<'_, P, F> {
    /// Pins the page at `va` for DMA and returns its physical address (plus
    /// `va`'s offset). A COW-shared page is made private first (copied if
    /// others still share it): a device writing it must not reach another
    /// process's memory (the original leaked writes that way). A page the
    /// device may write (`device_writes`) must be one the process may
    /// write: `AccessDenied` otherwise.
    pub fn wire(&mut self, va: u64, device_writes: bool) -> Result<u64, Error> {
        self.wire_below(va, device_writes, u64::MAX)
    }

    /// [`wire`](Self::wire), for a device that reaches only physical
    /// addresses below `limit`: a page whose frame lies above is moved to
    /// a frame below first (copied; the process sees no change but the
    /// address), `OutOfMemory` if none is free; a page already wired
    /// above it cannot move under its other device (`Busy`).
    pub fn wire_below(&mut self, va: u64, device_writes: bool, limit: u64) -> Result<u64, Error> {
        let page = va & !(PAGE - 1);
        if !is_user_range(page, PAGE) {
            return Err(Error::BadAddress);
        }
        let mut m = self.get(page).ok_or(Error::BadAddress)?;
        if m.kind == Kind::Io || !m.prot.read {
            return Err(Error::BadAddress);
        }
        if m.wires >= MAX_WIRES {
            return Err(Error::LimitReached);
        }
        if device_writes && !m.prot.write && !(m.kind == Kind::Cow && m.was_writable) {
            return Err(Error::AccessDenied);
        }
        let below = |f: Frame| f.addr().checked_add(PAGE).is_some_and(|end| end <= limit);
        if m.wires > 0 && !below(m.frame) {
            return Err(Error::Busy);
        }
        if m.kind == Kind::Cow {
            if self.frames.refcount(m.frame) > 1 {
                let copy = self
                    .frames
                    .alloc_zeroed_below(limit)
                    .ok_or(Error::OutOfMemory)?;
                self.frames.copy(copy, m.frame);
                self.frames.release(m.frame);
                m.frame = copy;
            }
            m.kind = Kind::Private;
            if m.was_writable {
                m.prot.write = true;
                m.was_writable = false;
            }
        }
        let moved = if below(m.frame) {
            Ok(())
        } else {
            // Private and unwired: its frame is this page's alone.
            self.frames
                .replace_below(m.frame, limit)
                .map(|f| m.frame = f)
                .ok_or(Error::OutOfMemory)
        };
        if moved.is_ok() {
            m.wires += 1;
        }
        // Stored either way: a COW page made private stays so.
        self.put(page, Some(&m));
        moved.map(|()| m.frame.addr() + (va & (PAGE - 1)))
    }

    /// Undoes one `wire` of the page at `va`.
    pub fn unwire(&mut self, va: u64) -> Result<(), Error> {
        let page = va & !(PAGE - 1);
        let mut m = self.get(page).ok_or(Error::NotFound)?;
        if m.wires == 0 {
            return Err(Error::NotFound);
        }
        m.wires -= 1;
        self.put(page, Some(&m));
        Ok(())
    }
}
