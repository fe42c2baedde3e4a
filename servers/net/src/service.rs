//! The `net` device's requests (`abi::net`), and the loop's work between
//! them: running the stack and arming the timer for its next deadline.
//!
//! Rules: every request gets one completion; a client has at most one
//! request in flight (a PING waits for its reply), a second one is
//! `Busy`; a completion for a client that left is dropped. The timer is
//! armed only when the stack's next deadline is earlier than the alarm
//! already set, so alarms do not pile up; an alarm that fires early only
//! costs a look. A timer that goes away (init restarts it) costs the
//! stack its deadlines until it is back, never the server.

use crate::sockets::Sockets;
use crate::stack::{PingEnd, Stack};
use abi::Error;
use abi::net::*;
use abi::userdev::{REQUEST_CLOSE, REQUEST_OUT, Request};
use libmh::dev::Served;
use libmh::nic::Nic;
use libmh::println;
use libmh::server::{Reply, Server};
use libmh::timer::Timer;
use smoltcp::wire::Ipv4Address;

/// The exit status when the interface went away.
const EXIT_INTERFACE_GONE: i32 = 5;

pub struct Service {
    stack: Stack,
    sockets: Sockets,
    /// The timer, or `None` while it is away (restarted by init): the
    /// server then runs on frames and requests alone, and opens it again
    /// at each wake-up until it is back.
    timer: Option<Timer>,
    reply_vector: u32,
    alarm_vector: u32,
    /// The server's own clock: the TSC at start and its rate (the
    /// system's, from the timer's clock), so a restarted timer, whose
    /// clock may start elsewhere, does not move it.
    tsc_start: u64,
    tsc_hz: u64,
    /// The deadline an alarm is set for (µs since the epoch).
    armed: Option<i64>,
    /// The client whose PING is in flight.
    pinging: Option<u64>,
    stop: Option<i32>,
}

fn ipv4_word(a: Ipv4Address) -> u64 {
    u64::from(u32::from_be_bytes(a.octets()))
}

impl Service {
    pub fn new(nic: Nic, timer: Timer, reply_vector: u32, alarm_vector: u32) -> Service {
        let tsc_hz = timer.clock().tsc_hz.max(1);
        Service {
            stack: Stack::new(crate::phy::Interface::new(nic), 0),
            sockets: Sockets::new(),
            timer: Some(timer),
            reply_vector,
            alarm_vector,
            tsc_start: libmh::timer::rdtsc(),
            tsc_hz,
            armed: None,
            pinging: None,
            stop: None,
        }
    }

    fn now_us(&self) -> i64 {
        let ticks = libmh::timer::rdtsc().saturating_sub(self.tsc_start);
        (u128::from(ticks) * 1_000_000 / u128::from(self.tsc_hz)) as i64
    }

    /// The configuration and counters into `client`'s I/O space.
    fn status(&self, dev: Served, client: u64) {
        let address = self.stack.address().map_or(0, |(a, prefix)| {
            ipv4_word(a) | u64::from(prefix) << 32 | self.stack.config << 40
        });
        let d = &self.stack.dev;
        let mac = d
            .nic
            .mac()
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
        let words = [
            (NET_IO_ADDRESS, address),
            (NET_IO_GATEWAY, self.stack.gateway.map_or(0, ipv4_word)),
            (NET_IO_RX_FRAMES, d.rx_frames),
            (NET_IO_TX_FRAMES, d.tx_frames),
            (NET_IO_MAC, mac),
        ];
        for (port, value) in words {
            let _ = dev.write_iospace(client, port, 8, value);
        }
    }

