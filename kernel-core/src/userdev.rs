//! User devices: the state the kernel keeps for a device served by a
//! process (see `abi::userdev`): its clients (each with its I/O space, IRQ
//! map and exports) and the queue of requests the server has not polled.
//!
//! Rules: every client id, port, size, line, address and length that comes
//! from a process is checked here and refused with an `abi::Error` (the
//! original trusted the server's client ids and wrote out of bounds);
//! requests leave in the order they were queued, so each client's requests
//! are seen in order; a full queue is `Busy`, never a silent drop; a client
//! id is `slot | generation << 10`, so the id of a closed client stays
//! refused (`NotFound`) even after its slot serves a new client: a server
//! still answering an old request cannot reach the newcomer.

extern crate alloc;

use abi::Error;
use abi::userdev::*;

/// Client ids: slot in the low bits, generation above (ids stay < 2^31).
const CLIENT_SLOT_BITS: u32 = 10;
const CLIENT_SLOT_MASK: u64 = (1 << CLIENT_SLOT_BITS) - 1;
const CLIENT_GEN_MASK: u32 = (1 << 21) - 1;
const _: () = assert!(USER_CLIENTS_MAX as u64 == CLIENT_SLOT_MASK + 1);
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use arrayvec::{ArrayString, ArrayVec};

/// One exported range: the client's pages `[iova, iova+len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Export {
    pub iova: u64,
    pub len: u64,
}

/// One client of a user device.
#[derive(Clone, Debug)]
pub struct Client {
    pub pid: u32,
    iospace: Vec<u8>,
    /// The client's vector for each line, if it mapped the line.
    irq_vectors: [Option<u8>; USER_IRQ_LINES_MAX as usize],
    exports: ArrayVec<Export, { EXPORTS_MAX as usize }>,
}

/// A client slot: the generation (bumped when its client closes) beside
/// the client, so finding a client by id is one bounds check and one load.
#[derive(Clone, Debug)]
struct ClientSlot {
    generation: u32,
    client: Option<Client>,
}

