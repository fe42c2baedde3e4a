//! Loading a program image into a fresh address space.
//!
//! Rules: the image is validated by `kernel_core::elf` before a single page
//! is mapped; every page is a fresh zeroed frame (file bytes copied in, the
//! rest stays zero); text is mapped read+execute, data read+write+no-execute,
//! read-only data read+no-execute; on any failure everything mapped so far
//! is released and the caller gets an error.

use crate::arch::entry::{TrapFrame, USER_RFLAGS};
use crate::arch::gdt::{USER_CS, USER_SS};
use crate::arch::paging::{KernelTable, MapError, PageTable};
use crate::mm::{self, KernelFrames, phys};
use abi::Error;
use abi::layout::{USER_STACK_SIZE, USER_STACK_TOP};
use kernel_core::elf::{self, ElfLimits, SegFlags};
use kernel_core::paging::{PteFlags, page_align_down};

/// A loaded program: its address space and where it starts.
pub struct Loaded {
    pub space: PageTable,
    pub entry: u64,
    pub stack_top: u64,
    pub args_ptr: u64,
    pub args_len: u64,
    /// Pages mapped (what the process starts out holding).
    pub pages: u64,
    /// Page-table frames the space holds.
    pub tables: u64,
}

/// What loading an image will take, known before anything is mapped.
pub struct Plan {
    /// Pages: the segments' and the stack's.
    pub pages: u64,
    /// Page-table frames, at most.
    pub tables: u64,
}

/// Checks `image` and says what loading it takes (so a caller can refuse
/// before doing any work).
pub fn plan(image: &[u8]) -> Result<Plan, Error> {
    let parsed = elf::parse(image, &ElfLimits::DEFAULT).map_err(|_| Error::BadImage)?;
    let pages = segment_pages(&parsed) + USER_STACK_SIZE / 4096;
    // A leaf table per 2 MiB touched, plus the tables above: at most three
    // per separate region (the segments and the stack), plus the root.
    let regions = parsed.segments.len() as u64 + 1;
    Ok(Plan {
        pages,
        tables: pages.div_ceil(512) + 3 * regions + 1,
    })
}

fn segment_pages(parsed: &elf::ElfImage) -> u64 {
    parsed
        .segments
        .iter()
        .map(|seg| {
            (page_align_down(seg.vaddr + seg.memsz + 4095) - page_align_down(seg.vaddr)) / 4096
        })
        .sum()
}

fn map_err(e: MapError) -> Error {
    match e {
        MapError::OutOfMemory => Error::OutOfMemory,
        MapError::AlreadyMapped | MapError::Conflict => Error::BadImage,
    }
}

fn map_fresh(
    space: &mut PageTable,
    va: u64,
    flags: PteFlags,
    fill: impl FnOnce(*mut u8),
) -> Result<(), Error> {
    let frame = mm::alloc_zeroed_frame().ok_or(Error::OutOfMemory)?;
    fill(phys::to_virt(frame.addr()));
    space
        .map(&mut KernelFrames, va, frame.addr(), flags)
        .map_err(|e| {
            let _ = mm::frames::release(frame);
            map_err(e)
        })
}

fn load_into(
    space: &mut PageTable,
    image: &[u8],
    args: &[u8],
) -> Result<(u64, u64, u64, u64), Error> {
    let nx = if crate::arch::cpu::features().nx {
        PteFlags::NO_EXECUTE
    } else {
        PteFlags::empty()
    };
    let parsed = elf::parse(image, &ElfLimits::DEFAULT).map_err(|e| {
        crate::kprintln!("[kernel] bad image: {e}");
        Error::BadImage
    })?;
    for seg in &parsed.segments {
        let mut flags = PteFlags::USER;
        if seg.flags.contains(SegFlags::W) {
            flags |= PteFlags::WRITABLE;
        }
        if !seg.flags.contains(SegFlags::X) {
            flags |= nx;
        }
        let file_end = seg.vaddr + seg.filesz;
        let mut page = page_align_down(seg.vaddr);
        while page < seg.vaddr + seg.memsz {
            map_fresh(space, page, flags, |dst| {
                // The part of this page that holds file bytes, if any.
                let from = page.max(seg.vaddr);
                let to = (page + 4096).min(file_end);
                if from < to {
                    let src = (seg.offset + (from - seg.vaddr)) as usize;
                    let n = (to - from) as usize;
                    // SAFETY: elf::parse checked offset+filesz <= image.len();
                    // dst is a fresh frame of 4096 bytes and
                    // (from - page) + n <= 4096.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            image.as_ptr().add(src),
                            dst.add((from - page) as usize),
                            n,
                        );
                    }
                }
            })?;
            page += 4096;
        }
    }
    // The stack, with the argument string at its top.
    let mut va = USER_STACK_TOP - USER_STACK_SIZE;
    while va < USER_STACK_TOP {
        map_fresh(space, va, PteFlags::USER | PteFlags::WRITABLE | nx, |_| {})?;
        va += 4096;
    }
    let args_ptr = (USER_STACK_TOP - args.len() as u64) & !15;
    crate::usercopy::copy_to_user(space, args_ptr, args)?;
    // The System V ABI wants rsp + 8 16-byte aligned at function entry.
    let rsp = args_ptr - 8;
    Ok((
        parsed.entry,
        rsp,
        args_ptr,
        segment_pages(&parsed) + USER_STACK_SIZE / 4096,
    ))
}

/// Loads `image` into a new address space with `args` on its stack. The
/// frames are charged to no one: the caller charges `pages` and `tables`
/// to the reserve the new program draws on.
pub fn load(kernel: &KernelTable, image: &[u8], args: &[u8]) -> Result<Loaded, Error> {
    if args.len() > 1024 {
        return Err(Error::InvalidArgument);
    }
    let mut space = PageTable::new_user(kernel, &mut KernelFrames).map_err(map_err)?;
    match load_into(&mut space, image, args) {
        Ok((entry, stack_top, args_ptr, pages)) => Ok(Loaded {
            tables: space.table_frames(),
            space,
            entry,
            stack_top,
            args_ptr,
            args_len: args.len() as u64,
            pages,
        }),
        Err(e) => {
            mm::release_user_space(space);
            Err(e)
        }
    }
}

impl Loaded {
    /// The registers a process starts with: `_start(args_ptr, args_len)`.
    pub fn initial_frame(&self, frame: &mut TrapFrame) {
        *frame = TrapFrame {
            rip: self.entry,
            rsp: self.stack_top,
            rdi: self.args_ptr,
            rsi: self.args_len,
            cs: USER_CS as u64,
            ss: USER_SS as u64,
            rflags: USER_RFLAGS,
            ..TrapFrame::default()
        };
    }
}
