//! A minimal test runner: each test is a function returning `Result<(),
//! Fail>`; the suite prints `test <name> ... ok` or `... FAILED: <why>` and
//! a final `suite done: total=N ok=K failed=M` line that the host harness
//! reads (see tools/xtask/src/harness.rs).

use core::fmt::{self, Write};
use libmh::println;

/// Why a test failed: a short formatted message.
pub struct Fail {
    buf: [u8; 200],
    len: usize,
}

impl Fail {
    pub fn new(args: fmt::Arguments<'_>) -> Fail {
        let mut f = Fail {
            buf: [0; 200],
            len: 0,
        };
        let _ = f.write_fmt(args);
        f
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("(unprintable reason)")
    }
}

impl Write for Fail {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() && b != b'\n' {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

pub type TestResult = Result<(), Fail>;

/// Fails the test with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::suite::Fail::new(format_args!($($arg)*)));
        }
    };
}

/// Fails unless `$got == $want`, showing both.
#[macro_export]
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($why:tt)+) => {{
        let got = $got;
        let want = $want;
        if got != want {
            return Err($crate::suite::Fail::new(format_args!(
                "{}: {} = {:?}, expected {:?}",
                format_args!($($why)+),
                stringify!($got),
                got,
                want
            )));
        }
    }};
    ($got:expr, $want:expr) => {{
        let got = $got;
        let want = $want;
        if got != want {
            return Err($crate::suite::Fail::new(format_args!(
                "{} = {:?}, expected {:?}",
                stringify!($got),
                got,
                want
            )));
        }
    }};
}

pub struct Suite {
    total: u32,
    ok: u32,
}

impl Suite {
    pub fn new() -> Suite {
        Suite { total: 0, ok: 0 }
    }

    pub fn run(&mut self, name: &str, test: impl FnOnce() -> TestResult) {
        self.total += 1;
        match test() {
            Ok(()) => {
                self.ok += 1;
                println!("test {name} ... ok");
            }
            Err(f) => println!("test {name} ... FAILED: {}", f.as_str()),
        }
    }

    /// Prints the summary; the exit code is 0 iff every test passed.
    pub fn finish(&self) -> i32 {
        let failed = self.total - self.ok;
        println!(
            "suite done: total={} ok={} failed={}",
            self.total, self.ok, failed
        );
        if failed == 0 { 0 } else { 1 }
    }
}
