//! The mem server (servers/mem) and libmh's global allocator: the runner
//! starts the server from bootfs (module `mem`) and, being its parent, is
//! its supervisor. Checked: usage as the server reports it, grants up to
//! the ceiling and `OutOfMemory` beyond, that a client cannot raise its
//! own ceiling, errors for bad requests, `Vec`/`Box`/`String` round trips,
//! an allocator that grows by grants, and a process allocating without
//! bound dying alone with an out-of-memory report while the server and
//! everyone else carry on.

use crate::suite::{Fail, Suite};
use crate::util::{free_frames, in_child};
use crate::{ensure, ensure_eq};
use abi::kdev::*;
use abi::mem::*;
use abi::{Error, ExitStatus};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use libmh::bootfs::Bootfs;
use libmh::dev::{self, Handle, REGISTRY};
use libmh::mem::Mem;
use libmh::{heap, process};

/// The runner's replies from mem.
const REPLY: u32 = 54;

fn fail(e: Error) -> Fail {
    Fail::new(format_args!("{e}"))
}

fn pool() -> Result<Handle, Error> {
    dev::attach(REGISTRY, "mempool", dev::RIGHT_READ | dev::RIGHT_WRITE)
}

/// (used, limit) of `pid` as the kernel has them.
fn kernel_view(pid: u32) -> Result<(u64, u64), Error> {
    let h = pool()?;
    let r = (|| {
        h.port_out(MEMPOOL_PORT_SELECT, 4, pid as u64)?;
        Ok((
            h.port_in(MEMPOOL_PORT_USED, 8)?,
            h.port_in(MEMPOOL_PORT_LIMIT_NOW, 8)?,
        ))
    })();
    let _ = h.detach();
    r
}

