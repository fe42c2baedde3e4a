//! TLB coherence across CPUs: a client on one CPU keeps reading a page it
//! shares copy-on-write with the runner while a server on another CPU
//! writes into it by DMA through the client's export. The first write
//! breaks the sharing in the client's address space while the client
//! runs elsewhere: the kernel must shoot down that CPU's stale entry, or
//! the client goes on reading the old frame. The runner then drops the
//! old frame and the server fills fresh pages between its later writes,
//! so a frame given back too early would show up in what the client
//! reads.
//!
//! Rules: as in `t_smp`; the client fails (exit code) on any value that
//! is neither the old pattern before the first write nor a write's value
//! in order.

use crate::ensure_eq;
use crate::suite::{Suite, TestResult};
use crate::t_smp::{
    all_exited_ok, attach_when_there, bound_child, cpu, fail, next_open, reap, reap_all,
};
use crate::util::free_frames;
use abi::userdev::REQUEST_OUT;
use libmh::dev;
use libmh::{process, vm};

const NAME: &str = "t-smp-tlb";
/// The page the client and the runner share.
const AREA: u64 = 0x5800_0000_0000;
/// Where the server makes its fresh pages.
const PRESSURE: u64 = 0x5900_0000_0000;
const PRESSURE_PAGES: u64 = 16;
const P: u64 = 4096;
/// The page's contents before the first write.
const OLD: u64 = 0x1111_1111_1111_1111;
/// What fresh pages are filled with.
const FRESH: u8 = 0xee;
/// Writes the server makes.
const WRITES: u64 = 64;
/// Reads the client makes at most before giving up.
const READ_BOUND: u64 = 400_000_000;
/// The client's vector (its request answered).
const V_CLIENT: u32 = 25;

fn serve() -> i32 {
    let run = || -> Result<(), abi::Error> {
        let d = dev::create(dev::REGISTRY, NAME, 1, 8, 1)?;
        let runner = next_open(d)?;
        let client = next_open(d)?;
        let iova = loop {
            let r = d.poll()?;
            if r.kind == REQUEST_OUT && r.client == client && r.port == 0 {
                break r.value;
            }
        };
        d.write_iospace(client, 0, 8, 0)?;
        d.irq(client, 0)?;
        // Until the client runs its reading loop, the translation cached.
        loop {
            let r = d.poll()?;
            if r.kind == REQUEST_OUT && r.client == client && r.port == 2 {
                break;
            }
        }
        d.dma_write(client, &1u64.to_le_bytes(), iova)?;
        d.write_iospace(runner, 0, 8, 1)?;
        // Until the runner has dropped the old frame.
        loop {
            let r = d.poll()?;
            if r.kind == REQUEST_OUT && r.client == runner && r.port == 1 {
                break;
            }
        }
        for k in 2..=WRITES {
            fill_fresh_pages()?;
            d.dma_write(client, &k.to_le_bytes(), iova)?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => 10 + e.code() as i32,
    }
}

/// Maps, fills and unmaps fresh pages: a frame freed too early would be
/// among them, with `FRESH` in it.
fn fill_fresh_pages() -> Result<(), abi::Error> {
    vm::map(PRESSURE, PRESSURE_PAGES * P, vm::PROT_RW)?;
    // SAFETY: just mapped, ours.
    unsafe { core::ptr::write_bytes(PRESSURE as *mut u8, FRESH, (PRESSURE_PAGES * P) as usize) };
    vm::unmap(PRESSURE, PRESSURE_PAGES * P)
}

fn read_area() -> u64 {
    // SAFETY: AREA is mapped (shared with the runner until the first write).
    unsafe { (AREA as *const u64).read_volatile() }
}

fn client() -> i32 {
    let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ | dev::RIGHT_DMA;
    let Ok(h) = attach_when_there(NAME, rights) else {
        return 1;
    };
    if h.irq_map(0, V_CLIENT).is_err() {
        return 2;
    }
    // SAFETY: AREA is one mapped page of this process.
    let page = unsafe { core::slice::from_raw_parts_mut(AREA as *mut u8, P as usize) };
    let Ok(iova) = h.export(page) else {
        return 3;
    };
    if h.port_out_wait(0, 8, iova, 1 << V_CLIENT).is_err() {
        return 5;
    }
    // Read, so this CPU caches the translation to the shared frame, then
    // tell the server to write; a system call that does not block keeps
    // this address space loaded here (no CR3 load, no flush), so only a
    // shootdown can drop that translation.
    if read_area() != OLD {
        return 4;
    }
    if h.port_out(2, 8, 0).is_err() {
        return 8;
    }
    let mut last = 0;
    for _ in 0..READ_BOUND {
        let v = read_area();
        if v == OLD && last == 0 {
            continue;
        }
        if !(last..=WRITES).contains(&v) || v == 0 {
            return 6;
        }
        last = v;
        if last == WRITES {
            return 0;
        }
    }
    7
}

fn coherence() -> TestResult {
    crate::util::warm_up();
    let _ = vm::map(AREA, P, vm::PROT_RW);
    let _ = vm::unmap(AREA, P);
    reap_all();
    let before = free_frames();
    vm::map(AREA, P, vm::PROT_RW).map_err(fail)?;
    // SAFETY: just mapped, ours.
    unsafe { core::slice::from_raw_parts_mut(AREA as *mut u64, (P / 8) as usize).fill(OLD) };
    let server = bound_child(cpu(2), serve)?;
    let rights = dev::RIGHT_READ | dev::RIGHT_WRITE;
    let me = attach_when_there(NAME, rights).map_err(fail)?;
    let reader = bound_child(cpu(1), client)?;
    // The first write broke the sharing in the client: the old frame is
    // now this process's alone. Drop it, then let the server go on. (The
    // server says so in this client's I/O space: polled, so a server that
    // died cannot hang the runner.)
    let mut signalled = false;
    for _ in 0..2_000_000 {
        if me.port_in(0, 8) == Ok(1) {
            signalled = true;
            break;
        }
        process::yield_now();
    }
    if !signalled {
        // Stuck somewhere: end both so that reaping them cannot hang.
        if let Ok(h) = libmh::procs::open(true) {
            let _ = libmh::procs::kill(h, server);
            let _ = libmh::procs::kill(h, reader);
            let _ = h.detach();
        }
    }
    let unmapped = vm::unmap(AREA, P);
    let told = me.port_out(1, 8, 0);
    let statuses = reap(2)?;
    let _ = me.detach();
    ensure_eq!(signalled, true, "the server's first write");
    ensure_eq!(unmapped, Ok(()));
    ensure_eq!(told, Ok(()));
    all_exited_ok(&statuses)?;
    reap_all();
    ensure_eq!(free_frames(), before, "free frames after");
    Ok(())
}

pub fn run(s: &mut Suite) {
    s.run("tlb_coherence_under_cross_cpu_dma_writes", coherence);
}
