//! Isolation: no process can make another fail by taking memory,
//! processes, queue slots or server time, and none can take the kernel
//! into a loop. Each of the attack program's findings is a test here,
//! written against the system-call ABI, plus the exhaustion matrix: a
//! limited child exhausts one resource and gets the documented error while
//! the runner carries on, and afterwards every frame is back.

use crate::suite::{Fail, Suite, TestResult};
use crate::util::{free_frames, in_child, peek};
use crate::{ensure, ensure_eq};
use abi::interrupt::VECTOR_PAGE_FAULT;
use abi::userdev::{QUEUE_PER_CLIENT_DEFAULT, REQUEST_OPEN, REQUEST_OUT};
use abi::{Error, ExitKind, ExitStatus, Sysno};
use alloc::collections::BTreeSet;
use libmh::dev::{self, REGISTRY, Served};
use libmh::mempool::Pool;
use libmh::{process, procs, vm};

const P: u64 = 4096;
/// Where the sparse-mapping attacks map (a 512 GiB slot of its own).
const SPARSE: u64 = 0x5800_0000_0000;
const RW: u64 = vm::PROT_RW;
/// TSC ticks a misbehaving child may take before the test gives up on it.
const DEADLINE: u64 = 4_000_000_000;

fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

fn rdtsc() -> u64 {
    libmh::timer::rdtsc()
}

/// The runner's next fork makes a child with a reserve of its own:
/// `frames` (none: no limit) and `processes`.
fn stage(frames: Option<u64>, processes: u32) -> TestResult {
    let pool = Pool::open().map_err(fail)?;
    let r = pool.stage_child(frames, Some(processes));
    let _ = pool.close();
    r.map_err(fail)
}

/// Forks `f` into a child with a reserve of its own, limited to
/// `processes` and (if given) to `extra` frames more than the child holds
/// when it starts (it never execs, so it limits itself rather than wait
/// for the pending limit of an exec).
fn spawn_limited(extra: Option<u64>, processes: u32, f: impl FnOnce() -> i32) -> Result<u32, Fail> {
    stage(None, processes)?;
    match process::fork().map_err(fail)? {
        0 => {
            if let Some(extra) = extra {
                let limited = Pool::open().and_then(|pool| {
                    pool.select(process::getpid())?;
                    let now = pool.used()?;
                    pool.set_limit(Some(now + extra))
                });
                if limited.is_err() {
                    process::exit(120);
                }
            }
            process::exit(f() as i64)
        }
        pid => Ok(pid),
    }
}

/// Waits for child `pid`, killing its whole tree if it is not done by the
/// deadline (then `None`); reaps whatever else ends meanwhile (orphans
/// come to the runner, which is init here).
fn wait_for(pid: u32, deadline: u64) -> Result<Option<ExitStatus>, Fail> {
    loop {
        match process::try_wait_child() {
            Ok(st) if st.pid == pid => return Ok(Some(st)),
            Ok(_) => continue,
            Err(Error::WouldBlock) => {}
            Err(e) => return Err(fail(e)),
        }
        if rdtsc() > deadline {
            kill_tree(pid)?;
            reap_all();
            return Ok(None);
        }
        process::yield_now();
    }
}

fn kill_tree(pid: u32) -> TestResult {
    let h = procs::open(true).map_err(fail)?;
    let r = procs::kill_tree(h, pid);
    let _ = h.detach();
    r.map_err(fail)
}

/// Reaps every child that has ended (orphans included; a kill is over
/// when its call returns, so a killed tree is all zombies by then). Live
/// children — the servers earlier groups started — are left alone.
fn reap_all() {
    while process::try_wait_child().is_ok() {}
}

/// What a reserve holds now (the runner's own if `pid` is its pid).
fn used_by(pid: u32) -> Result<u64, Error> {
    let pool = Pool::open()?;
    let r = pool.select(pid).and_then(|()| pool.used());
    let _ = pool.close();
    r
}

