//! The atomics and spin hint of the cross-CPU protocols: `core`'s in the
//! kernel and in ordinary tests, loom's in a `--cfg loom` test build.
//!
//! Rules: code in `smp` names its atomics through this module, never
//! `core::sync::atomic` directly: an atomic loom does not see is one whose
//! interleavings it never explores. Only test builds switch (`cfg(all(test,
//! loom))`), so `--cfg loom` cannot change what a normal build of this
//! crate is, and loom stays a dev-dependency.

#[cfg(not(all(test, loom)))]
pub use core::hint::spin_loop;
#[cfg(not(all(test, loom)))]
pub use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(all(test, loom))]
pub use loom::hint::spin_loop;
#[cfg(all(test, loom))]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
