//! The `net` device's client (`abi::net`, docs/devices/net.md): the TCP/IP
//! server's view of the interface, pings, and TCP and UDP sockets.
//!
//! [`Net::open`] is enough for `status` and `ping`. Sockets need memory the
//! server can reach: [`Net::with_sockets`] maps an area at an address the
//! caller picks (a page for the request block, then `NET_TRANSFER_MAX`
//! bytes of data) and exports it to the device once; reads and writes copy
//! through it. Every socket call has a `try_` form that never waits
//! (`WouldBlock`) and a blocking one that waits on the readiness line
//! between tries.
//!
//! Rules: one request at a time, each waiting for its own completion (its
//! tag must come back), so the completion vector is never left pending;
//! the area is exported until [`Net::close`].

use crate::dev::{self, Handle, REGISTRY};
use crate::{process, vm};
use abi::Error;
use abi::net::*;
use core::cell::Cell;

/// The name the TCP/IP server registers.
pub const NAME: &str = "net";
/// The rights [`Net::open`] asks for.
pub const RIGHTS: u32 = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ | dev::RIGHT_DMA;

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
    /// The socket area, once [`Net::with_sockets`] made it.
    area: Option<Area>,
}

/// The memory sockets move data through.
#[derive(Clone, Copy, Debug)]
struct Area {
    va: u64,
    iova: u64,
    ready: u32,
}

const PAGE: u64 = 4096;
/// Bytes of the socket area: the request page and the data.
pub const AREA_BYTES: u64 = PAGE + NET_TRANSFER_MAX as u64;

/// A peer: address and port.
pub type Endpoint = (Ipv4, u16);

