//! The TCP/IP stack: one smoltcp interface over `net0`, configured by DHCP
//! with a static fallback, and the ICMP socket pings use.
//!
//! Rules: the interface's address comes from a DHCP lease; if none comes
//! within `DHCP_WAIT_US` the static configuration of QEMU's user network
//! (10.0.2.15/24, gateway 10.0.2.2) is used, and a lease that comes later
//! replaces it. One ping is in flight at a time; it ends with its reply
//! or at its deadline, never later. Time is the timer's clock in
//! microseconds since the server started.

use crate::phy::Interface;
use abi::Error;
use abi::net::{NET_CONFIG_DHCP, NET_CONFIG_STATIC, NET_PING_TIMEOUT_MS};
use alloc::vec;
use smoltcp::iface::{self, SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{dhcpv4, icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpEndpoint,
    Ipv4Address, Ipv4Cidr,
};

/// How long the server waits for a DHCP lease before the static fallback,
/// in microseconds.
const DHCP_WAIT_US: i64 = 3_000_000;
/// A ping's deadline, in microseconds.
const PING_TIMEOUT_US: i64 = NET_PING_TIMEOUT_MS as i64 * 1000;
const STATIC_ADDRESS: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const STATIC_PREFIX: u8 = 24;
const STATIC_GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
/// The ICMP identifier of this server's pings.
const PING_IDENT: u16 = 0x4d48;
const PING_PAYLOAD: &[u8; 32] = b"MH ping: 32 bytes of payload...!";

/// A ping waiting for its reply.
pub struct Ping {
    pub seq: u16,
    pub to: Ipv4Address,
    pub sent_us: i64,
    /// Whom to tell: the caller's own cookie (the client and the tag).
    pub cookie: (u64, u32),
}

/// How a ping ended.
pub enum PingEnd {
    Reply { cookie: (u64, u32), us: u64 },
    TimedOut { cookie: (u64, u32) },
}

pub struct Stack {
    pub dev: Interface,
    iface: iface::Interface,
    sockets: SocketSet<'static>,
    dhcp: SocketHandle,
    icmp: SocketHandle,
    /// How the address came (`NET_CONFIG_*`), 0 while there is none.
    pub config: u64,
    pub gateway: Option<Ipv4Address>,
    ping: Option<Ping>,
    next_seq: u16,
}

impl Stack {
    pub fn new(mut dev: Interface, now_us: i64) -> Stack {
        let mac = EthernetAddress(dev.nic.mac());
        let mut config = iface::Config::new(HardwareAddress::Ethernet(mac));
        // Different on each boot is what matters (TCP sequence numbers,
        // ports): the TSC differs.
        config.random_seed = libmh::timer::rdtsc();
        let iface = iface::Interface::new(config, &mut dev, Instant::from_micros(now_us));
        let mut sockets = SocketSet::new(vec![]);
        let dhcp = sockets.add(dhcpv4::Socket::new());
        let icmp_socket = icmp::Socket::new(
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]),
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]),
        );
        let icmp = sockets.add(icmp_socket);
        let mut s = Stack {
            dev,
            iface,
            sockets,
            dhcp,
            icmp,
            config: 0,
            gateway: None,
            ping: None,
            next_seq: 1,
        };
        // An identifier of its own: only this server's echo replies.
        let _ = s
            .sockets
            .get_mut::<icmp::Socket>(s.icmp)
            .bind(icmp::Endpoint::Ident(PING_IDENT));
        s
    }

    /// The sockets (the clients' tables hold their handles).
    pub fn set(&mut self) -> &mut SocketSet<'static> {
        &mut self.sockets
    }

    /// Starts TCP socket `h`'s connection to `to` from local port `local`.
    pub fn connect(&mut self, h: SocketHandle, to: IpEndpoint, local: u16) -> Result<(), ()> {
        let cx = self.iface.context();
        self.sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, to, local)
            .map_err(|_| ())
    }

    /// The interface's address (address, prefix length), if it has one.
    pub fn address(&self) -> Option<(Ipv4Address, u8)> {
        self.iface.ipv4_addr().and_then(|a| {
            self.iface
                .ip_addrs()
                .iter()
                .find(|c| c.address() == IpAddress::Ipv4(a))
                .map(|c| (a, c.prefix_len()))
        })
    }

    fn configure(&mut self, cidr: Ipv4Cidr, router: Option<Ipv4Address>, how: u64) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        if let Some(r) = router {
            let _ = routes.add_default_ipv4_route(r);
        }
        self.gateway = router;
        self.config = how;
        libmh::println!(
            "net: {} /{} gateway {} ({})",
            cidr.address(),
            cidr.prefix_len(),
            router.map_or(Ipv4Address::UNSPECIFIED, |r| r),
            if how == NET_CONFIG_DHCP {
                "DHCP"
            } else {
                "static"
            }
        );
    }

    /// Lets the stack do what is due at `now_us`: frames in and out, DHCP,
    /// the static fallback; returns a ping that ended, if one did.
    pub fn poll(&mut self, now_us: i64) -> Option<PingEnd> {
        let now = Instant::from_micros(now_us);
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        let event = self.sockets.get_mut::<dhcpv4::Socket>(self.dhcp).poll();
        match event {
            Some(dhcpv4::Event::Configured(c)) => {
                let (address, router) = (c.address, c.router);
                self.configure(address, router, NET_CONFIG_DHCP);
            }
            Some(dhcpv4::Event::Deconfigured) => {
                self.iface.update_ip_addrs(|a| a.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                self.config = 0;
                self.gateway = None;
            }
            None => {}
        }
        if self.config == 0 && now_us >= DHCP_WAIT_US {
            let cidr = Ipv4Cidr::new(STATIC_ADDRESS, STATIC_PREFIX);
            self.configure(cidr, Some(STATIC_GATEWAY), NET_CONFIG_STATIC);
        }
        self.ping_progress(now_us)
    }

    /// When the stack next needs to run, in microseconds from `now_us`
    /// (`None`: only when a frame or a request comes).
    pub fn delay_us(&mut self, now_us: i64) -> Option<u64> {
        let now = Instant::from_micros(now_us);
        let stack = self
            .iface
            .poll_delay(now, &self.sockets)
            .map(|d| d.total_micros());
        let left = |deadline: i64| deadline.saturating_sub(now_us).max(0) as u64;
        let fallback = (self.config == 0).then(|| left(DHCP_WAIT_US));
        let ping = self
            .ping
            .as_ref()
            .map(|p| left(p.sent_us + PING_TIMEOUT_US));
        [stack, fallback, ping].into_iter().flatten().min()
    }

    /// Starts a ping of `to` for `cookie`; `Busy` if one is in flight.
    pub fn ping(&mut self, to: Ipv4Address, now_us: i64, cookie: (u64, u32)) -> Result<(), Error> {
        if self.ping.is_some() {
            return Err(Error::Busy);
        }
        if to.is_unspecified() || to.is_broadcast() || to.is_multicast() {
            return Err(Error::InvalidArgument);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let repr = Icmpv4Repr::EchoRequest {
            ident: PING_IDENT,
            seq_no: seq,
            data: PING_PAYLOAD,
        };
        let socket = self.sockets.get_mut::<icmp::Socket>(self.icmp);
        let buf = socket
            .send(repr.buffer_len(), IpAddress::Ipv4(to))
            .map_err(|_| Error::Busy)?;
        let mut packet = Icmpv4Packet::new_unchecked(buf);
        repr.emit(&mut packet, &ChecksumCapabilities::default());
        self.ping = Some(Ping {
            seq,
            to,
            sent_us: now_us,
            cookie,
        });
        Ok(())
    }

    fn ping_progress(&mut self, now_us: i64) -> Option<PingEnd> {
        let socket = self.sockets.get_mut::<icmp::Socket>(self.icmp);
        while socket.can_recv() {
            let Ok((bytes, from)) = socket.recv() else {
                break;
            };
            let Some(p) = &self.ping else {
                continue;
            };
            let Ok(packet) = Icmpv4Packet::new_checked(bytes) else {
                continue;
            };
            let Ok(repr) = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default()) else {
                continue;
            };
            if let Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } = repr
                && ident == PING_IDENT
                && seq_no == p.seq
                && from == IpAddress::Ipv4(p.to)
                && data == PING_PAYLOAD
            {
                let us = (now_us - p.sent_us).max(0) as u64;
                let cookie = p.cookie;
                self.ping = None;
                return Some(PingEnd::Reply { cookie, us });
            }
        }
        if let Some(p) = &self.ping
            && now_us - p.sent_us >= PING_TIMEOUT_US
        {
            let cookie = p.cookie;
            self.ping = None;
            return Some(PingEnd::TimedOut { cookie });
        }
        None
    }
}
