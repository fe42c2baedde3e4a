//! heap-core: the allocator behind libmh's global allocator, without a
//! system call in it, so that it builds for the host and is unit-tested
//! there with `cargo test`. libmh wraps it (`libmh::heap`) with a lock and
//! a grower that maps pages with `vm_map` and asks the mem server for
//! more reserve when the kernel says `OutOfMemory`.
//!
//! Rules: no allocation of its own (it *is* the allocator), no panics on
//! any request (an impossible one is refused with `None`); `unsafe` only
//! where it reads and writes the free blocks it owns.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod freelist;
pub mod heap;

pub use heap::{Grow, Heap, Stats};
