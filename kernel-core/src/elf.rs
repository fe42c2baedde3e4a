//! ELF64 validation for user programs: static, non-PIE x86_64 executables.
//! The result lists the segments to map; the kernel's loader only copies
//! bytes and maps pages.
//!
//! Rules: an image comes from a boot module or a user, so it is never
//! trusted. Every field is read little-endian from bytes with bounds checks,
//! all arithmetic is checked, and anything the loader could not map safely is
//! rejected with a specific [`ElfError`]: segments outside the file or user
//! space, segments sharing a page (the loader maps whole pages with one
//! protection), writable-and-executable segments, dynamic linking, and an
//! entry point outside executable memory.

use abi::layout::{USER_END, USER_MIN};
use arrayvec::ArrayVec;
use bitflags::bitflags;
use core::fmt;

use crate::paging::{PAGE_SIZE, page_align_down, page_align_up};

bitflags! {
    /// Segment permissions (`p_flags`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SegFlags: u32 {
        const X = 1;
        const W = 2;
        const R = 4;
    }
}

/// A loadable segment: map `memsz` bytes at `vaddr`, the first `filesz` of
/// them copied from the file at `offset`, the rest zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub flags: SegFlags,
}

/// A validated executable: `PT_LOAD` segments with `memsz > 0`, sorted by `vaddr`.
#[derive(Clone, Debug)]
pub struct ElfImage {
    pub entry: u64,
    pub segments: ArrayVec<Segment, MAX_SEGMENTS>,
}

/// Most loadable segments an image may have.
pub const MAX_SEGMENTS: usize = 16;

/// Where and how much an image may map.
#[derive(Clone, Copy, Debug)]
pub struct ElfLimits {
    pub user_min: u64,
    pub user_end: u64,
    /// Bound on the sum of the segments' page-rounded sizes.
    pub max_total_memsz: u64,
}

impl ElfLimits {
    /// All of user space, and at most `abi::syscall::EXEC_MEMORY_MAX` of
    /// segments (the kernel fills them in one go, so the bound is what
    /// keeps `exec` short).
    pub const DEFAULT: ElfLimits = ElfLimits {
        user_min: USER_MIN,
        user_end: USER_END,
        max_total_memsz: abi::syscall::EXEC_MEMORY_MAX as u64,
    };
}

/// Why an image was rejected. `index` is the program-header index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    TooShort,
    BadMagic,
    NotElf64,
    NotLittleEndian,
    BadVersion,
    /// `e_type` is not `ET_EXEC` (relocatable, shared object or PIE).
    NotExecutable,
    WrongMachine,
    BadHeaderSize,
    /// `e_phentsize`, `e_phnum` or `e_phoff` describe headers outside the file.
    BadProgramHeaders,
    TooManySegments,
    /// The image has `PT_INTERP` or `PT_DYNAMIC`.
    DynamicNotSupported,
    SegmentOutsideFile {
        index: usize,
    },
    FileSizeExceedsMemSize {
        index: usize,
    },
    SegmentOutsideUserSpace {
        index: usize,
    },
    /// `vaddr % 4096 != offset % 4096`, so the file cannot be mapped page by page.
    MisalignedSegment {
        index: usize,
    },
    OverlappingSegments {
        index: usize,
    },
    WritableAndExecutable {
        index: usize,
    },
    ImageTooLarge,
    EntryNotExecutable,
    NoLoadableSegments,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ElfError::*;
        match *self {
            TooShort => write!(f, "the image is shorter than an ELF header"),
            BadMagic => write!(f, "the image is not an ELF file"),
            NotElf64 => write!(f, "the image is not a 64-bit ELF file"),
            NotLittleEndian => write!(f, "the image is not little-endian"),
            BadVersion => write!(f, "the image has an unknown ELF version"),
            NotExecutable => write!(f, "the image is not a static (non-PIE) executable"),
            WrongMachine => write!(f, "the image is not for x86_64"),
            BadHeaderSize => write!(f, "the image's ELF header size is wrong"),
            BadProgramHeaders => write!(f, "the image's program headers lie outside the file"),
            TooManySegments => write!(
                f,
                "the image has more than {MAX_SEGMENTS} loadable segments"
            ),
            DynamicNotSupported => {
                write!(f, "the image needs dynamic linking, which is not supported")
            }
            SegmentOutsideFile { index } => write!(f, "segment {index} lies outside the file"),
            FileSizeExceedsMemSize { index } => {
                write!(f, "segment {index} has more file bytes than memory bytes")
            }
            SegmentOutsideUserSpace { index } => {
                write!(f, "segment {index} lies outside user space")
            }
            MisalignedSegment { index } => {
                write!(
                    f,
                    "segment {index}'s address and file offset differ within a page"
                )
            }
            OverlappingSegments { index } => {
                write!(f, "segment {index} shares a page with another segment")
            }
            WritableAndExecutable { index } => {
                write!(f, "segment {index} is both writable and executable")
            }
            ImageTooLarge => write!(f, "the image's segments are too large"),
            EntryNotExecutable => write!(f, "the entry point is not in an executable segment"),
            NoLoadableSegments => write!(f, "the image has no loadable segments"),
        }
    }
}

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