/// What the runner can still do while a child exhausts something: map and
/// free memory, fork and reap, and serve a request of its own.
fn runner_carries_on() -> TestResult {
    ensure_eq!(vm::map(0x5a00_0000_0000, 16 * P, RW), Ok(()));
    ensure_eq!(vm::unmap(0x5a00_0000_0000, 16 * P), Ok(()));
    let d = dev::create(dev::REGISTRY, "iso-self", 1, 8, 3).map_err(fail)?;
    let c = dev::attach(REGISTRY, "iso-self", dev::RIGHT_WRITE).map_err(fail)?;
    ensure_eq!(d.try_poll().map(|r| r.kind), Ok(REQUEST_OPEN));
    ensure_eq!(c.port_out(0, 8, 5), Ok(()));
    ensure_eq!(
        d.try_poll().map(|r| (r.kind, r.value)),
        Ok((REQUEST_OUT, 5))
    );
    ensure_eq!((c.detach(), d.destroy()), (Ok(()), Ok(())));
    let pid = process::fork().map_err(fail)?;
    if pid == 0 {
        process::exit(0);
    }
    let st = loop {
        match process::wait_child() {
            Ok(st) if st.pid == pid => break st,
            Ok(_) => continue,
            Err(e) => return Err(fail(e)),
        }
    };
    ensure_eq!(st.code, 0);
    Ok(())
}

/// A device the runner serves for children to report on: each child
/// writes one word (its result) to port 0, then sleeps until killed.
struct Reports(Served);

impl Reports {
    fn new() -> Result<Reports, Fail> {
        dev::create(dev::REGISTRY, "iso-report", 0, 0, 4)
            .map(Reports)
            .map_err(fail)
    }

    /// The next reported word, waiting for it until the deadline.
    fn next(&self, deadline: u64) -> Result<u64, Fail> {
        loop {
            match self.0.try_poll() {
                Ok(r) if r.kind == REQUEST_OUT => return Ok(r.value),
                Ok(_) => continue,
                Err(Error::WouldBlock) => {}
                Err(e) => return Err(fail(e)),
            }
            if rdtsc() > deadline {
                return Err(Fail::new(format_args!("no report in time")));
            }
            process::yield_now();
        }
    }

    fn close(self) {
        let _ = self.0.destroy();
    }
}

/// In a child: attaches the runner's report device (before it uses up
/// anything it would need to attach it later).
fn report_handle() -> Option<dev::Handle> {
    dev::attach(REGISTRY, "iso-report", dev::RIGHT_WRITE).ok()
}

/// In a child: report `word` to the runner, then sleep until killed.
fn report_and_sleep(word: u64) -> ! {
    report_on(report_handle(), word)
}

/// Reports `word` through `h` (attached beforehand), then sleeps.
fn report_on(h: Option<dev::Handle>, word: u64) -> ! {
    if let Some(h) = h {
        let _ = h.port_out(0, 8, word);
    }
    loop {
        let _ = process::irq_wait(1 << 40);
    }
}

fn code_of(e: Error) -> u64 {
    u64::from(e.code())
}

/// One row of the exhaustion matrix: a limited child runs `exhaust`
/// (which returns the error it ended with) and reports it; the runner
/// checks the error, carries on, kills the child, and every frame comes
/// back.
fn exhaustion(
    frames: Option<u64>,
    processes: u32,
    want: &[Error],
    exhaust: fn() -> Error,
) -> TestResult {
    reap_all();
    let before = free_frames();
    let reports = Reports::new()?;
    let pid = spawn_limited(frames, processes, || {
        let h = report_handle();
        report_on(h, code_of(exhaust()))
    })?;
    let word = reports.next(rdtsc() + DEADLINE);
    reports.close();
    let word = match word {
        Ok(w) => w,
        Err(f) => {
            let _ = kill_tree(pid);
            reap_all();
            return Err(f);
        }
    };
    let got = Error::from_code(word as u32);
    let carried_on = runner_carries_on();
    kill_tree(pid)?;
    reap_all();
    ensure!(
        got.is_some_and(|e| want.contains(&e)),
        "the child ended with {got:?}, expected one of {want:?}"
    );
    carried_on?;
    ensure_eq!(free_frames(), before, "every frame is back");
    Ok(())
}

/// The frames a limited child may take beyond what it starts with.
const SMALL: Option<u64> = Some(512);

fn exhaust_frames() -> Error {
    for i in 0.. {
        if let Err(e) = vm::map(0x5b00_0000_0000 + i * 16 * P, 16 * P, RW) {
            return e;
        }
    }
    Error::InvalidArgument
}

