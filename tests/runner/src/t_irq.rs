//! Interrupt vectors and handlers: raise, wait, enable, delivery, nesting,
//! and the errors of each call.

use crate::suite::Suite;
use crate::util::{child_ok, in_child, peek};
use crate::{ensure, ensure_eq};
use abi::layout::USER_HEAP_BASE;
use abi::{Error, ExitKind, IntFrame, Sysno};
use core::sync::atomic::{AtomicU64, Ordering};
use libmh::raw::syscall3;
use libmh::{process, rt, vm};

static SEEN: AtomicU64 = AtomicU64::new(0);
static NESTED_READ: AtomicU64 = AtomicU64::new(0);

fn record(vector: u32) {
    SEEN.fetch_or(1 << vector, Ordering::Relaxed);
}

/// Runs in the handler; touches an unmapped heap page, so a page fault is
/// delivered while this interrupt frame is live.
fn fault_inside(vector: u32) {
    let v = peek(USER_HEAP_BASE + 0x77_7000);
    NESTED_READ.store(1 + v as u64, Ordering::Relaxed);
    record(vector);
}

fn raw(n: Sysno, a: u64, b: u64, c: u64) -> Result<usize, Error> {
    // SAFETY: arguments may lie on purpose; the kernel checks them.
    Error::decode(unsafe { syscall3(n as u64, a, b, c) })
}

