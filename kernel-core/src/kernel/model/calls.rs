//! How the model picks the current process's next system call (`act`):
//! a process that was stopped mid-call makes it again, one in a handler
//! mostly returns from it, a server mostly serves and a client mostly
//! waits for answers; otherwise one call of the ABI, drawn by weight, with
//! arguments from `args` (or a multi-call act from `actions`).
//!
//! Rules: each call goes through `Model::call` (never `dispatch`
//! directly); the weights and the order of the draws are the seed's run,
//! so changing them changes every seed.

use super::{
    CMD, CMD_AT, CONFIGS, CONFIGS_AT, DMA_AT, ELF_AT, HANDLER_PC, KERNEL_NAMES, LIST, LIST_AT,
    MAX_LIVE, Model, NAMES, NAMES_AT, OUT_AT, SYSCALL_PC, VM_BASE,
};
use crate::devices::kdev::KernelState;
use crate::devices::{Attachment, DeviceId};
use crate::fake;
use crate::kernel::Settled;
use crate::machine::UserFrame;
use crate::process::{INIT_PID, Pid};
use abi::Sysno;
use abi::bus::*;

impl Model {
    /// The current process does something.
    pub(super) fn act(&mut self) -> Settled {
        let me = self.me();
        let frame = self.k.current().frame;
        if frame.rip == SYSCALL_PC {
            // A sleeping wait_child woken, or a long call stopped at a
            // preemption point: the same call again.
            let (n, a) = frame.syscall();
            return self.call(n, a);
        }
        if frame.rip == HANDLER_PC && !self.one_in(4) {
            return self.call(Sysno::IntReturn as u64, [frame.rdi, 0, 0, 0, 0, 0]);
        }
        // A server mostly serves, a client mostly waits for its answers.
        let served = self.served();
        if !served.is_empty() && self.below(100) < 60 {
            return self.serve(&served);
        }
        let clients: Vec<(u64, DeviceId, u64)> = self
            .user_handles()
            .into_iter()
            .filter(|&(_, dev, _)| self.k.devices.get(dev).is_ok())
            .collect();
        if !clients.is_empty() && self.below(100) < 45 {
            return self.use_device(&clients);
        }
        let live = self.live_pids().len();
        use Sysno::*;
        let c = |n: Sysno| n as u64;
        match self.below(100) {
            0..=7 if live < MAX_LIVE => {
                let s = self.call(c(Fork), [0; 6]);
                let r = self.k.procs.get(me).unwrap().frame.result() as isize;
                if r > 0 {
                    self.stats.forks += 1;
                    self.seen_pids.push(r as Pid);
                    self.stats.max_live = self.stats.max_live.max(live as u64 + 1);
                }
                s
            }
            0..=11 => {
                let flags = self.below(2);
                let out = if self.one_in(10) {
                    self.garbage()
                } else {
                    OUT_AT
                };
                self.call(c(WaitChild), [out, flags, 0, 0, 0, 0])
            }
            12..=13 => {
                if me != INIT_PID {
                    self.stats.exits += 1;
                }
                let code = self.below(4);
                self.call(c(Exit), [code, 0, 0, 0, 0, 0])
            }
            14..=16 => self.call(c(Yield), [0; 6]),
            17..=20 => {
                let (va, len) = self.pages();
                let prot = self.prot();
                self.call(c(VmMap), [va, len, prot, 0, 0, 0])
            }
            // More mempool: its limits make calls run out of memory.
            22 if self.one_in(2) => self.mempool(),
            21..=22 => {
                let (va, len) = self.pages();
                self.call(c(VmUnmap), [va, len, 0, 0, 0, 0])
            }
            23 => {
                let (va, len) = self.pages();
                let prot = self.prot();
                self.call(c(VmProtect), [va, len, prot, 0, 0, 0])
            }
            24 => {
                let (dst, len) = self.pages();
                let (src, _) = self.pages();
                self.call(c(VmMove), [dst, src, len, 0, 0, 0])
            }
            25..=27 => {
                // A kernel device.
                let name = self.below(KERNEL_NAMES as u64 + 1) as usize;
                let rights = match self.below(4) {
                    0 => self.rng.next() as u32 & RIGHTS_ALL,
                    _ => {
                        RIGHT_READ | RIGHT_WRITE | RIGHT_CLONE | RIGHT_IRQ & self.rng.next() as u32
                    }
                };
                let rights = if name == 5 {
                    rights | RIGHT_KILL
                } else {
                    rights
                };
                let coe = if self.one_in(6) {
                    ATTACH_CLOSE_ON_EXEC
                } else {
                    0
                };
                let len = NAMES[name].len() as u64;
                self.call(
                    c(Attach),
                    [
                        0,
                        NAMES_AT + 32 * name as u64,
                        len,
                        u64::from(rights | coe),
                        0,
                        0,
                    ],
                )
            }
            28..=29 => {
                let mut all = self.handles(|_, _| true);
                if !self.one_in(10) {
                    all.retain(|&h| h != 0);
                }
                let h = self.handle_from(&all);
                let s = self.call(c(Detach), [h, 0, 0, 0, 0, 0]);
                if s == Settled::Run && self.me() == me && self.k.current().frame.result() == 0 {
                    self.stale.push(h);
                }
                s
            }
            30..=34 => self.kill(),
            35..=39 | 97..=99 => {
                let i = self.below(CONFIGS.len() as u64);
                let reg = if self.one_in(10) { self.garbage() } else { 0 };
                let s = self.call(c(DevCreate), [reg, CONFIGS_AT + 64 * i, 0, 0, 0, 0]);
                if s == Settled::Run && (self.k.current().frame.result() as isize) >= 0 {
                    self.stats.devices_made += 1;
                }
                s
            }
            40..=45 | 94..=96 => {
                // A user device, as a client: mostly one that exists.
                let names: Vec<usize> = (6..10)
                    .filter(|&i| self.k.devices.lookup(NAMES[i]).is_some())
                    .collect();
                let name = match self.pick(&names) {
                    Some(i) if !self.one_in(5) => i,
                    _ => 6 + self.below(5) as usize,
                };
                let rights = match self.below(5) {
                    0 => self.rng.next() as u32 & RIGHTS_ALL,
                    1 => RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ | RIGHT_DMA,
                    _ => RIGHT_READ | RIGHT_WRITE | RIGHT_IRQ | RIGHT_DMA | RIGHT_CLONE,
                };
                let len = NAMES[name].len() as u64;
                self.call(
                    c(Attach),
                    [0, NAMES_AT + 32 * name as u64, len, u64::from(rights), 0, 0],
                )
            }
            46..=48 => {
                let hs: Vec<u64> = self.user_handles().iter().map(|x| x.0).collect();
                let h = self.handle_from(&hs);
                let port = self.below(4);
                let size = self.size();
                let value = self.rng.next();
                self.call(c(PortOut), [h, port, size, value, 0, 0])
            }
            49..=50 => {
                let hs = self.handles(|_, _| true);
                let h = self.handle_from(&hs);
                let port = if self.one_in(2) {
                    self.below(16)
                } else {
                    self.below(260)
                };
                let size = self.size();
                self.call(c(PortIn), [h, port, size, 0, 0, 0])
            }
            51..=57 => {
                let us = self.user_handles();
                let (h, mask) = match self.pick(&us) {
                    Some((h, dev, client)) if !self.one_in(8) => (h, self.reply_mask(dev, client)),
                    _ => {
                        let all = self.handles(|_, _| true);
                        (self.handle_from(&all), 1 << self.below(64))
                    }
                };
                let port = self.below(4);
                let size = if self.one_in(10) { self.size() } else { 8 };
                let value = self.rng.next();
                self.call(c(PortOutWait), [h, port, size, value, mask, 0])
            }
            58..=60 => {
                let us = self.user_handles();
                let (h, lines) = match self.pick(&us) {
                    Some((h, dev, _)) => (h, self.k.devices.user(dev).map_or(1, |u| u.irq_lines)),
                    None => (self.garbage(), 1),
                };
                let line = self.below(u64::from(lines) + 1);
                let vector = match self.below(6) {
                    0 => self.below(70),
                    _ => 20 + self.below(6),
                };
                self.call(c(IrqMap), [h, line, vector, 0, 0, 0])
            }
            61..=64 => {
                let sv = self.served();
                let h = match self.pick(&sv) {
                    Some((h, _)) if !self.one_in(10) => h,
                    _ => self.garbage(),
                };
                let out = match self.below(8) {
                    0 | 1 => OUT_AT + 0x80,
                    2 => self.garbage(),
                    _ => 0,
                };
                let flags = if self.one_in(3) {
                    abi::syscall::POLL_NOWAIT
                } else {
                    0
                };
                let s = self.call(c(DevPoll), [h, out, flags, 0, 0, 0]);
                self.stats.polls += 1;
                s
            }
            65..=70 => {
                let sv = self.served();
                let (h, dev) = match self.pick(&sv) {
                    Some(x) if !self.one_in(10) => x,
                    _ => (self.garbage(), 0),
                };
                let client = self.client_of(dev);
                let (lines, space) = self
                    .k
                    .devices
                    .user(dev)
                    .map_or((1, 8), |u| (u.irq_lines, u.iospace_size));
                let port_size = match self.below(6) {
                    0 => 0,
                    1 => self.garbage(),
                    _ => {
                        let size = self.size();
                        (self.below(u64::from(space) + 2) << 8) | size
                    }
                };
                let line = match self.below(6) {
                    0 => u64::MAX,
                    1 => self.garbage(),
                    _ => self.below(u64::from(lines).max(1)),
                };
                let out = match self.below(10) {
                    0 => OUT_AT + 0x80,
                    1 => self.garbage(),
                    _ => 0,
                };
                let value = self.rng.next();
                self.call(c(DevReplyPoll), [h, client, port_size, value, line, out])
            }
            71..=72 => {
                let sv = self.served();
                let (h, dev) = self.pick(&sv).unwrap_or((self.garbage(), 0));
                let client = self.client_of(dev);
                if self.one_in(2) {
                    let line = self.below(17);
                    self.call(c(DevIrq), [h, client, line, 0, 0, 0])
                } else {
                    let port = self.below(260);
                    let size = self.size();
                    let value = self.rng.next();
                    self.call(c(DevWriteIospace), [h, client, port, size, value, 0])
                }
            }
            73..=74 => {
                // DMA: a client exports, a server copies.
                let sv = self.served();
                match self.pick(&sv) {
                    Some((h, dev)) if self.one_in(2) => {
                        let client = self.client_of(dev);
                        let iova = DMA_AT + self.below(0x400);
                        let len = self.below(0x300);
                        let buf = DMA_AT + self.below(0x400);
                        if self.one_in(2) {
                            self.call(c(DevDmaRead), [h, client, iova, buf, len, 0])
                        } else {
                            self.call(c(DevDmaWrite), [h, client, buf, len, iova, 0])
                        }
                    }
                    _ => {
                        let hs = self.handles(|_, _| true);
                        let h = self.handle_from(&hs);
                        if self.one_in(3) {
                            self.call(c(Unexport), [h, DMA_AT, 0, 0, 0, 0])
                        } else {
                            let (va, len) = match self.below(3) {
                                0 => (VM_BASE, 4096 * (1 + self.below(3))),
                                _ => (DMA_AT, 0x600),
                            };
                            self.call(c(Export), [h, va, len, 0, 0, 0])
                        }
                    }
                }
            }
            75..=76 => {
                let mask = match self.below(4) {
                    0 => 1,
                    1 => 1 << (20 + self.below(6)),
                    2 => 1 | 1 << (20 + self.below(6)),
                    _ => self.garbage(),
                };
                self.call(c(IrqWait), [mask, 0, 0, 0, 0, 0])
            }
            77 => {
                let v = if self.one_in(5) {
                    self.garbage()
                } else {
                    self.below(63)
                };
                self.call(c(IrqRaise), [v, 0, 0, 0, 0, 0])
            }
            78 => {
                let pid = match self.below(3) {
                    0 => 0,
                    1 => self.k.first_child(me).map_or(0, u64::from),
                    _ => self.garbage(),
                };
                let prio = self.below(9);
                self.call(c(SetPriority), [pid, prio, 0, 0, 0, 0])
            }
            79..=80 => match self.below(4) {
                0 => {
                    let (base, size) = match self.below(4) {
                        0 => (0, 0),
                        1 => (self.garbage(), self.garbage()),
                        _ => (VM_BASE, 4096 * (1 + self.below(2))),
                    };
                    let entry = if base == 0 { 0 } else { HANDLER_PC };
                    self.call(c(SetHandler), [entry, base, size, 0, 0, 0])
                }
                1 | 2 => {
                    let on = if self.one_in(8) {
                        self.garbage()
                    } else {
                        self.below(2)
                    };
                    self.call(c(IntEnable), [on, 0, 0, 0, 0, 0])
                }
                _ => {
                    let at = if self.one_in(2) {
                        frame.rdi
                    } else {
                        self.garbage()
                    };
                    self.call(c(IntReturn), [at, 0, 0, 0, 0, 0])
                }
            },
            81 if self.one_in(2) => {
                let len = fake::tiny_elf(&[0x90; 16]).len() as u64;
                let (img, n) = if self.one_in(4) {
                    (self.garbage(), self.garbage())
                } else {
                    (ELF_AT, len)
                };
                self.call(c(Exec), [img, n, CMD_AT, CMD.len() as u64, 0, 0])
            }
            81..=82 => self.mempool(),
            83..=85 => self.fault(),
            86..=87 => {
                // A klog listener, or the log growing (which raises it).
                let ks = self.handles(|a, _| {
                    matches!(
                        a,
                        Attachment::Kernel {
                            state: KernelState::Klog(..),
                            ..
                        }
                    )
                });
                match self.pick(&ks) {
                    Some(h) if self.one_in(2) => {
                        let v = 20 + self.below(6);
                        self.call(c(IrqMap), [h, 0, v, 0, 0, 0])
                    }
                    _ => {
                        let len = 2 + self.below(8);
                        self.call(c(LogWrite), [NAMES_AT, len, 0, 0, 0, 0])
                    }
                }
            }
            88..=89 => {
                let hs = self.handles(|_, _| true);
                let h = self.handle_from(&hs);
                let rights = self.rng.next() & 0x7ff;
                match self.below(4) {
                    0 => self.call(c(Restrict), [h, rights, 0, 0, 0, 0]),
                    1 => self.call(c(Info), [h, OUT_AT + 0x40, 0, 0, 0, 0]),
                    2 => self.call(c(RestrictNames), [LIST_AT, LIST.len() as u64, 0, 0, 0, 0]),
                    _ => self.call(c(SysInfo), [OUT_AT + 0xc0, 0, 0, 0, 0, 0]),
                }
            }
            90..=93 => {
                // Garbage: any number, any words.
                let n = self.below(43);
                let a = [
                    self.garbage(),
                    self.garbage(),
                    self.garbage(),
                    self.garbage(),
                    self.garbage(),
                    self.garbage(),
                ];
                self.call(n, a)
            }
            _ => {
                let sv = self.served();
                if !sv.is_empty() {
                    return self.serve(&sv);
                }
                if !clients.is_empty() {
                    return self.use_device(&clients);
                }
                self.call(c(Yield), [0; 6])
            }
        }
    }
}