fn exhaust_page_tables() -> Error {
    // One page per 2 MiB: every page needs a table of its own.
    for i in 0.. {
        if let Err(e) = vm::map(SPARSE + i * (2 << 20), P, RW) {
            return e;
        }
    }
    Error::InvalidArgument
}

fn exhaust_processes() -> Error {
    loop {
        match process::fork() {
            Ok(0) => loop {
                let _ = process::irq_wait(1 << 40);
            },
            Ok(_) => continue,
            Err(e) => return e,
        }
    }
}

fn exhaust_handles() -> Error {
    loop {
        if let Err(e) = dev::attach(REGISTRY, "klog", dev::RIGHT_READ) {
            return e;
        }
    }
}

fn exhaust_devices() -> Error {
    let mut name = libmh::print::FixedBuf::<32>::new();
    for i in 0u32.. {
        name.clear();
        let _ = core::fmt::write(&mut name, format_args!("iso-d{i}"));
        let name = core::str::from_utf8(name.bytes()).unwrap_or("iso-d");
        if let Err(e) = dev::create(dev::REGISTRY, name, 0, 0, 3) {
            return e;
        }
    }
    Error::InvalidArgument
}

fn exhaust_queue() -> Error {
    let Ok(h) = dev::attach(REGISTRY, "iso-queue", dev::RIGHT_WRITE) else {
        return Error::NotFound;
    };
    loop {
        if let Err(e) = h.port_out(0, 8, 1) {
            return e;
        }
    }
}

fn exhaust_alarms() -> Error {
    let Ok(t) = libmh::timer::Timer::open(20, 21) else {
        return Error::NotFound;
    };
    let far = t.now_ns().saturating_add(3_600_000_000_000);
    loop {
        if let Err(e) = t.alarm_once(far) {
            return e;
        }
    }
}

fn exhaust_grants() -> Error {
    let Ok(m) = libmh::mem::Mem::open(22) else {
        return Error::NotFound;
    };
    loop {
        if let Err(e) = m.grant(256) {
            return e;
        }
    }
}

