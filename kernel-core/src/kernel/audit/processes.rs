//! The process invariants: each record's pid; a zombie has no address
//! space, no handle and holds only its record's charge, a live process
//! the heap bytes its record, handles, lists and klog listeners cost; the
//! family links (every live process on its parent's child list, every
//! zombie in its parent's zombie queue, once; parents are never zombies;
//! the lists' back links); the scheduler (the current process and what
//! runs, the ready queues, and that no sleeper has what would wake it).
//!
//! Rules: lists are walked at most as far as there are processes (a loop
//! is reported, never followed); `running` means the last `settle` said
//! `Run`, and only then are the installed frame and page table checked.

use super::{KLOG_LISTENER_BYTES, live, proc};
use crate::fake::Fake;
use crate::kernel::Kernel;
use crate::process::{Block, INIT_PID, NO_PID, Pid, Process, State, pid_slot};

pub(super) fn processes(k: &Kernel<Fake>, pids: &[Pid]) -> Result<(), String> {
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

pub(super) fn families(k: &Kernel<Fake>, pids: &[Pid]) -> Result<(), String> {
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

pub(super) fn scheduler(k: &Kernel<Fake>, pids: &[Pid], running: bool) -> Result<(), String> {
    let current = k.cpus[0].current;
    if current == 0 {
        // Idle: nothing runnable (settle said so), and no space is left
        // loaded for a later teardown to find.
        ensure!(
            !running && k.cpus[0].current_ptr.is_null() && k.cpus[0].idle,
            "no current process, but not idle (running {running})"
        );
        ensure!(
            crate::fake::with(|s| s.active_root).is_none(),
            "idle with a user page table loaded"
        );
    }
    let cp = proc(k, current);
    if current != 0 {
        let cp = cp.ok_or_else(|| format!("the current pid {current} is not in the table"))?;
        ensure!(
            core::ptr::eq(k.cpus[0].current_ptr.cast_const(), cp),
            "the current pointer is not pid {current}'s record"
        );
    }
    if let Some(cp) = cp.filter(|_| running) {
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
