//! Little-endian field readers over byte buffers, for parsers of tables
//! that come from outside the kernel (boot loader, firmware).
//!
//! Rules: never panic and never read outside the buffer: a field that does
//! not fit reads as 0. Callers check lengths before trusting a field; these
//! only make a missed check harmless.

/// The `u16` at byte offset `at`, or 0 if it does not fit.
pub fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut v = [0; 2];
    if let Some(s) = at.checked_add(2).and_then(|end| b.get(at..end)) {
        v.copy_from_slice(s);
    }
    u16::from_le_bytes(v)
}

/// The `u32` at byte offset `at`, or 0 if it does not fit.
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0; 4];
    if let Some(s) = at.checked_add(4).and_then(|end| b.get(at..end)) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

/// The `u64` at byte offset `at`, or 0 if it does not fit.
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0; 8];
    if let Some(s) = at.checked_add(8).and_then(|end| b.get(at..end)) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_out_of_range() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(u16_at(&b, 0), 0x0201);
        assert_eq!(u32_at(&b, 1), 0x0504_0302);
        assert_eq!(u64_at(&b, 1), 0x0908_0706_0504_0302);
        assert_eq!(u64_at(&b, 2), 0);
        assert_eq!(u32_at(&b, usize::MAX), 0);
    }
}
