//! httpd: the status page of the running system over HTTP, on port 80 of
//! the `net` device: `/` as HTML, `/status.json` as JSON (processes,
//! devices, memory, uptime).
//!
//! One process, one event loop, no waiting on any one client: each
//! connection has its head buffer and its pending output, every read and
//! write is a `try_`, and the loop sleeps on the readiness line only when
//! nothing moved. Keep-alive as HTTP/1.1 says; a malformed request gets
//! 400 and the connection closed; a connection that says nothing for 10 s
//! while every slot is taken is closed to make room, so a client that
//! connects and never sends cannot lock others out.
//!
//! Authority: it holds `net` and a read-only `proc` (opened without KILL)
//! and lists the registry; no request can start, stop or change anything.
#![no_std]
#![no_main]

extern crate alloc;

mod http;
mod status;

use abi::Error;
use alloc::vec::Vec;
use arrayvec::ArrayVec;
use http::{HEAD_MAX, Parsed};
use libmh::net::{Net, TcpStream};
use libmh::{Args, println, process};

const V_DONE: u32 = 1;
const V_READY: u32 = 2;
const AREA: u64 = 0x5d00_0000_0000;
/// Connections served at once: the listener takes one of the sockets a
/// `net` client has.
const CONNECTIONS: usize = abi::net::NET_SOCKETS_PER_CLIENT as usize - 1;
/// How long a connection may say nothing while others wait for a slot.
const IDLE_SECS: u64 = 10;

struct Conn<'a> {
    stream: TcpStream<'a>,
    head: Vec<u8>,
    out: Vec<u8>,
    /// Close once `out` is sent.
    closing: bool,
    last_tick: u64,
}

libmh::entry!(main);

fn ticks() -> (u64, u64) {
    process::sys_info().map_or((0, 100), |i| (i.ticks, i.tick_hz.max(1)))
}

fn main(args: Args) -> i32 {
    let port = match args.iter().next().map(str::parse::<u16>) {
        None => 80,
        Some(Ok(p)) if p != 0 => p,
        Some(_) => {
            println!("httpd: usage: httpd [port]");
            return 2;
        }
    };
    // The TCP/IP server may still be starting: wait for it (30 s).
    let start = ticks();
    let net = loop {
        match Net::open(V_DONE).and_then(|n| n.with_sockets(AREA, V_READY)) {
            Ok(n) => break n,
            Err(Error::NotFound) if ticks().0 - start.0 < 30 * start.1 => process::yield_now(),
            Err(e) => {
                println!("httpd: no net device: {e}");
                return 3;
            }
        }
    };
    let listener = match net.tcp_listen(port) {
        Ok(l) => l,
        Err(e) => {
            println!("httpd: cannot listen on port {port}: {e}");
            return 4;
        }
    };
    println!("httpd: serving the status page on port {port}");
    let mut conns: ArrayVec<Conn, CONNECTIONS> = ArrayVec::new();
    loop {
        let mut moved = false;
        let (now, hz) = ticks();
        if conns.is_full() {
            // Make room: the longest-silent connection, if it is idle long.
            if let Some(i) = (0..conns.len()).min_by_key(|&i| conns[i].last_tick)
                && now - conns[i].last_tick >= IDLE_SECS * hz
                && conns[i].out.is_empty()
            {
                let c = conns.swap_remove(i);
                let _ = c.stream.close();
            }
        }
        while !conns.is_full() {
            match listener.try_accept() {
                Ok((stream, _)) => {
                    conns.push(Conn {
                        stream,
                        head: Vec::new(),
                        out: Vec::new(),
                        closing: false,
                        last_tick: now,
                    });
                    moved = true;
                }
                Err(Error::WouldBlock) => break,
                Err(Error::DeviceGone) => return 5,
                Err(_) => break,
            }
        }
        let mut i = 0;
        while i < conns.len() {
            let c = &mut conns[i];
            let (progress, done) = serve(c, now);
            moved |= progress;
            if done {
                let c = conns.swap_remove(i);
                let _ = c.stream.close();
            } else {
                i += 1;
            }
        }
        if !moved && net.wait_ready().is_err() {
            println!("httpd: the net device is gone");
            return 5;
        }
    }
}

/// One step of connection `c`: send what is pending, read what came,
/// answer whole requests. (progress made, connection finished).
fn serve(c: &mut Conn, now: u64) -> (bool, bool) {
    let mut progress = false;
    if !c.out.is_empty() {
        match c.stream.try_write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
                progress = n > 0;
                c.last_tick = now;
            }
            Err(Error::WouldBlock) => {}
            Err(_) => return (true, true),
        }
    }
    if c.closing {
        return (progress, c.out.is_empty());
    }
    if c.out.is_empty() {
        let mut buf = [0u8; 1024];
        match c.stream.try_read(&mut buf) {
            Ok(0) => return (true, true),
            Ok(n) => {
                c.head.extend_from_slice(&buf[..n]);
                c.last_tick = now;
                progress = true;
            }
            Err(Error::WouldBlock) => {}
            Err(_) => return (true, true),
        }
    }
    // Answer each whole request in the buffer (pipelined ones in order).
    while c.out.is_empty() && !c.closing {
        match http::parse(&c.head) {
            Parsed::Partial => break,
            Parsed::Bad => {
                respond(c, 400, "text/plain", b"bad request\n", false);
                c.head.clear();
            }
            Parsed::Request { req, len } => {
                let keep_alive = req.keep_alive;
                let (status, kind, body) = route(req.method, req.target);
                c.head.drain(..len);
                respond(c, status, kind, body.as_bytes(), keep_alive);
                progress = true;
            }
        }
        if c.head.len() > HEAD_MAX {
            c.head.clear();
        }
    }
    (progress, false)
}

fn route(method: &str, target: &str) -> (u16, &'static str, alloc::string::String) {
    use alloc::string::ToString;
    let path = target.split('?').next().unwrap_or("/");
    match (method, path) {
        ("GET", "/") | ("GET", "/index.html") => (200, "text/html; charset=utf-8", status::html()),
        ("GET", "/status.json") => (200, "application/json", status::json()),
        ("GET", _) => (404, "text/plain", "not found\n".to_string()),
        _ => (405, "text/plain", "only GET\n".to_string()),
    }
}

fn respond(c: &mut Conn, status: u16, kind: &str, body: &[u8], keep_alive: bool) {
    let mut head = alloc::string::String::new();
    let _ = http::head(&mut head, status, kind, body.len(), keep_alive);
    c.out.extend_from_slice(head.as_bytes());
    c.out.extend_from_slice(body);
    c.closing = !keep_alive;
}
