//! Host-side network checks of a booted image: HTTP against the guest's
//! port 80 through its forward on 127.0.0.1, run by a self-test stage with
//! `host = "http"` (`selftest-http.toml`): 10,000 requests on one
//! keep-alive connection, 200 on new connections, 64 concurrent
//! keep-alive connections of 100 requests each while a silent one stays
//! open, and a malformed request.
//!
//! Rules: every connection is to 127.0.0.1 only, every read and write has
//! a timeout, and every loop is bounded in count and in time; concurrent
//! connections are opened one at a time (QEMU's forward listens with a
//! backlog of 1, and SYNs beyond it wait seconds for retransmission). A
//! check that fails says which request and why.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// Sequential requests on one keep-alive connection.
const KEEP_ALIVE_REQUESTS: usize = 10_000;
/// Requests each on a new connection.
const NEW_CONNECTIONS: usize = 200;
/// Concurrent keep-alive connections, and requests on each.
const CONCURRENT: usize = 64;
const CONCURRENT_REQUESTS: usize = 100;
/// Between two concurrent connections' openings.
const OPENING_GAP: Duration = Duration::from_millis(100);
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The whole of the checks.
const TOTAL_LIMIT: Duration = Duration::from_secs(300);

/// The host port of the forward of guest port 80 in QEMU's arguments
/// (`hostfwd=tcp:127.0.0.1:<port>-:80`).
pub fn http_port(args: &[String]) -> Option<u16> {
    args.iter().find_map(|a| {
        a.split(',').find_map(|part| {
            let rest = part.strip_prefix("hostfwd=tcp:127.0.0.1:")?;
            let (host, guest) = rest.split_once("-:")?;
            (guest == "80").then(|| host.parse().ok())?
        })
    })
}

fn connect(port: u16) -> Result<TcpStream, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("connecting to 127.0.0.1:{port}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// One response read from `s`: (status code, body). The body is read to
/// its Content-Length (the server always sends one).
fn response(s: &mut TcpStream) -> Result<(u16, Vec<u8>), String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("reading a response: {e}"))?;
        if n == 0 {
            return Err(format!(
                "the connection closed after {} bytes of a head",
                got.len()
            ));
        }
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not a status line: {:?}", head.lines().next()))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or("a response without Content-Length")?;
    let mut body = got[head_end + 4..].to_vec();
    while body.len() < length {
        let n = s
            .read(&mut buf)
            .map_err(|e| format!("reading a body: {e}"))?;
        if n == 0 {
            return Err(format!(
                "the connection closed {} bytes into a {length}-byte body",
                body.len()
            ));
        }
        body.extend_from_slice(&buf[..n]);
    }
    if body.len() > length {
        return Err(format!("{} bytes past the body", body.len() - length));
    }
    Ok((status, body))
}

/// Sends `request` and checks the answer is `want` with a body that
/// contains `must`.
fn exchange(s: &mut TcpStream, request: &str, want: u16, must: &str) -> Result<(), String> {
    s.write_all(request.as_bytes())
        .map_err(|e| format!("sending {request:?}: {e}"))?;
    let (status, body) = response(s)?;
    if status != want {
        return Err(format!("{request:?} got {status}, not {want}"));
    }
    if !String::from_utf8_lossy(&body).contains(must) {
        return Err(format!("{request:?}: the body lacks {must:?}"));
    }
    Ok(())
}

const PAGE: &str = "GET / HTTP/1.1\r\nHost: mh\r\n\r\n";
const JSON: &str = "GET /status.json HTTP/1.0\r\n\r\n";

fn keep_alive(port: u16, requests: usize) -> Result<(), String> {
    let mut s = connect(port)?;
    for i in 0..requests {
        exchange(&mut s, PAGE, 200, "<h1>MH</h1>").map_err(|e| format!("request {i}: {e}"))?;
    }
    Ok(())
}

/// The HTTP checks against 127.0.0.1:`port`; `Err` names the first that
/// failed.
pub fn http(port: u16) -> Result<(), String> {
    let start = Instant::now();
    // The forward is up before httpd listens: wait (20 s) for an answer.
    let mut first = Err(String::from("no attempt"));
    while start.elapsed() < Duration::from_secs(20) {
        first = connect(port).and_then(|mut s| exchange(&mut s, PAGE, 200, "<h1>MH</h1>"));
        if first.is_ok() {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    first.map_err(|e| format!("httpd never answered: {e}"))?;
    keep_alive(port, KEEP_ALIVE_REQUESTS).map_err(|e| format!("keep-alive: {e}"))?;
    for i in 0..NEW_CONNECTIONS {
        let mut s = connect(port)?;
        exchange(&mut s, JSON, 200, "\"processes\":[")
            .map_err(|e| format!("connection {i}: {e}"))?;
    }
    // A client that connects and never sends must not hold the others up.
    let silent = connect(port)?;
    // Concurrent keep-alive connections, opened one at a time.
    let mut workers = Vec::new();
    for _ in 0..CONCURRENT {
        workers.push(thread::spawn(move || keep_alive(port, CONCURRENT_REQUESTS)));
        thread::sleep(OPENING_GAP);
    }
    for (i, w) in workers.into_iter().enumerate() {
        w.join()
            .map_err(|_| format!("concurrent connection {i}: the thread panicked"))?
            .map_err(|e| format!("concurrent connection {i}: {e}"))?;
    }
    drop(silent);
    // Malformed: 400, and the connection closed.
    let mut s = connect(port)?;
    exchange(&mut s, "this is not http\r\n\r\n", 400, "bad request")?;
    let mut rest = [0u8; 16];
    match s.read(&mut rest) {
        Ok(0) => {}
        Ok(n) => return Err(format!("{n} bytes after the 400 instead of the close")),
        Err(e) => return Err(format!("after the 400: {e}")),
    }
    // Still serving.
    keep_alive(port, 1).map_err(|e| format!("after the malformed request: {e}"))?;
    if start.elapsed() > TOTAL_LIMIT {
        return Err(format!("the checks took {:?}", start.elapsed()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_port_comes_from_the_forward_of_port_80() {
        let args = |s: &str| vec!["-netdev".to_string(), s.to_string()];
        assert_eq!(
            http_port(&args(
                "user,id=net0,hostfwd=tcp:127.0.0.1:8007-:7,hostfwd=tcp:127.0.0.1:41000-:80"
            )),
            Some(41000)
        );
        assert_eq!(
            http_port(&args("user,id=net0,hostfwd=tcp:127.0.0.1:8007-:7")),
            None
        );
        assert_eq!(http_port(&args("user,id=net0")), None);
    }
}