/// Starts the mem server and opens it (retrying until it registers).
fn start() -> Result<(u32, Mem), Fail> {
    let fs = Bootfs::open().map_err(fail)?;
    let index = fs.find("mem").map_err(fail)?;
    ensure!(index.is_some(), "no 'mem' module in the image");
    let pid = fs.spawn(index.unwrap_or(0)).map_err(fail)?;
    let _ = fs.0.detach();
    loop {
        match Mem::open(REPLY) {
            Ok(m) => return Ok((pid, m)),
            Err(Error::NotFound) => {
                if let Ok(st) = process::try_wait_child() {
                    return Err(Fail::new(format_args!(
                        "the mem server ended (kind {}, code {}) before registering",
                        st.kind, st.code
                    )));
                }
                process::yield_now();
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

/// Runs `f` in a child whose ceiling and limit the runner (the
/// supervisor) sets to what the child holds plus `ceiling` and `limit`
/// frames; the child starts `f` once it sees its limit set.
fn supervised(
    m: Mem,
    ceiling: u64,
    limit: u64,
    f: impl FnOnce(Mem) -> i32,
) -> Result<ExitStatus, Fail> {
    // The child gets a reserve of its own (else the limits set below would
    // be the runner's too).
    let pool = libmh::mempool::Pool::open().map_err(fail)?;
    let staged = pool.stage_child(None, None);
    let _ = pool.close();
    staged.map_err(fail)?;
    match process::fork() {
        Ok(0) => {
            // `m` followed the fork (CLONE): the child is a client of its own.
            for _ in 0..1_000_000 {
                match m.usage() {
                    Ok(u) if u.limit.is_some() => process::exit(f(m) as i64),
                    Ok(_) => process::yield_now(),
                    Err(_) => process::exit(90),
                }
            }
            process::exit(91)
        }
        Ok(pid) => {
            let set = kernel_view(pid).and_then(|(used, _)| {
                m.set_ceiling(pid, used + ceiling)?;
                m.set_limit(pid, used + limit)
            });
            let st = process::wait_child().map_err(fail)?;
            set.map_err(|e| Fail::new(format_args!("setting the child's reserve: {e}")))?;
            ensure_eq!(st.pid, pid);
            Ok(st)
        }
        Err(e) => Err(fail(e)),
    }
}

/// A test's child: 0 if `ok`, else `code`.
fn check(ok: bool, code: i32) -> Result<(), i32> {
    if ok { Ok(()) } else { Err(code) }
}

fn exited(st: ExitStatus) -> (u32, i64) {
    (st.kind, st.code)
}

const EXITED: u32 = abi::ExitKind::Exited as u32;

pub fn run(s: &mut Suite) {
    let (server, m) = match start() {
        Ok(x) => x,
        Err(f) => {
            s.run("mem_server_starts", || Err(f));
            return;
        }
    };

    s.run("mem_usage_reports_the_caller", || {
        let me = process::getpid();
        let (before, _) = kernel_view(me).map_err(fail)?;
        let u = m.usage().map_err(fail)?;
        let (after, _) = kernel_view(me).map_err(fail)?;
        ensure!(
            (before..=after).contains(&u.used),
            "used {} outside {before}..={after}",
            u.used
        );
        // The runner has no limit and no ceiling of its own.
        ensure_eq!(u.limit, None);
        ensure_eq!(u.ceiling, MEM_DEFAULT_CEILING);
        ensure_eq!(m.grant(16), Err(Error::NotSupported));
        Ok(())
    });

    s.run("mem_bad_requests_get_errors", || {
        let h = m.handle();
        ensure_eq!(m.request(99, 0), Err(Error::NotSupported));
        h.port_out_wait(MEM_PORT_USAGE, 4, 0, 1 << REPLY)
            .map_err(fail)?;
        ensure_eq!(
            mem_decode_result(h.port_in(MEM_IO_RESULT, 8).map_err(fail)?),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(m.request(MEM_PORT_GRANT, 0), Err(Error::InvalidArgument));
        ensure_eq!(
            m.request(MEM_PORT_GRANT, MEM_GRANT_MAX + 1),
            Err(Error::InvalidArgument)
        );
        // The supervisor's ports want a selection, an existing process and
        // a sensible value.
        ensure_eq!(m.request(MEM_PORT_CEILING, 10), Err(Error::NotFound));
        ensure_eq!(m.request(MEM_PORT_LIMIT, 10), Err(Error::NotFound));
        ensure_eq!(m.set_ceiling(99_999, 10), Err(Error::NotFound));
        ensure_eq!(
            m.request(MEM_PORT_SELECT, u64::from(u32::MAX) + 1),
            Err(Error::InvalidArgument)
        );
        let me = process::getpid();
        ensure_eq!(
            m.set_ceiling(me, MEMPOOL_UNLIMITED),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            m.set_limit(me, MEM_DEFAULT_CEILING + 1),
            Err(Error::InvalidArgument)
        );
        // Nothing changed, and the server still answers.
        ensure_eq!(kernel_view(me).map(|v| v.1), Ok(MEMPOOL_UNLIMITED));
        ensure_eq!(m.usage().map(|u| u.limit), Ok(None));
        Ok(())
    });

    s.run("mem_grants_up_to_the_ceiling_and_no_further", || {
        let st = supervised(m, 100, 20, |m| {
            let r = (|| {
                let u = m.usage().map_err(|_| 1)?;
                let limit = u.limit.ok_or(2)?;
                check(u.ceiling == limit + 80, 3)?;
                // The kernel agrees with the server.
                let (_, k) = kernel_view(process::getpid()).map_err(|_| 4)?;
                check(k == limit, 5)?;
                check(m.grant(16) == Ok(limit + 16), 6)?;
                // More than is left: granted up to the ceiling.
                check(m.grant(1000) == Ok(u.ceiling), 7)?;
                check(m.grant(1) == Err(Error::OutOfMemory), 8)?;
                let (_, k) = kernel_view(process::getpid()).map_err(|_| 9)?;
                check(k == u.ceiling, 10)?;
                let u2 = m.usage().map_err(|_| 11)?;
                check(u2.limit == Some(u.ceiling) && u2.ceiling == u.ceiling, 12)
            })();
            r.err().unwrap_or(0)
        })?;
        ensure_eq!(exited(st), (EXITED, 0));
        Ok(())
    });

    s.run("mem_a_client_cannot_raise_its_own_ceiling", || {
        let st = supervised(m, 40, 40, |m| {
            let me = process::getpid();
            let r = (|| {
                let u = m.usage().map_err(|_| 1)?;
                check(m.set_ceiling(me, 1 << 20) == Err(Error::AccessDenied), 2)?;
                check(m.set_limit(me, 1 << 20) == Err(Error::AccessDenied), 3)?;
                // Not even through the raw ports, in any order.
                check(
                    m.request(MEM_PORT_CEILING, 1 << 20) == Err(Error::AccessDenied),
                    4,
                )?;
                check(
                    m.request(MEM_PORT_LIMIT, 1 << 20) == Err(Error::AccessDenied),
                    5,
                )?;
                check(m.grant(1) == Err(Error::OutOfMemory), 6)?;
                let u2 = m.usage().map_err(|_| 7)?;
                check(u2.ceiling == u.ceiling && u2.limit == u.limit, 8)
            })();
            r.err().unwrap_or(0)
        })?;
        ensure_eq!(exited(st), (EXITED, 0));
        Ok(())
    });

    s.run("mem_allocator_round_trip", || {
        let (before, _) = heap::stats();
        let mut v: Vec<u64> = Vec::new();
        for i in 0..10_000u64 {
            v.push(i * i);
        }
        ensure!(
            v.iter().enumerate().all(|(i, &x)| x == (i * i) as u64),
            "vector"
        );
        let b = Box::new([7u8; 3000]);
        ensure!(b.iter().all(|&x| x == 7), "box");
        let mut text = String::new();
        for i in 0..100 {
            let _ = write!(text, "{i},");
        }
        ensure!(
            text.starts_with("0,1,2,") && text.ends_with("98,99,"),
            "string"
        );
        let mut map = BTreeMap::new();
        for i in 0..500u32 {
            map.insert(i.wrapping_mul(2_654_435_761), i);
        }
        ensure_eq!(map.len(), 500);
        ensure_eq!(map.values().map(|&v| v as u64).sum::<u64>(), 124_750);
        drop((v, b, text, map));
        let (after, _) = heap::stats();
        ensure_eq!(after.in_use, before.in_use, "everything freed");
        ensure!(after.allocs >= before.allocs + 60, "{after:?}");
        Ok(())
    });

    s.run("mem_allocator_grows_by_grants", || {
        // 8 frames to start with, 4 MiB of ceiling: a 2 MiB vector needs
        // grants along the way.
        let st = supervised(m, 1024, 8, |m| {
            let mut v: Vec<u8> = Vec::new();
            for i in 0..(2 << 20) {
                v.push(i as u8);
            }
            if !v.iter().enumerate().all(|(i, &x)| x == i as u8) {
                return 1;
            }
            let (_, grants) = heap::stats();
            let u = match m.usage() {
                Ok(u) => u,
                Err(_) => return 2,
            };
            if grants == 0 || u.limit.is_none_or(|l| l > u.ceiling) {
                return 3;
            }
            0
        })?;
        ensure_eq!(exited(st), (EXITED, 0));
        Ok(())
    });

    s.run("mem_runaway_allocation_dies_alone", || {
        // Free frames, plus what the server and the runner hold (either
        // may grow a little while serving and testing).
        let me = process::getpid();
        let total = || -> Result<u64, Fail> {
            let held = |pid| kernel_view(pid).map(|v| v.0).map_err(fail);
            Ok(free_frames() + held(server)? + held(me)?)
        };
        let before = total()?;
        let st = supervised(m, 512, 16, |_| {
            let mut v: Vec<u64> = Vec::new();
            let mut i = 0u64;
            loop {
                v.push(i);
                core::hint::black_box(&v);
                i += 1;
            }
        })?;
        ensure_eq!(
            exited(st),
            (EXITED, libmh::OUT_OF_MEMORY_EXIT_CODE),
            "the runaway child"
        );
        ensure!(
            crate::t_syscalls::log_contains(b": out of memory (heap "),
            "no out-of-memory report"
        );
        // The server is fine, every frame came back, and others still get
        // memory.
        ensure_eq!(m.usage().map(|u| u.limit), Ok(None));
        ensure_eq!(total()?, before);
        let st = supervised(m, 256, 8, |_| {
            let v: Vec<u8> = (0..=255).cycle().take(512 * 1024).collect();
            (v.iter().map(|&b| b as u64).sum::<u64>() != 2048 * 255 * 128) as i32
        })?;
        ensure_eq!(exited(st), (EXITED, 0));
        Ok(())
    });

    s.run("mem_fork_children_share_their_parents_ceiling", || {
        // Room for the fork: the child is charged a reference to each of
        // the parent's pages (they are one reserve).
        let st = supervised(m, 4096, 2048, |m| {
            let mine = match m.usage() {
                Ok(u) => u.ceiling,
                Err(_) => return 1,
            };
            match in_child(|| match m.usage() {
                Ok(u) if u.ceiling == mine => 0,
                _ => 3,
            }) {
                Ok(st) if st.kind == EXITED => st.code as i32,
                _ => 2,
            }
        })?;
        ensure_eq!(exited(st), (EXITED, 0));
        Ok(())
    });
}

/// The `mem-hog` role (tools/images/selftest-mem.toml): a module init
/// started with a memory limit while a mem server ran. It checks that it
/// was started supervised — a ceiling from the manifest, a smaller
/// reserve to start with — then allocates without bound until it dies of
/// it, alone.
pub fn hog() -> i32 {
    let m = match Mem::open(REPLY) {
        Ok(m) => m,
        Err(e) => {
            libmh::println!("mem-hog: cannot open mem: {e}");
            return 1;
        }
    };
    // init tells mem about us while we may already run: wait for it.
    let mut seen = None;
    for _ in 0..100_000 {
        match m.usage() {
            Ok(u) if u.ceiling != MEM_DEFAULT_CEILING && u.limit.is_some_and(|l| l < u.ceiling) => {
                libmh::println!(
                    "mem-hog: ceiling {} frames, starting reserve below it; allocating without bound",
                    u.ceiling
                );
                seen = None;
                break;
            }
            Ok(u) => seen = Some(u),
            Err(e) => {
                libmh::println!("mem-hog: usage: {e}");
                return 2;
            }
        }
        process::yield_now();
    }
    if let Some(u) = seen {
        libmh::println!("mem-hog: not supervised: {u:?}");
        return 3;
    }
    let mut v: Vec<u64> = Vec::new();
    let mut i = 0u64;
    loop {
        v.push(i);
        core::hint::black_box(&v);
        i += 1;
    }
}
