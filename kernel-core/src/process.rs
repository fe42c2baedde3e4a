//! Processes: the record the kernel keeps for each one, and the table of
//! them.
//!
//! Rules: a process record owns its address space and its saved user
//! registers; the record lives in a `Box` so the entry code can keep a raw
//! pointer to its frame; a process that exits releases its memory at once
//! and stays as a zombie (holding only its exit status) until its parent
//! reaps it; orphans go to init (pid 1). Each parent links its live
//! children in a list and its zombies in a queue, through the children's
//! records, so no operation on a family looks at anyone outside it.
//!
//! Process ids come from a [`GenTable`] that grows before it reuses a
//! slot, never gives slots back, reuses the oldest free slot and wraps its
//! generations: a pid is issued again only after its slot has been
//! through 2^18 generations, with every other free slot taken in turn
//! meanwhile (2^18 processes at the very least, 2^30 when few are alive),
//! so a pid held by a stale tool (a `kill` typed from an old `ps`) names
//! nothing rather than a newcomer.

extern crate alloc;

use crate::devices::DeviceId;
use crate::gentable::{GenTable, IdShape, Shape};
use crate::machine::Machine;
use crate::reserve::{ReserveId, Usage};
use abi::{Error, ExitStatus};
use alloc::boxed::Box;
use arrayvec::ArrayString;

pub type Pid = u32;

/// The first process, parent of orphans; its exit powers the machine off.
pub const INIT_PID: Pid = 1;

/// Bits of a pid that name its slot: at most 4,096 processes (zombies
/// included) at once.
const PID_SLOT_BITS: u32 = 12;
const _: () = assert!(1 << PID_SLOT_BITS == abi::kdev::PROCESSES_MAX);

/// Pids are table ids plus one (0 is "no process"), at most 2^30.
const PID_SHAPE: IdShape = IdShape {
    slot_bits: PID_SLOT_BITS,
    gen_bits: 30 - PID_SLOT_BITS,
    wraps: true,
    grow_first: true,
};

/// The shape, as a type.
pub struct PidShape;
impl Shape for PidShape {
    const SHAPE: IdShape = PID_SHAPE;
}

/// No process (an empty link).
pub const NO_PID: Pid = 0;

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
    Irq { mask: u64, dev: Option<DeviceId> },
    /// `dev_poll` on `dev` found no request: completed by whoever queues
    /// one, which writes it at `out`.
    Poll {
        dev: DeviceId,
        out: Option<crate::usercopy::UserPtr<abi::userdev::Request>>,
    },
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

pub struct Process<M: Machine> {
    /// Saved user registers; the entry code writes here directly.
    pub frame: M::Frame,
    pub pid: Pid,
    pub parent: Pid,
    pub name: ArrayString<32>,
    pub priority: u8,
    /// The CPUs it may run on (bit i: CPU i); 0 means every CPU.
    pub affinity: u64,
    pub state: State,
    /// None once the process has exited.
    pub space: Option<M::Space>,
    pub exit: ExitStatus,
    /// The registered fault/interrupt handler, if any.
    pub handler: Option<Handler>,
    /// Whether pending interrupts may be delivered to the handler now.
    pub int_enabled: bool,
    /// Pending interrupt vectors (bit n = vector n).
    pub pending: u64,
    /// The process's attachments.
    pub bus: crate::bus::Bus<crate::devices::Attachment>,
    /// The device names it may attach or register (inherited by fork,
    /// kept by exec, only ever narrowed).
    pub names: crate::names::NameScope,
    /// The reserve it draws on, and what it holds of it.
    pub reserve: ReserveId,
    pub usage: Usage,
    /// Its live children (a list through their `prev_sibling` and
    /// `next_sibling`), and its zombies (a queue through `next_zombie`).
    pub first_child: Pid,
    pub prev_sibling: Pid,
    pub next_sibling: Pid,
    pub zombie_head: Pid,
    pub zombie_tail: Pid,
    pub next_zombie: Pid,
    /// Deliveries to the handler not yet returned from (`int_return`).
    pub handler_depth: u32,
    /// The part of `usage.kernel_bytes` that is its bus table's storage.
    pub bus_bytes: u64,
    /// What its next fork gives the child: a reserve of its own (limit,
    /// process limit), staged through mempool.
    pub child_reserve: Option<ChildReserve>,
    /// A long system call that stopped at a preemption point and will be
    /// made again (its registers unchanged): how far it got. While it is
    /// set, no interrupt is delivered to the handler, so the next thing
    /// the process does is that call.
    pub restart: Option<Restart>,
}

/// Where a restartable system call stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restart {
    pub call: abi::Sysno,
    pub args: [u64; 3],
    /// Pages done so far.
    pub done: u64,
}

/// A reserve the next fork makes for its child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildReserve {
    pub limit: Option<u64>,
    pub process_limit: Option<u32>,
}

