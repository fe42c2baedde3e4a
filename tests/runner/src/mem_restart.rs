//! The `mem-restart` role (tools/images/selftest-mem-restart.toml): a
//! module with a memory limit checks that its ceiling at mem survives the
//! mem server's restart — init sends a new server the ceilings of the
//! live modules — and prints `mem-restart: ok`.

use abi::Error;
use libmh::mem::Mem;
use libmh::{println, process, registry};

/// Vectors: mem's replies, init's answer.
const REPLY: u32 = 5;
const V_INIT: u32 = 6;
/// Polls (with a yield each) before giving up on a step.
const PATIENCE: u32 = 200_000;

/// The ceiling mem reports for this process, once it is `want`.
fn wait_for_ceiling(m: &Mem, want: u64) -> Result<(), Error> {
    let mut last = 0;
    for _ in 0..PATIENCE {
        match m.usage() {
            Ok(u) if u.ceiling == want => return Ok(()),
            Ok(u) => last = u.ceiling,
            Err(e) => return Err(e),
        }
        process::yield_now();
    }
    println!("mem-restart: ceiling stays {last}, expected {want}");
    Err(Error::NotFound)
}

/// The pid serving `name`, from the registry's listing.
fn server_of(name: &str) -> Option<u32> {
    let mut pid = None;
    let _ = registry::for_each(|e| {
        if e.name() == name {
            pid = Some(e.server);
        }
    });
    pid
}

fn check(want: u64) -> Result<(), Error> {
    let m = Mem::open(REPLY)?;
    wait_for_ceiling(&m, want)?;
    let old = server_of(libmh::mem::NAME).ok_or(Error::NotFound)?;
    // A program init started may ask it to stop a server it supervises.
    libmh::init::stop(old, V_INIT)?;
    // The old connection dies with the server ...
    for _ in 0..PATIENCE {
        match m.usage() {
            Err(Error::DeviceGone) => break,
            _ => process::yield_now(),
        }
    }
    let _ = m.close();
    // ... and the new server, once registered, knows the ceiling again.
    for _ in 0..PATIENCE {
        if let Some(new) = server_of(libmh::mem::NAME)
            && new != 0
            && let Ok(m) = Mem::open(REPLY)
        {
            println!("mem-restart: mem restarted (pid {old}, then {new})");
            let kept = wait_for_ceiling(&m, want);
            let _ = m.close();
            return kept;
        }
        process::yield_now();
    }
    Err(Error::NotFound)
}

pub fn run(limit_kib: u64) -> i32 {
    let want = limit_kib.div_ceil(4);
    match check(want) {
        Ok(()) => {
            println!("mem-restart: ok, ceiling {want} frames before and after");
            0
        }
        Err(e) => {
            println!("mem-restart: FAILED: {e}");
            1
        }
    }
}
