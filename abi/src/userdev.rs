//! User devices: the only IPC. A server creates a device
//! (`dev_create(&DeviceConfig)`) and answers requests (`dev_poll`); a
//! client attaches it by name and uses it like any device: `port_out`
//! queues a request, `port_in` reads the client's I/O space (which only the
//! server writes, so reading status costs no round trip), the server raises
//! the client's IRQ lines and moves data with `dev_dma_read/write` within
//! what the client exported to this device.

use crate::bus::DEVICE_NAME_MAX;

/// Largest I/O space per client, in bytes.
pub const IOSPACE_MAX: u32 = 256;
/// Most IRQ lines a user device has.
pub const USER_IRQ_LINES_MAX: u32 = 16;
/// Most clients one user device serves at once.
pub const USER_CLIENTS_MAX: u32 = 1024;
/// Most requests waiting on one device before `port_out` says `Busy`.
pub const REQUEST_QUEUE_MAX: u32 = 4096;
/// Most exports one client makes to one device.
pub const EXPORTS_MAX: u32 = 16;

/// [`Request::kind`]: a client attached (`client` is its new id).
pub const REQUEST_OPEN: u32 = 0;
/// A client forked: `client` is the child's new id, `parent_client` the
/// parent's.
pub const REQUEST_CLONE: u32 = 1;
/// A client wrote `value` (`size` bytes) to `port`.
pub const REQUEST_OUT: u32 = 2;
/// A client detached or exited; its id is no longer valid.
pub const REQUEST_CLOSE: u32 = 3;

/// One request, as `dev_poll` returns it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `REQUEST_*`.
    pub kind: u32,
    /// The client the request is about.
    pub client: u32,
    /// The client's process.
    pub pid: u32,
    /// For `REQUEST_CLONE`: the parent's client id.
    pub parent_client: u32,
    /// For `REQUEST_OUT`: the port and size (1, 2, 4 or 8).
    pub port: u32,
    pub size: u32,
    /// For `REQUEST_OUT`: the value written.
    pub value: u64,
}

/// What `dev_create` makes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The name clients attach by (registered in the registry).
    pub name: [u8; DEVICE_NAME_MAX],
    /// Bytes of `name` that are the name.
    pub name_len: u32,
    /// IRQ lines the device can raise on each client (0..=16).
    pub irq_lines: u32,
    /// Bytes of I/O space per client (0..=256).
    pub iospace_size: u32,
    /// The server's vector raised when a request is queued.
    pub vector: u32,
}
