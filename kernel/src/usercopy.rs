//! Copies between kernel buffers and a process's memory.
//!
//! User pointers are allegations: every page of a user range is looked up
//! in the process's own page table and must be present and user-accessible
//! (and writable, for writes) before a byte moves. The copy goes through
//! the direct map, so it works for any process (current or not), never
//! faults, and needs no SMAP window. Before writing, the kernel breaks
//! copy-on-write sharing of pages that were writable before `fork` (as the
//! process's own write would have, after its fault handler ran).

use crate::arch::paging::PageTable;
use crate::mm::phys;
use abi::Error;
use kernel_core::paging::{PteFlags, is_user_range, pte_addr, pte_flags};
use kernel_core::vm::Vm;

/// Visits each page-sized piece of `[va, va+len)` as (phys, offset in the
/// buffer, length), after checking the page's permissions.
fn for_each_piece(
    pt: &mut PageTable,
    va: u64,
    len: usize,
    write: bool,
    mut f: impl FnMut(u64, usize, usize),
) -> Result<(), Error> {
    if len == 0 {
        return Ok(());
    }
    if !is_user_range(va, len as u64) {
        return Err(Error::BadAddress);
    }
    let mut need = PteFlags::PRESENT | PteFlags::USER;
    if write {
        need |= PteFlags::WRITABLE;
    }
    // One page (the common case): check and copy with a single walk.
    if (va & 0xfff) + len as u64 <= 4096 {
        let mut pte = pt.lookup(va & !0xfff).ok_or(Error::BadAddress)?;
        if write && !pte_flags(pte).contains(PteFlags::WRITABLE) {
            let mut frames = crate::mm::KernelFrames;
            let mut vm = Vm {
                pt: &mut *pt,
                frames: &mut frames,
                codec: crate::mm::codec(),
            };
            vm.break_cow(va)?;
            pte = pt.lookup(va & !0xfff).ok_or(Error::BadAddress)?;
        }
        if !pte_flags(pte).contains(need) {
            return Err(Error::BadAddress);
        }
        f(pte_addr(pte) + (va & 0xfff), 0, len);
        return Ok(());
    }
    // Check every page first, so that a failing copy writes nothing.
    let mut page = va & !0xfff;
    while page < va + len as u64 {
        let pte = pt.lookup(page).ok_or(Error::BadAddress)?;
        if write && !pte_flags(pte).contains(PteFlags::WRITABLE) {
            let mut frames = crate::mm::KernelFrames;
            let mut vm = Vm {
                pt: &mut *pt,
                frames: &mut frames,
                codec: crate::mm::codec(),
            };
            vm.break_cow(page)?;
        }
        let pte = pt.lookup(page).ok_or(Error::BadAddress)?;
        if !pte_flags(pte).contains(need) {
            return Err(Error::BadAddress);
        }
        page += 4096;
    }
    let mut done = 0usize;
    while done < len {
        let at = va + done as u64;
        let in_page = (4096 - (at & 0xfff)) as usize;
        let n = in_page.min(len - done);
        let pte = pt.lookup(at & !0xfff).ok_or(Error::BadAddress)?;
        f(pte_addr(pte) + (at & 0xfff), done, n);
        done += n;
    }
    Ok(())
}

/// Copies `buf.len()` bytes from user address `va` into `buf`.
pub fn copy_from_user(pt: &mut PageTable, va: u64, buf: &mut [u8]) -> Result<(), Error> {
    let len = buf.len();
    for_each_piece(pt, va, len, false, |phys, off, n| {
        // SAFETY: `phys..phys+n` lies in a present user page of this
        // address space (checked above), reachable through the direct map;
        // `off+n <= buf.len()`.
        unsafe {
            core::ptr::copy_nonoverlapping(phys::to_virt(phys), buf.as_mut_ptr().add(off), n);
        }
    })
}

/// Copies `buf` to user address `va`.
pub fn copy_to_user(pt: &mut PageTable, va: u64, buf: &[u8]) -> Result<(), Error> {
    for_each_piece(pt, va, buf.len(), true, |phys, off, n| {
        // SAFETY: as in `copy_from_user`, and the page is writable by the
        // process, so the kernel may write it on its behalf.
        unsafe {
            core::ptr::copy_nonoverlapping(buf.as_ptr().add(off), phys::to_virt(phys), n);
        }
    })
}

/// Copies a plain-data value to user memory.
pub fn write_struct<T: Copy>(pt: &mut PageTable, va: u64, value: &T) -> Result<(), Error> {
    // SAFETY: T is Copy plain data (the abi types are repr(C) without
    // padding-dependent invariants); viewing it as bytes is sound.
    let bytes = unsafe {
        core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>())
    };
    copy_to_user(pt, va, bytes)
}
