//! Clients' sockets: each client's table of up to `NET_SOCKETS_PER_CLIENT`
//! numbered sockets over smoltcp's, the operations of `NET_PORT_SOCKET`,
//! and readiness.
//!
//! Rules: a client names only its own sockets (a number outside its table,
//! or a free one, is `BadHandle`); data moves by DMA straight between the
//! client's export and smoltcp's buffers, and a DMA that fails moves
//! nothing (smoltcp is told 0 bytes were taken or given); no operation
//! waits. A listening socket is `NET_TCP_BACKLOG` smoltcp sockets
//! listening on its port, each replaced as ACCEPT takes it. A closed TCP
//! socket's number is free at once, its smoltcp socket lingers (finishing
//! its FIN) in `closing` until smoltcp says it is closed, then it goes. A
//! client that leaves has its connections reset (RST): nobody is left to
//! read what would still arrive.

use crate::stack::Stack;
use abi::Error;
use abi::net::*;
use abi::userdev::ClientId;
use alloc::vec;
use alloc::vec::Vec;
use arrayvec::ArrayVec;
use libmh::dev::Served;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint, Ipv4Address};

/// The most smoltcp sockets all clients together have.
const SOCKETS_MAX: usize = NET_SOCKETS_MAX as usize;
/// Datagrams a UDP socket queues each way.
const UDP_PACKETS: usize = 8;
/// The first port UDP_BIND picks from when asked for 0.
const EPHEMERAL_FIRST: u16 = 49152;

enum Kind {
    Listener {
        port: u16,
        waiting: ArrayVec<SocketHandle, { NET_TCP_BACKLOG as usize }>,
    },
    Tcp(SocketHandle),
    Udp(SocketHandle),
}

struct Client {
    id: ClientId,
    table: [Option<Kind>; NET_SOCKETS_PER_CLIENT as usize],
    /// The masks last published in its I/O space.
    readable: u64,
    writable: u64,
}

/// What an operation gives back: `NET_IO_VALUE`, and `NET_IO_PEER` if any.
pub struct Done {
    pub value: u64,
    pub peer: Option<u64>,
}

impl Done {
    fn value(value: u64) -> Result<Done, Error> {
        Ok(Done { value, peer: None })
    }
}

fn peer_word(e: IpEndpoint) -> u64 {
    let IpAddress::Ipv4(a) = e.addr;
    u64::from(u32::from_be_bytes(a.octets())) | u64::from(e.port) << 32
}

fn tcp_socket() -> tcp::Socket<'static> {
    let n = NET_TCP_BUFFER as usize;
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; n]),
        tcp::SocketBuffer::new(vec![0; n]),
    )
}

pub struct Sockets {
    clients: Vec<Client>,
    /// TCP sockets closed by their clients, finishing.
    closing: Vec<SocketHandle>,
    /// smoltcp sockets in use (tables, backlogs, closing).
    count: usize,
    next_ephemeral: u16,
}

impl Sockets {
    pub fn new() -> Sockets {
        Sockets {
            clients: Vec::new(),
            closing: Vec::new(),
            count: 0,
            next_ephemeral: EPHEMERAL_FIRST,
        }
    }

    fn client(&mut self, id: ClientId) -> &mut Client {
        let i = match self.clients.iter().position(|c| c.id == id) {
            Some(i) => i,
            None => {
                self.clients.push(Client {
                    id,
                    table: [const { None }; NET_SOCKETS_PER_CLIENT as usize],
                    readable: 0,
                    writable: 0,
                });
                self.clients.len() - 1
            }
        };
        &mut self.clients[i]
    }

    fn take_count(&mut self, n: usize) -> Result<(), Error> {
        if self.count + n > SOCKETS_MAX {
            return Err(Error::LimitReached);
        }
        self.count += n;
        Ok(())
    }

    /// A free number in `id`'s table.
    fn free_slot(&mut self, id: ClientId) -> Result<usize, Error> {
        self.client(id)
            .table
            .iter()
            .position(Option::is_none)
            .ok_or(Error::LimitReached)
    }

    fn port_in_use(&self, stack: &mut Stack, port: u16, udp_wanted: bool) -> bool {
        self.clients
            .iter()
            .flat_map(|c| c.table.iter().flatten())
            .any(|k| match k {
                Kind::Listener { port: p, .. } => !udp_wanted && *p == port,
                Kind::Udp(h) => {
                    udp_wanted && stack.set().get::<udp::Socket>(*h).endpoint().port == port
                }
                Kind::Tcp(_) => false,
            })
    }

