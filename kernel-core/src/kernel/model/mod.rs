//! A randomized model test of the whole kernel on the fake machine.
//!
//! Each seed boots a kernel and then drives whatever process the scheduler
//! has made current through random system calls — fork, exit, wait_child,
//! kills through the proc device, yields, the memory calls, attaching and
//! detaching kernel devices, user devices created by some processes and
//! used by others (ports, fused calls, polls, IRQs, DMA), mempool, handlers,
//! faults and garbage arguments — as the trap glue does (`Model::call`:
//! the IPC fast path first for the two fused calls, then `dispatch` and
//! `settle`). Timer ticks, preemption points and device interrupts come
//! between calls; when every process sleeps, an interrupt wakes one, or a
//! sleeper that no interrupt can wake is killed from outside. After every
//! call and event the whole state is checked (`audit::Auditor`; its frame
//! bookkeeping is rebuilt from scratch every 50 checks and at the end).
//! At the end every process but init is killed and reaped, init lets go
//! of what it took since boot, and the machine must be back at its
//! post-boot frames exactly.
//!
//! init never ends itself (that powers the machine off) and keeps its
//! memory calls to pages of its own, so the post-boot baseline is exact.
//! Seeds run on machines of 6000, 300 or 180 frames, so some run out.
//!
//! This file is the driver: the scratch page's inputs, booting with them,
//! `Model` and its `call` (made as the trap glue makes it, the state
//! checked after). What the driver does with it is split by concept:
//! `args` picks arguments, `calls` picks the next call, `actions` the acts
//! of several calls (serving, using a device, killing, mempool, faults),
//! `events` what comes between calls and the teardown, `tests` the runs
//! and the tests. Rules: every random choice comes from the seed's `Rng`,
//! so a seed replays the same run; init's calls go through
//! `allowed_for_init`.

mod actions;
mod args;
mod calls;
mod events;
mod tests;

use super::audit::{self, Auditor};
use super::tests::SCRATCH;
use super::{Kernel, Settled};
use crate::devices::Attachment;
use crate::devices::kdev::KernelState;
use crate::fake::{self, Fake, FakeFrame};
use crate::machine::UserFrame;
use crate::process::{INIT_PID, Pid, State, pid_slot};
use crate::syscall::{self, Args};
use crate::testrng::Rng;
use crate::usercopy::{UserPtr, copy_to_user};
use abi::bus::*;
use abi::kdev::*;
use abi::{DeviceConfig, Error, Sysno};
use std::collections::BTreeSet;

/// Where a process's `syscall` instruction returns to (and, two bytes
/// before, the instruction itself: a process whose `rip` is there makes
/// its call again).
pub(super) const RET_PC: u64 = 0x40_1000;
const SYSCALL_PC: u64 = RET_PC - 2;
/// The handler entry processes register.
pub(super) const HANDLER_PC: u64 = 0x40_3000;

/// The scratch page (inherited by every fork) holds the calls' inputs.
pub(super) const NAMES: [&str; 11] = [
    "registry", "bootfs", "klog", "platform", "mempool", "proc", "d0", "d1", "d2", "d3", "nosuch",
];
const KERNEL_NAMES: usize = 6;
pub(super) const NAMES_AT: u64 = SCRATCH;
pub(super) const CONFIGS_AT: u64 = SCRATCH + 0x200;
const ELF_AT: u64 = SCRATCH + 0x400;
const CMD_AT: u64 = SCRATCH + 0x500;
const CMD: &[u8] = b"reborn arg";
const LIST_AT: u64 = SCRATCH + 0x600;
const LIST: &[u8] = b"d0\0d1\0proc\0registry\0klog";
/// Out-buffers: exit status, device info, request, sys info.
pub(super) const OUT_AT: u64 = SCRATCH + 0x800;
const DMA_AT: u64 = SCRATCH + 0xa00;
/// The pages the memory calls work on: in the scratch page's leaf table,
/// so init's tables never change.
pub(super) const VM_BASE: u64 = SCRATCH + 0x1_0000;
const VM_PAGES: u64 = 256;

