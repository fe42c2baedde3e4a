//! The interrupt descriptor table: all 256 vectors point at the assembly
//! stubs of `entry.rs`.
//!
//! Rules: every vector has a gate, so an unexpected vector is reported, never
//! a triple fault; only the double fault and NMI/machine check use IST
//! stacks; no gate is callable from ring 3 (DPL 0), so `int n` from user
//! mode is a #GP that kills the caller, not a way into a handler.

use super::gdt::{IST_DOUBLE_FAULT, IST_NMI, KERNEL_CS};
use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt(handler: u64, ist: u16) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: ist as u8,
            // Present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
            type_attr: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static mut IDT: Idt = Idt([Gate::MISSING; 256]);

unsafe extern "C" {
    /// 256 stubs, 16 bytes apart (see `entry.rs`).
    static isr_stubs: u8;
}

/// Fills and loads the IDT.
pub fn init() {
    let base = (&raw const isr_stubs) as u64;
    // SAFETY: the boot CPU, before any other starts, interrupts disabled;
    // the table is 'static.
    let idt = &raw mut IDT;
    unsafe {
        for (vector, gate) in (*idt).0.iter_mut().enumerate() {
            let ist = match vector {
                8 => IST_DOUBLE_FAULT,
                2 | 18 => IST_NMI,
                _ => 0,
            };
            *gate = Gate::interrupt(base + 16 * vector as u64, ist);
        }
    }
    load();
}

/// Loads the IDT on this CPU (every CPU shares the one table, filled by
/// [`init`] on the boot CPU before any other starts).
pub fn load() {
    // SAFETY: the table is 'static and complete.
    unsafe {
        lidt(&DescriptorTablePointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: VirtAddr::new((&raw const IDT) as u64),
        });
    }
}
