//! What a fast-path case can observe after its call, recorded so the two
//! kernels can be compared: the result, every process (registers, state,
//! pending interrupts, handles, memory), the current process and the
//! scheduler's queues, every device's records, the reserves, and the fake
//! machine (every frame's references and contents, the log, ports,
//! routes, the installed frame and page table); and the first field in
//! which two records differ, for the report.
//!
//! Rules: a snapshot holds only what is observable (not, say, the links of
//! clients off a device's round-robin list); the ready queues are taken
//! last, since taking them empties them.

use crate::fake::{self, Fake, FakeFrame};
use crate::kernel::Kernel;
use crate::kernel::audit;
use crate::machine::AddressSpace;
use crate::process::{Pid, State};

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
pub(super) struct Snapshot {
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

pub(super) fn snapshot(k: &mut Kernel<Fake>, ret: Option<isize>) -> Snapshot {
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
pub(super) fn difference(a: &Snapshot, b: &Snapshot) -> String {
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
