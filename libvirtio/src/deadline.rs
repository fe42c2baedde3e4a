//! Deadlines on the kernel's preemption ticks: the one clock every process
//! has, through `sys_info`, without the timer server.
//!
//! Rules: a deadline is at least two ticks away (the current tick may be
//! about to end). `sys_info` fails only for a bad output pointer, which
//! this module never passes; the fallback of (0 ticks, 100 Hz) is there so
//! that nothing here can panic.

use libmh::process;

/// A point on the kernel's tick clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(u64);

/// (ticks now, ticks per second); (0, 100) if the kernel will not say.
fn ticks() -> (u64, u64) {
    process::sys_info().map_or((0, 100), |i| (i.ticks, i.tick_hz.max(1)))
}

impl Deadline {
    pub fn after_ms(ms: u64) -> Deadline {
        let (now, hz) = ticks();
        Deadline(now + (ms * hz).div_ceil(1000).max(2))
    }

    pub fn passed(self) -> bool {
        ticks().0 >= self.0
    }

    /// Milliseconds from now until the deadline (0 if passed).
    pub fn ms_left(self) -> u64 {
        let (now, hz) = ticks();
        self.0.saturating_sub(now) * 1000 / hz
    }
}
