//! The measuring harness: timed batches of one operation, read with
//! `rdtsc`.
//!
//! Under QEMU `-icount shift=0,align=off,sleep=off` the guest TSC advances
//! by exactly one per guest instruction, so a TSC difference is an
//! instruction count (without `-icount` it is host time and means little).
//!
//! Rules: a figure is the minimum over [`REPS`] batches, because anything
//! that lands inside a batch (a timer tick, a preemption) only ever adds
//! instructions, so the smallest batch is the undisturbed one; from it the
//! same loop run with an empty operation is subtracted, so a figure counts
//! the operation, not the loop. Every batch goes through the one
//! non-inlined [`batch`] with the operation behind `dyn`, so the loop's
//! machine code is identical for the real and the empty operation and the
//! subtraction is exact. Operations report errors; nothing here panics.

use abi::Error;
use core::arch::x86_64::_rdtsc;
use core::hint::black_box;

/// Batches per figure (the minimum is kept).
pub const REPS: u64 = 5;

/// One benchmark operation: called with the iteration number.
pub type Op<'a> = &'a mut dyn FnMut(u64) -> Result<(), Fail>;

/// Why a benchmark could not produce its figure.
#[derive(Clone, Copy, Debug)]
pub enum Fail {
    /// A system call failed.
    Sys(Error),
    /// A result was not what the benchmark relies on: what, and the value.
    Check(&'static str, i64),
    /// Setting a benchmark up failed: what, and why.
    Setup(&'static str, Error),
    /// Setting a benchmark up failed at its `n`th step: what, `n`, why.
    At(&'static str, u64, Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Sys(e)
    }
}

impl core::fmt::Display for Fail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Fail::Sys(e) => write!(f, "system call failed: {e}"),
            Fail::Check(what, value) => write!(f, "{what} (got {value})"),
            Fail::Setup(what, e) => write!(f, "{what}: {e}"),
            Fail::At(what, n, e) => write!(f, "{what} {n} failed: {e}"),
        }
    }
}

/// The guest TSC: under `-icount shift=0`, instructions since power-on.
/// No `lfence`: TCG executes in order, so nothing can pass the read.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: rdtsc only reads a counter; the kernel leaves CR4.TSD clear,
    // so it is allowed in user mode.
    unsafe { _rdtsc() }
}

/// TSC ticks for `op(0)`, …, `op(n - 1)`.
#[inline(never)]
pub fn batch(n: u64, op: Op<'_>) -> Result<u64, Fail> {
    let start = now();
    for i in 0..n {
        op(black_box(i))?;
    }
    Ok(now().wrapping_sub(start))
}

/// The smallest of [`REPS`] batches of `n` empty operations: the loop's
/// own cost, subtracted from every figure.
pub fn empty(n: u64) -> u64 {
    let mut best = u64::MAX;
    for _ in 0..REPS {
        if let Ok(t) = batch(n, &mut |_| Ok(())) {
            best = best.min(t);
        }
    }
    best
}

/// Instructions per operation from the best batch of `n` and the empty
/// loop's cost, rounded to the nearest integer.
pub fn per_op(best: u64, empty: u64, n: u64) -> u64 {
    (best.saturating_sub(empty) + n / 2) / n.max(1)
}

/// The usual benchmark: `warm` unmeasured runs of `op`, then the best of
/// [`REPS`] batches of `n`, per operation.
pub fn run(n: u64, warm: u64, op: Op<'_>) -> Result<u64, Fail> {
    batch(warm, op)?;
    let mut best = u64::MAX;
    for _ in 0..REPS {
        best = best.min(batch(n, op)?);
    }
    Ok(per_op(best, empty(n), n))
}

/// The CPU's idle cycles so far (`SysInfo::idle_cycles`).
fn idle() -> Result<u64, Fail> {
    Ok(libmh::process::sys_info()?.idle_cycles)
}

/// `run` for operations that wait for a device: the CPU halts meanwhile
/// and, under `-icount`, the clock jumps ahead while it does, so each
/// batch counts its TSC ticks minus the kernel's idle cycles — the
/// instructions actually run, by every process and the kernel.
pub fn run_busy(n: u64, warm: u64, op: Op<'_>) -> Result<u64, Fail> {
    batch(warm, op)?;
    let mut best = u64::MAX;
    for _ in 0..REPS {
        let idle0 = idle()?;
        let t = batch(n, op)?;
        let idle1 = idle()?;
        best = best.min(t.saturating_sub(idle1.wrapping_sub(idle0)));
    }
    Ok(per_op(best, empty(n), n))
}