pub fn run(s: &mut Suite) {
    s.run("irq_raise_then_wait_takes_the_vector", || {
        ensure_eq!(process::irq_raise(3), Ok(()));
        ensure_eq!(process::irq_raise(5), Ok(()));
        ensure_eq!(process::irq_wait(1 << 3), Ok(1 << 3));
        ensure_eq!(process::irq_wait((1 << 5) | (1 << 6)), Ok(1 << 5));
        Ok(())
    });

    s.run("irq_call_errors", || {
        ensure_eq!(process::irq_raise(63), Err(Error::InvalidArgument));
        ensure_eq!(
            raw(Sysno::IrqRaise, u64::MAX, 0, 0),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(process::irq_wait(0), Err(Error::InvalidArgument));
        ensure_eq!(process::irq_wait(1 << 63), Err(Error::InvalidArgument));
        ensure_eq!(raw(Sysno::IntEnable, 2, 0, 0), Err(Error::InvalidArgument));
        Ok(())
    });

    s.run("irq_wait_sleeps_until_raised_elsewhere", || {
        // A child cannot raise on us, but its exit raises the child vector
        // after it had yielded a while: the wait must sleep through that.
        let pid = process::fork().map_err(|e| crate::suite::Fail::new(format_args!("{e}")))?;
        if pid == 0 {
            for _ in 0..20 {
                process::yield_now();
            }
            process::exit(0);
        }
        ensure_eq!(process::irq_wait(1), Ok(1));
        ensure_eq!(process::wait_child().map(|st| st.pid), Ok(pid));
        Ok(())
    });

    s.run("enabled_interrupts_reach_the_handler", || {
        SEEN.store(0, Ordering::Relaxed);
        rt::on_interrupt(7, record);
        let before = rt::stats().interrupts;
        ensure_eq!(process::irq_raise(7), Ok(()));
        ensure_eq!(SEEN.load(Ordering::Relaxed), 0, "delivered while disabled");
        ensure_eq!(process::int_enable(true), Ok(false));
        // Delivered on the way back from int_enable (it was pending).
        ensure_eq!(SEEN.load(Ordering::Relaxed), 1 << 7);
        ensure_eq!(process::irq_raise(7), Ok(()));
        ensure_eq!(process::int_enable(false), Ok(true));
        ensure_eq!(rt::stats().interrupts, before + 2);
        Ok(())
    });

    s.run("fault_inside_a_handler_nests_safely", || {
        child_ok(|| {
            rt::on_interrupt(9, fault_inside);
            let _ = process::irq_raise(9);
            let _ = process::int_enable(true);
            // The handler ran, faulted on a fresh heap page (a nested
            // delivery below its own frame), read 0, and returned here.
            let ok = SEEN.load(Ordering::Relaxed) & (1 << 9) != 0
                && NESTED_READ.load(Ordering::Relaxed) == 1;
            (!ok) as i32
        })
    });

    s.run("set_handler_errors", || {
        let stack = 0x5200_0000_0000u64;
        ensure_eq!(raw(Sysno::SetHandler, 0, 1, 0), Err(Error::InvalidArgument));
        ensure_eq!(
            raw(Sysno::SetHandler, 0xffff_ffff_8010_0000, stack, 8192),
            Err(Error::BadAddress)
        );
        ensure_eq!(
            raw(Sysno::SetHandler, 0x40_0000, 0xffff_8000_0000_0000, 8192),
            Err(Error::BadAddress)
        );
        ensure_eq!(
            raw(Sysno::SetHandler, 0x40_0000, stack, 100),
            Err(Error::InvalidArgument)
        );
        // A handler whose stack is not mapped: the first fault cannot be
        // delivered and the process dies of it, reported.
        let st = in_child(|| {
            let _ = raw(Sysno::SetHandler, 0x40_0000, stack, 8192);
            peek(0x20) as i32
        })?;
        ensure_eq!((st.kind, st.code), (ExitKind::Faulted as u32, 14));
        ensure!(
            crate::t_syscalls::log_contains(b"(handler stack unusable)"),
            "no report"
        );
        Ok(())
    });

    s.run("int_return_refuses_bad_frames", || {
        ensure_eq!(raw(Sysno::IntReturn, 0, 0, 0), Err(Error::BadAddress));
        let mut f = IntFrame {
            rip: 0xffff_ffff_8010_0000,
            rsp: 0x7fff_0000,
            ..IntFrame::default()
        };
        ensure_eq!(
            raw(Sysno::IntReturn, &raw mut f as u64, 0, 0),
            Err(Error::InvalidArgument)
        );
        f.rip = 0x40_0000;
        f.rsp = 0x8000_0000_0000_0000;
        ensure_eq!(
            raw(Sysno::IntReturn, &raw mut f as u64, 0, 0),
            Err(Error::InvalidArgument)
        );
        f.rsp = 0x7fff_0000;
        f.int_enabled = 2;
        ensure_eq!(
            raw(Sysno::IntReturn, &raw mut f as u64, 0, 0),
            Err(Error::InvalidArgument)
        );
        Ok(())
    });

    s.run("priorities_and_their_errors", || {
        ensure_eq!(process::set_priority(0, 8), Err(Error::InvalidArgument));
        ensure_eq!(process::set_priority(999_999, 5), Err(Error::NotFound));
        // A child at a less urgent level than ours, then back; never more
        // urgent than the caller.
        let st = in_child(|| {
            let me = process::set_priority(0, 6);
            let up = process::set_priority(0, 5);
            (me.is_err() as i32) | ((up != Err(Error::AccessDenied)) as i32) << 1
        })?;
        ensure_eq!(st.code, 0);
        ensure_eq!(
            process::set_priority(1, 3),
            Err(Error::AccessDenied),
            "more urgent than the caller"
        );
        Ok(())
    });

    s.run("affinity_and_its_errors", || {
        let (cpu, cpus) = process::cpu();
        ensure!(cpus >= 1 && cpu < cpus, "sys_info: CPU {cpu} of {cpus}");
        ensure_eq!(
            process::set_affinity(0, 1 << 16),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            process::set_affinity(0, u64::MAX),
            Err(Error::InvalidArgument)
        );
        if cpus < 16 {
            ensure_eq!(
                process::set_affinity(0, 1 << cpus),
                Err(Error::InvalidArgument),
                "a mask naming no running CPU"
            );
        }
        ensure_eq!(process::set_affinity(999_999, 1), Err(Error::NotFound));
        let st = in_child(|| (process::set_affinity(1, 1) != Err(Error::AccessDenied)) as i32)?;
        ensure_eq!(st.code, 0, "a child binding its parent");
        // A child bound to the last CPU runs there (with one CPU: CPU 0).
        let last = cpus - 1;
        let proc = libmh::dev::attach(
            libmh::dev::REGISTRY,
            "proc",
            libmh::dev::RIGHT_READ | libmh::dev::RIGHT_WRITE,
        )
        .map_err(|e| crate::suite::Fail::new(format_args!("attach proc: {e}")))?;
        let child = match process::fork() {
            Ok(0) => {
                // Bounded in time, not in yields: the parent binds it only
                // when its own vCPU runs, which a loaded host may delay.
                let since = crate::helpers::ticks_now();
                while !crate::helpers::seconds_passed(since, 30) {
                    if process::cpu().0 == last {
                        process::exit(0);
                    }
                    process::yield_now();
                }
                process::exit(1)
            }
            Ok(pid) => pid,
            Err(e) => return Err(crate::suite::Fail::new(format_args!("fork: {e}"))),
        };
        let bound = process::set_affinity(child, 1 << last);
        let read = proc
            .port_out(abi::kdev::PROC_PORT_SELECT, 4, u64::from(child))
            .and_then(|()| proc.port_in(abi::kdev::PROC_PORT_AFFINITY, 8));
        let narrow = proc.port_in(abi::kdev::PROC_PORT_AFFINITY, 4);
        let st = process::wait_child();
        let gone = proc.port_in(abi::kdev::PROC_PORT_CPU, 4);
        // The runner, bound where it is, reads its own CPU.
        let _ = process::set_affinity(0, 1 << process::cpu().0);
        let mine = proc
            .port_out(abi::kdev::PROC_PORT_SELECT, 4, u64::from(process::getpid()))
            .and_then(|()| proc.port_in(abi::kdev::PROC_PORT_CPU, 4));
        let here = process::cpu().0;
        let _ = process::set_affinity(0, 0);
        let _ = proc.detach();
        ensure_eq!(bound, Ok(()));
        ensure_eq!(read, Ok(1 << last));
        ensure_eq!(narrow, Err(Error::InvalidArgument), "the mask is 8 bytes");
        ensure_eq!(
            st.map(|s| (s.pid, s.code)),
            Ok((child, 0)),
            "the child ran on CPU {last}"
        );
        ensure_eq!(gone, Err(Error::NotFound), "a reaped child has no CPU");
        ensure_eq!(mine, Ok(u64::from(here)));
        Ok(())
    });

    let _ = vm::unmap(USER_HEAP_BASE + 0x77_7000, 4096);
}
