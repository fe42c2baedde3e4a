//! The user address-space layout every program is linked and loaded against.

/// Size of a page: the unit of mapping, protection and DMA.
pub const PAGE_SIZE: u64 = 4096;

/// Lowest user address that may be mapped. The pages below stay unmapped so
/// that a null-pointer dereference (plus a small offset) always faults.
pub const USER_MIN: u64 = 0x1_0000;

/// One past the highest user address: the top of the lower canonical half,
/// less one guard page so that no user mapping touches the boundary.
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;

/// Where programs are linked (the `.text` of every user ELF starts here).
pub const USER_IMAGE_BASE: u64 = 0x40_0000;

/// Top of the initial user stack (exclusive); it grows down.
pub const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;

/// Size of the initial user stack the kernel maps for a new program.
pub const USER_STACK_SIZE: u64 = 64 * 1024;

/// How far the main stack may grow (libmh maps it on demand below the
/// initial part). The lowest page of this range is a guard that is never
/// mapped: a fault there is reported as a stack overflow.
pub const USER_STACK_MAX: u64 = 8 * 1024 * 1024;

/// The heap region libmh maps on demand (demand-zero pages).
pub const USER_HEAP_BASE: u64 = 0x0000_1000_0000_0000;
/// Size of the heap region.
pub const USER_HEAP_SIZE: u64 = 0x0000_0100_0000_0000;

/// The region libmh's global allocator maps its pages in, explicitly
/// (never on demand), apart from the demand-zero heap region.
pub const USER_ALLOC_BASE: u64 = 0x0000_2000_0000_0000;
/// Size of the allocator's region.
pub const USER_ALLOC_SIZE: u64 = 0x0000_0100_0000_0000;

/// Scratch pages libmh uses to copy copy-on-write pages, one per level of
/// fault nesting.
pub const USER_SCRATCH_BASE: u64 = 0x0000_7f00_0000_0000;
/// How many scratch pages there are (the deepest COW-fault nesting).
pub const USER_SCRATCH_PAGES: u64 = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitStatus;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout_constants_are_page_aligned() {
        for v in [
            USER_MIN,
            USER_END,
            USER_IMAGE_BASE,
            USER_STACK_TOP,
            USER_STACK_SIZE,
            USER_ALLOC_BASE,
            USER_ALLOC_SIZE,
        ] {
            assert_eq!(v % PAGE_SIZE, 0);
        }
        const { assert!(USER_STACK_TOP < USER_END) };
        const { assert!(USER_MIN < USER_IMAGE_BASE) };
        const { assert!(USER_HEAP_BASE + USER_HEAP_SIZE < USER_ALLOC_BASE) };
        const { assert!(USER_ALLOC_BASE + USER_ALLOC_SIZE < USER_SCRATCH_BASE) };
        const { assert!(USER_SCRATCH_BASE < USER_STACK_TOP - USER_STACK_MAX) };
    }

    #[test]
    fn int_frame_layout_is_pinned() {
        use crate::IntFrame;
        assert_eq!(size_of::<IntFrame>(), 192);
        assert_eq!(offset_of!(IntFrame, rax), 0);
        assert_eq!(offset_of!(IntFrame, r15), 112);
        assert_eq!(offset_of!(IntFrame, rip), 120);
        assert_eq!(offset_of!(IntFrame, rsp), 128);
        assert_eq!(offset_of!(IntFrame, rflags), 136);
        assert_eq!(offset_of!(IntFrame, kind), 144);
        assert_eq!(offset_of!(IntFrame, int_enabled), 148);
        assert_eq!(offset_of!(IntFrame, vector), 152);
        assert_eq!(offset_of!(IntFrame, error), 160);
        assert_eq!(offset_of!(IntFrame, addr), 168);
        assert_eq!(offset_of!(IntFrame, reason), 176);
        assert_eq!(offset_of!(IntFrame, pending), 184);
    }

    #[test]
    fn bus_layouts_are_pinned() {
        use crate::{DeviceConfig, DeviceInfo, Request};
        assert_eq!(size_of::<DeviceInfo>(), 64);
        assert_eq!(offset_of!(DeviceInfo, kind), 32);
        assert_eq!(offset_of!(DeviceInfo, rights), 36);
        assert_eq!(offset_of!(DeviceInfo, client), 56);
        assert_eq!(size_of::<Request>(), 32);
        assert_eq!(offset_of!(Request, pid), 4);
        assert_eq!(offset_of!(Request, client), 8);
        assert_eq!(offset_of!(Request, port), 16);
        assert_eq!(offset_of!(Request, value), 24);
        assert_eq!(size_of::<DeviceConfig>(), 52);
        assert_eq!(offset_of!(DeviceConfig, name_len), 32);
        assert_eq!(offset_of!(DeviceConfig, vector), 44);
        assert_eq!(offset_of!(DeviceConfig, queue_per_client), 48);
    }

    #[test]
    fn hw_spec_layout_is_pinned() {
        use crate::HwDeviceSpec;
        assert_eq!(size_of::<HwDeviceSpec>(), 176);
        assert_eq!(offset_of!(HwDeviceSpec, port_count), 36);
        assert_eq!(offset_of!(HwDeviceSpec, ports), 48);
        assert_eq!(offset_of!(HwDeviceSpec, mmio), 80);
        assert_eq!(offset_of!(HwDeviceSpec, irqs), 144);
    }

    #[test]
    fn disk_request_layout_is_pinned() {
        use crate::disk::DiskRequest;
        assert_eq!(size_of::<DiskRequest>(), 24);
        assert_eq!(offset_of!(DiskRequest, sector), 0);
        assert_eq!(offset_of!(DiskRequest, buffer), 8);
        assert_eq!(offset_of!(DiskRequest, len), 16);
        assert_eq!(offset_of!(DiskRequest, tag), 20);
    }

    #[test]
    fn sys_info_layout_is_pinned() {
        use crate::SysInfo;
        assert_eq!(size_of::<SysInfo>(), 80);
        assert_eq!(offset_of!(SysInfo, free_frames), 0);
        assert_eq!(offset_of!(SysInfo, total_frames), 8);
        assert_eq!(offset_of!(SysInfo, processes), 16);
        assert_eq!(offset_of!(SysInfo, ticks), 24);
        assert_eq!(offset_of!(SysInfo, tick_hz), 32);
        assert_eq!(offset_of!(SysInfo, handles), 40);
        assert_eq!(offset_of!(SysInfo, heap_frames), 48);
        assert_eq!(offset_of!(SysInfo, idle_cycles), 64);
        assert_eq!(offset_of!(SysInfo, cpu), 72);
        assert_eq!(offset_of!(SysInfo, cpus), 76);
    }

    #[test]
    fn exit_status_layout_is_pinned() {
        assert_eq!(size_of::<ExitStatus>(), 48);
        assert_eq!(offset_of!(ExitStatus, culprit), 40);
        assert_eq!(offset_of!(ExitStatus, pid), 0);
        assert_eq!(offset_of!(ExitStatus, kind), 4);
        assert_eq!(offset_of!(ExitStatus, code), 8);
        assert_eq!(offset_of!(ExitStatus, fault_addr), 16);
        assert_eq!(offset_of!(ExitStatus, fault_ip), 24);
        assert_eq!(offset_of!(ExitStatus, fault_error), 32);
    }
}
