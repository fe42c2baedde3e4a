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

use super::audit::{self, Auditor};
use super::tests::SCRATCH;
use super::{Kernel, Settled, UserFault};
use crate::devices::kdev::KernelState;
use crate::devices::{Attachment, Device, DeviceId};
use crate::fake::{self, Fake, FakeFrame};
use crate::machine::{AddressSpace, Machine, UserFrame};
use crate::process::{Block, INIT_PID, Pid, State, pid_slot};
use crate::syscall::{self, Args};
use crate::testrng::Rng;
use crate::usercopy::{UserPtr, copy_to_user};
use abi::bus::*;
use abi::kdev::*;
use abi::{DeviceConfig, Error, ExitKind, ExitStatus, Sysno};
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

fn killed(pid: Pid) -> ExitStatus {
    ExitStatus {
        pid,
        kind: ExitKind::KilledBy as u32,
        code: 0,
        ..ExitStatus::default()
    }
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

    /// A word for a garbage argument.
    fn garbage(&mut self) -> u64 {
        match self.below(10) {
            0 => 0,
            1 => self.below(16),
            2 => u64::MAX,
            3 => self.rng.next(),
            4 => {
                let hs: Vec<u64> = self.k.current().bus.handles().collect();
                self.pick(&hs).unwrap_or(1)
            }
            5 => SCRATCH + self.below(0x1000),
            6 => 1 << self.below(64),
            7 => {
                let pids = self.seen_pids.clone();
                u64::from(self.pick(&pids).unwrap_or(1))
            }
            8 => VM_BASE + 4096 * self.below(VM_PAGES),
            _ => abi::layout::USER_END - 4096 * self.below(4),
        }
    }

    /// Handles of the current process that `f` selects.
    fn handles(&self, f: impl Fn(&Attachment, u32) -> bool) -> Vec<u64> {
        let p = self.k.procs.get(self.me()).unwrap();
        p.bus
            .iter()
            .filter(|(_, e)| f(&e.value, e.rights))
            .map(|(h, _)| h)
            .collect()
    }

    /// One of `hs` mostly; else any handle, a stale one or garbage.
    fn handle_from(&mut self, hs: &[u64]) -> u64 {
        if !hs.is_empty() && !self.one_in(8) {
            return self.pick(hs).unwrap();
        }
        match self.below(3) {
            0 => {
                let all = self.handles(|_, _| true);
                self.pick(&all).unwrap_or(0)
            }
            1 => {
                let stale = self.stale.clone();
                self.pick(&stale).unwrap_or(77)
            }
            _ => self.garbage(),
        }
    }

    fn user_handles(&self) -> Vec<(u64, DeviceId, u64)> {
        let p = self.k.procs.get(self.me()).unwrap();
        p.bus
            .iter()
            .filter_map(|(h, e)| match e.value {
                Attachment::Client { dev, client } => Some((h, dev, client)),
                _ => None,
            })
            .collect()
    }

    fn served(&self) -> Vec<(u64, DeviceId)> {
        let p = self.k.procs.get(self.me()).unwrap();
        p.bus
            .iter()
            .filter_map(|(h, e)| match e.value {
                Attachment::Serve { dev } => Some((h, dev)),
                _ => None,
            })
            .collect()
    }

    fn size(&mut self) -> u64 {
        [1, 2, 4, 8, 8, 8, 3, 0][self.below(8) as usize]
    }

    /// A range of pages for the memory calls.
    fn pages(&mut self) -> (u64, u64) {
        let n = match self.below(20) {
            0 => 64 + self.below(140),
            1..=8 => 1,
            _ => 1 + self.below(8),
        };
        let n = n.min(VM_PAGES);
        let start = self.below(VM_PAGES - n + 1);
        match self.below(300) {
            0 => (SCRATCH, 4096),
            1..=4 => (self.garbage() & !0xfff, 4096 * (1 + self.below(4))),
            5..=9 => (self.garbage(), self.garbage()),
            _ => (VM_BASE + 4096 * start, 4096 * n),
        }
    }

    fn prot(&mut self) -> u64 {
        [1, 3, 3, 3, 5, 0, 7, 0x107, 8][self.below(9) as usize]
    }

    /// The vectors client handle `h` (of device `dev`, client `client`)
    /// mapped, as a mask; sometimes other masks.
    fn reply_mask(&mut self, dev: DeviceId, client: u64) -> u64 {
        let mut mask = 0;
        if let Ok(u) = self.k.devices.user(dev)
            && let Ok(c) = u.client(client)
        {
            for line in 0..16 {
                if let Some(v) = c.irq_vector(line) {
                    mask |= 1 << v;
                }
            }
        }
        match self.below(12) {
            0 => 0,
            1 => 1 << 63,
            2 => 1 << self.below(63),
            3 => mask | 1,
            _ if mask == 0 => 1 << (20 + self.below(10)),
            _ => mask,
        }
    }

    /// A client id of `dev` for its server to answer.
    fn client_of(&mut self, dev: DeviceId) -> u64 {
        let (live, closed) = match self.k.devices.user(dev) {
            Ok(u) => {
                let a = u.audit();
                let live: Vec<u64> = a
                    .clients
                    .iter()
                    .filter(|c| !c.closed)
                    .map(|c| c.id)
                    .collect();
                let closed: Vec<u64> = a
                    .clients
                    .iter()
                    .filter(|c| c.closed)
                    .map(|c| c.id)
                    .collect();
                (live, closed)
            }
            Err(_) => (Vec::new(), Vec::new()),
        };
        match self.below(10) {
            0..=5 => self.pick(&live).unwrap_or(0),
            6 | 7 => self.k.current().frame.rsi,
            8 => self.pick(&closed).unwrap_or(1 << 16),
            _ => self.garbage(),
        }
    }

    /// A pid to kill: often a server with requests waiting.
    fn victim(&mut self) -> u64 {
        let busy: Vec<Pid> = audit::devices(&self.k)
            .into_iter()
            .filter_map(|(id, _)| match self.k.devices.get(id) {
                Ok(Device::User(u)) if u.pending_requests() > 0 => Some(u.server),
                _ => None,
            })
            .collect();
        let live = self.live_pids();
        match self.below(10) {
            0..=3 if !busy.is_empty() => u64::from(self.pick(&busy).unwrap()),
            0..=6 => u64::from(self.pick(&live).unwrap()),
            7 => u64::from(self.me()),
            _ => {
                let seen = self.seen_pids.clone();
                u64::from(self.pick(&seen).unwrap())
            }
        }
    }

    /// The current process does something.
    fn act(&mut self) -> Settled {
        let me = self.me();
        let frame = self.k.current().frame;
        if frame.rip == SYSCALL_PC {
            // A sleeping wait_child woken, or a long call stopped at a
            // preemption point: the same call again.
            let (n, a) = frame.syscall();
            return self.call(n, a);
        }
        if frame.rip == HANDLER_PC && !self.one_in(4) {
            return self.call(Sysno::IntReturn as u64, [frame.rdi, 0, 0, 0, 0, 0]);
        }
        // A server mostly serves, a client mostly waits for its answers.
        let served = self.served();
        if !served.is_empty() && self.below(100) < 60 {
            return self.serve(&served);
        }
        let clients: Vec<(u64, DeviceId, u64)> = self
            .user_handles()
            .into_iter()
            .filter(|&(_, dev, _)| self.k.devices.get(dev).is_ok())
            .collect();
        if !clients.is_empty() && self.below(100) < 45 {
            return self.use_device(&clients);
        }
        let live = self.live_pids().len();
        use Sysno::*;
        let c = |n: Sysno| n as u64;
        match self.below(100) {
            0..=7 if live < MAX_LIVE => {
                let s = self.call(c(Fork), [0; 6]);
                let r = self.k.procs.get(me).unwrap().frame.result() as isize;
                if r > 0 {
                    self.stats.forks += 1;
                    self.seen_pids.push(r as Pid);
                    self.stats.max_live = self.stats.max_live.max(live as u64 + 1);
                }
                s
            }
            0..=11 => {
                let flags = self.below(2);
                let out = if self.one_in(10) {
                    self.garbage()
                } else {
                    OUT_AT
                };
                self.call(c(WaitChild), [out, flags, 0, 0, 0, 0])
            }
            12..=13 => {
                if me != INIT_PID {
                    self.stats.exits += 1;
                }
                let code = self.below(4);
                self.call(c(Exit), [code, 0, 0, 0, 0, 0])
            }
            14..=16 => self.call(c(Yield), [0; 6]),
            17..=20 => {
                let (va, len) = self.pages();
                let prot = self.prot();
                self.call(c(VmMap), [va, len, prot, 0, 0, 0])
            }
            // More mempool: its limits make calls run out of memory.
            22 if self.one_in(2) => self.mempool(),
            21..=22 => {
                let (va, len) = self.pages();
                self.call(c(VmUnmap), [va, len, 0, 0, 0, 0])
            }
            23 => {
                let (va, len) = self.pages();
                let prot = self.prot();
                self.call(c(VmProtect), [va, len, prot, 0, 0, 0])
            }
            24 => {
                let (dst, len) = self.pages();
                let (src, _) = self.pages();
                self.call(c(VmMove), [dst, src, len, 0, 0, 0])
            }
            25..=27 => {
                // A kernel device.
                let name = self.below(KERNEL_NAMES as u64 + 1) as usize;
                let rights = match self.below(4) {
                    0 => self.rng.next() as u32 & RIGHTS_ALL,
                    _ => {
                        RIGHT_READ | RIGHT_WRITE | RIGHT_CLONE | RIGHT_IRQ & self.rng.next() as u32
                    }
                };
                let rights = if name == 5 {
                    rights | RIGHT_KILL
                } else {
                    rights
                };
                let coe = if self.one_in(6) {
                    ATTACH_CLOSE_ON_EXEC
                } else {
                    0
                };
                let len = NAMES[name].len() as u64;
                self.call(
                    c(Attach),
                    [
                        0,
                        NAMES_AT + 32 * name as u64,
                        len,
                        u64::from(rights | coe),
                        0,
                        0,
                    ],
                )
            }
            28..=29 => {
                let mut all = self.handles(|_, _| true);
                if !self.one_in(10) {
                    all.retain(|&h| h != 0);
                }
                let h = self.handle_from(&all);
                let s = self.call(c(Detach), [h, 0, 0, 0, 0, 0]);
                if s == Settled::Run && self.me() == me && self.k.current().frame.result() == 0 {
                    self.stale.push(h);
                }
                s
            }
            30..=34 => self.kill(),
            35..=39 | 97..=99 => {
                let i = self.below(CONFIGS.len() as u64);
                let reg = if self.one_in(10) { self.garbage() } else { 0 };
                let s = self.call(c(DevCreate), [reg, CONFIGS_AT + 64 * i, 0, 0, 0, 0]);
                if s == Settled::Run && (self.k.current().frame.result() as isize) >= 0 {
                    self.stats.devices_made += 1;
                }
                s
            }
            40..=45 | 94..=96 => {
                // A user device, as a client: mostly one that exists.
                let names: Vec<usize> = (6..10)
                    .filter(|&i| self.k.devices.lookup(NAMES[i]).is_some())
                    .collect();
                let name = match self.pick(&names) {
                    Some(i) if !self.one_in(5) => i,
                    _ => 6 + self.below(5) as usize,
                };
                let rights = match self.below(5) {
                    0 => self.rng.next() as u32 & RIGHTS_ALL,
                    1 => RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ | RIGHT_DMA,
                    _ => RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ | RIGHT_DMA | RIGHT_CLONE,
                };
                let len = NAMES[name].len() as u64;
                self.call(
                    c(Attach),
                    [0, NAMES_AT + 32 * name as u64, len, u64::from(rights), 0, 0],
                )
            }
            46..=48 => {
                let hs: Vec<u64> = self.user_handles().iter().map(|x| x.0).collect();
                let h = self.handle_from(&hs);
                let port = self.below(4);
                let size = self.size();
                let value = self.rng.next();
                self.call(c(PortOut), [h, port, size, value, 0, 0])
            }
            49..=50 => {
                let hs = self.handles(|_, _| true);
                let h = self.handle_from(&hs);
                let port = if self.one_in(2) {
                    self.below(16)
                } else {
                    self.below(260)
                };
                let size = self.size();
                self.call(c(PortIn), [h, port, size, 0, 0, 0])
            }
            51..=57 => {
                let us = self.user_handles();
                let (h, mask) = match self.pick(&us) {
                    Some((h, dev, client)) if !self.one_in(8) => (h, self.reply_mask(dev, client)),
                    _ => {
                        let all = self.handles(|_, _| true);
                        (self.handle_from(&all), 1 << self.below(64))
                    }
                };
                let port = self.below(4);
                let size = if self.one_in(10) { self.size() } else { 8 };
                let value = self.rng.next();
                self.call(c(PortOutWait), [h, port, size, value, mask, 0])
            }
            58..=60 => {
                let us = self.user_handles();
                let (h, lines) = match self.pick(&us) {
                    Some((h, dev, _)) => (h, self.k.devices.user(dev).map_or(1, |u| u.irq_lines)),
                    None => (self.garbage(), 1),
                };
                let line = self.below(u64::from(lines) + 1);
                let vector = match self.below(6) {
                    0 => self.below(70),
                    _ => 20 + self.below(6),
                };
                self.call(c(IrqMap), [h, line, vector, 0, 0, 0])
            }
            61..=64 => {
                let sv = self.served();
                let h = match self.pick(&sv) {
                    Some((h, _)) if !self.one_in(10) => h,
                    _ => self.garbage(),
                };
                let out = match self.below(8) {
                    0 | 1 => OUT_AT + 0x80,
                    2 => self.garbage(),
                    _ => 0,
                };
                let flags = if self.one_in(3) {
                    abi::syscall::POLL_NOWAIT
                } else {
                    0
                };
                let s = self.call(c(DevPoll), [h, out, flags, 0, 0, 0]);
                self.stats.polls += 1;
                s
            }
            65..=70 => {
                let sv = self.served();
                let (h, dev) = match self.pick(&sv) {
                    Some(x) if !self.one_in(10) => x,
                    _ => (self.garbage(), 0),
                };
                let client = self.client_of(dev);
                let (lines, space) = self
                    .k
                    .devices
                    .user(dev)
                    .map_or((1, 8), |u| (u.irq_lines, u.iospace_size));
                let port_size = match self.below(6) {
                    0 => 0,
                    1 => self.garbage(),
                    _ => {
                        let size = self.size();
                        (self.below(u64::from(space) + 2) << 8) | size
                    }
                };
                let line = match self.below(6) {
                    0 => u64::MAX,
                    1 => self.garbage(),
                    _ => self.below(u64::from(lines).max(1)),
                };
                let out = match self.below(10) {
                    0 => OUT_AT + 0x80,
                    1 => self.garbage(),
                    _ => 0,
                };
                let value = self.rng.next();
                self.call(c(DevReplyPoll), [h, client, port_size, value, line, out])
            }
            71..=72 => {
                let sv = self.served();
                let (h, dev) = self.pick(&sv).unwrap_or((self.garbage(), 0));
                let client = self.client_of(dev);
                if self.one_in(2) {
                    let line = self.below(17);
                    self.call(c(DevIrq), [h, client, line, 0, 0, 0])
                } else {
                    let port = self.below(260);
                    let size = self.size();
                    let value = self.rng.next();
                    self.call(c(DevWriteIospace), [h, client, port, size, value, 0])
                }
            }
            73..=74 => {
                // DMA: a client exports, a server copies.
                let sv = self.served();
                match self.pick(&sv) {
                    Some((h, dev)) if self.one_in(2) => {
                        let client = self.client_of(dev);
                        let iova = DMA_AT + self.below(0x400);
                        let len = self.below(0x300);
                        let buf = DMA_AT + self.below(0x400);
                        if self.one_in(2) {
                            self.call(c(DevDmaRead), [h, client, iova, buf, len, 0])
                        } else {
                            self.call(c(DevDmaWrite), [h, client, buf, len, iova, 0])
                        }
                    }
                    _ => {
                        let hs = self.handles(|_, _| true);
                        let h = self.handle_from(&hs);
                        if self.one_in(3) {
                            self.call(c(Unexport), [h, DMA_AT, 0, 0, 0, 0])
                        } else {
                            let (va, len) = match self.below(3) {
                                0 => (VM_BASE, 4096 * (1 + self.below(3))),
                                _ => (DMA_AT, 0x600),
                            };
                            self.call(c(Export), [h, va, len, 0, 0, 0])
                        }
                    }
                }
            }
            75..=76 => {
                let mask = match self.below(4) {
                    0 => 1,
                    1 => 1 << (20 + self.below(6)),
                    2 => 1 | 1 << (20 + self.below(6)),
                    _ => self.garbage(),
                };
                self.call(c(IrqWait), [mask, 0, 0, 0, 0, 0])
            }
            77 => {
                let v = if self.one_in(5) {
                    self.garbage()
                } else {
                    self.below(63)
                };
                self.call(c(IrqRaise), [v, 0, 0, 0, 0, 0])
            }
            78 => {
                let pid = match self.below(3) {
                    0 => 0,
                    1 => self.k.first_child(me).map_or(0, u64::from),
                    _ => self.garbage(),
                };
                let prio = self.below(9);
                self.call(c(SetPriority), [pid, prio, 0, 0, 0, 0])
            }
            79..=80 => match self.below(4) {
                0 => {
                    let (base, size) = match self.below(4) {
                        0 => (0, 0),
                        1 => (self.garbage(), self.garbage()),
                        _ => (VM_BASE, 4096 * (1 + self.below(2))),
                    };
                    let entry = if base == 0 { 0 } else { HANDLER_PC };
                    self.call(c(SetHandler), [entry, base, size, 0, 0, 0])
                }
                1 | 2 => {
                    let on = if self.one_in(8) {
                        self.garbage()
                    } else {
                        self.below(2)
                    };
                    self.call(c(IntEnable), [on, 0, 0, 0, 0, 0])
                }
                _ => {
                    let at = if self.one_in(2) {
                        frame.rdi
                    } else {
                        self.garbage()
                    };
                    self.call(c(IntReturn), [at, 0, 0, 0, 0, 0])
                }
            },
            81 if self.one_in(2) => {
                let len = fake::tiny_elf(&[0x90; 16]).len() as u64;
                let (img, n) = if self.one_in(4) {
                    (self.garbage(), self.garbage())
                } else {
                    (ELF_AT, len)
                };
                self.call(c(Exec), [img, n, CMD_AT, CMD.len() as u64, 0, 0])
            }
            81..=82 => self.mempool(),
            83..=85 => self.fault(),
            86..=87 => {
                // A klog listener, or the log growing (which raises it).
                let ks = self.handles(|a, _| {
                    matches!(
                        a,
                        Attachment::Kernel {
                            state: KernelState::Klog(..),
                            ..
                        }
                    )
                });
                match self.pick(&ks) {
                    Some(h) if self.one_in(2) => {
                        let v = 20 + self.below(6);
                        self.call(c(IrqMap), [h, 0, v, 0, 0, 0])
                    }
                    _ => {
                        let len = 2 + self.below(8);
                        self.call(c(LogWrite), [NAMES_AT, len, 0, 0, 0, 0])
                    }
                }
            }
            88..=89 => {
                let hs = self.handles(|_, _| true);
                let h = self.handle_from(&hs);
                let rights = self.rng.next() & 0x7ff;
                match self.below(4) {
                    0 => self.call(c(Restrict), [h, rights, 0, 0, 0, 0]),
                    1 => self.call(c(Info), [h, OUT_AT + 0x40, 0, 0, 0, 0]),
                    2 => self.call(c(RestrictNames), [LIST_AT, LIST.len() as u64, 0, 0, 0, 0]),
                    _ => self.call(c(SysInfo), [OUT_AT + 0xc0, 0, 0, 0, 0, 0]),
                }
            }
            90..=93 => {
                // Garbage: any number, any words.
                let n = self.below(43);
                let a = [
                    self.garbage(),
                    self.garbage(),
                    self.garbage(),
                    self.garbage(),
                    self.garbage(),
                    self.garbage(),
                ];
                self.call(n, a)
            }
            _ => {
                let sv = self.served();
                if !sv.is_empty() {
                    return self.serve(&sv);
                }
                if !clients.is_empty() {
                    return self.use_device(&clients);
                }
                self.call(c(Yield), [0; 6])
            }
        }
    }

    /// A server's loop: answer the request it was handed and take the
    /// next one, or just poll.
    fn serve(&mut self, served: &[(u64, DeviceId)]) -> Settled {
        let (h, dev) = self.pick(served).unwrap();
        let frame = self.k.current().frame;
        let request = abi::Request::from_words([frame.rdi, frame.rsi, frame.rdx, frame.r10]);
        // The client it was handed, if it still is one, and a line it mapped.
        let answer = self.k.devices.user(dev).ok().and_then(|u| {
            let c = u.client(request.client).ok()?;
            let line = (0..u.irq_lines as u64).find(|&l| c.irq_vector(l).is_some());
            Some((request.client, line, u.iospace_size))
        });
        match answer {
            Some((client, line, space)) if !self.one_in(5) => {
                let port_size = if space >= 8 && !self.one_in(4) {
                    (self.below(u64::from(space) - 7) << 8) | 8
                } else {
                    0
                };
                let line = line.unwrap_or(u64::MAX);
                let value = self.rng.next();
                self.call(
                    Sysno::DevReplyPoll as u64,
                    [h, client, port_size, value, line, 0],
                )
            }
            _ => self.call(Sysno::DevPoll as u64, [h, 0, 0, 0, 0, 0]),
        }
    }

    /// A client's use of its device: map a line first, then requests that
    /// wait for their answer.
    fn use_device(&mut self, clients: &[(u64, DeviceId, u64)]) -> Settled {
        let (h, dev, client) = self.pick(clients).unwrap();
        let (lines, mapped) = match self.k.devices.user(dev) {
            Ok(u) => {
                let c = u.client(client).ok();
                let mapped = (0..16).any(|l| c.is_some_and(|c| c.irq_vector(l).is_some()));
                (u.irq_lines, mapped)
            }
            Err(_) => (0, false),
        };
        if lines > 0 && !mapped {
            let line = self.below(u64::from(lines));
            let vector = 20 + self.below(6);
            return self.call(Sysno::IrqMap as u64, [h, line, vector, 0, 0, 0]);
        }
        match self.below(10) {
            0 => {
                let port = self.below(8);
                self.call(Sysno::PortIn as u64, [h, port, 8, 0, 0, 0])
            }
            1 => {
                let value = self.rng.next();
                self.call(Sysno::PortOut as u64, [h, 0, 8, value, 0, 0])
            }
            _ => {
                let mask = self.reply_mask(dev, client);
                let value = self.rng.next();
                self.call(Sysno::PortOutWait as u64, [h, 0, 8, value, mask, 0])
            }
        }
    }

    /// Kills (or revokes) through a proc handle: select, then the port.
    fn kill(&mut self) -> Settled {
        let me = self.me();
        let hs = self.handles(|a, r| {
            r & RIGHT_KILL != 0
                && matches!(
                    a,
                    Attachment::Kernel {
                        state: KernelState::Proc(..),
                        ..
                    }
                )
        });
        let Some(h) = self.pick(&hs) else {
            let rights = RIGHT_READ | RIGHT_WRITE | RIGHT_KILL | RIGHT_CLONE;
            return self.call(
                Sysno::Attach as u64,
                [0, NAMES_AT + 32 * 5, 4, u64::from(rights), 0, 0],
            );
        };
        let target = self.victim();
        let s = self.call(
            Sysno::PortOut as u64,
            [h, u64::from(PROC_PORT_SELECT), 8, target, 0, 0],
        );
        if s != Settled::Run || self.me() != me {
            return s;
        }
        let (port, value) = match self.below(8) {
            0..=4 => (PROC_PORT_KILL, 0),
            5 => (PROC_PORT_KILL_TREE, 0),
            _ => {
                let all = self.handles(|_, _| true);
                (PROC_PORT_REVOKE, self.handle_from(&all))
            }
        };
        let server_with_requests = audit::devices(&self.k).into_iter().any(|(id, _)| {
            matches!(self.k.devices.get(id), Ok(Device::User(u))
                if u.pending_requests() > 0 && u64::from(u.server) == target)
        });
        let s = self.call(Sysno::PortOut as u64, [h, u64::from(port), 8, value, 0, 0]);
        let dead = self
            .k
            .procs
            .get(target as Pid)
            .is_none_or(|p| p.state == State::Zombie);
        if port != PROC_PORT_REVOKE && dead {
            self.stats.kills += 1;
            if server_with_requests {
                self.stats.server_deaths_with_requests += 1;
            }
        }
        s
    }

    /// Memory pool: select, limits, reserves.
    fn mempool(&mut self) -> Settled {
        let hs = self.handles(|a, _| {
            matches!(
                a,
                Attachment::Kernel {
                    state: KernelState::Mempool(..),
                    ..
                }
            )
        });
        let Some(h) = self.pick(&hs) else {
            return self.call(
                Sysno::Attach as u64,
                [
                    0,
                    NAMES_AT + 32 * 4,
                    7,
                    u64::from(RIGHT_READ | RIGHT_WRITE),
                    0,
                    0,
                ],
            );
        };
        let me = u64::from(self.me());
        let (port, value) = match self.below(7) {
            0 => (MEMPOOL_PORT_SELECT, me),
            1 => (MEMPOOL_PORT_SELECT, self.victim()),
            2 => (
                MEMPOOL_PORT_LIMIT,
                if self.one_in(3) {
                    MEMPOOL_UNLIMITED
                } else {
                    20 + self.below(600)
                },
            ),
            3 => (MEMPOOL_PORT_NEW_RESERVE, 20 + self.below(300)),
            4 => (MEMPOOL_PORT_CHILD_RESERVE, 20 + self.below(300)),
            5 => (MEMPOOL_PORT_PROCESS_LIMIT, self.below(12)),
            _ => (MEMPOOL_PORT_CHILD_PROCESSES, self.below(6)),
        };
        if self.one_in(3) {
            let port = [MEMPOOL_PORT_USED, MEMPOOL_PORT_FREE, MEMPOOL_PORT_PROCESSES]
                [self.below(3) as usize];
            return self.call(Sysno::PortIn as u64, [h, u64::from(port), 8, 0, 0, 0]);
        }
        self.call(Sysno::PortOut as u64, [h, u64::from(port), 8, value, 0, 0])
    }

    /// The current process takes a CPU exception (init only ones the
    /// kernel resolves: it must not die).
    fn fault(&mut self) -> Settled {
        let me = self.me();
        let (addr, _) = self.pages();
        let addr = addr.wrapping_add(self.below(4096));
        let write = !self.one_in(3);
        let vector = match self.below(8) {
            0 => 13,
            1 => 6,
            _ => abi::interrupt::VECTOR_PAGE_FAULT,
        };
        if me == INIT_PID {
            let p = self.k.current();
            let m = p
                .space
                .as_ref()
                .and_then(|s| s.lookup(addr & !0xfff))
                .and_then(|pte| Fake::codec().decode(pte));
            let resolved = vector == abi::interrupt::VECTOR_PAGE_FAULT
                && m.is_some_and(|m| {
                    let allowed = m.prot.read && (!write || m.prot.write);
                    let cow = write && m.was_writable && m.prot.read && Fake::free_frames() > 0;
                    allowed || cow
                });
            if !resolved {
                return self.call(Sysno::Yield as u64, [0; 6]);
            }
        }
        self.last = Last::Fault(me, vector, addr, write);
        self.stats.faults += 1;
        if self.trace {
            eprintln!("{:4} {:?}", self.step, self.last);
        }
        self.k.user_fault(UserFault {
            vector,
            error: 0,
            addr,
            pc: RET_PC,
            write,
            fetch: false,
        });
        let s = self.k.settle();
        self.check(s == Settled::Run);
        s
    }

    /// Between calls: a timer tick, a device interrupt, or a call.
    fn step(&mut self) {
        let mut settled = match self.below(100) {
            0..=3 => {
                self.last = Last::Event("timer tick");
                fake::with(|s| {
                    s.now += 1500;
                    s.ticks += 1;
                });
                self.k.tick();
                let s = self.k.settle();
                self.check(s == Settled::Run);
                s
            }
            4..=5 => {
                let pids = audit::pids(&self.k);
                let pid = self.pick(&pids).unwrap();
                let v = self.below(63) as u32;
                self.last = Last::Raise(pid, v);
                self.k.raise(pid, v);
                let s = self.k.settle();
                self.check(s == Settled::Run);
                s
            }
            _ => {
                // A tick sometimes falls due during the call: long calls
                // stop at their preemption points, and it is taken on the
                // way out.
                let due = self.one_in(12);
                fake::with(|s| s.preempt = due);
                let mut s = self.act();
                if due {
                    fake::with(|s| {
                        s.preempt = false;
                        s.now += 1500;
                        s.ticks += 1;
                    });
                    self.last = Last::Event("the tick that fell due");
                    self.k.tick();
                    s = self.k.settle();
                    self.check(s == Settled::Run);
                }
                s
            }
        };
        while settled == Settled::Idle {
            settled = self.unstick();
        }
    }

    /// Every process sleeps: an interrupt wakes one, or one that no
    /// interrupt can wake (waiting for a child or a request) is killed.
    fn unstick(&mut self) -> Settled {
        self.stats.idle += 1;
        let blocked: Vec<(Pid, Block)> = audit::pids(&self.k)
            .into_iter()
            .filter_map(|p| match self.k.procs.get(p).unwrap().state {
                State::Blocked(b) => Some((p, b)),
                _ => None,
            })
            .collect();
        let candidates: Vec<(Pid, Block)> = blocked
            .iter()
            .copied()
            .filter(|&(p, b)| p != INIT_PID || matches!(b, Block::Irq { .. }))
            .collect();
        let Some((pid, why)) = self.pick(&candidates) else {
            self.fail(&format!("idle, and nothing to wake: {blocked:?}"));
        };
        if self.trace {
            eprintln!(
                "{:4} idle; waking or killing pid {pid} ({why:?})",
                self.step
            );
        }
        match why {
            Block::Irq { mask, .. } => {
                let bits: Vec<u32> = (0..64).filter(|b| mask & (1 << b) != 0).collect();
                let v = self.pick(&bits).unwrap();
                self.last = Last::Raise(pid, v);
                self.k.raise(pid, v);
            }
            _ => {
                self.last = Last::Kill(pid);
                self.stats.outside_kills += 1;
                self.k.exit(pid, killed(pid));
            }
        }
        let s = self.k.settle();
        self.check(s == Settled::Run);
        s
    }

    /// Every process but init is killed and reaped, init lets go of what
    /// it took: the machine holds what it held after boot.
    fn teardown(&mut self) {
        self.step = usize::MAX;
        for pid in self.live_pids() {
            if pid != INIT_PID {
                self.last = Last::Kill(pid);
                self.k.exit(pid, killed(pid));
            }
        }
        let mut s = self.k.settle();
        self.check(s == Settled::Run);
        while s == Settled::Idle {
            s = self.unstick();
        }
        assert_eq!(self.me(), INIT_PID, "seed {}: only init is left", self.seed);
        loop {
            self.call(Sysno::WaitChild as u64, [OUT_AT, 1, 0, 0, 0, 0]);
            let r = self.k.current().frame.result() as isize;
            if r == Error::NoChildren.to_ret() {
                break;
            }
            if r <= 0 {
                self.fail(&format!("init reaps with {:?}", Error::decode(r)));
            }
        }
        let extra: Vec<u64> = self
            .k
            .current()
            .bus
            .handles()
            .filter(|h| !self.boot_handles.contains(h))
            .collect();
        for h in extra {
            self.call(Sysno::Detach as u64, [h, 0, 0, 0, 0, 0]);
        }
        let pages: Vec<u64> = self
            .pages_of(INIT_PID)
            .difference(&self.boot_pages)
            .copied()
            .collect();
        for va in pages {
            self.call(Sysno::VmUnmap as u64, [va, 4096, 0, 0, 0, 0]);
        }
        let seed = self.seed;
        let k = &self.k;
        let init = k.procs.get(INIT_PID).unwrap();
        assert_eq!(k.process_count(), 1, "seed {seed}: init alone");
        assert_eq!(
            self.pages_of(INIT_PID),
            self.boot_pages,
            "seed {seed}: init's pages"
        );
        assert_eq!(
            init.usage.tables, self.boot_tables,
            "seed {seed}: init's tables"
        );
        assert_eq!(
            k.devices.count(),
            KERNEL_NAMES,
            "seed {seed}: the kernel's devices alone"
        );
        assert!(
            k.devices.klog.listeners().is_empty(),
            "seed {seed}: no klog listener"
        );
        assert_eq!(k.reserves.len(), 1, "seed {seed}: init's reserve alone");
        assert_eq!(
            fake::with(|s| s.used()),
            self.boot_used,
            "seed {seed}: the frames in use after boot, exactly"
        );
        let r = k.reserves.get(init.reserve).unwrap();
        assert_eq!(r.used(), init.usage.frames(), "seed {seed}: init's reserve");
        self.full_every = 1;
        self.check(true);
    }
}