    fn out(&mut self, dev: Served, r: &Request) -> Reply {
        let done =
            |tag, result| Reply::word(NET_IO_RESULT, net_result_word(tag, result), NET_IRQ_DONE);
        if r.size != 8 {
            return done(0, Err(Error::InvalidArgument));
        }
        if self.pinging == Some(r.client) {
            return done(r.value as u32, Err(Error::Busy));
        }
        match r.port {
            NET_PORT_STATUS => {
                self.status(dev, r.client);
                done(r.value as u32, Ok(()))
            }
            NET_PORT_PING => {
                let (address, tag) = net_ping_of(r.value);
                let to = Ipv4Address::from_bits(address);
                let now = self.now_us();
                match self.stack.ping(to, now, (r.client, tag)) {
                    Ok(()) => {
                        self.pinging = Some(r.client);
                        Reply::None
                    }
                    Err(e) => done(tag, Err(e)),
                }
            }
            NET_PORT_SOCKET => {
                let mut req = NetRequest::default();
                // SAFETY: NetRequest is repr(C) plain integers (any bytes
                // are a value); the view lives only for the copy.
                let bytes = unsafe {
                    core::slice::from_raw_parts_mut(
                        (&raw mut req).cast::<u8>(),
                        size_of::<NetRequest>(),
                    )
                };
                if let Err(e) = dev.dma_read(r.client, r.value, bytes) {
                    return done(0, Err(e));
                }
                let result = self.sockets.op(&mut self.stack, dev, r.client, &req);
                let result = result.map(|d| {
                    let _ = dev.write_iospace(r.client, NET_IO_VALUE, 8, d.value);
                    if let Some(peer) = d.peer {
                        let _ = dev.write_iospace(r.client, NET_IO_PEER, 8, peer);
                    }
                });
                done(req.tag, result)
            }
            _ => done(r.value as u32, Err(Error::NotSupported)),
        }
    }

    /// Tells the pinging client how its ping ended.
    fn ping_ended(&mut self, dev: Served, end: PingEnd) {
        let ((client, tag), result) = match end {
            PingEnd::Reply { cookie, us } => {
                let _ = dev.write_iospace(cookie.0, NET_IO_PING_US, 8, us);
                (cookie, Ok(()))
            }
            PingEnd::TimedOut { cookie } => (cookie, Err(Error::TimedOut)),
        };
        self.pinging = None;
        let word = net_result_word(tag, result);
        if dev.write_iospace(client, NET_IO_RESULT, 8, word).is_ok() {
            let _ = dev.irq(client, NET_IRQ_DONE);
        }
    }

    /// Runs the stack until nothing is due at once (a few rounds at most),
    /// then sets the alarm for its next deadline, or comes straight back
    /// (its own alarm vector raised) if work is still due.
    fn run_stack(&mut self, dev: Served) {
        let mut delay = None;
        for _ in 0..8 {
            let now = self.now_us();
            if let Some(end) = self.stack.poll(now) {
                self.ping_ended(dev, end);
            }
            self.sockets.after_poll(&mut self.stack, dev);
            delay = self.stack.delay_us(now);
            if delay != Some(0) {
                break;
            }
        }
        let Some(delay) = delay else {
            return;
        };
        let now = self.now_us();
        let due = now.saturating_add(delay as i64);
        if delay == 0 {
            // Requests and frames get their turn first; the loop comes
            // back at once.
            let _ = libmh::process::irq_raise(self.alarm_vector);
            return;
        }
        if self.timer.is_none() {
            self.timer = Timer::open(self.reply_vector, self.alarm_vector).ok();
            self.armed = None;
        }
        let Some(timer) = &self.timer else {
            return;
        };
        if self.armed.is_none_or(|a| a > due) {
            let at_ns = timer.now_ns().saturating_add(delay * 1000);
            match timer.alarm_once(at_ns) {
                Ok(_) => self.armed = Some(due),
                // Already past (the clock moved on): come back at once.
                Err(Error::InvalidArgument) => {
                    let _ = libmh::process::irq_raise(self.alarm_vector);
                }
                // Every alarm slot is set: one of them fires soon, and the
                // loop arms again then.
                Err(Error::LimitReached | Error::Busy) => {}
                Err(e) => {
                    // Gone (init restarts it): without it until it is back.
                    println!("net: the timer went away ({e}); waiting for it");
                    self.timer = None;
                    self.armed = None;
                }
            }
        }
    }
}

impl Server for Service {
    fn request(&mut self, dev: Served, r: &Request) -> Reply {
        if let Some(code) = self.stop {
            return Reply::Stop(code);
        }
        match r.kind {
            REQUEST_OUT => self.out(dev, r),
            REQUEST_CLOSE => {
                if self.pinging == Some(r.client) {
                    // Its ping runs out unheard.
                    self.pinging = None;
                }
                self.sockets.client_left(&mut self.stack, r.client);
                Reply::None
            }
            _ => Reply::None,
        }
    }

    fn interrupt(&mut self, _dev: Served, vectors: u64) {
        if vectors & 1 << self.alarm_vector != 0 {
            self.armed = None;
        }
    }

    fn idle(&mut self, dev: Served) -> Option<i32> {
        self.run_stack(dev);
        if self.stack.dev.nic.handle().info().is_err() {
            println!("net: the interface is gone; stopping");
            return Some(EXIT_INTERFACE_GONE);
        }
        self.stop
    }
}
