//! The driver's DMA memory: one range of fresh pages at a fixed address,
//! exported to the function once for the driver's whole life. It holds
//! the virtqueue (descriptor table, available ring, used ring: a page
//! each), a page of request headers and status bytes, and one bounce
//! buffer per request slot, where data waits between a client's export
//! and the disk.
//!
//! Rules: the device is only ever given addresses inside this range
//! (`dev_addr`, `segments`), so whatever it is told, it can reach nothing
//! else of the driver's; the range is exported after the device was reset
//! and stays exported until the driver exits (the kernel then quarantines
//! it until the next driver resets the device again). With an I/O MMU the
//! whole range is one contiguous span of iovas; without one, each page has
//! its own physical address and a buffer is cut where pages are not
//! adjacent.

use abi::Error;
use libmh::dev::Handle;
use libmh::vm;

/// Where the arena is mapped.
const VA: u64 = 0x5b00_0000_0000;
pub const PAGE: u64 = 4096;
/// The most pages an arena may have (the physical-address list is this
/// long).
pub const PAGES_MAX: usize = 4 + 8 * 16;

/// Offsets of the fixed parts.
pub const DESC: u64 = 0;
pub const AVAIL: u64 = PAGE;
pub const USED: u64 = 2 * PAGE;
/// Slot `k`'s 16-byte request header.
pub const fn header(k: usize) -> u64 {
    3 * PAGE + 16 * k as u64
}
/// Slot `k`'s status byte.
pub const fn status(k: usize) -> u64 {
    3 * PAGE + 2048 + k as u64
}
/// GET_ID's 20-byte answer.
pub const ID: u64 = 3 * PAGE + 3072;
/// Slot `k`'s bounce buffer of `per_slot` bytes.
pub const fn bounce(k: usize, per_slot: u64) -> u64 {
    4 * PAGE + k as u64 * per_slot
}

pub struct Arena {
    len: u64,
    /// The iova of the first byte (translated), or unused.
    iova: u64,
    translated: bool,
    /// Each page's physical address (not translated).
    pages: [u64; PAGES_MAX],
}

impl Arena {
    /// Maps `slots` bounce buffers of `per_slot` bytes (whole pages) and
    /// the fixed parts, zeroed, and exports them all to `h`.
    pub fn new(h: Handle, slots: usize, per_slot: u64) -> Result<Arena, Error> {
        let len = bounce(slots, per_slot);
        if !per_slot.is_multiple_of(PAGE) || len / PAGE > PAGES_MAX as u64 {
            return Err(Error::InvalidArgument);
        }
        vm::map(VA, len, vm::PROT_RW)?;
        let mut a = Arena {
            len,
            iova: 0,
            translated: libmh::pci::Function(h).translated()?,
            pages: [0; PAGES_MAX],
        };
        // SAFETY: just mapped read-write; the slice lives only for the
        // export call, which wires the pages for the driver's life.
        let all = unsafe { core::slice::from_raw_parts_mut(VA as *mut u8, len as usize) };
        let n = (len / PAGE) as usize;
        a.iova = h.export_pages(all, &mut a.pages[..n])?;
        Ok(a)
    }

    /// The driver's pointer to offset `off`, which must lie inside the
    /// arena (offsets come from this module's layout, never from a client
    /// or the device: a bad one is a bug of the driver's, and stops it).
    pub fn ptr(&self, off: u64) -> *mut u8 {
        assert!(off < self.len, "arena offset {off:#x} out of range");
        (VA + off) as *mut u8
    }

    /// The device's address of offset `off`.
    pub fn dev_addr(&self, off: u64) -> u64 {
        if self.translated {
            self.iova + off
        } else {
            self.pages[(off / PAGE) as usize] + off % PAGE
        }
    }

    /// Whether the device sees one contiguous range (an I/O MMU maps it).
    pub fn translated(&self) -> bool {
        self.translated
    }

    /// Cuts `[off, off + len)` into pieces the device can take: each
    /// contiguous for the device and at most `max` bytes. Calls `each`
    /// with (device address, length) in order.
    pub fn segments(&self, off: u64, len: u64, max: u64, mut each: impl FnMut(u64, u32)) {
        let end = off + len;
        let mut at = off;
        while at < end {
            let mut stop = end.min(at + max);
            if !self.translated {
                // Stop at the first page boundary whose next page is not
                // physically adjacent.
                let mut page_end = (at / PAGE + 1) * PAGE;
                while page_end < stop && self.dev_addr(page_end) == self.dev_addr(page_end - 1) + 1
                {
                    page_end += PAGE;
                }
                stop = stop.min(page_end);
            }
            each(self.dev_addr(at), (stop - at) as u32);
            at = stop;
        }
    }

    /// Reads `len` bytes at `off` as a slice of the driver's view.
    ///
    /// # Safety
    ///
    /// The device must not be using the range meanwhile (no request of
    /// the slot it belongs to in flight, or the device reset).
    pub unsafe fn bytes(&mut self, off: u64, len: u64) -> &mut [u8] {
        assert!(
            off + len <= self.len,
            "arena range {off:#x}+{len:#x} out of range"
        );
        // SAFETY: inside the arena, which stays mapped; `&mut self` keeps
        // other references of the driver's away, the caller the device.
        unsafe { core::slice::from_raw_parts_mut(self.ptr(off), len as usize) }
    }

    /// Volatile accesses to memory the device shares.
    pub fn read<T: Copy>(&self, off: u64) -> T {
        assert!(off + size_of::<T>() as u64 <= self.len);
        // SAFETY: inside the arena (checked), aligned to T by the layout;
        // volatile because the device writes it.
        unsafe { core::ptr::read_volatile(self.ptr(off).cast::<T>()) }
    }

    pub fn write<T: Copy>(&self, off: u64, v: T) {
        assert!(off + size_of::<T>() as u64 <= self.len);
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(self.ptr(off).cast::<T>(), v) }
    }
}