/// Runs seed `seed` for `steps` steps, then tears it down.
fn run(seed: u64, steps: usize, frames: u64, full_every: u64) -> Stats {
    run_with(seed, steps, frames, full_every, false)
}

/// `run`, tolerating the known revoked-sleeper bug if `tolerant`.
fn run_with(seed: u64, steps: usize, frames: u64, full_every: u64, tolerant: bool) -> Stats {
    let mut m = Model::new(seed, frames);
    m.full_every = full_every;
    m.audit.tolerate_revoked_sleepers = tolerant;
    for step in 0..steps {
        m.step = step;
        m.step();
    }
    m.teardown();
    if m.audit.revoked_sleepers > 0 {
        eprintln!("seed {seed}: met the revoked-sleeper bug");
    }
    m.stats.revoked_sleepers = m.audit.revoked_sleepers.min(1);
    m.stats
}

fn run_seeds(seeds: std::ops::Range<u64>, steps: usize) -> Stats {
    let mut total = Stats::default();
    for seed in seeds {
        // Machines of three sizes: the small ones run out of frames.
        let frames = [6000, 300, 180][seed as usize % 3];
        total.add(&run(seed, steps, frames, 50));
    }
    total
}

/// Seeds `seeds`, 250 steps each; checks that the runs did what they are
/// for (forks, kills, devices, fast-path hand-offs, servers dying with
/// requests queued, calls running out of memory).
fn model(seeds: std::ops::Range<u64>) {
    let t = std::time::Instant::now();
    let n = seeds.end - seeds.start;
    let stats = run_seeds(seeds, 250);
    eprintln!("model: {n} seeds: {stats:?} in {:?}", t.elapsed());
    assert!(stats.forks > 10 * n && stats.kills > n && stats.devices_made > 3 * n);
    assert!(stats.fast > n / 2 && stats.server_deaths_with_requests > n / 20);
    assert!(stats.out_of_memory > n / 5 && stats.idle > n && stats.faults > n);
}

