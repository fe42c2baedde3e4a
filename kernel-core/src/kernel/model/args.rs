//! How the model picks a call's arguments: handles of the current
//! process by kind (mostly a fitting one, sometimes any, stale or
//! garbage), page ranges and protections for the memory calls, port
//! sizes, reply masks, clients for a server to answer, victims to kill.
//!
//! Rules: every choice is drawn from the model's `Rng` and only reads the
//! kernel (nothing here makes a call); garbage words are meant to be
//! refused, never to touch what init had at boot (`allowed_for_init`).

use super::{Model, SCRATCH, VM_BASE, VM_PAGES};
use crate::devices::{Attachment, Device, DeviceId};
use crate::kernel::audit;
use crate::process::Pid;

impl Model {
    /// A word for a garbage argument.
    pub(super) fn garbage(&mut self) -> u64 {
        match self.below(10) {
            0 => 0,
            1 => self.below(16),
            2 => u64::MAX,
            3 => self.rng.next(),
            4 => {
                let hs: Vec<u64> = self.k.current().bus.handles().collect();
                self.pick(&hs).unwrap_or(1)
            }
            5 => SCRATCH + self.below(0x1000),
            6 => 1 << self.below(64),
            7 => {
                let pids = self.seen_pids.clone();
                u64::from(self.pick(&pids).unwrap_or(1))
            }
            8 => VM_BASE + 4096 * self.below(VM_PAGES),
            _ => abi::layout::USER_END - 4096 * self.below(4),
        }
    }

    /// Handles of the current process that `f` selects.
    pub(super) fn handles(&self, f: impl Fn(&Attachment, u32) -> bool) -> Vec<u64> {
        let p = self.k.procs.get(self.me()).unwrap();
        p.bus
            .iter()
            .filter(|(_, e)| f(&e.value, e.rights))
            .map(|(h, _)| h)
            .collect()
    }

    /// One of `hs` mostly; else any handle, a stale one or garbage.
    pub(super) fn handle_from(&mut self, hs: &[u64]) -> u64 {
        if !hs.is_empty() && !self.one_in(8) {
            return self.pick(hs).unwrap();
        }
        match self.below(3) {
            0 => {
                let all = self.handles(|_, _| true);
                self.pick(&all).unwrap_or(0)
            }
            1 => {
                let stale = self.stale.clone();
                self.pick(&stale).unwrap_or(77)
            }
            _ => self.garbage(),
        }
    }

    pub(super) fn user_handles(&self) -> Vec<(u64, DeviceId, u64)> {
        let p = self.k.procs.get(self.me()).unwrap();
        p.bus
            .iter()
            .filter_map(|(h, e)| match e.value {
                Attachment::Client { dev, client } => Some((h, dev, client)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn served(&self) -> Vec<(u64, DeviceId)> {
        let p = self.k.procs.get(self.me()).unwrap();
        p.bus
            .iter()
            .filter_map(|(h, e)| match e.value {
                Attachment::Serve { dev } => Some((h, dev)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn size(&mut self) -> u64 {
        [1, 2, 4, 8, 8, 8, 3, 0][self.below(8) as usize]
    }

    /// A range of pages for the memory calls.
    pub(super) fn pages(&mut self) -> (u64, u64) {
        let n = match self.below(20) {
            0 => 64 + self.below(140),
            1..=8 => 1,
            _ => 1 + self.below(8),
        };
        let n = n.min(VM_PAGES);
        let start = self.below(VM_PAGES - n + 1);
        match self.below(300) {
            0 => (SCRATCH, 4096),
            1..=4 => (self.garbage() & !0xfff, 4096 * (1 + self.below(4))),
            5..=9 => (self.garbage(), self.garbage()),
            _ => (VM_BASE + 4096 * start, 4096 * n),
        }
    }

    pub(super) fn prot(&mut self) -> u64 {
        [1, 3, 3, 3, 5, 0, 7, 0x107, 8][self.below(9) as usize]
    }

    /// The vectors client handle `h` (of device `dev`, client `client`)
    /// mapped, as a mask; sometimes other masks.
    pub(super) fn reply_mask(&mut self, dev: DeviceId, client: u64) -> u64 {
        let mut mask = 0;
        if let Ok(u) = self.k.devices.user(dev)
            && let Ok(c) = u.client(client)
        {
            for line in 0..16 {
                if let Some(v) = c.irq_vector(line) {
                    mask |= 1 << v;
                }
            }
        }
        match self.below(12) {
            0 => 0,
            1 => 1 << 63,
            2 => 1 << self.below(63),
            3 => mask | 1,
            _ if mask == 0 => 1 << (20 + self.below(10)),
            _ => mask,
        }
    }

    /// A client id of `dev` for its server to answer.
    pub(super) fn client_of(&mut self, dev: DeviceId) -> u64 {
        let (live, closed) = match self.k.devices.user(dev) {
            Ok(u) => {
                let a = u.audit();
                let live: Vec<u64> = a
                    .clients
                    .iter()
                    .filter(|c| !c.closed)
                    .map(|c| c.id)
                    .collect();
                let closed: Vec<u64> = a
                    .clients
                    .iter()
                    .filter(|c| c.closed)
                    .map(|c| c.id)
                    .collect();
                (live, closed)
            }
            Err(_) => (Vec::new(), Vec::new()),
        };
        match self.below(10) {
            0..=5 => self.pick(&live).unwrap_or(0),
            6 | 7 => self.k.current().frame.rsi,
            8 => self.pick(&closed).unwrap_or(1 << 16),
            _ => self.garbage(),
        }
    }

    /// A pid to kill: often a server with requests waiting.
    pub(super) fn victim(&mut self) -> u64 {
        let busy: Vec<Pid> = audit::devices(&self.k)
            .into_iter()
            .filter_map(|(id, _)| match self.k.devices.get(id) {
                Ok(Device::User(u)) if u.pending_requests() > 0 => Some(u.server),
                _ => None,
            })
            .collect();
        let live = self.live_pids();
        match self.below(10) {
            0..=3 if !busy.is_empty() => u64::from(self.pick(&busy).unwrap()),
            0..=6 => u64::from(self.pick(&live).unwrap()),
            7 => u64::from(self.me()),
            _ => {
                let seen = self.seen_pids.clone();
                u64::from(self.pick(&seen).unwrap())
            }
        }
    }
}
