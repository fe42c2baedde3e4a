//! System-call decoding and dispatch.
//!
//! seL4's split: each call first decodes and checks every argument (numbers,
//! lengths, flags, user pointers) and only then acts; any failure is an
//! `abi::Error` returned to the caller, never a panic. The register
//! convention is in `abi::syscall`; the calls live in the submodules by
//! subject.

mod devices;
mod interrupts;
mod log;
mod memory;
mod process;

use crate::kernel::Kernel;
use crate::machine::Machine;
use abi::{Error, Sysno};

/// A system call's number and argument registers.
pub struct Args {
    pub number: u64,
    pub a: [u64; 6],
}

/// What a call produced: `Some(word)` for the caller's `rax`, or `None`
/// when the caller does not simply return (it exited, exec'd, returned
/// from a handler, or blocked and will be completed or restarted when
/// woken). Inlined into the one caller, so the argument words stay in
/// registers instead of going through memory twice; each arm encodes its
/// own result, so what the arms hand on is one register, not a `Result`
/// in memory.
#[inline(always)]
pub fn dispatch<M: Machine>(s: &mut Kernel<M>, args: &Args) -> Option<isize> {
    let a = args.a;
    let ret = match sysno(args.number) {
        None => Error::NoSuchSyscall.to_ret(),
        Some(Sysno::LogWrite) => encode(log::write(s, a[0], a[1])),
        Some(Sysno::LogRead) => encode(log::read(s, a[0], a[1], a[2])),
        Some(Sysno::Exit) => {
            process::exit(s, a[0] as i64);
            return None;
        }
        Some(Sysno::GetPid) => s.current_pid() as isize,
        Some(Sysno::Yield) => {
            s.yield_current();
            0
        }
        Some(Sysno::WaitChild) => return blocking(process::wait_child(s, a[0], a[1])),
        Some(Sysno::Fork) => encode(process::fork(s)),
        Some(Sysno::Exec) => return silent(process::exec(s, a[0], a[1], a[2], a[3])),
        Some(Sysno::SetPriority) => encode(process::set_priority(s, a[0], a[1])),
        Some(Sysno::SysInfo) => encode(process::sys_info(s, a[0])),
        Some(Sysno::VmMap) => return blocking(memory::map(s, a[0], a[1], a[2])),
        Some(Sysno::VmProtect) => return blocking(memory::protect(s, a[0], a[1], a[2])),
        Some(Sysno::VmUnmap) => return blocking(memory::unmap(s, a[0], a[1])),
        Some(Sysno::VmMove) => encode(memory::move_pages(s, a[0], a[1], a[2])),
        Some(Sysno::SetHandler) => encode(interrupts::set_handler(s, a[0], a[1], a[2])),
        Some(Sysno::IntReturn) => return silent(interrupts::int_return(s, a[0])),
        Some(Sysno::IntEnable) => encode(interrupts::int_enable(s, a[0])),
        Some(Sysno::IrqWait) => return blocking(interrupts::irq_wait(s, a[0])),
        Some(Sysno::IrqRaise) => encode(interrupts::irq_raise(s, a[0])),
        Some(Sysno::Attach) => encode(devices::attach(s, a[0], a[1], a[2], a[3])),
        Some(Sysno::Detach) => encode(devices::detach(s, a[0])),
        Some(Sysno::Info) => encode(devices::info(s, a[0], a[1])),
        Some(Sysno::Restrict) => encode(devices::restrict(s, a[0], a[1])),
        Some(Sysno::PortIn) => encode(devices::port_in(s, a[0], a[1], a[2])),
        Some(Sysno::PortOut) => return blocking(devices::port_out(s, a[0], a[1], a[2], a[3])),
        Some(Sysno::Export) => encode(devices::export(s, a[0], a[1], a[2])),
        Some(Sysno::Unexport) => encode(devices::unexport(s, a[0], a[1])),
        Some(Sysno::IrqMap) => encode(devices::irq_map(s, a[0], a[1], a[2])),
        Some(Sysno::IrqAck) => encode(devices::irq_ack(s, a[0], a[1])),
        Some(Sysno::DevCreate) => encode(devices::dev_create(s, a[0])),
        Some(Sysno::DevPoll) => return blocking(devices::dev_poll(s, a[0], a[1], a[2])),
        Some(Sysno::DevWriteIospace) => {
            encode(devices::dev_write_iospace(s, a[0], a[1], a[2], a[3], a[4]))
        }
        Some(Sysno::DevIrq) => encode(devices::dev_irq(s, a[0], a[1], a[2])),
        Some(Sysno::DevDmaRead) => encode(devices::dev_dma(s, a[0], a[1], a[2], a[3], a[4], false)),
        Some(Sysno::DevDmaWrite) => encode(devices::dev_dma(s, a[0], a[1], a[4], a[2], a[3], true)),
        Some(Sysno::PortOutWait) => {
            return blocking(devices::port_out_wait(s, a[0], a[1], a[2], a[3], a[4]));
        }
        Some(Sysno::DevReplyPoll) => {
            return blocking(devices::dev_reply_poll(
                s, a[0], a[1], a[2], a[3], a[4], a[5],
            ));
        }
        Some(Sysno::IoMap) => encode(devices::iomap(s, a[0], a[1], a[2], a[3])),
        Some(Sysno::IoUnmap) => encode(devices::iounmap(s, a[0], a[1], a[2])),
        Some(Sysno::RestrictNames) => encode(devices::restrict_names(s, a[0], a[1])),
    };
    Some(ret)
}

