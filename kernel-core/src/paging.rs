//! x86_64 four-level paging arithmetic: page-table indices, canonical
//! addresses, alignment, user-range checks and page-table-entry encoding.
//!
//! Rules: everything here is a `const fn` over plain integers so the kernel
//! can use it in constants and the host can test it; nothing touches a real
//! page table. Functions that take addresses from user space never overflow:
//! they report failure instead (`None` or `false`).

use abi::layout::{USER_END, USER_MIN};
use bitflags::bitflags;

/// Size of a 4 KiB page, the only page size the kernel maps for users.
pub const PAGE_SIZE: u64 = 4096;

bitflags! {
    /// The non-address bits of a page-table entry.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PteFlags: u64 {
        const PRESENT = 1;
        const WRITABLE = 1 << 1;
        const USER = 1 << 2;
        const WRITE_THROUGH = 1 << 3;
        const NO_CACHE = 1 << 4;
        const ACCESSED = 1 << 5;
        const DIRTY = 1 << 6;
        const HUGE = 1 << 7;
        const GLOBAL = 1 << 8;
        const SW0 = 1 << 9;
        const SW1 = 1 << 10;
        const SW2 = 1 << 11;
        const NO_EXECUTE = 1 << 63;
    }
}

/// Bits 12..52 of an entry: the physical address of the next table or page.
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Entries per table at every level.
const ENTRIES: u64 = 512;

/// The `[pml4, pdpt, pd, pt]` indices that translate `va`, each in `0..512`.
pub const fn table_indices(va: u64) -> [usize; 4] {
    [
        ((va >> 39) % ENTRIES) as usize,
        ((va >> 30) % ENTRIES) as usize,
        ((va >> 21) % ENTRIES) as usize,
        ((va >> 12) % ENTRIES) as usize,
    ]
}

/// Whether bits 48..64 all copy bit 47, as the CPU demands of every address.
pub const fn is_canonical(va: u64) -> bool {
    sign_extend_48(va) == va
}

/// Extends bit 47 into bits 48..64.
const fn sign_extend_48(va: u64) -> u64 {
    (((va << 16) as i64) >> 16) as u64
}

/// The virtual address whose table indices are `idx` (page offset zero),
/// sign-extended so that it is canonical. Indices are taken modulo 512.
pub const fn va_from_indices(idx: [usize; 4]) -> u64 {
    let raw = ((idx[0] as u64 % ENTRIES) << 39)
        | ((idx[1] as u64 % ENTRIES) << 30)
        | ((idx[2] as u64 % ENTRIES) << 21)
        | ((idx[3] as u64 % ENTRIES) << 12);
    sign_extend_48(raw)
}

/// `x` rounded down to a page boundary.
pub const fn page_align_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

/// `x` rounded up to a page boundary, or `None` if that passes `u64::MAX`.
pub const fn page_align_up(x: u64) -> Option<u64> {
    match x.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(page_align_down(v)),
        None => None,
    }
}

/// Whether `x` is a multiple of the page size.
pub const fn is_page_aligned(x: u64) -> bool {
    x.is_multiple_of(PAGE_SIZE)
}

/// True iff `len > 0`, `start + len` does not overflow, and
/// `[start, start + len)` lies inside `[USER_MIN, USER_END)`.
pub const fn is_user_range(start: u64, len: u64) -> bool {
    if len == 0 || start < USER_MIN {
        return false;
    }
    match start.checked_add(len) {
        Some(end) => end <= USER_END,
        None => false,
    }
}

/// A page-table entry pointing at `phys` with `flags`. Bits of `phys`
/// outside [`PTE_ADDR_MASK`] are dropped so they cannot forge flags.
pub const fn make_pte(phys: u64, flags: PteFlags) -> u64 {
    (phys & PTE_ADDR_MASK) | flags.bits()
}

/// The physical address an entry points at.
pub const fn pte_addr(pte: u64) -> u64 {
    pte & PTE_ADDR_MASK
}

