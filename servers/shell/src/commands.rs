//! The shell's commands. Each takes the rest of the line, reports on the
//! console, and never fails the shell itself.

use crate::V_INTERRUPT;
use crate::say;
use abi::bus::{DEVICE_KIND_HARDWARE, DEVICE_KIND_KERNEL, DEVICE_KIND_USER};
use abi::interrupt::VECTOR_CHILD;
use libmh::bootfs::Bootfs;
use libmh::console::Console;
use libmh::{Error, ExitKind, ExitStatus, process, procs, registry};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Exit,
}

const HELP: &str = "\
commands:
  help                 this list
  ps                   processes: pid, parent, state, priority, memory, name
  devices              registered devices: name, kind, clients, server
  run <module> [args]  start a boot module and wait for it (Ctrl-C ends it)
  kill <pid>           end a process this shell started, or a server (init restarts it)
  uptime               time since boot
  mem                  free and total memory
  echo [words]         print the words
  bench                run the benchmark program, if the image has one
  disk info            the disk (disk0): size, sector size, serial
  disk read <sector>   one sector as a hex dump
  disk write <sector> <text>  the text (zero-padded) to one sector, then a flush
  disk scan            read the whole disk in order, with a checksum
  exit                 leave the shell (init then powers off)
";

pub fn run(c: &mut Console, line: &str) -> Flow {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match cmd {
        "" => {}
        "help" => {
            for line in HELP.lines() {
                say!(c, "{line}\n");
            }
        }
        "ps" => report(c, "ps", ps(c)),
        "devices" => report(c, "devices", devices(c)),
        "run" => report(c, "run", run_module(c, rest)),
        "kill" => kill(c, rest),
        "uptime" => uptime(c),
        "mem" => mem(c),
        "echo" => say!(c, "{rest}\n"),
        "bench" => bench(c),
        "disk" => crate::disk::run(c, rest),
        "exit" => return Flow::Exit,
        other => say!(c, "{other}: no such command (try 'help')\n"),
    }
    Flow::Continue
}

/// Runs the benchmark program if the image has one. Its numbers are
/// guest instructions only under `cargo xtask bench` (-icount); here they
/// are TSC ticks of an emulated CPU, so the shell says so.
fn bench(c: &Console) {
    let present = Bootfs::open().and_then(|fs| {
        let found = fs.find("mhbench");
        let _ = fs.0.detach();
        found
    });
    match present {
        Ok(Some(_)) => {
            say!(
                c,
                "bench: running mhbench (TSC ticks here; `cargo xtask bench` counts instructions)\n"
            );
            report(c, "bench", run_module(c, "mhbench"));
        }
        Ok(None) => say!(
            c,
            "bench: this image has no benchmark program; run `cargo xtask bench` on the host\n"
        ),
        Err(e) => say!(c, "bench: {e}\n"),
    }
}

fn report(c: &Console, what: &str, result: Result<(), Error>) {
    if let Err(e) = result {
        say!(c, "{what}: {e}\n");
    }
}

fn ps(c: &Console) -> Result<(), Error> {
    let h = procs::open(false)?;
    say!(c, "  PID PARENT STATE     PRIO   MEMORY NAME\n");
    let listed = procs::for_each(h, |p| {
        say!(
            c,
            "{:>5} {:>6} {:<9} {:>4} {:>6}K {}\n",
            p.pid,
            p.parent,
            p.state_name(),
            p.priority,
            p.frames * 4,
            p.name()
        );
    });
    let _ = h.detach();
    listed
}

fn devices(c: &Console) -> Result<(), Error> {
    say!(
        c,
        "NAME                             KIND      CLIENTS SERVER\n"
    );
    registry::for_each(|e| {
        let kind = match e.kind {
            DEVICE_KIND_KERNEL => "kernel",
            DEVICE_KIND_USER => "user",
            DEVICE_KIND_HARDWARE => "hardware",
            _ => "?",
        };
        let server = if e.kind == DEVICE_KIND_USER {
            e.server
        } else {
            0
        };
        say!(
            c,
            "{:<32} {:<9} {:>7} {:>6}\n",
            e.name(),
            kind,
            e.clients,
            server
        );
    })
}

