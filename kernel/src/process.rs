//! Processes: the record the kernel keeps for each one, and the table of
//! them.
//!
//! Rules: a process record owns its address space and its saved user
//! registers; the record lives in a `Box` so the entry code can keep a raw
//! pointer to its frame; a process that exits releases its memory at once
//! and stays as a zombie (holding only its exit status) until its parent
//! reaps it; orphans go to init (pid 1).

use crate::arch::entry::TrapFrame;
use crate::arch::paging::PageTable;
use abi::ExitStatus;
use alloc::boxed::Box;
use arrayvec::ArrayString;

pub type Pid = u32;

/// The first process, parent of orphans; its exit powers the machine off.
pub const INIT_PID: Pid = 1;

/// Priority levels; 0 is the most urgent.
pub const PRIORITY_LEVELS: usize = 8;
/// The priority of a process that names none.
pub const DEFAULT_PRIORITY: u8 = 4;

/// What a blocked process waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// `wait_child` found live children but no zombie (restarted when
    /// woken).
    Child,
    /// `irq_wait(mask)` (or `port_out_wait` on device `dev`) found none of
    /// `mask` pending: completed by whoever raises one.
    Irq {
        mask: u64,
        dev: Option<crate::bus::DeviceId>,
    },
    /// `dev_poll` on `dev` found no request: completed by whoever queues
    /// one, which writes it at `out`.
    Poll { dev: crate::bus::DeviceId, out: u64 },
}

/// Where a process wants its faults and interrupts delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handler {
    pub entry: u64,
    pub stack_base: u64,
    pub stack_size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Runnable,
    Blocked(Block),
    Zombie,
}

pub struct Process {
    /// Saved user registers; the entry code writes here directly.
    pub frame: TrapFrame,
    pub pid: Pid,
    pub parent: Pid,
    pub name: ArrayString<32>,
    pub priority: u8,
    pub state: State,
    /// Whether the process sits in the ready queue (kept here so that
    /// queueing is O(1)).
    pub queued: bool,
    /// None once the process has exited.
    pub space: Option<PageTable>,
    pub exit: ExitStatus,
    /// The registered fault/interrupt handler, if any.
    pub handler: Option<Handler>,
    /// Whether pending interrupts may be delivered to the handler now.
    pub int_enabled: bool,
    /// Pending interrupt vectors (bit n = vector n).
    pub pending: u64,
    /// The process's attachments.
    pub bus: kernel_core::bus::Bus<crate::bus::Attachment>,
    /// Its frame reserve (see `mm::ChargedFrames`).
    pub reserve: Reserve,
    /// The device names it may attach or register (inherited by fork,
    /// kept by exec, only ever narrowed).
    pub names: kernel_core::names::NameScope,
}

/// How many page references a process holds, and how many it may.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reserve {
    pub used: u64,
    /// None: no limit (until the mem server sets one).
    pub limit: Option<u64>,
}

impl Process {
    pub fn new(pid: Pid, parent: Pid, name: &str, priority: u8, space: PageTable) -> Process {
        Process {
            frame: TrapFrame::default(),
            pid,
            parent,
            name: short_name(name),
            priority: priority.min(PRIORITY_LEVELS as u8 - 1),
            state: State::Runnable,
            queued: false,
            space: Some(space),
            exit: ExitStatus::default(),
            handler: None,
            int_enabled: false,
            pending: 0,
            bus: kernel_core::bus::Bus::new(),
            reserve: Reserve::default(),
            names: kernel_core::names::NameScope::all(),
        }
    }
}

impl Process {
    /// Changes the name (exec).
    pub fn rename(&mut self, name: &str) {
        self.name = short_name(name);
    }
}

/// The first 32 bytes' worth of whole characters of `name`.
fn short_name(name: &str) -> ArrayString<32> {
    let mut short = ArrayString::new();
    for c in name.chars() {
        if short.try_push(c).is_err() {
            break;
        }
    }
    short
}

/// Boxes a value, or hands it back if the heap is exhausted (no panic,
/// and nothing the value owns is lost).
#[allow(clippy::result_large_err)] // the error is the value itself, handed back
pub fn try_box<T>(value: T) -> Result<Box<T>, T> {
    let layout = core::alloc::Layout::new::<T>();
    // SAFETY: Process and friends are not zero-sized; the pointer is checked
    // for null, written before use, and handed to Box with the same layout
    // the global allocator will free it with.
    unsafe {
        let ptr = alloc::alloc::alloc(layout).cast::<T>();
        if ptr.is_null() {
            return Err(value);
        }
        ptr.write(value);
        Ok(Box::from_raw(ptr))
    }
}
