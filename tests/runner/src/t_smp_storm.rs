//! Every CPU at once: fork/exit/wait storms, the syscall fuzzer on every
//! CPU, and a soak of every kind of call, each ending with the kernel
//! responsive and every frame back.
//!
//! Rules: as in `t_smp`. The fuzzer and the soak are heavy (`run_heavy`:
//! the 4-CPU pass only). Frames are counted as `t_fuzz` counts them:
//! free frames plus the runner's own (its stack may grow), after every
//! child (orphans included) is reaped and hardware quarantines released.

use crate::suite::{Fail, Suite, TestResult};
use crate::t_smp::{
    all_exited_ok, attach_when_there, bound_child, cpus, echo_server, fail, reap_all, spin,
};
use crate::util::{free_frames, poke, warm_up};
use crate::{ensure, ensure_eq};
use abi::ExitStatus;
use alloc::vec::Vec;
use core::arch::x86_64::_rdtsc;
use libmh::dev::{self, REGISTRY};
use libmh::{process, procs, vm};

/// Where storm and soak children touch their pages.
const AREA: u64 = 0x5a00_0000_0000;
const P: u64 = 4096;

/// Waits until every one of `pids` has ended (other children reaped on
/// the way are orphans, adopted by the runner); their statuses.
fn reap_pids(pids: &[u32]) -> Result<Vec<ExitStatus>, Fail> {
    let mut out = Vec::new();
    while out.len() < pids.len() {
        let st = process::wait_child().map_err(fail)?;
        if pids.contains(&st.pid) {
            out.push(st);
        }
    }
    Ok(out)
}

/// The frames a test must give back: free ones plus the runner's own.
fn frames_now() -> Result<u64, Fail> {
    crate::t_fuzz::release_hardware_quarantine()?;
    Ok(free_frames() + crate::t_fuzz::own_frames()?)
}

/// A child's round: fork a grandchild that maps and touches `pages`
/// pages, exits with `code`; reap it and check the code.
fn fork_touch_exit(pages: u64, code: i64) -> Result<(), abi::Error> {
    match process::fork()? {
        0 => {
            if vm::map(AREA, pages * P, vm::PROT_RW).is_err() {
                process::exit(-1);
            }
            for i in 0..pages {
                poke(AREA + i * P, i as u8);
            }
            process::exit(code)
        }
        pid => {
            let st = process::wait_child()?;
            if st.pid != pid || st.code != code {
                return Err(abi::Error::InvalidArgument);
            }
            Ok(())
        }
    }
}

fn storms() -> TestResult {
    const ROUNDS: i64 = 60;
    warm_up();
    reap_all();
    let before = frames_now()?;
    let mut pids = Vec::new();
    for c in 0..cpus() {
        pids.push(bound_child(c, move || {
            for r in 0..ROUNDS {
                if fork_touch_exit(1 + (r as u64 % 8), r).is_err() {
                    return 1 + r as i32;
                }
            }
            0
        })?);
    }
    all_exited_ok(&reap_pids(&pids)?)?;
    reap_all();
    ensure_eq!(frames_now()?, before, "frames after the storms");
    Ok(())
}

fn fuzz_everywhere() -> TestResult {
    const ROUNDS_PER_CPU: u64 = 6;
    warm_up();
    reap_all();
    // A first round makes what the runner keeps for good (as in t_fuzz).
    crate::t_fuzz::round(crate::t_fuzz::seed_of(9_000))?;
    reap_all();
    let before = frames_now()?;
    let mut pids = Vec::new();
    for c in 0..cpus() {
        pids.push(bound_child(c, move || {
            let mut ok = 0;
            for r in 0..ROUNDS_PER_CPU {
                let seed = crate::t_fuzz::seed_of(10_000 + u64::from(c) * 100 + r);
                if crate::t_fuzz::round(seed).is_ok() {
                    ok += 1;
                }
            }
            if ok == ROUNDS_PER_CPU { 0 } else { 1 }
        })?);
    }
    all_exited_ok(&reap_pids(&pids)?)?;
    reap_all();
    // Still itself: a fresh fork and wait, and a system call.
    ensure_eq!(crate::util::in_child(|| 7).map(|s| s.code).ok(), Some(7));
    ensure!(process::sys_info().is_ok(), "sys_info after the fuzzers");
    ensure_eq!(frames_now()?, before, "frames after the fuzzers");
    Ok(())
}

