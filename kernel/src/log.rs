//! The kernel log: every line the kernel or a `log_write` call produces
//! goes into a ring (read through the klog device) and, while the kernel owns the
//! UART, to the serial port.
//!
//! Rules: logging never allocates and never fails; a panic may log while
//! the log lock is held by the code that panicked, so the panic path uses
//! [`force_write`], which steals the lock.

use crate::arch::ordered::Ordered;
use crate::arch::serial::Serial;
use core::fmt::{self, Write};
use kernel_core::klog::LogRing;
use kernel_core::lockorder::Rank;

/// Size of the kernel log ring.
pub const LOG_RING_SIZE: usize = 64 * 1024;

pub struct Log {
    ring: LogRing<LOG_RING_SIZE>,
    serial: Serial,
}

static LOG: Ordered<Log> = Ordered::new(
    Rank::Log,
    Log {
        ring: LogRing::new(),
        serial: Serial::absent(),
    },
);

impl Write for Log {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

impl Log {
    fn write_bytes(&mut self, bytes: &[u8]) {
        self.ring.write(bytes);
        self.serial.write(bytes);
        // The scheduler raises klog's IRQ at the end of the entry (it
        // cannot be raised here: logging happens under any lock).
        crate::exit_work::announce(crate::exit_work::LOG_GREW);
    }
}

/// Brings up the serial port.
pub fn init() {
    LOG.lock().serial = Serial::init();
}

/// Stops writing to the serial port (a driver owns it now); the log keeps
/// filling its ring.
pub fn stop_serial() {
    LOG.lock().serial = Serial::absent();
}

/// Appends raw bytes (used by the `log_write` system call).
pub fn write_bytes(bytes: &[u8]) {
    LOG.lock().write_bytes(bytes);
}

/// Appends formatted text.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let _ = LOG.lock().write_fmt(args);
}

/// Takes the serial port back from its driver (the console server) for
/// the machine's last words: a panic report or the power-off message must
/// reach the wire even though no one will drain the ring any more.
pub fn reclaim_serial() {
    let mut log = LOG.lock();
    if log.serial.is_absent() {
        log.serial = Serial::init();
    }
}

/// Appends formatted text even if the lock is held (panic path only); the
/// serial port is reclaimed first.
pub fn force_write(args: fmt::Arguments<'_>) {
    crate::arch::ordered::panicking();
    if LOG.is_locked() {
        // SAFETY: only called on the way to halting the machine; the holder
        // of the lock will never run again.
        unsafe { LOG.force_unlock() };
    }
    reclaim_serial();
    write_fmt(args);
}

/// Copies log bytes from absolute position `pos` (see `LogRing::read_from`).
pub fn read_from(pos: u64, out: &mut [u8]) -> (usize, u64, u64) {
    LOG.lock().ring.read_from(pos, out)
}

/// Bytes ever written to the log.
pub fn total_written() -> u64 {
    LOG.lock().ring.total_written()
}

/// `println!` for the kernel.
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {
        $crate::log::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
