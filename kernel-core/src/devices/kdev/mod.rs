//! The kernel devices: devices the kernel serves itself, one file each
//! (`registry`, `bootfs`, `klog`, `platform`, `mempool`, `proc`), each an
//! implementation of [`KernelDevice`] with its own typed per-attachment
//! state. This file holds the trait, the list of kinds and the dispatch
//! from a bus slot to the right implementation.
//!
//! Rules: every port and size is checked by the device (`InvalidArgument`
//! for a port it does not have or a size it does not take); the bus has
//! checked the handle's READ or WRITE right before a device sees a call;
//! a device keeps what one attachment selected (a module, a position, a
//! process) in that attachment's state, never in the device, so two
//! handles never see each other's selections; state is copied by `fork`
//! with the handle.

pub mod bootfs;
pub mod klog;
pub mod mempool;
pub mod platform;
pub mod proc;
pub mod registry;

use super::calls::Out;
use super::{Attachment, Device, Devices};
use crate::export::Export;
use crate::kernel::Kernel;
use crate::machine::Machine;
use crate::outline::OutOfLine;
use crate::syscall::decode::{Handle, Vector};
use abi::Error;

/// A device the kernel serves. Each implementation is a unit type; its
/// state is what one attachment remembers between calls.
pub trait KernelDevice {
    /// What each attachment remembers between calls.
    type State: AttachmentState;
    /// `port_in` through an attachment whose state is `state`.
    fn port_in<M: Machine>(
        k: &mut Kernel<M>,
        state: Self::State,
        port: u32,
        size: u64,
    ) -> Result<u64, Error>;
    /// `port_out` through the caller's handle `h` (one of this device's).
    fn port_out<M: Machine>(
        k: &mut Kernel<M>,
        h: Handle,
        port: u32,
        size: u64,
        value: u64,
    ) -> Result<Out, Error>;
    /// `irq_map` of one of its lines; most kernel devices have none.
    fn irq_map<M: Machine>(
        _k: &mut Kernel<M>,
        _h: Handle,
        _line: u64,
        _vector: Vector,
    ) -> Result<(), Error> {
        Err(Error::NotSupported)
    }
}

/// A kernel device's per-attachment state, as one variant of
/// [`KernelState`] (implemented by [`attachment_state!`]).
pub trait AttachmentState: Copy + Default {
    /// The state as an attachment holds it.
    fn wrap(self) -> KernelState;
    /// This device's state in `state`, if `state` is one of its
    /// attachments'.
    fn of(state: &mut KernelState) -> Option<&mut Self>;
}

/// Makes `$state` the state of `KernelState::$variant`.
macro_rules! attachment_state {
    ($state:ty, $variant:ident) => {
        impl super::AttachmentState for $state {
            fn wrap(self) -> super::KernelState {
                super::KernelState::$variant(self)
            }
            fn of(state: &mut super::KernelState) -> Option<&mut Self> {
                match state {
                    super::KernelState::$variant(s) => Some(s),
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use attachment_state;

/// The kernel devices, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Registry,
    Bootfs,
    Klog,
    Platform,
    Mempool,
    Proc,
}

/// Every kind, in the order they are registered at boot.
pub const KINDS: [Kind; 6] = [
    Kind::Registry,
    Kind::Bootfs,
    Kind::Klog,
    Kind::Platform,
    Kind::Mempool,
    Kind::Proc,
];

impl Kind {
    /// The name it is registered under.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Registry => "registry",
            Kind::Bootfs => "bootfs",
            Kind::Klog => "klog",
            Kind::Platform => "platform",
            Kind::Mempool => "mempool",
            Kind::Proc => "proc",
        }
    }

    /// The most rights a handle to it can hold.
    pub fn max_rights(self) -> u32 {
        use abi::bus::*;
        match self {
            Kind::Registry => {
                RIGHT_LOOKUP
                    | RIGHT_REGISTER
                    | RIGHT_SYSTEM
                    | RIGHT_READ
                    | RIGHT_WRITE
                    | RIGHT_CLONE
            }
            Kind::Bootfs | Kind::Platform => RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_CLONE,
            Kind::Klog => RIGHT_READ | RIGHT_WRITE | RIGHT_DMA | RIGHT_IRQ | RIGHT_CLONE,
            Kind::Mempool => RIGHT_READ | RIGHT_WRITE | RIGHT_CLONE,
            Kind::Proc => RIGHT_READ | RIGHT_WRITE | RIGHT_KILL | RIGHT_CLONE,
        }
    }

    /// Whether attaching it needs a registry handle with `RIGHT_SYSTEM`
    /// (it hands out the machine or other processes' memory limits).
    pub fn privileged(self) -> bool {
        matches!(self, Kind::Platform | Kind::Mempool)
    }

    /// A fresh attachment's state.
    pub fn fresh(self) -> KernelState {
        match self {
            Kind::Registry => registry::Cursor::default().wrap(),
            Kind::Bootfs => bootfs::Cursor::default().wrap(),
            Kind::Klog => klog::Cursor::default().wrap(),
            Kind::Platform => platform::Selected::default().wrap(),
            Kind::Mempool => mempool::Selection::default().wrap(),
            Kind::Proc => proc::Selection::default().wrap(),
        }
    }
}

/// What one attachment to a kernel device remembers; the variant says
/// which device it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelState {
    Registry(registry::Cursor),
    Bootfs(bootfs::Cursor),
    Klog(klog::Cursor),
    Platform(platform::Selected),
    Mempool(mempool::Selection),
    Proc(proc::Selection),
}

impl KernelState {
    pub fn kind(&self) -> Kind {
        match self {
            KernelState::Registry(_) => Kind::Registry,
            KernelState::Bootfs(_) => Kind::Bootfs,
            KernelState::Klog(_) => Kind::Klog,
            KernelState::Platform(_) => Kind::Platform,
            KernelState::Mempool(_) => Kind::Mempool,
            KernelState::Proc(_) => Kind::Proc,
        }
    }
}

/// Device `D`'s state in the caller's attachment `h`.
pub fn state_mut<D: KernelDevice, M: Machine>(
    k: &mut Kernel<M>,
    h: Handle,
) -> Result<&mut D::State, Error> {
    match &mut k.current().bus.get_mut(h)?.value {
        Attachment::Kernel { state, .. } => D::State::of(state).ok_or(Error::NotSupported),
        _ => Err(Error::NotSupported),
    }
}

/// What a kernel device's `port_out` may touch of the caller's attachment
/// `h`: its state, its exports, and the caller's memory.
pub struct Parts<'a, S, M: Machine> {
    pub state: &'a mut S,
    pub exports: &'a OutOfLine<Export, 8>,
    pub space: &'a mut M::Space,
}

