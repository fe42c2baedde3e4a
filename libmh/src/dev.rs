//! Devices from a program's point of view: attach by name through the
//! registry, ports, DMA exports, IRQs; and serving a user device.
//!
//! Rules: every call returns `Result<_, abi::Error>`; a `Handle` is just
//! the number the kernel gave (the kernel checks it on every use), so
//! copying one is harmless; buffers passed to the kernel are Rust
//! references the caller holds.

use crate::raw::{syscall3, syscall6, syscall6_out4};
use abi::{Error, Sysno};

pub use abi::bus::*;
pub use abi::userdev::*;

/// A handle on the caller's bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle(pub u64);

/// The registry handle init starts with (and passes on by `fork`).
pub const REGISTRY: Handle = Handle(REGISTRY_HANDLE_SLOT as u64);

#[inline]
fn call(n: Sysno, a: [u64; 6]) -> Result<usize, Error> {
    // SAFETY: pointer arguments built in this module come from references
    // the caller holds; the kernel checks everything else.
    Error::decode(unsafe { syscall6(n as u64, a[0], a[1], a[2], a[3], a[4], a[5]) })
}

/// A polling call with a null request pointer: the kernel answers with
/// the request in four registers (`Request::to_words`), so nothing is
/// written to memory.
#[inline]
fn call_request(n: Sysno, a: [u64; 6]) -> Result<Request, Error> {
    // SAFETY: no pointer argument (the request pointer is null).
    let (ret, words) = unsafe { syscall6_out4(n as u64, a[0], a[1], a[2], a[3], a[4], a[5]) };
    Error::decode(ret)?;
    Ok(Request::from_words(words))
}

#[inline]
fn call3(n: Sysno, a0: u64, a1: u64, a2: u64) -> Result<usize, Error> {
    // SAFETY: as in `call`.
    Error::decode(unsafe { syscall3(n as u64, a0, a1, a2) })
}

/// Attaches the device called `name` with `rights` (plus
/// `ATTACH_CLOSE_ON_EXEC` if wanted), looking it up through `registry`.
pub fn attach(registry: Handle, name: &str, rights: u32) -> Result<Handle, Error> {
    call(
        Sysno::Attach,
        [
            registry.0,
            name.as_ptr() as u64,
            name.len() as u64,
            rights as u64,
            0,
            0,
        ],
    )
    .map(|h| Handle(h as u64))
}

/// Narrows the names this process may attach or register to `names`
/// (and its children's, which inherit the scope; `exec` keeps it). A name
/// the scope does not already allow is `AccessDenied` and changes nothing;
/// a malformed name or more than `NAME_SCOPE_MAX` names is
/// `InvalidArgument`. `&[]` leaves no name at all.
pub fn restrict_names(names: &[&str]) -> Result<(), Error> {
    restrict_names_raw(names.iter().copied())
}

/// `restrict_names` over any iterator of names (e.g. a split string).
pub fn restrict_names_raw<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), Error> {
    let mut list = [0u8; NAME_LIST_MAX];
    let mut len = 0;
    for name in names {
        // The kernel judges the names; here they only have to fit.
        let end = len + name.len();
        if name.is_empty() || end >= list.len() {
            return Err(Error::InvalidArgument);
        }
        list[len..end].copy_from_slice(name.as_bytes());
        len = end + 1;
    }
    call3(Sysno::RestrictNames, list.as_ptr() as u64, len as u64, 0).map(|_| ())
}

impl Handle {
    pub fn detach(self) -> Result<(), Error> {
        call3(Sysno::Detach, self.0, 0, 0).map(|_| ())
    }

    pub fn info(self) -> Result<DeviceInfo, Error> {
        let mut info = DeviceInfo::default();
        call3(Sysno::Info, self.0, &raw mut info as u64, 0)?;
        Ok(info)
    }

    /// Keeps only `rights` (a subset of what the handle has).
    pub fn restrict(self, rights: u32) -> Result<(), Error> {
        call3(Sysno::Restrict, self.0, rights as u64, 0).map(|_| ())
    }

    #[inline]
    pub fn port_in(self, port: u32, size: u32) -> Result<u64, Error> {
        call3(Sysno::PortIn, self.0, port as u64, size as u64).map(|v| v as u64)
    }

    #[inline]
    pub fn port_out(self, port: u32, size: u32, value: u64) -> Result<(), Error> {
        call(
            Sysno::PortOut,
            [self.0, port as u64, size as u64, value, 0, 0],
        )
        .map(|_| ())
    }

    /// `port_out`, then sleep until a vector of `mask` is pending; returns
    /// the vectors taken.
    #[inline]
    pub fn port_out_wait(self, port: u32, size: u32, value: u64, mask: u64) -> Result<u64, Error> {
        call(
            Sysno::PortOutWait,
            [self.0, port as u64, size as u64, value, mask, 0],
        )
        .map(|v| v as u64)
    }

