//! User devices: the state the kernel keeps for a device served by a
//! process (see `abi::userdev`): its clients, each with its I/O space, IRQ
//! map, exports and its own queue of requests the server has not taken.
//!
//! Rules: every client id, port, size, line, address and length that comes
//! from a process is checked here and refused with an `abi::Error` (the
//! original trusted the server's client ids and wrote out of bounds);
//! a client's requests leave in the order it made them, and the server
//! takes them round-robin across clients that have some waiting, so one
//! client's flood delays only that client; a client may have at most the
//! device's `queue_per_client` OUT requests waiting (more is `Busy`, never
//! a silent drop), while its OPEN (or CLONE) and CLOSE always fit, so they
//! are never starved or lost; client ids come from a [`GenTable`], so the
//! id of a closed client stays refused (`NotFound`) even after its slot
//! serves a new client; a closed client keeps its record (and its charge)
//! until the server has taken its CLOSE, so closing cannot make the
//! kernel hold memory no one pays for.
//!
//! Memory: the kernel charges each client's record to the client's
//! reserve (the caller passes the reserve and what it charged, and gets
//! both back as a [`Refund`] when the record goes); nothing here allocates
//! after a client is made.

extern crate alloc;

use crate::gentable::{GenTable, IdShape, Shape};
use abi::Error;
pub use abi::userdev::ClientId;
use abi::userdev::*;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use arrayvec::{ArrayString, ArrayVec};

/// The shape of client ids.
pub const CLIENT_SHAPE: IdShape = IdShape {
    slot_bits: CLIENT_SLOT_BITS,
    gen_bits: CLIENT_GENERATION_BITS,
    wraps: false,
    grow_first: false,
};

/// The shape of client ids, as a type.
#[derive(Debug)]
pub struct Clients;
impl Shape for Clients {
    const SHAPE: IdShape = CLIENT_SHAPE;
}

pub use crate::export::Export;

/// What a client record was charged, handed back when the record goes so
/// the kernel can credit it: the reserve (the kernel's id) and the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refund {
    pub reserve: u64,
    pub bytes: usize,
}

/// One client of a user device.
#[derive(Debug)]
pub struct Client {
    pub pid: u32,
    iospace: Vec<u8>,
    /// The client's vector for each line, if it mapped the line.
    irq_vectors: [Option<u8>; USER_IRQ_LINES_MAX as usize],
    exports: ArrayVec<Export, { EXPORTS_MAX as usize }>,
    /// Requests the server has not taken, oldest first (room for the
    /// quota's OUTs, an OPEN or CLONE and a CLOSE is reserved up front).
    queue: VecDeque<Request>,
    /// OUT requests in `queue`.
    outs: u32,
    /// The client detached or exited: its id is refused, its CLOSE waits
    /// in `queue`.
    closed: bool,
    /// Whether the client is on the device's round-robin list, and its
    /// neighbours there (slots).
    ready: bool,
    ready_prev: u32,
    ready_next: u32,
    charge: Refund,
}

/// The end of the round-robin list.
const NIL: u32 = u32::MAX;

/// A user device.
#[derive(Debug)]
pub struct UserDevice {
    pub name: ArrayString<32>,
    pub server: u32,
    pub server_vector: u32,
    pub irq_lines: u32,
    pub iospace_size: u32,
    pub queue_per_client: u32,
    clients: GenTable<Box<Client>, Clients>,
    /// Clients that are not closed.
    live_clients: usize,
    /// The clients with requests waiting, in round-robin order: a list
    /// threaded through their records (slots), so joining and leaving it
    /// are O(1) and never allocate.
    ready_head: u32,
    ready_tail: u32,
    /// Requests waiting, all clients together.
    pending: usize,
    /// The client (and its process) whose request the server took last,
    /// until the server answers it: the suspect if the server dies.
    in_flight: Option<(ClientId, u32)>,
}

/// Checks a port access of `size` bytes at `port` in a space of `limit`.
#[inline]
fn port_range(port: u64, size: u64, limit: usize) -> Result<(usize, usize), Error> {
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(Error::InvalidArgument);
    }
    match port.checked_add(size) {
        Some(end) if end <= limit as u64 => Ok((port as usize, end as usize)),
        _ => Err(Error::InvalidArgument),
    }
}

// The accessors the IPC fast path uses are `#[inline]`: the kernel is
// another crate, and a call per check would cost more than the check.
impl Client {
    /// The vector the client mapped `line` to, if it did. A line the
    /// device does not have is never mapped (`irq_map` refuses it), so
    /// this is also `None` for those.
    #[inline]
    pub fn irq_vector(&self, line: u64) -> Option<u32> {
        let v = self.irq_vectors.get(usize::try_from(line).ok()?)?;
        v.map(u32::from)
    }

