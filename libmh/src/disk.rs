//! The disk device's client (`abi::disk`, docs/devices/disk.md): blocking
//! reads, writes and flushes of whole sectors.
//!
//! [`Disk::open`] attaches `disk0`, maps its completion line and reads the
//! disk's shape from the I/O space once. Each transfer exports the
//! caller's buffer and a [`DiskRequest`] naming it to the device, sends
//! the request with `port_out_wait`, reads the result word, and withdraws
//! both exports; a buffer larger than the server's largest transfer goes
//! in several requests, in order.
//!
//! Rules: a request is checked here with the server's own function
//! ([`disk_check`]) before it is sent, so a malformed one costs no round
//! trip and fails the same way; every request waits for its own
//! completion (its tag must come back), so the completion vector is never
//! left pending; exports never outlive the call.

use crate::dev::{self, Handle, REGISTRY};
use abi::Error;
use abi::disk::*;
use core::cell::Cell;

/// The name the disk driver registers.
pub const NAME: &str = "disk0";
/// The same disk, read-only: its clients may read and flush; a write is
/// `AccessDenied` (the flags say `DISK_FLAG_READ_ONLY`). Give a program
/// this name, not [`NAME`], and it cannot change the disk.
pub const NAME_RO: &str = "disk0-ro";
/// The vector [`Disk::open`] takes completions on.
pub const DEFAULT_VECTOR: u32 = 60;
/// The rights [`Disk::open`] asks for: everything a client uses (READ for
/// the I/O space, WRITE for requests, DMA for its buffers, IRQ for
/// completions, CLONE so a forked child has a client of its own).
pub const RIGHTS: u32 =
    dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA | dev::RIGHT_IRQ | dev::RIGHT_CLONE;

/// An open disk.
#[derive(Debug)]
pub struct Disk {
    handle: Handle,
    vector: u32,
    capacity: u64,
    sector_size: u64,
    transfer_max: u64,
    flags: u64,
    serial: [u8; DISK_SERIAL_LEN as usize],
    /// The last tag used (1 ..= DISK_TAG_MASK, never 0).
    tag: Cell<u32>,
    /// Whether the handle can take completions (IRQ): without it a
    /// request would wait for a line that never comes.
    can_wait: bool,
}

impl Disk {
    /// Attaches `disk0` with [`RIGHTS`]; completions on [`DEFAULT_VECTOR`].
    pub fn open() -> Result<Disk, Error> {
        Disk::open_with(REGISTRY, NAME, DEFAULT_VECTOR, RIGHTS)
    }

    /// Opens the read-only face of the disk ([`NAME_RO`]).
    pub fn open_read_only() -> Result<Disk, Error> {
        Disk::open_with(REGISTRY, NAME_RO, DEFAULT_VECTOR, RIGHTS)
    }

    /// Attaches the disk `name` through `registry` with `rights`, taking
    /// completions on `vector` (one the program uses for nothing else).
    pub fn open_with(
        registry: Handle,
        name: &str,
        vector: u32,
        rights: u32,
    ) -> Result<Disk, Error> {
        let handle = dev::attach(registry, name, rights)?;
        let opened = Disk::from_handle(handle, vector);
        if opened.is_err() {
            let _ = handle.detach();
        }
        opened
    }

    /// A client of the disk device behind `handle` (attached by the caller,
    /// or inherited through `fork`): maps the line, reads the shape.
    pub fn from_handle(handle: Handle, vector: u32) -> Result<Disk, Error> {
        if handle.info()?.rights & dev::RIGHT_IRQ != 0 {
            handle.irq_map(DISK_IRQ_DONE, vector)?;
        }
        let rights = handle.info()?.rights;
        if rights & dev::RIGHT_IRQ != 0 {
            handle.irq_map(DISK_IRQ_DONE, vector)?;
        }
        let mut disk = Disk {
            handle,
            vector,
            capacity: 0,
            sector_size: 0,
            transfer_max: 0,
            flags: 0,
            serial: [0; DISK_SERIAL_LEN as usize],
            tag: Cell::new(0),
            can_wait: rights & dev::RIGHT_IRQ != 0,
        };
        // The server writes the shape when it takes the client's open: after
        // a SYNC round trip it has. A handle that cannot send requests
        // looks until the shape is there (a while, then `NotSupported`).
        if rights & (dev::RIGHT_WRITE | dev::RIGHT_IRQ) == dev::RIGHT_WRITE | dev::RIGHT_IRQ {
            let tag = disk.next_tag();
            handle.port_out_wait(DISK_PORT_SYNC, 8, u64::from(tag), 1 << vector)?;
            disk.result(tag)?;
        }
        for _ in 0..10_000 {
            disk.sector_size = handle.port_in(DISK_IO_SECTOR_SIZE, 8)?;
            if disk.sector_size != 0 {
                break;
            }
            crate::process::yield_now();
        }
        disk.capacity = handle.port_in(DISK_IO_CAPACITY, 8)?;
        // Not more than the ABI allows, whatever a server says: a piece
        // must fit a request's 32-bit length.
        disk.transfer_max = handle
            .port_in(DISK_IO_TRANSFER_MAX, 8)?
            .min(DISK_TRANSFER_MAX);
        disk.flags = handle.port_in(DISK_IO_FLAGS, 8)?;
        for (i, chunk) in disk.serial.chunks_exact_mut(8).enumerate() {
            let word = handle.port_in(DISK_IO_SERIAL + 8 * i as u32, 8)?;
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        if disk.sector_size == 0 || disk.transfer_max < disk.sector_size {
            return Err(Error::NotSupported);
        }
        Ok(disk)
    }

    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The disk's size in sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes per sector.
    pub fn sector_size(&self) -> u64 {
        self.sector_size
    }

    /// The most bytes one request moves (`read` and `write` split bigger
    /// buffers themselves).
    pub fn transfer_max(&self) -> u64 {
        self.transfer_max
    }

    /// `DISK_FLAG_*`.
    pub fn flags(&self) -> u64 {
        self.flags
    }

    /// The disk's serial number (ASCII, as the server found it).
    pub fn serial(&self) -> &str {
        let len = self
            .serial
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.serial.len());
        core::str::from_utf8(&self.serial[..len]).unwrap_or("?")
    }

