//! DMA exports to hardware devices: `export` + `unexport` of 1 and 64
//! pages, behind the I/O MMU (QEMU's edu, claimed as a PCI function: the
//! pages are mapped into its domain and the unexport invalidates the
//! IOTLB and waits) and without one (a device made with CREATE, which
//! sees physical addresses: the pages are wired and their addresses
//! listed).

use crate::measure::{self, Fail};
use abi::Error;
use abi::hw::{HwDeviceSpec, HwPortRange};
use libmh::dev::{self, Handle, REGISTRY};
use libmh::{pci, vm};

/// Where the exported buffer lives.
const AREA: u64 = 0x6600_0000_0000;
const PAGE: u64 = 4096;
const EDU: &str = "bench-edu";
const PLAIN: &str = "bench-plain";

fn platform() -> Result<Handle, Error> {
    dev::attach(
        REGISTRY,
        "platform",
        dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA,
    )
}

/// The edu function, claimed once (the claim outlives this run's handle).
fn edu() -> Result<Handle, Fail> {
    let plat = platform()?;
    let at = pci::find(plat, 0x1234, 0x11e8)?.ok_or(Fail::Sys(Error::NotFound))?;
    match pci::claim(plat, EDU, at) {
        Ok(()) | Err(Error::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    plat.detach()?;
    Ok(dev::attach(REGISTRY, EDU, dev::RIGHT_DMA)?)
}

/// A device without an I/O MMU: one spare port (nothing uses 0x510).
fn plain() -> Result<Handle, Fail> {
    if let Ok(h) = dev::attach(REGISTRY, PLAIN, dev::RIGHT_DMA) {
        return Ok(h);
    }
    let plat = platform()?;
    let mut spec = HwDeviceSpec {
        name_len: PLAIN.len() as u32,
        port_count: 1,
        ..HwDeviceSpec::default()
    };
    spec.name[..PLAIN.len()].copy_from_slice(PLAIN.as_bytes());
    spec.ports[0] = HwPortRange {
        base: 0x510,
        len: 1,
    };
    dev::create_hardware(plat, &spec)?;
    plat.detach()?;
    Ok(dev::attach(REGISTRY, PLAIN, dev::RIGHT_DMA)?)
}

fn export_unexport(h: Handle, pages: u64) -> Result<(u64, u64), Fail> {
    const N: u64 = 200;
    vm::map(AREA, pages * PAGE, vm::PROT_RW)?;
    // SAFETY: just mapped read-write; only this function names it.
    let buf = unsafe { core::slice::from_raw_parts_mut(AREA as *mut u8, (pages * PAGE) as usize) };
    // Touch every page: the benchmark is of wiring, not of demand faults.
    for p in buf.chunks_mut(PAGE as usize) {
        p[0] = 1;
    }
    let mut list = [0u64; 64];
    let per = measure::run(N, 10, &mut |_| {
        let iova = h.export_pages(buf, &mut list)?;
        h.unexport(iova)?;
        Ok(())
    })?;
    vm::unmap(AREA, pages * PAGE)?;
    h.detach()?;
    Ok((per, N))
}

pub fn iommu_1() -> Result<(u64, u64), Fail> {
    export_unexport(edu()?, 1)
}

pub fn iommu_64() -> Result<(u64, u64), Fail> {
    export_unexport(edu()?, 64)
}

pub fn physical_1() -> Result<(u64, u64), Fail> {
    export_unexport(plain()?, 1)
}

pub fn physical_64() -> Result<(u64, u64), Fail> {
    export_unexport(plain()?, 64)
}
