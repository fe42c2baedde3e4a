//! The fault and interrupt runtime: what runs when the kernel delivers an
//! `IntFrame` (see `abi::interrupt`).
//!
//! It resolves the faults a program should never see: copy-on-write after
//! `fork` (copy into a scratch page, move it over), pages that are private
//! again after their other sharers left (restore write), and demand-zero
//! pages in the heap and stack regions (`abi::layout`); when the kernel
//! refuses a page for want of reserve, it asks the mem server for more
//! (`mem::top_up`) and tries again. Anything else gets a one-line
//! report; then the handler steps aside and the fault happens again
//! without it, so the kernel kills the process with the fault as its exit
//! status. Interrupt vectors go to the functions registered with
//! [`on_interrupt`].
//!
//! Rules: handlers run on their own stack with interrupts off and may
//! nest (a fault inside a handler gets its own frame); nothing here
//! allocates.

use crate::{println, vm};
use abi::IntFrame;
use abi::interrupt::*;
use abi::layout::*;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const HANDLER_STACK_SIZE: usize = 32 * 1024;
const PAGE: u64 = 4096;

#[repr(C, align(16))]
struct HandlerStack([u8; HANDLER_STACK_SIZE]);

static mut HANDLER_STACK: HandlerStack = HandlerStack([0; HANDLER_STACK_SIZE]);

/// Functions registered per vector (0 = none).
static VECTOR_FNS: [AtomicUsize; VECTOR_COUNT as usize] =
    [const { AtomicUsize::new(0) }; VECTOR_COUNT as usize];

/// Nesting depth of COW copies in progress (picks the scratch page).
static COW_DEPTH: AtomicU64 = AtomicU64::new(0);

/// What the runtime has done so far (for tests and tools).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub cow_copies: u64,
    pub rewritable: u64,
    pub demand_maps: u64,
    pub interrupts: u64,
}

static COW_COPIES: AtomicU64 = AtomicU64::new(0);
static REWRITABLE: AtomicU64 = AtomicU64::new(0);
static DEMAND_MAPS: AtomicU64 = AtomicU64::new(0);
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);

/// The counters since the program started (a forked child inherits them).
pub fn stats() -> Stats {
    Stats {
        cow_copies: COW_COPIES.load(Ordering::Relaxed),
        rewritable: REWRITABLE.load(Ordering::Relaxed),
        demand_maps: DEMAND_MAPS.load(Ordering::Relaxed),
        interrupts: INTERRUPTS.load(Ordering::Relaxed),
    }
}

core::arch::global_asm!(
    ".pushsection .text.mh_int_entry, \"ax\"",
    ".global mh_int_entry",
    "mh_int_entry:",
    // rdi = the frame; rsp + 8 is 16-byte aligned (as after a call).
    "push rdi",
    "call {dispatch}",
    "pop rdi",
    "mov eax, {int_return}",
    "syscall",
    "ud2",
    ".popsection",
    dispatch = sym dispatch,
    int_return = const abi::Sysno::IntReturn as u64,
);

unsafe extern "C" {
    fn mh_int_entry();
}

/// Installs the handler; `entry!` calls it before `main`.
pub fn init() {
    let base = (&raw const HANDLER_STACK) as u64;
    // SAFETY: registers our entry and our static stack; the kernel checks
    // both.
    let r = unsafe {
        crate::raw::syscall3(
            abi::Sysno::SetHandler as u64,
            mh_int_entry as *const () as u64,
            base,
            HANDLER_STACK_SIZE as u64,
        )
    };
    if r < 0 {
        println!(
            "libmh: cannot install the fault handler: {:?}",
            abi::Error::decode(r)
        );
    }
}

/// Calls `f(vector)` when `vector` is delivered (interrupts must be
/// enabled with `process::int_enable`).
pub fn on_interrupt(vector: u32, f: fn(u32)) {
    if let Some(slot) = VECTOR_FNS.get(vector as usize) {
        slot.store(f as usize, Ordering::Relaxed);
    }
}

extern "C" fn dispatch(frame: *mut IntFrame) {
    // SAFETY: the kernel wrote the frame on our handler stack and it stays
    // there until int_return.
    let frame = unsafe { &mut *frame };
    match frame.kind {
        INT_KIND_INTERRUPTS => interrupts(frame.pending),
        _ if frame.vector == VECTOR_PAGE_FAULT => page_fault(frame),
        _ => fatal(frame, "fault"),
    }
}