/// Starts boot module `name` with the given arguments and waits for it;
/// Ctrl-C ends it.
fn run_module(c: &Console, line: &str) -> Result<(), Error> {
    let (name, args) = line.split_once(' ').unwrap_or((line, ""));
    if name.is_empty() {
        say!(c, "usage: run <module> [args]\n");
        return Ok(());
    }
    let fs = Bootfs::open()?;
    let mut opts = [0u8; 256];
    let started = match fs.find(name)? {
        // Module 0 is init, and a module without `start = false` is one
        // init started at boot and supervises: running another copy would
        // fight it (two inits, two consoles, ...).
        Some(index) if index == 0 || !fs.options(index, &mut opts)?.no_start => {
            Err(Error::AlreadyExists)
        }
        Some(index) => fs.spawn_with(index, (!args.is_empty()).then_some(args.trim())),
        None => Err(Error::NotFound),
    };
    let _ = fs.0.detach();
    let pid = match started {
        Ok(pid) => pid,
        Err(Error::NotFound) => {
            say!(c, "run: no module '{name}' in this image\n");
            return Ok(());
        }
        Err(Error::AlreadyExists) => {
            say!(
                c,
                "run: '{name}' is started at boot and supervised by init; it is not run again\n"
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

/// Ends `pid`: directly if this shell is its ancestor, otherwise by asking
/// init, which may stop the servers it supervises (and restarts them).
/// `kill <pid>`, saying what went wrong in words a user can act on.
fn kill(c: &Console, arg: &str) {
    let arg = arg.trim();
    if arg.is_empty() {
        say!(c, "usage: kill <pid>  (pids as `ps` lists them)\n");
        return;
    }
    let Ok(pid) = arg.parse::<u32>() else {
        say!(
            c,
            "kill: '{arg}' is not a pid (a number, as `ps` lists them)\n"
        );
        return;
    };
    if pid == libmh::process::getpid() {
        say!(c, "kill: {pid} is this shell; `exit` leaves it\n");
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

/// The vector init's answers arrive on.
const V_INIT: u32 = 5;

fn ask_init_to_stop(pid: u32) -> Result<(), Error> {
    if !libmh::registry::is_registered("init").unwrap_or(false) {
        // No supervisor to ask: the kernel's answer stands.
        return Err(Error::AccessDenied);
    }
    libmh::init::stop(pid, V_INIT)
}

/// Vectors for the timer's answers while `uptime` asks it for its clock.
const V_TIMER_REPLY: u32 = 3;
const V_TIMER_ALARM: u32 = 4;

/// Time since power-on: the TSC (which starts at 0 with the machine) at the
/// rate the timer server measured; without a timer, the kernel's ticks.
fn uptime(c: &Console) {
    if let Ok(t) = libmh::timer::Timer::open(V_TIMER_REPLY, V_TIMER_ALARM) {
        let hz = t.clock().tsc_hz;
        let _ = t.close();
        if hz > 0 {
            let ms = u128::from(libmh::timer::rdtsc()) * 1000 / u128::from(hz);
            say!(c, "up {}.{:03} s\n", ms / 1000, ms % 1000);
            return;
        }
    }
    match process::sys_info() {
        Ok(i) if i.tick_hz > 0 => {
            say!(
                c,
                "up at least {} ticks of 1/{} s (no timer)\n",
                i.ticks,
                i.tick_hz
            )
        }
        Ok(_) => say!(c, "uptime: no clock\n"),
        Err(e) => say!(c, "uptime: {e}\n"),
    }
}

fn mem(c: &Console) {
    match process::sys_info() {
        Ok(i) => say!(
            c,
            "{} KiB free of {} KiB ({} KiB kernel heap)\n",
            i.free_frames * 4,
            i.total_frames * 4,
            i.heap_frames * 4
        ),
        Err(e) => say!(c, "mem: {e}\n"),
    }
}
