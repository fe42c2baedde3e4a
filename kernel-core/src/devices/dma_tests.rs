//! DMA exports to hardware devices on the fake machine: exports into a
//! claimed function's I/O MMU domain (every page mapped, each unmap
//! invalidated before anything is reused, a failed export undone, the
//! quarantine of a dead driver's iovas) and physical-address exports
//! with their page list.

use super::dma::{EXPORTS_PER_ATTACHMENT, PHYSICAL_DMA_LIMIT, WINDOW_BASE};
use super::pci_tests::*;
use crate::fake;
use crate::fake::pci::IommuEvent;
use crate::iommu::Access;
use crate::kernel::tests::{SCRATCH, call, fork};
use abi::hw::*;
use abi::kdev::*;
use abi::{Error, Sysno};

#[test]
fn a_translated_export_maps_every_page_and_unexport_invalidates_first() {
    let (mut k, plat) = machine(true);
    claim(&mut k, plat, "edu", EDU_AT).unwrap();
    let dev = edu_id(&mut k);
    let h = attach(&mut k, "edu", ALL).unwrap();
    map(&mut k, BUF, 4 * PAGE, 3);
    let iova = export(&mut k, h, BUF + 8, 3 * PAGE, 0, (0, 0)).unwrap();
    assert_eq!(iova, WINDOW_BASE + 8);
    // Four pages (the range runs 8 bytes into the fourth), each mapped
    // read-write at consecutive iovas.
    for i in 0..4 {
        let (frame, access) = translate(&mut k, dev, WINDOW_BASE + i * PAGE).expect("mapped");
        let space = k.current().space.as_mut().unwrap();
        let want = crate::machine::AddressSpace::lookup(space, BUF + i * PAGE).unwrap()
            & !0xfff
            & ((1 << 52) - 1);
        assert_eq!(frame, want);
        assert_eq!(access, Access::READ | Access::WRITE);
    }
    assert_eq!(translate(&mut k, dev, WINDOW_BASE + 4 * PAGE), None);
    let ro = export(&mut k, h, BUF, 16, EXPORT_DEVICE_READS_ONLY, (0, 0)).unwrap();
    assert_eq!(
        translate(&mut k, dev, ro & !0xfff).map(|t| t.1),
        Some(Access::READ)
    );
    // Unexport names the iova exactly; the flush covers all four pages.
    assert_eq!(unexport(&mut k, h, iova - 8), Err(Error::NotFound));
    let before = events().len();
    assert_eq!(unexport(&mut k, h, iova), Ok(()));
    assert_eq!(translate(&mut k, dev, WINDOW_BASE), None);
    let flushes: Vec<_> = events()[before..].to_vec();
    assert!(
        matches!(flushes.as_slice(), [IommuEvent::Flush { range: (a, b), .. }] if *a == WINDOW_BASE && *b == WINDOW_BASE + 4 * PAGE),
        "{flushes:?}"
    );
    // The pages are no longer wired: they can be unmapped.
    assert_eq!(unexport(&mut k, h, ro), Ok(()));
    assert_eq!(
        call(&mut k, Sysno::VmUnmap, [BUF, 4 * PAGE, 0, 0, 0, 0]),
        Some(0)
    );
}

#[test]
fn a_failed_export_leaves_nothing_wired_or_mapped() {
    let (mut k, plat) = machine(true);
    claim(&mut k, plat, "edu", EDU_AT).unwrap();
    let dev = edu_id(&mut k);
    let h = attach(&mut k, "edu", ALL).unwrap();
    map(&mut k, BUF, 2 * PAGE, 3);
    map(&mut k, BUF + 3 * PAGE, PAGE, 1); // read-only, after a hole
    assert_eq!(
        export(&mut k, h, BUF, 3 * PAGE, 0, (0, 0)),
        Err(Error::BadAddress)
    );
    assert_eq!(translate(&mut k, dev, WINDOW_BASE), None);
    assert_eq!(
        export(&mut k, h, BUF + 3 * PAGE, 8, 0, (0, 0)),
        Err(Error::AccessDenied)
    );
    assert_eq!(
        export(&mut k, h, BUF + 3 * PAGE, 8, 2, (0, 0)),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        call(&mut k, Sysno::VmUnmap, [BUF, 2 * PAGE, 0, 0, 0, 0]),
        Some(0),
        "nothing wired"
    );
    // The iovas of the failed export were given back: the next starts at
    // the window's base.
    assert_eq!(
        export(
            &mut k,
            h,
            BUF + 3 * PAGE,
            8,
            EXPORT_DEVICE_READS_ONLY,
            (0, 0)
        ),
        Ok(WINDOW_BASE)
    );
    // Per attachment, a fixed number of ranges.
    for _ in 1..EXPORTS_PER_ATTACHMENT {
        export(
            &mut k,
            h,
            BUF + 3 * PAGE,
            8,
            EXPORT_DEVICE_READS_ONLY,
            (0, 0),
        )
        .unwrap();
    }
    assert_eq!(
        export(
            &mut k,
            h,
            BUF + 3 * PAGE,
            8,
            EXPORT_DEVICE_READS_ONLY,
            (0, 0)
        ),
        Err(Error::LimitReached)
    );
}

