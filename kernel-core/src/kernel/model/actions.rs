//! The model's acts of more than one call or of no call at all: a server
//! answering what it was handed and polling again, a client mapping a
//! line and then waiting for answers, a kill (or revoke) through proc
//! (select, then the port), the memory pool's ports, and a CPU exception
//! taken by the current process.
//!
//! Rules: init only takes faults the kernel resolves (it must not die);
//! each act counts what it did in `Stats` only once the kernel agrees it
//! happened (a kill counts if the target is dead afterwards).

use super::{Last, Model, NAMES_AT, RET_PC};
use crate::devices::kdev::KernelState;
use crate::devices::{Attachment, Device, DeviceId};
use crate::fake::Fake;
use crate::kernel::audit;
use crate::kernel::{Settled, UserFault};
use crate::machine::{AddressSpace, Machine};
use crate::process::{INIT_PID, Pid, State};
use abi::Sysno;
use abi::bus::*;
use abi::kdev::*;

impl Model {
    /// A server's loop: answer the request it was handed and take the
    /// next one, or just poll.
    pub(super) fn serve(&mut self, served: &[(u64, DeviceId)]) -> Settled {
        let (h, dev) = self.pick(served).unwrap();
        let frame = self.k.current().frame;
        let request = abi::Request::from_words([frame.rdi, frame.rsi, frame.rdx, frame.r10]);
        // The client it was handed, if it still is one, and a line it mapped.
        let answer = self.k.devices.user(dev).ok().and_then(|u| {
            let c = u.client(request.client).ok()?;
            let line = (0..u.irq_lines as u64).find(|&l| c.irq_vector(l).is_some());
            Some((request.client, line, u.iospace_size))
        });
        match answer {
            Some((client, line, space)) if !self.one_in(5) => {
                let port_size = if space >= 8 && !self.one_in(4) {
                    (self.below(u64::from(space) - 7) << 8) | 8
                } else {
                    0
                };
                let line = line.unwrap_or(u64::MAX);
                let value = self.rng.next();
                self.call(
                    Sysno::DevReplyPoll as u64,
                    [h, client, port_size, value, line, 0],
                )
            }
            _ => self.call(Sysno::DevPoll as u64, [h, 0, 0, 0, 0, 0]),
        }
    }

    /// A client's use of its device: map a line first, then requests that
    /// wait for their answer.
    pub(super) fn use_device(&mut self, clients: &[(u64, DeviceId, u64)]) -> Settled {
        let (h, dev, client) = self.pick(clients).unwrap();
        let (lines, mapped) = match self.k.devices.user(dev) {
            Ok(u) => {
                let c = u.client(client).ok();
                let mapped = (0..16).any(|l| c.is_some_and(|c| c.irq_vector(l).is_some()));
                (u.irq_lines, mapped)
            }
            Err(_) => (0, false),
        };
        if lines > 0 && !mapped {
            let line = self.below(u64::from(lines));
            let vector = 20 + self.below(6);
            return self.call(Sysno::IrqMap as u64, [h, line, vector, 0, 0, 0]);
        }
        match self.below(10) {
            0 => {
                let port = self.below(8);
                self.call(Sysno::PortIn as u64, [h, port, 8, 0, 0, 0])
            }
            1 => {
                let value = self.rng.next();
                self.call(Sysno::PortOut as u64, [h, 0, 8, value, 0, 0])
            }
            _ => {
                let mask = self.reply_mask(dev, client);
                let value = self.rng.next();
                self.call(Sysno::PortOutWait as u64, [h, 0, 8, value, mask, 0])
            }
        }
    }

