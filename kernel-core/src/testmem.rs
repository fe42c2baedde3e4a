//! Fake physical memory for host tests of code that reads boot-loader and
//! firmware tables through [`PhysMemory`].
//!
//! Rules: test-only; reads outside the buffer fail like unmapped memory.

use crate::bootinfo::PhysMemory;

/// Physical memory `[base, base + bytes.len())`; everything else unreadable.
pub struct FakeMem {
    pub base: u64,
    pub bytes: Vec<u8>,
}

impl FakeMem {
    pub fn new(base: u64, len: usize) -> Self {
        FakeMem {
            base,
            bytes: vec![0; len],
        }
    }

    pub fn put(&mut self, addr: u64, data: &[u8]) {
        let at = (addr - self.base) as usize;
        self.bytes[at..at + data.len()].copy_from_slice(data);
    }

    pub fn put_u32(&mut self, addr: u64, v: u32) {
        self.put(addr, &v.to_le_bytes());
    }
}

impl PhysMemory for FakeMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(off) = addr.checked_sub(self.base) else {
            return false;
        };
        let Ok(off) = usize::try_from(off) else {
            return false;
        };
        match off
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(off..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}
