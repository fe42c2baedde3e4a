//! Test-only: the kernel's invariants, checked over its whole state on the
//! fake machine (`Auditor::check`), for the randomized model test and the
//! fast-path test.
//!
//! What is checked:
//! - processes: each record's pid; a zombie has no address space, no
//!   handle and holds only its record's charge; the family links (every
//!   live process on its parent's child list, every zombie in its parent's
//!   zombie queue, once; parents are never zombies; the lists' back links);
//! - the scheduler: the current process exists and its pointer is its
//!   record; when it runs, it is runnable, its frame is the installed one
//!   and its page table the active one, nothing is left to pick
//!   (`resched`, `next`); every queued process is runnable and not
//!   current, every runnable one but the current is queued; a sleeper has
//!   nothing pending that would have woken it, a server asleep in a poll
//!   no request waiting, a client asleep in `port_out_wait` a device;
//! - memory: the machine's references, summed, equal the pages and tables
//!   every live process is charged for; each frame's reference count
//!   equals the entries mapping it (a table frame belongs to one tree, a
//!   private page to one entry, a copy-on-write page is never writable,
//!   no page is wired or device memory); each process's usage equals what
//!   its tree holds; the frames no tree links are exactly the trees' spare
//!   tables. (Each check compares the frames whose references or mappings
//!   changed since the last; `full` compares all of them, from scratch.)
//! - reserves: every reserve's frames, heap bytes and process count are
//!   the sums of what its processes and the objects charged to it hold; no
//!   reserve is gone while charged, none lingers uncharged;
//! - devices and buses: the six kernel devices; every name maps to its
//!   device; a user device's server is live and holds its one serving
//!   handle; every open client record belongs to a live process holding
//!   exactly one handle for it, a closed one to no handle and has its
//!   CLOSE last in its queue; queue counts, quotas, the round-robin list
//!   and the in-flight client agree with the records; every handle names
//!   a device of its kind (or a client device that went away), within the
//!   device's rights; klog listeners are live processes' klog handles;
//! - the log: the kernel never reports one of its own bugs.

use super::Kernel;
use crate::devices::kdev::{KernelState, Kind as KernelKind};
use crate::devices::{Attachment, DEVICE_BYTES, Device, DeviceId, max_rights};
use crate::fake::Fake;
use crate::machine::{AddressSpace, Machine};
use crate::process::{Block, INIT_PID, NO_PID, Pid, Process, State, pid_slot};
use crate::reserve::ReserveId;
use crate::vm::Kind;
use abi::userdev::{REQUEST_CLONE, REQUEST_CLOSE, REQUEST_OPEN, REQUEST_OUT};
use std::collections::BTreeMap;

/// What one klog listener costs its process (`devices::calls`).
pub const KLOG_LISTENER_BYTES: u64 = crate::devices::kdev::klog::LISTENER_BYTES;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

/// Every pid in the table, in table order.
pub fn pids(k: &Kernel<Fake>) -> Vec<Pid> {
    let mut out = Vec::new();
    let mut at = NO_PID;
    while let Some(pid) = k.next_pid_after(at) {
        out.push(pid);
        at = pid;
    }
    out
}

/// Every device: (id, name).
pub fn devices(k: &Kernel<Fake>) -> Vec<(DeviceId, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((pos, name, id)) = k.devices.at_or_after(at) {
        out.push((id, name.to_string()));
        at = pos + 1;
    }
    out
}

fn proc(k: &Kernel<Fake>, pid: Pid) -> Option<&Process<Fake>> {
    k.procs.get(pid)
}

fn live(k: &Kernel<Fake>, pid: Pid) -> bool {
    proc(k, pid).is_some_and(|p| p.state != State::Zombie)
}

/// What one address space maps, as its walk found it.
struct Walk {
    /// The space (`FakeSpace::version`) and the check that last found it.
    space: u64,
    writes: u64,
    seen: u64,
    tables: Vec<u64>,
    /// The frame of each page, and whether the page is private.
    pages: Vec<(u64, bool)>,
}

