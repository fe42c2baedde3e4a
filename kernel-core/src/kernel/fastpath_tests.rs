//! The IPC fast path against the general path: for random situations
//! around a client/server pair (a server polling or not, or polling into
//! memory; queued requests; pending interrupts, handlers; more urgent
//! processes ready; wrong handles, bad sizes, masks, lines, clients), the
//! same `port_out_wait` or `dev_reply_poll` is made on two kernels built
//! alike from one seed: on A as the trap glue makes it (`ipc_fast_path`,
//! falling back to `dispatch`), on B through `dispatch` alone, each then
//! settling as its glue does. Everything observable must be the same
//! afterwards: the result, every process (registers, state, pending
//! interrupts, handles, memory), the current process and the scheduler's
//! queues, every device's records (queues, I/O spaces, in-flight client),
//! the reserves, and the fake machine (every frame's references and
//! contents, the log, the installed frame and page table).
//!
//! The fake machine's state is per thread, so A is built, called and
//! recorded first, then the machine is reset and B is built the same way.

use super::Kernel;
use super::audit::{self, Auditor};
use super::model_tests::{
    CONFIGS, CONFIGS_AT, HANDLER_PC, NAMES, NAMES_AT, OUT_AT, RET_PC, VM_BASE, boot_with_inputs,
    run_as,
};
use crate::fake::{self, Fake, FakeFrame};
use crate::machine::{AddressSpace, UserFrame};
use crate::process::{Pid, State};
use crate::syscall::{self, Args};
use crate::testrng::Rng;
use abi::bus::{RIGHT_CLONE, RIGHT_IRQ, RIGHT_READ, RIGHT_WRITE};
use abi::syscall::POLL_NOWAIT;
use abi::{Error, Sysno};

/// One system call as the trap glue makes it; `fast`: the IPC fast path
/// first (as `syscall_ipc_from_user` does). Returns the result if the
/// caller simply returns, and whether the fast path took the call.
fn trap(k: &mut Kernel<Fake>, n: Sysno, a: [u64; 6], fast: bool) -> (Option<isize>, bool) {
    {
        let f = &mut k.current().frame;
        let (rsp, rflags) = (f.rsp, f.rflags);
        *f = FakeFrame::call(n as u64, a);
        f.rip = RET_PC;
        f.rsp = rsp;
        f.rflags = rflags;
    }
    let fused = matches!(n, Sysno::PortOutWait | Sysno::DevReplyPoll);
    if fast && fused && k.ipc_fast_path(n as u64, &a) {
        return (None, true);
    }
    let ret = syscall::dispatch(
        k,
        &Args {
            number: n as u64,
            a,
        },
    );
    if let Some(r) = ret {
        k.current().frame.set_result(r as u64);
    }
    let _ = k.settle();
    (ret, false)
}

/// The result a call left in the current process's frame.
fn result(k: &mut Kernel<Fake>) -> isize {
    k.current().frame.result() as isize
}

/// What a case does at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Client,
    Server,
    Other,
}

/// A kernel built for one case, and the call to make on it.
struct Built {
    k: Kernel<Fake>,
    kind: Kind,
    n: Sysno,
    a: [u64; 6],
}

