//! The kernel log ring: a fixed buffer holding the most recent `N` bytes the
//! kernel printed, later exposed to user space as the klog device.
//!
//! Rules: writing never fails and never blocks; when the ring is full the
//! oldest bytes are overwritten. Readers name bytes by their absolute
//! position in the stream of everything ever written, so a reader that fell
//! behind learns exactly how many bytes it lost instead of reading garbage.

/// A ring holding the last `N` bytes of the kernel log.
pub struct LogRing<const N: usize> {
    buf: [u8; N],
    /// Total bytes ever written; byte `p` of the stream lives at `buf[p % N]`.
    written: u64,
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LogRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        LogRing {
            buf: [0; N],
            written: 0,
        }
    }

    /// The ring size as a stream length.
    const CAP: u64 = N as u64;

    /// Appends `bytes`, overwriting the oldest held bytes if needed.
    pub fn write(&mut self, bytes: &[u8]) {
        let total = bytes.len() as u64;
        if N == 0 {
            self.written = self.written.saturating_add(total);
            return;
        }
        // Only the last N bytes can survive, so skip the rest outright.
        let keep = bytes.len().min(N);
        let skipped = total - keep as u64;
        let mut pos = self.written.saturating_add(skipped);
        let mut rest = &bytes[bytes.len() - keep..];
        while !rest.is_empty() {
            let at = (pos % Self::CAP) as usize;
            let n = rest.len().min(N - at);
            let (chunk, tail) = rest.split_at(n);
            self.buf[at..at + n].copy_from_slice(chunk);
            rest = tail;
            pos = pos.saturating_add(n as u64);
        }
        self.written = self.written.saturating_add(total);
    }

    /// Total bytes ever written (the position the next byte will get).
    pub fn total_written(&self) -> u64 {
        self.written
    }

    /// Copies bytes starting at absolute position `pos` into `out`. If `pos`
    /// is older than the oldest byte the ring still holds, copying starts at
    /// that oldest byte. Returns `(copied, next_pos, lost)` where `lost` is
    /// the number of bytes skipped because they were overwritten. Reading at
    /// or past the end copies nothing.
    pub fn read_from(&self, pos: u64, out: &mut [u8]) -> (usize, u64, u64) {
        let oldest = self.written.saturating_sub(Self::CAP);
        let start = pos.max(oldest);
        let lost = start - pos;
        if start >= self.written || N == 0 {
            return (0, start, lost);
        }
        let avail = self.written - start;
        let count = usize::try_from(avail).unwrap_or(usize::MAX).min(out.len());
        let mut done = 0;
        while done < count {
            let at = ((start + done as u64) % Self::CAP) as usize;
            let n = (count - done).min(N - at);
            out[done..done + n].copy_from_slice(&self.buf[at..at + n]);
            done += n;
        }
        (count, start + count as u64, lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all<const N: usize>(r: &LogRing<N>, pos: u64) -> (Vec<u8>, u64, u64) {
        let mut out = vec![0; 1000];
        let (n, next, lost) = r.read_from(pos, &mut out);
        out.truncate(n);
        (out, next, lost)
    }

    #[test]
    fn simple_write_read() {
        let mut r = LogRing::<16>::new();
        assert_eq!(read_all(&r, 0), (vec![], 0, 0));
        r.write(b"hello");
        assert_eq!(r.total_written(), 5);
        assert_eq!(read_all(&r, 0), (b"hello".to_vec(), 5, 0));
        assert_eq!(read_all(&r, 2), (b"llo".to_vec(), 5, 0));
        // At or past the end nothing is copied and nothing is lost.
        assert_eq!(read_all(&r, 5), (vec![], 5, 0));
        assert_eq!(read_all(&r, 50), (vec![], 50, 0));
    }

    #[test]
    fn wraparound_and_lost() {
        let mut r = LogRing::<8>::new();
        r.write(b"abcdef");
        r.write(b"ghijk");
        assert_eq!(r.total_written(), 11);
        assert_eq!(read_all(&r, 0), (b"defghijk".to_vec(), 11, 3));
        assert_eq!(read_all(&r, 3), (b"defghijk".to_vec(), 11, 0));
        assert_eq!(read_all(&r, 9), (b"jk".to_vec(), 11, 0));
        // A small output buffer reads in pieces across the wrap.
        let mut out = [0u8; 3];
        assert_eq!(r.read_from(1, &mut out), (3, 6, 2));
        assert_eq!(&out, b"def");
        assert_eq!(r.read_from(6, &mut out), (3, 9, 0));
        assert_eq!(&out, b"ghi");
    }

    #[test]
    fn write_larger_than_ring() {
        let mut r = LogRing::<4>::new();
        r.write(b"x");
        r.write(b"0123456789");
        assert_eq!(r.total_written(), 11);
        assert_eq!(read_all(&r, 0), (b"6789".to_vec(), 11, 7));
        r.write(b"ab");
        assert_eq!(read_all(&r, 0), (b"89ab".to_vec(), 13, 9));
    }

    #[test]
    fn zero_sized_ring() {
        let mut r = LogRing::<0>::new();
        r.write(b"abc");
        assert_eq!(r.total_written(), 3);
        assert_eq!(read_all(&r, 0), (vec![], 3, 3));
    }

    #[test]
    fn randomized_against_model() {
        let mut r = LogRing::<37>::new();
        let mut model: Vec<u8> = Vec::new();
        let mut x: u64 = 88172645463325252;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..5000u64 {
            let len = (next() % 60) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (step as usize * 7 + i) as u8).collect();
            r.write(&bytes);
            model.extend_from_slice(&bytes);
            let total = model.len() as u64;
            assert_eq!(r.total_written(), total);
            let pos = next() % (total + 10);
            let mut out = vec![0u8; (next() % 50) as usize];
            let (n, np, lost) = r.read_from(pos, &mut out);
            let oldest = total.saturating_sub(37);
            let start = pos.max(oldest);
            assert_eq!(lost, start - pos);
            let want = (total.saturating_sub(start) as usize).min(out.len());
            assert_eq!(n, want);
            assert_eq!(np, start + n as u64);
            if n > 0 {
                assert_eq!(&out[..n], &model[start as usize..start as usize + n]);
            }
        }
    }
}