/// The known flags of an entry; unknown bits (protection keys, ...) dropped.
pub const fn pte_flags(pte: u64) -> PteFlags {
    PteFlags::from_bits_truncate(pte & !PTE_ADDR_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_base_indices() {
        assert_eq!(table_indices(0xffff_ffff_8000_0000), [511, 510, 0, 0]);
        assert_eq!(va_from_indices([511, 510, 0, 0]), 0xffff_ffff_8000_0000);
        assert_eq!(table_indices(0), [0, 0, 0, 0]);
        assert_eq!(table_indices(0x0000_7fff_ffff_f000), [255, 511, 511, 511]);
        assert_eq!(va_from_indices([256, 0, 0, 0]), 0xffff_8000_0000_0000);
        assert_eq!(
            va_from_indices([1, 2, 3, 4]),
            (1 << 39) | (2 << 30) | (3 << 21) | (4 << 12)
        );
    }

    #[test]
    fn indices_round_trip() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let va = sign_extend_48(page_align_down(x));
            let idx = table_indices(va);
            assert!(idx.iter().all(|&i| i < 512));
            assert_eq!(va_from_indices(idx), va);
            assert!(is_canonical(va_from_indices(idx)));
        }
    }

    #[test]
    fn canonical_edges() {
        assert!(is_canonical(0));
        assert!(is_canonical(0x0000_7fff_ffff_ffff));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert!(!is_canonical(0xffff_7fff_ffff_ffff));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(is_canonical(u64::MAX));
        assert!(!is_canonical(0x0001_0000_0000_0000));
    }

    #[test]
    fn alignment() {
        assert_eq!(page_align_down(0x1fff), 0x1000);
        assert_eq!(page_align_down(0x2000), 0x2000);
        assert_eq!(page_align_up(0x1001), Some(0x2000));
        assert_eq!(page_align_up(0x1000), Some(0x1000));
        assert_eq!(page_align_up(0), Some(0));
        assert_eq!(page_align_up(u64::MAX - 4095), Some(u64::MAX - 4095));
        assert_eq!(page_align_up(u64::MAX - 4094), None);
        assert_eq!(page_align_up(u64::MAX), None);
        assert!(is_page_aligned(0));
        assert!(is_page_aligned(0x3000));
        assert!(!is_page_aligned(0x3001));
    }

    #[test]
    fn user_range_edges() {
        assert!(is_user_range(USER_MIN, 1));
        assert!(!is_user_range(USER_MIN - 1, 1));
        assert!(!is_user_range(USER_MIN, 0));
        assert!(is_user_range(USER_END - 1, 1));
        assert!(!is_user_range(USER_END - 1, 2));
        assert!(!is_user_range(USER_END, 1));
        assert!(is_user_range(USER_MIN, USER_END - USER_MIN));
        assert!(!is_user_range(USER_MIN, USER_END - USER_MIN + 1));
        assert!(!is_user_range(USER_MIN, u64::MAX));
        assert!(!is_user_range(u64::MAX, 1));
        assert!(!is_user_range(0, 4096));
        assert!(!is_user_range(0xffff_8000_0000_0000, 4096));
    }

    #[test]
    fn pte_encoding() {
        let f = PteFlags::PRESENT | PteFlags::WRITABLE | PteFlags::USER | PteFlags::NO_EXECUTE;
        let pte = make_pte(0x1234_5000, f);
        assert_eq!(pte_addr(pte), 0x1234_5000);
        assert_eq!(pte_flags(pte), f);
        // Stray low and high bits of the address must not leak into flags.
        let pte = make_pte(0xfff0_0000_1234_5fff, PteFlags::PRESENT);
        assert_eq!(pte_flags(pte), PteFlags::PRESENT);
        assert_eq!(pte_addr(pte), 0x0000_0000_1234_5000);
        // Protection-key bits (59..63) are not known flags.
        assert_eq!(pte_flags(0x7800_0000_0000_0001), PteFlags::PRESENT);
        assert_eq!(pte_addr(PTE_ADDR_MASK | 0xfff), PTE_ADDR_MASK);
    }
}