fn endpoint_of(word: u64) -> Endpoint {
    ((word as u32).to_be_bytes(), (word >> 32) as u16)
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
            area: None,
        })
    }

    /// Makes the socket area at `va` (page aligned, [`AREA_BYTES`] long,
    /// free) and takes readiness on `ready_vector`.
    pub fn with_sockets(mut self, va: u64, ready_vector: u32) -> Result<Net, Error> {
        self.handle.irq_map(NET_IRQ_READY, ready_vector)?;
        vm::map(va, AREA_BYTES, vm::PROT_RW)?;
        // SAFETY: just mapped read-write; the slice lives only for the
        // export, which keeps the pages until `close`.
        let all = unsafe { core::slice::from_raw_parts_mut(va as *mut u8, AREA_BYTES as usize) };
        match self.handle.export(all) {
            Ok(iova) => {
                self.area = Some(Area {
                    va,
                    iova,
                    ready: ready_vector,
                });
                Ok(self)
            }
            Err(e) => {
                let _ = vm::unmap(va, AREA_BYTES);
                Err(e)
            }
        }
    }

    fn area(&self) -> Result<Area, Error> {
        self.area.ok_or(Error::NotSupported)
    }

    /// Copies `src` (at most `NET_TRANSFER_MAX` bytes) into the area's
    /// data part.
    fn put_data(a: Area, src: &[u8]) {
        let n = src.len().min(NET_TRANSFER_MAX as usize);
        // SAFETY: the data part lies in the area, mapped until `close`
        // (the caller holds the `Net`); the server reaches it only during
        // a request, and a `Net` makes one at a time (it is not `Sync`).
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), (a.va + PAGE) as *mut u8, n) };
    }

    /// Copies the first `dst.len()` bytes (at most `NET_TRANSFER_MAX`) of
    /// the area's data part into `dst`.
    fn get_data(a: Area, dst: &mut [u8]) {
        let n = dst.len().min(NET_TRANSFER_MAX as usize);
        // SAFETY: as in `put_data`.
        unsafe { core::ptr::copy_nonoverlapping((a.va + PAGE) as *const u8, dst.as_mut_ptr(), n) };
    }

    /// Sends `req` (its tag set here) as a SOCKET request and waits for
    /// it: (`NET_IO_VALUE`, `NET_IO_PEER`).
    pub fn socket_request(&self, mut req: NetRequest) -> Result<(u64, u64), Error> {
        let a = self.area()?;
        req.tag = self.next_tag();
        // SAFETY: the request page is the area's first, mapped until
        // `close`; the server reads it only during this request.
        unsafe { (a.va as *mut NetRequest).write_volatile(req) };
        self.request(NET_PORT_SOCKET, 8, a.iova, req.tag)?;
        Ok((
            self.handle.port_in(NET_IO_VALUE, 8)?,
            self.handle.port_in(NET_IO_PEER, 8)?,
        ))
    }

    /// Waits until some socket's readiness changed (then try again).
    pub fn wait_ready(&self) -> Result<(), Error> {
        process::irq_wait(1 << self.area()?.ready).map(|_| ())
    }

    /// Repeats `op` until it does not say `WouldBlock`, waiting for
    /// readiness in between.
    fn blocking<T>(&self, mut op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
        loop {
            match op() {
                Err(Error::WouldBlock) => self.wait_ready()?,
                other => return other,
            }
        }
    }

    /// Listens for TCP connections on `port`.
    pub fn tcp_listen(&self, port: u16) -> Result<TcpListener<'_>, Error> {
        let req = NetRequest {
            op: NET_OP_TCP_LISTEN,
            port,
            ..NetRequest::default()
        };
        let (socket, _) = self.socket_request(req)?;
        Ok(TcpListener {
            net: self,
            socket: socket as u32,
        })
    }

    /// Starts a TCP connection to `to`; [`TcpStream::wait_connected`] (or
    /// a first read or write) finds out how it went.
    pub fn tcp_connect(&self, (address, port): Endpoint) -> Result<TcpStream<'_>, Error> {
        let req = NetRequest {
            op: NET_OP_TCP_CONNECT,
            address: u32::from_be_bytes(address),
            port,
            ..NetRequest::default()
        };
        let (socket, _) = self.socket_request(req)?;
        Ok(TcpStream {
            net: self,
            socket: socket as u32,
        })
    }

    /// A UDP socket on local `port` (0: one the server picks).
    pub fn udp_bind(&self, port: u16) -> Result<UdpSocket<'_>, Error> {
        let req = NetRequest {
            op: NET_OP_UDP_BIND,
            port,
            ..NetRequest::default()
        };
        let (socket, _) = self.socket_request(req)?;
        Ok(UdpSocket {
            net: self,
            socket: socket as u32,
        })
    }

    /// Whether socket `socket`'s bit is set in `NET_IO_WRITABLE`.
    fn writable(&self, socket: u32) -> Result<bool, Error> {
        Ok(self.handle.port_in(NET_IO_WRITABLE, 8)? & 1 << socket != 0)
    }

    fn close_socket(&self, socket: u32) -> Result<(), Error> {
        let req = NetRequest {
            op: NET_OP_CLOSE,
            socket,
            ..NetRequest::default()
        };
        self.socket_request(req).map(|_| ())
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

    /// Detaches (every socket still open is reset by the server) and
    /// withdraws the area.
    pub fn close(self) -> Result<(), Error> {
        let detached = self.handle.detach();
        if let Some(a) = self.area {
            let _ = vm::unmap(a.va, AREA_BYTES);
        }
        detached
    }
}

/// A listening TCP socket.
#[derive(Debug)]
pub struct TcpListener<'a> {
    net: &'a Net,
    socket: u32,
}

impl<'a> TcpListener<'a> {
    /// The next connection, if one is waiting: the stream and its peer.
    pub fn try_accept(&self) -> Result<(TcpStream<'a>, Endpoint), Error> {
        let req = NetRequest {
            op: NET_OP_TCP_ACCEPT,
            socket: self.socket,
            ..NetRequest::default()
        };
        let (socket, peer) = self.net.socket_request(req)?;
        let stream = TcpStream {
            net: self.net,
            socket: socket as u32,
        };
        Ok((stream, endpoint_of(peer)))
    }

    /// The next connection, waiting for one.
    pub fn accept(&self) -> Result<(TcpStream<'a>, Endpoint), Error> {
        self.net.blocking(|| self.try_accept())
    }

    pub fn close(self) -> Result<(), Error> {
        self.net.close_socket(self.socket)
    }
}

