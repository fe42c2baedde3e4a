//! The scaling section: four kernel paths measured while N of something
//! already exist, for N = 1, 10, 100 and 1000, to show whether their cost
//! depends on how many processes or devices the system holds.
//!
//! - `scale_fork_exit_wait_n<N>`: fork + exit + wait (no memory touched)
//!   with N live processes: mhbench and N - 1 parked children, each asleep
//!   for good in `irq_wait` on a vector nobody raises.
//! - `scale_dev_create_destroy_n<N>`: `dev_create` of one more user device
//!   and `detach` of its serving handle (which destroys it) while N user
//!   devices exist: `scale-d0`, served by mhbench, and `scale-d1` … served
//!   by parked helper children, at most [`PER_HELPER`] each.
//! - `scale_attach_detach_n<N>`: with the same N devices, `attach` of
//!   `scale-d0` by name, `detach`, and mhbench's two `dev_poll`
//!   (`POLL_NOWAIT`) as its server, taking the OPEN and the CLOSE (the
//!   CLOSE gives the client record back; a server that never took it
//!   would pile records up).
//! - `scale_teardown_per_device_n<N>`: a child creates N devices and parks;
//!   mhbench kills it through proc and reaps it, timing the kill and the
//!   `wait_child`. The figure is per device: the same teardown of a child
//!   that owns no device (`scale_teardown_no_devices`, printed too) is
//!   subtracted and the rest divided by N. One process cannot own 1000
//!   devices — its bus has `BUS_SLOTS` (256) slots, one of them its
//!   registry handle — so this row's largest N is 250
//!   ([`TEARDOWN_SIZES`]).
//!
//! Rules: every step checks that it really has N of what it claims (the
//! process count from proc, the device count from the registry) before it
//! measures, and prints `FAILED` with the reason otherwise; every step
//! kills and reaps every child it started, and checks the counts are back
//! where they began, so each step starts clean and the children's frames
//! come back. The fork step notes in the serial log (`mhbench: …` lines)
//! how many frames its parked processes held and how many free frames
//! were missing after it: a few, the first time a size is reached, which
//! the kernel's process table and ready queue keep as they grew.

use crate::measure::{self, Fail, REPS};
use abi::kdev::{PROC_PORT_COUNT, PROC_PORT_SELECT, PROC_PORT_STATE};
use abi::kdev::{PROC_STATE_BLOCKED, PROC_STATE_ZOMBIE};
use abi::userdev::{REQUEST_CLOSE, REQUEST_OPEN};
use abi::{Error, ExitKind};
use libmh::dev::{self, Handle, REGISTRY, Served};
use libmh::mempool::Pool;
use libmh::{println, process, procs, registry};

/// The sizes of the section.
pub const SIZES: [u64; 4] = [1, 10, 100, 1000];
/// The sizes of the teardown row: one process owns at most 255 devices.
pub const TEARDOWN_SIZES: [u64; 4] = [1, 10, 100, 250];
/// Devices each helper child creates.
const PER_HELPER: u64 = 200;
/// The vector parked processes wait for, which nobody raises.
const PARK_VECTOR: u32 = 40;
/// The vector of the devices made here (raised on their server when a
/// request queues; nobody waits for it).
const DEV_VECTOR: u32 = 41;
/// A helper that cannot create its devices exits with this plus the error
/// code.
const HELPER_FAILED: i64 = 100;

/// Iterations per batch.
const FORK_N: u64 = 50;
const CREATE_N: u64 = 500;
const ATTACH_N: u64 = 500;

/// Runs the section, printing one `bench` line per figure; returns how
/// many failed.
pub fn run() -> u32 {
    let mut failed = 0;
    let mut report = |name: &str, n: Option<u64>, r: Result<(u64, u64), Fail>| {
        let suffix = Suffix(n);
        match r {
            Ok((per, iters)) => println!("bench {name}{suffix} {per} {iters}"),
            Err(e) => {
                println!("bench {name}{suffix} FAILED {e}");
                failed += 1;
            }
        }
    };
    let k = match procs::open(true) {
        Ok(k) => k,
        Err(e) => {
            report("scale", None, Err(e.into()));
            return failed;
        }
    };
    for n in SIZES {
        report("scale_fork_exit_wait", Some(n), fork_exit_wait(k, n));
    }
    for n in SIZES {
        report(
            "scale_dev_create_destroy",
            Some(n),
            dev_create_destroy(k, n),
        );
    }
    for n in SIZES {
        report("scale_attach_detach", Some(n), attach_detach(k, n));
    }
    match teardown(k, 0) {
        Ok(base) => {
            report("scale_teardown_no_devices", None, Ok((base, 1)));
            for n in TEARDOWN_SIZES {
                let r = teardown(k, n).and_then(|t| {
                    let extra = t.checked_sub(base).ok_or(Fail::Check(
                        "a teardown with devices took fewer instructions than one without",
                        t as i64,
                    ))?;
                    Ok((measure::per_op(extra, 0, n), n))
                });
                report("scale_teardown_per_device", Some(n), r);
            }
        }
        Err(e) => {
            report("scale_teardown_no_devices", None, Err(e));
            // Nothing to subtract: every figure of the row fails with it.
            for n in TEARDOWN_SIZES {
                report("scale_teardown_per_device", Some(n), Err(e));
            }
        }
    }
    let _ = k.detach();
    failed
}

