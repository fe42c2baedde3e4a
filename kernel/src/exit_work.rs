//! Work a kernel entry leaves for the end of an entry, in one byte: the
//! log grew (klog's listeners are to be woken), or multi-page heap blocks
//! were freed where they could not be given back (`mm::heap`'s deferred
//! frees). The end of every system call tests the byte once
//! (`Machine::exit_work_due`) and goes on to user mode when it is clear,
//! which is nearly always; `settle`'s slow path takes the work.
//!
//! Rules: a bit is set after the work it announces is recorded (the log
//! bytes written, the block linked), with Release; taking the byte is an
//! Acquire swap, so whoever takes a bit sees that work. Any CPU may take
//! it: the work is the machine's, not a CPU's. A bit set after the take
//! stays for the next entry's end; work found with no bit set (recorded
//! between the take and the look) is done early, which is harmless.

use core::sync::atomic::{AtomicU8, Ordering};

/// The log grew since the bit was last taken.
pub const LOG_GREW: u8 = 1;
/// The heap has deferred frees to carry out.
pub const HEAP_DEFERRED: u8 = 2;

static DUE: AtomicU8 = AtomicU8::new(0);

/// Announces `work` (one or more of the bits above), already recorded.
#[inline]
pub fn announce(work: u8) {
    // A load first: the log grows often, and the bit is then usually set
    // already; a read keeps the line shared between CPUs.
    if DUE.load(Ordering::Relaxed) & work != work {
        DUE.fetch_or(work, Ordering::Release);
    }
}

/// Whether any work is due.
#[inline(always)]
pub fn due() -> bool {
    DUE.load(Ordering::Relaxed) != 0
}

/// Takes every bit, clearing them.
pub fn take() -> u8 {
    DUE.swap(0, Ordering::Acquire)
}
