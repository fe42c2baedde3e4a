//! Everything specific to x86_64: boot, descriptor tables, entry and exit
//! paths, paging, interrupt controllers, the serial port.
//!
//! Rules: nothing outside this module uses inline assembly or touches a
//! control register, and nothing in here makes policy decisions.

pub mod boot;
pub mod cpu;
pub mod entry;
pub mod fault;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod lapic;
pub mod ordered;
pub mod paging;
pub mod pcicfg;
pub mod percpu;
pub mod phys;
pub mod pic;
pub mod serial;
pub mod smp;
pub mod tlb;
pub mod user_frame;
pub mod vtd;
