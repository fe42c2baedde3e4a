//! The timer device's client (`abi::timer`, docs/devices/timer.md): time
//! without a system call, and alarms.
//!
//! [`Timer::open`] attaches the `timer` device, waits for its first reply
//! and reads the clock's parameters from the I/O space once; from then on
//! [`Clock::now_ns`] is `rdtsc` and a multiplication, no system call.
//! Alarms are armed by request (one round trip each) and fire on the
//! alarm vector; the per-alarm counters in the I/O space are the truth,
//! the vector only a wake-up.
//!
//! Rules: every request is a `port_out_wait` on the reply vector, so a
//! reply is never left pending; waiting for an alarm checks its counter
//! before each sleep, so a firing that comes between the check and the
//! sleep still wakes it (its vector is pending).

use crate::dev::{self, Handle, REGISTRY};
use crate::process;
use abi::Error;
use abi::timer::*;

/// The name the timer server registers.
pub const NAME: &str = "timer";

/// Reads the TSC.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads a counter; the kernel leaves CR4.TSD clear,
    // so it is allowed in user mode.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The timer server's clock: what converts a TSC reading into nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub tsc_epoch: u64,
    pub mult: u64,
    pub tsc_hz: u64,
}

impl Clock {
    /// Reads the parameters from a timer handle's I/O space (three
    /// `port_in`s); `NotSupported` if the server has not published them.
    pub fn read(h: Handle) -> Result<Clock, Error> {
        let clock = Clock {
            tsc_epoch: h.port_in(TIMER_IO_TSC_EPOCH, 8)?,
            mult: h.port_in(TIMER_IO_MULT, 8)?,
            tsc_hz: h.port_in(TIMER_IO_TSC_HZ, 8)?,
        };
        if clock.mult == 0 {
            return Err(Error::NotSupported);
        }
        Ok(clock)
    }

    /// Nanoseconds now, without a system call.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        timer_tsc_to_ns(rdtsc(), self.tsc_epoch, self.mult)
    }

    /// Nanoseconds at TSC reading `tsc`.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        timer_tsc_to_ns(tsc, self.tsc_epoch, self.mult)
    }
}

/// An armed alarm: its slot, first deadline and period (0: one-shot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alarm {
    pub slot: u32,
    pub first_ns: u64,
    pub period_ns: u64,
}

impl Alarm {
    /// The `k`-th deadline (k from 1): `first + (k - 1) * period`.
    pub fn deadline(&self, k: u64) -> u64 {
        let steps = k.saturating_sub(1).saturating_mul(self.period_ns);
        self.first_ns.saturating_add(steps)
    }
}

/// An open timer device.
#[derive(Clone, Copy, Debug)]
pub struct Timer {
    handle: Handle,
    clock: Clock,
    reply_vector: u32,
    alarm_vector: u32,
}

impl Timer {
    /// Attaches `timer` through the registry; replies come on
    /// `reply_vector`, alarms on `alarm_vector` (two different vectors
    /// the program does not use otherwise).
    pub fn open(reply_vector: u32, alarm_vector: u32) -> Result<Timer, Error> {
        Timer::open_at(REGISTRY, NAME, reply_vector, alarm_vector)
    }

    /// [`Timer::open`] for a device called `name`, found through
    /// `registry`.
    pub fn open_at(
        registry: Handle,
        name: &str,
        reply_vector: u32,
        alarm_vector: u32,
    ) -> Result<Timer, Error> {
        if reply_vector == alarm_vector {
            return Err(Error::InvalidArgument);
        }
        let rights = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ;
        let handle = dev::attach(registry, name, rights)?;
        let opened = (|| {
            handle.irq_map(TIMER_IRQ_REPLY, reply_vector)?;
            handle.irq_map(TIMER_IRQ_ALARM, alarm_vector)?;
            let mut t = Timer {
                handle,
                clock: Clock {
                    tsc_epoch: 0,
                    mult: 0,
                    tsc_hz: 0,
                },
                reply_vector,
                alarm_vector,
            };
            t.request(TIMER_PORT_SYNC, 0)?;
            t.clock = Clock::read(handle)?;
            Ok(t)
        })();
        if opened.is_err() {
            let _ = handle.detach();
        }
        opened
    }

