//! The supervisor: starts the boot modules in manifest order, waits for
//! each server to register its device before starting the next, and
//! restarts servers that die.
//!
//! Rules: a module marked `@restart` (a server) is started again when it
//! dies, after a backoff that doubles with each death in a row, and given
//! up after [`MAX_QUICK_DEATHS`] deaths that each came soon after a start;
//! a server that ran a long time before dying starts the count afresh.
//! A death the kernel attributes to a client (the server was handling that
//! client's request: `ExitStatus::culprit`) never counts toward giving up:
//! it is counted against the client, and after [`CUT_OFF_AFTER`] of them
//! the client is cut off that server's name (proc's `PROC_PORT_REVOKE`,
//! once the server is back) while the server keeps serving everyone else.
//! So no client can disable a system server for good.
//! Clients of a restarted server see `DeviceGone` on their old handle and
//! attach again by name. The session lasts while any module without
//! `@restart` (a program) lives: when the last one ends, `run` returns and
//! init exits, which powers the machine off. Modules marked `@nostart` are
//! not started at all: they are in the image for the shell to run.

use abi::init::*;
use abi::interrupt::VECTOR_CHILD;
use abi::userdev::REQUEST_OUT;
use core::arch::x86_64::_rdtsc;
use libmh::bootfs::Bootfs;
use libmh::dev::Served;
use libmh::{Error, ExitKind, ExitStatus, println, process, procs, registry};

/// The vector the `init` device's requests arrive on.
pub const V_CONTROL: u32 = 10;
/// The most modules an image may have (init included).
const MAX_MODULES: usize = 32;
/// Deaths in a row, each soon after a start, before init gives up.
pub const MAX_QUICK_DEATHS: u32 = 5;
/// A server that lives this many TSC ticks was not a quick death.
const QUICK: u64 = 1 << 31;
/// The first restart waits this many TSC ticks; each quick death doubles it.
const BACKOFF: u64 = 1 << 22;
/// How many polls of the registry a server gets to register its device.
const REGISTER_POLLS: u32 = 100_000;
/// Deaths of one server attributed to one client before init cuts that
/// client off the server's name.
pub const CUT_OFF_AFTER: u32 = 3;
/// Clients per server whose crashes init keeps count of.
const SUSPECTS: usize = 8;

#[derive(Clone, Copy)]
struct Slot {
    index: u32,
    /// The device it registers (`@registers=`), as bytes.
    registers: [u8; 32],
    registers_len: usize,
    restart: bool,
    /// `@memory_kib=`: its ceiling at mem.
    memory_kib: Option<u64>,
    /// Its process, while it lives.
    pid: Option<u32>,
    started_at: u64,
    quick_deaths: u32,
    /// When dead and due a restart: not before this TSC value.
    restart_at: Option<u64>,
    name: [u8; 32],
    name_len: usize,
    /// Clients whose requests it died handling: (pid, deaths).
    suspects: [(u32, u32); SUSPECTS],
    /// A client to cut off once the server is back.
    cut_off: Option<u32>,
}

impl Slot {
    fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }

    fn registers(&self) -> Option<&str> {
        (self.registers_len > 0)
            .then(|| core::str::from_utf8(&self.registers[..self.registers_len]).ok())
            .flatten()
    }
}

fn now() -> u64 {
    // SAFETY: rdtsc has no side effects; user mode may run it (CR4.TSD is
    // clear).
    unsafe { _rdtsc() }
}

fn copy_word(dst: &mut [u8; 32], word: &str) -> usize {
    let n = word.len().min(dst.len());
    dst[..n].copy_from_slice(&word.as_bytes()[..n]);
    n
}

pub struct Supervisor {
    fs: Bootfs,
    slots: [Option<Slot>; MAX_MODULES],
}

