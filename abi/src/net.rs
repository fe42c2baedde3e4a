//! The `net` device class: the TCP/IP stack served as a user device (`net`,
//! by `servers/net`; docs/devices/net.md): the interface's configuration
//! and counters, pings, and TCP and UDP sockets.
//!
//! Protocol: every request gets exactly one completion: the result word at
//! [`NET_IO_RESULT`] ([`net_result_word`]: the status and the request's
//! tag) and [`NET_IRQ_DONE`]. STATUS takes the tag as its value, PING an
//! address and the tag ([`net_ping_word`]); SOCKET takes the iova of a
//! [`NetRequest`] in an export of the client's to the device, which names
//! the operation, the socket, the address and the data (another iova in an
//! export). A socket operation never waits: what cannot happen yet is
//! `WouldBlock`, and [`NET_IRQ_READY`] is raised whenever a socket of the
//! client becomes readable or writable ([`NET_IO_READABLE`],
//! [`NET_IO_WRITABLE`]), so a client waits on that line and tries again.
//! A PING waits for its reply; while it does, the client's other requests
//! are answered `Busy`.
//!
//! Rules: the numbers are stable; every word of the I/O space stays below
//! 2^63; an address is an IPv4 address as a `u32` with the first octet in
//! the top byte (10.0.2.15 is `0x0a00_020f`).

use crate::Error;
use crate::completion::TAG_MASK;

/// out (size 8): write the configuration and counters into the I/O space
/// (`NET_IO_ADDRESS` on), then complete. `value`: the tag.
pub const NET_PORT_STATUS: u32 = 0;
/// out (size 8): send an ICMP echo request to the address in
/// [`net_ping_word`] `value` and complete when its reply arrives (the
/// round trip's microseconds at [`NET_IO_PING_US`]), or with `TimedOut`
/// after [`NET_PING_TIMEOUT_MS`].
pub const NET_PORT_PING: u32 = 1;

/// I/O space (u64): the last completion, [`net_result_word`].
pub const NET_IO_RESULT: u32 = 0;
/// I/O space (u64): the interface's address in bits 0–31, its prefix
/// length in bits 32–39 and [`NET_CONFIG_DHCP`] or [`NET_CONFIG_STATIC`]
/// in bits 40–47; 0 while it has none.
pub const NET_IO_ADDRESS: u32 = 8;
/// I/O space (u64): the default gateway (0: none).
pub const NET_IO_GATEWAY: u32 = 16;
/// I/O space (u64): frames received from the interface.
pub const NET_IO_RX_FRAMES: u32 = 24;
/// I/O space (u64): frames sent.
pub const NET_IO_TX_FRAMES: u32 = 32;
/// I/O space (u64): the interface's MAC address (the first byte on the
/// wire in bits 0–7).
pub const NET_IO_MAC: u32 = 40;
/// I/O space (u64): the last successful PING's round trip, microseconds.
pub const NET_IO_PING_US: u32 = 48;
/// I/O space (u64): what the last successful SOCKET request gave: a
/// socket (LISTEN, ACCEPT, CONNECT, UDP_BIND) or a byte count (SEND,
/// RECV, SENDTO, RECVFROM).
pub const NET_IO_VALUE: u32 = 56;
/// I/O space (u64): the peer of the last ACCEPT or RECVFROM: its address
/// in bits 0–31 and its port in bits 32–47.
pub const NET_IO_PEER: u32 = 64;
/// I/O space (u64): bit `s` set while socket `s` has something to take:
/// data or the peer's end (RECV), a connection (ACCEPT), a datagram
/// (RECVFROM), or an error to report.
pub const NET_IO_READABLE: u32 = 72;
/// I/O space (u64): bit `s` set while socket `s` can take data (SEND),
/// and once a CONNECT has succeeded or failed.
pub const NET_IO_WRITABLE: u32 = 80;
/// Bytes of I/O space per client.
pub const NET_IOSPACE_SIZE: u32 = 88;

/// IRQ line raised after each completion.
pub const NET_IRQ_DONE: u32 = 0;
/// IRQ line raised when the client's sockets' readiness changed.
pub const NET_IRQ_READY: u32 = 1;
/// IRQ lines the device has.
pub const NET_IRQ_LINES: u32 = 2;

/// out (size 8): the socket operation the [`NetRequest`] at iova `value`
/// names.
pub const NET_PORT_SOCKET: u32 = 2;

