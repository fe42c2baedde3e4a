//! The `disk` device class: a block device served as a user device
//! (`disk0`, by `servers/virtio-blk`; docs/devices/disk.md). Clients read
//! and write whole sectors between the disk and memory they export to the
//! device, and ask for a flush.
//!
//! Protocol: READ and WRITE take, as the port's value, the iova of a
//! [`DiskRequest`] (inside an export of the client's to the device) that
//! names the sectors and the buffer; FLUSH and SYNC take a tag as their
//! value. Each
//! request gets exactly one completion: the server writes the result word
//! at [`DISK_IO_RESULT`] (the status and the request's tag, see
//! [`disk_result_word`]) and raises [`DISK_IRQ_DONE`]. A client has one
//! request at a time in flight (`port_out_wait`, then read the word); the
//! server answers a second one at once with `Busy`. The disk's shape
//! (capacity, sector size, the largest transfer, flags, serial) is in the
//! I/O space from the moment the client attaches.
//!
//! Rules: the numbers are stable; every request is checked before the disk
//! is touched ([`disk_check`]: client and server use the same function),
//! and every word of the I/O space stays below 2^63, the largest
//! `port_in` can return.

use crate::Error;
use crate::completion::TAG_MASK;

/// out (size 8): read `len` bytes from sector `sector` on into `buffer`,
/// as the [`DiskRequest`] at iova `value` says.
pub const DISK_PORT_READ: u32 = 0;
/// out (size 8): write `len` bytes from `buffer` to sector `sector` on,
/// as the [`DiskRequest`] at iova `value` says. The data may sit in the
/// disk's write cache until a FLUSH (see [`DISK_FLAG_FLUSH`]).
pub const DISK_PORT_WRITE: u32 = 1;
/// out (size 8): make every write completed so far durable. `value`'s low
/// 31 bits are the tag the completion carries.
pub const DISK_PORT_FLUSH: u32 = 2;
/// out (size 8): does nothing but complete (`value`'s low 31 bits are the
/// tag). A client's requests are taken in order, its open first, so after
/// this completion the disk's shape is in the I/O space.
pub const DISK_PORT_SYNC: u32 = 3;

/// I/O space (u64): the last completion, [`disk_result_word`]: the status
/// (0, or an `Error` code) in bits 0–31 and the request's tag in bits
/// 32–62 (0 when the request block itself could not be read).
pub const DISK_IO_RESULT: u32 = 0;
/// I/O space (u64): the disk's size in sectors.
pub const DISK_IO_CAPACITY: u32 = 8;
/// I/O space (u64): bytes per sector (what `sector` counts and `len` is a
/// multiple of).
pub const DISK_IO_SECTOR_SIZE: u32 = 16;
/// I/O space (u64): the most bytes one READ or WRITE may move (at most
/// [`DISK_TRANSFER_MAX`]).
pub const DISK_IO_TRANSFER_MAX: u32 = 24;
/// I/O space (u64): `DISK_FLAG_*`.
pub const DISK_IO_FLAGS: u32 = 32;
/// I/O space (3 × u64): the disk's serial number, ASCII, zero-padded
/// (QEMU: the manifest's disk name).
pub const DISK_IO_SERIAL: u32 = 40;
/// Bytes of the serial at [`DISK_IO_SERIAL`].
pub const DISK_SERIAL_LEN: u32 = 24;
/// Bytes of I/O space per client.
pub const DISK_IOSPACE_SIZE: u32 = DISK_IO_SERIAL + DISK_SERIAL_LEN;

/// IRQ line raised after each completion.
pub const DISK_IRQ_DONE: u32 = 0;
/// IRQ lines the device has.
pub const DISK_IRQ_LINES: u32 = 1;

/// [`DISK_IO_FLAGS`]: the disk has a write cache, and FLUSH empties it;
/// without this flag every completed write is durable and FLUSH does
/// nothing.
pub const DISK_FLAG_FLUSH: u64 = 1;
/// [`DISK_IO_FLAGS`]: the disk is read-only: WRITE is `AccessDenied`.
pub const DISK_FLAG_READ_ONLY: u64 = 2;
/// [`DISK_IO_FLAGS`]: the server takes the hardware's completions by
/// interrupt (else it polls for them while requests are in flight).
pub const DISK_FLAG_INTERRUPTS: u64 = 4;