impl Supervisor {
    /// Reads the module list (module 0 is init itself).
    pub fn new() -> Result<Supervisor, Error> {
        let fs = Bootfs::open()?;
        let mut slots = [None; MAX_MODULES];
        let count = (fs.count()? as usize).min(MAX_MODULES);
        for (index, slot) in slots.iter_mut().enumerate().take(count).skip(1) {
            let mut buf = [0u8; 256];
            let o = fs.options(index as u32, &mut buf)?;
            if o.no_start {
                // In the image for the shell's `run`, not for boot.
                continue;
            }
            let mut s = Slot {
                index: index as u32,
                registers: [0; 32],
                registers_len: 0,
                restart: o.restart,
                memory_kib: o.memory_kib,
                pid: None,
                started_at: 0,
                quick_deaths: 0,
                restart_at: None,
                name: [0; 32],
                name_len: 0,
                suspects: [(0, 0); SUSPECTS],
                cut_off: None,
            };
            s.registers_len = o.registers.map_or(0, |r| copy_word(&mut s.registers, r));
            let mut buf = [0u8; 256];
            let cmdline = fs.cmdline(index as u32, &mut buf)?;
            s.name_len = copy_word(
                &mut s.name,
                cmdline.split_whitespace().next().unwrap_or("?"),
            );
            *slot = Some(s);
        }
        Ok(Supervisor { fs, slots })
    }

    /// Starts every module in order, then supervises until no program is
    /// left, answering `control` (the `init` device) meanwhile.
    pub fn run(&mut self, control: Option<Served>) {
        for i in 0..MAX_MODULES {
            if self.slots[i].is_some() {
                self.start(i);
            }
        }
        let mask = (1 << VECTOR_CHILD) | (1 << V_CONTROL);
        while self.programs_alive() {
            loop {
                match process::try_wait_child() {
                    Ok(status) => self.on_death(&status, true),
                    Err(Error::WouldBlock) | Err(Error::NoChildren) => break,
                    Err(e) => {
                        println!("init: wait failed: {e}");
                        return;
                    }
                }
            }
            if let Some(c) = control {
                self.serve(c);
            }
            for i in 0..MAX_MODULES {
                if self.slots[i].is_some_and(|s| s.restart_at.is_some_and(|t| now() >= t)) {
                    self.start(i);
                }
            }
            if !self.programs_alive() {
                break;
            }
            if self.next_restart().is_some() {
                // A restart is due later: no timer here, so poll gently.
                process::yield_now();
            } else if let Err(e) = process::irq_wait(mask) {
                println!("init: wait failed: {e}");
                return;
            }
        }
    }

    /// Answers every queued request on the `init` device.
    fn serve(&mut self, control: Served) {
        loop {
            let r = match control.try_poll() {
                Ok(r) => r,
                Err(Error::WouldBlock) => return,
                Err(e) => {
                    println!("init: control poll failed: {e}");
                    return;
                }
            };
            if r.kind != REQUEST_OUT {
                continue;
            }
            let result = match r.port {
                INIT_PORT_STOP => self.stop(r.pid, r.value),
                _ => Err(Error::InvalidArgument),
            };
            let word = match result {
                Ok(()) => 0,
                Err(e) => INIT_RESULT_ERROR | u64::from(e.code()),
            };
            let _ = control.write_iospace(r.client, INIT_IO_RESULT, 8, word);
            let _ = control.irq(r.client, INIT_IRQ_DONE);
        }
    }

    /// `INIT_PORT_STOP` from process `asker` about pid `target`.
    fn stop(&mut self, asker: u32, target: u64) -> Result<(), Error> {
        let is_program = self
            .slots
            .iter()
            .flatten()
            .any(|s| !s.restart && s.pid == Some(asker));
        if !is_program {
            return Err(Error::AccessDenied);
        }
        let target = u32::try_from(target).map_err(|_| Error::InvalidArgument)?;
        if target == process::getpid() {
            return Err(Error::AccessDenied);
        }
        let Some(slot) = self.slots.iter().flatten().find(|s| s.pid == Some(target)) else {
            return Err(Error::NotFound);
        };
        println!(
            "init: stopping {} (pid {target}) as pid {asker} asked",
            slot.name()
        );
        let h = procs::open(true)?;
        let killed = procs::kill(h, target);
        let _ = h.detach();
        killed
    }