    /// Carries out `req` for client `id` of `dev`.
    pub fn op(
        &mut self,
        stack: &mut Stack,
        dev: Served,
        id: ClientId,
        req: &NetRequest,
    ) -> Result<Done, Error> {
        if req.len > NET_TRANSFER_MAX {
            return Err(Error::InvalidArgument);
        }
        match req.op {
            NET_OP_TCP_LISTEN => self.listen(stack, id, req.port),
            NET_OP_TCP_ACCEPT => self.accept(stack, id, req.socket),
            NET_OP_TCP_CONNECT => self.connect(stack, id, req.address, req.port),
            NET_OP_SEND => {
                let h = self.tcp_of(id, req.socket)?;
                send(stack, dev, id, h, req)
            }
            NET_OP_RECV => {
                let h = self.tcp_of(id, req.socket)?;
                recv(stack, dev, id, h, req)
            }
            NET_OP_CLOSE => self.close(stack, id, req.socket),
            NET_OP_UDP_BIND => self.bind(stack, id, req.port),
            NET_OP_SENDTO => {
                let h = self.udp_of(id, req.socket)?;
                sendto(stack, dev, id, h, req)
            }
            NET_OP_RECVFROM => {
                let h = self.udp_of(id, req.socket)?;
                recvfrom(stack, dev, id, h, req)
            }
            _ => Err(Error::NotSupported),
        }
    }

    fn kind(&mut self, id: ClientId, socket: u32) -> Result<&mut Kind, Error> {
        self.client(id)
            .table
            .get_mut(socket as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::BadHandle)
    }

    fn tcp_of(&mut self, id: ClientId, socket: u32) -> Result<SocketHandle, Error> {
        match self.kind(id, socket)? {
            Kind::Tcp(h) => Ok(*h),
            _ => Err(Error::InvalidArgument),
        }
    }

    fn udp_of(&mut self, id: ClientId, socket: u32) -> Result<SocketHandle, Error> {
        match self.kind(id, socket)? {
            Kind::Udp(h) => Ok(*h),
            _ => Err(Error::InvalidArgument),
        }
    }

    fn listening(stack: &mut Stack, port: u16) -> Result<SocketHandle, Error> {
        let mut s = tcp_socket();
        s.listen(IpListenEndpoint { addr: None, port })
            .map_err(|_| Error::InvalidArgument)?;
        Ok(stack.set().add(s))
    }

    fn listen(&mut self, stack: &mut Stack, id: ClientId, port: u16) -> Result<Done, Error> {
        if port == 0 {
            return Err(Error::InvalidArgument);
        }
        if self.port_in_use(stack, port, false) {
            return Err(Error::AlreadyExists);
        }
        let slot = self.free_slot(id)?;
        self.take_count(NET_TCP_BACKLOG as usize)?;
        let mut waiting = ArrayVec::new();
        for _ in 0..NET_TCP_BACKLOG {
            match Self::listening(stack, port) {
                Ok(h) => waiting.push(h),
                Err(e) => {
                    for h in waiting {
                        stack.set().remove(h);
                    }
                    self.count -= NET_TCP_BACKLOG as usize;
                    return Err(e);
                }
            }
        }
        self.client(id).table[slot] = Some(Kind::Listener { port, waiting });
        Done::value(slot as u64)
    }

    fn accept(&mut self, stack: &mut Stack, id: ClientId, socket: u32) -> Result<Done, Error> {
        let slot = self.free_slot(id)?;
        let Kind::Listener { port, waiting } = self.kind(id, socket)? else {
            return Err(Error::InvalidArgument);
        };
        let port = *port;
        let Some(i) = waiting.iter().position(|&h| {
            let s = stack.set().get::<tcp::Socket>(h);
            !matches!(s.state(), tcp::State::Listen | tcp::State::SynReceived)
        }) else {
            return Err(Error::WouldBlock);
        };
        let h = waiting[i];
        // Its place in the backlog goes to a fresh listening socket (the
        // accepted one now counts in the table, the fresh one in the
        // backlog); without room for one the backlog shrinks.
        let fresh = if self.count < SOCKETS_MAX {
            Self::listening(stack, port).ok()
        } else {
            None
        };
        let Kind::Listener { waiting, .. } = self.kind(id, socket)? else {
            return Err(Error::InvalidArgument);
        };
        match fresh {
            Some(f) => waiting[i] = f,
            None => {
                waiting.remove(i);
            }
        }
        if fresh.is_some() {
            self.count += 1;
        }
        let peer = stack.set().get::<tcp::Socket>(h).remote_endpoint();
        self.client(id).table[slot] = Some(Kind::Tcp(h));
        Ok(Done {
            value: slot as u64,
            peer: peer.map(peer_word),
        })
    }