/// Builds case `seed`'s kernel: init forks a server, a client and a few
/// others, the server creates a device, the client (and maybe others)
/// attach it, and then a random situation for the last call.
fn build(seed: u64) -> Built {
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut k = boot_with_inputs(3000);
    let one_in = |rng: &mut Rng, n: u64| rng.below(n) == 0;
    let fork = |k: &mut Kernel<Fake>| {
        trap(k, Sysno::Fork, [0; 6], true);
        result(k) as Pid
    };
    let s = fork(&mut k);
    let c = fork(&mut k);
    let others: Vec<Pid> = (0..rng.below(3)).map(|_| fork(&mut k)).collect();
    for &pid in [s, c].iter().chain(&others) {
        if one_in(&mut rng, 4) {
            let prio = 4 + rng.below(4);
            trap(
                &mut k,
                Sysno::SetPriority,
                [u64::from(pid), prio, 0, 0, 0, 0],
                true,
            );
        }
    }
    // A handler with a mapped stack, interrupts on, or some pending.
    let extras = |k: &mut Kernel<Fake>, rng: &mut Rng| {
        if one_in(rng, 8) {
            trap(k, Sysno::VmMap, [VM_BASE, 8192, 3, 0, 0, 0], true);
            trap(
                k,
                Sysno::SetHandler,
                [HANDLER_PC, VM_BASE, 8192, 0, 0, 0],
                true,
            );
        }
        if one_in(rng, 8) {
            trap(k, Sysno::IntEnable, [1, 0, 0, 0, 0, 0], true);
        }
        if one_in(rng, 10) {
            let v = 30 + rng.below(10);
            trap(k, Sysno::IrqRaise, [v, 0, 0, 0, 0, 0], true);
        }
    };

    // The server and its device.
    assert!(run_as(&mut k, s));
    let cfg = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3][rng.below(10) as usize];
    let (name, lines, space, _, _) = CONFIGS[cfg];
    trap(
        &mut k,
        Sysno::DevCreate,
        [0, CONFIGS_AT + 64 * cfg as u64, 0, 0, 0, 0],
        true,
    );
    let hs = result(&mut k) as u64;
    assert!((hs as isize) >= 0, "seed {seed}: dev_create");
    extras(&mut k, &mut rng);
    // Sometimes the server is a client of its own device too.
    let own = one_in(&mut rng, 10);

    // The client: attach, map a line to its vector.
    let name_at = NAMES_AT + 32 * NAMES.iter().position(|&n| n == name).unwrap() as u64;
    let attach = |k: &mut Kernel<Fake>, rights: u32| {
        let a = [0, name_at, name.len() as u64, u64::from(rights), 0, 0];
        trap(k, Sysno::Attach, a, true);
        result(k) as u64
    };
    assert!(run_as(&mut k, c));
    let rights = if one_in(&mut rng, 20) {
        RIGHT_READ | RIGHT_IRQ
    } else {
        RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ | RIGHT_CLONE
    };
    let hc = attach(&mut k, rights);
    let line = if lines > 0 {
        rng.below(u64::from(lines))
    } else {
        0
    };
    let vector = 20 + rng.below(10);
    if lines > 0 && !one_in(&mut rng, 20) {
        trap(&mut k, Sysno::IrqMap, [hc, line, vector, 0, 0, 0], true);
    }
    extras(&mut k, &mut rng);
    if one_in(&mut rng, 20) {
        trap(&mut k, Sysno::IrqRaise, [vector, 0, 0, 0, 0, 0], true);
    }

    if own && run_as(&mut k, s) {
        let h = attach(&mut k, RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ);
        if lines > 0 {
            trap(&mut k, Sysno::IrqMap, [h, line, vector, 0, 0, 0], true);
        }
    }

    // The others: more clients, a sleeper, or nothing.
    let mut other_clients = Vec::new();
    for &o in &others {
        if !run_as(&mut k, o) {
            continue;
        }
        match rng.below(3) {
            0 => {
                let h = attach(&mut k, RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ);
                other_clients.push((o, h));
            }
            1 => {
                trap(&mut k, Sysno::IrqWait, [1 << 50, 0, 0, 0, 0, 0], true);
            }
            _ => extras(&mut k, &mut rng),
        }
    }
    let late_request = |k: &mut Kernel<Fake>, rng: &mut Rng| {
        if let Some(&(o, h)) = other_clients.get(rng.below(4) as usize)
            && run_as(k, o)
        {
            trap(k, Sysno::PortOut, [h, 1, 8, 7, 0, 0], true);
        }
    };

    // The server takes what is queued (OPENs), then goes to sleep in
    // one way or another.
    let server_sleeps = |k: &mut Kernel<Fake>, rng: &mut Rng| {
        if !run_as(k, s) {
            return;
        }
        for _ in 0..8 {
            trap(k, Sysno::DevPoll, [hs, 0, POLL_NOWAIT, 0, 0, 0], true);
            if result(k) == Error::WouldBlock.to_ret() {
                break;
            }
        }
        match rng.below(20) {
            0..=16 => {
                trap(k, Sysno::DevPoll, [hs, 0, 0, 0, 0, 0], true);
            }
            17 => {
                trap(k, Sysno::DevPoll, [hs, OUT_AT + 0x80, 0, 0, 0, 0], true);
            }
            18 => {
                trap(k, Sysno::IrqWait, [1 << 51, 0, 0, 0, 0, 0], true);
            }
            _ => {}
        }
    };

    let mut kind = match rng.below(10) {
        0..=4 => Kind::Client,
        5..=8 => Kind::Server,
        _ => Kind::Other,
    };
    let pick_mask = |rng: &mut Rng| match rng.below(24) {
        0 => 0,
        1 => 1 << 63,
        2 => 1 << (30 + rng.below(10)),
        3 => 1 << vector | 1 << (30 + rng.below(10)),
        _ => 1 << vector,
    };
    let mut op = None;
    if kind == Kind::Client {
        server_sleeps(&mut k, &mut rng);
        if one_in(&mut rng, 8) {
            late_request(&mut k, &mut rng);
        }
        if run_as(&mut k, c) {
            let h = match rng.below(30) {
                0 => hs,
                1 => 0,
                2 => 77,
                _ => hc,
            };
            let port = if one_in(&mut rng, 30) {
                1 << 33
            } else {
                rng.below(4)
            };
            let size = match rng.below(30) {
                0 => 3,
                1 => 0,
                2..=7 => [1, 2, 4][rng.below(3) as usize],
                _ => 8,
            };
            let mask = pick_mask(&mut rng);
            op = Some((Sysno::PortOutWait, [h, port, size, rng.next(), mask, 0]));
        }
    }
    if kind == Kind::Server {
        // A round trip's first half: the client's request reaches the
        // server, which then answers it.
        server_sleeps(&mut k, &mut rng);
        if run_as(&mut k, c) {
            let mask = pick_mask(&mut rng);
            if one_in(&mut rng, 6) {
                // The request, then a plain wait for the answer.
                trap(&mut k, Sysno::PortOut, [hc, 0, 8, rng.next(), 0, 0], true);
                trap(&mut k, Sysno::IrqWait, [mask, 0, 0, 0, 0, 0], true);
            } else {
                let value = rng.next();
                trap(&mut k, Sysno::PortOutWait, [hc, 0, 8, value, mask, 0], true);
            }
        }
        if one_in(&mut rng, 8) {
            late_request(&mut k, &mut rng);
        }
        if one_in(&mut rng, 10)
            && let Some(p) = k.procs.get_mut(c)
            && p.state != State::Zombie
        {
            // An interrupt for the client that is not an answer.
            let v = 40 + rng.below(10) as u32;
            k.raise(c, v);
            let _ = k.settle();
        }
        if run_as(&mut k, s) {
            let client = k.current().frame.rsi;
            let other = k
                .devices
                .user(
                    k.procs
                        .get(s)
                        .map_or(0, |p| match p.bus.get(hs).map(|e| &e.value) {
                            Ok(crate::devices::Attachment::Serve { dev }) => *dev,
                            _ => 0,
                        }),
                )
                .ok()
                .and_then(|u| u.clients().map(|(id, _)| id).find(|&id| id != client));
            let h = match rng.below(30) {
                0 => hc,
                1 => 0,
                _ => hs,
            };
            let client = match rng.below(30) {
                0 | 3 => other.unwrap_or(client),
                1 => rng.next(),
                2 => client ^ 1 << 16,
                _ => client,
            };
            let size = match rng.below(30) {
                0 => 3,
                1..=6 => [1, 2, 4][rng.below(3) as usize],
                _ => 8,
            };
            let port = match rng.below(30) {
                0 => u64::from(space),
                1 => 1 << 33,
                _ => rng.below(u64::from(space.max(8)) - 7),
            };
            let port_size = if one_in(&mut rng, 8) {
                0
            } else {
                port << 8 | size
            };
            let line = match rng.below(30) {
                0 => u64::MAX,
                1 => (line + 1) % u64::from(lines.max(1)),
                2 => 99,
                _ => line,
            };
            let out = if one_in(&mut rng, 20) {
                OUT_AT + 0x80
            } else {
                0
            };
            op = Some((
                Sysno::DevReplyPoll,
                [h, client, port_size, rng.next(), line, out],
            ));
        }
    }
    let (n, a) = match op {
        Some(op) => op,
        None => {
            // Anyone runnable makes either call with whatever words.
            kind = Kind::Other;
            let pids: Vec<Pid> = audit::pids(&k)
                .into_iter()
                .filter(|&p| k.procs.get(p).unwrap().state == State::Runnable)
                .collect();
            let pid = pids[rng.below(pids.len() as u64) as usize];
            assert!(run_as(&mut k, pid));
            let hs: Vec<u64> = k.current().bus.handles().collect();
            let word = |rng: &mut Rng| match rng.below(6) {
                0 => hs[rng.below(hs.len() as u64) as usize],
                1 => rng.below(8),
                2 => 1 << rng.below(64),
                3 => u64::MAX,
                4 => 8,
                _ => rng.next(),
            };
            let n = if one_in(&mut rng, 2) {
                Sysno::PortOutWait
            } else {
                Sysno::DevReplyPoll
            };
            let a = [
                word(&mut rng),
                word(&mut rng),
                word(&mut rng),
                word(&mut rng),
                word(&mut rng),
                0,
            ];
            (n, a)
        }
    };
    Built { k, kind, n, a }
}