fn interrupts(mut pending: u64) {
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    while pending != 0 {
        let vector = pending.trailing_zeros();
        pending &= pending - 1;
        let f = VECTOR_FNS[vector as usize].load(Ordering::Relaxed);
        if f != 0 {
            // SAFETY: only `on_interrupt` stores here, always a fn(u32).
            let f: fn(u32) = unsafe { core::mem::transmute(f) };
            f(vector);
        }
    }
}

fn in_range(addr: u64, base: u64, size: u64) -> bool {
    addr >= base && addr - base < size
}

fn page_fault(frame: &mut IntFrame) {
    let page = frame.addr & !(PAGE - 1);
    let r = frame.reason;
    let stack_bottom = USER_STACK_TOP - USER_STACK_MAX;
    if r & FAULT_PRESENT == 0 {
        if in_range(frame.addr, stack_bottom, PAGE) {
            return fatal(frame, "stack overflow");
        }
        let demand = in_range(frame.addr, USER_HEAP_BASE, USER_HEAP_SIZE)
            || in_range(frame.addr, stack_bottom + PAGE, USER_STACK_MAX - PAGE);
        if demand && map_page(page).is_ok() {
            DEMAND_MAPS.fetch_add(1, Ordering::Relaxed);
            return;
        }
        return fatal(frame, "page fault");
    }
    if r & FAULT_WRITE != 0 && r & FAULT_WAS_WRITABLE != 0 {
        let done = if r & FAULT_COW != 0 {
            copy_on_write(page).inspect(|()| {
                COW_COPIES.fetch_add(1, Ordering::Relaxed);
            })
        } else {
            vm::protect(page, PAGE, vm::PROT_RW).inspect(|()| {
                REWRITABLE.fetch_add(1, Ordering::Relaxed);
            })
        };
        if done.is_ok() {
            return;
        }
        return fatal(frame, "copy-on-write failed (out of memory?)");
    }
    fatal(frame, "page fault")
}

/// Maps a fresh read-write page; when the reserve is spent, asks the mem
/// server for more (a batch) and tries once more.
fn map_page(page: u64) -> Result<(), abi::Error> {
    match vm::map(page, PAGE, vm::PROT_RW) {
        Err(abi::Error::OutOfMemory) => {
            crate::mem::top_up(crate::mem::TOP_UP_BATCH)?;
            vm::map(page, PAGE, vm::PROT_RW)
        }
        other => other,
    }
}

/// Replaces the shared page at `page` with a private copy.
fn copy_on_write(page: u64) -> Result<(), abi::Error> {
    let depth = COW_DEPTH.fetch_add(1, Ordering::Relaxed);
    let result = (|| {
        if depth >= USER_SCRATCH_PAGES {
            return Err(abi::Error::LimitReached);
        }
        let scratch = USER_SCRATCH_BASE + depth * PAGE;
        map_page(scratch)?;
        // SAFETY: `page` is mapped readable (a COW page) and `scratch` was
        // just mapped writable; both are whole pages that do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(page as *const u8, scratch as *mut u8, PAGE as usize);
        }
        vm::move_pages(page, scratch, PAGE)
    })();
    COW_DEPTH.fetch_sub(1, Ordering::Relaxed);
    result
}

/// Reports the fault, removes the handler and lets the fault happen again,
/// so the kernel ends the process with the fault as its status.
fn fatal(frame: &IntFrame, what: &str) {
    let access = if frame.reason & FAULT_WRITE != 0 {
        "write"
    } else if frame.reason & FAULT_EXEC != 0 {
        "exec"
    } else {
        "read"
    };
    if frame.vector == VECTOR_PAGE_FAULT {
        println!(
            "libmh: pid {}: {what}: {access} at {:#x} ({}), rip={:#x}",
            crate::process::getpid(),
            frame.addr,
            if frame.reason & FAULT_PRESENT != 0 {
                "protection"
            } else {
                "not mapped"
            },
            frame.rip
        );
    } else {
        println!(
            "libmh: pid {}: {what}: vector {} error={:#x} rip={:#x}",
            crate::process::getpid(),
            frame.vector,
            frame.error,
            frame.rip
        );
    }
    // SAFETY: removing our handler takes no pointers.
    unsafe { crate::raw::syscall3(abi::Sysno::SetHandler as u64, 0, 0, 0) };
}
