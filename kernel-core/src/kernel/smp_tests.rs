//! The scheduler across several CPUs on the fake machine: which CPU takes
//! a process made runnable, kicks and evictions, bound processes, and the
//! machine-wide priority rule.

use super::tests::{boot, call, fork};
use super::*;
use crate::fake::{self, Fake};
use crate::process::INIT_PID;
use abi::Sysno;

/// `boot`, with `n` CPUs running (the code runs on CPU 0).
fn boot_cpus(n: usize) -> Kernel<Fake> {
    let mut k = boot();
    for i in 0..n {
        k.cpu_online(i);
    }
    k
}

fn on_cpu(i: usize) {
    fake::with(|s| s.cpu = i);
}

#[test]
fn a_bound_process_yields_to_one_bound_to_the_same_cpu() {
    let mut k = boot_cpus(4);
    assert_eq!(
        call(&mut k, Sysno::SetAffinity, [0, 1, 0, 0, 0, 0]),
        Some(0)
    );
    let child = fork(&mut k);
    assert_eq!(k.get_mut(child).unwrap().affinity, 1, "inherited");
    assert_eq!(k.current_pid(), INIT_PID);
    assert_eq!(call(&mut k, Sysno::Yield, [0; 6]), Some(0));
    assert_eq!(k.current_pid(), child, "the yield gave CPU 0 to the child");
}

#[test]
fn a_new_process_goes_to_an_idle_cpu_which_is_kicked() {
    let mut k = boot_cpus(2);
    on_cpu(1);
    assert_eq!(k.settle(), Settled::Idle, "nothing for CPU 1 yet");
    on_cpu(0);
    fake::with(|s| s.kicks.clear());
    let child = fork(&mut k);
    assert_eq!(
        fake::with(|s| s.kicks.clone()),
        vec![1],
        "the idle CPU is kicked"
    );
    assert_eq!(k.current_pid(), INIT_PID, "the parent goes on");
    on_cpu(1);
    assert_eq!(k.settle(), Settled::Run);
    assert_eq!(k.current_pid(), child, "CPU 1 runs the child");
    assert_eq!(k.cpu_of(child), Some(1));
    on_cpu(0);
    assert_eq!(k.cpu_of(INIT_PID), Some(0));
}

/// Lets every kicked CPU answer (its IPI brings it to `settle`), until
/// none is left to answer; then back on CPU `home`.
fn answer_kicks(k: &mut Kernel<Fake>, home: usize) {
    for _ in 0..64 {
        let kicked: Vec<usize> = fake::with(|s| core::mem::take(&mut s.kicks));
        if kicked.is_empty() {
            break;
        }
        for cpu in kicked {
            on_cpu(cpu);
            let _ = k.settle();
        }
    }
    on_cpu(home);
}

/// The machine-wide rule, checked with every kick answered: no runnable
/// process waits while a CPU it may use runs something less urgent (an
/// idle CPU counts as least urgent of all).
fn check_priorities(k: &Kernel<Fake>, cpus: usize, step: usize) {
    const IDLE: u16 = u16::MAX;
    for j in 0..cpus {
        let c = &k.cpus[j];
        let running = if c.current_ptr.is_null() {
            IDLE
        } else {
            k.procs
                .get(c.current)
                .filter(|p| p.state == crate::process::State::Runnable)
                .map_or(IDLE, |p| u16::from(p.priority))
        };
        for queue in [0, local_queue(j)] {
            if let Some(waiting) = k.ready.best_level_in(queue) {
                assert!(
                    u16::from(waiting) >= running,
                    "step {step}: CPU {j} runs priority {running} while a process of priority \
                     {waiting} waits in queue {queue}"
                );
            }
        }
    }
}

#[test]
fn priorities_hold_machine_wide_under_random_operations() {
    for seed in 1..=40u64 {
        let cpus = 2 + (seed % 3) as usize;
        let mut k = boot_cpus(cpus);
        let mut rng = crate::testrng::Rng(seed * 7919);
        for cpu in 1..cpus {
            on_cpu(cpu);
            let _ = k.settle();
        }
        on_cpu(0);
        let mut blocked: Vec<Pid> = Vec::new();
        for step in 0..400 {
            // A CPU with a process to act for (there is always one: init
            // never sleeps here).
            let cpu = (0..cpus)
                .cycle()
                .skip(rng.below(cpus as u64) as usize)
                .take(cpus)
                .find(|&c| !k.cpus[c].current_ptr.is_null())
                .expect("some CPU runs a process");
            on_cpu(cpu);
            let me = k.current_pid();
            let op = rng.below(8);
            match op {
                0 | 1 if k.process_count() < 24 => {
                    let child = fork(&mut k);
                    let prio = rng.below(8);
                    if k.current_pid() == me {
                        let _ = call(&mut k, Sysno::SetPriority, [child as u64, prio, 0, 0, 0, 0]);
                    }
                    if rng.below(4) == 0 && k.current_pid() == me {
                        let mask = 1 + rng.below((1 << cpus) - 1);
                        let _ = call(&mut k, Sysno::SetAffinity, [child as u64, mask, 0, 0, 0, 0]);
                    }
                }
                2 => {
                    let _ = call(&mut k, Sysno::Yield, [0; 6]);
                }
                3 if me != INIT_PID => {
                    let _ = call(&mut k, Sysno::Exit, [0; 6]);
                }
                4 if me != INIT_PID => {
                    blocked.push(me);
                    let _ = call(&mut k, Sysno::IrqWait, [1 << 5, 0, 0, 0, 0, 0]);
                }
                5 if !blocked.is_empty() => {
                    let i = rng.below(blocked.len() as u64) as usize;
                    let pid = blocked.swap_remove(i);
                    k.raise(pid, 5);
                    let _ = k.settle();
                }
                6 => {
                    fake::with(|s| s.now += 10_000_000);
                    k.tick();
                    let _ = k.settle();
                }
                _ => {
                    // Reap whatever init can (zombies pile up otherwise).
                    if me == INIT_PID {
                        let _ = call(&mut k, Sysno::WaitChild, [tests::SCRATCH, 1, 0, 0, 0, 0]);
                    }
                }
            }
            answer_kicks(&mut k, cpu);
            check_priorities(&k, cpus, step);
        }
    }
}