#[test]
fn the_whole_kernel_keeps_its_invariants_under_random_calls() {
    model(0..100);
}

#[test]
fn the_whole_kernel_keeps_its_invariants_under_more_random_calls() {
    model(100..200);
}

/// A client asleep in `port_out_wait` whose handle is revoked (proc's
/// `PROC_PORT_REVOKE`, which closes its client as `detach` would): the
/// device is gone for it, so the call ends with `DeviceGone` at once
/// (syscalls.md, port_out_wait) rather than sleep on, even after the
/// device itself goes. (The model found the sleep-forever bug.)
#[test]
fn a_revoked_client_asleep_in_port_out_wait_wakes_with_device_gone() {
    use super::tests::{call, fork};
    let mut k = boot_with_inputs(3000);
    let proc_rights = u64::from(RIGHT_READ | RIGHT_WRITE | RIGHT_KILL);
    let attach = |k: &mut Kernel<Fake>, name: usize, rights: u64| {
        let len = NAMES[name].len() as u64;
        call(
            k,
            Sysno::Attach,
            [0, NAMES_AT + 32 * name as u64, len, rights, 0, 0],
        )
        .unwrap()
    };
    let procs = attach(&mut k, 5, proc_rights) as u64;
    let server = fork(&mut k);
    let client = fork(&mut k);
    // The server makes "d1" (one line) and polls.
    assert!(run_as(&mut k, server));
    let hs = call(&mut k, Sysno::DevCreate, [0, CONFIGS_AT + 64, 0, 0, 0, 0]).unwrap() as u64;
    // init holds a handle to "d1" too (to name it in the revoke).
    assert!(run_as(&mut k, INIT_PID));
    let rw = u64::from(RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ);
    let hi = attach(&mut k, 7, rw) as u64;
    // The client attaches, maps line 0 and sleeps in port_out_wait.
    assert!(run_as(&mut k, client));
    let hc = attach(&mut k, 7, rw) as u64;
    assert_eq!(call(&mut k, Sysno::IrqMap, [hc, 0, 20, 0, 0, 0]), Some(0));
    assert_eq!(
        call(&mut k, Sysno::PortOutWait, [hc, 0, 8, 1, 1 << 20, 0]),
        None
    );
    let sleeps = |k: &mut Kernel<Fake>| {
        matches!(
            k.procs.get(client).unwrap().state,
            State::Blocked(Block::Irq { .. })
        )
    };
    assert!(sleeps(&mut k));
    // init revokes "d1" from the client: its handle goes, its client closes.
    assert!(run_as(&mut k, INIT_PID));
    let select = u64::from(PROC_PORT_SELECT);
    assert_eq!(
        call(
            &mut k,
            Sysno::PortOut,
            [procs, select, 8, u64::from(client), 0, 0]
        ),
        Some(0)
    );
    let revoke = u64::from(PROC_PORT_REVOKE);
    assert_eq!(
        call(&mut k, Sysno::PortOut, [procs, revoke, 8, hi, 0, 0]),
        Some(0)
    );
    // The device is gone for the client: its port_out_wait ends at once
    // with DeviceGone (with its client closed nothing else would wake it).
    assert!(!sleeps(&mut k), "revoking wakes it");
    let p = k.procs.get(client).unwrap();
    assert_eq!(
        (p.state, p.frame.result() as isize),
        (State::Runnable, Error::DeviceGone.to_ret()),
        "the client's port_out_wait ends with DeviceGone"
    );
    // The server destroys the device: nothing more happens to the client.
    assert!(run_as(&mut k, server));
    assert_eq!(call(&mut k, Sysno::Detach, [hs, 0, 0, 0, 0, 0]), Some(0));
    assert!(k.devices.lookup("d1").is_none(), "the device is gone");
    assert_eq!(k.procs.get(client).unwrap().state, State::Runnable);
}

