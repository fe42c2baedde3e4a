//! A hasher for small integer ids (process ids, handles) in `hashbrown`
//! maps.
//!
//! Rules: it must be constructible in a `const` (the kernel's tables are
//! statics) and cheap (it sits on the system-call path); ids are chosen by
//! the kernel, not by users, so hash flooding is not a concern here.

use core::hash::{BuildHasherDefault, Hasher};

/// Multiplicative (Fibonacci) hashing of the written integers.
#[derive(Clone, Copy, Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// The `BuildHasher` to give `hashbrown::HashMap::with_hasher`.
pub type IdHashBuilder = BuildHasherDefault<IdHasher>;

/// A const-constructible builder.
pub const fn id_hash_builder() -> IdHashBuilder {
    BuildHasherDefault::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::BuildHasher;

    fn hash(n: u32) -> u64 {
        id_hash_builder().hash_one(n)
    }

    #[test]
    fn sequential_ids_spread_over_high_bits() {
        // hashbrown uses the top 7 bits as a tag and the low bits as the
        // bucket: both must vary for consecutive ids.
        let mut tags = std::collections::HashSet::new();
        let mut buckets = std::collections::HashSet::new();
        for id in 0..1024u32 {
            let h = hash(id);
            tags.insert(h >> 57);
            buckets.insert(h & 1023);
        }
        assert!(tags.len() > 64, "tags {}", tags.len());
        assert!(buckets.len() > 600, "buckets {}", buckets.len());
    }

    #[test]
    fn deterministic() {
        assert_eq!(hash(7), hash(7));
        assert_ne!(hash(7), hash(8));
    }
}