    /// Reads `buf.len()` bytes (whole sectors) from `sector` on.
    pub fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.check(sector, buf.len())?;
        let per = self.transfer_max / self.sector_size * self.sector_size;
        for (i, chunk) in buf.chunks_mut(per as usize).enumerate() {
            let at = sector + i as u64 * (per / self.sector_size);
            let iova = self.handle.export(chunk)?;
            let done = self.transfer(DISK_PORT_READ, at, iova, chunk.len());
            let withdrawn = self.handle.unexport(iova);
            done.and(withdrawn)?;
        }
        Ok(())
    }

    /// Writes `buf` (whole sectors) from `sector` on. The data may wait in
    /// the disk's write cache until [`Disk::flush`].
    pub fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Error> {
        self.check(sector, buf.len())?;
        let per = self.transfer_max / self.sector_size * self.sector_size;
        for (i, chunk) in buf.chunks(per as usize).enumerate() {
            let at = sector + i as u64 * (per / self.sector_size);
            let iova = self.handle.export_read_only(chunk)?;
            let done = self.transfer(DISK_PORT_WRITE, at, iova, chunk.len());
            let withdrawn = self.handle.unexport(iova);
            done.and(withdrawn)?;
        }
        Ok(())
    }

    /// Makes every write completed so far durable.
    pub fn flush(&self) -> Result<(), Error> {
        if !self.can_wait {
            return Err(Error::AccessDenied);
        }
        let tag = self.next_tag();
        self.handle
            .port_out_wait(DISK_PORT_FLUSH, 8, u64::from(tag), 1 << self.vector)?;
        self.result(tag)
    }

    /// Detaches the disk.
    pub fn close(self) -> Result<(), Error> {
        self.handle.detach()
    }

    /// The whole request, before anything is sent: `len` bytes at `sector`
    /// (each piece then fits a transfer).
    fn check(&self, sector: u64, len: usize) -> Result<(), Error> {
        let len = u64::try_from(len).map_err(|_| Error::InvalidArgument)?;
        if len == 0 || !len.is_multiple_of(self.sector_size) {
            return Err(Error::InvalidArgument);
        }
        match sector.checked_add(len / self.sector_size) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(Error::NotFound),
        }
    }

    fn next_tag(&self) -> u32 {
        let tag = self.tag.get() % DISK_TAG_MASK + 1;
        self.tag.set(tag);
        tag
    }

    /// One READ or WRITE of `len` bytes at `iova` (an export of the
    /// caller's).
    fn transfer(&self, port: u32, sector: u64, iova: u64, len: usize) -> Result<(), Error> {
        if !self.can_wait {
            return Err(Error::AccessDenied);
        }
        let tag = self.next_tag();
        let block = DiskRequest {
            sector,
            buffer: iova,
            len: len as u32,
            tag,
        };
        disk_check(&block, self.capacity, self.sector_size, self.transfer_max)?;
        // SAFETY: DiskRequest is repr(C) plain integers; the byte view
        // lives only while the server may read it (the export below).
        let bytes = unsafe {
            core::slice::from_raw_parts(
                (&raw const block).cast::<u8>(),
                core::mem::size_of::<DiskRequest>(),
            )
        };
        let at = self.handle.export_read_only(bytes)?;
        let sent = self.handle.port_out_wait(port, 8, at, 1 << self.vector);
        let withdrawn = self.handle.unexport(at);
        sent?;
        withdrawn?;
        self.result(tag)
    }

    /// The completion that just came in, which must be the one of `tag`
    /// (0: the server could not read the request block).
    fn result(&self, tag: u32) -> Result<(), Error> {
        let (got, result) = disk_decode_result(self.handle.port_in(DISK_IO_RESULT, 8)?);
        if got != tag && got != 0 {
            // A completion that is not ours: the line was raised for
            // something else (the vector is used twice?), or the server is
            // confused. Not an answer to trust.
            return Err(Error::Busy);
        }
        result
    }
}