/// Per frame: the entries mapping it, the trees using it as a table, the
/// private entries mapping it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Uses {
    mapped: u32,
    tables: u32,
    private: u32,
}

/// The invariant checker. It keeps what each address space mapped when it
/// last walked it (an unchanged tree is not walked again) and, by frame,
/// the uses those walks add up to, so every check compares exactly the
/// frames whose references or uses changed; `check(.., full)` forgets all
/// of it and compares every frame.
#[derive(Default)]
pub struct Auditor {
    /// Tolerate (and count) the known bug of a client asleep in
    /// `port_out_wait` whose handle was revoked, left asleep when its
    /// device goes (see `a_revoked_client_asleep_in_port_out_wait_...`):
    /// only for hunting other bugs past it.
    pub tolerate_revoked_sleepers: bool,
    pub revoked_sleepers: u64,
    log_seen: usize,
    /// By the slot of the process that owns the space.
    walks: Vec<Option<Walk>>,
    checks: u64,
    uses: Vec<Uses>,
    /// Frames with a use.
    used: u64,
}

/// A device and, for a user device, its records.
struct Dev<'a> {
    id: DeviceId,
    name: &'a str,
    dev: &'a Device,
    records: Option<crate::userdev::audit::DeviceRecord>,
}

impl Auditor {
    /// Checks every invariant; `running`: the last `settle` said `Run`
    /// (the current process is about to return to user mode); `full`:
    /// every frame is compared, not only those that changed.
    pub fn check(&mut self, k: &Kernel<Fake>, running: bool, full: bool) -> Result<(), String> {
        let pids = pids(k);
        ensure!(
            pids.len() == k.process_count(),
            "the table holds {} processes, its walk finds {}",
            k.process_count(),
            pids.len()
        );
        let mut devs = Vec::new();
        let mut at = 0;
        while let Some((pos, name, id)) = k.devices.at_or_after(at) {
            let dev = k
                .devices
                .get(id)
                .map_err(|e| format!("device {id:#x}: {e:?}"))?;
            let records = match dev {
                Device::User(u) => Some(u.audit()),
                _ => None,
            };
            devs.push(Dev {
                id,
                name,
                dev,
                records,
            });
            at = pos + 1;
        }
        processes(k, &pids)?;
        families(k, &pids)?;
        scheduler(k, &pids, running)?;
        self.memory(k, &pids, full)?;
        reserves(k, &pids, &devs)?;
        self.revoked_sleepers +=
            devices_and_buses(k, &pids, &devs, self.tolerate_revoked_sleepers)?;
        let log = crate::fake::with(|s| s.log[self.log_seen.min(s.log.len())..].to_vec());
        self.log_seen += log.len();
        let text = String::from_utf8_lossy(&log);
        ensure!(
            !text.contains("[kernel] bug"),
            "the kernel logged a bug of its own: {text}"
        );
        Ok(())
    }

    fn uses_mut(&mut self, pfn: u64) -> &mut Uses {
        let i = pfn as usize;
        if i >= self.uses.len() {
            self.uses.resize(i + 1, Uses::default());
        }
        &mut self.uses[i]
    }

    /// Adds (or takes away) what `w` uses; `touched` gets its frames.
    fn count(&mut self, w: &Walk, add: bool, touched: &mut Vec<u64>) {
        let step = |n: &mut u32| {
            if add { *n += 1 } else { *n -= 1 }
        };
        for &t in &w.tables {
            let u = self.uses_mut(t);
            let before = *u != Uses::default();
            step(&mut u.tables);
            let after = *u != Uses::default();
            self.used = self.used + u64::from(after) - u64::from(before);
            touched.push(t);
        }
        for &(pfn, private) in &w.pages {
            let u = self.uses_mut(pfn);
            let before = *u != Uses::default();
            step(&mut u.mapped);
            if private {
                step(&mut u.private);
            }
            let after = *u != Uses::default();
            self.used = self.used + u64::from(after) - u64::from(before);
            touched.push(pfn);
        }
    }

