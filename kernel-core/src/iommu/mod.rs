//! Intel VT-d DMA and interrupt remapping, the hardware-free half: the
//! formats of the tables a remapping unit walks (root, context and
//! second-level page tables, the interrupt remapping table), the objects
//! that build and take them down in table frames, the capability fields
//! that decide their shape, each domain's space of I/O virtual addresses
//! (IOVAs), the invalidation queue and its descriptors, and the fault
//! records with the kernel's per-device log of them. The arch side
//! programs the unit's registers (root-table, interrupt-table and queue
//! addresses, enables, the queue tail, fault records) and gives these
//! objects real memory; everything here is tested on the host.
//!
//! Rules kept by every file below:
//! - a table (or the invalidation queue) is one 4 KiB frame of 512
//!   little-endian `u64` words, read and written only through
//!   [`TableMemory`] (a 128-bit entry `i` is the words `2i` (bits 0..64)
//!   and `2i + 1` (bits 64..128)); every such frame comes from
//!   [`TableFrames::alloc_table`] (zeroed, so a fresh table holds nothing
//!   present) and goes back through `free_table`;
//! - the hardware may walk the tables at any time, so a structure is
//!   published by one 64-bit write made after everything below it is in
//!   place, and a table unlinked from a live tree (or a freed interrupt
//!   entry's slot) is not reused here: it is handed back, to be freed
//!   once the invalidation that makes the hardware forget it has
//!   completed;
//! - arguments that come from callers are checked and refused with an
//!   [`abi::Error`], never a panic; no `unsafe`.
//!
//! [`TableMemory`]: crate::pagetable::TableMemory
//! [`TableFrames::alloc_table`]: crate::pagetable::TableFrames::alloc_table

pub mod caps;
pub mod context;
pub mod domain;
pub mod fault;
pub mod iova;
pub mod irte;
pub mod qi;

#[cfg(test)]
mod testframes;

pub use caps::{Agaw, Cap, Ecap, Geometry};
pub use context::{ContextEntry, Detached, RootTable};
pub use domain::{Access, Domain, Flush, Stale, Unmapped};
pub use fault::{FaultLog, FaultRecord, FaultStatus, Verdict};
pub use iova::IovaSpace;
pub use irte::{ApicMode, IrTable, Irte, MsiMessage};
pub use qi::{Batch, Descriptor, Drain, InvalidationQueue};

/// Bytes in a page, a table and the smallest unit of translation.
pub const PAGE: u64 = 4096;
