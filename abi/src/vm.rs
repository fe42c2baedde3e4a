//! Memory-mapping constants: protections and flags for `vm_map` and
//! `vm_protect`.
//!
//! The `prot` argument is a combination of [`PROT_READ`], [`PROT_WRITE`]
//! and [`PROT_EXEC`] (0 means no access), plus flags in the high bits.
//! Writable pages are readable on x86 (write implies read); an executable
//! page is readable too.

/// Readable.
pub const PROT_READ: u64 = 1;
/// Writable (implies readable).
pub const PROT_WRITE: u64 = 2;
/// Executable (implies readable).
pub const PROT_EXEC: u64 = 4;
/// Every protection bit.
pub const PROT_MASK: u64 = PROT_READ | PROT_WRITE | PROT_EXEC;

/// Flag: allow a page to be writable and executable at once. Without it,
/// W+X is refused with `InvalidArgument`.
pub const VM_ALLOW_WX: u64 = 0x100;

/// Every flag bit `vm_map`/`vm_protect` accept.
pub const VM_FLAGS_MASK: u64 = VM_ALLOW_WX;
