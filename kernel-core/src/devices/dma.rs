//! DMA exports to hardware devices: what a driver lets its device reach.
//!
//! Two cases. A claimed PCI function behind an I/O MMU has a domain of
//! its own ([`DmaSpace`]): `export` wires every page of the range, maps
//! them at one contiguous range of I/O virtual addresses from the
//! domain's window and returns the iova; `unexport` unmaps them,
//! invalidates the IOTLB and waits, and only then unwires. Any other
//! device sees physical addresses: `export` wires the pages and returns
//! the first one's physical address, writing every page's to the
//! caller's list when there is more than one. Those addresses all lie
//! below [`PHYSICAL_DMA_LIMIT`] (4 GiB): the kernel cannot tell whether
//! such a device drives more than 32 address bits (many PCI devices and
//! every ISA one do not), so a page whose frame lies higher is moved to a
//! frame below first (`Vm::wire_below`: copied, invisible to the process
//! but for the address); `OutOfMemory` if no frame below is free, `Busy`
//! if the page is already wired there for another device. Behind an I/O
//! MMU no move is needed: the domain maps any frame (below the unit's
//! host address width, which covers the machine's RAM) at a low iova.
//!
//! Rules:
//! - every page is checked and wired before anything is mapped, and a
//!   failure part way undoes exactly what was done (nothing stays wired,
//!   mapped or allocated);
//! - a page the device may write must be writable by the process;
//! - a frame leaves a domain only through an unmap followed by a
//!   completed invalidation, and table frames an unmap empties are freed
//!   only after it;
//! - when a driver's last attachment goes with exports still live, its
//!   function's bus mastering is already off; with an I/O MMU the pages
//!   are unmapped (invalidated) but their iovas stay allocated
//!   (quarantined) until the platform holder releases the device's
//!   quarantine, so a restarted driver is never given an iova the device
//!   may still have queued; with or without one, when the process is
//!   exiting (or execs) the frames are quarantined too, because a device
//!   can finish a transfer it translated before the unmap (QEMU's do);
//! - the domain's window is fixed ([`WINDOW_BASE`], `HW_DMA_WINDOW_PAGES`),
//!   so the page tables it can need are bounded ([`WINDOW_TABLE_FRAMES`])
//!   and were paid for by the device's creator when it claimed the
//!   function; per attachment, [`EXPORTS_PER_ATTACHMENT`] ranges.

extern crate alloc;

use super::hw::{HwDevice, quarantine, vm_of};
use super::{Attachment, DEVICE_SHAPE, DeviceId};
use crate::acpi::PciFunction;
use crate::frame::Frame;
use crate::iommu::{Access, Domain, Flush, IovaSpace, Stale};
use crate::kernel::Kernel;
use crate::machine::{IommuLink, Machine};
use crate::pagetable::TableFrames;
use crate::process::Pid;
use crate::usercopy::USlice;
use abi::Error;
use abi::hw::HW_DMA_WINDOW_PAGES;
use alloc::vec::Vec;

const PAGE: u64 = 4096;

/// Where every domain's window of iovas starts: 64 MiB, far enough from
/// 0 that a device told a small or null address faults, and low enough
/// (the window ends at 128 MiB) for devices that drive only 28 or 32
/// address bits, and far below the MSI window at 0xFEE0_0000.
pub const WINDOW_BASE: u64 = 64 << 20;
/// The most table frames a domain needs for its whole window: the root,
/// one table per level between, and one leaf table per 2 MiB.
pub const WINDOW_TABLE_FRAMES: u64 = 1 + 2 + HW_DMA_WINDOW_PAGES / 512;
const _: () =
    assert!((WINDOW_BASE >> 30) == ((WINDOW_BASE + HW_DMA_WINDOW_PAGES * PAGE - 1) >> 30));
/// Export ranges one hardware attachment holds.
pub const EXPORTS_PER_ATTACHMENT: usize = 16;
/// Untranslated exports give devices physical addresses below this: what
/// a device limited to 32-bit DMA addresses can reach.
pub const PHYSICAL_DMA_LIMIT: u64 = 1 << 32;

