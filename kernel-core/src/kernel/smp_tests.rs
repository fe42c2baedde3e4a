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
    assert_eq!(fake::with(|s| s.kicks.clone()), vec![1], "the idle CPU is kicked");
    assert_eq!(k.current_pid(), INIT_PID, "the parent goes on");
    on_cpu(1);
    assert_eq!(k.settle(), Settled::Run);
    assert_eq!(k.current_pid(), child, "CPU 1 runs the child");
    assert_eq!(k.cpu_of(child), Some(1));
    on_cpu(0);
    assert_eq!(k.cpu_of(INIT_PID), Some(0));
}