/// The parts of the caller's attachment `h` to device `D`.
pub fn parts<'a, D: KernelDevice, M: Machine>(
    k: &'a mut Kernel<M>,
    h: Handle,
) -> Result<Parts<'a, D::State, M>, Error> {
    let p = k.current();
    let Attachment::Kernel { state, exports, .. } = &mut p.bus.get_mut(h)?.value else {
        return Err(Error::NotSupported);
    };
    let state = D::State::of(state).ok_or(Error::NotSupported)?;
    let space = p.space.as_mut().ok_or(Error::BadAddress)?;
    Ok(Parts {
        state,
        exports,
        space,
    })
}

/// Access sizes a port takes, as a set of sizes (each a power of two).
pub type Sizes = u64;
/// 4 or 8 bytes.
pub const SIZE_4_8: Sizes = 4 | 8;
/// 8 bytes only.
pub const SIZE_8: Sizes = 8;

/// Checks an access size (1, 2, 4 or 8: decoded `Port`s have no other)
/// against the ones a port takes.
#[inline(always)]
pub fn require_size(size: u64, allowed: Sizes) -> Result<(), Error> {
    if size & allowed != 0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument)
    }
}

/// `port_in` on a kernel device, through an attachment with `state`.
#[inline(always)]
pub fn port_in<M: Machine>(
    k: &mut Kernel<M>,
    state: KernelState,
    port: u32,
    size: u64,
) -> Result<u64, Error> {
    match state {
        KernelState::Registry(s) => registry::Registry::port_in(k, s, port, size),
        KernelState::Bootfs(s) => bootfs::Bootfs::port_in(k, s, port, size),
        KernelState::Klog(s) => klog::Klog::port_in(k, s, port, size),
        KernelState::Platform(s) => platform::Platform::port_in(k, s, port, size),
        KernelState::Mempool(s) => mempool::Mempool::port_in(k, s, port, size),
        KernelState::Proc(s) => proc::Proc::port_in(k, s, port, size),
    }
}

/// `port_out` on the kernel device of kind `kind`, through handle `h`.
pub fn port_out<M: Machine>(
    k: &mut Kernel<M>,
    kind: Kind,
    h: Handle,
    port: u32,
    size: u64,
    value: u64,
) -> Result<Out, Error> {
    match kind {
        Kind::Registry => registry::Registry::port_out(k, h, port, size, value),
        Kind::Bootfs => bootfs::Bootfs::port_out(k, h, port, size, value),
        Kind::Klog => klog::Klog::port_out(k, h, port, size, value),
        Kind::Platform => platform::Platform::port_out(k, h, port, size, value),
        Kind::Mempool => mempool::Mempool::port_out(k, h, port, size, value),
        Kind::Proc => proc::Proc::port_out(k, h, port, size, value),
    }
}

/// `irq_map` on the kernel device of kind `kind`.
pub fn irq_map<M: Machine>(
    k: &mut Kernel<M>,
    kind: Kind,
    h: Handle,
    line: u64,
    vector: Vector,
) -> Result<(), Error> {
    match kind {
        Kind::Klog => klog::Klog::irq_map(k, h, line, vector),
        Kind::Registry => registry::Registry::irq_map(k, h, line, vector),
        Kind::Bootfs => bootfs::Bootfs::irq_map(k, h, line, vector),
        Kind::Platform => platform::Platform::irq_map(k, h, line, vector),
        Kind::Mempool => mempool::Mempool::irq_map(k, h, line, vector),
        Kind::Proc => proc::Proc::irq_map(k, h, line, vector),
    }
}

/// Registers the kernel devices at boot.
pub fn init(devices: &mut Devices) -> Result<(), Error> {
    for kind in KINDS {
        devices
            .add(kind.name(), Device::Kernel(kind), None)
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}
