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

impl Request {
    /// The request as the four words `dev_poll` leaves in `rdi`, `rsi`,
    /// `rdx` and `r10` when it is called with a null `out`: `kind |
    /// client << 32`, `pid | parent_client << 32`, `port | size << 32`,
    /// `value` (the order of the fields in memory).
    pub const fn to_words(&self) -> [u64; 4] {
        [
            self.kind as u64 | (self.client as u64) << 32,
            self.pid as u64 | (self.parent_client as u64) << 32,
            self.port as u64 | (self.size as u64) << 32,
            self.value,
        ]
    }

    /// The inverse of [`Request::to_words`].
    pub const fn from_words(w: [u64; 4]) -> Request {
        Request {
            kind: w[0] as u32,
            client: (w[0] >> 32) as u32,
            pid: w[1] as u32,
            parent_client: (w[1] >> 32) as u32,
            port: w[2] as u32,
            size: (w[2] >> 32) as u32,
            value: w[3],
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_words_round_trip_and_follow_memory_order() {
        let r = Request {
            kind: REQUEST_OUT,
            client: 0xdead_beef,
            pid: 7,
            parent_client: u32::MAX,
            port: 3,
            size: 8,
            value: u64::MAX - 5,
        };
        let w = r.to_words();
        assert_eq!(Request::from_words(w), r);
        // SAFETY: Request is 32 bytes of plain integers, four aligned words.
        let mem: [u64; 4] = unsafe { core::mem::transmute(r) };
        assert_eq!(w, mem);
    }
}
