//! The `timer` device class: the user device served by `servers/timer`
//! (docs/devices/timer.md). It offers monotonic time read from the TSC
//! without a system call, and per-client one-shot and periodic alarms
//! delivered as an IRQ line.
//!
//! Time is nanoseconds on one monotonic clock derived from the TSC:
//! `ns = ((tsc - TSC_EPOCH) * MULT) >> TIMER_MULT_SHIFT`, computed in 128
//! bits, with `TSC_EPOCH` and `MULT` read once from the client's I/O space
//! (they stay constant for the life of the server). Deadlines and periods
//! are on that clock.
//!
//! Protocol: every `port_out` (size 8) is one request and gets exactly one
//! reply: the server writes `TIMER_IO_STATUS` (0, or an `Error` code) and
//! `TIMER_IO_VALUE` (the result) as one 8-byte word and then raises
//! `TIMER_IRQ_REPLY`, so a client uses `port_out_wait` on the vector it
//! mapped that line to and reads both with one 8-byte `port_in` at 0.
//! (A status is not a negative word because `port_in` cannot return a
//! value of 2^63 or more.) Alarms raise `TIMER_IRQ_ALARM`; the
//! per-alarm counters `TIMER_IO_FIRED + 8 * slot` say which alarm fired
//! and how often (the line is only a wake-up hint).
//!
//! Rules: the numbers are stable; an alarm's counter is `k` only once the
//! clock has reached its `k`-th deadline (`first + (k - 1) * period`), so
//! a client never sees an alarm early.

/// out: does nothing but reply 0. Requests are answered in order, so
/// after its reply the clock fields of the I/O space are written.
pub const TIMER_PORT_SYNC: u32 = 0;
/// out: the period in ns of the next alarm armed by this client (0, the
/// default, makes it one-shot). Replies 0; `InvalidArgument` for a
/// period below `TIMER_PERIOD_MIN`.
pub const TIMER_PORT_PERIOD: u32 = 1;
/// out: arms an alarm whose (first) deadline is the value, in ns on the
/// clock, with the period last written to `TIMER_PORT_PERIOD` (which is
/// then reset to 0). Replies the alarm's slot (0..`TIMER_ALARMS_MAX`) and
/// zeroes its counter; `InvalidArgument` if the deadline is not after the
/// clock's current value, `LimitReached` if the client has
/// `TIMER_ALARMS_MAX` alarms armed.
pub const TIMER_PORT_ARM: u32 = 2;
/// out: disarms the alarm in slot `value`. Replies 0; `NotFound` if that
/// slot is not armed. Its counter keeps its last value.
pub const TIMER_PORT_CANCEL: u32 = 3;

/// I/O space (u32): the status of the client's last request: 0, or the
/// code of the `Error` it failed with.
pub const TIMER_IO_STATUS: u32 = 0;
/// I/O space (u32): the result of the client's last request (the slot
/// for `TIMER_PORT_ARM`, else 0).
pub const TIMER_IO_VALUE: u32 = 4;
/// I/O space (u64): the TSC value at which the clock reads 0.
pub const TIMER_IO_TSC_EPOCH: u32 = 8;
/// I/O space (u64): nanoseconds per TSC tick, times 2^`TIMER_MULT_SHIFT`.
pub const TIMER_IO_MULT: u32 = 16;
/// I/O space (u64): the TSC frequency in Hz, as the server measured it.
pub const TIMER_IO_TSC_HZ: u32 = 24;
/// I/O space (u64 each): `TIMER_IO_FIRED + 8 * slot` counts the deadlines
/// of the alarm in `slot` that have passed since it was armed.
pub const TIMER_IO_FIRED: u32 = 32;
/// Bytes of I/O space per client.
pub const TIMER_IOSPACE_SIZE: u32 = TIMER_IO_FIRED + 8 * TIMER_ALARMS_MAX;

/// The shift of the clock's fixed-point multiplier.
pub const TIMER_MULT_SHIFT: u32 = 32;
/// Alarms one client may have armed at once.
pub const TIMER_ALARMS_MAX: u32 = 8;
/// Clients the timer server keeps alarms for at once; a client beyond
/// them is not served (its requests end `NotFound`).
pub const TIMER_CLIENTS_MAX: u32 = 1024;
/// Clients one process may have served at once (more are not served), so
/// that no process can fill the table for everyone.
pub const TIMER_CLIENTS_PER_PROCESS: u32 = 32;
/// The shortest period, in ns, a periodic alarm may have (100 µs).
pub const TIMER_PERIOD_MIN: u64 = 100_000;

/// IRQ line raised after each reply.
pub const TIMER_IRQ_REPLY: u32 = 0;
/// IRQ line raised when an alarm of the client fires.
pub const TIMER_IRQ_ALARM: u32 = 1;
/// IRQ lines the device has.
pub const TIMER_IRQ_LINES: u32 = 2;

/// Nanoseconds on the clock for a TSC reading, given the published epoch
/// and multiplier (0 before the epoch).
pub const fn timer_tsc_to_ns(tsc: u64, tsc_epoch: u64, mult: u64) -> u64 {
    let delta = tsc.saturating_sub(tsc_epoch) as u128;
    let ns = (delta * mult as u128) >> TIMER_MULT_SHIFT;
    if ns > u64::MAX as u128 {
        u64::MAX
    } else {
        ns as u64
    }
}

/// The reply word at `TIMER_IO_STATUS` (8 bytes) as a result.
pub const fn timer_decode_reply(word: u64) -> Result<u32, crate::Error> {
    let status = word as u32;
    if status == 0 {
        Ok((word >> 32) as u32)
    } else {
        match crate::Error::from_code(status) {
            Some(e) => Err(e),
            None => Err(crate::Error::InvalidArgument),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_is_exact_for_round_rates() {
        // A 1 GHz TSC: one ns per tick.
        let mult = 1u64 << TIMER_MULT_SHIFT;
        assert_eq!(timer_tsc_to_ns(1_000_000, 0, mult), 1_000_000);
        assert_eq!(timer_tsc_to_ns(1_000_500, 500, mult), 1_000_000);
        assert_eq!(timer_tsc_to_ns(100, 500, mult), 0);
        // A 2 GHz TSC: half a ns per tick; no overflow at the top.
        assert_eq!(timer_tsc_to_ns(4_000, 0, mult / 2), 2_000);
        assert_eq!(timer_tsc_to_ns(u64::MAX, 0, mult / 2), u64::MAX / 2);
        assert_eq!(timer_tsc_to_ns(u64::MAX, 0, u64::MAX), u64::MAX);
    }

    #[test]
    fn replies_decode() {
        use crate::Error;
        assert_eq!(timer_decode_reply(0), Ok(0));
        assert_eq!(timer_decode_reply(7 << 32), Ok(7));
        assert_eq!(
            timer_decode_reply(Error::LimitReached.code() as u64),
            Err(Error::LimitReached)
        );
        assert_eq!(timer_decode_reply(9999), Err(Error::InvalidArgument));
    }

    #[test]
    fn the_io_space_fits_a_user_device() {
        const { assert!(TIMER_IOSPACE_SIZE <= crate::userdev::IOSPACE_MAX) };
        const { assert!(TIMER_IRQ_LINES <= crate::userdev::USER_IRQ_LINES_MAX) };
        assert_eq!(TIMER_IOSPACE_SIZE, 96);
    }
}