impl<M: Machine> Process<M> {
    /// What the kernel charges a reserve for one process record (its box
    /// in the heap, its slot in the process table and its slot's link in
    /// the ready queues).
    pub const RECORD_BYTES: u64 = crate::slab::footprint(core::mem::size_of::<Process<M>>()) as u64
        + 32
        + crate::runqueue::LINK_BYTES as u64;

    pub fn new(
        pid: Pid,
        parent: Pid,
        name: &str,
        priority: u8,
        space: M::Space,
        reserve: ReserveId,
    ) -> Process<M> {
        Process {
            frame: M::Frame::default(),
            pid,
            parent,
            name: short_name(name),
            priority: priority.min(PRIORITY_LEVELS as u8 - 1),
            affinity: 0,
            state: State::Runnable,
            space: Some(space),
            exit: ExitStatus::default(),
            handler: None,
            int_enabled: false,
            pending: 0,
            bus: crate::bus::Bus::new(),
            names: crate::names::NameScope::all(),
            reserve,
            usage: Usage::default(),
            first_child: NO_PID,
            prev_sibling: NO_PID,
            next_sibling: NO_PID,
            zombie_head: NO_PID,
            zombie_tail: NO_PID,
            next_zombie: NO_PID,
            handler_depth: 0,
            bus_bytes: 0,
            child_reserve: None,
            restart: None,
        }
    }
}

/// The table slot `pid` names (the run queue's index for it).
#[inline]
pub fn pid_slot(pid: Pid) -> usize {
    PID_SHAPE.slot(u64::from(pid.wrapping_sub(1)))
}

/// Every process, by pid.
pub struct Procs<M: Machine> {
    table: GenTable<Box<Process<M>>, PidShape>,
}

impl<M: Machine> Default for Procs<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Machine> Procs<M> {
    pub const fn new() -> Procs<M> {
        Procs {
            table: GenTable::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The table slot `pid` names (the run queue's index for it).
    #[inline]
    pub fn slot_of(pid: Pid) -> usize {
        pid_slot(pid)
    }

    /// Slots the table has made: every pid in it has a slot below this,
    /// and the next insert's slot is at most this.
    pub fn slots_made(&self) -> usize {
        self.table.slots_made()
    }

    #[inline]
    pub fn get(&self, pid: Pid) -> Option<&Process<M>> {
        self.table.get(u64::from(pid.wrapping_sub(1))).map(|b| &**b)
    }

    #[inline]
    pub fn get_mut(&mut self, pid: Pid) -> Option<&mut Process<M>> {
        self.table
            .get_mut(u64::from(pid.wrapping_sub(1)))
            .map(|b| &mut **b)
    }

    /// Two different processes, both to change.
    pub fn pair_mut(&mut self, a: Pid, b: Pid) -> Option<(&mut Process<M>, &mut Process<M>)> {
        self.table
            .get_pair_mut(u64::from(a.wrapping_sub(1)), u64::from(b.wrapping_sub(1)))
            .map(|(x, y)| (&mut **x, &mut **y))
    }

    /// Stores `proc` (its `pid` field is set to the pid it gets). On
    /// failure the process comes back, untouched.
    #[allow(clippy::result_large_err)] // the error is the process, handed back
    pub fn insert(&mut self, proc: Process<M>) -> Result<Pid, (abi::Error, Process<M>)> {
        let boxed = crate::try_box(proc).map_err(|p| (abi::Error::OutOfMemory, p))?;
        match self.table.insert(boxed) {
            Ok(id) => {
                let pid = id as Pid + 1;
                if let Some(p) = self.table.get_mut(id) {
                    p.pid = pid;
                }
                Ok(pid)
            }
            Err((e, b)) => Err((e, *b)),
        }
    }

    pub fn remove(&mut self, pid: Pid) -> Option<Box<Process<M>>> {
        self.table.remove(u64::from(pid.wrapping_sub(1)))
    }

    /// The process after `pid` in table order (`NO_PID` for the first), for
    /// listings.
    pub fn next_after(&self, pid: Pid) -> Option<Pid> {
        let from = if pid == NO_PID {
            0
        } else {
            PID_SHAPE.slot(u64::from(pid - 1)) + 1
        };
        self.table.next_from(from).map(|id| id as Pid + 1)
    }
}

impl<M: Machine> Process<M> {
    /// Changes the name (exec).
    pub fn rename(&mut self, name: &str) {
        self.name = short_name(name);
    }

    /// Its address space: `BadAddress` once it has none (it exited), so a
    /// user pointer of a process being torn down reaches nothing.
    #[inline(always)]
    pub fn space(&mut self) -> Result<&mut M::Space, Error> {
        self.space.as_mut().ok_or(Error::BadAddress)
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
