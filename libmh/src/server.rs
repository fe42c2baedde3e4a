//! The server framework: the event loop every user-device server needs, so
//! that a server is mostly a `match` on requests.
//!
//! A server implements [`Server`]: `request` gets each request and says
//! how to answer it ([`Reply`]); `interrupt` gets the other vectors the
//! server asked to wait on (its hardware, a timer); `idle` runs whenever
//! the request queue is empty, just before the loop sleeps (the place for
//! work that follows any event: re-arming hardware, draining a log).
//! [`serve`] runs the loop. With no other vectors it uses the fused calls — the answer and
//! the wait for the next request are one system call, and the kernel's
//! IPC fast path applies; with other vectors it waits on all of them at
//! once and drains the request queue after each wake.
//!
//! Rules: a reply that fails (a client that left meanwhile, say) is the
//! client's problem, not the server's: the loop goes on; only a failing
//! poll — the device gone — ends it, with the error.

use crate::dev::{Request, Served};
use crate::process;
use abi::Error;

/// How to answer one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to say (opens, closes, or a request answered later).
    None,
    /// Write `value` (`size` bytes) at `port` of the client's I/O space,
    /// then raise `line` on it if given.
    Answer {
        port: u32,
        size: u32,
        value: u64,
        line: Option<u32>,
    },
    /// Raise `line` on the client without writing anything.
    Raise(u32),
    /// Stop serving: `serve` returns this exit code.
    Stop(i32),
}

impl Reply {
    /// An 8-byte answer at `port`, announced on `line`.
    pub const fn word(port: u32, value: u64, line: u32) -> Reply {
        Reply::Answer {
            port,
            size: 8,
            value,
            line: Some(line),
        }
    }
}

/// A user-device server.
pub trait Server {
    /// One request from a client; `dev` is the device (for DMA and for
    /// answering other clients than the one asking).
    fn request(&mut self, dev: Served, r: &Request) -> Reply;

    /// Vectors of the extra mask given to [`serve`] that were raised.
    fn interrupt(&mut self, _dev: Served, _vectors: u64) {}

    /// The queue is empty and the loop is about to sleep; `Some(code)`
    /// stops serving with that code. Called only by a server with extra
    /// vectors (a pure request server sleeps inside the fused reply).
    fn idle(&mut self, _dev: Served) -> Option<i32> {
        None
    }
}

/// Requests a server with extra vectors takes in a row before it looks at
/// those vectors and its `idle` work again.
const BATCH: u32 = 32;

/// Runs `server` on `dev` until it answers [`Reply::Stop`] (its code is
/// returned) or the device fails. `vector` is the device's own vector
/// (given to `dev::create`); `extra` the other vectors to wait on (0 for
/// a pure request server).
pub fn serve<S: Server>(
    dev: Served,
    vector: u32,
    extra: u64,
    server: &mut S,
) -> Result<i32, Error> {
    if extra == 0 {
        return serve_requests(dev, server);
    }
    serve_many(&[(dev, vector)], extra, server)
}

/// [`serve`] for a server of several devices (each with its own vector,
/// given to `dev::create`): requests are taken from each in turn, at most
/// `BATCH` from one before the next has its go; `server.request` is told
/// which device each came from; `interrupt` and `idle` are given the
/// first. Stops as `serve` does.
pub fn serve_many<S: Server>(
    devices: &[(Served, u32)],
    extra: u64,
    server: &mut S,
) -> Result<i32, Error> {
    let Some(&(first, _)) = devices.first() else {
        return Err(Error::InvalidArgument);
    };
    let mask = devices.iter().fold(extra, |m, &(_, v)| m | 1 << v);
    // Which devices may have requests: all at first, then those whose
    // vector was raised (the kernel raises it for every request queued
    // while the server is not asleep in `dev_poll` on that device), so an
    // idle device costs no poll.
    let mut ready = mask;
    loop {
        for &(dev, vector) in devices.iter().filter(|&&(_, v)| ready & 1 << v != 0) {
            for taken in 0.. {
                if taken == BATCH {
                    // More may be waiting: come straight back for it, but
                    // let the other devices, vectors and `idle` have their
                    // turn first, so a flood of requests starves nothing.
                    process::irq_raise(vector)?;
                    break;
                }
                let r = match dev.try_poll() {
                    Ok(r) => r,
                    Err(Error::WouldBlock) => break,
                    Err(e) => return Err(e),
                };
                if let Some(code) = answer(dev, &r, server.request(dev, &r)) {
                    return Ok(code);
                }
            }
        }
        if let Some(code) = server.idle(first) {
            return Ok(code);
        }
        let got = process::irq_wait(mask)?;
        if got & extra != 0 {
            server.interrupt(first, got & extra);
        }
        ready = got;
    }
}

/// The loop of a server that only answers requests: fused answer + poll.
fn serve_requests<S: Server>(dev: Served, server: &mut S) -> Result<i32, Error> {
    let mut next = dev.poll();
    loop {
        let r = next?;
        next = match server.request(dev, &r) {
            Reply::Answer {
                port,
                size,
                value,
                line,
            } => match dev.reply_poll(r.client, port, size, value, line) {
                // The answer could not be given (the client left, or asked
                // for something its I/O space does not have): poll on.
                Err(Error::NotFound | Error::InvalidArgument) => dev.poll(),
                other => other,
            },
            reply => {
                if let Some(code) = answer(dev, &r, reply) {
                    return Ok(code);
                }
                dev.poll()
            }
        };
    }
}

/// Gives `reply` to the client of `r`; `Some(code)` to stop.
fn answer(dev: Served, r: &Request, reply: Reply) -> Option<i32> {
    match reply {
        Reply::None => {}
        Reply::Answer {
            port,
            size,
            value,
            line,
        } => {
            let _ = dev.write_iospace(r.client, port, size, value);
            if let Some(line) = line {
                let _ = dev.irq(r.client, line);
            }
        }
        Reply::Raise(line) => {
            let _ = dev.irq(r.client, line);
        }
        Reply::Stop(code) => return Some(code),
    }
    None
}
