//! The GDT and the TSS: segment selectors for ring 0 and ring 3, the stack
//! the CPU switches to on entry from user mode (`rsp0`), and the IST stacks
//! for the faults that must not run on a possibly broken kernel stack.
//!
//! Rules: the selector order is fixed by SYSCALL/SYSRET (kernel code, kernel
//! data, user data, user code); `rsp0` always points at the end of the
//! current process's saved-register frame (see `entry.rs`), so a user-mode
//! interrupt saves the registers straight into the process. Every CPU has
//! its own GDT and TSS (in its `PerCpu`): a TSS descriptor is marked busy
//! when loaded, and `rsp0` is per CPU.

use super::percpu;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_SS: u16 = 0x10;
pub const USER_SS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;
const TSS_SELECTOR: u16 = 0x28;

/// IST slot (1-based in the IDT, 0-based in the TSS) for double faults.
pub const IST_DOUBLE_FAULT: u16 = 1;
/// IST slot for NMIs and machine checks.
pub const IST_NMI: u16 = 2;

/// The size of each IST stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

// The boot CPU's IST stacks (the others get theirs from `smp`, with guard
// pages, before they start).
static mut DOUBLE_FAULT_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);
static mut NMI_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);

/// The tops of the boot CPU's IST stacks (double fault, NMI).
pub fn boot_ist_tops() -> (u64, u64) {
    (
        (&raw const DOUBLE_FAULT_STACK) as u64 + IST_STACK_SIZE as u64,
        (&raw const NMI_STACK) as u64 + IST_STACK_SIZE as u64,
    )
}

/// Builds and loads CPU `index`'s GDT and TSS, with its IST stacks at
/// `df_top` and `nmi_top`. Once per CPU, on that CPU, interrupts off.
pub fn init(index: usize, df_top: u64, nmi_top: u64) {
    // SAFETY: this CPU's own entry, set up once before anything else on
    // this CPU reads it. The TSS and the GDT are fields of an element of
    // a static array, so references to them are 'static; each is reached
    // through its own pointer, the TSS only read once the GDT holds it.
    let me: *mut percpu::PerCpu = unsafe { percpu::of_mut(index) };
    let (tss, gdt) = unsafe {
        let tss = &mut (*me).tss;
        tss.interrupt_stack_table[(IST_DOUBLE_FAULT - 1) as usize] = VirtAddr::new(df_top);
        tss.interrupt_stack_table[(IST_NMI - 1) as usize] = VirtAddr::new(nmi_top);
        let tss: &'static TaskStateSegment = &(*me).tss;
        let gdt: &'static mut GlobalDescriptorTable = &mut (*me).gdt;
        (tss, gdt)
    };
    let kcs = gdt.append(Descriptor::kernel_code_segment());
    let kss = gdt.append(Descriptor::kernel_data_segment());
    let uss = gdt.append(Descriptor::user_data_segment());
    let ucs = gdt.append(Descriptor::user_code_segment());
    debug_assert_eq!(
        (kcs.0, kss.0, uss.0, ucs.0),
        (KERNEL_CS, KERNEL_SS, USER_SS, USER_CS)
    );
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    debug_assert_eq!(tss_sel.0, TSS_SELECTOR);
    let gdt: &'static GlobalDescriptorTable = gdt;
    gdt.load();
    // SAFETY: the selectors name the descriptors appended above.
    unsafe {
        CS::set_reg(SegmentSelector(KERNEL_CS));
        SS::set_reg(SegmentSelector(KERNEL_SS));
        DS::set_reg(SegmentSelector(KERNEL_SS));
        ES::set_reg(SegmentSelector(KERNEL_SS));
        load_tss(SegmentSelector(TSS_SELECTOR));
    }
}

/// Sets the stack the CPU loads on an interrupt from ring 3 (on every
/// process switch, so without the canonical-address fix-up).
///
/// # Safety
/// `top` must be a canonical kernel address; called in the kernel (GS is
/// this CPU's) with interrupts disabled.
#[inline(always)]
pub unsafe fn set_rsp0(top: u64) {
    // SAFETY: GS points at this CPU's PerCpu, whose TSS the CPU reads only
    // on a privilege change, which cannot happen while the kernel runs
    // with interrupts off; the caller guarantees `top` is canonical.
    unsafe { percpu::store::<{ percpu::OFFSET_RSP0 }>(top) };
}