    fn programs_alive(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|s| !s.restart && s.pid.is_some())
    }

    fn next_restart(&self) -> Option<usize> {
        (0..MAX_MODULES)
            .filter(|&i| self.slots[i].is_some_and(|s| s.restart_at.is_some()))
            .min_by_key(|&i| self.slots[i].map_or(u64::MAX, |s| s.restart_at.unwrap_or(u64::MAX)))
    }

    fn start(&mut self, i: usize) {
        let Some(mut slot) = self.slots[i] else {
            return;
        };
        slot.restart_at = None;
        match self.fs.spawn(slot.index) {
            Ok(pid) => {
                println!(
                    "init: started {} (module {}, pid {pid})",
                    slot.name(),
                    slot.index
                );
                slot.pid = Some(pid);
                slot.started_at = now();
            }
            Err(e) => println!("init: cannot start {}: {e}", slot.name()),
        }
        self.slots[i] = Some(slot);
        if slot.pid.is_some() && slot.registers().is_some() && self.await_registration(i) {
            if slot.registers() == Some(libmh::mem::NAME) {
                self.send_ceilings();
            }
            self.cut_off_suspect(i);
        }
    }

    /// Cuts the client that keeps crashing slot `i`'s server off the
    /// server's name, now that the server is back (the kernel names the
    /// device by a handle to it).
    fn cut_off_suspect(&mut self, i: usize) {
        let Some(slot) = self.slots[i].as_mut() else {
            return;
        };
        let (Some(pid), Some(name)) = (slot.cut_off.take(), slot.registers()) else {
            return;
        };
        let result = libmh::dev::attach(libmh::dev::REGISTRY, name, 0).and_then(|dev| {
            let cut = procs::open(true).and_then(|p| {
                let r = procs::revoke(p, pid, dev);
                let _ = p.detach();
                r
            });
            let _ = dev.detach();
            cut
        });
        match result {
            Ok(()) => println!(
                "init: pid {pid} cut off '{name}': it crashed {} {CUT_OFF_AFTER} times",
                slot.name()
            ),
            // Gone meanwhile: nothing to cut off.
            Err(Error::NotFound) => {}
            Err(e) => println!("init: cannot cut pid {pid} off '{name}': {e}"),
        }
    }

    /// Tells a (re)started mem server the ceiling of every live module
    /// with a memory limit: the ceilings live in the server, so a new one
    /// knows none, and a module started before mem had none there yet.
    fn send_ceilings(&self) {
        let mut sent = 0;
        for slot in self.slots.iter().flatten() {
            let (Some(pid), Some(kib)) = (slot.pid, slot.memory_kib) else {
                continue;
            };
            match libmh::mem::with_connection(|m| m.set_ceiling(pid, kib.div_ceil(4))) {
                Ok(_) => sent += 1,
                Err(e) => println!("init: mem refused the ceiling of {}: {e}", slot.name()),
            }
        }
        if sent > 0 {
            println!("init: gave mem the ceilings of {sent} module(s)");
        }
    }

    /// Waits until slot `i`'s server has registered its device, it dies,
    /// or its time is up (then the next module starts anyway); true if
    /// it registered.
    fn await_registration(&mut self, i: usize) -> bool {
        let Some(slot) = self.slots[i] else {
            return false;
        };
        let name = slot.registers().unwrap_or("");
        for _ in 0..REGISTER_POLLS {
            if registry::is_registered(name).unwrap_or(false) {
                println!("init: {} registered '{name}'", slot.name());
                return true;
            }
            if let Ok(status) = process::try_wait_child() {
                let ours = slot.pid == Some(status.pid);
                if ours {
                    // One line that says both what it failed to do and how
                    // it ended, before any restart report.
                    let verb = if status.kind == ExitKind::Exited as u32 && status.code == 0 {
                        "ended"
                    } else {
                        "died"
                    };
                    println!(
                        "init: {} (pid {}) {verb} before registering '{name}' ({}); starting the next module",
                        slot.name(),
                        status.pid,
                        Ended(&status)
                    );
                }
                self.on_death(&status, !ours);
                if ours {
                    return false;
                }
            }
            process::yield_now();
        }
        println!("init: {} did not register '{name}' in time", slot.name());
        false
    }

    /// Module death `status`; `report` says whether to log how it ended
    /// (false when the caller already said so).
    fn on_death(&mut self, status: &ExitStatus, report: bool) {
        let found = self
            .slots
            .iter_mut()
            .flatten()
            .find(|s| s.pid == Some(status.pid));
        let Some(slot) = found else {
            // Not a module (an orphan handed to init): just reaped.
            return;
        };
        slot.pid = None;
        // Its ceiling at the mem server (if any) must not pass to the
        // next process that gets its pid.
        if let Err(e) = libmh::mem::with_connection(|m| m.clear_ceiling(status.pid))
            && e != Error::NotFound
        {
            println!(
                "init: mem did not clear the ceiling of pid {}: {e}",
                status.pid
            );
        }
        if report {
            println!(
                "init: {} (pid {}) {}",
                slot.name(),
                status.pid,
                Ended(status)
            );
        }
        if !slot.restart {
            return;
        }
        // A server stopped by a supervisor (KilledBy) was not crashed by
        // the client it happened to be serving.
        let crashed = status.kind != ExitKind::KilledBy as u32
            && (status.kind != ExitKind::Exited as u32 || status.code != 0);
        if crashed && status.culprit != 0 {
            // The client's fault, not the server's: count it against the
            // client and restart at once, however often it happens.
            let deaths = note_suspect(&mut slot.suspects, status.culprit);
            println!(
                "init: {} died serving pid {} ({deaths} of {CUT_OFF_AFTER}); restarting",
                slot.name(),
                status.culprit
            );
            if deaths >= CUT_OFF_AFTER {
                slot.cut_off = Some(status.culprit);
            }
            slot.restart_at = Some(now());
            return;
        }
        if status.kind == ExitKind::KilledBy as u32 {
            // Stopped on request (the shell's `kill`): not the server's
            // failing, so it never counts toward giving up.
            println!("init: restarting {}", slot.name());
            slot.restart_at = Some(now());
            return;
        }
        if now().wrapping_sub(slot.started_at) >= QUICK {
            slot.quick_deaths = 0;
        }
        slot.quick_deaths += 1;
        if slot.quick_deaths >= MAX_QUICK_DEATHS {
            println!(
                "init: {} died {} times in a row soon after starting; giving up",
                slot.name(),
                MAX_QUICK_DEATHS
            );
            return;
        }
        let wait = BACKOFF << (slot.quick_deaths - 1);
        println!(
            "init: restarting {} (attempt {})",
            slot.name(),
            slot.quick_deaths
        );
        slot.restart_at = Some(now() + wait);
    }
}

/// How a module ended, as init's log lines say it (`exited with code 1`).
struct Ended<'a>(&'a ExitStatus);

impl core::fmt::Display for Ended<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let how = match self.0.kind {
            k if k == ExitKind::Exited as u32 => "exited with code",
            k if k == ExitKind::Faulted as u32 => "faulted: vector",
            k if k == ExitKind::KilledBy as u32 => "was stopped by pid",
            _ => "was killed: error code",
        };
        write!(f, "{how} {}", self.0.code)
    }
}

/// Counts one more death against client `pid` (evicting the least
/// suspected when the table is full); returns its deaths now.
fn note_suspect(suspects: &mut [(u32, u32); SUSPECTS], pid: u32) -> u32 {
    let at = suspects
        .iter()
        .position(|&(p, _)| p == pid)
        .unwrap_or_else(|| {
            let (i, _) = suspects
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, n))| *n)
                .unwrap_or((0, &(0, 0)));
            suspects[i] = (pid, 0);
            i
        });
    suspects[at].1 = suspects[at].1.saturating_add(1);
    suspects[at].1
}