#[test]
fn a_dead_drivers_iovas_and_frames_are_quarantined_until_released() {
    let (mut k, plat) = machine(true);
    claim(&mut k, plat, "edu", EDU_AT).unwrap();
    let dev = edu_id(&mut k);
    let free_before = fake::with(|s| s.used());
    let child = fork(&mut k);
    assert_eq!(
        call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        None
    );
    assert_eq!(k.current_pid(), child);
    let h = attach(&mut k, "edu", ALL).unwrap();
    map(&mut k, BUF, 2 * PAGE, 3);
    let iova = export(&mut k, h, BUF, 2 * PAGE, 0, (0, 0)).unwrap();
    assert!(translate(&mut k, dev, iova).is_some());
    assert_eq!(call(&mut k, Sysno::Exit, [0, 0, 0, 0, 0, 0]), None);
    assert_eq!(
        call(&mut k, Sysno::WaitChild, [SCRATCH, 0, 0, 0, 0, 0]),
        Some(child as isize)
    );
    // Unmapped (invalidated) and bus mastering off, but the device may
    // still finish a transfer it translated before: the two iovas and the
    // two frames stay out of use until the platform holder releases them.
    assert_eq!(translate(&mut k, dev, iova), None);
    assert_eq!(command(EDU_AT) & 0x4, 0);
    assert_eq!(port_in(&mut k, plat, PLATFORM_PORT_QUARANTINED, 8), Ok(4));
    assert_eq!(fake::with(|s| s.used()), free_before + 2);
    let h = attach(&mut k, "edu", ALL).unwrap();
    map(&mut k, BUF, PAGE, 3);
    let next = export(&mut k, h, BUF, 8, 0, (0, 0));
    assert_eq!(next, Ok(WINDOW_BASE + 2 * PAGE));
    assert_eq!(unexport(&mut k, h, next.unwrap()), Ok(()));
    assert_eq!(
        call(&mut k, Sysno::VmUnmap, [BUF, PAGE, 0, 0, 0, 0]),
        Some(0)
    );
    // Released (after the device's reset): the two frames are free again.
    let held = fake::with(|s| s.used());
    assert_eq!(
        crate::devices::hw::release_quarantine(&mut k, "edu"),
        Ok(())
    );
    assert_eq!(port_in(&mut k, plat, PLATFORM_PORT_QUARANTINED, 8), Ok(0));
    assert_eq!(fake::with(|s| s.used()), held - 2);
    let _ = peek_u64;
}

