//! The timer server's bookkeeping: each client's alarms, in a pool of
//! `TIMER_CLIENTS_MAX` entries found through the slot part of the client
//! id (unique among live clients), and the decision of which alarms are
//! due.
//!
//! Rules: nothing here reads a clock; `now` is passed in, so an alarm is
//! due exactly when `now >= deadline`. A periodic alarm's deadlines are
//! `first + k * period`, never shifted by a late wake-up: a late service
//! counts every deadline that has passed (so the counter is `k` only
//! once the `k`-th deadline is reached) and the next one stays on the
//! grid. Ids are compared whole, so a stale id never reaches a newcomer.

use abi::Error;
use abi::timer::{
    TIMER_ALARMS_MAX, TIMER_CLIENTS_MAX, TIMER_CLIENTS_PER_PROCESS, TIMER_PERIOD_MIN,
};
use abi::userdev::{CLIENT_SLOT_BITS, ClientId};

const ALARMS: usize = TIMER_ALARMS_MAX as usize;
const CLIENTS: usize = TIMER_CLIENTS_MAX as usize;
/// Client slots the kernel may use: the index has an entry for each.
const SLOTS: usize = 1 << CLIENT_SLOT_BITS;

#[derive(Clone, Copy, Default)]
struct Alarm {
    armed: bool,
    deadline: u64,
    period: u64,
    fired: u64,
}

#[derive(Clone, Copy, Default)]
struct Client {
    /// The whole client id, if the entry is in use.
    id: Option<ClientId>,
    /// Its process.
    pid: u32,
    /// The period of the next alarm armed (0: one-shot).
    next_period: u64,
    alarms: [Alarm; ALARMS],
}

/// Every client's alarms.
pub struct Table {
    clients: [Client; CLIENTS],
    /// For each kernel client slot: its entry in `clients`, plus one (0:
    /// none).
    index: [u16; SLOTS],
    live: usize,
}

fn slot_of(id: ClientId) -> usize {
    (id as usize) & (SLOTS - 1)
}

impl Table {
    pub fn new() -> Table {
        Table {
            clients: [Client::default(); CLIENTS],
            index: [0; SLOTS],
            live: 0,
        }
    }

    /// Clients open now.
    pub fn live(&self) -> usize {
        self.live
    }

    fn client(&mut self, id: ClientId) -> Result<&mut Client, Error> {
        let at = self.index[slot_of(id)];
        match self.clients.get_mut((at as usize).wrapping_sub(1)) {
            Some(c) if c.id == Some(id) => Ok(c),
            _ => Err(Error::NotFound),
        }
    }

    /// A new client (OPEN or CLONE) of process `pid`: no alarms. False when
    /// the pool is full or `pid` already has `TIMER_CLIENTS_PER_PROCESS`:
    /// the newcomer is not served (its requests end `NotFound`), and no
    /// one else loses anything. (Linear in the pool: opens are rare.)
    pub fn open(&mut self, id: ClientId, pid: u32) -> bool {
        if self.client(id).is_ok() {
            return true;
        }
        let mine = self
            .clients
            .iter()
            .filter(|c| c.id.is_some() && c.pid == pid)
            .count();
        if mine >= TIMER_CLIENTS_PER_PROCESS as usize {
            return false;
        }
        let Some(free) = self.clients.iter().position(|c| c.id.is_none()) else {
            return false;
        };
        self.clients[free] = Client {
            id: Some(id),
            pid,
            ..Client::default()
        };
        self.index[slot_of(id)] = free as u16 + 1;
        self.live += 1;
        true
    }

    /// A client left: its alarms go with it.
    pub fn close(&mut self, id: ClientId) {
        if let Ok(c) = self.client(id) {
            *c = Client::default();
            self.index[slot_of(id)] = 0;
            self.live -= 1;
        }
    }

    /// `TIMER_PORT_PERIOD`.
    pub fn set_period(&mut self, id: ClientId, period: u64) -> Result<u64, Error> {
        if period != 0 && period < TIMER_PERIOD_MIN {
            return Err(Error::InvalidArgument);
        }
        self.client(id)?.next_period = period;
        Ok(0)
    }

    /// `TIMER_PORT_ARM`: returns the slot.
    pub fn arm(&mut self, id: ClientId, deadline: u64, now: u64) -> Result<u64, Error> {
        let c = self.client(id)?;
        let period = core::mem::take(&mut c.next_period);
        if deadline <= now {
            return Err(Error::InvalidArgument);
        }
        let slot = c
            .alarms
            .iter()
            .position(|a| !a.armed)
            .ok_or(Error::LimitReached)?;
        c.alarms[slot] = Alarm {
            armed: true,
            deadline,
            period,
            fired: 0,
        };
        Ok(slot as u64)
    }

    /// `TIMER_PORT_CANCEL`.
    pub fn cancel(&mut self, id: ClientId, slot: u64) -> Result<u64, Error> {
        let c = self.client(id)?;
        match c.alarms.get_mut(slot as usize) {
            Some(a) if a.armed => {
                a.armed = false;
                Ok(0)
            }
            _ => Err(Error::NotFound),
        }
    }

    /// Counts every deadline passed by `now`, calling `fired(client, slot,
    /// count)` for each alarm whose counter moved; returns the earliest
    /// deadline still ahead, if any.
    pub fn fire_due(&mut self, now: u64, mut fired: impl FnMut(ClientId, u32, u64)) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut seen = 0;
        for c in self.clients.iter_mut() {
            if seen == self.live {
                break;
            }
            let Some(id) = c.id else { continue };
            seen += 1;
            for (slot, a) in c.alarms.iter_mut().enumerate() {
                if !a.armed {
                    continue;
                }
                if a.deadline <= now {
                    match (now - a.deadline).checked_div(a.period) {
                        None => {
                            a.fired += 1;
                            a.armed = false;
                        }
                        Some(late) => {
                            let n = late + 1;
                            a.fired = a.fired.saturating_add(n);
                            match n
                                .checked_mul(a.period)
                                .and_then(|step| a.deadline.checked_add(step))
                            {
                                Some(d) => a.deadline = d,
                                None => a.armed = false,
                            }
                        }
                    }
                    fired(id, slot as u32, a.fired);
                }
                if a.armed {
                    next = Some(next.map_or(a.deadline, |n| n.min(a.deadline)));
                }
            }
        }
        next
    }
}