    fn memory(&mut self, k: &Kernel<Fake>, pids: &[Pid], full: bool) -> Result<(), String> {
        let charged: u64 = pids
            .iter()
            .filter_map(|&pid| proc(k, pid))
            .map(|p| p.usage.pages + p.usage.tables)
            .sum();
        let (refs, used, dirty) = crate::fake::with(|s| (s.total_refs(), s.used(), s.take_dirty()));
        // Too many changes to list: compare every frame.
        let full = full || dirty.is_none();
        let mut touched = dirty.unwrap_or_default();
        ensure!(
            refs == charged,
            "the machine holds {refs} frame references, the processes are charged for {charged}"
        );
        if full {
            self.walks.clear();
            self.uses.clear();
            self.used = 0;
            touched = crate::fake::with(|s| s.frame_refs().map(|(pfn, _)| pfn).collect());
        }
        let codec = Fake::codec();
        let mut spares = 0u64;
        self.checks += 1;
        let stamp = self.checks;
        for &pid in pids {
            let p = proc(k, pid).unwrap();
            let Some(space) = p.space.as_ref() else {
                continue;
            };
            let (id, writes) = space.version();
            let slot = pid_slot(pid);
            if slot >= self.walks.len() {
                self.walks.resize_with(slot + 1, || None);
            }
            let fresh = self.walks[slot]
                .as_ref()
                .is_some_and(|w| w.space == id && w.writes == writes);
            if !fresh {
                let mut tables = Vec::new();
                let mut leaves = Vec::new();
                space
                    .walk(full, &mut |t| tables.push(t), &mut |va, pte| {
                        leaves.push((va, pte))
                    })
                    .map_err(|e| format!("pid {pid}: {e}"))?;
                let mut pages = Vec::with_capacity(leaves.len());
                for (va, pte) in leaves {
                    let m = codec.decode(pte).ok_or_else(|| {
                        format!("pid {pid}: leaf {va:#x} = {pte:#x} decodes to nothing")
                    })?;
                    ensure!(
                        m.wires == 0 && m.kind != Kind::Io,
                        "pid {pid}: page {va:#x} is {:?} with {} wires",
                        m.kind,
                        m.wires
                    );
                    ensure!(
                        !(m.kind == Kind::Cow && m.prot.write),
                        "pid {pid}: copy-on-write page {va:#x} is writable"
                    );
                    pages.push((m.frame.pfn(), m.kind == Kind::Private));
                }
                let new = Walk {
                    space: id,
                    writes,
                    seen: stamp,
                    tables,
                    pages,
                };
                if let Some(old) = self.walks[slot].take() {
                    self.count(&old, false, &mut touched);
                }
                self.count(&new, true, &mut touched);
                self.walks[slot] = Some(new);
            }
            let w = self.walks[slot].as_mut().unwrap();
            w.seen = stamp;
            let held = space.table_frames();
            ensure!(
                held == p.usage.tables && w.tables.len() as u64 <= held,
                "pid {pid}: charged for {} tables, holds {held}, links {}",
                p.usage.tables,
                w.tables.len()
            );
            ensure!(
                w.pages.len() as u64 == p.usage.pages,
                "pid {pid}: charged for {} pages, maps {}",
                p.usage.pages,
                w.pages.len()
            );
            spares += held - w.tables.len() as u64;
        }
        // Spaces that went (exit, exec, a failed fork, a reaped process).
        for i in 0..self.walks.len() {
            if self.walks[i].as_ref().is_some_and(|w| w.seen != stamp) {
                let old = self.walks[i].take().unwrap();
                self.count(&old, false, &mut touched);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        crate::fake::with(|s| {
            for &pfn in &touched {
                let refs = s.refs_of(pfn);
                let u = self.uses.get(pfn as usize).copied().unwrap_or_default();
                if u.tables > 0 {
                    ensure!(
                        u.tables == 1 && u.mapped == 0 && refs == 1,
                        "frame {pfn:#x}: a table of {} trees, mapped {} times, {refs} references",
                        u.tables,
                        u.mapped
                    );
                } else if u.mapped > 0 {
                    ensure!(
                        refs == u.mapped,
                        "frame {pfn:#x} has {refs} references, {} entries map it",
                        u.mapped
                    );
                    ensure!(
                        u.private == 0 || u.mapped == 1,
                        "frame {pfn:#x} is mapped privately but by {} entries",
                        u.mapped
                    );
                } else {
                    ensure!(
                        refs <= 1,
                        "frame {pfn:#x} is mapped by no one and has {refs} references"
                    );
                }
            }
            Ok(())
        })?;
        ensure!(
            used >= self.used && used - self.used == spares,
            "{used} frames are in use, {} of them in trees, and the trees keep {spares} spare tables",
            self.used
        );
        Ok(())
    }
}

fn processes(k: &Kernel<Fake>, pids: &[Pid]) -> Result<(), String> {
    for &pid in pids {
        let p = proc(k, pid).unwrap();
        ensure!(p.pid == pid, "record of pid {pid} says pid {}", p.pid);
        ensure!(
            (p.state == State::Zombie) == p.space.is_none(),
            "pid {pid} is {:?} with space {}",
            p.state,
            p.space.is_some()
        );
        let record = Process::<Fake>::RECORD_BYTES;
        if p.state == State::Zombie {
            ensure!(p.bus.is_empty(), "zombie {pid} holds handles");
            ensure!(
                p.usage.pages == 0
                    && p.usage.tables == 0
                    && p.usage.kernel_bytes == record
                    && p.bus_bytes == 0,
                "zombie {pid} holds {:?} (bus {})",
                p.usage,
                p.bus_bytes
            );
            continue;
        }
        ensure!(
            p.bus_bytes == p.bus.storage_bytes() as u64,
            "pid {pid}: bus charged {} bytes, holds {}",
            p.bus_bytes,
            p.bus.storage_bytes()
        );
        let lists: u64 = p.bus.iter().map(|(_, e)| e.value.list_bytes()).sum();
        let listeners = k
            .devices
            .klog
            .listeners()
            .iter()
            .filter(|l| l.0 == pid)
            .count() as u64;
        let want = record + p.bus_bytes + lists + listeners * KLOG_LISTENER_BYTES;
        ensure!(
            p.usage.kernel_bytes == want,
            "pid {pid}: charged {} heap bytes, holds {want} (record {record}, bus {}, lists {lists}, {listeners} klog listeners)",
            p.usage.kernel_bytes,
            p.bus_bytes
        );
        ensure!(p.priority < 8, "pid {pid}: priority {}", p.priority);
    }
    Ok(())
}

fn families(k: &Kernel<Fake>, pids: &[Pid]) -> Result<(), String> {
    // How often each process is found on a list or queue, by slot.
    let mut seen = vec![0u32; k.procs.slots_made() + 1];
    for &pid in pids {
        let p = proc(k, pid).unwrap();
        if pid == INIT_PID {
            ensure!(p.parent == NO_PID, "init has parent {}", p.parent);
        } else {
            ensure!(
                live(k, p.parent),
                "pid {pid}'s parent {} is not a live process",
                p.parent
            );
        }
        // Live children, with back links.
        let mut prev = NO_PID;
        let mut c = p.first_child;
        let mut n = 0;
        while c != NO_PID {
            n += 1;
            ensure!(n <= pids.len(), "pid {pid}'s child list loops");
            let Some(cp) = proc(k, c) else {
                return Err(format!("pid {pid}'s child list names {c}, which is gone"));
            };
            ensure!(
                cp.parent == pid && cp.prev_sibling == prev && cp.state != State::Zombie,
                "pid {pid}'s child {c}: parent {}, prev {} (want {prev}), {:?}",
                cp.parent,
                cp.prev_sibling,
                cp.state
            );
            seen[pid_slot(c)] += 1;
            prev = c;
            c = cp.next_sibling;
        }
        // Zombies, with the tail.
        let mut last = NO_PID;
        let mut z = p.zombie_head;
        let mut n = 0;
        while z != NO_PID {
            n += 1;
            ensure!(n <= pids.len(), "pid {pid}'s zombie queue loops");
            let Some(zp) = proc(k, z) else {
                return Err(format!("pid {pid}'s zombie queue names {z}, which is gone"));
            };
            ensure!(
                zp.parent == pid && zp.state == State::Zombie,
                "pid {pid}'s zombie {z}: parent {}, {:?}",
                zp.parent,
                zp.state
            );
            seen[pid_slot(z)] += 1;
            last = z;
            z = zp.next_zombie;
        }
        ensure!(
            p.zombie_tail == last,
            "pid {pid}'s zombie tail is {}, its queue ends at {last}",
            p.zombie_tail
        );
    }
    for &pid in pids {
        let times = seen[pid_slot(pid)];
        let want = u32::from(pid != INIT_PID);
        ensure!(
            times == want,
            "pid {pid} is on its family's lists {times} times"
        );
    }
    Ok(())
}

fn scheduler(k: &Kernel<Fake>, pids: &[Pid], running: bool) -> Result<(), String> {
    let current = k.cpus[0].current;
    let cp =
        proc(k, current).ok_or_else(|| format!("the current pid {current} is not in the table"))?;
    ensure!(
        core::ptr::eq(k.cpus[0].current_ptr.cast_const(), cp),
        "the current pointer is not pid {current}'s record"
    );
    if running {
        ensure!(
            cp.state == State::Runnable,
            "the current pid {current} runs while {:?}",
            cp.state
        );
        ensure!(
            !k.cpus[0].resched && k.cpus[0].next.is_none(),
            "running with resched {} and next {:?}",
            k.cpus[0].resched,
            k.cpus[0].next
        );
        let root = cp.space.as_ref().map(|s| s.root_pfn() << 12);
        let frame = &cp.frame as *const _ as usize;
        let (installed, active) = crate::fake::with(|s| (s.installed, s.active_root));
        ensure!(
            installed.map(|i| i.0) == Some(frame),
            "pid {current} runs, but the installed frame is not its own"
        );
        ensure!(
            active == root,
            "pid {current} runs on page table {active:x?}, its own is {root:x?}"
        );
    }
    let mut queued = 0;
    for &pid in pids {
        let p = proc(k, pid).unwrap();
        let q = k.ready.contains(pid_slot(pid));
        if q {
            queued += 1;
            ensure!(
                p.state == State::Runnable && !(running && pid == current),
                "pid {pid} is queued while {:?} (current {current})",
                p.state
            );
        } else if p.state == State::Runnable && pid != current && k.cpus[0].next != Some(pid) {
            return Err(format!("pid {pid} is runnable but neither queued nor next"));
        }
        match p.state {
            State::Blocked(Block::Irq { mask, .. }) => ensure!(
                mask != 0 && p.pending & mask == 0,
                "pid {pid} sleeps for {mask:#x} with {:#x} pending",
                p.pending
            ),
            State::Blocked(Block::Child) => ensure!(
                p.first_child != NO_PID && p.zombie_head == NO_PID,
                "pid {pid} waits for a child with children {} and zombies {}",
                p.first_child,
                p.zombie_head
            ),
            _ => {}
        }
    }
    ensure!(
        queued == k.ready.len(),
        "the ready queues hold {} entries, {queued} of them processes",
        k.ready.len()
    );
    Ok(())
}

#[derive(Default, Debug)]
struct Sums {
    processes: u32,
    frames: u64,
    bytes: u64,
}

fn reserves(k: &Kernel<Fake>, pids: &[Pid], devs: &[Dev]) -> Result<(), String> {
    let mut sums: BTreeMap<ReserveId, Sums> = BTreeMap::new();
    for &pid in pids {
        let p = proc(k, pid).unwrap();
        let s = sums.entry(p.reserve).or_default();
        s.processes += 1;
        s.frames += p.usage.pages + p.usage.tables;
        s.bytes += p.usage.kernel_bytes;
    }
    for d in devs {
        let (id, name) = (d.id, d.name);
        let charge = k.devices.charge_of(id);
        match (d.dev, &d.records) {
            (Device::User(u), Some(records)) => {
                let c =
                    charge.ok_or_else(|| format!("user device '{name}' was charged to no one"))?;
                ensure!(
                    c.bytes as u64 == DEVICE_BYTES,
                    "device '{name}' was charged {} bytes",
                    c.bytes
                );
                sums.entry(c.reserve).or_default().bytes += c.bytes as u64;
                let cost = u.client_cost();
                for r in &records.clients {
                    ensure!(
                        r.charge.bytes == cost,
                        "device '{name}': client {:#x} was charged {} bytes, costs {cost}",
                        r.id,
                        r.charge.bytes
                    );
                    sums.entry(r.charge.reserve).or_default().bytes += cost as u64;
                }
            }
            _ => ensure!(charge.is_none(), "kernel device '{name}' is charged"),
        }
    }
    for (&id, s) in &sums {
        let r = k
            .reserves
            .get(id)
            .ok_or_else(|| format!("reserve {id:#x} is gone while charged: {s:?}"))?;
        let frames = r.used() - r.kernel_bytes().div_ceil(4096);
        ensure!(
            r.processes() == s.processes && frames == s.frames && r.kernel_bytes() == s.bytes,
            "reserve {id:#x} counts {} processes, {frames} frames, {} bytes; holds {s:?}",
            r.processes(),
            r.kernel_bytes()
        );
    }
    ensure!(
        k.reserves.len() == sums.len(),
        "{} reserves exist, {} are held",
        k.reserves.len(),
        sums.len()
    );
    Ok(())
}

/// Returns how many known-bug sleepers it tolerated.
fn devices_and_buses(
    k: &Kernel<Fake>,
    pids: &[Pid],
    devs: &[Dev],
    tolerate_revoked_sleepers: bool,
) -> Result<u64, String> {
    let mut tolerated = 0;
    ensure!(
        devs.len() == k.devices.count(),
        "the device table holds {}, its walk finds {}",
        k.devices.count(),
        devs.len()
    );
    // Every serving and client handle: (device, client, pid, handle).
    let mut serving: Vec<(DeviceId, Pid, u64)> = Vec::new();
    let mut clients: Vec<(DeviceId, u64, Pid, u64)> = Vec::new();
    for &pid in pids {
        let p = proc(k, pid).unwrap();
        for (h, e) in p.bus.iter() {
            let dev = k.devices.get(e.value.device());
            if let Ok(d) = dev {
                ensure!(
                    e.rights & !max_rights(d) == 0 || matches!(e.value, Attachment::Serve { .. }),
                    "pid {pid}'s handle {h:#x} has rights {:#x} beyond its device's",
                    e.rights
                );
            }
            match e.value {
                Attachment::Client { dev: id, client } => {
                    clients.push((id, client, pid, h));
                    ensure!(
                        matches!(dev, Ok(Device::User(_)) | Err(_)),
                        "pid {pid}'s client handle {h:#x} names a device of another kind"
                    );
                }
                Attachment::Serve { dev: id } => {
                    serving.push((id, pid, h));
                    ensure!(
                        e.rights & !abi::bus::RIGHT_SERVE == 0,
                        "pid {pid}'s serving handle {h:#x} has rights {:#x}",
                        e.rights
                    );
                }
                Attachment::Kernel { state, .. } => {
                    let kind = state.kind();
                    ensure!(
                        matches!(dev, Ok(Device::Kernel(k)) if *k == kind),
                        "pid {pid}'s handle {h:#x} names no {kind:?} device"
                    )
                }
                Attachment::Hardware { .. } => {
                    return Err(format!("pid {pid} holds a hardware handle {h:#x}"));
                }
            }
        }
        match p.state {
            State::Blocked(Block::Poll { dev, .. }) => match k.devices.get(dev) {
                Ok(Device::User(u)) => ensure!(
                    u.server == pid && u.pending_requests() == 0,
                    "pid {pid} polls device {dev:#x} (server {}) with {} requests waiting",
                    u.server,
                    u.pending_requests()
                ),
                _ => return Err(format!("pid {pid} polls device {dev:#x}, which is gone")),
            },
            State::Blocked(Block::Irq { dev: Some(dev), .. }) if k.devices.get(dev).is_err() => {
                let revoked = !p.bus.iter().any(|(_, e)| e.value.device() == dev);
                if revoked && tolerate_revoked_sleepers {
                    tolerated += 1;
                } else {
                    return Err(format!(
                        "pid {pid} sleeps in port_out_wait on device {dev:#x}, which is gone{}",
                        if revoked {
                            " (its handle was revoked)"
                        } else {
                            ""
                        }
                    ));
                }
            }
            _ => {}
        }
    }
    clients.sort_unstable();
    let mut matched = vec![false; clients.len()];
    let mut kernel = Vec::new();
    for d in devs {
        let (id, name) = (&d.id, d.name);
        ensure!(
            k.devices.lookup(name) == Some(*id),
            "the registry maps '{name}' to {:?}, not {id:#x}",
            k.devices.lookup(name)
        );
        let (u, a) = match (d.dev, &d.records) {
            (Device::Kernel(kind), _) => {
                kernel.push((name, *kind));
                continue;
            }
            (Device::User(u), Some(a)) => (u, a),
            _ => return Err(format!("device '{name}' is hardware")),
        };
        let server = u.server;
        ensure!(
            live(k, server),
            "device '{name}' is served by {server}, not a live process"
        );
        let servers: Vec<(DeviceId, Pid, u64)> =
            serving.iter().copied().filter(|s| s.0 == *id).collect();
        serving.retain(|s| s.0 != *id);
        ensure!(
            servers.len() == 1 && servers[0].1 == server,
            "device '{name}' (server {server}) has serving handles {servers:?}"
        );
        let waiting: usize = a.clients.iter().map(|c| c.queue.len()).sum();
        ensure!(
            a.pending == waiting,
            "device '{name}' counts {} requests, its queues hold {waiting}",
            a.pending
        );
        let open = a.clients.iter().filter(|c| !c.closed).count();
        ensure!(
            a.live_clients == open && u.client_count() == open,
            "device '{name}' counts {} clients, {open} are open",
            a.live_clients
        );
        let mut on_list = Vec::new();
        for c in &a.clients {
            let cid = c.id;
            for (i, r) in c.queue.iter().enumerate() {
                ensure!(
                    r.client == cid && r.pid == c.pid,
                    "device '{name}': client {cid:#x}'s queue holds {r:?}"
                );
                let last = i + 1 == c.queue.len();
                let ok = match r.kind {
                    REQUEST_OPEN | REQUEST_CLONE => i == 0,
                    REQUEST_OUT => true,
                    REQUEST_CLOSE => c.closed && last,
                    _ => false,
                };
                ensure!(
                    ok,
                    "device '{name}': client {cid:#x} (closed {}) has {r:?} at {i} of {}",
                    c.closed,
                    c.queue.len()
                );
            }
            ensure!(
                !c.closed || c.queue.last().is_some_and(|r| r.kind == REQUEST_CLOSE),
                "device '{name}': closed client {cid:#x} has no CLOSE queued"
            );
            let outs = c.queue.iter().filter(|r| r.kind == REQUEST_OUT).count() as u32;
            ensure!(
                c.outs == outs && outs <= u.queue_per_client,
                "device '{name}': client {cid:#x} counts {} OUTs, holds {outs} (quota {})",
                c.outs,
                u.queue_per_client
            );
            let waiting = !c.queue.is_empty();
            ensure!(
                c.ready == waiting,
                "device '{name}': client {cid:#x} ready {} with {} requests",
                c.ready,
                c.queue.len()
            );
            if c.ready {
                on_list.push(cid);
            }
            ensure!(
                c.iospace_len == u.iospace_size as usize,
                "device '{name}': client {cid:#x} has {} bytes of I/O space",
                c.iospace_len
            );
            let lo = clients.partition_point(|h| (h.0, h.1) < (*id, cid));
            let hi = clients.partition_point(|h| (h.0, h.1) <= (*id, cid));
            let holders: Vec<(Pid, u64)> = clients[lo..hi].iter().map(|h| (h.2, h.3)).collect();
            matched[lo..hi].iter_mut().for_each(|m| *m = true);
            if c.closed {
                ensure!(
                    holders.is_empty(),
                    "device '{name}': closed client {cid:#x} is still held by {holders:?}"
                );
            } else {
                ensure!(
                    holders.len() == 1 && holders[0].0 == c.pid && live(k, c.pid),
                    "device '{name}': client {cid:#x} of pid {} is held by {holders:?}",
                    c.pid
                );
            }
        }
        let mut listed: Vec<u64> = a
            .ready_order
            .iter()
            .map(|c| c.unwrap_or(u64::MAX))
            .collect();
        ensure!(
            a.ready_links_agree,
            "device '{name}': the round-robin list's links disagree"
        );
        listed.sort_unstable();
        on_list.sort_unstable();
        ensure!(
            listed == on_list,
            "device '{name}': the round-robin list holds {listed:x?}, the clients waiting are {on_list:x?}"
        );
        // The client whose request the server took last (it may have
        // closed since: its record stays until its CLOSE is taken).
        if let Some((cid, pid)) = a.in_flight {
            ensure!(
                a.clients.iter().any(|c| c.id == cid && c.pid == pid),
                "device '{name}': the in-flight client {cid:#x} (pid {pid}) has no record"
            );
        }
    }
    ensure!(
        serving.is_empty(),
        "serving handles name no device: {serving:?}"
    );
    // Client handles left name devices that went away.
    for ((id, cid, pid, h), _) in clients.iter().zip(&matched).filter(|(_, m)| !**m) {
        ensure!(
            k.devices.get(*id).is_err(),
            "pid {pid}'s client handle {h:#x} names client {cid:#x} of device {id:#x}, which has no such record"
        );
    }
    kernel.sort_by(|a, b| a.0.cmp(b.0));
    let want = [
        ("bootfs", KernelKind::Bootfs),
        ("klog", KernelKind::Klog),
        ("mempool", KernelKind::Mempool),
        ("platform", KernelKind::Platform),
        ("proc", KernelKind::Proc),
        ("registry", KernelKind::Registry),
    ];
    ensure!(
        kernel.len() == want.len()
            && kernel
                .iter()
                .zip(want)
                .all(|(a, b)| *a.0 == *b.0 && a.1 == b.1),
        "the kernel devices are {kernel:?}"
    );
    let mut seen = Vec::new();
    for &(pid, h, v) in &k.devices.klog.listeners() {
        ensure!(
            !seen.contains(&(pid, h)) && v < abi::interrupt::VECTOR_COUNT,
            "klog listener ({pid}, {h:#x}, {v}) repeated or bad"
        );
        seen.push((pid, h));
        let ok = proc(k, pid).is_some_and(|p| {
            p.state != State::Zombie
                && matches!(
                    p.bus.get(h).map(|e| &e.value),
                    Ok(Attachment::Kernel {
                        state: KernelState::Klog(..),
                        ..
                    })
                )
        });
        ensure!(ok, "klog listener ({pid}, {h:#x}) is no live klog handle");
    }
    Ok(tolerated)
}
