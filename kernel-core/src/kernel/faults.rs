//! CPU exceptions in user mode: resolved by the kernel (a page fault it can
//! fix), delivered to the process's handler, or fatal for the process.
//!
//! Rules: a fault never ends the kernel; the kernel fixes only what it
//! safely can on its own (a stale translation, and — for a process with
//! no handler — a write to a page that was writable before fork); anything
//! else goes to the handler, and a process without one, or whose handler
//! stack cannot take the frame, is killed with a one-line report.

use super::Kernel;
use super::upcall::{Event, deliver};
use crate::charged::MachineFrames;
use crate::machine::{AddressSpace, Machine};
use crate::vm::{Fault, PageTableOps, Vm};
use abi::Error;
use abi::interrupt::{FAULT_WAS_WRITABLE, VECTOR_PAGE_FAULT};

/// One exception, as the CPU reported it.
#[derive(Clone, Copy, Debug)]
pub struct UserFault {
    pub vector: u64,
    /// The CPU's error code.
    pub error: u64,
    /// The faulting address (page faults), else 0.
    pub addr: u64,
    /// Where it happened.
    pub pc: u64,
    /// A page fault's access: a write, an instruction fetch.
    pub write: bool,
    pub fetch: bool,
}

impl<M: Machine> Kernel<M> {
    /// The current process took `fault`.
    pub fn user_fault(&mut self, fault: UserFault) {
        if !self.has_current() {
            // Evicted while it waited for the lock: the process is gone.
            return;
        }
        let UserFault {
            vector,
            error,
            addr,
            pc,
            write,
            fetch,
        } = fault;
        let p = self.current();
        let mut reason = 0;
        if vector == VECTOR_PAGE_FAULT {
            let Some(space) = p.space.as_mut() else {
                return;
            };
            let mut frames = MachineFrames::<M>::new();
            let mut vm = Vm {
                pt: space,
                frames: &mut frames,
                codec: M::codec(),
            };
            // A process must run on its own table. If it does not (a kernel
            // bug, like the one exit() once had), every access would fault
            // again and again as a "stale translation": say so and repair
            // it instead of looping for ever.
            if !vm.pt.is_active() {
                crate::klog!(
                    M,
                    "[kernel] bug: a process ran on another address space's page table (fault at {addr:#x}); switched back"
                );
                vm.pt.activate();
                return;
            }
            match vm.fault(addr, write, fetch) {
                Fault::Retry => {
                    vm.pt.flush(addr);
                    return;
                }
                Fault::Deliver(r) => reason = r,
            }
            // Without a handler the kernel resolves what it safely can: a
            // write to a page that was writable before fork.
            if p.handler.is_none()
                && write
                && reason & FAULT_WAS_WRITABLE != 0
                && vm.break_cow(addr).is_ok()
            {
                return;
            }
        }
        let why = if p.handler.is_none() {
            ""
        } else {
            match deliver(
                p,
                Event::Fault {
                    vector,
                    error,
                    addr,
                    reason,
                },
            ) {
                Ok(()) => return,
                Err(Error::LimitReached) => " (handler stack overflow)",
                Err(_) => " (handler stack unusable)",
            }
        };
        self.kill_current_for_fault(vector, error, addr, pc, why);
    }
}
