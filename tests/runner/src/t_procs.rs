//! Process tests: faults kill only the faulting process (with the right
//! status), preemption keeps a busy loop from starving the runner, and
//! `wait_child` reports, blocks and fails as documented.
//!
//! The helpers are the other modules of the test image, children of the
//! runner (see tools/images/test.toml): fault, spin, gp, int, ud, kread,
//! and the `hello` and `hello-c` examples.

use crate::helpers::{KERNEL_ADDR, SPIN_EXIT_BASE};
use crate::suite::Suite;
use crate::{ensure, ensure_eq};
use abi::syscall::WAIT_NOHANG;
use abi::{Error, ExitKind, ExitStatus, Sysno};
use libmh::process;
use libmh::raw::syscall6;

/// The helpers that must die of a fault: (name, vector, address or None).
const FAULTERS: [(&str, i64, Option<u64>); 5] = [
    ("fault", 14, Some(0)),
    ("gp", 13, None),
    ("int", 13, None),
    ("ud", 6, None),
    ("kread", 14, Some(KERNEL_ADDR)),
];

/// Every child of the runner: the faulters, the spinner, hello, hello-c.
const CHILDREN: usize = FAULTERS.len() + 3;

fn wait_raw(ptr: u64, flags: u64) -> Result<usize, Error> {
    // SAFETY: the pointer may lie on purpose; the kernel checks it.
    Error::decode(unsafe { syscall6(Sysno::WaitChild as u64, ptr, flags, 0, 0, 0, 0) })
}