    /// Lets the device read and write `buf` (until `unexport`); returns
    /// its iova. For a hardware device that sees physical addresses, `buf`
    /// must lie in one page (use [`Handle::export_pages`]).
    pub fn export(self, buf: &mut [u8]) -> Result<u64, Error> {
        self.export_with(buf.as_mut_ptr() as u64, buf.len() as u64, 0, &mut [])
    }

    /// Lets the device only read `buf` (until `unexport`); returns its
    /// iova.
    pub fn export_read_only(self, buf: &[u8]) -> Result<u64, Error> {
        let flags = abi::hw::EXPORT_DEVICE_READS_ONLY;
        self.export_with(buf.as_ptr() as u64, buf.len() as u64, flags, &mut [])
    }

    /// Lets the device reach `buf`, writing the physical address of each
    /// page it spans to `pages` when the device sees physical addresses
    /// (a hardware device without an I/O MMU; `pages` needs one entry per
    /// page then). Returns the iova (or physical address) of `buf`.
    pub fn export_pages(self, buf: &mut [u8], pages: &mut [u64]) -> Result<u64, Error> {
        self.export_with(buf.as_mut_ptr() as u64, buf.len() as u64, 0, pages)
    }

    /// `export` with every argument: `flags` from `abi::hw::EXPORT_*`.
    pub fn export_with(
        self,
        va: u64,
        len: u64,
        flags: u64,
        pages: &mut [u64],
    ) -> Result<u64, Error> {
        call(
            Sysno::Export,
            [
                self.0,
                va,
                len,
                flags,
                pages.as_mut_ptr() as u64,
                core::mem::size_of_val(pages) as u64,
            ],
        )
        .map(|v| v as u64)
    }

    pub fn unexport(self, iova: u64) -> Result<(), Error> {
        call3(Sysno::Unexport, self.0, iova, 0).map(|_| ())
    }

    /// Delivers the device's `line` as the caller's `vector`.
    pub fn irq_map(self, line: u32, vector: u32) -> Result<(), Error> {
        call3(Sysno::IrqMap, self.0, line as u64, vector as u64).map(|_| ())
    }

    pub fn irq_ack(self, line: u32) -> Result<(), Error> {
        call3(Sysno::IrqAck, self.0, line as u64, 0).map(|_| ())
    }

    /// Maps the hardware device's memory `[phys, phys+len)` at `va`.
    pub fn iomap(self, va: u64, phys: u64, len: u64) -> Result<(), Error> {
        call(Sysno::IoMap, [self.0, va, phys, len, 0, 0]).map(|_| ())
    }

    /// Unmaps device memory mapped through this handle.
    pub fn iounmap(self, va: u64, len: u64) -> Result<(), Error> {
        call3(Sysno::IoUnmap, self.0, va, len).map(|_| ())
    }
}

/// Creates a hardware device through a `platform` handle.
pub fn create_hardware(platform: Handle, spec: &abi::HwDeviceSpec) -> Result<(), Error> {
    platform_call(platform, abi::kdev::PLATFORM_PORT_CREATE, spec)
}

/// Claims the PCI function at `segment:bus:device.function` as the
/// hardware device `name`, through a `platform` handle.
pub fn claim_pci(
    platform: Handle,
    name: &str,
    segment: u16,
    bus: u8,
    device: u8,
    function: u8,
) -> Result<(), Error> {
    let mut spec = abi::hw::PciClaimSpec {
        name_len: name.len() as u32,
        segment,
        bus,
        devfn: device << 3 | (function & 7),
        ..abi::hw::PciClaimSpec::default()
    };
    if name.len() > spec.name.len() || device >= 32 || function >= 8 {
        return Err(Error::InvalidArgument);
    }
    spec.name[..name.len()].copy_from_slice(name.as_bytes());
    platform_call(platform, abi::kdev::PLATFORM_PORT_CLAIM_PCI, &spec)
}

/// Gives back the frames quarantined for hardware device `name` (after
/// resetting it).
pub fn release_quarantine(platform: Handle, name: &str) -> Result<(), Error> {
    let mut spec = abi::HwDeviceSpec {
        name_len: name.len() as u32,
        ..abi::HwDeviceSpec::default()
    };
    let n = name.len().min(spec.name.len());
    spec.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    platform_call(platform, abi::kdev::PLATFORM_PORT_RELEASE_QUARANTINE, &spec)
}

/// Plain `repr(C)` ABI structs a platform port reads.
trait PlatformSpec: Copy {}
impl PlatformSpec for abi::HwDeviceSpec {}
impl PlatformSpec for abi::hw::PciClaimSpec {}

fn platform_call<T: PlatformSpec>(platform: Handle, port: u32, spec: &T) -> Result<(), Error> {
    let mut copy = *spec;
    // SAFETY: the specs are plain repr(C) data of integer fields
    // (`PlatformSpec`); the byte view lives only for the export below.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut((&raw mut copy).cast::<u8>(), core::mem::size_of::<T>())
    };
    let iova = platform.export(bytes)?;
    let r = platform.port_out(port, 8, iova);
    platform.unexport(iova)?;
    r
}

