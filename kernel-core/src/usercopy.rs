//! Copies between kernel buffers and a process's memory.
//!
//! User pointers are allegations: every page of a user range is looked up
//! in the process's own page table and must be present and user-accessible
//! (and writable, for writes) before a byte moves. The copy goes through
//! the machine's physical memory (the direct map), so it works for any
//! process (current or not), never faults, and needs no SMAP window. Before writing, the kernel breaks
//! copy-on-write sharing of pages that were writable before `fork` (as the
//! process's own write would have, after its fault handler ran).

use crate::charged::MachineFrames;
use crate::machine::{AddressSpace, Machine};
use crate::paging::{PteFlags, is_user_range, pte_addr, pte_flags};
use crate::vm::Vm;
use abi::Error;

/// Visits each page-sized piece of `[va, va+len)` as (phys, offset in the
/// buffer, length), after checking every page's permissions (so that a
/// failing copy moves nothing).
fn for_each_piece<M: Machine>(
    pt: &mut M::Space,
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
    // One page (the common case): check and copy with a single walk.
    if (va & 0xfff) + len as u64 <= 4096 {
        f(user_phys::<M>(pt, va, write)?, 0, len);
        return Ok(());
    }
    let end = va + len as u64;
    let mut page = va & !0xfff;
    while page < end {
        user_phys::<M>(pt, page.max(va), write)?;
        page += 4096;
    }
    let mut done = 0usize;
    while done < len {
        let at = va + done as u64;
        let n = ((4096 - (at & 0xfff)) as usize).min(len - done);
        f(user_phys::<M>(pt, at, write)?, done, n);
        done += n;
    }
    Ok(())
}

/// The physical address of user byte `va`, after checking its page as a
/// copy would (present and user-accessible, and writable for `write`, when
/// copy-on-write sharing of a page writable before `fork` is broken).
#[inline]
fn user_phys<M: Machine>(pt: &mut M::Space, va: u64, write: bool) -> Result<u64, Error> {
    if !is_user_range(va, 1) {
        return Err(Error::BadAddress);
    }
    let mut pte = pt.lookup(va & !0xfff).ok_or(Error::BadAddress)?;
    if write && !pte_flags(pte).contains(PteFlags::WRITABLE) {
        let mut frames = MachineFrames::<M>::new();
        let mut vm = Vm {
            pt: &mut *pt,
            frames: &mut frames,
            codec: M::codec(),
        };
        vm.break_cow(va)?;
        pte = pt.lookup(va & !0xfff).ok_or(Error::BadAddress)?;
    }
    let mut need = PteFlags::PRESENT | PteFlags::USER;
    if write {
        need |= PteFlags::WRITABLE;
    }
    if !pte_flags(pte).contains(need) {
        return Err(Error::BadAddress);
    }
    Ok(pte_addr(pte) + (va & 0xfff))
}

/// Copies `len` bytes from `src`'s user range at `from` to `dst`'s at `to`
/// (two address spaces, or one: `dst` is `None` for a copy within `src`),
/// page to page through the direct map, with no kernel buffer between.
/// Every page of both ranges is checked (and the destination's
/// copy-on-write sharing broken) before a byte moves, so a copy that fails
/// writes nothing.
pub fn copy_user_to_user<M: Machine>(
    src: &mut M::Space,
    from: u64,
    mut dst: Option<&mut M::Space>,
    to: u64,
    len: u64,
) -> Result<(), Error> {
    if len == 0 {
        return Ok(());
    }
    if !is_user_range(from, len) || !is_user_range(to, len) {
        return Err(Error::BadAddress);
    }
    // Destination pages first: breaking their sharing may remap a page
    // the source range also covers (a copy within one address space).
    let mut page = to & !0xfff;
    while page < to + len {
        user_phys::<M>(dst.as_deref_mut().unwrap_or(&mut *src), page.max(to), true)?;
        page += 4096;
    }
    let mut page = from & !0xfff;
    while page < from + len {
        user_phys::<M>(src, page.max(from), false)?;
        page += 4096;
    }
    // Within one address space the ranges may overlap: copying up over
    // itself goes from the end down, as memmove does, so that no piece
    // reads bytes an earlier piece wrote.
    let downwards = dst.is_none() && to > from && to < from + len;
    let mut done = 0u64;
    while done < len {
        let left = len - done;
        let (f, t, n) = if downwards {
            // The last piece still to copy: it ends where the copy does.
            let (f_end, t_end) = (from + left, to + left);
            let n = left.min((f_end - 1) % 4096 + 1).min((t_end - 1) % 4096 + 1);
            (f_end - n, t_end - n, n)
        } else {
            let (f, t) = (from + done, to + done);
            (f, t, left.min(4096 - (f & 0xfff)).min(4096 - (t & 0xfff)))
        };
        let to_phys = user_phys::<M>(dst.as_deref_mut().unwrap_or(&mut *src), t, true)?;
        let from_phys = user_phys::<M>(src, f, false)?;
        // Both pieces lie in present user pages of their address spaces,
        // checked just now, and are no longer than what is left of either
        // page; within one space a piece may overlap itself (memmove).
        M::copy_phys(to_phys, from_phys, n as usize);
        done += n;
    }
    Ok(())
}

/// Copies `buf.len()` bytes from user address `va` into `buf`.
pub fn copy_from_user<M: Machine>(pt: &mut M::Space, va: u64, buf: &mut [u8]) -> Result<(), Error> {
    let len = buf.len();
    // Each piece lies in a present user page of this address space
    // (checked first) and `off + n <= buf.len()`.
    for_each_piece::<M>(pt, va, len, false, |phys, off, n| {
        M::read_phys(phys, &mut buf[off..off + n])
    })
}