    fn connect(
        &mut self,
        stack: &mut Stack,
        id: ClientId,
        address: u32,
        port: u16,
    ) -> Result<Done, Error> {
        let to = Ipv4Address::from_bits(address);
        if port == 0 || to.is_unspecified() || to.is_broadcast() || to.is_multicast() {
            return Err(Error::InvalidArgument);
        }
        let slot = self.free_slot(id)?;
        let local = self.ephemeral();
        self.take_count(1)?;
        let h = stack.set().add(tcp_socket());
        if stack
            .connect(h, IpEndpoint::new(IpAddress::Ipv4(to), port), local)
            .is_err()
        {
            stack.set().remove(h);
            self.count -= 1;
            return Err(Error::InvalidArgument);
        }
        self.client(id).table[slot] = Some(Kind::Tcp(h));
        Done::value(slot as u64)
    }

    fn ephemeral(&mut self) -> u16 {
        let p = self.next_ephemeral;
        self.next_ephemeral = if p == u16::MAX {
            EPHEMERAL_FIRST
        } else {
            p + 1
        };
        p
    }

    fn bind(&mut self, stack: &mut Stack, id: ClientId, port: u16) -> Result<Done, Error> {
        let port = if port == 0 { self.ephemeral() } else { port };
        if self.port_in_use(stack, port, true) {
            return Err(Error::AlreadyExists);
        }
        let slot = self.free_slot(id)?;
        self.take_count(1)?;
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_PACKETS * NET_UDP_MAX as usize],
            )
        };
        let mut s = udp::Socket::new(buffer(), buffer());
        if s.bind(port).is_err() {
            self.count -= 1;
            return Err(Error::InvalidArgument);
        }
        let h = stack.set().add(s);
        self.client(id).table[slot] = Some(Kind::Udp(h));
        Done::value(slot as u64)
    }

    fn close(&mut self, stack: &mut Stack, id: ClientId, socket: u32) -> Result<Done, Error> {
        self.kind(id, socket)?;
        let kind = self.client(id).table[socket as usize].take();
        if let Some(k) = kind {
            self.release(stack, k, false);
        }
        Done::value(0)
    }

    /// Lets go of a socket: a connection is closed gracefully (or reset,
    /// `abort`) and lingers; the rest go at once.
    fn release(&mut self, stack: &mut Stack, kind: Kind, abort: bool) {
        match kind {
            Kind::Tcp(h) => {
                let s = stack.set().get_mut::<tcp::Socket>(h);
                if abort {
                    s.abort();
                } else {
                    s.close();
                }
                self.closing.push(h);
            }
            Kind::Udp(h) => {
                stack.set().remove(h);
                self.count -= 1;
            }
            Kind::Listener { waiting, .. } => {
                for h in waiting {
                    stack.set().get_mut::<tcp::Socket>(h).abort();
                    self.closing.push(h);
                }
            }
        }
    }

    /// Client `id` left: every socket of its goes (connections reset).
    pub fn client_left(&mut self, stack: &mut Stack, id: ClientId) {
        let Some(i) = self.clients.iter().position(|c| c.id == id) else {
            return;
        };
        let c = self.clients.swap_remove(i);
        for kind in c.table.into_iter().flatten() {
            self.release(stack, kind, true);
        }
    }

    /// After the stack ran: drops the finished closing sockets, and tells
    /// each client whose readiness changed.
    pub fn after_poll(&mut self, stack: &mut Stack, dev: Served) {
        let before = self.closing.len();
        self.closing.retain(|&h| {
            let done = stack.set().get::<tcp::Socket>(h).state() == tcp::State::Closed;
            if done {
                stack.set().remove(h);
            }
            !done
        });
        self.count -= before - self.closing.len();
        for c in &mut self.clients {
            let (mut readable, mut writable) = (0u64, 0u64);
            for (i, k) in c.table.iter().enumerate() {
                let Some(k) = k else { continue };
                let (r, w) = readiness(stack, k);
                readable |= u64::from(r) << i;
                writable |= u64::from(w) << i;
            }
            if (readable, writable) != (c.readable, c.writable) {
                c.readable = readable;
                c.writable = writable;
                let _ = dev.write_iospace(c.id, NET_IO_READABLE, 8, readable);
                let _ = dev.write_iospace(c.id, NET_IO_WRITABLE, 8, writable);
                let _ = dev.irq(c.id, NET_IRQ_READY);
            }
        }
    }
}

