//! The console's clients: where each one's buffers are, who waits for a
//! line, and who is in the foreground (gets Ctrl-C).
//!
//! Rules: a fixed table (`MAX_CLIENTS`), so no request can make the
//! server allocate; a client gets an entry when it first names a buffer
//! and loses it when it closes; one process may hold at most
//! `MAX_PER_PROCESS` entries, so none can fill the table for the others
//! (a client refused an entry finds its writes and reads end
//! `NotFound`); reads are served in the order they were asked;
//! the last client to ask for a line, or to claim the foreground, is the
//! foreground one.

use abi::userdev::ClientId;
use arrayvec::ArrayVec;
use libmh::Error;

const MAX_CLIENTS: usize = 256;
/// Entries one process may hold.
const MAX_PER_PROCESS: usize = 4;

#[derive(Clone, Copy, Default)]
struct Client {
    id: ClientId,
    pid: u32,
    out: Option<u64>,
    input: Option<u64>,
    /// A read in progress: the most bytes it takes, and when it was asked.
    read: Option<(u64, u64)>,
}

pub struct Clients {
    table: ArrayVec<Client, MAX_CLIENTS>,
    /// Orders reads; grows by one per read asked.
    ticket: u64,
    foreground: Option<ClientId>,
}

impl Clients {
    pub const fn new() -> Clients {
        Clients {
            table: ArrayVec::new_const(),
            ticket: 0,
            foreground: None,
        }
    }

    /// Client `id`'s entry, made for it (process `pid`) if it has none
    /// and there is room for it.
    fn entry(&mut self, id: ClientId, pid: u32) -> Option<&mut Client> {
        if let Some(i) = self.table.iter().position(|c| c.id == id) {
            return self.table.get_mut(i);
        }
        if self.table.iter().filter(|c| c.pid == pid).count() >= MAX_PER_PROCESS {
            return None;
        }
        self.table
            .try_push(Client {
                id,
                pid,
                ..Client::default()
            })
            .ok()?;
        self.table.last_mut()
    }

    pub fn set_out(&mut self, id: ClientId, pid: u32, iova: u64) {
        if let Some(c) = self.entry(id, pid) {
            c.out = Some(iova);
        }
    }

    pub fn set_in(&mut self, id: ClientId, pid: u32, iova: u64) {
        if let Some(c) = self.entry(id, pid) {
            c.input = Some(iova);
        }
    }

    pub fn out_buffer(&self, id: ClientId) -> Option<u64> {
        self.table.iter().find(|c| c.id == id)?.out
    }

    /// Records a read of at most `max` bytes; `NotFound` without an input
    /// buffer (or an entry: one refused for its process's share),
    /// `Busy` with a read already waiting.
    pub fn ask_read(&mut self, id: ClientId, max: u64) -> Result<(), Error> {
        if max == 0 {
            return Err(Error::InvalidArgument);
        }
        self.ticket += 1;
        let ticket = self.ticket;
        // No entry is made just to be refused: a read needs an input
        // buffer, which made one.
        let c = self
            .table
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or(Error::NotFound)?;
        if c.input.is_none() {
            return Err(Error::NotFound);
        }
        if c.read.is_some() {
            return Err(Error::Busy);
        }
        c.read = Some((max, ticket));
        self.foreground = Some(id);
        Ok(())
    }

    /// The oldest waiting read: (client, most bytes, input buffer).
    pub fn next_reader(&self) -> Option<(ClientId, u64, u64)> {
        self.table
            .iter()
            .filter_map(|c| Some((c.id, c.read?, c.input?)))
            .min_by_key(|&(_, (_, ticket), _)| ticket)
            .map(|(id, (max, _), iova)| (id, max, iova))
    }

    pub fn read_done(&mut self, id: ClientId) {
        if let Some(c) = self.table.iter_mut().find(|c| c.id == id) {
            c.read = None;
        }
    }

    pub fn set_foreground(&mut self, id: ClientId) {
        self.foreground = Some(id);
    }

    pub fn foreground(&self) -> Option<ClientId> {
        self.foreground
    }

    pub fn remove(&mut self, id: ClientId) {
        self.table.retain(|c| c.id != id);
        if self.foreground == Some(id) {
            self.foreground = None;
        }
    }
}