/// Copies `buf` to user address `va`.
pub fn copy_to_user<M: Machine>(pt: &mut M::Space, va: u64, buf: &[u8]) -> Result<(), Error> {
    // As in `copy_from_user`, and each page is writable by the process, so
    // the kernel may write it on its behalf.
    for_each_piece::<M>(pt, va, buf.len(), true, |phys, off, n| {
        M::write_phys(phys, &buf[off..off + n])
    })
}

/// Plain data that crosses the user boundary: every bit pattern is a
/// value and there is no padding, so its bytes may be copied either way.
///
/// # Safety
/// Implement only for `repr(C)` types made of integers (and arrays and
/// structs of them) with no implicit padding.
pub unsafe trait Pod: Copy + Default + 'static {}

// SAFETY (all): repr(C) abi structs of integer fields with no implicit
// padding; abi's layout tests pin every size and offset (and the sizes
// are asserted again here).
unsafe impl Pod for abi::ExitStatus {}
unsafe impl Pod for abi::SysInfo {}
unsafe impl Pod for abi::IntFrame {}
unsafe impl Pod for abi::DeviceConfig {}
unsafe impl Pod for abi::DeviceInfo {}
unsafe impl Pod for abi::userdev::Request {}
unsafe impl Pod for abi::HwDeviceSpec {}
unsafe impl Pod for abi::hw::PciClaimSpec {}
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<abi::ExitStatus>() == 48);
    assert!(size_of::<abi::SysInfo>() == 80);
    assert!(size_of::<abi::IntFrame>() == 192);
    assert!(size_of::<abi::DeviceConfig>() == 52);
    assert!(size_of::<abi::DeviceInfo>() == 64);
    assert!(size_of::<abi::userdev::Request>() == 32);
    assert!(size_of::<abi::HwDeviceSpec>() == 176);
};

/// A value's bytes (the one place a plain-data value is viewed as bytes).
fn bytes_of<T: Pod>(value: &T) -> &[u8] {
    // SAFETY: T is Pod: no padding, so every byte of it is initialized.
    unsafe {
        core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>())
    }
}

/// A value's bytes, to fill.
fn bytes_of_mut<T: Pod>(value: &mut T) -> &mut [u8] {
    // SAFETY: T is Pod: any bytes written make a valid value.
    unsafe {
        core::slice::from_raw_parts_mut((value as *mut T).cast::<u8>(), core::mem::size_of::<T>())
    }
}

/// A user address said to hold a `T`: an allegation until it is read or
/// written (the pages are checked then); made only for an address whose
/// whole `T` lies in the user half.
#[derive(Debug)]
pub struct UserPtr<T: Pod> {
    addr: u64,
    _value: core::marker::PhantomData<fn() -> T>,
}

impl<T: Pod> Clone for UserPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Pod> Copy for UserPtr<T> {}

impl<T: Pod> PartialEq for UserPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr
    }
}

impl<T: Pod> Eq for UserPtr<T> {}

impl<T: Pod> UserPtr<T> {
    /// `BadAddress` unless all of a `T` at `addr` is in the user half.
    pub fn new(addr: u64) -> Result<Self, Error> {
        if !is_user_range(addr, core::mem::size_of::<T>() as u64) {
            return Err(Error::BadAddress);
        }
        Ok(UserPtr {
            addr,
            _value: core::marker::PhantomData,
        })
    }

    pub fn addr(self) -> u64 {
        self.addr
    }

    /// Reads the value (`BadAddress` if a page is not readable).
    #[inline(always)]
    pub fn read<M: Machine>(self, space: &mut M::Space) -> Result<T, Error> {
        let mut value = T::default();
        copy_from_user::<M>(space, self.addr, bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Writes `value` (`BadAddress` if a page is not writable; nothing is
    /// written then).
    #[inline(always)]
    pub fn write<M: Machine>(self, space: &mut M::Space, value: &T) -> Result<(), Error> {
        copy_to_user::<M>(space, self.addr, bytes_of(value))
    }
}

/// A user byte range `[addr, addr+len)`: an allegation until it is read or
/// written; made only for a range in the user half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct USlice {
    addr: u64,
    len: u64,
}

impl USlice {
    /// `InvalidArgument` if `len` is above `max`; `BadAddress` unless the
    /// range lies in the user half.
    pub fn new(addr: u64, len: u64, max: u64) -> Result<Self, Error> {
        if len > max {
            return Err(Error::InvalidArgument);
        }
        if len > 0 && !is_user_range(addr, len) {
            return Err(Error::BadAddress);
        }
        Ok(USlice { addr, len })
    }

    pub fn addr(self) -> u64 {
        self.addr
    }

    pub fn len(self) -> usize {
        self.len as usize
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// Reads the range into `buf` (which must be at least as long).
    pub fn read<M: Machine>(self, space: &mut M::Space, buf: &mut [u8]) -> Result<(), Error> {
        let buf = buf.get_mut(..self.len()).ok_or(Error::InvalidArgument)?;
        copy_from_user::<M>(space, self.addr, buf)
    }

    /// Writes `bytes` (at most the range's length) at its start.
    pub fn write<M: Machine>(self, space: &mut M::Space, bytes: &[u8]) -> Result<(), Error> {
        let bytes = bytes.get(..bytes.len().min(self.len())).unwrap_or(&[]);
        copy_to_user::<M>(space, self.addr, bytes)
    }
}
