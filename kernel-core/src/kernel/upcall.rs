//! Delivering faults and interrupts to a process's handler (see
//! `abi::interrupt`): the kernel writes an `IntFrame` on the handler stack
//! and points the process at its handler; `int_return` undoes it.
//!
//! Rules: a frame goes below the interrupted stack pointer (less a 128-byte
//! red zone) when the process is already on its handler stack, so nested
//! deliveries never overwrite an outer frame (the original wrote every
//! frame at one fixed address); the kernel counts deliveries a handler has
//! not returned from (`int_return`), so a nested delivery whose stack
//! pointer has left the handler stack — the handler ran off its bottom
//! into other memory — is an overflow, not a fresh start at the top over
//! the live frames; a frame that does not fit, or a stack that is not
//! writable, makes the delivery fail and the caller kills the process; the
//! frame a process hands back is checked before any register is restored
//! from it.

use crate::machine::{Machine, UserFrame};
use crate::paging::is_user_range;
use crate::process::{Handler, Process};
use abi::interrupt::{INT_KIND_FAULT, INT_KIND_INTERRUPTS};
use abi::{Error, IntFrame};

/// The user stack-pointer area a leaf function may use without moving rsp.
const RED_ZONE: u64 = 128;
/// The smallest handler stack `set_handler` accepts.
pub const MIN_HANDLER_STACK: u64 = 1024;
/// What is being delivered.
pub enum Event {
    Fault {
        vector: u64,
        error: u64,
        addr: u64,
        reason: u64,
    },
    Interrupts {
        pending: u64,
    },
}

/// Where the frame goes on the handler stack, if it fits. `nested`: a
/// delivery the handler has not returned from is live, so the stack
/// pointer must be on the handler stack (below it is an overflow).
fn frame_address(h: &Handler, rsp: u64, nested: bool) -> Option<u64> {
    let top = h.stack_base + h.stack_size;
    let on_stack = rsp > h.stack_base && rsp <= top;
    let start = if on_stack {
        rsp.checked_sub(RED_ZONE)?
    } else if nested {
        return None;
    } else {
        top
    };
    let addr = start.checked_sub(core::mem::size_of::<IntFrame>() as u64)? & !15;
    // Keep room for the return-address slot below the frame.
    (addr >= h.stack_base + 16).then_some(addr)
}

/// Delivers `event` to `p`'s handler. On error nothing was changed and the
/// caller should kill the process.
pub fn deliver<M: Machine>(p: &mut Process<M>, event: Event) -> Result<(), Error> {
    let h = p.handler.ok_or(Error::NotFound)?;
    let mut frame = p.frame.snapshot();
    frame.int_enabled = p.int_enabled as u32;
    match event {
        Event::Fault {
            vector,
            error,
            addr,
            reason,
        } => {
            frame.kind = INT_KIND_FAULT;
            frame.vector = vector;
            frame.error = error;
            frame.addr = addr;
            frame.reason = reason;
        }
        Event::Interrupts { pending } => {
            frame.kind = INT_KIND_INTERRUPTS;
            frame.pending = pending;
        }
    }
    let at = frame_address(&h, p.frame.sp(), p.handler_depth > 0).ok_or(Error::LimitReached)?;
    let space = p.space()?;
    crate::usercopy::UserPtr::<IntFrame>::new(at)?.write::<M>(space, &frame)?;
    p.frame.enter_handler(h.entry, at - 8, at);
    p.int_enabled = false;
    p.handler_depth = p.handler_depth.saturating_add(1);
    Ok(())
}

/// Delivers `p`'s pending interrupts if it takes them now. Returns false if
/// the delivery failed (the caller kills the process).
pub fn deliver_pending<M: Machine>(p: &mut Process<M>) -> bool {
    // A call stopped at a preemption point goes on first: the handler
    // could change what it works on.
    if !p.int_enabled || p.pending == 0 || p.handler.is_none() || p.restart.is_some() {
        return true;
    }
    let pending = p.pending;
    p.pending = 0;
    if deliver(p, Event::Interrupts { pending }).is_err() {
        p.pending = pending;
        return false;
    }
    true
}

/// `int_return`: restores the context in the frame at user address `at`.
#[inline(always)]
pub fn int_return<M: Machine>(
    p: &mut Process<M>,
    at: crate::usercopy::UserPtr<IntFrame>,
) -> Result<(), Error> {
    let space = p.space()?;
    let frame = at.read::<M>(space)?;
    // The new rip must be user code; rsp must at least be canonical user
    // (a bad one faults in user mode, where it belongs).
    if !is_user_range(frame.rip, 1) || !is_user_range(frame.rsp.max(1), 1) {
        return Err(Error::InvalidArgument);
    }
    if frame.int_enabled > 1 {
        return Err(Error::InvalidArgument);
    }
    p.handler_depth = p.handler_depth.saturating_sub(1);
    p.frame.restore(&frame);
    p.int_enabled = frame.int_enabled == 1;
    Ok(())
}

/// `set_handler(entry, stack_base, stack_size)`; entry 0 removes it.
pub fn set_handler<M: Machine>(
    p: &mut Process<M>,
    entry: u64,
    base: u64,
    size: u64,
) -> Result<(), Error> {
    if entry == 0 {
        if base != 0 || size != 0 {
            return Err(Error::InvalidArgument);
        }
        p.handler = None;
        p.handler_depth = 0;
        return Ok(());
    }
    if !is_user_range(entry, 1) || !is_user_range(base, size) {
        return Err(Error::BadAddress);
    }
    if size < MIN_HANDLER_STACK {
        return Err(Error::InvalidArgument);
    }
    p.handler = Some(Handler {
        entry,
        stack_base: base,
        stack_size: size,
    });
    p.handler_depth = 0;
    Ok(())
}
