//! The IPC fast path: the two halves of a user-device round trip —
//! the client's `port_out_wait` and the server's `dev_reply_poll` — when
//! the other side already sleeps waiting for exactly this, handled without
//! the general dispatcher, the ready queues or `settle`: the request (or
//! the answer) goes into the sleeper's registers and the CPU goes straight
//! to it (seL4's fastpath, in spirit).
//!
//! Rules: the fast path only ever takes the common, fully valid case and
//! decides before it changes anything visible (the one exception, the
//! server's I/O-space write, is repeated identically by the slow path);
//! anything unusual — an error to report, a queued request, a pending
//! interrupt, a more urgent process waiting, the klog listeners to wake,
//! a reschedule already due — returns `false` and the slow path does the
//! whole call as before, so both paths give the same results.

use super::Scheduler;
use crate::bus::Attachment;
use crate::process::{Block, PRIORITY_LEVELS, Process, State};
use abi::Sysno;
use abi::bus::{RIGHT_SERVE, RIGHT_WRITE};
use core::sync::atomic::Ordering;
use kernel_core::runqueue::RunQueue;

impl Scheduler {
    /// Tries the fast path for system call `number` with argument words
    /// `a`; true if it handled the call completely (the CPU then belongs
    /// to the process it handed off to).
    #[inline]
    pub fn ipc_fast_path(&mut self, number: u64, a: &[u64; 6]) -> bool {
        // The number first: every other call pays only these two compares.
        if number != Sysno::PortOutWait as u64 && number != Sysno::DevReplyPoll as u64 {
            return false;
        }
        if self.resched || self.current_ptr.is_null() || crate::log::GREW.load(Ordering::Relaxed) {
            return false;
        }
        if number == Sysno::PortOutWait as u64 {
            self.fast_port_out_wait(a[0], a[1], a[2], a[3], a[4])
        } else if number == Sysno::DevReplyPoll as u64 {
            self.fast_reply_poll(a[0], a[1], a[2], a[3], a[4], a[5])
        } else {
            false
        }
    }

    /// The client's half: hand the request to a server polling for it.
    #[inline(always)]
    fn fast_port_out_wait(&mut self, h: u64, port: u64, size: u64, value: u64, mask: u64) -> bool {
        if crate::syscall::check_vector_mask(mask).is_err() {
            return false;
        }
        let p = self.current();
        if p.pending & mask != 0 {
            return false;
        }
        let Ok(entry) = p.bus.get(h) else {
            return false;
        };
        let Attachment::Client { dev, client } = entry.value else {
            return false;
        };
        if entry.rights & RIGHT_WRITE == 0 {
            return false;
        }
        let Ok(u) = self.devices.user(dev) else {
            return false;
        };
        if u.pending_requests() != 0 {
            return false;
        }
        let server = u.server;
        let Ok(request) = u.out_request(client, port, size, value) else {
            return false;
        };
        // One look at the server (the ready queues are another field, so
        // they can be asked while it is borrowed).
        let Some(s) = self.procs.get_mut(server) else {
            return false;
        };
        let polling = matches!(s.state, State::Blocked(Block::Poll { dev: d, out: 0 }) if d == dev);
        if !polling || !may_run_next(s, &self.ready) {
            return false;
        }
        let [w0, w1, w2, w3] = request.to_words();
        s.frame.rdi = w0;
        s.frame.rsi = w1;
        s.frame.rdx = w2;
        s.frame.r10 = w3;
        s.frame.rax = u64::from(request.client);
        s.state = State::Runnable;
        self.current().state = State::Blocked(Block::Irq {
            mask,
            dev: Some(dev),
        });
        self.switch_to(server);
        true
    }

    /// The server's half: answer the client that waits for the answer,
    /// then sleep polling for the next request.
    #[inline(always)]
    fn fast_reply_poll(
        &mut self,
        h: u64,
        client: u64,
        port_size: u64,
        value: u64,
        line: u64,
        out: u64,
    ) -> bool {
        if out != 0 || line == u64::MAX {
            return false;
        }
        let p = self.current();
        let Ok(entry) = p.bus.get(h) else {
            return false;
        };
        let Attachment::Serve { dev } = entry.value else {
            return false;
        };
        if entry.rights & RIGHT_SERVE == 0 {
            return false;
        }
        if self.current == 0 {
            return false;
        }
        // The device and the client process are looked up once each; they
        // live in different fields, so both can be held at once.
        let Ok(u) = self.devices.user(dev) else {
            return false;
        };
        if u.pending_requests() != 0 {
            return false;
        }
        let Ok(Some((target, vector))) = u.irq_target(client, line) else {
            return false;
        };
        if target == self.current {
            return false;
        }
        let Some(t) = self.procs.get_mut(target) else {
            return false;
        };
        let State::Blocked(Block::Irq { mask, .. }) = t.state else {
            return false;
        };
        let taken = (t.pending | 1 << vector) & mask;
        if taken == 0 || !may_run_next(t, &self.ready) {
            return false;
        }
        // Everything is decided: the answer goes out.
        if port_size != 0 {
            let (port, size) = (port_size >> 8, port_size & 0xff);
            if u.write_iospace(client, port, size, value).is_err() {
                // Repeated (and reported) by the slow path.
                return false;
            }
        }
        t.pending = (t.pending | 1 << vector) & !taken;
        t.frame.rax = taken;
        t.state = State::Runnable;
        self.current().state = State::Blocked(Block::Poll { dev, out: 0 });
        self.switch_to(target);
        true
    }
}

/// Whether the CPU may go straight to `p` (whose sleep the caller
/// checked): nothing more urgent is ready and it has no interrupt that
/// must be handed to its handler first.
#[inline(always)]
fn may_run_next(p: &Process, ready: &RunQueue<PRIORITY_LEVELS>) -> bool {
    if p.int_enabled && p.pending != 0 {
        return false;
    }
    p.priority == 0 || !ready.has_at_least(p.priority - 1)
}
