//! Bounded waits: the one place that decides how the driver waits for the
//! device — by its interrupt, or by polling the used ring (deadlines are
//! `libvirtio::Deadline`, on the kernel's tick clock).
//!
//! Rules: nothing here sleeps without a way out. Polling yields between
//! looks (so clients and other servers of the same priority run); an
//! interrupt wait is only used together with a watchdog alarm from the
//! timer device, which fires by the oldest request's deadline, so a device
//! that never completes and never interrupts still wakes the driver.

use libmh::process;
use libmh::timer::Timer;
pub use libvirtio::Deadline;

/// Vectors the driver's waits use.
pub const V_DEVICE: u32 = 2;
pub const V_WATCHDOG: u32 = 3;
pub const V_TIMER_REPLY: u32 = 4;
/// The function's DMA-fault line (`HW_LINE_DMA_FAULT`).
pub const V_FAULT: u32 = 5;

/// How completions are taken.
pub enum Mode {
    /// By looking at the used ring, yielding in between.
    Poll,
    /// By the queue's MSI-X line (delivered as `V_DEVICE`), with the timer
    /// for the watchdog; `armed` is the deadline its alarm is set for.
    Interrupt {
        timer: Timer,
        armed: Option<Deadline>,
    },
}

impl Mode {
    /// The vectors the server loop should also wait on.
    pub fn vectors(&self) -> u64 {
        match self {
            Mode::Poll => 0,
            Mode::Interrupt { .. } => 1 << V_DEVICE | 1 << V_WATCHDOG,
        }
    }

    pub fn interrupts(&self) -> bool {
        matches!(self, Mode::Interrupt { .. })
    }

    /// Lets time pass while requests are in flight whose oldest deadline
    /// is `oldest`: polling yields once; interrupt mode makes sure the
    /// watchdog fires by `oldest` and, if `block`, sleeps until the
    /// device's line or the watchdog. The caller looks at the used ring
    /// and the deadlines afterwards, whatever woke it. A timer that fails
    /// (it went away) turns the driver to polling for good.
    pub fn pause(&mut self, oldest: Deadline, block: bool) {
        let Mode::Interrupt { timer, armed } = self else {
            process::yield_now();
            return;
        };
        let mut ok = true;
        if armed.is_none_or(|a| a > oldest) {
            // A wake-up a little after the deadline; an alarm set earlier
            // that fires later only costs a wake-up.
            let ns = (oldest.ms_left() + 10) * 1_000_000;
            ok = timer.alarm_once(timer.now_ns().saturating_add(ns)).is_ok();
            *armed = Some(oldest);
        }
        if ok && block {
            match process::irq_wait(1 << V_DEVICE | 1 << V_WATCHDOG) {
                Ok(got) if got & 1 << V_WATCHDOG != 0 => *armed = None,
                Ok(_) => {}
                Err(_) => ok = false,
            }
        }
        if !ok {
            libmh::println!("virtio-blk: the watchdog timer failed; polling from now on");
            *self = Mode::Poll;
        }
    }

    /// The watchdog fired (its vector was taken): a new one is needed for
    /// whatever is still in flight.
    pub fn watchdog_fired(&mut self) {
        if let Mode::Interrupt { armed, .. } = self {
            *armed = None;
        }
    }
}
