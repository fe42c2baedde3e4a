//! timer: the timer server. It drives the HPET through a hardware device
//! (made through `platform`), measures the TSC against it (and gives the
//! kernel that rate, `PLATFORM_PORT_TSC_HZ`: one rate for the system), and serves the
//! `timer` user device (`abi::timer`, docs/devices/timer.md): each
//! client's I/O space holds the TSC-to-nanosecond conversion, so libmh
//! reads time without a system call, and clients arm one-shot and
//! periodic alarms that arrive as an IRQ line.
//!
//! Arguments: `exit-when-idle` (exit with status 0 once every client that
//! came has left; for tests), `base=ADDR` (the HPET's physical address,
//! default 0xfed00000), `gsi=N` (its I/O APIC line, default 2).
//!
//! The event loop is libmh::server's: requests are a `match` in
//! `TimerServer::request`, and after every event `idle` fires what is due
//! and sets the HPET for the next deadline.
//!
//! Rules: an alarm fires only when the TSC clock has reached its
//! deadline, whatever the HPET says; a bad request gets an error reply
//! and changes nothing; no client can make the server stop or block (its
//! only sleep is the loop's `irq_wait` on its own two vectors).
#![no_std]
#![no_main]

mod alarms;
mod hpet;

use abi::Error;
use abi::timer::*;
use abi::userdev::{REQUEST_CLONE, REQUEST_CLOSE, REQUEST_OPEN, REQUEST_OUT, Request};
use alarms::Table;
use hpet::Hpet;
use libmh::dev::{self, Served};
use libmh::server::{self, Reply, Server};
use libmh::timer::Clock;
use libmh::{Args, println};

/// Raised when a request is queued.
const V_REQUEST: u32 = 1;
/// The HPET's line.
const V_HPET: u32 = 2;
/// How long the TSC is measured against the HPET at start.
const CALIBRATION_MS: u64 = 20;

libmh::entry!(main);

/// Gives the kernel the TSC rate measured against the HPET, which is
/// better than its boot estimate (a few milliseconds against the PIT),
/// so that the kernel and every clock reader convert with one rate.
fn publish_rate(hz: u64) -> Result<(), Error> {
    let platform = dev::attach(
        dev::REGISTRY,
        "platform",
        dev::RIGHT_READ | dev::RIGHT_WRITE,
    )?;
    let done = platform.port_out(abi::kdev::PLATFORM_PORT_TSC_HZ, 8, hz);
    let _ = platform.detach();
    done
}

struct Options {
    base: u64,
    gsi: u32,
    exit_when_idle: bool,
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse(args: Args) -> Result<Options, &'static str> {
    let mut o = Options {
        base: hpet::DEFAULT_BASE,
        gsi: hpet::DEFAULT_GSI,
        exit_when_idle: false,
    };
    for word in args.iter() {
        if word == "exit-when-idle" {
            o.exit_when_idle = true;
        } else if let Some(v) = word.strip_prefix("base=") {
            o.base = number(v).filter(|b| b % 4096 == 0).ok_or(word)?;
        } else if let Some(v) = word.strip_prefix("gsi=") {
            o.gsi = number(v).filter(|&g| g < 32).ok_or(word)? as u32;
        } else {
            return Err(word);
        }
    }
    Ok(o)
}

fn main(args: Args) -> i32 {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(word) => {
            println!("timer: unknown argument '{word}' (exit-when-idle, base=ADDR, gsi=N)");
            return 2;
        }
    };
    let hpet = match Hpet::open(opts.base, opts.gsi, V_HPET) {
        Ok(h) => h,
        Err(e) => {
            println!(
                "timer: no usable HPET at {:#x} on GSI {}: {e}",
                opts.base, opts.gsi
            );
            return 3;
        }
    };
    let (tsc_hz, mult) = hpet.calibrate(CALIBRATION_MS, TIMER_MULT_SHIFT);
    let clock = Clock {
        tsc_epoch: 0,
        mult,
        tsc_hz,
    };
    // Before registering: whoever finds the timer finds the kernel
    // converting with its rate already.
    let rate = match publish_rate(tsc_hz) {
        Ok(()) => "the system's rate from now on",
        Err(e) => {
            println!("timer: the kernel kept its own TSC rate: {e}");
            "the kernel converts with its own"
        }
    };
    let dev = match dev::create(
        dev::REGISTRY,
        libmh::timer::NAME,
        TIMER_IRQ_LINES,
        TIMER_IOSPACE_SIZE,
        V_REQUEST,
    ) {
        Ok(d) => d,
        Err(e) => {
            println!("timer: cannot create the device: {e}");
            return 4;
        }
    };
    println!(
        "timer: HPET at {:#x} on GSI {}, TSC {} kHz ({rate}); serving '{}'",
        opts.base,
        opts.gsi,
        tsc_hz / 1000,
        libmh::timer::NAME
    );
    // About 280 KiB: on the stack, which grows on demand.
    let mut server = TimerServer {
        hpet: &hpet,
        clock,
        table: Table::new(),
        exit_when_idle: opts.exit_when_idle,
        had_clients: false,
    };
    let extra = 1 << V_HPET;
    match server::serve(dev, V_REQUEST, extra, &mut server) {
        Ok(code) => code,
        Err(e) => {
            println!("timer: stopped: {e}");
            1
        }
    }
}