/// A TCP connection.
#[derive(Debug)]
pub struct TcpStream<'a> {
    net: &'a Net,
    socket: u32,
}

impl TcpStream<'_> {
    /// The socket's number in the client's table.
    pub fn number(&self) -> u32 {
        self.socket
    }

    /// Sends what of `buf` the connection takes now (at least a byte, or
    /// `WouldBlock`).
    pub fn try_write(&self, buf: &[u8]) -> Result<usize, Error> {
        let a = self.net.area()?;
        let n = buf.len().min(NET_TRANSFER_MAX as usize);
        Net::put_data(a, &buf[..n]);
        let req = NetRequest {
            op: NET_OP_SEND,
            socket: self.socket,
            buffer: a.iova + PAGE,
            len: n as u32,
            ..NetRequest::default()
        };
        self.net.socket_request(req).map(|(v, _)| v as usize)
    }

    /// Sends all of `buf`, waiting for room as needed.
    pub fn write_all(&self, mut buf: &[u8]) -> Result<(), Error> {
        while !buf.is_empty() {
            let n = self.net.blocking(|| self.try_write(buf))?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Receives what has arrived (0: the peer closed its end), or
    /// `WouldBlock`.
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let a = self.net.area()?;
        let n = buf.len().min(NET_TRANSFER_MAX as usize);
        let req = NetRequest {
            op: NET_OP_RECV,
            socket: self.socket,
            buffer: a.iova + PAGE,
            len: n as u32,
            ..NetRequest::default()
        };
        let got = self.net.socket_request(req)?.0 as usize;
        let got = got.min(n);
        Net::get_data(a, &mut buf[..got]);
        Ok(got)
    }

    /// Receives at least a byte (0: the peer closed its end), waiting.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, Error> {
        self.net.blocking(|| self.try_read(buf))
    }

    /// Waits until the connection is made (`Ok`) or failed (its error).
    pub fn wait_connected(&self) -> Result<(), Error> {
        loop {
            if self.net.writable(self.socket)? {
                // A zero-byte send says which: taken, or the failure.
                return self.try_write(&[]).map(|_| ());
            }
            self.net.wait_ready()?;
        }
    }

    /// Ends the connection gracefully (FIN).
    pub fn close(self) -> Result<(), Error> {
        self.net.close_socket(self.socket)
    }
}

/// A UDP socket.
#[derive(Debug)]
pub struct UdpSocket<'a> {
    net: &'a Net,
    socket: u32,
}

impl UdpSocket<'_> {
    /// The socket's number in the client's table.
    pub fn number(&self) -> u32 {
        self.socket
    }

    /// Sends `buf` (at most `NET_UDP_MAX` bytes) as one datagram to `to`.
    pub fn send_to(&self, buf: &[u8], (address, port): Endpoint) -> Result<(), Error> {
        let a = self.net.area()?;
        if buf.len() > NET_UDP_MAX as usize {
            return Err(Error::InvalidArgument);
        }
        Net::put_data(a, buf);
        let req = NetRequest {
            op: NET_OP_SENDTO,
            socket: self.socket,
            address: u32::from_be_bytes(address),
            port,
            buffer: a.iova + PAGE,
            len: buf.len() as u32,
            ..NetRequest::default()
        };
        self.net
            .blocking(|| self.net.socket_request(req))
            .map(|_| ())
    }

    /// The next datagram, if one is there: its length (the part beyond
    /// `buf` is lost) and its sender.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> Result<(usize, Endpoint), Error> {
        let a = self.net.area()?;
        let n = buf.len().min(NET_UDP_MAX as usize);
        let req = NetRequest {
            op: NET_OP_RECVFROM,
            socket: self.socket,
            buffer: a.iova + PAGE,
            len: n as u32,
            ..NetRequest::default()
        };
        let (len, peer) = self.net.socket_request(req)?;
        let len = len as usize;
        Net::get_data(a, &mut buf[..len.min(n)]);
        Ok((len, endpoint_of(peer)))
    }

    pub fn close(self) -> Result<(), Error> {
        self.net.close_socket(self.socket)
    }
}