/// A user device this program serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served(pub Handle);

/// Creates a user device and registers it through `registry`, a registry
/// handle with the REGISTER right. `vector` is raised when requests queue.
pub fn create(
    registry: Handle,
    name: &str,
    irq_lines: u32,
    iospace_size: u32,
    vector: u32,
) -> Result<Served, Error> {
    create_queued(registry, name, irq_lines, iospace_size, vector, 0)
}

/// [`create`] for a device whose clients may have up to
/// `queue_per_client` OUT requests waiting (1 ..= `QUEUE_PER_CLIENT_MAX`;
/// 0: the default, `QUEUE_PER_CLIENT_DEFAULT`): for a protocol in which a
/// client sends many requests before it waits (virtio-net's receive
/// buffers).
pub fn create_queued(
    registry: Handle,
    name: &str,
    irq_lines: u32,
    iospace_size: u32,
    vector: u32,
    queue_per_client: u32,
) -> Result<Served, Error> {
    let mut config = DeviceConfig {
        irq_lines,
        iospace_size,
        vector,
        queue_per_client,
        ..DeviceConfig::default()
    };
    let n = name.len().min(config.name.len());
    config.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    config.name_len = name.len() as u32;
    call3(Sysno::DevCreate, registry.0, &raw const config as u64, 0)
        .map(|h| Served(Handle(h as u64)))
}

impl Served {
    /// The next request; sleeps until one comes.
    #[inline]
    pub fn poll(self) -> Result<Request, Error> {
        call_request(Sysno::DevPoll, [self.0.0, 0, 0, 0, 0, 0])
    }

    /// The next request, or `WouldBlock`.
    pub fn try_poll(self) -> Result<Request, Error> {
        call_request(
            Sysno::DevPoll,
            [self.0.0, 0, abi::syscall::POLL_NOWAIT, 0, 0, 0],
        )
    }

    #[inline]
    pub fn write_iospace(
        self,
        client: ClientId,
        port: u32,
        size: u32,
        value: u64,
    ) -> Result<(), Error> {
        call(
            Sysno::DevWriteIospace,
            [self.0.0, client, port as u64, size as u64, value, 0],
        )
        .map(|_| ())
    }

    #[inline]
    pub fn irq(self, client: ClientId, line: u32) -> Result<(), Error> {
        call3(Sysno::DevIrq, self.0.0, client, line as u64).map(|_| ())
    }

    /// Copies from `client`'s export at `iova` into `buf`.
    pub fn dma_read(self, client: ClientId, iova: u64, buf: &mut [u8]) -> Result<(), Error> {
        call(
            Sysno::DevDmaRead,
            [
                self.0.0,
                client,
                iova,
                buf.as_mut_ptr() as u64,
                buf.len() as u64,
                0,
            ],
        )
        .map(|_| ())
    }

    /// Copies `buf` into `client`'s export at `iova`.
    pub fn dma_write(self, client: ClientId, buf: &[u8], iova: u64) -> Result<(), Error> {
        call(
            Sysno::DevDmaWrite,
            [
                self.0.0,
                client,
                buf.as_ptr() as u64,
                buf.len() as u64,
                iova,
                0,
            ],
        )
        .map(|_| ())
    }

    /// Answers `client` (writes `value` to its I/O space at `port`, `size`
    /// bytes, if `size` > 0; raises `line` if given) and polls the next
    /// request, in one call.
    #[inline]
    pub fn reply_poll(
        self,
        client: ClientId,
        port: u32,
        size: u32,
        value: u64,
        line: Option<u32>,
    ) -> Result<Request, Error> {
        let port_size = if size == 0 {
            0
        } else {
            ((port as u64) << 8) | size as u64
        };
        let line = line.map_or(u64::MAX, |l| l as u64);
        call_request(
            Sysno::DevReplyPoll,
            [self.0.0, client, port_size, value, line, 0],
        )
    }

    /// Stops serving: the name is free, clients see `DeviceGone`.
    pub fn destroy(self) -> Result<(), Error> {
        self.0.detach()
    }
}

/// A device or process name as the kernel's listing ports give it: 32
/// bytes read four at a time from ports `first .. first + 8`, padded with
/// zeros (the registry's `REGISTRY_PORT_NAME`, proc's `PROC_PORT_NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Name([u8; DEVICE_NAME_MAX]);

impl Name {
    /// Reads the name of what `h` has selected.
    pub fn read(h: Handle, first: u32) -> Result<Name, Error> {
        let mut name = [0u8; DEVICE_NAME_MAX];
        for (k, chunk) in name.chunks_exact_mut(4).enumerate() {
            let word = h.port_in(first + k as u32, 4)? as u32;
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Ok(Name(name))
    }

    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        core::str::from_utf8(&self.0[..len]).unwrap_or("?")
    }
}