    /// Kills (or revokes) through a proc handle: select, then the port.
    pub(super) fn kill(&mut self) -> Settled {
        let me = self.me();
        let hs = self.handles(|a, r| {
            r & RIGHT_KILL != 0
                && matches!(
                    a,
                    Attachment::Kernel {
                        state: KernelState::Proc(..),
                        ..
                    }
                )
        });
        let Some(h) = self.pick(&hs) else {
            let rights = RIGHT_READ | RIGHT_WRITE | RIGHT_KILL | RIGHT_CLONE;
            return self.call(
                Sysno::Attach as u64,
                [0, NAMES_AT + 32 * 5, 4, u64::from(rights), 0, 0],
            );
        };
        let target = self.victim();
        let s = self.call(
            Sysno::PortOut as u64,
            [h, u64::from(PROC_PORT_SELECT), 8, target, 0, 0],
        );
        if s != Settled::Run || self.me() != me {
            return s;
        }
        let (port, value) = match self.below(8) {
            0..=4 => (PROC_PORT_KILL, 0),
            5 => (PROC_PORT_KILL_TREE, 0),
            _ => {
                let all = self.handles(|_, _| true);
                (PROC_PORT_REVOKE, self.handle_from(&all))
            }
        };
        let server_with_requests = audit::devices(&self.k).into_iter().any(|(id, _)| {
            matches!(self.k.devices.get(id), Ok(Device::User(u))
                if u.pending_requests() > 0 && u64::from(u.server) == target)
        });
        let s = self.call(Sysno::PortOut as u64, [h, u64::from(port), 8, value, 0, 0]);
        let dead = self
            .k
            .procs
            .get(target as Pid)
            .is_none_or(|p| p.state == State::Zombie);
        if port != PROC_PORT_REVOKE && dead {
            self.stats.kills += 1;
            if server_with_requests {
                self.stats.server_deaths_with_requests += 1;
            }
        }
        s
    }

    /// Memory pool: select, limits, reserves.
    pub(super) fn mempool(&mut self) -> Settled {
        let hs = self.handles(|a, _| {
            matches!(
                a,
                Attachment::Kernel {
                    state: KernelState::Mempool(..),
                    ..
                }
            )
        });
        let Some(h) = self.pick(&hs) else {
            return self.call(
                Sysno::Attach as u64,
                [
                    0,
                    NAMES_AT + 32 * 4,
                    7,
                    u64::from(RIGHT_READ | RIGHT_WRITE),
                    0,
                    0,
                ],
            );
        };
        let me = u64::from(self.me());
        let (port, value) = match self.below(7) {
            0 => (MEMPOOL_PORT_SELECT, me),
            1 => (MEMPOOL_PORT_SELECT, self.victim()),
            2 => (
                MEMPOOL_PORT_LIMIT,
                if self.one_in(3) {
                    MEMPOOL_UNLIMITED
                } else {
                    20 + self.below(600)
                },
            ),
            3 => (MEMPOOL_PORT_NEW_RESERVE, 20 + self.below(300)),
            4 => (MEMPOOL_PORT_CHILD_RESERVE, 20 + self.below(300)),
            5 => (MEMPOOL_PORT_PROCESS_LIMIT, self.below(12)),
            _ => (MEMPOOL_PORT_CHILD_PROCESSES, self.below(6)),
        };
        if self.one_in(3) {
            let port = [MEMPOOL_PORT_USED, MEMPOOL_PORT_FREE, MEMPOOL_PORT_PROCESSES]
                [self.below(3) as usize];
            return self.call(Sysno::PortIn as u64, [h, u64::from(port), 8, 0, 0, 0]);
        }
        self.call(Sysno::PortOut as u64, [h, u64::from(port), 8, value, 0, 0])
    }

    /// The current process takes a CPU exception (init only ones the
    /// kernel resolves: it must not die).
    pub(super) fn fault(&mut self) -> Settled {
        let me = self.me();
        let (addr, _) = self.pages();
        let addr = addr.wrapping_add(self.below(4096));
        let write = !self.one_in(3);
        let vector = match self.below(8) {
            0 => 13,
            1 => 6,
            _ => abi::interrupt::VECTOR_PAGE_FAULT,
        };
        if me == INIT_PID {
            let p = self.k.current();
            let m = p
                .space
                .as_ref()
                .and_then(|s| s.lookup(addr & !0xfff))
                .and_then(|pte| Fake::codec().decode(pte));
            let resolved = vector == abi::interrupt::VECTOR_PAGE_FAULT
                && m.is_some_and(|m| {
                    let allowed = m.prot.read && (!write || m.prot.write);
                    let cow = write && m.was_writable && m.prot.read && Fake::free_frames() > 0;
                    allowed || cow
                });
            if !resolved {
                return self.call(Sysno::Yield as u64, [0; 6]);
            }
        }
        self.last = Last::Fault(me, vector, addr, write);
        self.stats.faults += 1;
        if self.trace {
            eprintln!("{:4} {:?}", self.step, self.last);
        }
        self.k.user_fault(UserFault {
            vector,
            error: 0,
            addr,
            pc: RET_PC,
            write,
            fetch: false,
        });
        let s = self.k.settle();
        self.check(s == Settled::Run);
        s
    }
}