/// Firing passes one wake-up may make before it lets requests in.
const FIRE_PASSES: u32 = 2;
/// How soon the HPET fires again when alarms fall due faster than passes.
const MIN_REARM_NS: u64 = 50_000;

/// The server's state: the HPET, the clock it publishes, the alarms.
struct TimerServer<'a> {
    hpet: &'a Hpet,
    clock: Clock,
    table: Table,
    exit_when_idle: bool,
    had_clients: bool,
}

impl Server for TimerServer<'_> {
    fn request(&mut self, dev: Served, r: &Request) -> Reply {
        self.had_clients = true;
        match r.kind {
            REQUEST_OPEN | REQUEST_CLONE => {
                // Refused (a full table, or too many for its process):
                // its requests end NotFound.
                let _ = self.table.open(r.client, r.pid);
                let publish = [
                    (TIMER_IO_TSC_EPOCH, self.clock.tsc_epoch),
                    (TIMER_IO_MULT, self.clock.mult),
                    (TIMER_IO_TSC_HZ, self.clock.tsc_hz),
                ];
                for (port, value) in publish {
                    let _ = dev.write_iospace(r.client, port, 8, value);
                }
                if r.kind == REQUEST_CLONE {
                    // The child has none of its parent's alarms.
                    for slot in 0..TIMER_ALARMS_MAX {
                        let _ = dev.write_iospace(r.client, TIMER_IO_FIRED + 8 * slot, 8, 0);
                    }
                }
                Reply::None
            }
            REQUEST_CLOSE => {
                self.table.close(r.client);
                Reply::None
            }
            REQUEST_OUT => {
                let word = match self.out(dev, r) {
                    Ok(v) => v << 32,
                    Err(e) => e.code() as u64,
                };
                Reply::word(TIMER_IO_STATUS, word, TIMER_IRQ_REPLY)
            }
            _ => Reply::None,
        }
    }

    /// After every event (a request may have armed the earliest alarm,
    /// the HPET may have fired): fire what is due and set the HPET again.
    fn idle(&mut self, dev: Served) -> Option<i32> {
        if self.exit_when_idle && self.had_clients && self.table.live() == 0 {
            println!("timer: every client has left; exiting");
            return Some(0);
        }
        self.fire_and_rearm(dev);
        None
    }
}

impl TimerServer<'_> {
    fn out(&mut self, dev: Served, r: &Request) -> Result<u64, Error> {
        if r.size != 8 {
            return Err(Error::InvalidArgument);
        }
        match r.port {
            TIMER_PORT_SYNC => Ok(0),
            TIMER_PORT_PERIOD => self.table.set_period(r.client, r.value),
            TIMER_PORT_ARM => {
                let slot = self.table.arm(r.client, r.value, self.clock.now_ns())?;
                dev.write_iospace(r.client, TIMER_IO_FIRED + 8 * slot as u32, 8, 0)?;
                Ok(slot)
            }
            TIMER_PORT_CANCEL => self.table.cancel(r.client, r.value),
            _ => Err(Error::NotSupported),
        }
    }

    /// Fires what is due and sets the HPET for the next deadline. At most
    /// `FIRE_PASSES` passes: if deadlines keep falling due faster than
    /// they are fired (many short periodic alarms), the HPET is set for
    /// `MIN_REARM_NS` ahead and the server goes back to its requests, so
    /// no alarm load can keep it from serving (late alarms are counted,
    /// never lost).
    fn fire_and_rearm(&mut self, dev: Served) {
        let mut now = self.clock.now_ns();
        for _ in 0..FIRE_PASSES {
            let next = self.table.fire_due(now, |client, slot, count| {
                // A client that has just closed is NotFound: nothing to do.
                let _ = dev.write_iospace(client, TIMER_IO_FIRED + 8 * slot, 8, count);
                let _ = dev.irq(client, TIMER_IRQ_ALARM);
            });
            let Some(deadline) = next else {
                self.hpet.disarm();
                return;
            };
            now = self.clock.now_ns();
            if deadline > now {
                // A little late rather than early: the HPET and the TSC
                // disagree by the calibration's error, and an early
                // interrupt costs a second one. (A client's deadline may
                // be as far as u64::MAX: the sum saturates.)
                let delta = deadline - now;
                if self.hpet.arm_in(delta.saturating_add(delta / 2048)) {
                    return;
                }
                now = self.clock.now_ns();
            }
        }
        let _ = self.hpet.arm_in(MIN_REARM_NS);
    }
}