/// One process, as far as anything can observe it.
#[derive(Debug, PartialEq)]
struct ProcSnap {
    pid: Pid,
    parent: Pid,
    name: String,
    priority: u8,
    state: State,
    frame: FakeFrame,
    pending: u64,
    int_enabled: bool,
    handler: Option<crate::process::Handler>,
    handler_depth: u32,
    usage: crate::reserve::Usage,
    bus_bytes: u64,
    restart: Option<crate::process::Restart>,
    exit: abi::ExitStatus,
    names: crate::names::NameScope,
    reserve: u64,
    family: [Pid; 6],
    child_reserve: Option<crate::process::ChildReserve>,
    bus: Vec<(u64, u32, bool, String)>,
    space: Option<SpaceSnap>,
}

/// An address space: its root, table frames, spare tables, every leaf
/// entry (page, entry).
type SpaceSnap = (u64, u64, u64, Vec<(u64, u64)>);

/// Everything observable after the call.
#[derive(Debug, PartialEq)]
struct Snapshot {
    ret: Option<isize>,
    current: Pid,
    resched: bool,
    next: Option<Pid>,
    slice_start: u64,
    procs: Vec<ProcSnap>,
    devices: Vec<(u64, String, String, Option<crate::userdev::Refund>)>,
    klog: Vec<(Pid, u64, u32)>,
    reserves: String,
    /// The machine: frames (pfn, references, contents).
    frames: Vec<(u64, u32, Box<[u8; 4096]>)>,
    log: Vec<u8>,
    ports: Vec<(u16, u64)>,
    routes: Vec<(u32, (bool, bool, bool))>,
    /// The installed frame (whose), the page table in use.
    installed: Option<Pid>,
    active_root: Option<u64>,
    powered_off: Option<u8>,
    ticks: u64,
    /// The ready queues, in the order they run (taken last: this empties
    /// them).
    ready: Vec<Pid>,
}

