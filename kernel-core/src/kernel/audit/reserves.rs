//! The reserve invariants: every reserve's frames, heap bytes and process
//! count are the sums of what its processes and the objects charged to it
//! (user devices and their clients) hold; no reserve is gone while
//! charged, none lingers uncharged; kernel devices are charged to no one.
//!
//! Rules: the sums are rebuilt from the processes and devices at every
//! check, never kept between checks.

use super::{Dev, proc};
use crate::devices::{DEVICE_BYTES, Device};
use crate::fake::Fake;
use crate::kernel::Kernel;
use crate::process::Pid;
use crate::reserve::ReserveId;
use std::collections::BTreeMap;

#[derive(Default, Debug)]
struct Sums {
    processes: u32,
    frames: u64,
    bytes: u64,
}

pub(super) fn reserves(k: &Kernel<Fake>, pids: &[Pid], devs: &[Dev]) -> Result<(), String> {
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