#[test]
fn without_an_iommu_exports_list_physical_pages() {
    let (mut k, plat) = machine(false);
    claim(&mut k, plat, "edu", EDU_AT).unwrap();
    let h = attach(&mut k, "edu", ALL).unwrap();
    assert_eq!(port_in(&mut k, h, HW_PORT_PCI_IOMMU, 8), Ok(0));
    map(&mut k, BUF, 3 * PAGE, 3);
    let list = SCRATCH + 0x400;
    // More than a page needs a list with room for every page.
    assert_eq!(
        export(&mut k, h, BUF, 3 * PAGE, 0, (0, 0)),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        export(&mut k, h, BUF, 3 * PAGE, 0, (list, 16)),
        Err(Error::InvalidArgument)
    );
    let first = export(&mut k, h, BUF + 16, 2 * PAGE, 0, (list, 24)).unwrap();
    for i in 0..3 {
        let space = k.current().space.as_mut().unwrap();
        let want = crate::machine::AddressSpace::lookup(space, BUF + i * PAGE).unwrap()
            & 0x000f_ffff_ffff_f000;
        assert_eq!(peek_u64(&mut k, list + 8 * i), want, "page {i}");
    }
    assert_eq!(first, peek_u64(&mut k, list) + 16);
    // A list the kernel cannot write: nothing stays wired.
    assert_eq!(
        export(&mut k, h, BUF, 2 * PAGE, 0, (0x7000_0000_0000, 16)),
        Err(Error::BadAddress)
    );
    assert_eq!(unexport(&mut k, h, first), Ok(()));
    assert_eq!(
        call(&mut k, Sysno::VmUnmap, [BUF, 3 * PAGE, 0, 0, 0, 0]),
        Some(0)
    );
}

#[test]
fn physical_exports_of_pages_above_4_gib_move_them_below() {
    let (mut k, plat) = machine(false);
    claim(&mut k, plat, "edu", EDU_AT).unwrap();
    let h = attach(&mut k, "edu", ALL).unwrap();
    // Every frame from here on is above 4 GiB (as on a machine whose
    // high memory is handed out first), but for those asked below it.
    fake::with(|s| s.new_frames_from(8 << 18));
    map(&mut k, BUF, 2 * PAGE, 3);
    poke(&mut k, BUF + 8, b"low, please");
    poke(&mut k, BUF + PAGE, b"and this one");
    let frame_of = |k: &mut crate::kernel::Kernel<fake::Fake>, va: u64| {
        let space = k.current().space.as_mut().unwrap();
        crate::machine::AddressSpace::lookup(space, va).unwrap() & 0x000f_ffff_ffff_f000
    };
    assert!(frame_of(&mut k, BUF) >= 1 << 32);
    let used = fake::with(|s| s.used());
    let pid = k.current_pid();
    let charged = k.proc_and_reserve(pid).unwrap().1.used();
    let list = SCRATCH + 0x400;
    let first = export(&mut k, h, BUF, 2 * PAGE, 0, (list, 16)).unwrap();
    for i in 0..2 {
        let phys = peek_u64(&mut k, list + 8 * i);
        assert!(phys + PAGE <= PHYSICAL_DMA_LIMIT, "page {i} at {phys:#x}");
        assert_eq!(frame_of(&mut k, BUF + i * PAGE), phys);
    }
    assert_eq!(first, peek_u64(&mut k, list));
    // The process sees the same bytes; no frame and no charge more.
    let mut got = [0u8; 12];
    let space = k.current().space.as_mut().unwrap();
    crate::usercopy::copy_from_user::<fake::Fake>(space, BUF + PAGE, &mut got).unwrap();
    assert_eq!(&got, b"and this one");
    assert_eq!(peek_u64(&mut k, BUF + 8), u64::from_le_bytes(*b"low, ple"));
    assert_eq!(fake::with(|s| s.used()), used);
    assert_eq!(k.proc_and_reserve(pid).unwrap().1.used(), charged);
    assert_eq!(unexport(&mut k, h, first), Ok(()));
}

#[test]
fn a_physical_export_with_no_low_frame_left_is_out_of_memory() {
    let (mut k, plat) = machine(false);
    claim(&mut k, plat, "edu", EDU_AT).unwrap();
    let h = attach(&mut k, "edu", ALL).unwrap();
    fake::with(|s| s.new_frames_from(8 << 18));
    map(&mut k, BUF, PAGE, 3);
    // Nothing below 4 GiB is left.
    fake::with(|s| s.refuse_below = true);
    let used = fake::with(|s| s.used());
    assert_eq!(
        export(&mut k, h, BUF, 8, 0, (0, 0)),
        Err(Error::OutOfMemory)
    );
    // Nothing stays wired: the page can be unmapped; no frame is lost.
    assert_eq!(fake::with(|s| s.used()), used);
    assert_eq!(
        call(&mut k, Sysno::VmUnmap, [BUF, PAGE, 0, 0, 0, 0]),
        Some(0)
    );
}