/// The sector size every disk server publishes today (virtio-blk
/// addresses 512-byte sectors whatever its physical block size).
pub const DISK_SECTOR_SIZE: u64 = 512;
/// No server publishes a larger [`DISK_IO_TRANSFER_MAX`] (64 KiB), so a
/// buffer this size holds any one transfer.
pub const DISK_TRANSFER_MAX: u64 = 64 * 1024;
/// The bits of a tag that a completion carries.
pub const DISK_TAG_MASK: u32 = TAG_MASK;

/// What READ and WRITE read (by DMA) from the client's export.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskRequest {
    /// The first sector.
    pub sector: u64,
    /// Where the data is: an iova inside an export of the client's to the
    /// device (any alignment).
    pub buffer: u64,
    /// Bytes to move: a multiple of the sector size, 1 ..=
    /// `DISK_IO_TRANSFER_MAX` sectors' worth.
    pub len: u32,
    /// Echoed in the completion (its low 31 bits), so a client can tell
    /// its answer from an older one.
    pub tag: u32,
}

/// The result word for a completion of the request tagged `tag`.
pub const fn disk_result_word(tag: u32, result: Result<(), Error>) -> u64 {
    crate::completion::result_word(tag, result)
}

/// A result word as (tag, result); an unknown status is `InvalidArgument`
/// (a server is not trusted to send only codes that exist).
pub const fn disk_decode_result(word: u64) -> (u32, Result<(), Error>) {
    crate::completion::decode_result(word)
}

/// Whether a READ (`write` false) or WRITE may go to a disk of `capacity`
/// sectors of `sector_size` bytes that moves at most `transfer_max` bytes
/// at once. `InvalidArgument`: `len` is 0, not whole sectors or more than
/// `transfer_max`; `NotFound`: a sector is beyond the disk (overflow
/// included). The buffer is the kernel's to check (at the copy).
pub fn disk_check(
    req: &DiskRequest,
    capacity: u64,
    sector_size: u64,
    transfer_max: u64,
) -> Result<(), Error> {
    let len = u64::from(req.len);
    if sector_size == 0 || len == 0 || !len.is_multiple_of(sector_size) || len > transfer_max {
        return Err(Error::InvalidArgument);
    }
    match req.sector.checked_add(len / sector_size) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(Error::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 2048;

    fn req(sector: u64, len: u32) -> DiskRequest {
        DiskRequest {
            sector,
            len,
            ..DiskRequest::default()
        }
    }

    fn check(sector: u64, len: u32) -> Result<(), Error> {
        disk_check(&req(sector, len), CAP, 512, DISK_TRANSFER_MAX)
    }

    #[test]
    fn requests_inside_the_disk_pass() {
        assert_eq!(check(0, 512), Ok(()));
        assert_eq!(check(CAP - 1, 512), Ok(()));
        assert_eq!(check(CAP - 128, DISK_TRANSFER_MAX as u32), Ok(()));
    }

    #[test]
    fn malformed_requests_are_invalid() {
        assert_eq!(check(0, 0), Err(Error::InvalidArgument));
        assert_eq!(check(0, 511), Err(Error::InvalidArgument));
        assert_eq!(check(0, 513), Err(Error::InvalidArgument));
        assert_eq!(
            check(0, DISK_TRANSFER_MAX as u32 + 512),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            disk_check(&req(0, 512), CAP, 0, DISK_TRANSFER_MAX),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn sectors_beyond_the_disk_do_not_exist() {
        assert_eq!(check(CAP, 512), Err(Error::NotFound));
        assert_eq!(check(CAP - 1, 1024), Err(Error::NotFound));
        assert_eq!(check(u64::MAX, 512), Err(Error::NotFound));
        assert_eq!(check(u64::MAX - 1, 1024), Err(Error::NotFound));
    }

    #[test]
    fn result_words_round_trip_and_stay_readable() {
        for e in Error::ALL {
            let w = disk_result_word(u32::MAX, Err(e));
            assert!(w < 1 << 63);
            assert_eq!(disk_decode_result(w), (DISK_TAG_MASK, Err(e)));
        }
        assert_eq!(disk_decode_result(disk_result_word(7, Ok(()))), (7, Ok(())));
        assert_eq!(disk_decode_result(999), (0, Err(Error::InvalidArgument)));
    }

    #[test]
    fn the_io_space_fits_a_user_device() {
        const { assert!(DISK_IOSPACE_SIZE <= crate::userdev::IOSPACE_MAX) };
        const { assert!(DISK_IRQ_LINES <= crate::userdev::USER_IRQ_LINES_MAX) };
        const { assert!(DISK_SERIAL_LEN.is_multiple_of(8)) };
    }
}
