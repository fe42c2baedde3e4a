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
//!
//! This file holds the checker (`Auditor::check`, which runs the checks in
//! order and then reads the log) and what the checks share; each group of
//! invariants above has a file of its own: `processes` (records, families,
//! the scheduler), `memory`, `reserves`, `devices` (devices and buses).
//! Rules: a check changes nothing in the kernel (only the auditor's own
//! bookkeeping and the fake machine's list of changed frames) and reports
//! the first broken invariant as a sentence naming what broke it; nothing
//! here is built outside tests.

use super::Kernel;
use crate::devices::{Device, DeviceId};
use crate::fake::Fake;
use crate::process::{NO_PID, Pid, Process, State};

/// What one klog listener costs its process (`devices::calls`).
pub const KLOG_LISTENER_BYTES: u64 = crate::devices::kdev::klog::LISTENER_BYTES;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

mod devices;
mod memory;
mod processes;
mod reserves;

use self::devices::devices_and_buses;
use self::memory::{Uses, Walk};
use self::processes::{families, processes, scheduler};
use self::reserves::reserves;

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
}