/// `_n<N>`, or nothing.
struct Suffix(Option<u64>);

impl core::fmt::Display for Suffix {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "_n{n}"),
            None => Ok(()),
        }
    }
}

/// A device name: `prefix` and a number.
struct Name {
    buf: [u8; dev::DEVICE_NAME_MAX],
    len: usize,
}

impl Name {
    fn new(prefix: &str, i: u64) -> Name {
        use core::fmt::Write;
        let mut name = Name {
            buf: [0; dev::DEVICE_NAME_MAX],
            len: 0,
        };
        let _ = write!(name, "{prefix}{i}");
        name
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl core::fmt::Write for Name {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The most children a step parks at once.
const MAX_CHILDREN: usize = 1000;

/// The pids of the children a step started. A fixed array rather than a
/// `Vec`: more users of the global allocator in mhbench change how LLVM
/// inlines it, and with it `alloc_free_small`'s figure.
struct Pids {
    pids: [u32; MAX_CHILDREN],
    len: usize,
}

impl Pids {
    fn new() -> Pids {
        Pids {
            pids: [0; MAX_CHILDREN],
            len: 0,
        }
    }

    fn push(&mut self, pid: u32) -> Result<(), Fail> {
        let slot = self.pids.get_mut(self.len).ok_or(Fail::Check(
            "more children than a step may park",
            MAX_CHILDREN as i64,
        ))?;
        *slot = pid;
        self.len += 1;
        Ok(())
    }

    fn as_slice(&self) -> &[u32] {
        &self.pids[..self.len]
    }
}

/// Sleeps for good (until killed).
fn park() -> ! {
    loop {
        if process::irq_wait(1 << PARK_VECTOR).is_err() {
            process::exit(3);
        }
    }
}

/// Creates user devices `prefix<lo>` .. `prefix<hi - 1>`, served by the
/// caller (the serving handles are simply kept: the process owns them
/// until it ends).
fn create_range(prefix: &str, lo: u64, hi: u64) -> Result<(), Error> {
    for i in lo..hi {
        dev::create(REGISTRY, Name::new(prefix, i).as_str(), 0, 0, DEV_VECTOR)?;
    }
    Ok(())
}

/// Forks a child that creates devices `prefix<lo>` .. `prefix<hi - 1>`
/// and then parks; returns its pid.
fn spawn_owner(prefix: &str, lo: u64, hi: u64) -> Result<u32, Fail> {
    let pid = process::fork()?;
    if pid == 0 {
        if let Err(e) = create_range(prefix, lo, hi) {
            process::exit(HELPER_FAILED + e.code() as i64);
        }
        park();
    }
    Ok(pid)
}

/// The state proc reports for `pid`.
fn state(k: Handle, pid: u32) -> Result<u32, Fail> {
    k.port_out(PROC_PORT_SELECT, 4, pid as u64)?;
    Ok(k.port_in(PROC_PORT_STATE, 4)? as u32)
}

/// Processes in the system (zombies included).
fn processes(k: Handle) -> Result<u64, Fail> {
    Ok(k.port_in(PROC_PORT_COUNT, 4)?)
}

/// Waits until every child in `pids` sleeps (parked, its work done);
/// `Ok(false)` if one ended instead (its status says why once reaped).
fn wait_parked(k: Handle, pids: &[u32]) -> Result<bool, Fail> {
    for &pid in pids {
        let mut polls = 0u32;
        loop {
            match state(k, pid)? {
                PROC_STATE_BLOCKED => break,
                PROC_STATE_ZOMBIE => return Ok(false),
                _ if polls >= 1_000_000 => {
                    return Err(Fail::Check("a child never went to sleep", pid as i64));
                }
                _ => {
                    polls += 1;
                    process::yield_now();
                }
            }
        }
    }
    Ok(true)
}

/// Kills every child in `pids` and reaps them all. Fails if one had ended
/// by itself (reporting why) or another child turned up.
fn end_all(k: Handle, pids: &[u32]) -> Result<(), Fail> {
    let mut first_error = Ok(());
    for &pid in pids {
        match procs::kill(k, pid) {
            // Already a zombie: it ended by itself; its status tells why.
            Ok(()) | Err(Error::NotFound) => {}
            Err(e) => first_error = first_error.and(Err(Fail::Sys(e))),
        }
    }
    for _ in pids {
        let st = process::wait_child()?;
        let why = if !pids.contains(&st.pid) {
            Err(Fail::Check(
                "reaped a child it did not start",
                st.pid as i64,
            ))
        } else if st.kind == ExitKind::KilledBy as u32 {
            Ok(())
        } else if st.kind == ExitKind::Exited as u32 && st.code > HELPER_FAILED {
            let e = Error::from_code((st.code - HELPER_FAILED) as u32);
            Err(e.map_or(Fail::Check("a child failed", st.code), |e| {
                Fail::Setup("a child could not create its devices", e)
            }))
        } else {
            Err(Fail::Check("a parked child ended by itself", st.code))
        };
        first_error = first_error.and(why);
    }
    first_error
}

/// Free frames in the machine.
fn free_frames() -> Result<u64, Fail> {
    let pool = Pool::open()?;
    let free = pool.free();
    pool.close()?;
    Ok(free?)
}

/// Checks that a step gave back what it took: the process and device
/// counts are where they were. (Frames are reported, not checked: the
/// kernel's tables keep the slots they grew, see docs/benchmarks.md.)
fn check_back(k: Handle, procs_before: u64, devices_before: u32) -> Result<(), Fail> {
    let p = processes(k)?;
    if p != procs_before {
        return Err(Fail::Check("processes left after the step", p as i64));
    }
    let d = registry::count()?;
    if d != devices_before {
        return Err(Fail::Check("devices left after the step", d as i64));
    }
    Ok(())
}

/// Ends the children `pids` whatever happened to `measure`, and checks
/// the system is back as it was. A child that ended by itself is the
/// first thing reported (its status says why the step could not be set
/// up), then the measurement's own failure.
fn then_end(
    k: Handle,
    pids: &[u32],
    procs_before: u64,
    devices_before: u32,
    measure: Result<(u64, u64), Fail>,
) -> Result<(u64, u64), Fail> {
    end_all(k, pids)?;
    let v = measure?;
    check_back(k, procs_before, devices_before)?;
    Ok(v)
}

/// fork; the child exits at once; the parent reaps exactly it.
fn fork_exit_wait_once(_: u64) -> Result<(), Fail> {
    let pid = process::fork()?;
    if pid == 0 {
        process::exit(0);
    }
    let st = process::wait_child()?;
    if st.pid != pid || st.kind != ExitKind::Exited as u32 || st.code != 0 {
        return Err(Fail::Check(
            "reaped something else than the child",
            st.pid as i64,
        ));
    }
    Ok(())
}

/// `scale_fork_exit_wait_n<N>`.
fn fork_exit_wait(k: Handle, n: u64) -> Result<(u64, u64), Fail> {
    let (procs_before, devices_before) = (processes(k)?, registry::count()?);
    if procs_before != 1 {
        return Err(Fail::Check("mhbench is not alone", procs_before as i64));
    }
    let frames_before = free_frames()?;
    let mut pids = Pids::new();
    let mut setup = || -> Result<(), Fail> {
        for i in 1..n {
            let pid = process::fork().map_err(|e| Fail::At("fork of parked child", i, e))?;
            if pid == 0 {
                park();
            }
            pids.push(pid)?;
        }
        if !wait_parked(k, pids.as_slice())? {
            return Err(Fail::Check("a parked child ended", 0));
        }
        let p = processes(k)?;
        if p != n {
            return Err(Fail::Check("live processes differ from N", p as i64));
        }
        Ok(())
    };
    let measured = setup().and_then(|()| {
        let frames_parked = free_frames()?;
        let per = measure::run(FORK_N, 5, &mut fork_exit_wait_once)?;
        crate::note(format_args!(
            "scale_fork_exit_wait_n{n}: the {} parked processes hold {} frames",
            n - 1,
            frames_before.saturating_sub(frames_parked),
        ));
        Ok((per, FORK_N))
    });
    let r = then_end(k, pids.as_slice(), procs_before, devices_before, measured);
    let frames_after = free_frames()?;
    crate::note(format_args!(
        "scale_fork_exit_wait_n{n}: {} fewer free frames after the step than before",
        frames_before.saturating_sub(frames_after)
    ));
    r
}

/// Runs `f` with N user devices: `scale-d0` served by mhbench (handed to
/// `f`), the rest by parked helpers; then ends the helpers, destroys
/// `scale-d0` and checks the counts are back.
fn with_devices(
    k: Handle,
    n: u64,
    f: impl FnOnce(Served) -> Result<(u64, u64), Fail>,
) -> Result<(u64, u64), Fail> {
    let (procs_before, devices_before) = (processes(k)?, registry::count()?);
    let d0 = dev::create(REGISTRY, "scale-d0", 0, 0, DEV_VECTOR)?;
    let mut pids = Pids::new();
    let mut setup = || -> Result<(), Fail> {
        let mut lo = 1;
        while lo < n {
            let hi = (lo + PER_HELPER).min(n);
            pids.push(spawn_owner("scale-d", lo, hi)?)?;
            lo = hi;
        }
        if !wait_parked(k, pids.as_slice())? {
            return Err(Fail::Check(
                "a helper ended before its devices were made",
                0,
            ));
        }
        let d = i64::from(registry::count()?) - i64::from(devices_before);
        if d != n as i64 {
            return Err(Fail::Check("user devices differ from N", d));
        }
        Ok(())
    };
    let measured = setup().and_then(|()| f(d0));
    let destroyed = d0.destroy().map_err(Fail::Sys);
    let measured = measured.and_then(|v| destroyed.map(|()| v));
    then_end(k, pids.as_slice(), procs_before, devices_before, measured)
}

/// `scale_dev_create_destroy_n<N>`.
fn dev_create_destroy(k: Handle, n: u64) -> Result<(u64, u64), Fail> {
    with_devices(k, n, |_| {
        let per = measure::run(CREATE_N, 10, &mut |_| {
            dev::create(REGISTRY, "scale-new", 0, 0, DEV_VECTOR)?.destroy()?;
            Ok(())
        })?;
        Ok((per, CREATE_N))
    })
}

/// `scale_attach_detach_n<N>`.
fn attach_detach(k: Handle, n: u64) -> Result<(u64, u64), Fail> {
    with_devices(k, n, |d0| {
        let per = measure::run(ATTACH_N, 10, &mut |_| {
            dev::attach(REGISTRY, "scale-d0", dev::RIGHT_READ)?.detach()?;
            let (open, close) = (d0.try_poll()?, d0.try_poll()?);
            if open.kind != REQUEST_OPEN || close.kind != REQUEST_CLOSE {
                return Err(Fail::Check(
                    "the server did not see OPEN, CLOSE",
                    close.kind as i64,
                ));
            }
            Ok(())
        })?;
        Ok((per, ATTACH_N))
    })
}

/// The best of [`REPS`] teardowns (kill + reap, in instructions) of a
/// child owning `n` devices.
fn teardown(k: Handle, n: u64) -> Result<u64, Fail> {
    let (procs_before, devices_before) = (processes(k)?, registry::count()?);
    let mut best = u64::MAX;
    for _ in 0..REPS {
        let pid = spawn_owner("scale-t", 0, n)?;
        let ready = wait_parked(k, &[pid]).and_then(|parked| {
            let d = i64::from(registry::count()?) - i64::from(devices_before);
            if parked && d == n as i64 {
                Ok(())
            } else {
                Err(Fail::Check("the child's devices differ from N", d))
            }
        });
        if let Err(e) = ready {
            // Its status (why it could not make them) is the better reason.
            end_all(k, &[pid])?;
            return Err(e);
        }
        k.port_out(PROC_PORT_SELECT, 4, pid as u64)?;
        let mut reaped = None;
        let t = measure::batch(1, &mut |_| {
            k.port_out(abi::kdev::PROC_PORT_KILL, 4, 0)?;
            reaped = Some(process::wait_child()?);
            Ok(())
        })?;
        match reaped {
            Some(st) if st.pid == pid && st.kind == ExitKind::KilledBy as u32 => {}
            st => {
                let got = st.map_or(0, |st| st.pid as i64);
                return Err(Fail::Check(
                    "reaped something else than the killed child",
                    got,
                ));
            }
        }
        check_back(k, procs_before, devices_before)?;
        best = best.min(t);
    }
    Ok(best)
}
