//! A driver's DMA memory: one range of fresh pages at an address the
//! driver picks, exported to its function once for the driver's whole
//! life. The driver lays out what it needs inside (virtqueues, request
//! headers, bounce buffers) by offset.
//!
//! Rules: the device is only ever given addresses inside this range
//! (`dev_addr`, `segments`), so whatever it is told, it can reach nothing
//! else of the driver's; the range is exported after the device was reset
//! and stays exported until the driver exits (the kernel then quarantines
//! it until the next driver resets the device again). With an I/O MMU the
//! whole range is one contiguous span of iovas; without one, each page has
//! its own physical address and a buffer is cut where pages are not
//! adjacent. An offset outside the arena is a bug of the driver's (offsets
//! come from its layout, never from a client or the device) and stops it.

use abi::Error;
use libmh::dev::Handle;
use libmh::vm;

pub const PAGE: u64 = 4096;
/// The most pages an arena may have (the physical-address list is this
/// long): 1 MiB.
pub const PAGES_MAX: usize = 256;

pub struct Arena {
    va: u64,
    len: u64,
    /// The iova of the first byte (translated), or unused.
    iova: u64,
    translated: bool,
    /// Each page's physical address (not translated).
    pages: [u64; PAGES_MAX],
}

impl Arena {
    /// Maps `len` bytes (whole pages, at most `PAGES_MAX`) at `va`,
    /// zeroed, and exports them all to the function `h`.
    pub fn new(h: Handle, va: u64, len: u64) -> Result<Arena, Error> {
        if len == 0 || !len.is_multiple_of(PAGE) || len / PAGE > PAGES_MAX as u64 {
            return Err(Error::InvalidArgument);
        }
        vm::map(va, len, vm::PROT_RW)?;
        let mut a = Arena {
            va,
            len,
            iova: 0,
            translated: libmh::pci::Function(h).translated()?,
            pages: [0; PAGES_MAX],
        };
        // SAFETY: just mapped read-write; the slice lives only for the
        // export call, which wires the pages for the driver's life.
        let all = unsafe { core::slice::from_raw_parts_mut(va as *mut u8, len as usize) };
        let n = (len / PAGE) as usize;
        a.iova = h.export_pages(all, &mut a.pages[..n])?;
        Ok(a)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The driver's pointer to offset `off`, inside the arena.
    pub fn ptr(&self, off: u64) -> *mut u8 {
        assert!(off < self.len, "arena offset {off:#x} out of range");
        (self.va + off) as *mut u8
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

    /// `len` bytes at `off` as a slice of the driver's view.
    ///
    /// # Safety
    ///
    /// The device must not be using the range meanwhile (no request that
    /// covers it in flight, or the device reset).
    pub unsafe fn bytes(&mut self, off: u64, len: u64) -> &mut [u8] {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "arena range {off:#x}+{len:#x} out of range"
        );
        // SAFETY: inside the arena, which stays mapped; `&mut self` keeps
        // other references of the driver's away, the caller the device.
        unsafe { core::slice::from_raw_parts_mut((self.va + off) as *mut u8, len as usize) }
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
