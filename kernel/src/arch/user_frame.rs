//! The saved user registers (`entry::TrapFrame`) as the kernel's objects
//! see them (`kernel_core::machine::UserFrame`): the system-call register
//! convention of `abi::syscall`, the handler frame of `abi::interrupt`,
//! and what a new program starts with.
//!
//! Rules: a frame handed back by user code (`restore`) keeps only the
//! flags user code may set, and the segment selectors are never taken
//! from it: they stay the user ones, set when the frame was made.

use super::entry::{TrapFrame, USER_RFLAGS};
use super::gdt::{USER_CS, USER_SS};
use abi::IntFrame;
use kernel_core::machine::UserFrame;

/// RFLAGS bits a handler may hand back: the arithmetic flags and DF.
const USER_SETTABLE_FLAGS: u64 = 0x0cd5;

/// Length of the `syscall` instruction, for making a call again.
const SYSCALL_INSN_LEN: u64 = 2;

impl UserFrame for TrapFrame {
    fn start(entry: u64, stack_top: u64, arg0: u64, arg1: u64) -> TrapFrame {
        TrapFrame {
            rip: entry,
            rsp: stack_top,
            rdi: arg0,
            rsi: arg1,
            cs: USER_CS as u64,
            ss: USER_SS as u64,
            rflags: USER_RFLAGS,
            ..TrapFrame::default()
        }
    }

    #[inline(always)]
    fn syscall(&self) -> (u64, [u64; 6]) {
        (
            self.rax,
            [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9],
        )
    }

    #[inline(always)]
    fn result(&self) -> u64 {
        self.rax
    }

    #[inline(always)]
    fn set_result(&mut self, value: u64) {
        self.rax = value;
    }

    #[inline(always)]
    fn set_request_words(&mut self, [w0, w1, w2, w3]: [u64; 4]) {
        self.rdi = w0;
        self.rsi = w1;
        self.rdx = w2;
        self.r10 = w3;
    }

    fn back_over_syscall(&mut self) {
        self.rip -= SYSCALL_INSN_LEN;
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
            rbx: self.rbx,
            rcx: self.rcx,
            rdx: self.rdx,
            rsi: self.rsi,
            rdi: self.rdi,
            rbp: self.rbp,
            r8: self.r8,
            r9: self.r9,
            r10: self.r10,
            r11: self.r11,
            r12: self.r12,
            r13: self.r13,
            r14: self.r14,
            r15: self.r15,
            rip: self.rip,
            rsp: self.rsp,
            rflags: self.rflags,
            ..IntFrame::default()
        }
    }

    fn restore(&mut self, f: &IntFrame) {
        self.rax = f.rax;
        self.rbx = f.rbx;
        self.rcx = f.rcx;
        self.rdx = f.rdx;
        self.rsi = f.rsi;
        self.rdi = f.rdi;
        self.rbp = f.rbp;
        self.r8 = f.r8;
        self.r9 = f.r9;
        self.r10 = f.r10;
        self.r11 = f.r11;
        self.r12 = f.r12;
        self.r13 = f.r13;
        self.r14 = f.r14;
        self.r15 = f.r15;
        self.rip = f.rip;
        self.rsp = f.rsp;
        self.rflags = (f.rflags & USER_SETTABLE_FLAGS) | USER_RFLAGS;
    }

    fn enter_handler(&mut self, pc: u64, sp: u64, arg: u64) {
        self.rip = pc;
        self.rsp = sp;
        self.rdi = arg;
        self.rflags = USER_RFLAGS;
    }
}
