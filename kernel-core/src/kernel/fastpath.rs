//! The IPC fast path: the two halves of a user-device round trip —
//! the client's `port_out_wait` and the server's `dev_reply_poll` — when
//! the other side already sleeps waiting for exactly this, handled without
//! the general dispatcher, the ready queues or `settle`: the request (or
//! the answer) goes into the sleeper's registers and the CPU goes straight
//! to it (seL4's fastpath, in spirit).
//!
//! Rules: the fast path only ever takes the common, fully valid case and
//! decides everything before it changes anything visible (the server's
//! I/O-space write is the last check, and a failed write writes nothing);
//! anything unusual — an error to report, a queued request, a pending
//! interrupt, a more urgent process waiting, the klog listeners to wake,
//! a reschedule already due — returns `false` and the slow path does the
//! whole call as before, so both paths give the same results. What it
//! hands over to needs nothing from `settle`, which it therefore skips.

use super::Kernel;
use crate::devices::Attachment;
use crate::machine::{Machine, UserFrame};
use crate::process::{Block, Process, State};
use crate::syscall::Words;
use abi::Sysno;
use abi::bus::{RIGHT_SERVE, RIGHT_WRITE};

impl<M: Machine> Kernel<M> {
    /// Tries the fast path for system call `number` with argument words
    /// `a`; true if it handled the call completely: the CPU then belongs
    /// to the process it handed off to, and there is nothing for `settle`
    /// to do (no reschedule due, no klog listener to wake, no interrupt to
    /// deliver to the new current process), so the caller may return to
    /// user mode at once. The kernel's entry code sorts the two calls
    /// apart already and calls [`Kernel::ipc_fast_port_out_wait`] or
    /// [`Kernel::ipc_fast_reply_poll`] itself.
    #[inline]
    pub fn ipc_fast_path(&mut self, number: u64, a: &[u64; 6]) -> bool {
        if !self.has_current() {
            return false;
        }
        // SAFETY: a process is current, as just checked.
        unsafe {
            if number == Sysno::PortOutWait as u64 {
                self.ipc_fast_port_out_wait(*a)
            } else if number == Sysno::DevReplyPoll as u64 {
                self.ipc_fast_reply_poll(*a)
            } else {
                false
            }
        }
    }

    /// Whether nothing stands in the fast path's way before it looks at
    /// the call: no reschedule due, no work left for the end of the
    /// kernel entry.
    ///
    /// # Safety
    /// A process is current on this CPU (a system call's caller is).
    #[inline(always)]
    unsafe fn fast_path_open(&self) -> bool {
        let cpu = &self.cpus[M::cpu_index()];
        // SAFETY: as the caller guarantees; said to the compiler, it drops
        // `current`'s check on the way (two instructions a call).
        unsafe { core::hint::assert_unchecked(!cpu.current_ptr.is_null()) };
        !cpu.resched && !M::exit_work_due()
    }

    /// The fast path of `port_out_wait` (see [`Kernel::ipc_fast_path`]),
    /// each argument word read where it is first needed.
    ///
    /// # Safety
    /// A process is current on this CPU: the caller of the system call.
    #[inline(always)]
    pub unsafe fn ipc_fast_port_out_wait(&mut self, a: impl Words) -> bool {
        // SAFETY: as the caller guarantees.
        let open = unsafe { self.fast_path_open() };
        open && self.fast_port_out_wait(a.word(0), a.word(1), a.word(2), a.word(3), a.word(4))
    }

    /// The fast path of `dev_reply_poll` (see [`Kernel::ipc_fast_path`]).
    ///
    /// # Safety
    /// As for [`Kernel::ipc_fast_port_out_wait`].
    #[inline(always)]
    pub unsafe fn ipc_fast_reply_poll(&mut self, a: impl Words) -> bool {
        // SAFETY: as the caller guarantees.
        let open = unsafe { self.fast_path_open() };
        open && a.word(5) == 0
            && self.fast_reply_poll(a.word(0), a.word(1), a.word(2), a.word(3), a.word(4))
    }