/// Little-endian readers; `None` if the field runs past the slice.
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Validates `image` against `limits` and lists what to map.
pub fn parse(image: &[u8], limits: &ElfLimits) -> Result<ElfImage, ElfError> {
    let ehdr = image.get(..EHDR_SIZE).ok_or(ElfError::TooShort)?;
    let field16 = |at| u16_at(ehdr, at).ok_or(ElfError::TooShort);
    if ehdr.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::BadMagic);
    }
    if ehdr.get(4) != Some(&2) {
        return Err(ElfError::NotElf64);
    }
    if ehdr.get(5) != Some(&1) {
        return Err(ElfError::NotLittleEndian);
    }
    if ehdr.get(6) != Some(&1) || u32_at(ehdr, 20) != Some(1) {
        return Err(ElfError::BadVersion);
    }
    if field16(16)? != ET_EXEC {
        return Err(ElfError::NotExecutable);
    }
    if field16(18)? != EM_X86_64 {
        return Err(ElfError::WrongMachine);
    }
    if usize::from(field16(52)?) != EHDR_SIZE {
        return Err(ElfError::BadHeaderSize);
    }
    let entry = u64_at(ehdr, 24).ok_or(ElfError::TooShort)?;
    let phoff = u64_at(ehdr, 32).ok_or(ElfError::TooShort)?;
    let phentsize = usize::from(field16(54)?);
    let phnum = usize::from(field16(56)?);
    // 0xffff (PN_XNUM) defers the count to a section header; we do not follow it.
    if phentsize != PHDR_SIZE || phnum == 0xffff {
        return Err(ElfError::BadProgramHeaders);
    }
    let phoff = usize::try_from(phoff).map_err(|_| ElfError::BadProgramHeaders)?;
    let phdrs = phnum
        .checked_mul(PHDR_SIZE)
        .and_then(|len| image.get(phoff..phoff.checked_add(len)?))
        .ok_or(ElfError::BadProgramHeaders)?;

    // Loadable segments with their program-header index, for error reports.
    let mut segs: ArrayVec<(Segment, usize), MAX_SEGMENTS> = ArrayVec::new();
    let mut total: u64 = 0;
    for (index, ph) in phdrs.chunks_exact(PHDR_SIZE).enumerate() {
        let p_type = u32_at(ph, 0).ok_or(ElfError::BadProgramHeaders)?;
        match p_type {
            PT_INTERP | PT_DYNAMIC => return Err(ElfError::DynamicNotSupported),
            PT_LOAD => {}
            _ => continue,
        }
        let field = |at| u64_at(ph, at).ok_or(ElfError::BadProgramHeaders);
        let seg = Segment {
            flags: SegFlags::from_bits_truncate(u32_at(ph, 4).ok_or(ElfError::BadProgramHeaders)?),
            offset: field(8)?,
            vaddr: field(16)?,
            filesz: field(32)?,
            memsz: field(40)?,
        };
        check_segment(&seg, index, image.len(), limits)?;
        if seg.memsz == 0 {
            continue;
        }
        total = page_align_up(seg.vaddr + seg.memsz)
            .map(|end| end - page_align_down(seg.vaddr))
            .and_then(|span| total.checked_add(span))
            .ok_or(ElfError::ImageTooLarge)?;
        if total > limits.max_total_memsz {
            return Err(ElfError::ImageTooLarge);
        }
        segs.try_push((seg, index))
            .map_err(|_| ElfError::TooManySegments)?;
    }
    if segs.is_empty() {
        return Err(ElfError::NoLoadableSegments);
    }

    segs.sort_unstable_by_key(|(s, _)| s.vaddr);
    for pair in segs.windows(2) {
        if let [(a, _), (b, index)] = pair {
            // Checked by check_segment: end <= user_end, which is page aligned
            // in practice; rounding up only fails for absurd limits.
            let a_end = page_align_up(a.vaddr + a.memsz).ok_or(ElfError::ImageTooLarge)?;
            if a_end > page_align_down(b.vaddr) {
                return Err(ElfError::OverlappingSegments { index: *index });
            }
        }
    }

    let executable = segs.iter().any(|(s, _)| {
        s.flags.contains(SegFlags::X) && s.vaddr <= entry && entry - s.vaddr < s.memsz
    });
    if !executable {
        return Err(ElfError::EntryNotExecutable);
    }

    Ok(ElfImage {
        entry,
        segments: segs.into_iter().map(|(s, _)| s).collect(),
    })
}

/// The per-segment checks. Afterwards `vaddr + memsz` and `offset + filesz`
/// are known not to overflow.
fn check_segment(
    seg: &Segment,
    index: usize,
    file_len: usize,
    limits: &ElfLimits,
) -> Result<(), ElfError> {
    let file_end = seg.offset.checked_add(seg.filesz);
    if file_end.is_none_or(|end| end > file_len as u64) {
        return Err(ElfError::SegmentOutsideFile { index });
    }
    if seg.filesz > seg.memsz {
        return Err(ElfError::FileSizeExceedsMemSize { index });
    }
    if seg.memsz == 0 {
        return Ok(());
    }
    let mem_end = seg.vaddr.checked_add(seg.memsz);
    if seg.vaddr < limits.user_min || mem_end.is_none_or(|end| end > limits.user_end) {
        return Err(ElfError::SegmentOutsideUserSpace { index });
    }
    if seg.vaddr % PAGE_SIZE != seg.offset % PAGE_SIZE {
        return Err(ElfError::MisalignedSegment { index });
    }
    if seg.flags.contains(SegFlags::W | SegFlags::X) {
        return Err(ElfError::WritableAndExecutable { index });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
