//! `vm_map`, `vm_protect`, `vm_unmap`, `vm_move` and demand-zero paging:
//! results, errors, and frames given back.

use crate::suite::Suite;
use crate::util::{child_page_faults_at, free_frames, peek, poke};
use crate::{ensure, ensure_eq};
use abi::Error;
use abi::layout::{USER_HEAP_BASE, USER_STACK_TOP};
use abi::vm::{PROT_EXEC, PROT_READ, PROT_WRITE, VM_ALLOW_WX};
use libmh::{rt, vm};

const P: u64 = 4096;
const RW: u64 = PROT_READ | PROT_WRITE;
/// A region no other test or libmh uses.
const AREA: u64 = 0x5000_0000_0000;

pub fn run(s: &mut Suite) {
    crate::util::warm_up();
    let baseline = free_frames();

    s.run("vm_map_gives_zeroed_writable_pages", || {
        let before = free_frames();
        vm::map(AREA, 3 * P, RW).map_err(|e| crate::suite::Fail::new(format_args!("{e}")))?;
        // Three pages, and the three page tables an empty area needs (they
        // go again with the last page: nothing is left behind).
        ensure_eq!(free_frames(), before - 3 - 3);
        for i in 0..3 * P {
            ensure!(peek(AREA + i) == 0, "byte {i} not zero");
        }
        poke(AREA + 5000, 0xab);
        ensure_eq!(peek(AREA + 5000), 0xab);
        ensure_eq!(vm::unmap(AREA, 3 * P), Ok(()));
        ensure_eq!(free_frames(), before);
        Ok(())
    });

    s.run("vm_map_errors", || {
        ensure_eq!(vm::map(AREA + 1, P, RW), Err(Error::InvalidArgument));
        ensure_eq!(vm::map(AREA, 0, RW), Err(Error::InvalidArgument));
        ensure_eq!(vm::map(AREA, P + 1, RW), Err(Error::InvalidArgument));
        ensure_eq!(vm::map(0, P, RW), Err(Error::BadAddress));
        ensure_eq!(
            vm::map(0xffff_8000_0000_0000, P, RW),
            Err(Error::BadAddress)
        );
        ensure_eq!(
            vm::map(0x0000_8000_0000_0000, P, RW),
            Err(Error::BadAddress)
        );
        ensure_eq!(vm::map(AREA, !0xfff, RW), Err(Error::BadAddress));
        ensure_eq!(
            vm::map(AREA, P, RW | PROT_EXEC),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(vm::map(AREA, P, 1 << 20), Err(Error::InvalidArgument));
        ensure_eq!(vm::map(AREA, P, RW | PROT_EXEC | VM_ALLOW_WX), Ok(()));
        ensure_eq!(vm::map(AREA, P, RW), Err(Error::AlreadyExists));
        // A range with one mapped page is refused whole.
        let free = free_frames();
        ensure_eq!(vm::map(AREA - P, 3 * P, RW), Err(Error::AlreadyExists));
        ensure_eq!(free_frames(), free);
        ensure_eq!(vm::unmap(AREA, P), Ok(()));
        Ok(())
    });

    s.run("vm_map_read_only_page_faults_on_write", || {
        ensure_eq!(vm::map(AREA, P, PROT_READ), Ok(()));
        ensure_eq!(peek(AREA), 0);
        child_page_faults_at(AREA + 8, || {
            poke(AREA + 8, 1);
            0
        })?;
        ensure_eq!(vm::unmap(AREA, P), Ok(()));
        Ok(())
    });

    s.run("vm_protect_semantics_and_errors", || {
        ensure_eq!(vm::map(AREA, 2 * P, RW), Ok(()));
        poke(AREA, 7);
        ensure_eq!(vm::protect(AREA, 2 * P, PROT_READ), Ok(()));
        ensure_eq!(peek(AREA), 7);
        child_page_faults_at(AREA, || {
            poke(AREA, 1);
            0
        })?;
        ensure_eq!(vm::protect(AREA, P, 0), Ok(()));
        child_page_faults_at(AREA, || peek(AREA) as i32)?;
        ensure_eq!(vm::protect(AREA, P, RW), Ok(()));
        ensure_eq!(peek(AREA), 7, "contents survive PROT_NONE");
        ensure_eq!(vm::protect(AREA, 3 * P, PROT_READ), Err(Error::NotFound));
        ensure_eq!(
            vm::protect(AREA, P, RW | PROT_EXEC),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(vm::protect(AREA + 3, P, RW), Err(Error::InvalidArgument));
        ensure_eq!(
            vm::protect(0xffff_ffff_8000_0000, P, RW),
            Err(Error::BadAddress)
        );
        ensure_eq!(vm::unmap(AREA, 2 * P), Ok(()));
        Ok(())
    });

    s.run("vm_unmap_semantics_and_errors", || {
        let before = free_frames();
        ensure_eq!(vm::map(AREA + P, P, RW), Ok(()));
        // Holes in the range are fine.
        ensure_eq!(vm::unmap(AREA, 4 * P), Ok(()));
        ensure_eq!(free_frames(), before);
        child_page_faults_at(AREA + P, || peek(AREA + P) as i32)?;
        ensure_eq!(vm::unmap(AREA, 5), Err(Error::InvalidArgument));
        ensure_eq!(vm::unmap(0xffff_8000_0000_0000, P), Err(Error::BadAddress));
        Ok(())
    });

    s.run("vm_move_semantics_and_errors", || {
        let (src, dst) = (AREA, AREA + 0x10_0000);
        ensure_eq!(vm::map(src, 2 * P, RW), Ok(()));
        ensure_eq!(vm::map(dst, P, RW), Ok(()));
        poke(src, 11);
        poke(src + P, 12);
        poke(dst, 99);
        let before = free_frames();
        ensure_eq!(vm::move_pages(dst, src, 2 * P), Ok(()));
        // dst's old page went back; the two moved pages kept their data.
        ensure_eq!(free_frames(), before + 1);
        ensure_eq!((peek(dst), peek(dst + P)), (11, 12));
        child_page_faults_at(src, || peek(src) as i32)?;
        // Onto itself: nothing changes.
        ensure_eq!(vm::move_pages(dst, dst, 2 * P), Ok(()));
        ensure_eq!(
            (peek(dst), peek(dst + P), free_frames()),
            (11, 12, before + 1)
        );
        ensure_eq!(
            vm::move_pages(dst + P, dst, 2 * P),
            Err(Error::InvalidArgument)
        );
        ensure_eq!(
            vm::move_pages(src, AREA + 0x20_0000, P),
            Err(Error::NotFound)
        );
        ensure_eq!(
            vm::move_pages(0xffff_8000_0000_0000, dst, P),
            Err(Error::BadAddress)
        );
        ensure_eq!(vm::move_pages(src, dst + 1, P), Err(Error::InvalidArgument));
        ensure_eq!(vm::unmap(dst, 2 * P), Ok(()));
        Ok(())
    });

    s.run("demand_zero_heap_pages", || {
        let before = rt::stats().demand_maps;
        let a = USER_HEAP_BASE + 0x12_3456;
        ensure_eq!(peek(a), 0);
        poke(a, 5);
        poke(a + 3 * P, 6);
        ensure_eq!((peek(a), peek(a + 3 * P)), (5, 6));
        ensure_eq!(rt::stats().demand_maps, before + 2);
        ensure_eq!(vm::unmap(USER_HEAP_BASE, 0x20_0000), Ok(()));
        Ok(())
    });

    s.run("demand_zero_stack_growth", || {
        // Use more stack than the 64 KiB the kernel maps at exec.
        #[inline(never)]
        fn deep(n: u32) -> u64 {
            let buf = core::hint::black_box([n as u8; 1024]);
            if n == 0 {
                buf[3] as u64
            } else {
                deep(n - 1) + buf[7] as u64
            }
        }
        let before = rt::stats().demand_maps;
        ensure_eq!(deep(200), 200 * 201 / 2);
        ensure!(
            rt::stats().demand_maps > before,
            "no stack page was demand-mapped"
        );
        // Give the grown stack back so the frame count stays comparable.
        let low = USER_STACK_TOP - abi::layout::USER_STACK_MAX + P;
        let top = USER_STACK_TOP - abi::layout::USER_STACK_SIZE;
        ensure_eq!(vm::unmap(low, top - low), Ok(()));
        Ok(())
    });

    s.run("vm_group_gives_back_every_frame", || {
        ensure_eq!(free_frames(), baseline);
        Ok(())
    });
}
