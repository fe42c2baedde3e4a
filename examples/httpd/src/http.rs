//! Just enough HTTP/1.1 for a status page: a request's head parsed out of
//! the bytes a connection has sent, and a response's head.
//!
//! Rules: a head longer than `HEAD_MAX` bytes, a request line that is not
//! `METHOD SP TARGET SP HTTP/1.x`, or a body (`Content-Length` other than
//! 0, or chunked) gets `400` and the connection is closed; nothing here
//! trusts a length the client sends.

/// The longest request head the server takes.
pub const HEAD_MAX: usize = 2048;

/// A request's head: what the server acts on.
pub struct Request<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

/// What `parse` made of the bytes so far.
pub enum Parsed<'a> {
    /// Not a whole head yet.
    Partial,
    /// A head of `len` bytes.
    Request { req: Request<'a>, len: usize },
    /// Not HTTP the server takes: answer 400 and close.
    Bad,
}

/// Parses the head at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed<'_> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if bytes.len() >= HEAD_MAX {
            Parsed::Bad
        } else {
            Parsed::Partial
        };
    };
    if end + 4 > HEAD_MAX {
        return Parsed::Bad;
    }
    let Ok(head) = core::str::from_utf8(&bytes[..end]) else {
        return Parsed::Bad;
    };
    let mut lines = head.split("\r\n");
    let mut words = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Parsed::Bad;
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Parsed::Bad,
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Parsed::Bad;
    }
    let mut keep_alive = http11;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Bad;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if (name.eq_ignore_ascii_case("content-length") && value != "0")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            // A status page takes no bodies.
            return Parsed::Bad;
        }
    }
    Parsed::Request {
        req: Request {
            method,
            target,
            keep_alive,
        },
        len: end + 4,
    }
}

/// A response head for `status` with a body of `len` bytes of `kind`.
pub fn head(
    out: &mut impl core::fmt::Write,
    status: u16,
    kind: &str,
    len: usize,
    keep_alive: bool,
) -> core::fmt::Result {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len}\r\n\
         Cache-Control: no-store\r\nConnection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    )
}
