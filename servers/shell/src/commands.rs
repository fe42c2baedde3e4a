//! The shell's commands. Each takes the rest of the line, reports on the
//! console, and never fails the shell itself.
//!
//! Rules: every command is in [`COMMANDS`], which `help` lists and which
//! gives each its usage line; a command that takes no arguments refuses
//! any with that line instead of ignoring them, and `help <command>`
//! shows one command's lines.

use crate::jobs::{kill, run_module};
use crate::out::Block;
use crate::say;
use abi::bus::{DEVICE_KIND_HARDWARE, DEVICE_KIND_KERNEL, DEVICE_KIND_USER};
use libmh::bootfs::Bootfs;
use libmh::console::Console;
use libmh::{Error, process, procs, registry};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Exit,
}

/// One line of `help`: the command's name, its usage, what it does,
/// whether it takes arguments, and what runs it (given the rest of the
/// line).
struct Command {
    name: &'static str,
    usage: &'static str,
    what: &'static str,
    args: bool,
    run: fn(&Console, &str) -> Flow,
}

const fn cmd(
    name: &'static str,
    usage: &'static str,
    what: &'static str,
    args: bool,
    run: fn(&Console, &str) -> Flow,
) -> Command {
    Command {
        name,
        usage,
        what,
        args,
        run,
    }
}

/// A `Command::run` for a command after which the shell always goes on.
macro_rules! go_on {
    (|$c:ident, $rest:ident| $body:expr) => {
        |$c: &Console, $rest: &str| {
            $body;
            Flow::Continue
        }
    };
}

/// In `help` order; a command with several forms has a line for each.
const COMMANDS: &[Command] = &[
    cmd(
        "help",
        "help [command]",
        "this list, or one command's lines",
        true,
        go_on!(|c, rest| help(c, rest)),
    ),
    cmd(
        "ps",
        "ps",
        "processes: pid, parent, state, priority, memory, name",
        false,
        go_on!(|c, _r| report(c, "ps", ps(c))),
    ),
    cmd(
        "devices",
        "devices",
        "registered devices: name, kind, clients, server",
        false,
        go_on!(|c, _r| report(c, "devices", devices(c))),
    ),
    cmd(
        "run",
        "run <module> [args]",
        "start a boot module and wait for it (Ctrl-C ends it)",
        true,
        go_on!(|c, rest| report(c, "run", run_module(c, rest))),
    ),
    cmd(
        "kill",
        "kill <pid>",
        "end a process this shell started, or a server (init restarts it)",
        true,
        go_on!(|c, rest| kill(c, rest)),
    ),
    cmd(
        "uptime",
        "uptime",
        "time since boot",
        false,
        go_on!(|c, _r| uptime(c)),
    ),
    cmd(
        "mem",
        "mem",
        "free and total memory",
        false,
        go_on!(|c, _r| mem(c)),
    ),
    cmd(
        "echo",
        "echo [words]",
        "print the words",
        true,
        go_on!(|c, rest| say!(c, "{rest}\n")),
    ),
    cmd(
        "bench",
        "bench",
        "run the benchmark program, if the image has one",
        false,
        go_on!(|c, _r| bench(c)),
    ),
    cmd(
        "disk",
        "disk info",
        "the disk (disk0): size, sector size, serial",
        true,
        go_on!(|c, rest| crate::disk::run(c, rest)),
    ),
    cmd(
        "disk",
        "disk read <sector>",
        "one sector as a hex dump",
        true,
        go_on!(|c, rest| crate::disk::run(c, rest)),
    ),
    cmd(
        "disk",
        "disk write <sector> <text>",
        "the text (zero-padded) to one sector, then a flush",
        true,
        go_on!(|c, rest| crate::disk::run(c, rest)),
    ),
    cmd(
        "disk",
        "disk scan",
        "read the whole disk in order, with a checksum",
        true,
        go_on!(|c, rest| crate::disk::run(c, rest)),
    ),
    cmd(
        "net",
        "net",
        "the network: address, gateway, MAC, frame counts",
        false,
        go_on!(|c, _r| crate::net::status(c)),
    ),
    cmd(
        "ping",
        "ping <a.b.c.d>",
        "three ICMP echo requests, with their round trips",
        true,
        go_on!(|c, rest| crate::net::ping(c, rest)),
    ),
    cmd(
        "exit",
        "exit",
        "leave the shell (init then powers off)",
        false,
        |_, _| Flow::Exit,
    ),
];

/// `help`'s line for `c`, usages aligned (a long one still gets two
/// spaces before its text).
fn help_line(out: &mut Block<'_>, c: &Command) {
    out.line(format_args!(
        "  {:<w$}{}\n",
        c.usage,
        c.what,
        w = c.usage.len().max(19) + 2
    ));
}

pub fn run(c: &Console, line: &str) -> Flow {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    if cmd.is_empty() {
        return Flow::Continue;
    }
    let Some(known) = COMMANDS.iter().find(|k| k.name == cmd) else {
        say!(c, "{cmd}: no such command (try 'help')\n");
        return Flow::Continue;
    };
    if !known.args && !rest.is_empty() {
        say!(c, "{cmd}: takes no arguments\nusage: {}\n", known.usage);
        return Flow::Continue;
    }
    (known.run)(c, rest)
}

/// `help`: every command; `help <command>`: that command's lines.
fn help(c: &Console, which: &str) {
    let mut out = Block::new(c);
    if which.is_empty() {
        out.line(format_args!("commands:\n"));
        COMMANDS.iter().for_each(|k| help_line(&mut out, k));
        return;
    }
    let mut found = false;
    for k in COMMANDS.iter().filter(|k| k.name == which) {
        help_line(&mut out, k);
        found = true;
    }
    drop(out);
    if !found {
        say!(c, "help: no command '{which}' (try 'help')\n");
    }
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
    let mut out = Block::new(c);
    out.line(format_args!("  PID PARENT STATE     PRIO   MEMORY NAME\n"));
    let listed = procs::for_each(h, |p| {
        out.line(format_args!(
            "{:>5} {:>6} {:<9} {:>4} {:>6}K {}\n",
            p.pid,
            p.parent,
            p.state_name(),
            p.priority,
            p.frames * 4,
            p.name()
        ));
    });
    let _ = h.detach();
    listed
}

fn devices(c: &Console) -> Result<(), Error> {
    let mut out = Block::new(c);
    out.line(format_args!(
        "NAME                             KIND      CLIENTS SERVER\n"
    ));
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
        out.line(format_args!(
            "{:<32} {:<9} {:>7} {:>6}\n",
            e.name(),
            kind,
            e.clients,
            server
        ));
    })
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