/// One export of a hardware attachment: `pages` pages from user page
/// `va`, seen by the device from `iova` (an iova of the domain, or the
/// first page's physical address, plus the offset of the exported
/// range in its first page: what `export` returned, and `unexport`
/// names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwExport {
    pub va: u64,
    pub iova: u64,
    pub pages: u64,
    /// Whether `iova` is a domain address (else physical).
    pub translated: bool,
}

/// The kernel's own frames, for a domain's tables (paid for at claim).
struct TableSource<M>(core::marker::PhantomData<M>);

impl<M: Machine> TableFrames for TableSource<M> {
    fn alloc_table(&mut self) -> Option<Frame> {
        M::alloc_frame()
    }

    fn free_table(&mut self, frame: Frame) {
        let _ = M::release_frame(frame);
    }
}

fn tables<M: Machine>() -> TableSource<M> {
    TableSource(core::marker::PhantomData)
}

/// A function's domain: its page tables, its iovas, its id.
pub struct DmaSpace {
    pub domain: Domain,
    pub iovas: IovaSpace,
    pub did: u16,
    /// The unit caches not-present entries: flush after mapping too.
    pub flush_on_map: bool,
    /// Iova ranges of a dead driver's exports (unmapped, not reusable)
    /// until the quarantine is released: (iova, pages).
    pub quarantined: Vec<(u64, u64)>,
}

/// The domain id of device `id` on a unit with `link.domains` ids: one
/// per device slot, never 0.
pub fn domain_id(id: DeviceId, link: IommuLink) -> Result<u16, Error> {
    let did = DEVICE_SHAPE.slot(id) + 1;
    match u16::try_from(did) {
        Ok(d) if u32::from(d) < link.domains => Ok(d),
        _ => Err(Error::LimitReached),
    }
}

impl DmaSpace {
    /// An empty domain for `f`, attached to its unit.
    pub fn new<M: Machine>(f: PciFunction, did: u16, link: IommuLink) -> Result<DmaSpace, Error> {
        let end = WINDOW_BASE + HW_DMA_WINDOW_PAGES * PAGE;
        if end > link.geometry.iova_end() {
            return Err(Error::NotSupported);
        }
        let iovas = IovaSpace::new(WINDOW_BASE, end)?;
        let domain = Domain::new(&mut tables::<M>(), link.geometry)?;
        if let Err(e) = M::iommu_attach(f, did, domain.root()) {
            M::with_io_tables(|mem| domain.destroy(mem, &mut tables::<M>(), &mut |_, _| {}));
            return Err(e);
        }
        Ok(DmaSpace {
            domain,
            iovas,
            did,
            flush_on_map: link.flush_on_map,
            quarantined: Vec::new(),
        })
    }

    /// Unmaps `pages` pages from `iova`, invalidates and waits, then frees
    /// the tables that emptied. Returns the frames that were mapped.
    fn unmap<M: Machine>(
        &mut self,
        f: PciFunction,
        iova: u64,
        pages: u64,
        frames: &mut dyn FnMut(Frame),
    ) {
        let mut flush = Flush::NONE;
        let mut stale: Vec<Stale> = Vec::new();
        M::with_io_tables(|mem| {
            for i in 0..pages {
                if let Some(u) = self.domain.unmap(mem, iova + i * PAGE) {
                    flush.merge(u.flush);
                    frames(u.frame);
                    if !u.stale.is_empty() {
                        // Freed after the invalidation below; if the list
                        // cannot grow, invalidate now and free at once.
                        if stale.try_reserve(1).is_ok() {
                            stale.push(u.stale);
                        } else {
                            M::iommu_flush(f, self.did, &flush);
                            u.stale.release(&mut tables::<M>());
                        }
                    }
                }
            }
        });
        if !flush.is_empty() {
            M::iommu_flush(f, self.did, &flush);
        }
        for s in stale {
            s.release(&mut tables::<M>());
        }
    }
}

