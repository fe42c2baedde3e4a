//! The driver's layout of its DMA arena (`libvirtio::Arena`): the
//! virtqueue (descriptor table, available ring, used ring: a page each), a
//! page of request headers and status bytes, and one bounce buffer per
//! request slot, where data waits between a client's export and the disk.

pub use libvirtio::arena::PAGE;

/// Where the arena is mapped.
pub const VA: u64 = 0x5b00_0000_0000;

/// Offsets of the fixed parts.
pub const DESC: u64 = 0;
pub const AVAIL: u64 = PAGE;
pub const USED: u64 = 2 * PAGE;
/// Slot `k`'s 16-byte request header.
pub const fn header(k: usize) -> u64 {
    3 * PAGE + 16 * k as u64
}
/// Slot `k`'s status byte.
pub const fn status(k: usize) -> u64 {
    3 * PAGE + 2048 + k as u64
}
/// GET_ID's 20-byte answer.
pub const ID: u64 = 3 * PAGE + 3072;
/// Slot `k`'s bounce buffer of `per_slot` bytes.
pub const fn bounce(k: usize, per_slot: u64) -> u64 {
    4 * PAGE + k as u64 * per_slot
}
