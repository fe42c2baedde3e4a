//! The `net` device class: the TCP/IP stack served as a user device (`net`,
//! by `servers/net`; docs/devices/net.md). Today it tells its clients the
//! interface's configuration and counters and pings; sockets come next.
//!
//! Protocol: every request takes a tag in its value's low 31 bits (PING
//! also an address, see [`net_ping_word`]) and gets exactly one
//! completion: the result word at [`NET_IO_RESULT`] ([`net_result_word`]:
//! the status and the tag) and [`NET_IRQ_DONE`]. A client has one request
//! at a time in flight; the server answers a second one at once with
//! `Busy`.
//!
//! Rules: the numbers are stable; every word of the I/O space stays below
//! 2^63; an address is an IPv4 address as a `u32` with the first octet in
//! the top byte (10.0.2.15 is `0x0a00_020f`).

use crate::Error;

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
/// Bytes of I/O space per client.
pub const NET_IOSPACE_SIZE: u32 = 56;

/// IRQ line raised after each completion.
pub const NET_IRQ_DONE: u32 = 0;
/// IRQ lines the device has.
pub const NET_IRQ_LINES: u32 = 1;

/// [`NET_IO_ADDRESS`]: the address came from a DHCP lease.
pub const NET_CONFIG_DHCP: u64 = 1;
/// [`NET_IO_ADDRESS`]: the static fallback (no lease in time).
pub const NET_CONFIG_STATIC: u64 = 2;

/// How long a PING waits for its reply.
pub const NET_PING_TIMEOUT_MS: u64 = 2000;
/// The bits of a tag that a completion carries.
pub const NET_TAG_MASK: u32 = 0x7fff_ffff;

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
    let status = match result {
        Ok(()) => 0,
        Err(e) => e.code() as u64,
    };
    status | ((tag & NET_TAG_MASK) as u64) << 32
}

/// A result word as (tag, result); an unknown status is `InvalidArgument`.
pub const fn net_decode_result(word: u64) -> (u32, Result<(), Error>) {
    let tag = (word >> 32) as u32 & NET_TAG_MASK;
    let status = word as u32;
    if status == 0 {
        return (tag, Ok(()));
    }
    match Error::from_code(status) {
        Some(e) => (tag, Err(e)),
        None => (tag, Err(Error::InvalidArgument)),
    }
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
