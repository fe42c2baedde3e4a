//! The `net` device's client (`abi::net`, docs/devices/net.md): the TCP/IP
//! server's view of the interface, and pings.
//!
//! Rules: one request at a time, each waiting for its own completion (its
//! tag must come back), so the completion vector is never left pending.

use crate::dev::{self, Handle, REGISTRY};
use abi::Error;
use abi::net::*;
use core::cell::Cell;

/// The name the TCP/IP server registers.
pub const NAME: &str = "net";
/// The rights [`Net::open`] asks for.
pub const RIGHTS: u32 = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ;

/// An IPv4 address, first octet first.
pub type Ipv4 = [u8; 4];

/// How the interface got its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    Dhcp,
    Static,
}

/// What [`Net::status`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The address, its prefix length and where it came from; `None`
    /// while the interface has none.
    pub address: Option<(Ipv4, u8, Config)>,
    pub gateway: Option<Ipv4>,
    pub mac: [u8; 6],
    pub rx_frames: u64,
    pub tx_frames: u64,
}

/// An open `net` device.
#[derive(Debug)]
pub struct Net {
    handle: Handle,
    vector: u32,
    tag: Cell<u32>,
}

impl Net {
    /// Attaches `net`; completions on `vector` (one the program uses for
    /// nothing else).
    pub fn open(vector: u32) -> Result<Net, Error> {
        let handle = dev::attach(REGISTRY, NAME, RIGHTS)?;
        if let Err(e) = handle.irq_map(NET_IRQ_DONE, vector) {
            let _ = handle.detach();
            return Err(e);
        }
        Ok(Net {
            handle,
            vector,
            tag: Cell::new(0),
        })
    }

    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Sends a raw request (`port`, `value` carrying its tag) and waits
    /// for its completion (tests use it for requests the typed calls
    /// would refuse).
    pub fn request(&self, port: u32, size: u32, value: u64, tag: u32) -> Result<(), Error> {
        self.handle
            .port_out_wait(port, size, value, 1 << self.vector)?;
        let (got, result) = net_decode_result(self.handle.port_in(NET_IO_RESULT, 8)?);
        if got != tag & NET_TAG_MASK {
            return Err(Error::IoError);
        }
        result
    }

    fn next_tag(&self) -> u32 {
        let t = self.tag.get() % NET_TAG_MASK + 1;
        self.tag.set(t);
        t
    }

    /// The interface's configuration and counters.
    pub fn status(&self) -> Result<Status, Error> {
        let tag = self.next_tag();
        self.request(NET_PORT_STATUS, 8, u64::from(tag), tag)?;
        let word = |port| self.handle.port_in(port, 8);
        let (address, prefix, how) = net_address_of(word(NET_IO_ADDRESS)?);
        let config = match how {
            NET_CONFIG_DHCP => Some(Config::Dhcp),
            NET_CONFIG_STATIC => Some(Config::Static),
            _ => None,
        };
        let gateway = word(NET_IO_GATEWAY)? as u32;
        let mac = word(NET_IO_MAC)?;
        Ok(Status {
            address: config.map(|c| (address.to_be_bytes(), prefix, c)),
            gateway: (gateway != 0).then(|| gateway.to_be_bytes()),
            mac: core::array::from_fn(|i| (mac >> (8 * i)) as u8),
            rx_frames: word(NET_IO_RX_FRAMES)?,
            tx_frames: word(NET_IO_TX_FRAMES)?,
        })
    }

    /// Pings `to`: the round trip in microseconds, or `TimedOut` after
    /// `NET_PING_TIMEOUT_MS` without a reply.
    pub fn ping(&self, to: Ipv4) -> Result<u64, Error> {
        let tag = self.next_tag();
        let value = net_ping_word(u32::from_be_bytes(to), tag);
        self.request(NET_PORT_PING, 8, value, tag)?;
        self.handle.port_in(NET_IO_PING_US, 8)
    }

    pub fn close(self) -> Result<(), Error> {
        self.handle.detach()
    }
}
