//! How the kernel ends a QEMU run: a byte written to the `isa-debug-exit`
//! device. QEMU exits with status `(value << 1) | 1`.

/// The I/O port of QEMU's `isa-debug-exit` device (as xtask configures it).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Init exited with status 0: a clean power-off (QEMU status 33).
pub const EXIT_CLEAN: u8 = 0x10;
/// Init exited with a non-zero status or was killed (QEMU status 35).
pub const EXIT_INIT_FAILED: u8 = 0x11;
/// The kernel panicked or took a fault of its own (QEMU status 37).
pub const EXIT_KERNEL_PANIC: u8 = 0x12;

/// The QEMU process exit status for a byte written to the device.
pub const fn qemu_status(value: u8) -> i32 {
    ((value as i32) << 1) | 1
}
