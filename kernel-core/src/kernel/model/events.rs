//! What happens to the model between calls and at its end: timer ticks,
//! a tick falling due during a call (long calls stop at their preemption
//! points), device interrupts, and, when every process sleeps, a wake-up
//! or a kill from outside (`unstick`); then the teardown, which kills and
//! reaps all but init and checks the machine is back at its post-boot
//! frames.
//!
//! Rules: the state is checked after every event, as after every call;
//! the teardown's baseline is exact (init's handles, pages and tables,
//! the frames in use), never approximate.

use super::{KERNEL_NAMES, Last, Model, OUT_AT};
use crate::fake;
use crate::kernel::{Settled, audit};
use crate::machine::UserFrame;
use crate::process::{Block, INIT_PID, Pid, State};
use abi::{Error, ExitKind, ExitStatus, Sysno};

fn killed(pid: Pid) -> ExitStatus {
    ExitStatus {
        pid,
        kind: ExitKind::KilledBy as u32,
        code: 0,
        ..ExitStatus::default()
    }
}

impl Model {
    /// Between calls: a timer tick, a device interrupt, or a call.
    pub(super) fn step(&mut self) {
        let mut settled = match self.below(100) {
            0..=3 => {
                self.last = Last::Event("timer tick");
                fake::with(|s| {
                    s.now += 1500;
                    s.ticks += 1;
                });
                self.k.tick();
                let s = self.k.settle();
                self.check(s == Settled::Run);
                s
            }
            4..=5 => {
                let pids = audit::pids(&self.k);
                let pid = self.pick(&pids).unwrap();
                let v = self.below(63) as u32;
                self.last = Last::Raise(pid, v);
                self.k.raise(pid, v);
                let s = self.k.settle();
                self.check(s == Settled::Run);
                s
            }
            _ => {
                // A tick sometimes falls due during the call: long calls
                // stop at their preemption points, and it is taken on the
                // way out.
                let due = self.one_in(12);
                fake::with(|s| s.preempt = due);
                let mut s = self.act();
                if due {
                    fake::with(|s| {
                        s.preempt = false;
                        s.now += 1500;
                        s.ticks += 1;
                    });
                    self.last = Last::Event("the tick that fell due");
                    self.k.tick();
                    s = self.k.settle();
                    self.check(s == Settled::Run);
                }
                s
            }
        };
        while settled == Settled::Idle {
            settled = self.unstick();
        }
    }

    /// Every process sleeps: an interrupt wakes one, or one that no
    /// interrupt can wake (waiting for a child or a request) is killed.
    pub(super) fn unstick(&mut self) -> Settled {
        self.stats.idle += 1;
        let blocked: Vec<(Pid, Block)> = audit::pids(&self.k)
            .into_iter()
            .filter_map(|p| match self.k.procs.get(p).unwrap().state {
                State::Blocked(b) => Some((p, b)),
                _ => None,
            })
            .collect();
        let candidates: Vec<(Pid, Block)> = blocked
            .iter()
            .copied()
            .filter(|&(p, b)| p != INIT_PID || matches!(b, Block::Irq { .. }))
            .collect();
        let Some((pid, why)) = self.pick(&candidates) else {
            self.fail(&format!("idle, and nothing to wake: {blocked:?}"));
        };
        if self.trace {
            eprintln!(
                "{:4} idle; waking or killing pid {pid} ({why:?})",
                self.step
            );
        }
        match why {
            Block::Irq { mask, .. } => {
                let bits: Vec<u32> = (0..64).filter(|b| mask & (1 << b) != 0).collect();
                let v = self.pick(&bits).unwrap();
                self.last = Last::Raise(pid, v);
                self.k.raise(pid, v);
            }
            _ => {
                self.last = Last::Kill(pid);
                self.stats.outside_kills += 1;
                self.k.exit(pid, killed(pid));
            }
        }
        let s = self.k.settle();
        self.check(s == Settled::Run);
        s
    }

    /// Every process but init is killed and reaped, init lets go of what
    /// it took: the machine holds what it held after boot.
    pub(super) fn teardown(&mut self) {
        self.step = usize::MAX;
        for pid in self.live_pids() {
            if pid != INIT_PID {
                self.last = Last::Kill(pid);
                self.k.exit(pid, killed(pid));
            }
        }
        let mut s = self.k.settle();
        self.check(s == Settled::Run);
        while s == Settled::Idle {
            s = self.unstick();
        }
        assert_eq!(self.me(), INIT_PID, "seed {}: only init is left", self.seed);
        loop {
            self.call(Sysno::WaitChild as u64, [OUT_AT, 1, 0, 0, 0, 0]);
            let r = self.k.current().frame.result() as isize;
            if r == Error::NoChildren.to_ret() {
                break;
            }
            if r <= 0 {
                self.fail(&format!("init reaps with {:?}", Error::decode(r)));
            }
        }
        let extra: Vec<u64> = self
            .k
            .current()
            .bus
            .handles()
            .filter(|h| !self.boot_handles.contains(h))
            .collect();
        for h in extra {
            self.call(Sysno::Detach as u64, [h, 0, 0, 0, 0, 0]);
        }
        let pages: Vec<u64> = self
            .pages_of(INIT_PID)
            .difference(&self.boot_pages)
            .copied()
            .collect();
        for va in pages {
            self.call(Sysno::VmUnmap as u64, [va, 4096, 0, 0, 0, 0]);
        }
        let seed = self.seed;
        let k = &self.k;
        let init = k.procs.get(INIT_PID).unwrap();
        assert_eq!(k.process_count(), 1, "seed {seed}: init alone");
        assert_eq!(
            self.pages_of(INIT_PID),
            self.boot_pages,
            "seed {seed}: init's pages"
        );
        assert_eq!(
            init.usage.tables, self.boot_tables,
            "seed {seed}: init's tables"
        );
        assert_eq!(
            k.devices.count(),
            KERNEL_NAMES,
            "seed {seed}: the kernel's devices alone"
        );
        assert!(
            k.devices.klog.listeners().is_empty(),
            "seed {seed}: no klog listener"
        );
        assert_eq!(k.reserves.len(), 1, "seed {seed}: init's reserve alone");
        assert_eq!(
            fake::with(|s| s.used()),
            self.boot_used,
            "seed {seed}: the frames in use after boot, exactly"
        );
        let r = k.reserves.get(init.reserve).unwrap();
        assert_eq!(r.used(), init.usage.frames(), "seed {seed}: init's reserve");
        self.full_every = 1;
        self.check(true);
    }
}
