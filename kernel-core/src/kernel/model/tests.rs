//! The model's runs and tests: a seed's run (`run`, `run_with`), ranges
//! of seeds on machines of three sizes, the checks that the runs did what
//! they are for, and the tests built on them (including the regression
//! tests of the bugs the model found, and the ignored long runs and
//! traces one starts by hand).
//!
//! Rules: seeds, step counts, machine sizes and the thresholds on `Stats`
//! are the tests' contract; the ignored tests read their parameters from
//! the environment (`MODEL_SEEDS`, `MODEL_STEPS`, `MODEL_FRAMES`,
//! `MODEL_SEED`, `MODEL_TRACE`).

use super::{CONFIGS_AT, Model, NAMES, NAMES_AT, Stats, boot_with_inputs, run_as};
use crate::fake::Fake;
use crate::kernel::Kernel;
use crate::machine::UserFrame;
use crate::process::{Block, INIT_PID, State};
use abi::bus::*;
use abi::kdev::*;
use abi::{Error, Sysno};

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
    use crate::kernel::tests::{call, fork};
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