    /// The device handle (for raw port access).
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The clock, to read time without a `Timer`.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Nanoseconds now, without a system call.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// One request: writes `value` to `port` and waits for the reply.
    pub fn request(&self, port: u32, value: u64) -> Result<u64, Error> {
        self.handle
            .port_out_wait(port, 8, value, 1 << self.reply_vector)?;
        let reply = self.handle.port_in(TIMER_IO_STATUS, 8)?;
        timer_decode_reply(reply).map(|v| v as u64)
    }

    /// Arms a one-shot alarm at `deadline_ns` (which must be in the
    /// future: `InvalidArgument` otherwise).
    pub fn alarm_once(&self, deadline_ns: u64) -> Result<Alarm, Error> {
        let slot = checked_slot(self.request(TIMER_PORT_ARM, deadline_ns)?)?;
        Ok(Alarm {
            slot: slot as u32,
            first_ns: deadline_ns,
            period_ns: 0,
        })
    }

    /// Arms a periodic alarm: first at `first_ns`, then every `period_ns`
    /// (at least `TIMER_PERIOD_MIN`).
    pub fn alarm_periodic(&self, first_ns: u64, period_ns: u64) -> Result<Alarm, Error> {
        if period_ns == 0 {
            return Err(Error::InvalidArgument);
        }
        self.request(TIMER_PORT_PERIOD, period_ns)?;
        let slot = checked_slot(self.request(TIMER_PORT_ARM, first_ns)?)?;
        Ok(Alarm {
            slot: slot as u32,
            first_ns,
            period_ns,
        })
    }

    /// Disarms `alarm` (`NotFound` if a one-shot alarm already fired).
    pub fn cancel(&self, alarm: Alarm) -> Result<(), Error> {
        self.request(TIMER_PORT_CANCEL, alarm.slot as u64)
            .map(|_| ())
    }

    /// How many deadlines of `alarm` have passed (one `port_in`).
    pub fn fired(&self, alarm: Alarm) -> Result<u64, Error> {
        self.handle.port_in(TIMER_IO_FIRED + 8 * alarm.slot, 8)
    }

    /// Sleeps until at least `count` deadlines of `alarm` have passed;
    /// returns how many have.
    pub fn wait(&self, alarm: Alarm, count: u64) -> Result<u64, Error> {
        loop {
            let fired = self.fired(alarm)?;
            if fired >= count {
                return Ok(fired);
            }
            process::irq_wait(1 << self.alarm_vector)?;
        }
    }

    /// Sleeps until the clock reads at least `deadline_ns`.
    pub fn sleep_until(&self, deadline_ns: u64) -> Result<(), Error> {
        if self.now_ns() >= deadline_ns {
            return Ok(());
        }
        match self.alarm_once(deadline_ns) {
            Ok(alarm) => self.wait(alarm, 1).map(|_| ()),
            // The deadline passed while the request travelled.
            Err(Error::InvalidArgument) if self.now_ns() >= deadline_ns => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sleeps for `ns` nanoseconds.
    pub fn sleep_ns(&self, ns: u64) -> Result<(), Error> {
        self.sleep_until(self.now_ns().saturating_add(ns))
    }

    /// Detaches the device; the server forgets this client's alarms.
    pub fn close(self) -> Result<(), Error> {
        self.handle.detach()
    }
}

/// An alarm slot as the server replied it, checked (a server is not
/// trusted to stay inside `TIMER_ALARMS_MAX`).
fn checked_slot(slot: u64) -> Result<u64, Error> {
    if slot < u64::from(TIMER_ALARMS_MAX) {
        Ok(slot)
    } else {
        Err(Error::InvalidArgument)
    }
}