/// A user device.
#[derive(Debug)]
pub struct UserDevice {
    pub name: ArrayString<32>,
    pub server: u32,
    pub server_vector: u32,
    pub irq_lines: u32,
    pub iospace_size: u32,
    slots: Vec<ClientSlot>,
    live_clients: usize,
    queue: VecDeque<Request>,
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
        {
            return Err(Error::InvalidArgument);
        }
        let mut short = ArrayString::new();
        short.push_str(name);
        Ok(UserDevice {
            name: short,
            server,
            server_vector: config.vector,
            irq_lines: config.irq_lines,
            iospace_size: config.iospace_size,
            slots: Vec::new(),
            live_clients: 0,
            queue: VecDeque::new(),
        })
    }

    pub fn client_count(&self) -> usize {
        self.live_clients
    }

    #[inline]
    pub fn pending_requests(&self) -> usize {
        self.queue.len()
    }

    /// The slot of client id `id`, if it names a live client.
    fn slot(&self, id: u64) -> Result<usize, Error> {
        let slot = (id & CLIENT_SLOT_MASK) as usize;
        match self.slots.get(slot) {
            Some(s) if s.generation as u64 == id >> CLIENT_SLOT_BITS && s.client.is_some() => {
                Ok(slot)
            }
            _ => Err(Error::NotFound),
        }
    }

    fn id_of(&self, slot: usize) -> u32 {
        slot as u32 | self.slots[slot].generation << CLIENT_SLOT_BITS
    }

    /// The live client `id` names.
    #[inline]
    pub fn client(&self, id: u64) -> Result<&Client, Error> {
        match self.slots.get((id & CLIENT_SLOT_MASK) as usize) {
            Some(s) if s.generation as u64 == id >> CLIENT_SLOT_BITS => {
                s.client.as_ref().ok_or(Error::NotFound)
            }
            _ => Err(Error::NotFound),
        }
    }

    /// The live client `id` names, to change.
    #[inline]
    pub fn client_mut(&mut self, id: u64) -> Result<&mut Client, Error> {
        match self.slots.get_mut((id & CLIENT_SLOT_MASK) as usize) {
            Some(s) if s.generation as u64 == id >> CLIENT_SLOT_BITS => {
                s.client.as_mut().ok_or(Error::NotFound)
            }
            _ => Err(Error::NotFound),
        }
    }

    /// The live client ids and their processes.
    pub fn clients(&self) -> impl Iterator<Item = (u32, &Client)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.client.as_ref().map(|c| (self.id_of(i), c)))
    }

    fn enqueue(&mut self, r: Request) -> Result<(), Error> {
        if self.queue.len() >= REQUEST_QUEUE_MAX as usize {
            return Err(Error::Busy);
        }
        self.queue.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        self.queue.push_back(r);
        Ok(())
    }

    /// Makes room for one more request (so that queueing a CLOSE, which
    /// cannot be refused, never fails).
    fn reserve_request(&mut self) -> Result<(), Error> {
        self.queue.try_reserve(1).map_err(|_| Error::OutOfMemory)
    }

    fn add_client(&mut self, client: Client) -> Result<u32, Error> {
        let free = self.slots.iter().position(|s| s.client.is_none());
        let id = match free {
            Some(id) => id,
            None if self.slots.len() < USER_CLIENTS_MAX as usize => {
                self.slots.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
                self.slots.push(ClientSlot {
                    generation: 0,
                    client: None,
                });
                self.slots.len() - 1
            }
            None => return Err(Error::LimitReached),
        };
        self.slots[id].client = Some(client);
        self.live_clients += 1;
        Ok(self.id_of(id))
    }

    /// Empties a client slot; its id is dead from now on.
    fn drop_client(&mut self, slot: usize) -> Option<Client> {
        let s = self.slots.get_mut(slot)?;
        let c = s.client.take()?;
        s.generation = (s.generation + 1) & CLIENT_GEN_MASK;
        self.live_clients -= 1;
        Some(c)
    }

    fn blank_client(&self, pid: u32) -> Result<Client, Error> {
        let mut iospace = Vec::new();
        iospace
            .try_reserve_exact(self.iospace_size as usize)
            .map_err(|_| Error::OutOfMemory)?;
        iospace.resize(self.iospace_size as usize, 0);
        Ok(Client {
            pid,
            iospace,
            irq_vectors: [None; USER_IRQ_LINES_MAX as usize],
            exports: ArrayVec::new(),
        })
    }

    /// A process attached: a new client and its OPEN request.
    pub fn open(&mut self, pid: u32) -> Result<u32, Error> {
        let client = self.blank_client(pid)?;
        self.reserve_request()?;
        let id = self.add_client(client)?;
        let r = Request {
            kind: REQUEST_OPEN,
            client: id,
            pid,
            ..Request::default()
        };
        if let Err(e) = self.enqueue(r) {
            self.drop_client((id as u64 & CLIENT_SLOT_MASK) as usize);
            return Err(e);
        }
        Ok(id)
    }

    /// A client forked: the child gets its own client with a copy of the
    /// parent's I/O space and IRQ map (not its exports), and the server
    /// sees CLONE.
    pub fn clone_client(&mut self, parent: u32, child_pid: u32) -> Result<u32, Error> {
        let p = self.client(parent as u64)?;
        let mut c = self.blank_client(child_pid)?;
        c.iospace.copy_from_slice(&p.iospace);
        c.irq_vectors = p.irq_vectors;
        self.reserve_request()?;
        let id = self.add_client(c)?;
        let r = Request {
            kind: REQUEST_CLONE,
            client: id,
            pid: child_pid,
            parent_client: parent,
            ..Request::default()
        };
        if let Err(e) = self.enqueue(r) {
            self.drop_client((id as u64 & CLIENT_SLOT_MASK) as usize);
            return Err(e);
        }
        Ok(id)
    }

    /// A client detached or exited: it is gone, the server sees CLOSE.
    pub fn close(&mut self, id: u32) {
        let Ok(slot) = self.slot(id as u64) else {
            return;
        };
        let Some(c) = self.drop_client(slot) else {
            return;
        };
        // A CLOSE goes in even past the queue limit: losing it would leave
        // the server believing in a client that is gone.
        let r = Request {
            kind: REQUEST_CLOSE,
            client: id,
            pid: c.pid,
            ..Request::default()
        };
        if self.queue.try_reserve(1).is_ok() {
            self.queue.push_back(r);
        }
    }

    /// `port_out` from a client: queues an OUT request.
    pub fn out(&mut self, id: u32, port: u64, size: u64, value: u64) -> Result<(), Error> {
        let r = self.out_request(id, port, size, value)?;
        self.enqueue(r)
    }

    /// The request an `out` from client `id` makes, checked but not
    /// queued: for handing it straight to a server that already waits
    /// (which is only right when nothing is queued before it).
    #[inline(always)]
    pub fn out_request(&self, id: u32, port: u64, size: u64, value: u64) -> Result<Request, Error> {
        let pid = self.client(id as u64)?.pid;
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
            parent_client: 0,
            port: port as u32,
            size: size as u32,
            value,
        })
    }

    /// The next request, oldest first.
    pub fn poll(&mut self) -> Option<Request> {
        self.queue.pop_front()
    }

    /// Puts a polled request back at the head (delivery to the server
    /// failed).
    pub fn unpoll(&mut self, r: Request) {
        self.queue.push_front(r);
    }

    /// `port_in` from a client: reads its I/O space (little-endian).
    pub fn read_iospace(&self, id: u32, port: u64, size: u64) -> Result<u64, Error> {
        let (a, b) = port_range(port, size, self.iospace_size as usize)?;
        let c = self.client(id as u64)?;
        let mut v = [0u8; 8];
        v[..b - a].copy_from_slice(&c.iospace[a..b]);
        Ok(u64::from_le_bytes(v))
    }

    /// `dev_write_iospace` from the server.
    pub fn write_iospace(
        &mut self,
        id: u64,
        port: u64,
        size: u64,
        value: u64,
    ) -> Result<(), Error> {
        self.client_mut(id)?.write_iospace(port, size, value)
    }

    /// `irq_map` from a client: deliver `line` as its `vector`.
    pub fn irq_map(&mut self, id: u32, line: u64, vector: u64) -> Result<(), Error> {
        if line >= self.irq_lines as u64 || vector >= abi::interrupt::VECTOR_COUNT as u64 {
            return Err(Error::InvalidArgument);
        }
        self.client_mut(id as u64)?.irq_vectors[line as usize] = Some(vector as u8);
        Ok(())
    }

    /// `dev_irq` from the server: where to raise `line` of client `id`
    /// (`None` if the client has not mapped it, which is not an error).
    pub fn irq_target(&self, id: u64, line: u64) -> Result<Option<(u32, u32)>, Error> {
        if line >= self.irq_lines as u64 {
            return Err(Error::InvalidArgument);
        }
        let c = self.client(id)?;
        Ok(c.irq_vector(line).map(|v| (c.pid, v)))
    }

    /// `export` from a client: the server may now reach `[va, va+len)`
    /// (which the caller has checked is the client's user memory). The
    /// iova is the client's address.
    pub fn export(&mut self, id: u32, va: u64, len: u64) -> Result<u64, Error> {
        let c = self.client_mut(id as u64)?;
        let end = va.checked_add(len).ok_or(Error::InvalidArgument)?;
        if len == 0 {
            return Err(Error::InvalidArgument);
        }
        if c.exports
            .iter()
            .any(|e| va < e.iova + e.len && e.iova < end)
        {
            return Err(Error::AlreadyExists);
        }
        c.exports
            .try_push(Export { iova: va, len })
            .map_err(|_| Error::LimitReached)?;
        Ok(va)
    }

    /// Forgets every export of client `id` (its program was replaced by
    /// exec: the addresses mean nothing now).
    pub fn clear_exports(&mut self, id: u32) {
        if let Ok(c) = self.client_mut(id as u64) {
            c.exports.clear();
        }
    }

    /// `unexport` from a client.
    pub fn unexport(&mut self, id: u32, iova: u64) -> Result<(), Error> {
        let c = self.client_mut(id as u64)?;
        let i = c
            .exports
            .iter()
            .position(|e| e.iova == iova)
            .ok_or(Error::NotFound)?;
        c.exports.remove(i);
        Ok(())
    }

    /// For `dev_dma_read/write`: the client's process, if `[iova,
    /// iova+len)` lies inside one export of client `id` to this device.
    pub fn dma_target(&self, id: u64, iova: u64, len: u64) -> Result<u32, Error> {
        let c = self.client(id)?;
        let end = iova.checked_add(len).ok_or(Error::InvalidArgument)?;
        if c.exports
            .iter()
            .any(|e| iova >= e.iova && end <= e.iova + e.len)
        {
            Ok(c.pid)
        } else {
            Err(Error::AccessDenied)
        }
    }
}

#[cfg(test)]
mod tests;