// The numbers are 1..=N in the order of `Sysno::ALL`, checked here once
// at compile time, so that `sysno` may convert by range check alone.
const _: () = {
    let mut i = 0;
    while i < Sysno::ALL.len() {
        assert!(Sysno::ALL[i] as u64 == i as u64 + 1);
        i += 1;
    }
};

/// `Sysno::from_raw` by range check alone, so that `dispatch` is one jump
/// table on the number (`from_raw` goes through a table of the variants,
/// which the compiler cannot see through: a load, then the jump table).
#[inline(always)]
fn sysno(number: u64) -> Option<Sysno> {
    if number.wrapping_sub(1) < Sysno::ALL.len() as u64 {
        // SAFETY: Sysno is repr(u64), and by the assertion above every
        // value in 1..=ALL.len() is one of its discriminants.
        Some(unsafe { core::mem::transmute::<u64, Sysno>(number) })
    } else {
        None
    }
}

fn encode(result: Result<usize, Error>) -> isize {
    match result {
        Ok(v) => v as isize,
        Err(e) => e.to_ret(),
    }
}

/// A call that, on success, has already set up the caller's registers.
fn silent(result: Result<(), Error>) -> Option<isize> {
    result.err().map(|e| e.to_ret())
}

/// A call that may have put the caller to sleep (`Ok(None)`).
fn blocking(result: Result<Option<usize>, Error>) -> Option<isize> {
    match result {
        Ok(None) => None,
        Ok(Some(v)) => Some(v as isize),
        Err(e) => Some(e.to_ret()),
    }
}

/// Checks an interrupt-vector mask (non-empty, vectors 0..62 only).
pub fn check_vector_mask(mask: u64) -> Result<(), Error> {
    let all = (1u64 << abi::interrupt::VECTOR_COUNT) - 1;
    if mask == 0 || mask & !all != 0 {
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

/// Takes the pending vectors of `mask`, or puts the caller to sleep until
/// one comes (tied to device `dev` if given, so its loss wakes the caller).
pub fn irq_wait_on<M: Machine>(
    s: &mut Kernel<M>,
    mask: u64,
    dev: Option<crate::devices::DeviceId>,
) -> Result<Option<usize>, Error> {
    check_vector_mask(mask)?;
    let p = s.current();
    let taken = p.pending & mask;
    if taken != 0 {
        p.pending &= !taken;
        return Ok(Some(taken as usize));
    }
    s.block_current(crate::process::Block::Irq { mask, dev });
    Ok(None)
}

/// Runs `f` on the caller's address space.
fn with_space<M: Machine, R>(
    s: &mut Kernel<M>,
    f: impl FnOnce(&mut M::Space) -> Result<R, Error>,
) -> Result<R, Error> {
    let space = s.current().space.as_mut().ok_or(Error::BadAddress)?;
    f(space)
}