pub fn run(s: &mut Suite) {
    s.run("isolation_sparse_maps_keep_page_tables_bounded", || {
        reap_all();
        let before = free_frames();
        let pid = spawn_limited(SMALL, 4, || {
            // 20,000 maps and unmaps at 2 MiB strides: each needs a table
            // that must go again with its page, or the reserve fills.
            for i in 0..20_000u64 {
                let va = SPARSE + i * (2 << 20);
                if vm::map(va, P, RW).is_err() {
                    return 1;
                }
                if vm::unmap(va, P).is_err() {
                    return 2;
                }
            }
            0
        })?;
        let st = wait_for(pid, rdtsc() + 8 * DEADLINE)?;
        ensure_eq!(
            st.map(|s| (s.kind, s.code)),
            Some((ExitKind::Exited as u32, 0))
        );
        ensure_eq!(free_frames(), before);
        Ok(())
    });

    s.run("isolation_a_failed_huge_map_leaves_no_page_tables", || {
        let me = process::getpid();
        // What a reserve holds besides the tables an address space keeps
        // as spares (at most four; they stay charged to it).
        fn held(me: u32) -> Result<u64, Error> {
            let spares = process::sys_info()?.spare_tables;
            Ok(used_by(me)? - spares)
        }
        let before = held(me).map_err(fail)?;
        // A terabyte: more than the machine has, refused before any work.
        ensure_eq!(vm::map(SPARSE, 1 << 40, RW), Err(Error::OutOfMemory));
        ensure_eq!(held(me), Ok(before));
        let pid = spawn_limited(SMALL, 4, || {
            let me = process::getpid();
            let Ok(before) = held(me) else { return 1 };
            // Beyond the reserve: refused at once.
            if vm::map(SPARSE, 1 << 40, RW) != Err(Error::OutOfMemory) {
                return 2;
            }
            // Exactly the reserve's pages: they fit, their tables do not,
            // so the map fails at its end and undoes everything, tables
            // included.
            let Ok(Some(limit)) = Pool::open().and_then(|p| {
                p.select(me)?;
                p.limit()
            }) else {
                return 3;
            };
            let Ok(now) = used_by(me) else { return 6 };
            let pages = limit - now;
            if vm::map(SPARSE, pages * P, RW) != Err(Error::OutOfMemory) {
                return 4;
            }
            (held(me) != Ok(before)) as i32 * 5
        });
        let st = wait_for(pid?, rdtsc() + DEADLINE)?;
        ensure_eq!(st.map(|s| s.code), Some(0));
        Ok(())
    });

    s.run(
        "isolation_a_fork_bomb_stops_at_its_limit_and_one_call_kills_it",
        || {
            reap_all();
            let before = free_frames();
            let reports = Reports::new()?;
            // Every process forks until refused, then waits to be killed; the
            // first to be refused reports why.
            let pid = spawn_limited(Some(32768), 24, || {
                loop {
                    match process::fork() {
                        Ok(_) => continue,
                        Err(e) => report_and_sleep(code_of(e)),
                    }
                }
            })?;
            let word = reports.next(rdtsc() + DEADLINE);
            reports.close();
            let pool = Pool::open().map_err(fail)?;
            let counted = pool.select(pid).and_then(|()| pool.processes());
            let _ = pool.close();
            let carried_on = runner_carries_on();
            kill_tree(pid)?;
            reap_all();
            let word = word?;
            ensure!(
                word == code_of(Error::LimitReached),
                "the bomb was refused with {:?}",
                Error::from_code(word as u32)
            );
            let (n, limit) = counted.map_err(fail)?;
            ensure!(
                n <= limit && limit == 24,
                "{n} processes of a limit of {limit}"
            );
            carried_on?;
            ensure_eq!(free_frames(), before, "the whole bomb is gone");
            let h = procs::open(false).map_err(fail)?;
            let mut live = 0;
            procs::for_each(h, |e| live += (e.parent == pid) as u32).map_err(fail)?;
            let _ = h.detach();
            ensure_eq!(live, 0);
            Ok(())
        },
    );

    s.run(
        "isolation_kill_tree_walks_a_deep_chain_and_stays_in_the_tree",
        || {
            reap_all();
            let before = free_frames();
            // A chain 300 deep: each process forks one child and sleeps.
            let reports = Reports::new()?;
            let pid = spawn_limited(None, 400, || {
                for depth in 0..300u64 {
                    match process::fork() {
                        Ok(0) => continue,
                        Ok(_) => loop {
                            let _ = process::irq_wait(1 << 40);
                        },
                        Err(e) => report_and_sleep(1000 + depth + code_of(e)),
                    }
                }
                report_and_sleep(0)
            })?;
            let word = reports.next(rdtsc() + 4 * DEADLINE);
            reports.close();
            // Outside the caller's tree: refused.
            let refused = in_child(|| {
                let Ok(h) = procs::open(true) else { return 1 };
                (procs::kill_tree(h, 1) != Err(Error::AccessDenied)) as i32 * 2
            })?;
            kill_tree(pid)?;
            reap_all();
            ensure_eq!(word?, 0, "the chain was built");
            ensure_eq!(refused.code, 0);
            ensure_eq!(free_frames(), before);
            Ok(())
        },
    );

    s.run("isolation_client_records_are_the_clients_to_pay", || {
        let d = dev::create(dev::REGISTRY, "iso-queue", 0, 0, 3).map_err(fail)?;
        // A child with a small reserve attaches the runner's device until
        // refused: its own reserve runs out (or its bus fills), no one
        // else's.
        let r = exhaustion(
            Some(256),
            4,
            &[Error::OutOfMemory, Error::LimitReached],
            || loop {
                if let Err(e) = dev::attach(REGISTRY, "iso-queue", dev::RIGHT_WRITE) {
                    return e;
                }
            },
        );
        ensure_eq!(d.destroy(), Ok(()));
        r
    });

    s.run(
        "isolation_a_flooding_client_does_not_shut_out_others",
        || {
            let d = dev::create(dev::REGISTRY, "iso-queue", 0, 0, 3).map_err(fail)?;
            let flood = dev::attach(REGISTRY, "iso-queue", dev::RIGHT_WRITE).map_err(fail)?;
            let mut sent = 0;
            while flood.port_out(0, 8, 1).is_ok() {
                sent += 1;
                ensure!(sent <= QUEUE_PER_CLIENT_DEFAULT, "no quota");
            }
            ensure_eq!(flood.port_out(0, 8, 1), Err(Error::Busy));
            ensure_eq!(sent, QUEUE_PER_CLIENT_DEFAULT);
            // Another client still gets in, and its requests come next to the
            // flood's, not after it.
            let other = dev::attach(REGISTRY, "iso-queue", dev::RIGHT_WRITE).map_err(fail)?;
            ensure_eq!(other.port_out(0, 8, 2), Ok(()));
            let other_id = other.info().map_err(fail)?.client;
            let mut seen_at = None;
            for i in 0..4 {
                let r = d.try_poll().map_err(fail)?;
                if r.client == other_id && r.kind == REQUEST_OUT {
                    seen_at = Some(i);
                    break;
                }
            }
            ensure!(
                seen_at.is_some(),
                "the second client waited behind the flood"
            );
            ensure_eq!(
                (flood.detach(), other.detach(), d.destroy()),
                (Ok(()), Ok(()), Ok(()))
            );
            Ok(())
        },
    );

    s.run("isolation_user_access_to_kernel_pages_is_a_fault", || {
        let (gdt, idt) = descriptor_tables();
        // The kernel's image (text, and the data the GDT and IDT live in),
        // its direct map and its vmalloc area: every one present to the
        // kernel, none the process's.
        for addr in [
            0xffff_ffff_8010_1000,
            gdt,
            idt,
            0xffff_8000_0010_0000,
            0xffff_ff80_0000_0000,
        ] {
            for write in [false, true] {
                let pid = match process::fork().map_err(fail)? {
                    0 => {
                        let p = core::hint::black_box(addr) as *mut u8;
                        // SAFETY: deliberately a kernel address: the kernel
                        // must deliver the fault (and libmh's handler then
                        // lets it kill us), not retry it for ever.
                        unsafe {
                            if write {
                                p.write_volatile(1)
                            } else {
                                core::hint::black_box(p.read_volatile());
                            }
                        }
                        process::exit(0)
                    }
                    pid => pid,
                };
                let st = wait_for(pid, rdtsc() + DEADLINE)?;
                ensure!(st.is_some(), "a user access to {addr:#x} never ended");
                let st = st.unwrap_or_default();
                ensure_eq!(
                    (st.kind, st.code, st.fault_addr),
                    (ExitKind::Faulted as u32, VECTOR_PAGE_FAULT as i64, addr),
                    "{} at {addr:#x}",
                    if write { "write" } else { "read" }
                );
            }
        }
        Ok(())
    });

    s.run(
        "isolation_a_handler_that_runs_off_its_stack_is_killed",
        || {
            let st = in_child(|| {
                // SAFETY: installs a handler of our own on a stack we own; the
                // handler is written to misbehave (see `runaway_handler`).
                unsafe { install_runaway_handler() };
                let p = core::hint::black_box(0x10u64) as *const u8;
                // SAFETY: deliberately unmapped.
                unsafe { core::hint::black_box(p.read_volatile()) };
                1
            })?;
            ensure_eq!(
                (st.kind, st.code),
                (ExitKind::Faulted as u32, VECTOR_PAGE_FAULT as i64),
                "killed for the fault it could not handle"
            );
            ensure!(
                crate::t_syscalls::log_contains(b"(handler stack overflow)"),
                "no overflow report"
            );
            Ok(())
        },
    );

    s.run(
        "isolation_handles_and_client_ids_are_never_reissued",
        || {
            let d = dev::create(dev::REGISTRY, "iso-ids", 0, 8, 3).map_err(fail)?;
            let mut handles = BTreeSet::new();
            let mut clients = BTreeSet::new();
            for _ in 0..20_000 {
                let h = dev::attach(REGISTRY, "iso-ids", dev::RIGHT_READ).map_err(fail)?;
                ensure!(handles.insert(h.0), "handle {:#x} issued twice", h.0);
                let id = h.info().map_err(fail)?.client;
                ensure!(clients.insert(id), "client id {id:#x} issued twice");
                ensure_eq!(h.detach(), Ok(()));
                while d.try_poll().is_ok() {}
                ensure!(
                    h.port_in(0, 8) == Err(Error::BadHandle),
                    "a dead handle works"
                );
            }
            ensure_eq!(d.destroy(), Ok(()));
            Ok(())
        },
    );

    s.run("isolation_exec_charges_before_it_works", || {
        // More than exec ever loads: refused as a bad image, at once.
        let mut image = crate::t_exec::tiny_elf_with(&crate::t_exec::CODE);
        crate::t_exec::set_memsz(&mut image, 1 << 30);
        ensure_eq!(process::exec(&image, "huge"), Error::BadImage);
        // Within the bound but beyond a small reserve: refused before a
        // page is made (nothing zeroed, nothing left).
        crate::t_exec::set_memsz(&mut image, 60 << 20);
        let before = free_frames();
        let pid = spawn_limited(Some(2048), 4, move || match process::exec(&image, "big") {
            Error::OutOfMemory => 0,
            _ => 1,
        })?;
        let st = wait_for(pid, rdtsc() + DEADLINE)?;
        ensure_eq!(st.map(|s| s.code), Some(0));
        ensure_eq!(free_frames(), before);
        Ok(())
    });

    s.run(
        "isolation_c_wrappers_keep_their_registers_in_a_loop",
        || {
            let fs = libmh::bootfs::Bootfs::open().map_err(fail)?;
            let index = fs.find("ipc-c").map_err(fail)?;
            ensure!(index.is_some(), "no 'ipc-c' module in the image");
            let pid = fs.spawn(index.unwrap_or(0)).map_err(fail)?;
            let _ = fs.0.detach();
            let st = wait_for(pid, rdtsc() + 4 * DEADLINE)?;
            ensure_eq!(
                st.map(|s| (s.kind, s.code)),
                Some((ExitKind::Exited as u32, 0))
            );
            ensure!(
                crate::t_syscalls::log_contains(b"ipc-c: ok"),
                "no ipc-c line"
            );
            Ok(())
        },
    );

    s.run("isolation_long_calls_give_way_at_ticks", || {
        // A 64 MiB map is tens of milliseconds of work: other processes
        // run meanwhile (the call stops at ticks and goes on), so a child
        // forked just before it has reported before it returns.
        const BIG: u64 = 64 << 20;
        let reports = Reports::new()?;
        // On the runner's CPU (the child inherits the binding): only the
        // call's giving way lets the child run, not another CPU.
        let (cpu, _) = process::cpu();
        let _ = process::set_affinity(0, 1 << cpu);
        let pid = match process::fork().map_err(fail)? {
            0 => report_and_sleep(7),
            pid => pid,
        };
        let mapped = vm::map(0x5c00_0000_0000, BIG, RW);
        let _ = process::set_affinity(0, 0);
        let seen = reports.0.try_poll();
        let seen = match seen {
            Ok(r) if r.kind == REQUEST_OPEN => reports.0.try_poll(),
            other => other,
        };
        reports.close();
        let zero = (0..BIG / P).all(|i| peek(0x5c00_0000_0000 + i * P) == 0);
        let unmapped = vm::unmap(0x5c00_0000_0000, BIG);
        kill_tree(pid)?;
        reap_all();
        ensure_eq!(mapped, Ok(()));
        ensure!(zero, "a page of the map is not zero");
        ensure_eq!(unmapped, Ok(()));
        ensure_eq!(
            seen.map(|r| (r.kind, r.value)),
            Ok((REQUEST_OUT, 7)),
            "the child ran while the map was made"
        );
        Ok(())
    });

    s.run("isolation_exhausting_frames", || {
        exhaustion(SMALL, 4, &[Error::OutOfMemory], exhaust_frames)
    });
    s.run("isolation_exhausting_page_tables", || {
        exhaustion(SMALL, 4, &[Error::OutOfMemory], exhaust_page_tables)
    });
    s.run("isolation_exhausting_processes", || {
        // Memory enough for every fork's references: the process limit
        // is what runs out.
        exhaustion(Some(1 << 20), 16, &[Error::LimitReached], exhaust_processes)
    });
    s.run("isolation_exhausting_handles", || {
        exhaustion(Some(1024), 4, &[Error::LimitReached], exhaust_handles)
    });
    s.run("isolation_exhausting_devices", || {
        exhaustion(
            Some(400),
            4,
            &[Error::OutOfMemory, Error::LimitReached],
            exhaust_devices,
        )
    });
    s.run("isolation_exhausting_alarms", || {
        let (timer_pid, t) = crate::t_timer::start()?;
        let r = exhaustion(SMALL, 4, &[Error::LimitReached], exhaust_alarms);
        // The timer still serves the runner.
        // An alarm soon (a deadline that passed while the request
        // travelled is refused, so the margin grows: no timing decides).
        let waited = [1_000_000u64, 20_000_000, 500_000_000]
            .iter()
            .find_map(|&margin| {
                let deadline = t.now_ns() + margin;
                match t.alarm_once(deadline) {
                    Err(Error::InvalidArgument) if t.now_ns() >= deadline => None,
                    r => Some(r),
                }
            })
            .unwrap_or(Err(Error::InvalidArgument))
            .and_then(|a| t.wait(a, 1));
        let _ = t.close();
        // It exits once its last client has gone.
        let _ = wait_for(timer_pid, rdtsc() + DEADLINE)?;
        r?;
        ensure_eq!(waited.map(|n| n >= 1), Ok(true));
        Ok(())
    });
    s.run("isolation_exhausting_mem_grants", || {
        // The mem server (still running from its tests) grants up to the
        // default ceiling, then refuses.
        let r = exhaustion(Some(64), 4, &[Error::OutOfMemory], exhaust_grants);
        let m = libmh::mem::Mem::open(23).map_err(fail)?;
        let usage = m.usage().map(|_| ());
        let _ = m.close();
        r?;
        ensure_eq!(usage, Ok(()), "mem still serves the runner");
        Ok(())
    });
    s.run("isolation_exhausting_queued_requests", || {
        let d = dev::create(dev::REGISTRY, "iso-queue", 0, 0, 3).map_err(fail)?;
        let r = exhaustion(SMALL, 4, &[Error::Busy], exhaust_queue);
        ensure_eq!(d.destroy(), Ok(()));
        r
    });
}