/// One soak worker: every kind of call, in turn, until `until` (TSC).
fn soak_worker(c: u32, until: u64) -> i32 {
    let echo = attach_when_there(
        "t-smp-soak",
        dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ,
    );
    let Ok(echo) = echo else { return 1 };
    if echo.irq_map(0, 26).is_err() {
        return 2;
    }
    let Ok(procs_h) = procs::open(true) else {
        return 3;
    };
    let mut i = 0u64;
    // SAFETY: reads the TSC.
    while unsafe { _rdtsc() } < until {
        let step = match i % 8 {
            0 => fork_touch_exit(2, 5),
            1 => echo
                .port_out_wait(0, 8, i, 1 << 26)
                .and_then(|_| echo.port_in(0, 8))
                .and_then(|v| {
                    if v == i + 1 {
                        Ok(())
                    } else {
                        Err(abi::Error::InvalidArgument)
                    }
                }),
            2 => vm::map(AREA + P * u64::from(c), P, vm::PROT_RW).and_then(|()| {
                poke(AREA + P * u64::from(c), 1);
                vm::unmap(AREA + P * u64::from(c), P)
            }),
            3 => dev::attach(REGISTRY, "bootfs", dev::RIGHT_READ).and_then(|h| h.detach()),
            4 => {
                // A child asleep, killed.
                match process::fork() {
                    Ok(0) => {
                        let _ = process::irq_wait(1 << 40);
                        process::exit(9)
                    }
                    Ok(pid) => procs::kill(procs_h, pid)
                        .and_then(|()| process::wait_child())
                        .map(|_| ()),
                    Err(e) => Err(e),
                }
            }
            5 => {
                process::yield_now();
                Ok(())
            }
            6 => process::log_write(b"").map(|_| ()),
            _ => process::sys_info().map(|_| ()),
        };
        if step.is_err() {
            return 10 + (i % 8) as i32;
        }
        i += 1;
        spin(64);
    }
    let _ = echo.detach();
    let _ = procs_h.detach();
    0
}

fn soak() -> TestResult {
    warm_up();
    reap_all();
    let before = frames_now()?;
    let server = bound_child(0, || echo_server("t-smp-soak"))?;
    // About a second of this host's TSC (2.6 GHz) for every worker.
    // SAFETY: reads the TSC.
    let until = unsafe { _rdtsc() } + 3_000_000_000;
    let mut pids = Vec::new();
    for c in 0..cpus() {
        pids.push(bound_child(c, move || soak_worker(c, until))?);
    }
    let workers = reap_pids(&pids)?;
    // The server ends when told (port 9) by a last client.
    if let Ok(h) = attach_when_there("t-smp-soak", dev::RIGHT_WRITE) {
        let _ = h.port_out(9, 8, 0);
        let _ = h.detach();
    }
    let served = reap_pids(&[server])?;
    all_exited_ok(&workers)?;
    all_exited_ok(&served)?;
    reap_all();
    ensure_eq!(crate::util::in_child(|| 7).map(|s| s.code).ok(), Some(7));
    ensure_eq!(frames_now()?, before, "frames after the soak");
    Ok(())
}

pub fn run(s: &mut Suite) {
    s.run("fork_exit_wait_storms_on_every_cpu", storms);
    s.run_heavy("the_fuzzer_on_every_cpu_at_once", fuzz_everywhere);
    s.run_heavy("lock_order_soak_on_every_cpu", soak);
}
