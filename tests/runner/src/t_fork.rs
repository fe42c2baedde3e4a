//! fork and copy-on-write: isolation of every kind of memory, COW chains,
//! the last-sharer path, many children, orphans, faults in children, and
//! the child-exit vector.

use crate::suite::{Fail, Suite};
use crate::util::{child_ok, free_frames, in_child, peek, poke};
use crate::{ensure, ensure_eq};
use abi::interrupt::VECTOR_CHILD;
use abi::layout::USER_HEAP_BASE;
use abi::{Error, ExitKind};
use core::hint::black_box;
use libmh::{process, rt, vm};

const P: u64 = 4096;
const AREA: u64 = 0x5100_0000_0000;

static mut DATA: u64 = 0x1234;
static mut BSS: [u64; 1024] = [0; 1024];

fn data() -> u64 {
    // SAFETY: single-threaded test program.
    unsafe { (&raw const DATA).read_volatile() }
}
fn set_data(v: u64) {
    // SAFETY: as above.
    unsafe { (&raw mut DATA).write_volatile(v) }
}
fn bss(i: usize) -> u64 {
    // SAFETY: as above; i < 1024.
    unsafe { (&raw const BSS[i]).read_volatile() }
}
fn set_bss(i: usize, v: u64) {
    // SAFETY: as above.
    unsafe { (&raw mut BSS[i]).write_volatile(v) }
}

