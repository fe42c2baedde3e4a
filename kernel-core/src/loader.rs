//! Loading a program image into a fresh address space.
//!
//! Rules: the image is validated by `crate::elf` before a single page
//! is mapped; every page is a fresh zeroed frame (file bytes copied in, the
//! rest stays zero); text is mapped read+execute, data read+write+no-execute,
//! read-only data read+no-execute; on any failure everything mapped so far
//! is released and the caller gets an error.

use crate::charged::MachineFrames;
use crate::elf::{self, ElfLimits, SegFlags};
use crate::kernel::release_space;
use crate::machine::{AddressSpace, Machine, UserFrame};
use crate::paging::{PteFlags, make_pte, page_align_down};
use crate::vm::PageTableOps;
use abi::Error;
use abi::layout::{USER_STACK_SIZE, USER_STACK_TOP};

/// A loaded program: its address space and where it starts.
pub struct Loaded<M: Machine> {
    pub space: M::Space,
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

/// Maps a fresh zeroed page at `va` with `flags`, `fill` writing its
/// first bytes (an offset in the page and the bytes).
fn map_fresh<M: Machine>(
    space: &mut M::Space,
    va: u64,
    flags: PteFlags,
    fill: Option<(u64, &[u8])>,
) -> Result<(), Error> {
    let frame = M::alloc_frame().ok_or(Error::OutOfMemory)?;
    if let Some((at, bytes)) = fill {
        M::write_phys(frame.addr() + at, bytes);
    }
    let pte = make_pte(frame.addr(), flags | PteFlags::PRESENT);
    space
        .set_new(&mut MachineFrames::<M>::new(), va, pte)
        .map_err(|e| {
            let _ = M::release_frame(frame);
            match e {
                Error::OutOfMemory => Error::OutOfMemory,
                // Segments that overlap.
                _ => Error::BadImage,
            }
        })
}

fn load_into<M: Machine>(
    space: &mut M::Space,
    image: &[u8],
    args: &[u8],
) -> Result<(u64, u64, u64, u64), Error> {
    let nx = if M::codec().nx {
        PteFlags::NO_EXECUTE
    } else {
        PteFlags::empty()
    };
    let parsed = elf::parse(image, &ElfLimits::DEFAULT).map_err(|e| {
        crate::klog!(M, "[kernel] bad image: {e}");
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
            // The part of this page that holds file bytes, if any
            // (elf::parse checked offset + filesz <= image.len()).
            let from = page.max(seg.vaddr);
            let to = (page + 4096).min(file_end);
            let fill = (from < to).then(|| {
                let src = (seg.offset + (from - seg.vaddr)) as usize;
                (from - page, &image[src..src + (to - from) as usize])
            });
            map_fresh::<M>(space, page, flags, fill)?;
            page += 4096;
        }
    }
    // The stack, with the argument string at its top.
    let mut va = USER_STACK_TOP - USER_STACK_SIZE;
    while va < USER_STACK_TOP {
        map_fresh::<M>(space, va, PteFlags::USER | PteFlags::WRITABLE | nx, None)?;
        va += 4096;
    }
    let args_ptr = (USER_STACK_TOP - args.len() as u64) & !15;
    crate::usercopy::copy_to_user::<M>(space, args_ptr, args)?;
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
pub fn load<M: Machine>(image: &[u8], args: &[u8]) -> Result<Loaded<M>, Error> {
    if args.len() > 1024 {
        return Err(Error::InvalidArgument);
    }
    let mut space = M::new_space(&mut MachineFrames::<M>::new()).ok_or(Error::OutOfMemory)?;
    match load_into::<M>(&mut space, image, args) {
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
            release_space::<M>(space);
            Err(e)
        }
    }
}

impl<M: Machine> Loaded<M> {
    /// The registers a process starts with: `_start(args_ptr, args_len)`.
    pub fn initial_frame(&self) -> M::Frame {
        M::Frame::start(self.entry, self.stack_top, self.args_ptr, self.args_len)
    }
}
