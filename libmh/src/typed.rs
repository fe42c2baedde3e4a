//! Typed handles: the device class (its name, ports and interrupt lines)
//! and the rights a handle holds are part of the handle's type, so using a
//! port of another class, writing through a handle without WRITE or
//! mapping a line without IRQ does not compile.
//!
//! A class is a type implementing [`Class`], with its ports as associated
//! constants of types [`In`] (readable), [`Out`] (writable) and [`Line`]
//! (interrupt lines), each carrying the class and the port and size as
//! type parameters. A handle is `Handle<Class, Rights>`, where the rights
//! are one of the marker types below ([`ReadOnly`], [`ReadWrite`],
//! [`ReadWriteIrq`], [`Client`] …). The port numbers come from `abi`, so
//! C and Rust agree.
//!
//! ```no_run
//! use libmh::typed::{Console, Handle, ReadWriteIrq};
//! let con: Handle<Console, ReadWriteIrq> = Handle::attach()?;
//! con.map_line(Console::DONE, 5)?;
//! con.write_wait(Console::FOREGROUND, 0, 1 << 5)?;
//! let result = con.read(Console::WRITE_RESULT)?;
//! # Ok::<(), abi::Error>(())
//! ```
//!
//! A port of another class is a type error:
//!
//! ```compile_fail
//! use libmh::typed::{Console, Handle, ReadWrite, Timer};
//! let timer: Handle<Timer, ReadWrite> = Handle::attach()?;
//! timer.write(Console::WRITE, 1)?;
//! # Ok::<(), abi::Error>(())
//! ```
//!
//! and so is a right the handle does not hold:
//!
//! ```compile_fail
//! use libmh::typed::{Console, Handle, ReadOnly};
//! let con: Handle<Console, ReadOnly> = Handle::attach()?;
//! con.write(Console::WRITE, 1)?;
//! # Ok::<(), abi::Error>(())
//! ```
//!
//! ```compile_fail
//! use libmh::typed::{Console, Handle, ReadWrite};
//! let con: Handle<Console, ReadWrite> = Handle::attach()?;
//! con.map_line(Console::DONE, 5)?;
//! # Ok::<(), abi::Error>(())
//! ```
//!
//! Rules: the type only records what was asked at `attach`; the kernel
//! still checks every call (a typed handle cannot do more than the raw
//! one, only fewer mistakes). `raw()` gives the untyped handle for what
//! this layer does not cover.

use crate::dev::{self, REGISTRY};
use abi::Error;
use core::marker::PhantomData;

/// A device class: what a device of that kind is called in the registry.
pub trait Class {
    const NAME: &'static str;
}

/// A readable port of class `C`: `port_in(PORT, SIZE)`.
pub struct In<C, const PORT: u32, const SIZE: u32>(PhantomData<C>);
/// A writable port of class `C`: `port_out(PORT, SIZE, value)`.
pub struct Out<C, const PORT: u32, const SIZE: u32>(PhantomData<C>);
/// An interrupt line of class `C`.
pub struct Line<C, const LINE: u32>(PhantomData<C>);

impl<C, const P: u32, const S: u32> In<C, P, S> {
    pub const NEW: Self = In(PhantomData);
}
impl<C, const P: u32, const S: u32> Out<C, P, S> {
    pub const NEW: Self = Out(PhantomData);
}
impl<C, const L: u32> Line<C, L> {
    pub const NEW: Self = Line(PhantomData);
}

/// A set of rights, as a type.
pub trait Rights {
    const BITS: u32;
}
/// Rights that include READ (`read`).
pub trait CanRead: Rights {}
/// Rights that include WRITE (`write`, `write_wait`).
pub trait CanWrite: Rights {}
/// Rights that include IRQ (`map_line`).
pub trait CanIrq: Rights {}
/// Rights that include DMA (`export`, `unexport`).
pub trait CanDma: Rights {}