/// `export(h, va, len, flags, pages)` to a hardware device: the iova (or
/// physical address) of `va`.
pub fn export<M: Machine>(
    s: &mut Kernel<M>,
    h: u64,
    va: u64,
    len: u64,
    device_writes: bool,
    list: USlice,
) -> Result<u64, Error> {
    let end = va.checked_add(len).ok_or(Error::InvalidArgument)?;
    if len == 0 {
        return Err(Error::InvalidArgument);
    }
    let first = va & !(PAGE - 1);
    let pages = (end - first).div_ceil(PAGE);
    let pid = s.current_pid();
    let (dev, grow) = match &s.current().bus.get(h)?.value {
        Attachment::Hardware { exports, .. } if exports.is_full() => {
            return Err(Error::LimitReached);
        }
        Attachment::Hardware { dev, exports, .. } => (*dev, exports.growth_bytes() as u64),
        _ => return Err(Error::NotSupported),
    };
    let translated = dma_of(s, dev).is_some();
    if translated && pages > HW_DMA_WINDOW_PAGES {
        return Err(Error::LimitReached);
    }
    if !translated && pages > 1 && (list.len() as u64) < pages * 8 {
        return Err(Error::InvalidArgument);
    }
    // The list's memory first (charged), so the push at the end cannot
    // fail.
    super::hw::reserve_list(s, pid, h, grow, |a| match a {
        Attachment::Hardware { exports, .. } => exports.reserve(),
        _ => Err(Error::NotSupported),
    })?;
    let iova = if translated {
        export_translated(s, pid, dev, first, pages, device_writes)?
    } else {
        export_physical(s, pid, first, pages, device_writes, list)?
    };
    let export = HwExport {
        va: first,
        iova: iova + (va & (PAGE - 1)),
        pages,
        translated,
    };
    if let Attachment::Hardware { exports, .. } = &mut s.current().bus.get_mut(h)?.value {
        let _ = exports.try_push(export);
    }
    Ok(export.iova)
}

/// The domain of device `dev`, if it is a function behind an I/O MMU.
fn dma_of<M: Machine>(s: &mut Kernel<M>, dev: DeviceId) -> Option<(PciFunction, &mut DmaSpace)> {
    let p = super::pci::pci_of(s, dev)?;
    let f = p.function;
    p.dma.as_mut().map(|d| (f, d))
}

/// Wires and maps each page at one new range of `dev`'s iovas.
fn export_translated<M: Machine>(
    s: &mut Kernel<M>,
    pid: Pid,
    dev: DeviceId,
    first: u64,
    pages: u64,
    device_writes: bool,
) -> Result<u64, Error> {
    let (_, d) = dma_of(s, dev).ok_or(Error::DeviceGone)?;
    let iova = d.iovas.alloc(pages)?;
    let access = if device_writes {
        Access::READ | Access::WRITE
    } else {
        Access::READ
    };
    for i in 0..pages {
        let va = first + i * PAGE;
        let mapped = vm_of(s, pid, |vm| vm.wire(va, device_writes)).and_then(|phys| {
            let (_, d) = dma_of(s, dev).ok_or(Error::DeviceGone)?;
            let frame = Frame::containing(phys);
            let r = M::with_io_tables(|mem| {
                d.domain
                    .map(mem, &mut tables::<M>(), iova + i * PAGE, frame, access)
            });
            if r.is_err() {
                let _ = vm_of(s, pid, |vm| vm.unwire(va).map(|()| 0));
            }
            r
        });
        if let Err(e) = mapped {
            // Nothing of page i stays; pages before it are mapped and
            // wired: undo them (the device was never told the iova).
            if let Some((f, d)) = dma_of(s, dev) {
                d.unmap::<M>(f, iova, i, &mut |_| {});
                let _ = d.iovas.free(iova, pages);
            }
            unwire_pages(s, pid, first, i);
            return Err(e);
        }
    }
    if let Some((f, d)) = dma_of(s, dev).filter(|(_, d)| d.flush_on_map) {
        let mut flush = Flush::page(iova, false);
        flush.merge(Flush::page(iova + (pages - 1) * PAGE, false));
        M::iommu_flush(f, d.did, &flush);
    }
    Ok(iova)
}