/// (readable, writable) of one socket.
fn readiness(stack: &mut Stack, k: &Kind) -> (bool, bool) {
    match k {
        Kind::Listener { waiting, .. } => {
            let ready = waiting.iter().any(|&h| {
                let s = stack.set().get::<tcp::Socket>(h);
                !matches!(s.state(), tcp::State::Listen | tcp::State::SynReceived)
            });
            (ready, false)
        }
        Kind::Tcp(h) => {
            let s = stack.set().get::<tcp::Socket>(*h);
            let closed = s.state() == tcp::State::Closed;
            let connecting = matches!(s.state(), tcp::State::SynSent | tcp::State::SynReceived);
            (
                s.can_recv() || (!s.may_recv() && !connecting),
                s.can_send() || (closed && !connecting),
            )
        }
        Kind::Udp(h) => {
            let s = stack.set().get::<udp::Socket>(*h);
            (s.can_recv(), s.can_send())
        }
    }
}

fn send(
    stack: &mut Stack,
    dev: Served,
    id: ClientId,
    h: SocketHandle,
    req: &NetRequest,
) -> Result<Done, Error> {
    let s = stack.set().get_mut::<tcp::Socket>(h);
    if !s.may_send() {
        return Err(match s.state() {
            tcp::State::SynSent | tcp::State::SynReceived => Error::WouldBlock,
            tcp::State::Closed => Error::ConnectionReset,
            // The client closed its end already.
            _ => Error::InvalidArgument,
        });
    }
    if !s.can_send() {
        return Err(Error::WouldBlock);
    }
    let len = req.len as usize;
    let moved = s.send(|buf| {
        let n = buf.len().min(len);
        match dev.dma_read(id, req.buffer, &mut buf[..n]) {
            Ok(()) => (n, Ok(n)),
            Err(e) => (0, Err(e)),
        }
    });
    match moved {
        Ok(Ok(n)) => Done::value(n as u64),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::ConnectionReset),
    }
}

fn recv(
    stack: &mut Stack,
    dev: Served,
    id: ClientId,
    h: SocketHandle,
    req: &NetRequest,
) -> Result<Done, Error> {
    let s = stack.set().get_mut::<tcp::Socket>(h);
    let len = req.len as usize;
    let moved = s.recv(|buf| {
        let n = buf.len().min(len);
        match dev.dma_write(id, &buf[..n], req.buffer) {
            Ok(()) => (n, Ok(n)),
            Err(e) => (0, Err(e)),
        }
    });
    match moved {
        Ok(Ok(0)) if s.may_recv() => Err(Error::WouldBlock),
        Ok(Ok(n)) => Done::value(n as u64),
        Ok(Err(e)) => Err(e),
        // The peer's FIN: the end of the stream.
        Err(tcp::RecvError::Finished) => Done::value(0),
        Err(tcp::RecvError::InvalidState) => match s.state() {
            tcp::State::SynSent | tcp::State::SynReceived => Err(Error::WouldBlock),
            _ => Err(Error::ConnectionReset),
        },
    }
}

fn sendto(
    stack: &mut Stack,
    dev: Served,
    id: ClientId,
    h: SocketHandle,
    req: &NetRequest,
) -> Result<Done, Error> {
    let to = Ipv4Address::from_bits(req.address);
    if req.len > NET_UDP_MAX || req.port == 0 || to.is_unspecified() {
        return Err(Error::InvalidArgument);
    }
    let mut data = [0u8; NET_UDP_MAX as usize];
    let data = &mut data[..req.len as usize];
    dev.dma_read(id, req.buffer, data)?;
    let s = stack.set().get_mut::<udp::Socket>(h);
    let endpoint = IpEndpoint::new(IpAddress::Ipv4(to), req.port);
    match s.send_slice(data, endpoint) {
        Ok(()) => Done::value(data.len() as u64),
        Err(udp::SendError::BufferFull) => Err(Error::WouldBlock),
        Err(udp::SendError::Unaddressable) => Err(Error::InvalidArgument),
    }
}

fn recvfrom(
    stack: &mut Stack,
    dev: Served,
    id: ClientId,
    h: SocketHandle,
    req: &NetRequest,
) -> Result<Done, Error> {
    let s = stack.set().get_mut::<udp::Socket>(h);
    let Ok((payload, meta)) = s.recv() else {
        return Err(Error::WouldBlock);
    };
    let n = payload.len().min(req.len as usize);
    dev.dma_write(id, &payload[..n], req.buffer)?;
    Ok(Done {
        value: payload.len() as u64,
        peer: Some(peer_word(meta.endpoint)),
    })
}
