//! System calls: decode, then invoke.
//!
//! seL4's split: `decode` turns the number and six words into a `Call`
//! with every argument checked as far as it can be without the kernel's
//! state; `invoke` carries it out, checking what needs the state (handles,
//! devices, pages) before it changes anything. Any failure is an
//! `abi::Error` returned to the caller, never a panic. The register
//! convention is in `abi::syscall`; the calls' work lives with their
//! objects (`crate::kernel`, `crate::devices`), and the submodules here
//! hold the few that are only glue between a call and them.

pub mod decode;
mod devices;
mod log;
mod memory;
mod process;

pub use decode::{Call, Words, decode, decode_then};

use crate::devices::calls;
use crate::kernel::Kernel;
use crate::machine::Machine;
use abi::{Error, Sysno};
use decode::VectorMask;

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
    dispatch_words(s, args.number, args.a)
}

/// [`dispatch`] of call `number` whose argument words `a` are read only
/// where decoding needs them (the kernel passes its saved registers).
#[inline(always)]
pub fn dispatch_words<M: Machine>(s: &mut Kernel<M>, number: u64, a: impl Words) -> Option<isize> {
    let Some(number) = sysno(number) else {
        return Some(Error::NoSuchSyscall.to_ret());
    };
    match decode_then(number, a, Invoke(s)) {
        Ok(ret) => ret,
        Err(e) => Some(e.to_ret()),
    }
}

/// Carries out the decoded call on the kernel it holds.
struct Invoke<'a, M: Machine>(&'a mut Kernel<M>);

impl<M: Machine> decode::Then for Invoke<'_, M> {
    type Out = Option<isize>;
    #[inline(always)]
    fn then(self, call: Call) -> Option<isize> {
        invoke(self.0, call)
    }
}

/// Carries out a decoded call (see `dispatch` for what it returns).
#[inline(always)]
pub fn invoke<M: Machine>(s: &mut Kernel<M>, call: Call) -> Option<isize> {
    let ret = match call {
        Call::LogWrite(buf) => encode(log::write(s, buf)),
        Call::LogRead { pos, buf } => encode(log::read(s, pos, buf)),
        Call::Exit(code) => {
            process::exit(s, code);
            return None;
        }
        Call::GetPid => s.current_pid() as isize,
        Call::Yield => {
            s.yield_current();
            0
        }
        Call::WaitChild { out, nohang } => {
            return blocking(s.wait_child(out, nohang).map(|p| p.map(|p| p as usize)));
        }
        Call::Fork => encode(process::fork(s)),
        Call::Exec { image, cmdline } => return silent(process::exec(s, image, cmdline)),
        Call::SetPriority { pid, priority } => encode(process::set_priority(s, pid, priority)),
        Call::SysInfo(out) => encode(process::sys_info(s, out)),
        Call::VmMap { pages, prot } => return blocking(memory::map(s, pages, prot)),
        Call::VmProtect { pages, prot } => return blocking(memory::protect(s, pages, prot)),
        Call::VmUnmap(pages) => return blocking(memory::unmap(s, pages)),
        Call::VmMove { dst, src, len } => encode(memory::move_pages(s, dst, src, len)),
        Call::SetHandler { entry, base, size } => {
            encode(crate::kernel::upcall::set_handler(s.current(), entry, base, size).map(|()| 0))
        }
        Call::IntReturn(frame) => {
            return silent(crate::kernel::upcall::int_return(s.current(), frame));
        }
        Call::IntEnable(on) => {
            let p = s.current();
            let was = p.int_enabled;
            p.int_enabled = on;
            was as isize
        }
        Call::IrqWait(mask) => return blocking(irq_wait_on(s, mask, None)),
        Call::IrqRaise(vector) => {
            let pid = s.current_pid();
            s.raise(pid, vector.get());
            0
        }
        Call::Attach {
            registry,
            name,
            rights,
            close_on_exec,
        } => encode(devices::attach(s, registry, name, rights, close_on_exec)),
        Call::Detach(h) => encode(calls::detach(s, h).map(|()| 0)),
        Call::Info { h, out } => encode(devices::info(s, h, out)),
        Call::Restrict { h, rights } => encode(calls::restrict(s, h, rights).map(|()| 0)),
        Call::PortIn { h, port } => encode(calls::port_in(s, h, port).map(|v| v as usize)),
        Call::PortOut { h, port, value } => return blocking(devices::port_out(s, h, port, value)),
        Call::PortOutWait {
            h,
            port,
            value,
            mask,
        } => return blocking(calls::port_out_wait(s, h, port, value, mask)),
        Call::Export {
            h,
            va,
            len,
            device_writes,
            pages,
        } => encode(calls::export(s, h, va, len, device_writes, pages).map(|i| i as usize)),
        Call::Unexport { h, iova } => encode(calls::unexport(s, h, iova).map(|()| 0)),
        Call::IrqMap { h, line, vector } => encode(calls::irq_map(s, h, line, vector).map(|()| 0)),
        Call::IrqAck { h, line } => encode(calls::irq_ack(s, h, line).map(|()| 0)),
        Call::DevCreate { registry, config } => encode(devices::dev_create(s, registry, config)),
        Call::DevPoll { dev, out, nowait } => {
            return blocking(devices::dev_poll(s, dev, out, nowait));
        }
        Call::DevWriteIospace {
            dev,
            client,
            port,
            value,
        } => encode(devices::dev_write_iospace(s, dev, client, port, value)),
        Call::DevIrq { dev, client, line } => encode(devices::dev_irq(s, dev, client, line)),
        Call::DevDma {
            dev,
            client,
            iova,
            buf,
            to_client,
        } => encode(devices::dev_dma(s, dev, client, iova, buf, to_client)),
        Call::DevReplyPoll {
            dev,
            client,
            answer,
            line,
            out,
        } => return blocking(devices::dev_reply_poll(s, dev, client, answer, line, out)),
        Call::IoMap { h, va, phys, len } => encode(calls::iomap(s, h, va, phys, len).map(|()| 0)),
        Call::IoUnmap { h, va, len } => encode(calls::iounmap(s, h, va, len).map(|()| 0)),
        Call::RestrictNames(list) => encode(devices::restrict_names(s, list)),
        Call::SetAffinity { pid, mask } => encode(process::set_affinity(s, pid, mask)),
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

/// Takes the pending vectors of `mask`, or puts the caller to sleep until
/// one comes (tied to device `dev` if given, so its loss wakes the caller).
#[inline(always)]
pub fn irq_wait_on<M: Machine>(
    s: &mut Kernel<M>,
    mask: VectorMask,
    dev: Option<crate::devices::DeviceId>,
) -> Result<Option<usize>, Error> {
    let mask = mask.bits();
    let p = s.current();
    let taken = p.pending & mask;
    if taken != 0 {
        p.pending &= !taken;
        return Ok(Some(taken as usize));
    }
    s.block_current(crate::process::Block::Irq { mask, dev });
    Ok(None)
}
