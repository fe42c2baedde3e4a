//! The GDT and the TSS: segment selectors for ring 0 and ring 3, the stack
//! the CPU switches to on entry from user mode (`rsp0`), and the IST stacks
//! for the faults that must not run on a possibly broken kernel stack.
//!
//! Rules: the selector order is fixed by SYSCALL/SYSRET (kernel code, kernel
//! data, user data, user code); `rsp0` always points at the end of the
//! current process's saved-register frame (see `entry.rs`), so a user-mode
//! interrupt saves the registers straight into the process.

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_SS: u16 = 0x10;
pub const USER_SS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;

/// IST slot (1-based in the IDT, 0-based in the TSS) for double faults.
pub const IST_DOUBLE_FAULT: u16 = 1;
/// IST slot for NMIs and machine checks.
pub const IST_NMI: u16 = 2;

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

static mut DOUBLE_FAULT_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);
static mut NMI_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);
static mut TSS: TaskStateSegment = TaskStateSegment::new();
static GDT: Once<GlobalDescriptorTable> = Once::new();

/// Builds and loads the GDT and TSS. Call once, early.
pub fn init() {
    let df_top = (&raw const DOUBLE_FAULT_STACK) as u64 + IST_STACK_SIZE as u64;
    let nmi_top = (&raw const NMI_STACK) as u64 + IST_STACK_SIZE as u64;
    // SAFETY: single CPU, interrupts off, and nothing else references the
    // TSS before the GDT below captures its address.
    let tss_ptr = &raw mut TSS;
    let tss: &'static TaskStateSegment = unsafe {
        (*tss_ptr).interrupt_stack_table[(IST_DOUBLE_FAULT - 1) as usize] = VirtAddr::new(df_top);
        (*tss_ptr).interrupt_stack_table[(IST_NMI - 1) as usize] = VirtAddr::new(nmi_top);
        &*tss_ptr
    };
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kcs = gdt.append(Descriptor::kernel_code_segment());
        let kss = gdt.append(Descriptor::kernel_data_segment());
        let uss = gdt.append(Descriptor::user_data_segment());
        let ucs = gdt.append(Descriptor::user_code_segment());
        debug_assert_eq!(
            (kcs.0, kss.0, uss.0, ucs.0),
            (KERNEL_CS, KERNEL_SS, USER_SS, USER_CS)
        );
        gdt.append(Descriptor::tss_segment(tss));
        gdt
    });
    gdt.load();
    // SAFETY: the selectors name the descriptors appended above.
    unsafe {
        CS::set_reg(SegmentSelector(KERNEL_CS));
        SS::set_reg(SegmentSelector(KERNEL_SS));
        DS::set_reg(SegmentSelector(KERNEL_SS));
        ES::set_reg(SegmentSelector(KERNEL_SS));
        load_tss(SegmentSelector(0x28));
    }
}

/// Sets the stack the CPU loads on an interrupt from ring 3 (on every
/// process switch, so without the canonical-address fix-up).
///
/// # Safety
/// `top` must be a canonical kernel address.
#[inline(always)]
pub unsafe fn set_rsp0(top: u64) {
    // SAFETY: single CPU, called with interrupts disabled; the CPU reads the
    // TSS only on privilege changes, which cannot happen concurrently. The
    // caller guarantees `top` is canonical.
    let tss = &raw mut TSS;
    unsafe {
        (*tss).privilege_stack_table[0] = VirtAddr::new_unsafe(top);
    }
}