fn snapshot(k: &mut Kernel<Fake>, ret: Option<isize>) -> Snapshot {
    let pids = audit::pids(k);
    let installed_ptr = fake::with(|s| s.installed.map(|i| i.0));
    let mut installed = None;
    let mut procs = Vec::new();
    for &pid in &pids {
        let p = k.procs.get(pid).unwrap();
        if installed_ptr == Some(&p.frame as *const _ as usize) {
            installed = Some(pid);
        }
        let space = p.space.as_ref().map(|sp| {
            let mut leaves = Vec::new();
            sp.walk(true, &mut |_| {}, &mut |va, pte| leaves.push((va, pte)))
                .unwrap();
            (sp.root_pfn(), sp.table_frames(), sp.spare_tables(), leaves)
        });
        procs.push(ProcSnap {
            pid,
            parent: p.parent,
            name: p.name.to_string(),
            priority: p.priority,
            state: p.state,
            frame: p.frame,
            pending: p.pending,
            int_enabled: p.int_enabled,
            handler: p.handler,
            handler_depth: p.handler_depth,
            usage: p.usage,
            bus_bytes: p.bus_bytes,
            restart: p.restart,
            exit: p.exit,
            names: p.names.clone(),
            reserve: p.reserve,
            family: [
                p.first_child,
                p.prev_sibling,
                p.next_sibling,
                p.zombie_head,
                p.zombie_tail,
                p.next_zombie,
            ],
            child_reserve: p.child_reserve,
            bus: p
                .bus
                .iter()
                .map(|(h, e)| (h, e.rights, e.close_on_exec, format!("{:?}", e.value)))
                .collect(),
            space,
        });
    }
    let devices = audit::devices(k)
        .into_iter()
        .map(|(id, name)| {
            let what = match k.devices.get(id) {
                // What can be observed: not the links of clients that are
                // off the round-robin list, which mean nothing there.
                Ok(crate::devices::Device::User(u)) => format!(
                    "{} served by {} (vector {}, {} lines, {} bytes, quota {}): {:?} {:?}",
                    u.name,
                    u.server,
                    u.server_vector,
                    u.irq_lines,
                    u.iospace_size,
                    u.queue_per_client,
                    u.audit(),
                    u.views()
                ),
                Ok(crate::devices::Device::Kernel(kind)) => format!("{kind:?}"),
                Ok(crate::devices::Device::Hardware(_)) => String::from("hardware"),
                Err(e) => format!("{e:?}"),
            };
            (id, name, what, k.devices.charge_of(id))
        })
        .collect();
    let (frames, log, mut ports, mut routes, active_root, powered_off, ticks) = fake::with(|s| {
        (
            s.frames_copy(),
            s.log.clone(),
            s.ports.iter().map(|(&p, &v)| (p, v)).collect::<Vec<_>>(),
            s.routes.iter().map(|(&g, &r)| (g, r)).collect::<Vec<_>>(),
            s.active_root,
            s.powered_off,
            s.ticks,
        )
    });
    ports.sort_unstable();
    routes.sort_unstable();
    let mut snap = Snapshot {
        ret,
        current: k.cpus[0].current,
        resched: k.cpus[0].resched,
        next: k.cpus[0].next,
        slice_start: k.cpus[0].slice_start,
        procs,
        devices,
        klog: k.devices.klog.listeners(),
        reserves: format!("{:?}", k.reserves),
        frames,
        log,
        ports,
        routes,
        installed,
        active_root,
        powered_off,
        ticks,
        ready: Vec::new(),
    };
    while let Some(pid) = k.ready.pop() {
        snap.ready.push(pid);
    }
    snap
}

