//! How a unit is made to forget what changed in its tables: through its
//! invalidation queue when it has one (required for interrupt remapping,
//! and then the only way: a unit with queued invalidation on ignores the
//! register-based commands), else through its registers. Every request
//! here is waited for before it returns.
//!
//! Rules: one batch at a time per unit (the caller holds `UNITS`); a
//! batch ends with a wait descriptor that writes a fresh status value to
//! the unit's status word, which is polled (bounded); a unit that refuses
//! a descriptor or does not answer is reported as an error, and the
//! caller reports it (see `super`'s rules).

use super::{IoMemory, Iommu, KernelFrames, with_tables};
use crate::arch::vtd::{Unit, VtdError};
use kernel_core::frame::Frame;
use kernel_core::iommu::Flush;
use kernel_core::iommu::context::Detached;
use kernel_core::iommu::qi::{self, Descriptor, InvalidationQueue};

/// A unit's queue and the word its wait descriptors write.
pub struct Queue {
    queue: InvalidationQueue,
    status: Frame,
}

impl Queue {
    /// Makes a queue and turns queued invalidation on for `unit`.
    pub fn start(unit: &Unit, host_bits: u8) -> Result<Queue, &'static str> {
        let queue =
            InvalidationQueue::new(&mut KernelFrames, host_bits).map_err(|_| "no queue frame")?;
        let Some(status) = crate::mm::alloc_zeroed_frame() else {
            queue.destroy(&mut KernelFrames);
            return Err("no status frame");
        };
        if unit.enable_queue(queue.iqa()).is_err() {
            queue.destroy(&mut KernelFrames);
            let _ = crate::mm::frames::release(status);
            return Err("the unit did not turn its queue on");
        }
        Ok(Queue { queue, status })
    }
}

/// What a unit must forget.
#[derive(Clone, Copy, Debug)]
pub enum Forget<'a> {
    /// The context entries of domain `did` (one was made).
    Contexts(u16),
    /// What `flush` names in domain `did`'s IOTLB.
    Translations(u16, &'a Flush),
    /// A function's context entry and its domain's translations.
    Detached(&'a Detached),
    /// Interrupt remapping entry `handle`.
    InterruptEntry(u16),
    /// Every interrupt remapping entry.
    InterruptEntries,
}

/// Makes `u` forget `what`, and waits.
pub fn forget(u: &mut Iommu, what: Forget<'_>) -> Result<(), VtdError> {
    let cap = u.unit.cap;
    let Some(q) = &mut u.queue else {
        return match what {
            Forget::Contexts(did) => u.unit.invalidate_context_domain(did),
            Forget::Translations(did, flush) => {
                u.unit
                    .invalidate_iotlb(did, flush.page_selective(), !flush.tables())
            }
            Forget::Detached(d) => u
                .unit
                .invalidate_context_domain(d.domain_id)
                .and_then(|()| u.unit.invalidate_iotlb(d.domain_id, None, false)),
            // Interrupt remapping is only ever on with a queue.
            Forget::InterruptEntry(_) | Forget::InterruptEntries => Ok(()),
        };
    };
    let mut batch: arrayvec::ArrayVec<Descriptor, 2> = arrayvec::ArrayVec::new();
    match what {
        Forget::Contexts(did) => batch.push(Descriptor::context_domain(did)),
        Forget::Translations(did, flush) => {
            batch.extend(qi::iotlb_for_flush(flush, did, cap));
        }
        Forget::Detached(d) => batch.extend(qi::detach_invalidations(d, cap)),
        Forget::InterruptEntry(h) => batch.push(Descriptor::interrupt_cache_entry(h)),
        Forget::InterruptEntries => batch.push(Descriptor::interrupt_cache_global()),
    }
    let head = u.unit.queue_head();
    let status = q.status.addr();
    let submitted = with_tables(|mem: &mut IoMemory| q.queue.submit(mem, head, &batch, status));
    let Ok(b) = submitted else {
        return Err(VtdError::Timeout("invalidation queue full"));
    };
    u.unit.queue_tail(b.tail);
    let word = crate::arch::phys::to_virt(status).cast::<u32>();
    let unit = &u.unit;
    unit.wait_queue("queued invalidation", || {
        // SAFETY: the status frame is the kernel's, mapped by the direct
        // map; the unit writes it, so it is read volatile.
        let now = unsafe { core::ptr::read_volatile(word) };
        b.completed(now) || unit.take_queue_error()
    })?;
    // SAFETY: as above.
    if !b.completed(unsafe { core::ptr::read_volatile(word) }) {
        return Err(VtdError::Timeout("a descriptor the unit refused"));
    }
    Ok(())
}
