//! The protocols CPUs use to ask each other for something, in the
//! hardware-free form the kernel runs and the host can check: the TLB
//! mailbox ([`mailbox`]). loom models of it and of the wake-up of an idle
//! CPU are in `tests/loom_smp/` (built only with `--cfg loom`).
//!
//! Rules: the protocols take their atomics and spin hint from `sync`
//! only, so that one source compiles to `core`'s atomics in the kernel and
//! to loom's in a `--cfg loom` build, which then explores the
//! kernel's own code. What the hardware does (IPI delivery, `sti; hlt`,
//! the flushes) stays in the kernel; the models state what they assume
//! of it.

pub mod mailbox;
mod sync;