/// Wires each page and writes its physical address to `list` (when it
/// has room: a one-page export may pass none).
fn export_physical<M: Machine>(
    s: &mut Kernel<M>,
    pid: Pid,
    first: u64,
    pages: u64,
    device_writes: bool,
    list: USlice,
) -> Result<u64, Error> {
    let mut base = 0;
    for i in 0..pages {
        let va = first + i * PAGE;
        let wired = vm_of(s, pid, |vm| {
            vm.wire_below(va, device_writes, PHYSICAL_DMA_LIMIT)
        });
        let done = wired.and_then(|phys| {
            if i == 0 {
                base = phys;
            }
            if (list.len() as u64) < (i + 1) * 8 {
                return Ok(phys);
            }
            let at = USlice::new(list.addr() + i * 8, 8, 8)?;
            let r = match s.get_mut(pid).and_then(|p| p.space.as_mut()) {
                Some(space) => at.write::<M>(space, &phys.to_le_bytes()),
                None => Err(Error::BadAddress),
            };
            if r.is_err() {
                let _ = vm_of(s, pid, |vm| vm.unwire(va).map(|()| 0));
            }
            r.map(|()| phys)
        });
        if let Err(e) = done {
            unwire_pages(s, pid, first, i);
            return Err(e);
        }
    }
    Ok(base & !(PAGE - 1))
}

fn unwire_pages<M: Machine>(s: &mut Kernel<M>, pid: Pid, first: u64, pages: u64) {
    for i in 0..pages {
        let _ = vm_of(s, pid, |vm| vm.unwire(first + i * PAGE).map(|()| 0));
    }
}

/// `unexport(h, iova)` from a hardware device: `iova` exactly as `export`
/// returned it.
pub fn unexport<M: Machine>(s: &mut Kernel<M>, h: u64, iova: u64) -> Result<(), Error> {
    let pid = s.current_pid();
    let (dev, export) = match &mut s.current().bus.get_mut(h)?.value {
        Attachment::Hardware { dev, exports, .. } => {
            let i = exports
                .iter()
                .position(|e| e.iova == iova)
                .ok_or(Error::NotFound)?;
            (*dev, exports.remove(i).ok_or(Error::NotFound)?)
        }
        _ => return Err(Error::NotSupported),
    };
    undo_export(s, pid, dev, &export, Fate::Free);
    Ok(())
}

/// What becomes of an export being undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The driver said so: the iovas are free again, the frames stay the
    /// process's.
    Free,
    /// Undone under the driver (detach, exit, exec): the device may still
    /// use the addresses: iovas or frames go into quarantine; `exiting`
    /// says whether the process's pages are about to be freed.
    Quarantine { exiting: bool },
}

/// Undoes one export of `pid` to `dev`.
pub fn undo_export<M: Machine>(
    s: &mut Kernel<M>,
    pid: Pid,
    dev: DeviceId,
    e: &HwExport,
    fate: Fate,
) {
    let base = e.iova & !(PAGE - 1);
    if e.translated
        && let Some((f, d)) = dma_of(s, dev)
    {
        d.unmap::<M>(f, base, e.pages, &mut |_| {});
        let keep = matches!(fate, Fate::Quarantine { .. }) && d.quarantined.try_reserve(1).is_ok();
        if keep {
            d.quarantined.push((base, e.pages));
        } else if d.iovas.free(base, e.pages).is_err() {
            crate::klog!(M, "[kernel] iova {base:#x} was not the device's");
        }
    }
    // The unmap stops new translations, not a transfer the device already
    // translated: an emulated or real device may hold the host address of
    // a buffer from when the request started and write it when it ends. So
    // the frames of a dying driver stay out of use, I/O MMU or not, until
    // the device has been reset.
    if fate == (Fate::Quarantine { exiting: true }) {
        for i in 0..e.pages {
            let frame = vm_of(s, pid, |vm| {
                vm.frame_at(e.va + i * PAGE)
                    .map(|f| f.addr())
                    .ok_or(Error::NotFound)
            });
            if let Ok(addr) = frame {
                quarantine(s, dev, Frame::containing(addr));
            }
        }
    }
    unwire_pages(s, pid, e.va, e.pages);
}

/// Pages in quarantine on `h`: frames and iovas.
pub fn quarantined_pages(h: &HwDevice) -> u64 {
    let iovas = h
        .pci
        .as_ref()
        .and_then(|p| p.dma.as_ref())
        .map_or(0, |d| d.quarantined.iter().map(|&(_, n)| n).sum());
    h.quarantine.len() as u64 + iovas
}

/// Frees the quarantined iovas of `h` (the device has been reset).
pub fn release_iovas(h: &mut HwDevice) {
    if let Some(d) = h.pci.as_mut().and_then(|p| p.dma.as_mut()) {
        for (iova, pages) in core::mem::take(&mut d.quarantined) {
            let _ = d.iovas.free(iova, pages);
        }
    }
}
