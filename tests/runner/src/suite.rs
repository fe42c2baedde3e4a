//! A minimal test runner: each test is a function returning `Result<(),
//! Fail>`; the suite prints `test <name> ... ok` or `... FAILED: <why>` and
//! a final `suite done: total=N ok=K failed=M skipped=S` line that the host
//! harness reads (see tools/xtask/src/harness.rs).
//!
//! Passes: `cargo xtask test` boots the test image twice, on 1 CPU and on
//! 4, and tells the runner which pass it is in (`mhtest runner
//! pass=smp1`, `pass=smp4`). Heavy tests (`Suite::run_heavy`), which take
//! most of the suite's time, run in one pass only, [`HEAVY_PASS`]; in the
//! other they print `test <name> ... skipped in this pass` and count
//! neither as passed nor failed. Without a pass (the image booted by
//! hand) every test runs.

use abi::kdev::{
    PROC_PORT_NEXT, PROC_PORT_PARENT, PROC_PORT_SELECT, PROC_PORT_STATE, PROC_STATE_ZOMBIE,
    PROCESSES_MAX,
};
use arrayvec::ArrayVec;
use core::fmt::{self, Write};
use libmh::{println, process, procs};

/// Why a test failed: a short formatted message.
pub struct Fail {
    buf: [u8; 200],
    len: usize,
}

impl Fail {
    pub fn new(args: fmt::Arguments<'_>) -> Fail {
        let mut f = Fail {
            buf: [0; 200],
            len: 0,
        };
        let _ = f.write_fmt(args);
        f
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("(unprintable reason)")
    }
}

impl Write for Fail {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() && b != b'\n' {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

pub type TestResult = Result<(), Fail>;

/// Fails the test with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::suite::Fail::new(format_args!($($arg)*)));
        }
    };
}

/// Fails unless `$got == $want`, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($why:tt)+) => {{
        let got = $got;
        let want = $want;
        if got != want {
            return Err($crate::suite::Fail::new(format_args!(
                "{}: {} = {:?}, expected {:?}",
                format_args!($($why)+),
                stringify!($got),
                got,
                want
            )));
        }
    }};
    ($got:expr, $want:expr) => {{
        let got = $got;
        let want = $want;
        if got != want {
            return Err($crate::suite::Fail::new(format_args!(
                "{} = {:?}, expected {:?}",
                stringify!($got),
                got,
                want
            )));
        }
    }};
}

/// The pass the heavy tests run in: the one on 4 CPUs, because the
/// system-call fuzzer is meant to hammer the kernel from every CPU at once.
pub const HEAVY_PASS: &str = "smp4";

pub struct Suite {
    total: u32,
    ok: u32,
    skipped: u32,
    /// The pass of `cargo xtask test` this is; `None`: run everything.
    pass: Option<&'static str>,
}

impl Suite {
    /// A suite that runs every test.
    pub fn new() -> Suite {
        Suite::in_pass(None)
    }

    /// A suite for pass `pass` of `cargo xtask test` (see the module
    /// docs); `None` runs every test.
    pub fn in_pass(pass: Option<&'static str>) -> Suite {
        Suite {
            total: 0,
            ok: 0,
            skipped: 0,
            pass,
        }
    }

    /// Runs a heavy test: only in [`HEAVY_PASS`] (or when no pass is
    /// given), so that the suite's two passes do not both pay for it.
    pub fn run_heavy(&mut self, name: &str, test: impl FnOnce() -> TestResult) {
        match self.pass {
            Some(pass) if pass != HEAVY_PASS => {
                self.skipped += 1;
                println!("test {name} ... skipped in this pass (heavy: runs in pass {HEAVY_PASS})");
            }
            _ => self.run(name, test),
        }
    }

    pub fn run(&mut self, name: &str, test: impl FnOnce() -> TestResult) {
        self.total += 1;
        let before = live_children();
        match test() {
            Ok(()) => {
                self.ok += 1;
                println!("test {name} ... ok");
            }
            Err(f) => {
                println!("test {name} ... FAILED: {}", f.as_str());
                end_children_born_since(&before);
            }
        }
    }

    /// Prints the summary; the exit code is 0 iff every test passed.
    pub fn finish(&self) -> i32 {
        let failed = self.total - self.ok;
        println!(
            "suite done: total={} ok={} failed={} skipped={}",
            self.total, self.ok, failed, self.skipped
        );
        if failed == 0 { 0 } else { 1 }
    }
}

/// The runner's children, zombies included (at most 128 are tracked: the
/// suite never keeps more alive across tests).
type Children = ArrayVec<u32, 128>;

/// (pid, still running) of each child.
fn children() -> ArrayVec<(u32, bool), 128> {
    let mut found = ArrayVec::new();
    let Ok(h) = procs::open(false) else {
        return found;
    };
    let me = process::getpid();
    let mut pid = 0;
    // One step per process-table slot at most; each moves to a later slot.
    for _ in 0..=PROCESSES_MAX {
        let next = h
            .port_out(PROC_PORT_SELECT, 4, u64::from(pid))
            .and_then(|()| h.port_in(PROC_PORT_NEXT, 4));
        let Ok(next @ 1..) = next.map(|n| n as u32) else {
            break;
        };
        let parent = h.port_in(PROC_PORT_PARENT, 4);
        let state = h.port_in(PROC_PORT_STATE, 4);
        if parent == Ok(u64::from(me)) {
            let _ = found.try_push((next, state != Ok(u64::from(PROC_STATE_ZOMBIE))));
        }
        pid = next;
    }
    let _ = h.detach();
    found
}

/// The children alive now (servers the suite keeps across tests).
fn live_children() -> Children {
    children()
        .into_iter()
        .filter(|&(_, running)| running)
        .map(|(pid, _)| pid)
        .collect()
}

/// After a failed test: ends the children it left running (a server it
/// started, a client it was waiting for) and reaps them and the ones it
/// left unreaped, so that they cannot run into later tests (whose
/// `wait_child` would get them) or keep a later "wait for every child"
/// waiting for ever. Children that were alive before the test are left
/// alone.
fn end_children_born_since(before: &Children) {
    let Ok(h) = procs::open(true) else {
        return;
    };
    let mut ended = 0;
    for (pid, running) in children() {
        if before.contains(&pid) {
            continue;
        }
        if !running || procs::kill_tree(h, pid).is_ok() {
            ended += 1;
        }
    }
    let _ = h.detach();
    // Each of them is or becomes a zombie: `ended` waits cannot block for
    // ever.
    for _ in 0..ended {
        let _ = process::wait_child();
    }
    if ended > 0 {
        println!("mhtest: ended {ended} children the failed test left running");
    }
}