macro_rules! rights {
    ($(#[$doc:meta])* $name:ident = $bits:expr; $($cap:ident),*) => {
        $(#[$doc])*
        pub struct $name;
        impl Rights for $name {
            const BITS: u32 = $bits;
        }
        $(impl $cap for $name {})*
    };
}

rights!(
    /// READ only.
    ReadOnly = dev::RIGHT_READ; CanRead);
rights!(
    /// WRITE only.
    WriteOnly = dev::RIGHT_WRITE; CanWrite);
rights!(
    /// READ and WRITE.
    ReadWrite = dev::RIGHT_READ | dev::RIGHT_WRITE; CanRead, CanWrite);
rights!(
    /// READ, WRITE and IRQ: a client that waits for answers.
    ReadWriteIrq = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ; CanRead, CanWrite, CanIrq);
rights!(
    /// READ, WRITE, IRQ and DMA: a client that also lends buffers.
    Client = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_IRQ | dev::RIGHT_DMA;
    CanRead, CanWrite, CanIrq, CanDma);

/// A handle to a device of class `C` holding rights `R`.
pub struct Handle<C: Class, R: Rights> {
    raw: dev::Handle,
    _type: PhantomData<(C, R)>,
}

impl<C: Class, R: Rights> Handle<C, R> {
    /// Attaches the device registered as `C::NAME` with exactly `R`.
    pub fn attach() -> Result<Self, Error> {
        dev::attach(REGISTRY, C::NAME, R::BITS).map(|raw| Handle {
            raw,
            _type: PhantomData,
        })
    }

    /// The untyped handle, for what this layer does not cover.
    pub fn raw(&self) -> dev::Handle {
        self.raw
    }

    pub fn detach(self) -> Result<(), Error> {
        self.raw.detach()
    }

    pub fn read<const P: u32, const S: u32>(&self, _port: In<C, P, S>) -> Result<u64, Error>
    where
        R: CanRead,
    {
        self.raw.port_in(P, S)
    }

    pub fn write<const P: u32, const S: u32>(
        &self,
        _port: Out<C, P, S>,
        value: u64,
    ) -> Result<(), Error>
    where
        R: CanWrite,
    {
        self.raw.port_out(P, S, value)
    }

    /// `write`, then wait for a vector of `mask` (one system call).
    pub fn write_wait<const P: u32, const S: u32>(
        &self,
        _port: Out<C, P, S>,
        value: u64,
        mask: u64,
    ) -> Result<u64, Error>
    where
        R: CanWrite,
    {
        self.raw.port_out_wait(P, S, value, mask)
    }

    /// Delivers `line` as `vector`.
    pub fn map_line<const L: u32>(&self, _line: Line<C, L>, vector: u32) -> Result<(), Error>
    where
        R: CanIrq,
    {
        self.raw.irq_map(L, vector)
    }

    /// Lets the device reach `buf`; returns its iova.
    pub fn export(&self, buf: &mut [u8]) -> Result<u64, Error>
    where
        R: CanDma,
    {
        self.raw.export(buf)
    }

    pub fn unexport(&self, iova: u64) -> Result<(), Error>
    where
        R: CanDma,
    {
        self.raw.unexport(iova)
    }
}

/// The console (`servers/console`; ports in `abi::console`).
pub struct Console;

impl Class for Console {
    const NAME: &'static str = "console";
}

impl Console {
    pub const OUT_BUFFER: Out<Console, { abi::console::CONSOLE_PORT_OUT_BUFFER }, 8> = Out::NEW;
    pub const WRITE: Out<Console, { abi::console::CONSOLE_PORT_WRITE }, 8> = Out::NEW;
    pub const IN_BUFFER: Out<Console, { abi::console::CONSOLE_PORT_IN_BUFFER }, 8> = Out::NEW;
    pub const READ: Out<Console, { abi::console::CONSOLE_PORT_READ }, 8> = Out::NEW;
    pub const FOREGROUND: Out<Console, { abi::console::CONSOLE_PORT_FOREGROUND }, 8> = Out::NEW;
    pub const SYNC: Out<Console, { abi::console::CONSOLE_PORT_SYNC }, 8> = Out::NEW;
    pub const WRITE_RESULT: In<Console, { abi::console::CONSOLE_IO_WRITE_RESULT }, 8> = In::NEW;
    pub const READ_RESULT: In<Console, { abi::console::CONSOLE_IO_READ_RESULT }, 8> = In::NEW;
    pub const DONE: Line<Console, { abi::console::CONSOLE_IRQ_DONE }> = Line::NEW;
    pub const INTERRUPT: Line<Console, { abi::console::CONSOLE_IRQ_INTERRUPT }> = Line::NEW;
}

/// The timer (`servers/timer`; ports in `abi::timer`).
pub struct Timer;

impl Class for Timer {
    const NAME: &'static str = "timer";
}

impl Timer {
    pub const SYNC: Out<Timer, { abi::timer::TIMER_PORT_SYNC }, 8> = Out::NEW;
    pub const PERIOD: Out<Timer, { abi::timer::TIMER_PORT_PERIOD }, 8> = Out::NEW;
    pub const ARM: Out<Timer, { abi::timer::TIMER_PORT_ARM }, 8> = Out::NEW;
    pub const CANCEL: Out<Timer, { abi::timer::TIMER_PORT_CANCEL }, 8> = Out::NEW;
    pub const STATUS: In<Timer, { abi::timer::TIMER_IO_STATUS }, 4> = In::NEW;
    pub const TSC_EPOCH: In<Timer, { abi::timer::TIMER_IO_TSC_EPOCH }, 8> = In::NEW;
    pub const MULT: In<Timer, { abi::timer::TIMER_IO_MULT }, 8> = In::NEW;
    pub const TSC_HZ: In<Timer, { abi::timer::TIMER_IO_TSC_HZ }, 8> = In::NEW;
    pub const REPLY: Line<Timer, { abi::timer::TIMER_IRQ_REPLY }> = Line::NEW;
    pub const ALARM: Line<Timer, { abi::timer::TIMER_IRQ_ALARM }> = Line::NEW;
}

/// The kernel log (`abi::kdev::KLOG_*`).
pub struct Klog;

impl Class for Klog {
    const NAME: &'static str = "klog";
}

impl Klog {
    pub const WRITTEN: In<Klog, { abi::kdev::KLOG_PORT_WRITTEN }, 8> = In::NEW;
    pub const POS: Out<Klog, { abi::kdev::KLOG_PORT_POS }, 8> = Out::NEW;
    pub const LEN: Out<Klog, { abi::kdev::KLOG_PORT_LEN }, 8> = Out::NEW;
    pub const READ: Out<Klog, { abi::kdev::KLOG_PORT_READ }, 8> = Out::NEW;
    pub const DONE: In<Klog, { abi::kdev::KLOG_PORT_DONE }, 8> = In::NEW;
    pub const LOST: In<Klog, { abi::kdev::KLOG_PORT_LOST }, 8> = In::NEW;
    pub const POS_NOW: In<Klog, { abi::kdev::KLOG_PORT_POS_NOW }, 8> = In::NEW;
    pub const MARK: Out<Klog, { abi::kdev::KLOG_PORT_MARK }, 8> = Out::NEW;
    pub const MARK_NOW: In<Klog, { abi::kdev::KLOG_PORT_MARK }, 8> = In::NEW;
    pub const DATA: Line<Klog, { abi::kdev::KLOG_IRQ_DATA }> = Line::NEW;
}

/// init's control device (`servers/init`; ports in `abi::init`).
pub struct Init;

impl Class for Init {
    const NAME: &'static str = "init";
}

impl Init {
    pub const STOP: Out<Init, { abi::init::INIT_PORT_STOP }, 8> = Out::NEW;
    pub const RESULT: In<Init, { abi::init::INIT_IO_RESULT }, 8> = In::NEW;
    pub const DONE: Line<Init, { abi::init::INIT_IRQ_DONE }> = Line::NEW;
}

/// A disk (`servers/virtio-blk`'s `disk0`; ports in `abi::disk`). The
/// blocking client is `libmh::disk::Disk`.
pub struct Disk;

impl Class for Disk {
    const NAME: &'static str = crate::disk::NAME;
}

impl Disk {
    pub const READ: Out<Disk, { abi::disk::DISK_PORT_READ }, 8> = Out::NEW;
    pub const WRITE: Out<Disk, { abi::disk::DISK_PORT_WRITE }, 8> = Out::NEW;
    pub const FLUSH: Out<Disk, { abi::disk::DISK_PORT_FLUSH }, 8> = Out::NEW;
    pub const SYNC: Out<Disk, { abi::disk::DISK_PORT_SYNC }, 8> = Out::NEW;
    pub const RESULT: In<Disk, { abi::disk::DISK_IO_RESULT }, 8> = In::NEW;
    pub const CAPACITY: In<Disk, { abi::disk::DISK_IO_CAPACITY }, 8> = In::NEW;
    pub const SECTOR_SIZE: In<Disk, { abi::disk::DISK_IO_SECTOR_SIZE }, 8> = In::NEW;
    pub const TRANSFER_MAX: In<Disk, { abi::disk::DISK_IO_TRANSFER_MAX }, 8> = In::NEW;
    pub const FLAGS: In<Disk, { abi::disk::DISK_IO_FLAGS }, 8> = In::NEW;
    pub const DONE: Line<Disk, { abi::disk::DISK_IRQ_DONE }> = Line::NEW;
}
