//! The atomics and spin hint of the cross-CPU protocols: `core`'s in the
//! kernel and in ordinary builds, loom's in a `--cfg loom` build (the
//! models in `tests/loom_smp/`).
//!
//! Rules: code in `smp` names its atomics through this module, never
//! `core::sync::atomic` directly: an atomic loom does not see is one whose
//! interleavings it never explores. Nothing outside `smp` switches, so a
//! `--cfg loom` build of this crate differs only here (and in
//! `Mailbox::new`, which cannot be `const` on loom's atomics).

#[cfg(not(loom))]
pub use core::hint::spin_loop;
#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub use loom::hint::spin_loop;
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