/// Device configurations in the scratch page: (name, irq lines, I/O
/// space, vector, queue per client); the last ones are invalid.
pub(super) const CONFIGS: [(&str, u32, u32, u32, u32); 8] = [
    ("d0", 4, 64, 5, 2),
    ("d1", 1, 8, 6, 0),
    ("d2", 16, 256, 62, 1),
    ("d3", 0, 0, 7, 3),
    ("d0", 2, 16, 8, 4),
    ("", 1, 8, 9, 1),
    ("d1", 17, 8, 9, 1),
    ("d 2", 1, 8, 9, 1),
];

/// How many processes may be alive at once (zombies aside).
const MAX_LIVE: usize = 24;

fn config(name: &str, irq_lines: u32, iospace_size: u32, vector: u32, queue: u32) -> DeviceConfig {
    let mut c = DeviceConfig {
        name_len: name.len() as u32,
        irq_lines,
        iospace_size,
        vector,
        queue_per_client: queue,
        ..DeviceConfig::default()
    };
    c.name[..name.len()].copy_from_slice(name.as_bytes());
    c
}

/// What the runs did (to check they did what they are for).
#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub calls: u64,
    /// Calls the IPC fast path took.
    pub fast: u64,
    pub forks: u64,
    pub exits: u64,
    pub kills: u64,
    pub server_deaths_with_requests: u64,
    pub devices_made: u64,
    pub polls: u64,
    pub idle: u64,
    pub outside_kills: u64,
    pub faults: u64,
    pub max_live: u64,
    /// Seeds that met the known revoked-sleeper bug (tolerant runs).
    pub revoked_sleepers: u64,
    /// Calls refused for want of memory or at a limit.
    pub out_of_memory: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.calls += o.calls;
        self.fast += o.fast;
        self.forks += o.forks;
        self.exits += o.exits;
        self.kills += o.kills;
        self.server_deaths_with_requests += o.server_deaths_with_requests;
        self.devices_made += o.devices_made;
        self.polls += o.polls;
        self.idle += o.idle;
        self.outside_kills += o.outside_kills;
        self.faults += o.faults;
        self.max_live = self.max_live.max(o.max_live);
        self.revoked_sleepers += o.revoked_sleepers;
        self.out_of_memory += o.out_of_memory;
    }
}

/// What happened last (for reports).
enum Last {
    Call(Pid, u64, [u64; 6]),
    Fault(Pid, u64, u64, bool),
    Raise(Pid, u32),
    Kill(Pid),
    Event(&'static str),
}

impl core::fmt::Debug for Last {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Last::Call(pid, n, a) => match Sysno::from_raw(n) {
                Some(s) => write!(f, "pid {pid}: {s:?} {a:x?}"),
                None => write!(f, "pid {pid}: syscall #{n} {a:x?}"),
            },
            Last::Fault(pid, v, addr, w) => {
                write!(f, "pid {pid}: fault {v} at {addr:#x} (write {w})")
            }
            Last::Raise(pid, v) => write!(f, "interrupt {v} raised on pid {pid}"),
            Last::Kill(pid) => write!(f, "pid {pid} killed from outside"),
            Last::Event(e) => f.write_str(e),
        }
    }
}

/// One seed's run.
struct Model {
    k: Kernel<Fake>,
    rng: Rng,
    audit: Auditor,
    /// Whether the two fused calls try the fast path first (as the real
    /// trap glue does).
    fast_path: bool,
    /// Rebuild the auditor's frame bookkeeping from scratch every this
    /// many checks (0: no checks at all).
    full_every: u64,
    checks: u64,
    seed: u64,
    step: usize,
    last: Last,
    /// Print every call (`MODEL_TRACE=1`).
    trace: bool,
    stats: Stats,
    /// Pids that existed once (for stale ones).
    seen_pids: Vec<Pid>,
    /// Handles that were detached (stale).
    stale: Vec<u64>,
    /// What init held after boot: its handles and pages, the frames in use.
    boot_handles: Vec<u64>,
    boot_pages: BTreeSet<u64>,
    boot_used: u64,
    boot_tables: u64,
}

