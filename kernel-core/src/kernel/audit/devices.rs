//! The device and bus invariants: the six kernel devices; every name maps
//! to its device; a user device's server is live and holds its one
//! serving handle; every open client record belongs to a live process
//! holding exactly one handle for it, a closed one to no handle and has
//! its CLOSE last in its queue; queue counts, quotas, the round-robin list
//! and the in-flight client agree with the records; every handle names a
//! device of its kind (or a client device that went away), within the
//! device's rights; a server asleep in a poll has no request waiting, a
//! client asleep in `port_out_wait` a device; klog listeners are live
//! processes' klog handles.
//!
//! Rules: handles are matched to records both ways (no record without
//! its holder, no handle without its record); the known revoked-sleeper
//! bug is tolerated (and counted) only when the auditor is told to.

use super::{Dev, live, proc};
use crate::devices::kdev::{KernelState, Kind as KernelKind};
use crate::devices::{Attachment, Device, DeviceId, max_rights};
use crate::fake::Fake;
use crate::kernel::Kernel;
use crate::process::{Block, Pid, State};
use abi::userdev::{REQUEST_CLONE, REQUEST_CLOSE, REQUEST_OPEN, REQUEST_OUT};

/// Returns how many known-bug sleepers it tolerated.
pub(super) fn devices_and_buses(
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
