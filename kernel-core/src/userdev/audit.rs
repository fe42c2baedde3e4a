//! Test-only: a user device's records as plain data, for the kernel's
//! model tests (which check them against the processes and reserves).

use super::*;

/// One client record, open or closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: ClientId,
    pub pid: u32,
    pub closed: bool,
    pub charge: Refund,
    pub queue: Vec<Request>,
    pub outs: u32,
    pub ready: bool,
    pub iospace_len: usize,
}

/// A device's records and its round-robin list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    pub clients: Vec<ClientRecord>,
    /// The round-robin list from its head, by client id (`None` for a
    /// slot that names no record); at most one pass over the slots.
    pub ready_order: Vec<Option<ClientId>>,
    /// Whether following `ready_prev` from the tail gives the same list
    /// backwards, and the tail is the last one.
    pub ready_links_agree: bool,
    pub pending: usize,
    pub live_clients: usize,
    pub in_flight: Option<(ClientId, u32)>,
}

impl UserDevice {
    /// Every record, as plain data.
    pub fn audit(&self) -> DeviceRecord {
        let clients = self
            .clients
            .iter()
            .map(|(id, c)| ClientRecord {
                id,
                pid: c.pid,
                closed: c.closed,
                charge: c.charge,
                queue: c.queue.iter().copied().collect(),
                outs: c.outs,
                ready: c.ready,
                iospace_len: c.iospace.len(),
            })
            .collect();
        let limit = self.clients.slots_made() + 1;
        let mut ready_order = Vec::new();
        let mut forward = Vec::new();
        let mut at = self.ready_head;
        while at != NIL && ready_order.len() < limit {
            forward.push(at);
            ready_order.push(self.clients.id_at(at as usize));
            at = self
                .clients
                .get_slot(at as usize)
                .map_or(NIL, |c| c.ready_next);
        }
        let mut backward = Vec::new();
        let mut at = self.ready_tail;
        while at != NIL && backward.len() < limit {
            backward.push(at);
            at = self
                .clients
                .get_slot(at as usize)
                .map_or(NIL, |c| c.ready_prev);
        }
        backward.reverse();
        DeviceRecord {
            clients,
            ready_order,
            ready_links_agree: forward == backward,
            pending: self.pending,
            live_clients: self.live_clients,
            in_flight: self.in_flight,
        }
    }
}

/// What a client's owner and its server can observe of one record besides
/// what `DeviceRecord` holds: its I/O space, IRQ map and exports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientView {
    pub id: ClientId,
    pub iospace: Vec<u8>,
    pub irq_vectors: [Option<u8>; USER_IRQ_LINES_MAX as usize],
    pub exports: Vec<Export>,
}

impl UserDevice {
    /// Every record's I/O space, IRQ map and exports.
    pub fn views(&self) -> Vec<ClientView> {
        self.clients
            .iter()
            .map(|(id, c)| ClientView {
                id,
                iospace: c.iospace.clone(),
                irq_vectors: c.irq_vectors,
                exports: c.exports.to_vec(),
            })
            .collect()
    }
}
