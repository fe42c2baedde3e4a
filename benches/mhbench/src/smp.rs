//! The wall-time benchmarks of several CPUs (`mhbench smp`, the
//! `bench-smp` image, booted by `cargo xtask bench` under multi-threaded
//! TCG, where the guest TSC follows the host's clock): round trips of
//! one client/server pair against two independent pairs on two CPUs, and
//! the round trip between CPUs against the one on a CPU.
//!
//! Rules (the output `cargo xtask bench` parses): one `smp <name> <value>`
//! line per figure, then `smp done`; values are nanoseconds or
//! thousandths (a ratio). Each process is bound (`set_affinity`) before
//! it does anything measured, so where it runs is the benchmark's choice,
//! not the scheduler's. Every pair uses its own device; every child is
//! reaped.

use crate::measure::{self, Fail};
use abi::userdev::REQUEST_OUT;
use libmh::dev::{self, Handle, REGISTRY};
use libmh::{println, process};

/// Round trips per client in a timed run.
const ROUND_TRIPS: u64 = 20_000;
/// Round trips before the timed ones (caches, first faults).
const WARM_UP: u64 = 1_000;
const V: u32 = 20;

/// An echo server bound to `cpu`, serving `name`: answers each OUT with
/// `value + 1`; port 9 stops it.
fn serve(name: &str, cpu: u32) -> i32 {
    if process::set_affinity(0, 1 << cpu).is_err() {
        return 3;
    }
    let Ok(d) = dev::create(dev::REGISTRY, name, 1, 8, 1) else {
        return 1;
    };
    let mut next = d.poll();
    loop {
        let Ok(r) = next else { return 2 };
        next = match (r.kind, r.port) {
            (REQUEST_OUT, 9) => return 0,
            (REQUEST_OUT, _) => d.reply_poll(r.client, 0, 8, r.value + 1, Some(0)),
            _ => d.poll(),
        };
    }
}

/// Starts a server for `name` on `cpu` and returns a client handle to it.
fn start_server(name: &'static str, cpu: u32) -> Result<Handle, Fail> {
    if process::fork()? == 0 {
        process::exit(serve(name, cpu) as i64);
    }
    let rights = dev::RIGHT_WRITE | dev::RIGHT_READ | dev::RIGHT_IRQ;
    for _ in 0..100_000 {
        if let Ok(h) = dev::attach(REGISTRY, name, rights) {
            h.irq_map(0, V)?;
            return Ok(h);
        }
        process::yield_now();
    }
    Err(Fail::Setup(
        "the server never registered",
        abi::Error::NotFound,
    ))
}

/// `n` round trips on `h`, checked; TSC ticks they took.
fn round_trips(h: Handle, n: u64) -> Result<u64, Fail> {
    let start = measure::now();
    for i in 0..n {
        let got = h.port_out_wait(0, 8, i, 1 << V)?;
        let _ = got;
    }
    let ticks = measure::now() - start;
    let last = h.port_in(0, 8)?;
    if last != n {
        return Err(Fail::Check("echo answered wrongly", last as i64));
    }
    Ok(ticks)
}

/// A client bound to `client_cpu` of a server on `server_cpu` (serving
/// `name`): warms up, waits for the TSC to pass `go` (so that clients
/// started together measure together), then times its round trips.
/// Ticks from `go` to its last answer.
fn client(name: &'static str, client_cpu: u32, server_cpu: u32, go: u64) -> Result<u64, Fail> {
    process::set_affinity(0, 1 << client_cpu)?;
    let h = start_server(name, server_cpu)?;
    round_trips(h, WARM_UP)?;
    while measure::now() < go {
        core::hint::spin_loop();
    }
    let result = round_trips(h, ROUND_TRIPS).map(|_| measure::now() - go);
    let _ = h.port_out(9, 8, 0);
    let _ = h.detach();
    process::wait_child()?;
    result
}

/// Runs `client` in a child; its exit code carries the ticks.
fn spawn_client(
    name: &'static str,
    client_cpu: u32,
    server_cpu: u32,
    go: u64,
) -> Result<u32, Fail> {
    let pid = process::fork()?;
    if pid == 0 {
        let code = match client(name, client_cpu, server_cpu, go) {
            Ok(ticks) => ticks as i64,
            Err(e) => {
                println!("mhbench: smp client {name}: {e}");
                -1
            }
        };
        process::exit(code);
    }
    Ok(pid)
}

/// Starts the given clients together; the ticks until the last finished.
fn run_together(clients: &[(&'static str, u32, u32)], tsc_hz: u64) -> Result<u64, Fail> {
    // Far enough ahead for every child to fork its server and warm up.
    let go = measure::now() + tsc_hz / 2;
    for &(name, c, s) in clients {
        spawn_client(name, c, s, go)?;
    }
    let mut slowest = 0;
    for _ in clients {
        let st = process::wait_child()?;
        if st.code < 0 {
            return Err(Fail::Check("a client failed", st.code));
        }
        slowest = slowest.max(st.code as u64);
    }
    Ok(slowest)
}

/// The TSC's rate, against the kernel's tick (the guest TSC follows the
/// host's clock under plain TCG).
fn tsc_hz() -> Result<u64, Fail> {
    let info = process::sys_info()?;
    let hz = info.tick_hz.max(1);
    let wait = |from: u64| -> Result<u64, Fail> {
        loop {
            let now = process::sys_info()?.ticks;
            if now != from {
                return Ok(now);
            }
            process::yield_now();
        }
    };
    let first = wait(info.ticks)?;
    let t0 = measure::now();
    let ticks = hz / 5 + 1;
    let mut now = first;
    while now < first + ticks {
        now = wait(now)?;
    }
    let t1 = measure::now();
    Ok((t1 - t0) * hz / (now - first))
}

fn ns(ticks: u64, tsc_hz: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(tsc_hz.max(1))) as u64
}

/// Every figure; the count of those that failed.
pub fn run() -> u32 {
    let (_, cpus) = process::cpu();
    let hz = match tsc_hz() {
        Ok(hz) => hz,
        Err(e) => {
            println!("smp tsc_hz FAILED {e}");
            return 1;
        }
    };
    println!("smp cpus {cpus}");
    println!("smp tsc_khz {}", hz / 1000);
    let last = cpus.saturating_sub(1);
    let mut failed = 0;
    let mut report = |name: &str, r: Result<u64, Fail>| match r {
        Ok(v) => {
            println!("smp {name} {v}");
            Some(v)
        }
        Err(e) => {
            println!("smp {name} FAILED {e}");
            failed += 1;
            None
        }
    };
    // One pair on CPU 0; two pairs, one per CPU, at once.
    let one = report(
        "one_pair_ns_per_round_trip",
        run_together(&[("smp-a", 0, 0)], hz).map(|t| ns(t, hz) / ROUND_TRIPS),
    );
    let two = report(
        "two_pairs_ns_per_round_trip",
        run_together(&[("smp-a", 0, 0), ("smp-b", last, last)], hz)
            .map(|t| ns(t, hz) / (2 * ROUND_TRIPS)),
    );
    if let (Some(one), Some(two)) = (one, two) {
        // Throughput of two pairs over one, in thousandths.
        println!("smp two_pairs_speedup_milli {}", one * 1000 / two.max(1));
    }
    report(
        "cross_cpu_round_trip_ns",
        run_together(&[("smp-x", 0, last)], hz).map(|t| ns(t, hz) / ROUND_TRIPS),
    );
    println!("smp done");
    failed
}
