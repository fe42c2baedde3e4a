//! `run <module> [args]` and `kill <pid>`: starting boot modules and
//! ending processes.
//!
//! Rules: `run` starts only what nothing else runs — not init, not a
//! module init started at boot (it supervises those), not a module whose
//! device is already registered — and not a module whose memory or
//! process limit the shell cannot apply (libmh's spawn refuses it rather
//! than run it unlimited); each refusal says why. `kill` refuses the
//! shell itself and init, saying what ending them would do, and asks
//! init to stop the servers it supervises.

use crate::V_INTERRUPT;
use crate::say;
use abi::interrupt::VECTOR_CHILD;
use abi::kdev::PROC_STATE_ZOMBIE;
use libmh::bootfs::{Bootfs, SPAWN_FAILED, SPAWN_REFUSED};
use libmh::console::Console;
use libmh::{Error, ExitKind, ExitStatus, process, procs};

/// Why `run` did not start a module.
enum Refused {
    NoModule,
    /// Module 0; its pid if it could be found.
    Init(Option<u32>),
    /// Started at boot by init (which supervises it); its pid if it runs.
    AtBoot(Option<u32>),
    /// The device it registers is in the registry already.
    Registered,
    /// A memory or process limit the shell cannot apply.
    Limits,
}

/// Starts boot module `name` with the given arguments and waits for it;
/// Ctrl-C ends it.
pub fn run_module(c: &Console, line: &str) -> Result<(), Error> {
    let (name, args) = line.split_once(' ').unwrap_or((line, ""));
    let args = args.trim();
    if name.is_empty() {
        say!(c, "usage: run <module> [args]\n");
        return Ok(());
    }
    let fs = Bootfs::open()?;
    let started = start(fs, name, args);
    let _ = fs.0.detach();
    let pid = match started {
        Ok(Ok(pid)) => pid,
        Ok(Err(why)) => {
            refused(c, name, why);
            return Ok(());
        }
        Err(Error::InvalidArgument) if !args.is_empty() => {
            say!(
                c,
                "run: the arguments are too long (the name and its arguments fit in 255 bytes)\n"
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    c.take_foreground()?;
    let status = wait_for(pid)?;
    describe(c, name, &status);
    Ok(())
}

/// Spawns module `name` unless one of the refusals applies.
fn start(fs: Bootfs, name: &str, args: &str) -> Result<Result<u32, Refused>, Error> {
    let Some(index) = fs.find(name)? else {
        return Ok(Err(Refused::NoModule));
    };
    if index == 0 {
        return Ok(Err(Refused::Init(running(name))));
    }
    let mut buf = [0u8; 256];
    let opts = fs.options(index, &mut buf)?;
    if !opts.no_start {
        return Ok(Err(Refused::AtBoot(running(name))));
    }
    if let Some(dev) = opts.registers
        && libmh::registry::is_registered(dev).unwrap_or(false)
    {
        return Ok(Err(Refused::Registered));
    }
    match fs.spawn_with(index, (!args.is_empty()).then_some(args)) {
        Ok(pid) => Ok(Ok(pid)),
        Err(Error::AccessDenied) if opts.has_limits() => Ok(Err(Refused::Limits)),
        Err(e) => Err(e),
    }
}

fn refused(c: &Console, name: &str, why: Refused) {
    match why {
        Refused::NoModule => say!(c, "run: no module '{name}' in this image\n"),
        Refused::Init(Some(p)) => say!(
            c,
            "run: '{name}' is init, already running (pid {p}): a second one would fight it over every server; not started\n"
        ),
        Refused::Init(None) => say!(
            c,
            "run: '{name}' is init, which is already running: a second one would fight it over every server; not started\n"
        ),
        Refused::AtBoot(Some(p)) => say!(
            c,
            "run: '{name}' is already running (pid {p}), started at boot and supervised by init; not started again (`kill {p}` restarts it)\n"
        ),
        Refused::AtBoot(None) => say!(
            c,
            "run: '{name}' is started at boot by init, not by the shell; not started\n"
        ),
        Refused::Registered => say!(
            c,
            "run: '{name}' is already running: the device it registers is in the registry; not started\n"
        ),
        Refused::Limits => say!(
            c,
            "run: '{name}' has a memory or process limit (memory_limit_kib, processes), which only init can apply; not started\n"
        ),
    }
}

/// The pid of a live process named `name`, if any.
fn running(name: &str) -> Option<u32> {
    let h = procs::open(false).ok()?;
    let mut found = None;
    let _ = procs::for_each(h, |p| {
        if found.is_none() && p.name() == name && p.state != PROC_STATE_ZOMBIE {
            found = Some(p.pid);
        }
    });
    let _ = h.detach();
    found
}

/// Waits for child `pid`, ending it on Ctrl-C; other children that end
/// meanwhile are reaped and reported by pid only.
fn wait_for(pid: u32) -> Result<ExitStatus, Error> {
    let mask = (1 << VECTOR_CHILD) | (1 << V_INTERRUPT);
    loop {
        match process::try_wait_child() {
            Ok(st) if st.pid == pid => return Ok(st),
            Ok(_) => continue,
            Err(Error::WouldBlock) => {}
            Err(e) => return Err(e),
        }
        let got = process::irq_wait(mask)?;
        if got & (1 << V_INTERRUPT) != 0 {
            let h = procs::open(true)?;
            let killed = procs::kill(h, pid);
            let _ = h.detach();
            // Already ended is fine: the next reap finds it.
            if let Err(e) = killed
                && e != Error::NotFound
            {
                return Err(e);
            }
        }
    }
}

fn describe(c: &Console, name: &str, st: &ExitStatus) {
    match st.kind {
        k if k == ExitKind::Exited as u32 && st.code == 0 => {}
        // Spawn's own statuses: the program never ran (the spawn line in
        // the log above says what failed).
        k if k == ExitKind::Exited as u32 && st.code == SPAWN_REFUSED => say!(
            c,
            "{name}: not started: its rights or device scope could not be applied (status {SPAWN_REFUSED})\n"
        ),
        k if k == ExitKind::Exited as u32 && st.code == SPAWN_FAILED => say!(
            c,
            "{name}: not started: it could not be loaded (status {SPAWN_FAILED})\n"
        ),
        k if k == ExitKind::Exited as u32 => say!(c, "{name}: exited with status {}\n", st.code),
        k if k == ExitKind::Faulted as u32 => {
            say!(
                c,
                "{name}: killed by a fault (vector {}) at {:#x}\n",
                st.code,
                st.fault_ip
            )
        }
        k if k == ExitKind::KilledBy as u32 => say!(c, "{name}: killed\n"),
        _ => say!(c, "{name}: killed by the kernel ({})\n", st.code),
    }
}

/// `kill <pid>`: ends `pid` directly if this shell is its ancestor,
/// otherwise by asking init, which may stop the servers it supervises
/// (and restarts them); says what went wrong in words a user can act on.
pub fn kill(c: &Console, arg: &str) {
    let arg = arg.trim();
    if arg.contains(' ') {
        say!(c, "kill: one pid at a time, not '{arg}'\n");
    }
    if arg.is_empty() || arg.contains(' ') {
        say!(c, "usage: kill <pid>  (one pid, as `ps` lists it)\n");
        return;
    }
    let Ok(pid) = arg.parse::<u32>() else {
        say!(
            c,
            "kill: '{arg}' is not a pid (a number, as `ps` lists them)\n"
        );
        return;
    };
    if pid == process::getpid() {
        say!(
            c,
            "kill: {pid} is this shell: ending it ends the session and init powers off; not killed (`exit` leaves it)\n"
        );
        return;
    }
    if is_init(pid) {
        say!(
            c,
            "kill: {pid} is init: it supervises every server, and the machine powers off without it; not killed\n"
        );
        return;
    }
    let done = procs::open(true).and_then(|h| {
        let done = procs::kill(h, pid);
        let _ = h.detach();
        done
    });
    let done = match done {
        Err(Error::AccessDenied) => ask_init_to_stop(pid),
        other => other,
    };
    match done {
        Ok(()) => {}
        Err(Error::NotFound) => say!(c, "kill: no process {pid} (NotFound)\n"),
        Err(Error::AccessDenied) => say!(
            c,
            "kill: {pid} is not the shell's to end and init refused it (AccessDenied)\n"
        ),
        Err(e) => say!(c, "kill: {pid}: {e}\n"),
    }
}

/// Whether `pid` is init: the process the kernel started (parent 0).
fn is_init(pid: u32) -> bool {
    let Ok(h) = procs::open(false) else {
        return false;
    };
    let mut first = false;
    let _ = procs::for_each(h, |p| first |= p.pid == pid && p.parent == 0);
    let _ = h.detach();
    first
}

/// The vector init's answers arrive on.
const V_INIT: u32 = 5;

fn ask_init_to_stop(pid: u32) -> Result<(), Error> {
    if !libmh::registry::is_registered("init").unwrap_or(false) {
        // No supervisor to ask: the kernel's answer stands.
        return Err(Error::AccessDenied);
    }
    libmh::init::stop(pid, V_INIT)
}