pub fn run(s: &mut Suite) {
    crate::util::warm_up();
    let baseline = free_frames();

    s.run("fork_returns_zero_in_child_pid_in_parent", || {
        let st = in_child(|| if process::getpid() > 1 { 42 } else { 1 })?;
        ensure_eq!((st.kind, st.code), (ExitKind::Exited as u32, 42));
        ensure!(st.pid > 1, "child pid {}", st.pid);
        Ok(())
    });

    s.run("fork_isolates_stack_heap_data_bss", || {
        let heap = USER_HEAP_BASE + 0x40_0000;
        let mut stack_var = black_box(100u64);
        set_data(200);
        set_bss(500, 300);
        poke(heap, 40);
        let st = in_child(|| {
            let mut bad = 0;
            // The child sees the parent's values...
            if black_box(stack_var) != 100 {
                bad |= 1;
            }
            if data() != 200 {
                bad |= 2;
            }
            if bss(500) != 300 {
                bad |= 4;
            }
            if peek(heap) != 40 {
                bad |= 8;
            }
            // ...and its writes are its own.
            stack_var = 101;
            set_data(201);
            set_bss(500, 301);
            poke(heap, 41);
            if black_box(stack_var) != 101 || data() != 201 || bss(500) != 301 || peek(heap) != 41 {
                bad |= 16;
            }
            bad
        })?;
        ensure_eq!(st.code, 0);
        ensure_eq!(
            (black_box(stack_var), data(), bss(500), peek(heap)),
            (100, 200, 300, 40)
        );
        // The parent writes after the child left: its pages are its own.
        set_data(202);
        poke(heap, 42);
        ensure_eq!((data(), peek(heap)), (202, 42));
        ensure_eq!(vm::unmap(USER_HEAP_BASE, 0x80_0000), Ok(()));
        Ok(())
    });

    s.run("cow_copy_happens_in_the_child_runtime", || {
        ensure_eq!(vm::map(AREA, P, vm::PROT_RW), Ok(()));
        poke(AREA, 1);
        let st = in_child(|| {
            let before = rt::stats().cow_copies;
            poke(AREA, 2);
            (rt::stats().cow_copies - before) as i32
        })?;
        ensure_eq!(st.code, 1);
        ensure_eq!(peek(AREA), 1);
        ensure_eq!(vm::unmap(AREA, P), Ok(()));
        Ok(())
    });

    s.run("last_sharer_gets_page_back_without_copy", || {
        ensure_eq!(vm::map(AREA, P, vm::PROT_RW), Ok(()));
        poke(AREA, 5);
        let st = in_child(|| 0)?;
        ensure_eq!(st.code, 0);
        // The child never wrote and is gone: the page is ours alone again.
        let before = rt::stats();
        poke(AREA, 6);
        let after = rt::stats();
        ensure_eq!(after.cow_copies, before.cow_copies);
        ensure_eq!(after.rewritable, before.rewritable + 1);
        ensure_eq!(peek(AREA), 6);
        ensure_eq!(vm::unmap(AREA, P), Ok(()));
        Ok(())
    });

    s.run("cow_chain_fork_of_a_fork", || {
        ensure_eq!(vm::map(AREA, P, vm::PROT_RW), Ok(()));
        poke(AREA, 1);
        let st = in_child(|| {
            poke(AREA, 2);
            let grandchild = in_child(|| {
                let seen = peek(AREA);
                poke(AREA, 3);
                if seen == 2 && peek(AREA) == 3 { 0 } else { 1 }
            });
            match grandchild {
                Ok(st) if st.code == 0 && peek(AREA) == 2 => 0,
                _ => 1,
            }
        })?;
        ensure_eq!(st.code, 0);
        ensure_eq!(peek(AREA), 1);
        ensure_eq!(vm::unmap(AREA, P), Ok(()));
        Ok(())
    });

    s.run("fork_1000_children_one_at_a_time", || {
        for i in 0..1000 {
            let st = in_child(|| 7)?;
            ensure!(st.code == 7, "child {i} exited with {}", st.code);
        }
        Ok(())
    });

    s.run("fork_50_children_at_once", || {
        let mut pids = [0u32; 50];
        for (i, slot) in pids.iter_mut().enumerate() {
            match process::fork() {
                Ok(0) => process::exit(i as i64),
                Ok(pid) => *slot = pid,
                Err(e) => ensure!(false, "fork {i}: {e}"),
            }
        }
        let mut seen = [false; 50];
        for _ in 0..50 {
            let st = process::wait_child().map_err(|e| Fail::new(format_args!("{e}")))?;
            let i = st.code as usize;
            ensure!(
                i < 50 && pids[i] == st.pid && !seen[i],
                "unexpected child {:?}",
                st
            );
            seen[i] = true;
        }
        ensure_eq!(process::try_wait_child().err(), Some(Error::NoChildren));
        Ok(())
    });

    s.run("child_exit_raises_the_child_vector", || {
        let pid = process::fork().map_err(|e| Fail::new(format_args!("{e}")))?;
        if pid == 0 {
            process::exit(0);
        }
        let got = process::irq_wait(1 << VECTOR_CHILD);
        ensure_eq!(got, Ok(1 << VECTOR_CHILD));
        let st = process::wait_child().map_err(|e| Fail::new(format_args!("{e}")))?;
        ensure_eq!(st.pid, pid);
        Ok(())
    });

    s.run("exit_with_children_reparents_them_to_init", || {
        // The runner is init: a child that exits leaving children running
        // makes them ours to reap.
        let st = in_child(|| {
            for _ in 0..3 {
                if let Ok(0) = process::fork() {
                    for _ in 0..5 {
                        process::yield_now();
                    }
                    process::exit(9);
                }
            }
            0
        })?;
        ensure_eq!(st.code, 0);
        for _ in 0..3 {
            let st = process::wait_child().map_err(|e| Fail::new(format_args!("{e}")))?;
            ensure_eq!(st.code, 9);
        }
        ensure_eq!(process::try_wait_child().err(), Some(Error::NoChildren));
        Ok(())
    });

    s.run("unresolvable_fault_kills_child_with_report", || {
        let st = in_child(|| {
            poke(black_box(0x10), 1);
            0
        })?;
        ensure_eq!(
            (st.kind, st.code, st.fault_addr),
            (ExitKind::Faulted as u32, 14, 0x10)
        );
        ensure!(
            crate::t_syscalls::log_contains(b"page fault: write at 0x10 (not mapped)"),
            "no libmh report line"
        );
        Ok(())
    });

    s.run("stack_overflow_is_reported_as_such", || {
        #[inline(never)]
        #[allow(unconditional_recursion)] // the point: it ends in the guard page
        fn forever(n: u64) -> u64 {
            let pad = black_box([n; 128]);
            forever(n + 1) + pad[1]
        }
        let st = in_child(|| forever(0) as i32)?;
        ensure_eq!((st.kind, st.code), (ExitKind::Faulted as u32, 14));
        ensure!(
            crate::t_syscalls::log_contains(b": stack overflow: write at"),
            "no stack-overflow report"
        );
        Ok(())
    });

    s.run("fork_without_handler_kernel_resolves_cow", || {
        // A process without a handler (like a C program) still survives
        // writing its memory after fork: the kernel copies for it.
        ensure_eq!(vm::map(AREA, P, vm::PROT_RW), Ok(()));
        poke(AREA, 1);
        child_ok(|| {
            // SAFETY: removes the handler; takes no pointers.
            unsafe { libmh::raw::syscall3(abi::Sysno::SetHandler as u64, 0, 0, 0) };
            let before = rt::stats().cow_copies;
            poke(AREA, 2);
            let grand = in_child(|| {
                poke(AREA, 3);
                (peek(AREA) != 3) as i32
            });
            let ok = grand.is_ok_and(|st| st.code == 0)
                && peek(AREA) == 2
                && rt::stats().cow_copies == before;
            (!ok) as i32
        })?;
        ensure_eq!(peek(AREA), 1);
        ensure_eq!(vm::unmap(AREA, P), Ok(()));
        Ok(())
    });

    s.run("fork_group_gives_back_every_frame", || {
        ensure_eq!(free_frames(), baseline);
        Ok(())
    });
}