/// A booted kernel on a machine of `frames` frames, the calls' inputs in
/// init's scratch page (which every fork inherits): device names at
/// `NAMES_AT` (32 bytes apart, in `NAMES` order), `CONFIGS` at
/// `CONFIGS_AT` (64 apart), an image and a command line for exec, a name
/// list for restrict_names.
pub(super) fn boot_with_inputs(frames: u64) -> Kernel<Fake> {
    let mut k = super::tests::boot();
    fake::with(|s| s.total = frames);
    let space = k.current().space.as_mut().unwrap();
    for (i, name) in NAMES.iter().enumerate() {
        copy_to_user::<Fake>(space, NAMES_AT + 32 * i as u64, name.as_bytes()).unwrap();
    }
    for (i, &(n, l, s, v, q)) in CONFIGS.iter().enumerate() {
        UserPtr::<DeviceConfig>::new(CONFIGS_AT + 64 * i as u64)
            .unwrap()
            .write::<Fake>(space, &config(n, l, s, v, q))
            .unwrap();
    }
    let elf = fake::tiny_elf(&[0x90; 16]);
    copy_to_user::<Fake>(space, ELF_AT, &elf).unwrap();
    copy_to_user::<Fake>(space, CMD_AT, CMD).unwrap();
    copy_to_user::<Fake>(space, LIST_AT, LIST).unwrap();
    k
}

/// Makes runnable process `pid` current, as a more urgent wake-up would
/// (the current process, if runnable, goes back to its queue). False if
/// `pid` cannot run.
pub(super) fn run_as(k: &mut Kernel<Fake>, pid: Pid) -> bool {
    if k.procs.get(pid).is_none_or(|p| p.state != State::Runnable) {
        return false;
    }
    if k.current_pid() == pid {
        return true;
    }
    let cur = k.current_pid();
    if k.procs.get(cur).is_some_and(|p| p.state == State::Runnable) {
        k.enqueue(cur);
    }
    k.ready.remove(pid_slot(pid));
    k.cpus[0].next = Some(pid);
    k.cpus[0].resched = true;
    k.settle() == Settled::Run && k.current_pid() == pid
}

