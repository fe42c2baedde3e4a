//! The program's arguments: the words of its command line after the
//! program name, as the kernel (or exec) passed them.

/// The argument string, split on whitespace by [`Args::iter`].
#[derive(Clone, Copy)]
pub struct Args(&'static str);

impl Args {
    /// # Safety
    /// `ptr..ptr+len` must stay readable for the life of the program.
    pub unsafe fn from_raw(ptr: *const u8, len: usize) -> Args {
        if ptr.is_null() || len == 0 {
            return Args("");
        }
        // SAFETY: the caller vouches for the range.
        let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
        Args(core::str::from_utf8(bytes).unwrap_or(""))
    }

    /// The whole argument string.
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// The words.
    pub fn iter(&self) -> core::str::SplitWhitespace<'static> {
        self.0.split_whitespace()
    }

    /// The `n`th word.
    pub fn get(&self, n: usize) -> Option<&'static str> {
        self.iter().nth(n)
    }
}
