//! The fake machine's saved user registers: the ABI's, by name, with the
//! kernel's `UserFrame` trait on them (a new thread's start, a system
//! call's number, arguments and result, handler entry, the snapshot and
//! restore an interrupt handler's return goes through).
//!
//! Rules: as on the real machine, a restored frame keeps only the flags a
//! user may set and always has interrupts on (`0x202`).

use crate::machine::UserFrame;
use abi::IntFrame;

/// Fake saved registers: the ABI's, by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeFrame {
    pub rax: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub r10: u64,
    pub r8: u64,
    pub r9: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
}

impl FakeFrame {
    /// A frame making system call `number` with `args`.
    pub fn call(number: u64, args: [u64; 6]) -> FakeFrame {
        FakeFrame {
            rax: number,
            rdi: args[0],
            rsi: args[1],
            rdx: args[2],
            r10: args[3],
            r8: args[4],
            r9: args[5],
            ..FakeFrame::default()
        }
    }
}

impl UserFrame for FakeFrame {
    fn start(entry: u64, stack_top: u64, arg0: u64, arg1: u64) -> FakeFrame {
        FakeFrame {
            rip: entry,
            rsp: stack_top,
            rdi: arg0,
            rsi: arg1,
            rflags: 0x202,
            ..FakeFrame::default()
        }
    }

    fn syscall(&self) -> (u64, [u64; 6]) {
        (
            self.rax,
            [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9],
        )
    }

    fn result(&self) -> u64 {
        self.rax
    }

    fn set_result(&mut self, value: u64) {
        self.rax = value;
    }

    fn set_request_words(&mut self, [w0, w1, w2, w3]: [u64; 4]) {
        self.rdi = w0;
        self.rsi = w1;
        self.rdx = w2;
        self.r10 = w3;
    }

    fn back_over_syscall(&mut self) {
        self.rip -= 2;
    }

    fn pc(&self) -> u64 {
        self.rip
    }

    fn sp(&self) -> u64 {
        self.rsp
    }

    fn snapshot(&self) -> IntFrame {
        IntFrame {
            rax: self.rax,
            rdi: self.rdi,
            rsi: self.rsi,
            rdx: self.rdx,
            r10: self.r10,
            r8: self.r8,
            r9: self.r9,
            rip: self.rip,
            rsp: self.rsp,
            rflags: self.rflags,
            ..IntFrame::default()
        }
    }

    fn restore(&mut self, f: &IntFrame) {
        self.rax = f.rax;
        self.rdi = f.rdi;
        self.rsi = f.rsi;
        self.rdx = f.rdx;
        self.r10 = f.r10;
        self.r8 = f.r8;
        self.r9 = f.r9;
        self.rip = f.rip;
        self.rsp = f.rsp;
        self.rflags = (f.rflags & 0x0cd5) | 0x202;
    }

    fn enter_handler(&mut self, pc: u64, sp: u64, arg: u64) {
        self.rip = pc;
        self.rsp = sp;
        self.rdi = arg;
        self.rflags = 0x202;
    }
}
