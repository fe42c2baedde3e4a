//! The bus: handles, rights and device descriptions.
//!
//! A handle is a non-negative integer naming a slot of the caller's bus:
//! bits 0..8 are the slot, bits 8..48 a generation that changes every time
//! the slot is reused, so a stale or forged handle is refused with
//! `BadHandle` instead of reaching another device. A slot that has been
//! through all 2^40 generations is never used again, so no handle value is
//! ever issued twice by one bus. Rights live on the handle and can only
//! shrink (`restrict`).

/// Slots on one process's bus.
pub const BUS_SLOTS: u32 = 256;
/// Bits of a handle that name its slot.
pub const HANDLE_SLOT_BITS: u32 = 8;
/// Bits of a handle above the slot: its generation.
pub const HANDLE_GENERATION_BITS: u32 = 40;

/// `port_in`: read a port.
pub const RIGHT_READ: u32 = 1 << 0;
/// `port_out`: write a port.
pub const RIGHT_WRITE: u32 = 1 << 1;
/// `export`/`unexport`: let the device reach the caller's pages.
pub const RIGHT_DMA: u32 = 1 << 2;
/// `irq_map`/`irq_ack`: take the device's interrupts.
pub const RIGHT_IRQ: u32 = 1 << 3;
/// `iomap`/`iounmap`: map the device's memory.
pub const RIGHT_MAP: u32 = 1 << 4;
/// The handle is inherited by `fork`.
pub const RIGHT_CLONE: u32 = 1 << 5;
/// Registry: attach devices by name.
pub const RIGHT_LOOKUP: u32 = 1 << 6;
/// Registry: create user devices (which registers their names).
pub const RIGHT_REGISTER: u32 = 1 << 7;
/// A served user device (the server's side): poll and answer clients.
pub const RIGHT_SERVE: u32 = 1 << 8;
/// proc: end processes (`PROC_PORT_KILL`), within the caller's own tree.
pub const RIGHT_KILL: u32 = 1 << 9;
/// Registry: attach the system's privileged devices — platform, mempool
/// and every hardware device — which drivers and the memory server need
/// and nothing else should reach (init gives it only to modules the
/// manifest marks `system`).
pub const RIGHT_SYSTEM: u32 = 1 << 10;
/// Every right.
pub const RIGHTS_ALL: u32 = (1 << 11) - 1;

/// `attach` flag: drop this handle on `exec`.
pub const ATTACH_CLOSE_ON_EXEC: u32 = 0x8000_0000;

/// The handle every process is started with: its registry handle, if its
/// parent gave it one (init gets one with every right).
pub const REGISTRY_HANDLE_SLOT: u32 = 0;

/// Longest device name.
pub const DEVICE_NAME_MAX: usize = 32;

/// The most names a process's name scope (`restrict_names`) can list.
pub const NAME_SCOPE_MAX: usize = 16;

/// The longest list `restrict_names` accepts, in bytes: every name at its
/// longest with a separator after it.
pub const NAME_LIST_MAX: usize = NAME_SCOPE_MAX * (DEVICE_NAME_MAX + 1);

/// [`DeviceInfo::kind`]: a device the kernel implements.
pub const DEVICE_KIND_KERNEL: u32 = 0;
/// [`DeviceInfo::kind`]: a slice of the machine.
pub const DEVICE_KIND_HARDWARE: u32 = 1;
/// [`DeviceInfo::kind`]: a device served by a process.
pub const DEVICE_KIND_USER: u32 = 2;

/// What `info(h)` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The name (not NUL-terminated when it is 32 bytes long).
    pub name: [u8; DEVICE_NAME_MAX],
    /// `DEVICE_KIND_*`.
    pub kind: u32,
    /// The rights of this handle.
    pub rights: u32,
    /// Interrupt lines the device has.
    pub irq_lines: u32,
    /// Bytes of I/O space a user-device client can read.
    pub iospace_size: u32,
    /// The serving process (user devices), else 0.
    pub server_pid: u32,
    /// Clients attached now.
    pub clients: u32,
    /// This attachment's client id (user devices), else 0.
    pub client: u64,
}

impl Default for DeviceInfo {
    fn default() -> Self {
        DeviceInfo {
            name: [0; DEVICE_NAME_MAX],
            kind: 0,
            rights: 0,
            irq_lines: 0,
            iospace_size: 0,
            server_pid: 0,
            clients: 0,
            client: 0,
        }
    }
}