pub fn run(s: &mut Suite) {
    let mut reaped: [Option<ExitStatus>; 12] = [None; 12];
    let mut count = 0usize;

    s.run("busy_loop_does_not_starve_others", || {
        // Runs first. The spinner never makes a system call and shares
        // CPU 0 with the runner (both are bound to it): if the kernel did
        // not preempt it, this yield could only return after it finished,
        // never having lost the CPU, and its status would be waiting
        // below with no gaps. (It may have finished already, having lost
        // the CPU: its exit code counts the times.)
        process::yield_now();
        loop {
            match process::try_wait_child() {
                Ok(st) => {
                    ensure!(count < reaped.len(), "too many children");
                    reaped[count] = Some(st);
                    count += 1;
                    ensure!(
                        !(st.kind == ExitKind::Exited as u32 && st.code == SPIN_EXIT_BASE as i64),
                        "the spinner finished without losing the CPU once: no preemption"
                    );
                }
                Err(Error::WouldBlock) => break,
                Err(e) => ensure!(false, "try_wait_child: {e:?}"),
            }
        }
        Ok(())
    });

    s.run("wait_child_bad_pointer_keeps_the_zombie", || {
        // A null pointer is refused at once (a malformed argument is
        // reported before the call looks for a zombie). Wait (yielding)
        // until some child is a zombie: a read-only pointer then fails,
        // and the zombie is still there after.
        ensure_eq!(wait_raw(0, WAIT_NOHANG), Err(Error::BadAddress));
        // A zombie of its own: the helpers left may all be gone already,
        // or be `hello`, less urgent than this runner, which shares CPU 0
        // with it and yields only to its equals (the child, forked here,
        // inherits both the CPU and the priority).
        let extra = match process::fork() {
            Ok(0) => process::exit(0),
            Ok(pid) => Some(pid),
            Err(e) => return Err(crate::suite::Fail::new(format_args!("fork: {e}"))),
        };
        let ro: &'static [u8; 48] = &[0; 48];
        let mut tries = 0;
        let since = crate::helpers::ticks_now();
        loop {
            match wait_raw(ro.as_ptr() as u64, WAIT_NOHANG) {
                Err(Error::BadAddress) => break,
                // Bounded in time, not in yields: how long a yield takes
                // depends on what else shares the CPU (on several CPUs,
                // often nothing), and the spinner needs a second or so.
                Err(Error::WouldBlock) if !crate::helpers::seconds_passed(since, 60) => {
                    tries += 1;
                    process::yield_now();
                }
                other => ensure!(
                    false,
                    "wait_child(read-only) = {other:?} after {tries} yields"
                ),
            }
        }
        let st = process::try_wait_child();
        ensure!(st.is_ok(), "the zombie was lost: {st:?}");
        // Helpers reaped on the way are recorded; the test's own child
        // is reaped here, so the groups below count only helpers.
        let mut next = st;
        loop {
            let st = next.map_err(|e| crate::suite::Fail::new(format_args!("wait_child: {e}")))?;
            if Some(st.pid) == extra {
                break;
            }
            ensure!(count < reaped.len(), "too many children");
            reaped[count] = Some(st);
            count += 1;
            next = process::wait_child();
        }
        Ok(())
    });

    s.run("blocking_wait_child_wakes_on_exit", || {
        // Only the spinner is left (the others end at once); a blocking
        // wait must sleep until it exits and then report it.
        while count < CHILDREN {
            let st = process::wait_child();
            ensure!(st.is_ok(), "wait_child: {st:?}");
            if let Ok(st) = st {
                reaped[count] = Some(st);
                count += 1;
            }
        }
        let spinner = reaped[..count]
            .iter()
            .flatten()
            .find(|st| st.kind == ExitKind::Exited as u32 && st.code >= SPIN_EXIT_BASE as i64);
        ensure!(spinner.is_some(), "no child exited normally");
        if let Some(st) = spinner {
            // The spinner counts the times it lost the CPU.
            let gaps = st.code - SPIN_EXIT_BASE as i64;
            ensure!(
                (1..100).contains(&gaps),
                "spinner exit code {} (gaps {gaps})",
                st.code
            );
        }
        Ok(())
    });

    s.run("faulting_processes_are_killed_with_their_fault", || {
        let faulted = || {
            reaped[..count]
                .iter()
                .flatten()
                .filter(|st| st.kind == ExitKind::Faulted as u32)
        };
        ensure_eq!(faulted().count(), FAULTERS.len());
        for (name, vector, addr) in FAULTERS {
            let found = faulted().any(|st| {
                st.code == vector
                    && addr.is_none_or(|a| st.fault_addr == a)
                    && st.fault_ip >= 0x40_0000
            });
            ensure!(found, "no child died of vector {vector} (helper '{name}')");
        }
        // int 0x80 into a DPL-0 gate: #GP whose error code names an IDT
        // entry (bit 1). QEMU encodes the index as vector * 16 where real
        // CPUs use vector * 8, so only the IDT bit is checked.
        ensure!(
            faulted().any(|st| st.code == 13 && st.fault_error & 3 == 2),
            "no #GP with an IDT error code for 'int 0x80'"
        );
        Ok(())
    });

    s.run("example_hello_runs", || {
        let clean = reaped[..count]
            .iter()
            .flatten()
            .filter(|st| st.kind == ExitKind::Exited as u32 && st.code == 0)
            .count();
        ensure_eq!(clean, 2, "hello and hello-c both exit with 0");
        ensure!(
            crate::t_syscalls::log_contains(b"arguments 'from the test image'"),
            "hello's line (with its arguments) is not in the log"
        );
        Ok(())
    });

    s.run("example_hello_c_forks_and_waits", || {
        // hello-c (C, built against mh.h) exits 0 only if its forked child
        // exited with 7 and wait_child reported the pid fork returned.
        ensure!(
            crate::t_syscalls::log_contains(b"hello-c: hello from C"),
            "no greeting"
        );
        ensure!(
            crate::t_syscalls::log_contains(b"hello-c: reaped child pid"),
            "no reap line"
        );
        ensure!(
            crate::t_syscalls::log_contains(b"hello-c: ok"),
            "hello-c did not report ok"
        );
        Ok(())
    });

    s.run("kernel_logs_one_line_per_killed_process", || {
        ensure!(
            crate::t_syscalls::log_contains(
                b"killed: #PF page fault (vector 14) error=0x6 addr=0x0"
            ),
            "no report for the null write"
        );
        ensure!(
            crate::t_syscalls::log_contains(b"killed: #UD invalid opcode"),
            "no report for ud2"
        );
        Ok(())
    });

    s.run("wait_child_without_children", || {
        ensure_eq!(process::try_wait_child().err(), Some(Error::NoChildren));
        ensure_eq!(process::wait_child().err(), Some(Error::NoChildren));
        Ok(())
    });
}
