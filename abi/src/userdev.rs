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
/// Most clients one user device serves at once. Each client's record is
/// charged to the client's own frame reserve, so what bounds a process's
/// clients in practice is its reserve, not this.
pub const USER_CLIENTS_MAX: u32 = 1 << CLIENT_SLOT_BITS;
/// Bits of a client id that name its slot in the device's table.
pub const CLIENT_SLOT_BITS: u32 = 16;
/// Bits of a client id above the slot: its generation (a slot that has
/// been through them all is never used again, so an id is never issued
/// twice by one device).
pub const CLIENT_GENERATION_BITS: u32 = 40;
/// A user-device client, as the server names it (`slot | generation << 16`).
pub type ClientId = u64;
/// [`DeviceConfig::queue_per_client`] when the server names none: the most
/// OUT requests one client may have queued before its `port_out` says
/// `Busy`.
pub const QUEUE_PER_CLIENT_DEFAULT: u32 = 16;
/// The most [`DeviceConfig::queue_per_client`] may be.
pub const QUEUE_PER_CLIENT_MAX: u32 = 256;
/// Most exports one client makes to one device.
pub const EXPORTS_MAX: u32 = 16;

/// [`Request::kind`]: a client attached (`client` is its new id).
pub const REQUEST_OPEN: u32 = 0;
/// A client forked: `client` is the child's new id, `value` the parent's.
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
    /// The client's process.
    pub pid: u32,
    /// The client the request is about.
    pub client: ClientId,
    /// For `REQUEST_OUT`: the port and size (1, 2, 4 or 8).
    pub port: u32,
    pub size: u32,
    /// For `REQUEST_OUT`: the value written; for `REQUEST_CLONE`: the
    /// parent's client id.
    pub value: u64,
}

impl Request {
    /// The request as the four words `dev_poll` leaves in `rdi`, `rsi`,
    /// `rdx` and `r10` when it is called with a null `out`: `kind | pid <<
    /// 32`, `client`, `port | size << 32`, `value` (the order of the
    /// fields in memory).
    pub const fn to_words(&self) -> [u64; 4] {
        [
            self.kind as u64 | (self.pid as u64) << 32,
            self.client,
            self.port as u64 | (self.size as u64) << 32,
            self.value,
        ]
    }

    /// The inverse of [`Request::to_words`].
    pub const fn from_words(w: [u64; 4]) -> Request {
        Request {
            kind: w[0] as u32,
            pid: (w[0] >> 32) as u32,
            client: w[1],
            port: w[2] as u32,
            size: (w[2] >> 32) as u32,
            value: w[3],
        }
    }

    /// For `REQUEST_CLONE`: the parent's client id.
    pub const fn parent_client(&self) -> ClientId {
        self.value
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
    /// The most OUT requests one client may have waiting (1..=
    /// `QUEUE_PER_CLIENT_MAX`; 0 means `QUEUE_PER_CLIENT_DEFAULT`). OPEN,
    /// CLONE and CLOSE never count: they always get through.
    pub queue_per_client: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_words_round_trip_and_follow_memory_order() {
        let r = Request {
            kind: REQUEST_OUT,
            client: 0xdead_beef_0123,
            pid: 7,
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