    /// The client's half: hand the request to a server polling for it.
    #[inline(always)]
    fn fast_port_out_wait(&mut self, h: u64, port: u64, size: u64, value: u64, mask: u64) -> bool {
        if crate::syscall::decode::VectorMask::new(mask).is_err() {
            return false;
        }
        let me: *mut Process<M> = self.current();
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
        let Ok(request) =
            u.out_request(self.cpus[M::cpu_index()].current, client, port, size, value)
        else {
            return false;
        };

        // One look at the server (the ready queues are another field, so
        // they can be asked while it is borrowed).
        let Some(s) = self.procs.get_mut(server) else {
            return false;
        };
        let polling =
            matches!(s.state, State::Blocked(Block::Poll { dev: d, out: None }) if d == dev);
        if !polling || !may_run_next(s, &self.ready) {
            return false;
        }
        // The server takes the request as a poll would (it is the
        // suspect's if the server then dies).
        u.took(&request);
        s.frame.set_request_words(request.to_words());
        s.frame.set_result(request.client);
        s.state = State::Runnable;
        // SAFETY: `me` is the current process (see `current`); `s` is
        // another one (it sleeps, the current one runs), so the two
        // references do not overlap.
        unsafe {
            (*me).state = State::Blocked(Block::Irq {
                mask,
                dev: Some(dev),
            })
        };
        super::sched::install(
            &mut self.cpus[M::cpu_index()].current,
            &mut self.cpus[M::cpu_index()].current_ptr,
            server,
            s,
        );
        true
    }

    /// The server's half: answer the client that waits for the answer,
    /// then sleep polling for the next request (into registers: the
    /// caller checked that it gave no buffer).
    #[inline(always)]
    fn fast_reply_poll(
        &mut self,
        h: u64,
        client: u64,
        port_size: u64,
        value: u64,
        line: u64,
    ) -> bool {
        let me: *mut Process<M> = self.current();
        let current = self.cpus[M::cpu_index()].current;
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
        // The device, the client and the client's process are looked up
        // once each; they live in different fields, so all can be held at
        // once.
        let Ok(u) = self.devices.user(dev) else {
            return false;
        };
        if u.pending_requests() != 0 {
            return false;
        }
        let Ok(c) = u.client_mut(client) else {
            return false;
        };
        // No line (u64::MAX), a line the device lacks or one the client
        // has not mapped: no hand-off (the slow path sorts out which).
        let Some(vector) = c.irq_vector(line) else {
            return false;
        };
        let target = c.pid;
        if target == current {
            return false;
        }
        let Some(t) = self.procs.get_mut(target) else {
            return false;
        };
        let State::Blocked(Block::Irq { mask, .. }) = t.state else {
            return false;
        };
        let raised = t.pending | 1 << vector;
        let taken = raised & mask;
        let left = raised & !taken;
        // The client must run next, and with nothing left to deliver to
        // its handler on the way out.
        if taken == 0 || !may_run_next(t, &self.ready) || (t.int_enabled && left != 0) {
            return false;
        }
        // Everything is decided: the answer goes out.
        if port_size != 0 {
            let (port, size) = (port_size >> 8, port_size & 0xff);
            if c.write_iospace(port, size, value).is_err() {
                // Nothing written; the slow path repeats (and reports) it.
                return false;
            }
        }
        u.answered(client);
        t.pending = left;
        t.frame.set_result(taken);
        t.state = State::Runnable;
        // SAFETY: as in `fast_port_out_wait`: `t` is not the current
        // process (checked above).
        unsafe { (*me).state = State::Blocked(Block::Poll { dev, out: None }) };
        super::sched::install(
            &mut self.cpus[M::cpu_index()].current,
            &mut self.cpus[M::cpu_index()].current_ptr,
            target,
            t,
        );
        true
    }
}

/// Whether the CPU may go straight to `p` (whose sleep the caller
/// checked): nothing more urgent is ready and it has no interrupt that
/// must be handed to its handler first.
#[inline(always)]
fn may_run_next<M: Machine>(p: &Process<M>, ready: &super::Ready) -> bool {
    if p.int_enabled && p.pending != 0 {
        return false;
    }
    let me = M::cpu_index();
    super::allowed(p.affinity, me)
        && !ready.has_more_urgent_than(p.priority)
        && !ready.has_more_urgent_than_in(super::local_queue(me), p.priority)
}
