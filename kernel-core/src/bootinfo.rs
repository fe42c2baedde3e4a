//! Multiboot1 boot information: the memory map, the modules and the command
//! lines the boot loader hands the kernel, parsed defensively.
//!
//! Rules: nothing the boot loader wrote is trusted. Every read goes through
//! [`PhysMemory`], which may refuse; every field is decoded little-endian
//! from bytes (no alignment assumed); every address computation is checked;
//! and a malformed structure is reported as a [`BootError`] naming what was
//! wrong instead of being half-used. Limits are fixed (64 memory regions,
//! 32 modules, 255-byte command lines) so parsing needs no allocation.

use arrayvec::{ArrayString, ArrayVec};
use core::fmt;

use crate::le::{u32_at, u64_at};
use crate::paging::is_page_aligned;

/// Read access to physical memory, provided by the kernel (through its
/// direct map) or by a test.
pub trait PhysMemory {
    /// Copy bytes at physical `addr` into `buf`; false if any byte is outside what the kernel can read.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// The value a multiboot1 loader leaves in `eax`.
pub const MULTIBOOT1_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// What a range of physical memory is, per the boot loader's memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Bad,
    Other(u32),
}

impl MemKind {
    fn from_multiboot(t: u32) -> MemKind {
        match t {
            1 => MemKind::Usable,
            2 => MemKind::Reserved,
            3 => MemKind::AcpiReclaimable,
            4 => MemKind::AcpiNvs,
            5 => MemKind::Bad,
            other => MemKind::Other(other),
        }
    }
}

/// One memory-map entry; `end` is exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRegion {
    pub start: u64,
    pub end: u64,
    pub kind: MemKind,
}

/// A boot module (an initial program image); `end` is exclusive.
#[derive(Clone, Debug)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    pub cmdline: ArrayString<256>,
}

/// Everything the kernel uses from the boot loader.
#[derive(Clone, Debug)]
pub struct BootInfo {
    pub cmdline: ArrayString<256>,
    pub memory: ArrayVec<MemRegion, 64>,
    pub modules: ArrayVec<Module, 32>,
}

/// Why the boot information was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    BadMagic(u32),
    Unreadable { what: &'static str, addr: u64 },
    NoMemoryMap,
    BadMemoryMapEntry { offset: u64 },
    TooManyMemoryRegions,
    TooManyModules(u32),
    BadModule { index: usize, reason: &'static str },
    CmdlineTooLong { index: Option<usize> },
    CmdlineNotUtf8 { index: Option<usize> },
}

/// Names the owner of a command line in messages.
struct Whose(Option<usize>);

impl fmt::Display for Whose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => write!(f, "the kernel command line"),
            Some(i) => write!(f, "the command line of module {i}"),
        }
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BootError::BadMagic(m) => write!(
                f,
                "not booted by a multiboot1 loader (magic {m:#x}, expected {MULTIBOOT1_BOOTLOADER_MAGIC:#x})"
            ),
            BootError::Unreadable { what, addr } => {
                write!(
                    f,
                    "the {what} at physical address {addr:#x} is not readable"
                )
            }
            BootError::NoMemoryMap => write!(f, "the boot loader provided no memory map"),
            BootError::BadMemoryMapEntry { offset } => {
                write!(f, "the memory-map entry at offset {offset} is malformed")
            }
            BootError::TooManyMemoryRegions => {
                write!(f, "the memory map has more than 64 regions")
            }
            BootError::TooManyModules(n) => {
                write!(
                    f,
                    "the boot loader passed {n} modules; at most 32 are supported"
                )
            }
            BootError::BadModule { index, reason } => {
                write!(f, "module {index} is invalid: {reason}")
            }
            BootError::CmdlineTooLong { index } => {
                write!(
                    f,
                    "{} is longer than 255 bytes or unterminated",
                    Whose(index)
                )
            }
            BootError::CmdlineNotUtf8 { index } => write!(f, "{} is not valid UTF-8", Whose(index)),
        }
    }
}

/// Flag bits of the multiboot1 info structure that we use.
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODS: u32 = 1 << 3;
const FLAG_MMAP: u32 = 1 << 6;

/// Bytes of the info structure we read (through `mmap_addr`).
const INFO_LEN: usize = 52;
const MODULE_LEN: u64 = 16;
/// The smallest memory-map entry: base, length and type.
const MMAP_ENTRY_MIN: u32 = 20;
const MAX_MODULES: u32 = 32;
/// Command lines are at most this long, not counting the NUL.
const CMDLINE_MAX: usize = 255;

/// Reads `N` bytes at `base + off`, or says what could not be read.
fn read_array<const N: usize>(
    mem: &impl PhysMemory,
    base: u64,
    off: u64,
    what: &'static str,
) -> Result<[u8; N], BootError> {
    let addr = base
        .checked_add(off)
        .ok_or(BootError::Unreadable { what, addr: base })?;
    let mut buf = [0; N];
    if mem.read(addr, &mut buf) {
        Ok(buf)
    } else {
        Err(BootError::Unreadable { what, addr })
    }
}