    /// Writes `size` bytes of `value` (little-endian) at `port` of the
    /// client's I/O space (`dev_write_iospace`).
    #[inline(always)]
    pub fn write_iospace(&mut self, port: u64, size: u64, value: u64) -> Result<(), Error> {
        let (a, b) = port_range(port, size, self.iospace.len())?;
        let bytes = value.to_le_bytes();
        // Fixed-size copies: each is one store, where a copy of a run-time
        // length would be a call to memcpy (this is on the IPC path).
        let dst = &mut self.iospace[a..b];
        match dst.len() {
            8 => dst.copy_from_slice(&bytes),
            4 => dst.copy_from_slice(&bytes[..4]),
            2 => dst.copy_from_slice(&bytes[..2]),
            _ => dst.copy_from_slice(&bytes[..1]),
        }
        Ok(())
    }
}

/// What a queued request is, for the quota.
fn is_out(r: &Request) -> bool {
    r.kind == REQUEST_OUT
}

impl UserDevice {
    /// Validates a `DeviceConfig` and makes the device.
    pub fn new(config: &DeviceConfig, server: u32) -> Result<UserDevice, Error> {
        let len = config.name_len as usize;
        if len == 0 || len > config.name.len() {
            return Err(Error::InvalidArgument);
        }
        let name = core::str::from_utf8(&config.name[..len]).map_err(|_| Error::InvalidArgument)?;
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::InvalidArgument);
        }
        if config.irq_lines > USER_IRQ_LINES_MAX
            || config.iospace_size > IOSPACE_MAX
            || config.vector >= abi::interrupt::VECTOR_COUNT
            || config.queue_per_client > QUEUE_PER_CLIENT_MAX
        {
            return Err(Error::InvalidArgument);
        }
        let mut short = ArrayString::new();
        short.push_str(name);
        let queue_per_client = match config.queue_per_client {
            0 => QUEUE_PER_CLIENT_DEFAULT,
            n => n,
        };
        Ok(UserDevice {
            name: short,
            server,
            server_vector: config.vector,
            irq_lines: config.irq_lines,
            iospace_size: config.iospace_size,
            queue_per_client,
            clients: GenTable::new(),
            live_clients: 0,
            ready_head: NIL,
            ready_tail: NIL,
            pending: 0,
            in_flight: None,
        })
    }

    /// What one client record costs, in heap bytes (before the allocator
    /// rounds them up): the record, its I/O space, its queue, and its
    /// share of the device's tables (twice a slot, for the tables' slack).
    pub fn client_cost(&self) -> usize {
        core::mem::size_of::<Client>()
            + self.iospace_size as usize
            + (self.queue_per_client as usize + 2) * core::mem::size_of::<Request>()
            + 2 * 32
    }

    /// Clients attached now (closed ones whose CLOSE the server has not
    /// taken yet are not counted).
    pub fn client_count(&self) -> usize {
        self.live_clients
    }

    /// Requests waiting, all clients together.
    #[inline]
    pub fn pending_requests(&self) -> usize {
        self.pending
    }

    /// The client (and its process) whose request the server took last
    /// and has not answered.
    pub fn in_flight(&self) -> Option<(ClientId, u32)> {
        self.in_flight
    }

    /// The live client `id` names.
    #[inline]
    pub fn client(&self, id: ClientId) -> Result<&Client, Error> {
        match self.clients.get(id) {
            Some(c) if !c.closed => Ok(c),
            _ => Err(Error::NotFound),
        }
    }

    /// The live client `id` names, to change.
    #[inline]
    pub fn client_mut(&mut self, id: ClientId) -> Result<&mut Client, Error> {
        match self.clients.get_mut(id) {
            Some(c) if !c.closed => Ok(c),
            _ => Err(Error::NotFound),
        }
    }

    /// The live client ids and their records.
    pub fn clients(&self) -> impl Iterator<Item = (ClientId, &Client)> {
        self.clients
            .iter()
            .filter(|(_, c)| !c.closed)
            .map(|(id, c)| (id, &**c))
    }

    /// Queues `r` for client `id` (room was checked or reserved) and puts
    /// the client at the back of the round-robin list if it was not on it.
    fn push(&mut self, id: ClientId, r: Request) {
        let slot = CLIENT_SHAPE.slot(id) as u32;
        let tail = self.ready_tail;
        let Some(c) = self.clients.get_mut(id) else {
            return;
        };
        if is_out(&r) {
            c.outs += 1;
        }
        c.queue.push_back(r);
        self.pending += 1;
        if c.ready {
            return;
        }
        // Linked here, with the record in hand (`link_ready` would look
        // it up again).
        c.ready = true;
        c.ready_prev = tail;
        c.ready_next = NIL;
        match tail {
            NIL => self.ready_head = slot,
            t => {
                if let Some(c) = self.clients.get_slot_mut(t as usize) {
                    c.ready_next = slot;
                }
            }
        }
        self.ready_tail = slot;
    }

    /// Puts the client in `slot` at the back of the round-robin list.
    fn link_ready(&mut self, slot: u32) {
        let tail = self.ready_tail;
        if let Some(c) = self.clients.get_slot_mut(slot as usize) {
            c.ready = true;
            c.ready_prev = tail;
            c.ready_next = NIL;
        }
        match tail {
            NIL => self.ready_head = slot,
            t => {
                if let Some(c) = self.clients.get_slot_mut(t as usize) {
                    c.ready_next = slot;
                }
            }
        }
        self.ready_tail = slot;
    }

    /// Takes the client in `slot` off the round-robin list.
    fn unlink_ready(&mut self, slot: u32) {
        let Some(c) = self.clients.get_slot_mut(slot as usize) else {
            return;
        };
        if !c.ready {
            return;
        }
        c.ready = false;
        let (prev, next) = (c.ready_prev, c.ready_next);
        match prev {
            NIL => self.ready_head = next,
            p => {
                if let Some(c) = self.clients.get_slot_mut(p as usize) {
                    c.ready_next = next;
                }
            }
        }
        match next {
            NIL => self.ready_tail = prev,
            n => {
                if let Some(c) = self.clients.get_slot_mut(n as usize) {
                    c.ready_prev = prev;
                }
            }
        }
    }

    /// A new client record for process `pid`, charged `charge`, with room
    /// for every request it may ever have waiting.
    fn add_client(&mut self, pid: u32, charge: Refund) -> Result<ClientId, Error> {
        let mut iospace = Vec::new();
        iospace
            .try_reserve_exact(self.iospace_size as usize)
            .map_err(|_| Error::OutOfMemory)?;
        iospace.resize(self.iospace_size as usize, 0);
        let mut queue = VecDeque::new();
        queue
            .try_reserve_exact(self.queue_per_client as usize + 2)
            .map_err(|_| Error::OutOfMemory)?;
        let client = Client {
            pid,
            iospace,
            irq_vectors: [None; USER_IRQ_LINES_MAX as usize],
            exports: ArrayVec::new(),
            queue,
            outs: 0,
            closed: false,
            ready: false,
            ready_prev: NIL,
            ready_next: NIL,
            charge,
        };
        let boxed = crate::try_box(client).map_err(|_| Error::OutOfMemory)?;
        let id = self.clients.insert(boxed).map_err(|(e, _)| e)?;
        self.live_clients += 1;
        Ok(id)
    }

    /// A process attached: a new client, charged `charge`, and its OPEN
    /// request.
    pub fn open(&mut self, pid: u32, charge: Refund) -> Result<ClientId, Error> {
        let id = self.add_client(pid, charge)?;
        self.push(
            id,
            Request {
                kind: REQUEST_OPEN,
                client: id,
                pid,
                ..Request::default()
            },
        );
        Ok(id)
    }

    /// A client forked: the child gets its own client with a copy of the
    /// parent's I/O space and IRQ map (not its exports), and the server
    /// sees CLONE.
    pub fn clone_client(
        &mut self,
        parent: ClientId,
        child_pid: u32,
        charge: Refund,
    ) -> Result<ClientId, Error> {
        let p = self.client(parent)?;
        let (iospace, irq_vectors) = (p.iospace.clone(), p.irq_vectors);
        let id = self.add_client(child_pid, charge)?;
        if let Some(c) = self.clients.get_mut(id) {
            c.iospace.copy_from_slice(&iospace);
            c.irq_vectors = irq_vectors;
        }
        self.push(
            id,
            Request {
                kind: REQUEST_CLONE,
                client: id,
                pid: child_pid,
                value: parent,
                ..Request::default()
            },
        );
        Ok(id)
    }

    /// Removes the record of client `id` (whatever its state): its queued
    /// requests go, it leaves the round-robin list, and its charge comes
    /// back.
    fn drop_client(&mut self, id: ClientId) -> Option<Refund> {
        self.clients.get(id)?;
        self.unlink_ready(CLIENT_SHAPE.slot(id) as u32);
        let c = self.clients.remove(id)?;
        self.pending -= c.queue.len();
        if !c.closed {
            self.live_clients -= 1;
        }
        if self.in_flight.is_some_and(|(f, _)| f == id) {
            self.in_flight = None;
        }
        Some(c.charge)
    }

    /// A client detached or exited: its id is refused from now on, and a
    /// CLOSE is queued behind what it left (the server sees every request
    /// a client made, then its CLOSE); the record, and its charge, go
    /// when the server takes the CLOSE (a server that never polls thus
    /// costs a client that keeps attaching and detaching its own reserve,
    /// nobody else's).
    pub fn close(&mut self, id: ClientId) {
        let Some(c) = self.clients.get_mut(id) else {
            return;
        };
        if c.closed {
            return;
        }
        c.closed = true;
        let pid = c.pid;
        self.live_clients -= 1;
        if self.in_flight.is_some_and(|(f, _)| f == id) {
            self.in_flight = None;
        }
        self.push(
            id,
            Request {
                kind: REQUEST_CLOSE,
                client: id,
                pid,
                ..Request::default()
            },
        );
    }

    /// `port_out` from a client: queues an OUT request (`Busy` when the
    /// client already has its quota waiting).
    pub fn out(&mut self, id: ClientId, port: u64, size: u64, value: u64) -> Result<(), Error> {
        let c = self.client(id)?;
        let (pid, outs) = (c.pid, c.outs);
        let r = self.out_request(pid, id, port, size, value)?;
        if outs >= self.queue_per_client {
            return Err(Error::Busy);
        }
        self.push(id, r);
        Ok(())
    }

    /// The request an `out` from client `id` of process `pid` makes,
    /// checked but not queued: for handing it straight to a server that
    /// already waits (which is only right when nothing is queued at all).
    /// The record is not looked at: the caller holds the client's
    /// attachment in `pid`'s bus, and a client record lives, open, with
    /// that pid, for as long as its attachment does (detaching, exiting
    /// and revoking take the attachment away before they close it).
    #[inline(always)]
    pub fn out_request(
        &self,
        pid: u32,
        id: ClientId,
        port: u64,
        size: u64,
        value: u64,
    ) -> Result<Request, Error> {
        debug_assert!(self.client(id).is_ok_and(|c| c.pid == pid));
        if !matches!(size, 1 | 2 | 4 | 8) || port > u32::MAX as u64 {
            return Err(Error::InvalidArgument);
        }
        let value = if size == 8 {
            value
        } else {
            value & ((1u64 << (size * 8)) - 1)
        };
        Ok(Request {
            kind: REQUEST_OUT,
            client: id,
            pid,
            port: port as u32,
            size: size as u32,
            value,
        })
    }

    /// The request the server would take next (the head of the first
    /// client on the round-robin list), without taking it.
    #[inline]
    pub fn peek(&self) -> Option<Request> {
        self.clients
            .get_slot(self.ready_head as usize)
            .and_then(|c| c.queue.front().copied())
    }

    /// Takes the request `peek` showed: the client goes to the back of the
    /// round-robin list if it has more. Taking a CLOSE ends the client's
    /// record: its refund comes back.
    #[inline]
    pub fn take(&mut self) -> Option<(Request, Option<Refund>)> {
        let slot = self.ready_head;
        let c = self.clients.get_slot_mut(slot as usize)?;
        let r = c.queue.pop_front()?;
        let more = !c.queue.is_empty();
        if is_out(&r) {
            c.outs -= 1;
        }
        self.pending -= 1;
        // A client with more goes to the back of the list (alone on it,
        // it is there already); one with no more leaves it.
        if !more || self.ready_tail != slot {
            self.unlink_ready(slot);
            if more {
                self.link_ready(slot);
            }
        }
        // Every request carries the id of the client it was queued for.
        let id = r.client;
        debug_assert_eq!(self.clients.id_at(slot as usize), Some(id));
        if r.kind == REQUEST_CLOSE {
            return Some((r, self.drop_client(id)));
        }
        self.in_flight = Some((id, r.pid));
        Some((r, None))
    }

    /// The server took `r` without it being queued (the IPC fast path
    /// hands a request straight to a waiting server): as `take` records.
    #[inline]
    pub fn took(&mut self, r: &Request) {
        self.in_flight = Some((r.client, r.pid));
    }

    /// The server answered client `id` (an I/O-space write or an IRQ): it
    /// is no longer the suspect if the server dies.
    #[inline]
    pub fn answered(&mut self, id: ClientId) {
        if self.in_flight.is_some_and(|(f, _)| f == id) {
            self.in_flight = None;
        }
    }

    /// The device goes away: every client record, with its refund.
    pub fn into_refunds(self) -> impl Iterator<Item = Refund> {
        self.clients.into_values().map(|c| c.charge)
    }
}

mod shared;

#[cfg(test)]
pub(crate) mod audit;
#[cfg(test)]
mod tests;