/// Where the GDT and IDT are (`sgdt`/`sidt` work in user mode without
/// UMIP): addresses in the kernel's own data.
fn descriptor_tables() -> (u64, u64) {
    let mut gdt = [0u8; 10];
    let mut idt = [0u8; 10];
    // SAFETY: sgdt and sidt only store the tables' limits and bases.
    unsafe {
        core::arch::asm!("sgdt [{}]", in(reg) gdt.as_mut_ptr(), options(nostack));
        core::arch::asm!("sidt [{}]", in(reg) idt.as_mut_ptr(), options(nostack));
    }
    let base = |t: &[u8; 10]| u64::from_le_bytes([t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9]]);
    (base(&gdt) & !0xfff, base(&idt) & !0xfff)
}

/// The runaway handler's stack: its lowest 8 KiB are the handler stack
/// the kernel is told about, the rest below it is other memory the
/// handler runs into.
#[repr(C, align(4096))]
struct RunawayStack([u8; 64 * 1024]);
static mut RUNAWAY_STACK: RunawayStack = RunawayStack([0; 64 * 1024]);
/// How often the runaway handler was entered (in the child).
static mut RUNAWAY_ENTRIES: u64 = 0;

core::arch::global_asm!(
    ".pushsection .text.mh_runaway_handler, \"ax\"",
    ".global mh_runaway_handler",
    "mh_runaway_handler:",
    // Count the entry; after 20 the kernel has let it run wild: end the
    // process with status 99 (the test then fails on the status).
    "inc qword ptr [rip + {entries}]",
    "cmp qword ptr [rip + {entries}], 20",
    "jb 1f",
    "mov edi, 99",
    "mov eax, {exit}",
    "syscall",
    "1:",
    // Run 16 KiB below the handler stack's bottom (other mapped memory),
    // then fault again: a delivery must not land back at the stack's top.
    "sub rsp, 16384 + 8192",
    "mov rax, 0x10",
    "mov al, byte ptr [rax]",
    "ud2",
    ".popsection",
    entries = sym RUNAWAY_ENTRIES,
    exit = const Sysno::Exit as u64,
);

unsafe extern "C" {
    fn mh_runaway_handler();
}

/// Installs `mh_runaway_handler` with the top 8 KiB of `RUNAWAY_STACK`
/// as its stack (the 56 KiB below are mapped, not the handler's).
///
/// # Safety
/// The caller is a child about to fault on purpose.
unsafe fn install_runaway_handler() {
    let base = (&raw const RUNAWAY_STACK) as u64 + 56 * 1024;
    // SAFETY: a handler entry and a stack in our own memory.
    unsafe {
        libmh::raw::syscall3(
            Sysno::SetHandler as u64,
            mh_runaway_handler as *const () as u64,
            base,
            8 * 1024,
        );
    }
}