/// Reads the NUL-terminated string at `addr` (0 means none: empty string).
fn read_cstr(
    mem: &impl PhysMemory,
    addr: u64,
    index: Option<usize>,
) -> Result<ArrayString<256>, BootError> {
    const CHUNK: usize = 16;
    let what = if index.is_some() {
        "module command line"
    } else {
        "command line"
    };
    let mut buf = [0u8; CMDLINE_MAX + 1];
    let mut len = None;
    let mut at = 0;
    'outer: while at < buf.len() {
        let chunk_addr = addr
            .checked_add(at as u64)
            .ok_or(BootError::Unreadable { what, addr })?;
        let chunk = &mut buf[at..at + CHUNK];
        if !mem.read(chunk_addr, chunk) {
            // The string may end just before unreadable memory, so retry
            // the chunk a byte at a time before giving up.
            for (i, byte) in chunk.iter_mut().enumerate() {
                let a = chunk_addr + i as u64;
                if !mem.read(a, core::slice::from_mut(byte)) {
                    return Err(BootError::Unreadable { what, addr: a });
                }
                if *byte == 0 {
                    len = Some(at + i);
                    break 'outer;
                }
            }
        }
        if let Some(i) = chunk.iter().position(|&b| b == 0) {
            len = Some(at + i);
            break;
        }
        at += CHUNK;
    }
    let len = len.ok_or(BootError::CmdlineTooLong { index })?;
    let s = core::str::from_utf8(&buf[..len]).map_err(|_| BootError::CmdlineNotUtf8 { index })?;
    ArrayString::from(s).map_err(|_| BootError::CmdlineTooLong { index })
}

/// Parses the multiboot1 information at physical `info_addr`, given the
/// `magic` value the loader left in `eax`.
pub fn parse_multiboot1(
    mem: &impl PhysMemory,
    magic: u32,
    info_addr: u64,
) -> Result<BootInfo, BootError> {
    if magic != MULTIBOOT1_BOOTLOADER_MAGIC {
        return Err(BootError::BadMagic(magic));
    }
    let info: [u8; INFO_LEN] = read_array(mem, info_addr, 0, "multiboot information")?;
    let flags = u32_at(&info, 0);

    let cmdline = if flags & FLAG_CMDLINE != 0 && u32_at(&info, 16) != 0 {
        read_cstr(mem, u64::from(u32_at(&info, 16)), None)?
    } else {
        ArrayString::new()
    };

    let mut modules = ArrayVec::new();
    if flags & FLAG_MODS != 0 {
        let count = u32_at(&info, 20);
        let base = u64::from(u32_at(&info, 24));
        if count > MAX_MODULES {
            return Err(BootError::TooManyModules(count));
        }
        for index in 0..count as usize {
            let raw: [u8; MODULE_LEN as usize] =
                read_array(mem, base, index as u64 * MODULE_LEN, "module list")?;
            let start = u64::from(u32_at(&raw, 0));
            let end = u64::from(u32_at(&raw, 4));
            let string = u64::from(u32_at(&raw, 8));
            if end < start {
                return Err(BootError::BadModule {
                    index,
                    reason: "it ends before it starts",
                });
            }
            if !is_page_aligned(start) {
                return Err(BootError::BadModule {
                    index,
                    reason: "its start is not page aligned",
                });
            }
            let cmdline = if string == 0 {
                ArrayString::new()
            } else {
                read_cstr(mem, string, Some(index))?
            };
            // Cannot fail: count <= 32 was checked above.
            let _ = modules.try_push(Module {
                start,
                end,
                cmdline,
            });
        }
    }

    if flags & FLAG_MMAP == 0 {
        return Err(BootError::NoMemoryMap);
    }
    let memory = parse_mmap(
        mem,
        u64::from(u32_at(&info, 48)),
        u64::from(u32_at(&info, 44)),
    )?;

    Ok(BootInfo {
        cmdline,
        memory,
        modules,
    })
}

/// Parses the memory map of `length` bytes at `base`.
fn parse_mmap(
    mem: &impl PhysMemory,
    base: u64,
    length: u64,
) -> Result<ArrayVec<MemRegion, 64>, BootError> {
    let mut regions = ArrayVec::new();
    let mut offset = 0u64;
    while offset < length {
        let bad = BootError::BadMemoryMapEntry { offset };
        if length - offset < 4 {
            return Err(bad);
        }
        let [s0, s1, s2, s3]: [u8; 4] = read_array(mem, base, offset, "memory map")?;
        let size = u32::from_le_bytes([s0, s1, s2, s3]);
        // A size below the fixed fields would make us loop or misread.
        if size < MMAP_ENTRY_MIN {
            return Err(bad);
        }
        let next = offset.checked_add(4 + u64::from(size)).ok_or(bad)?;
        if next > length {
            return Err(bad);
        }
        let entry: [u8; MMAP_ENTRY_MIN as usize] = read_array(mem, base, offset + 4, "memory map")?;
        let start = u64_at(&entry, 0);
        let len = u64_at(&entry, 8);
        let kind = MemKind::from_multiboot(u32_at(&entry, 16));
        offset = next;
        if len == 0 {
            continue;
        }
        let end = start.checked_add(len).ok_or(bad)?;
        regions
            .try_push(MemRegion { start, end, kind })
            .map_err(|_| BootError::TooManyMemoryRegions)?;
    }
    Ok(regions)
}

#[cfg(test)]
mod tests;