impl Model {
    fn new(seed: u64, frames: u64) -> Model {
        let k = boot_with_inputs(frames);
        let mut m = Model {
            k,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            audit: Auditor::default(),
            fast_path: seed % 4 != 3,
            full_every: 1,
            checks: 0,
            seed,
            step: 0,
            last: Last::Event("boot"),
            trace: std::env::var_os("MODEL_TRACE").is_some(),
            stats: Stats::default(),
            seen_pids: vec![INIT_PID],
            stale: Vec::new(),
            boot_handles: Vec::new(),
            boot_pages: BTreeSet::new(),
            boot_used: 0,
            boot_tables: 0,
        };
        // init holds proc (to kill with) from the start; children inherit it.
        let rights = RIGHT_READ | RIGHT_WRITE | RIGHT_KILL | RIGHT_CLONE;
        let h = m.attach(5, rights);
        assert!(h.is_some_and(|h| h >= 0), "init attaches proc: {h:?}");
        m.boot_handles = m.k.current().bus.handles().collect();
        m.boot_pages = m.pages_of(INIT_PID);
        m.boot_used = fake::with(|s| s.used());
        m.boot_tables = m.k.current().usage.tables;
        m.check(true);
        m
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {} step {} (after {:?}): {what}",
            self.seed, self.step, self.last
        )
    }

    fn check(&mut self, running: bool) {
        self.checks += 1;
        if self.full_every == 0 {
            return;
        }
        let full = self.checks == 1 || self.checks.is_multiple_of(self.full_every);
        if let Err(e) = self.audit.check(&self.k, running, full) {
            self.fail(&e);
        }
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.rng.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.below(v.len() as u64) as usize])
    }

    fn me(&self) -> Pid {
        self.k.current_pid()
    }

    fn live_pids(&self) -> Vec<Pid> {
        audit::pids(&self.k)
            .into_iter()
            .filter(|&p| self.k.procs.get(p).unwrap().state != State::Zombie)
            .collect()
    }

    /// The current process's page addresses.
    fn pages_of(&self, pid: Pid) -> BTreeSet<u64> {
        let mut pages = BTreeSet::new();
        if let Some(space) = self.k.procs.get(pid).and_then(|p| p.space.as_ref()) {
            space
                .walk(true, &mut |_| {}, &mut |va, _| {
                    pages.insert(va);
                })
                .unwrap();
        }
        pages
    }

    /// init may do anything but end itself or touch what it had at boot.
    fn allowed_for_init(&self, n: u64, a: &[u64; 6]) -> bool {
        let in_region = |va: u64, len: u64| {
            va >= VM_BASE
                && len <= VM_PAGES * 4096
                && va
                    .checked_add(len)
                    .is_some_and(|e| e <= VM_BASE + VM_PAGES * 4096)
        };
        let p = self.k.procs.get(INIT_PID).unwrap();
        match Sysno::from_raw(n) {
            Some(Sysno::Exit | Sysno::Exec | Sysno::SetHandler | Sysno::DevCreate) => false,
            Some(Sysno::IntEnable) => a[0] == 0,
            Some(Sysno::VmMap | Sysno::VmProtect | Sysno::VmUnmap) => in_region(a[0], a[1]),
            Some(Sysno::VmMove) => in_region(a[0], a[2]) && in_region(a[1], a[2]),
            Some(Sysno::Detach) => !self.boot_handles.contains(&a[0]),
            Some(Sysno::PortOut | Sysno::PortOutWait) => match p.bus.get(a[0]).map(|e| &e.value) {
                Ok(Attachment::Kernel {
                    state: KernelState::Proc(selection),
                    ..
                }) => {
                    let kill =
                        a[1] == u64::from(PROC_PORT_KILL) || a[1] == u64::from(PROC_PORT_KILL_TREE);
                    !(kill && selection.pid == u64::from(INIT_PID))
                }
                _ => true,
            },
            _ => true,
        }
    }

    /// The current process makes system call `n` with `a`, as the trap
    /// glue does it; then the state is checked.
    fn call(&mut self, n: u64, a: [u64; 6]) -> Settled {
        let caller = self.me();
        let (n, a) = if caller == INIT_PID && !self.allowed_for_init(n, &a) {
            (Sysno::Yield as u64, [0; 6])
        } else {
            (n, a)
        };
        self.last = Last::Call(caller, n, a);
        self.stats.calls += 1;
        {
            let f = &mut self.k.current().frame;
            let (rsp, rflags) = (f.rsp, f.rflags);
            *f = FakeFrame::call(n, a);
            f.rip = RET_PC;
            f.rsp = rsp;
            f.rflags = rflags;
        }
        let fused = n == Sysno::PortOutWait as u64 || n == Sysno::DevReplyPoll as u64;
        if self.fast_path && fused && self.k.ipc_fast_path(n, &a) {
            self.stats.fast += 1;
            if self.trace {
                eprintln!(
                    "{:4} {:?} -> fast path to pid {}",
                    self.step,
                    self.last,
                    self.me()
                );
            }
            self.check(true);
            return Settled::Run;
        }
        let ret = syscall::dispatch(&mut self.k, &Args { number: n, a });
        if ret
            .is_some_and(|r| r == Error::OutOfMemory.to_ret() || r == Error::LimitReached.to_ret())
        {
            self.stats.out_of_memory += 1;
        }
        if let Some(r) = ret {
            if self.me() != caller {
                self.fail("a call that returns changed the current process");
            }
            self.k.current().frame.set_result(r as u64);
        }
        let settled = self.k.settle();
        if self.trace {
            eprintln!(
                "{:4} {:?} -> {:?} | now pid {} {:?}",
                self.step,
                self.last,
                ret.map(|r| Error::decode(r).map_err(|e| format!("{e:?}"))),
                self.me(),
                settled
            );
        }
        self.check(settled == Settled::Run);
        settled
    }

    fn attach(&mut self, name: usize, rights: u32) -> Option<isize> {
        let len = NAMES[name].len() as u64;
        let s = self.call(
            Sysno::Attach as u64,
            [0, NAMES_AT + 32 * name as u64, len, u64::from(rights), 0, 0],
        );
        (s == Settled::Run).then(|| self.k.current().frame.result() as isize)
    }
}