/// The first field in which `a` and `b` differ.
fn difference(a: &Snapshot, b: &Snapshot) -> String {
    macro_rules! field {
        ($($f:ident),*) => {
            $(if a.$f != b.$f {
                return format!(
                    "{}:\n  fast path: {:?}\n  slow path: {:?}",
                    stringify!($f), a.$f, b.$f
                );
            })*
        };
    }
    if a.procs.len() == b.procs.len() {
        for (pa, pb) in a.procs.iter().zip(&b.procs) {
            if pa != pb {
                return format!("pid {}:\n  fast path: {pa:?}\n  slow path: {pb:?}", pa.pid);
            }
        }
    }
    field!(
        ret,
        current,
        resched,
        next,
        slice_start,
        procs,
        devices,
        klog,
        reserves,
        log,
        ports,
        routes,
        installed,
        active_root,
        powered_off,
        ticks,
        ready
    );
    if a.frames.len() != b.frames.len() {
        return format!("{} frames against {}", a.frames.len(), b.frames.len());
    }
    for (fa, fb) in a.frames.iter().zip(&b.frames) {
        if fa != fb {
            return format!(
                "frame {:#x}: {} references against {:#x} with {}",
                fa.0, fa.1, fb.0, fb.1
            );
        }
    }
    String::from("nothing")
}

/// Runs case `seed` on both kernels; returns its kind and whether the
/// fast path took the call.
fn case(seed: u64) -> (Kind, bool) {
    let Built { mut k, kind, n, a } = build(seed);
    let (ret, fast) = trap(&mut k, n, a, true);
    if let Err(e) = Auditor::default().check(&k, true, true) {
        panic!("seed {seed}: after {n:?} {a:x?} on the fast-path kernel: {e}");
    }
    let on_a = snapshot(&mut k, ret);
    drop(k);
    let Built {
        mut k,
        kind: kind_b,
        n: n_b,
        a: a_b,
    } = build(seed);
    assert_eq!(
        (kind, n, a),
        (kind_b, n_b, a_b),
        "seed {seed}: the two builds differ"
    );
    let (ret, _) = trap(&mut k, n, a, false);
    let on_b = snapshot(&mut k, ret);
    if on_a != on_b {
        panic!(
            "seed {seed} ({kind:?}, fast path {fast}): {n:?} {a:x?} differs in {}",
            difference(&on_a, &on_b)
        );
    }
    (kind, fast)
}

#[test]
fn the_fast_path_does_what_the_general_path_does() {
    let t = std::time::Instant::now();
    // FASTPATH_CASES=n runs more (the seeds are the case numbers).
    let cases: u64 = std::env::var("FASTPATH_CASES").map_or(1000, |n| n.parse().unwrap());
    let mut fast = [0u32; 3];
    let mut all = [0u32; 3];
    for seed in 0..cases {
        let (kind, f) = case(seed);
        all[kind as usize] += 1;
        fast[kind as usize] += u32::from(f);
    }
    eprintln!(
        "fast path: {fast:?} of {all:?} (client, server, other) in {:?}",
        t.elapsed()
    );
    let taken: u32 = fast.iter().sum();
    assert!(
        u64::from(taken) * 5 > cases,
        "only {taken} of {cases} cases took the fast path"
    );
    assert!(
        fast[0] * 10 > all[0] && fast[1] * 10 > all[1],
        "both halves take the fast path"
    );
}
