//! The first instructions: a multiboot1 header that QEMU's `-kernel` accepts
//! for an ELF64 (the a.out kludge, flag bit 16), the 32-bit entry point, and
//! the switch to long mode.
//!
//! Rules: this code runs before Rust can, so it does the minimum: remember
//! the boot loader's magic and info pointer and the TSC, build boot page
//! tables (identity and direct map of the first 4 GiB, plus the higher half
//! where the kernel is linked), enable PAE, long mode, paging and write
//! protection, and call `kmain(magic, info)` on the kernel stack. The Rust
//! side replaces these page tables with its own as soon as it has a frame
//! allocator.

use core::arch::global_asm;

// The kernel stack lives in .bss with an unmapped guard page below it (the
// Rust page-table builder leaves `__kstack_guard` out), so an overflow is a
// page fault reported on the double-fault IST stack, not silent corruption.
global_asm!(
    r#"
    .set KVMA, 0xffffffff80000000
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00010003

    .section .multiboot_header, "a"
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header
    .long __load_start
    .long __load_end
    .long __bss_end
    .long _start32

    .section .boot.data, "aw"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .bss
    .balign 4096
boot_pml4:       .skip 4096
boot_pdpt_low:   .skip 4096
boot_pdpt_high:  .skip 4096
boot_pd:         .skip 4 * 4096
    .global __kstack_guard
__kstack_guard:  .skip 4096
    .global __kstack_bottom
__kstack_bottom: .skip 64 * 1024
    .global __kstack_top
__kstack_top:
    .balign 8
    .global BOOT_MB_MAGIC
BOOT_MB_MAGIC:   .long 0
    .global BOOT_MB_INFO
BOOT_MB_INFO:    .long 0
    .global BOOT_TSC
BOOT_TSC:        .quad 0

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    movl %eax, (BOOT_MB_MAGIC - KVMA)
    movl %ebx, (BOOT_MB_INFO - KVMA)
    rdtsc
    movl %eax, (BOOT_TSC - KVMA)
    movl %edx, (BOOT_TSC - KVMA + 4)
    movl $(__kstack_top - KVMA), %esp

    /* 2048 large pages: physical 0..4 GiB. */
    movl $(boot_pd - KVMA), %edi
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, (%edi,%ecx,8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, 4(%edi,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jne 1b

    movl $(boot_pdpt_low - KVMA), %edi
    movl $(boot_pd - KVMA + 3), %eax
    movl %eax, 0(%edi)
    addl $0x1000, %eax
    movl %eax, 8(%edi)
    addl $0x1000, %eax
    movl %eax, 16(%edi)
    addl $0x1000, %eax
    movl %eax, 24(%edi)

    /* The kernel is linked at KVMA + 1 MiB: PDPT_high[510] covers it. */
    movl $(boot_pd - KVMA + 3), %eax
    movl %eax, (boot_pdpt_high - KVMA + 510 * 8)

    /* Identity (slot 0) for this code, direct map (slot 256), kernel (511). */
    movl $(boot_pdpt_low - KVMA + 3), %eax
    movl %eax, (boot_pml4 - KVMA)
    movl %eax, (boot_pml4 - KVMA + 256 * 8)
    movl $(boot_pdpt_high - KVMA + 3), %eax
    movl %eax, (boot_pml4 - KVMA + 511 * 8)

    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $(boot_pml4 - KVMA), %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0

    lgdt (boot_gdt_ptr)
    ljmp $0x08, $long_mode_entry

    .code64
long_mode_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabs $__kstack_top, %rsp
    xorl %ebp, %ebp
    movabs $kmain, %rax
    call *%rax
2:  cli
    hlt
    jmp 2b
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static __kstack_guard: u8;
    static __kstack_bottom: u8;
    static __kstack_top: u8;
    static BOOT_MB_MAGIC: u32;
    static BOOT_MB_INFO: u32;
    static BOOT_TSC: u64;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
}

/// What the 32-bit entry code recorded before Rust ran.
#[derive(Clone, Copy, Debug)]
pub struct BootRecord {
    pub magic: u32,
    pub info_phys: u64,
    pub entry_tsc: u64,
}

/// Reads what `_start32` stored.
pub fn boot_record() -> BootRecord {
    // SAFETY: written once by `_start32` before any Rust code ran; read-only
    // afterwards.
    unsafe {
        BootRecord {
            magic: core::ptr::read_volatile(&raw const BOOT_MB_MAGIC),
            info_phys: core::ptr::read_volatile(&raw const BOOT_MB_INFO) as u64,
            entry_tsc: core::ptr::read_volatile(&raw const BOOT_TSC),
        }
    }
}

/// Virtual address ranges of the kernel image, by protection.
#[derive(Clone, Copy, Debug)]
pub struct KernelSections {
    pub text: (u64, u64),
    pub rodata: (u64, u64),
    pub data: (u64, u64),
    pub stack_guard: u64,
    pub stack: (u64, u64),
}

/// The linker-script symbols that delimit the kernel image.
pub fn kernel_sections() -> KernelSections {
    let a = |p: *const u8| p as u64;
    KernelSections {
        text: (a(&raw const __text_start), a(&raw const __text_end)),
        rodata: (a(&raw const __rodata_start), a(&raw const __rodata_end)),
        data: (a(&raw const __data_start), a(&raw const __data_end)),
        stack_guard: a(&raw const __kstack_guard),
        stack: (a(&raw const __kstack_bottom), a(&raw const __kstack_top)),
    }
}

/// Where the kernel image is linked, and where it sits in physical memory.
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

/// Physical address of a kernel-image virtual address.
pub const fn image_phys(va: u64) -> u64 {
    va - KERNEL_VMA
}
