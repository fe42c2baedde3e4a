//! mhtest: the in-QEMU test suite. One program, two roles chosen by its
//! arguments: `runner` (init of the test image) runs the catalogue and
//! prints one line per test; `helper <what>` processes are started beside
//! it and misbehave on purpose (fault, spin, ...) so that the runner can
//! check what the kernel did to them.
#![no_std]
#![no_main]
// A failure carries its message in a fixed buffer (so that tests of the
// allocator do not depend on it), so test results are deliberately large.
#![allow(clippy::result_large_err)]

extern crate alloc;

mod bigmem;
mod console_check;
mod disk_util;
mod echo;
mod helpers;
mod init_check;
mod mem_restart;
mod suite;
mod t_bus;
mod t_disk;
mod t_exec;
mod t_fork;
mod t_fuzz;
mod t_hw;
mod t_irq;
mod t_isolation;
mod t_mem;
mod t_memserver;
mod t_names;
mod t_net;
mod t_pci;
mod t_pci_irq;
mod t_proc;
mod t_procs;
mod t_server;
mod t_smp;
mod t_smp_storm;
mod t_smp_tlb;
mod t_syscalls;
mod t_timer;
mod t_userdev;
mod t_vm;
mod util;

use libmh::{Args, println};

libmh::entry!(main);

fn main(args: Args) -> i32 {
    match (args.get(0), args.get(1)) {
        (Some("runner"), _) => match runner_pass(&args) {
            Some(pass) => run_all(pass),
            None => {
                println!("mhtest: usage: mhtest runner [pass=NAME]");
                2
            }
        },
        (Some("helper"), Some(what)) => helpers::run(what),
        (Some("console-check"), _) => console_check::run(),
        (Some("init-check"), _) => init_check::run(),
        (Some("mem-restart"), Some(kib)) => mem_restart::run(kib.parse().unwrap_or(0)),
        (Some("fuzz-trace"), Some(r)) => t_fuzz::trace_round(r.parse().unwrap_or(0)),
        (Some("fuzz-range"), Some(from)) => {
            let from = from.parse().unwrap_or(0);
            let to = args
                .get(2)
                .and_then(|t| t.parse().ok())
                .unwrap_or(from + 100);
            t_fuzz::hunt(from, to)
        }
        (Some("fuzz"), _) => {
            let mut s = suite::Suite::new();
            t_fuzz::run(&mut s);
            s.finish()
        }
        // For the shell's Ctrl-C test: sleeps until killed.
        (Some("sleep-forever"), _) => {
            println!("mhtest: sleeping until killed");
            let _ = libmh::process::irq_wait(1 << 40);
            3
        }
        (Some("mem-hog"), _) => t_memserver::hog(),
        (Some("bigmem"), _) => bigmem::run(),
        (Some("scope-probe"), _) => t_names::probe(&args),
        _ => {
            println!("mhtest: usage: mhtest runner | mhtest helper <what>");
            2
        }
    }
}

/// The runner's `pass=NAME` argument (see `suite`): `Some(None)` without
/// one, `None` for anything else, which the caller reports.
fn runner_pass(args: &Args) -> Option<Option<&'static str>> {
    match (args.get(1), args.get(2)) {
        (None, _) => Some(None),
        (Some(arg), None) => arg
            .strip_prefix("pass=")
            .filter(|p| !p.is_empty())
            .map(Some),
        _ => None,
    }
}

fn run_all(pass: Option<&'static str>) -> i32 {
    let mut s = suite::Suite::in_pass(pass);
    if let Some(pass) = pass {
        println!("mhtest: pass {pass}");
    }
    // The helpers are the other boot modules: start them first (they die,
    // spin and print while the first tests run). The timer server is a
    // module too, started later by its own tests. Until the spinner is
    // reaped the runner stays on CPU 0 with it (the spinner is bound
    // there by the manifest), so the preemption tests see one CPU shared.
    let _ = libmh::process::set_affinity(0, 1);
    s.run("init_spawns_the_boot_modules", || {
        let n = t_timer::spawn_helpers().map_err(|e| suite::Fail::new(format_args!("{e}")))?;
        ensure_eq!(n, 8);
        Ok(())
    });
    t_syscalls::run(&mut s);
    // Reaps the helper modules: the groups after it start with no children.
    t_procs::run(&mut s);
    let _ = libmh::process::set_affinity(0, 0);
    t_vm::run(&mut s);
    t_fork::run(&mut s);
    t_irq::run(&mut s);
    t_exec::run(&mut s);
    t_bus::run(&mut s);
    t_userdev::run(&mut s);
    t_hw::run(&mut s);
    t_pci::run(&mut s);
    t_disk::run(&mut s);
    t_net::run(&mut s);
    t_mem::run(&mut s);
    t_proc::run(&mut s);
    t_names::run(&mut s);
    t_server::run(&mut s);
    t_fuzz::run(&mut s);
    t_smp::run(&mut s);
    t_smp_tlb::run(&mut s);
    t_smp_storm::run(&mut s);
    t_timer::run(&mut s);
    t_memserver::run(&mut s);
    t_isolation::run(&mut s);
    s.finish()
}