/// [`NetRequest::op`]: listen for TCP connections on `port` (0: refused);
/// gives the listening socket.
pub const NET_OP_TCP_LISTEN: u32 = 1;
/// Take a connection a listening `socket` has (`WouldBlock`: none yet);
/// gives the connection's socket, its peer in [`NET_IO_PEER`].
pub const NET_OP_TCP_ACCEPT: u32 = 2;
/// Connect to `address`:`port`; gives the socket at once, which becomes
/// writable when the connection is made (or failed: a SEND then says
/// why).
pub const NET_OP_TCP_CONNECT: u32 = 3;
/// Send up to `len` bytes at `buffer` on `socket`; gives how many were
/// taken (`WouldBlock`: none could be).
pub const NET_OP_SEND: u32 = 4;
/// Receive up to `len` bytes into `buffer` from `socket`; gives how many
/// (0: the peer has closed its end; `WouldBlock`: nothing yet).
pub const NET_OP_RECV: u32 = 5;
/// Close `socket` (TCP: the connection ends gracefully, with FIN; the
/// socket's number is free at once).
pub const NET_OP_CLOSE: u32 = 6;
/// A UDP socket on local `port` (0: one the server picks).
pub const NET_OP_UDP_BIND: u32 = 7;
/// Send the `len` bytes at `buffer` as one datagram from UDP `socket` to
/// `address`:`port`.
pub const NET_OP_SENDTO: u32 = 8;
/// Receive one datagram from UDP `socket` into `buffer` (at most `len`
/// bytes; the rest of a longer one is lost); gives its length, its sender
/// in [`NET_IO_PEER`].
pub const NET_OP_RECVFROM: u32 = 9;

/// The most sockets one client has open at once (socket numbers are
/// 0 to this − 1): the readiness masks have a bit each, and an I/O-space
/// word keeps below 2^63 (`port_in` returns it as a non-negative value).
pub const NET_SOCKETS_PER_CLIENT: u32 = 63;
/// The most sockets the server has for all its clients together (a
/// listener counts its backlog; their buffers are the server's memory).
pub const NET_SOCKETS_MAX: u32 = 256;
/// Bytes of each TCP connection's receive and send buffers.
pub const NET_TCP_BUFFER: u32 = 16 * 1024;
/// Connections a listening socket holds before they are accepted.
pub const NET_TCP_BACKLOG: u32 = 8;
/// The longest UDP datagram (payload) the server sends or keeps.
pub const NET_UDP_MAX: u32 = 1472;
/// The most bytes one SEND or RECV moves.
pub const NET_TRANSFER_MAX: u32 = NET_TCP_BUFFER;

/// What SOCKET reads (by DMA) from the client's export.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetRequest {
    /// `NET_OP_*`.
    pub op: u32,
    /// The socket the operation is on (ACCEPT: the listener).
    pub socket: u32,
    /// CONNECT, SENDTO: the remote address (first octet in the top byte).
    pub address: u32,
    /// LISTEN, UDP_BIND: the local port; CONNECT, SENDTO: the remote one.
    pub port: u16,
    pub _reserved: u16,
    /// SEND, RECV, SENDTO, RECVFROM: the data, an iova in an export of
    /// the client's to the device.
    pub buffer: u64,
    /// Bytes at `buffer` (at most [`NET_TRANSFER_MAX`]).
    pub len: u32,
    /// Echoed in the completion (its low 31 bits).
    pub tag: u32,
}

/// [`NET_IO_ADDRESS`]: the address came from a DHCP lease.
pub const NET_CONFIG_DHCP: u64 = 1;
/// [`NET_IO_ADDRESS`]: the static fallback (no lease in time).
pub const NET_CONFIG_STATIC: u64 = 2;

/// How long a PING waits for its reply.
pub const NET_PING_TIMEOUT_MS: u64 = 2000;
/// The bits of a tag that a completion carries.
pub const NET_TAG_MASK: u32 = TAG_MASK;

/// The value of a PING of `address` tagged `tag`.
pub const fn net_ping_word(address: u32, tag: u32) -> u64 {
    (tag & NET_TAG_MASK) as u64 | (address as u64) << 32
}

/// A PING's value as (address, tag).
pub const fn net_ping_of(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32 & NET_TAG_MASK)
}

/// The result word for the completion tagged `tag`.
pub const fn net_result_word(tag: u32, result: Result<(), Error>) -> u64 {
    crate::completion::result_word(tag, result)
}

/// A result word as (tag, result); an unknown status is `InvalidArgument`.
pub const fn net_decode_result(word: u64) -> (u32, Result<(), Error>) {
    crate::completion::decode_result(word)
}

/// An [`NET_IO_ADDRESS`] word as (address, prefix length, how it came).
pub const fn net_address_of(word: u64) -> (u32, u8, u64) {
    (word as u32, (word >> 32) as u8, (word >> 40) & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let w = net_ping_word(0x0a00_0202, 9);
        assert_eq!(net_ping_of(w), (0x0a00_0202, 9));
        assert_eq!(
            net_decode_result(net_result_word(3, Err(Error::TimedOut))),
            (3, Err(Error::TimedOut))
        );
        assert_eq!(
            net_decode_result(net_result_word(u32::MAX, Ok(()))),
            (NET_TAG_MASK, Ok(()))
        );
        let addr = 0x0a00_020f | 24 << 32 | NET_CONFIG_DHCP << 40;
        assert_eq!(net_address_of(addr), (0x0a00_020f, 24, NET_CONFIG_DHCP));
    }
}