/// Many more seeds, longer runs, smaller machines: `MODEL_SEEDS=0..5000
/// MODEL_STEPS=1000 MODEL_FRAMES=1500 cargo test -p kernel-core
/// many_seeds -- --ignored --nocapture`.
#[test]
#[ignore]
fn many_seeds() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let seeds = env("MODEL_SEEDS", "0..2000");
    let (a, b) = seeds.split_once("..").unwrap();
    let steps = env("MODEL_STEPS", "300").parse().unwrap();
    let frames = env("MODEL_FRAMES", "6000").parse().unwrap();
    let mut total = Stats::default();
    for seed in a.parse().unwrap()..b.parse().unwrap() {
        total.add(&run_with(seed, steps, frames, 50, true));
    }
    eprintln!("{total:?}");
}

/// Seed 651 of the model met the revoked-sleeper bug on its own (fixed):
/// pid 4 creates "d0" (step 40); pid 7 attaches it and sleeps in
/// port_out_wait (58-61); init revokes "d0" from pid 7 (88); pid 4 kills
/// itself through proc (93) and "d0" goes; pid 7 slept on for ever.
#[test]
fn model_seed_651() {
    run(651, 300, 6000, 50);
}

/// Runs one seed with every call printed: `MODEL_SEED=n MODEL_TRACE=1
/// cargo test -p kernel-core trace_one_seed -- --ignored --nocapture`
/// (`MODEL_STEPS`, `MODEL_FRAMES` as for `many_seeds`).
#[test]
#[ignore]
fn trace_one_seed() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let seed = env("MODEL_SEED", "0").parse().unwrap();
    let steps = env("MODEL_STEPS", "300").parse().unwrap();
    let frames = env("MODEL_FRAMES", "6000").parse().unwrap();
    let stats = run(seed, steps, frames, 1);
    eprintln!("{stats:?}");
}
