//! The `disk0` user device (`abi::disk`, docs/devices/disk.md): clients'
//! requests, checked, bounced through the slots' buffers and given to the
//! device; completions back to the clients.
//!
//! Data never goes from a client's pages to the device directly: a client
//! exports its buffer to *this user device*, so its iova is good for
//! `dev_dma_read`/`dev_dma_write` and means nothing to the hardware. The
//! server copies it into (WRITE) or out of (READ) the slot's bounce
//! buffer, which is the arena's, exported to the function. That costs one
//! copy of at most 64 KiB per request, keeps the device's reach to the
//! arena whatever the clients do, and makes a client that dies mid-request
//! harmless: its request completes into the bounce buffer and the copy to
//! its gone export simply fails.
//!
//! Rules: a request is checked whole (`abi::disk::disk_check`, the block
//! and buffer through the kernel's copy) before the device sees it, and
//! every request gets exactly one completion; a client has at most one
//! request in flight (another is `Busy` at once); requests are taken in
//! the kernel's round-robin order across clients and given to the device
//! in that order, up to `SLOTS_MAX` at once, so no client can hold more
//! than one slot; a device that breaks the protocol or keeps a request
//! past `TIMEOUT_MS` is reset, its requests failed with `IoError`, and
//! set up again (if that fails the server stops, and init restarts it).

use crate::device::{Blk, Op, SLOTS_MAX};
use crate::wait::{Deadline, Mode, V_FAULT, V_WATCHDOG};
use abi::Error;
use abi::disk::*;
use abi::userdev::{ClientId, REQUEST_CLONE, REQUEST_OPEN, REQUEST_OUT, Request};
use libmh::dev::Served;
use libmh::pci::Function;
use libmh::println;
use libmh::server::{Reply, Server};

/// How long the device may keep a request.
const TIMEOUT_MS: u64 = 5000;
/// The exit status when the device cannot be set up again.
pub const EXIT_DEVICE_LOST: i32 = 5;

/// A request the device has.
struct InFlight {
    /// The device it came through (`disk0` or `disk0-ro`).
    dev: Served,
    client: ClientId,
    op: Op,
    tag: u32,
    /// The client's iova (READ: where the data goes).
    buffer: u64,
    len: u32,
    deadline: Deadline,
}

pub struct Disk {
    hw: Function,
    blk: Blk,
    mode: Mode,
    /// The server's own vector (raised to come back while polling).
    vector: u32,
    slots: [Option<InFlight>; SLOTS_MAX],
    serial: [u8; 24],
    stop: Option<i32>,
    /// The read-only device (`DISK_RO_NAME`), if it could be registered.
    read_only: Option<Served>,
}

/// Tells `client` its request tagged `tag` ended with `result` (nothing
/// happens if it has left).
fn complete(dev: Served, client: ClientId, tag: u32, result: Result<(), Error>) {
    let word = disk_result_word(tag, result);
    if dev.write_iospace(client, DISK_IO_RESULT, 8, word).is_ok() {
        let _ = dev.irq(client, DISK_IRQ_DONE);
    }
}

impl Disk {
    pub fn new(hw: Function, blk: Blk, mode: Mode, vector: u32) -> Disk {
        Disk {
            hw,
            blk,
            mode,
            vector,
            slots: [const { None }; SLOTS_MAX],
            serial: [0; 24],
            stop: None,
            read_only: None,
        }
    }

    /// Serves `dev` too, as the disk's read-only face: its clients may
    /// read and flush, never write.
    pub fn set_read_only(&mut self, dev: Served) {
        self.read_only = Some(dev);
    }

    /// The vectors the server loop waits on for the device.
    pub fn mode_vectors(&self) -> u64 {
        self.mode.vectors()
    }

    fn flags(&self) -> u64 {
        let irq = if self.mode.interrupts() {
            DISK_FLAG_INTERRUPTS
        } else {
            0
        };
        self.blk.geo.flags | irq
    }

    /// The disk's shape into a new client's I/O space.
    fn publish(&self, dev: Served, client: ClientId) {
        let g = &self.blk.geo;
        let ro = if Some(dev) == self.read_only {
            DISK_FLAG_READ_ONLY
        } else {
            0
        };
        let words = [
            (DISK_IO_CAPACITY, g.capacity),
            (DISK_IO_SECTOR_SIZE, g.sector_size),
            (DISK_IO_TRANSFER_MAX, g.transfer_max),
            (DISK_IO_FLAGS, self.flags() | ro),
        ];
        for (port, value) in words {
            let _ = dev.write_iospace(client, port, 8, value);
        }
        for (i, chunk) in self.serial.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let port = DISK_IO_SERIAL + 8 * i as u32;
            let _ = dev.write_iospace(client, port, 8, u64::from_le_bytes(w));
        }
    }

    fn oldest(&self) -> Option<Deadline> {
        self.slots.iter().flatten().map(|f| f.deadline).min()
    }

    /// One OUT request.
    fn out(&mut self, dev: Served, r: &Request) {
        if r.size != 8 {
            return complete(dev, r.client, 0, Err(Error::InvalidArgument));
        }
        let (op, tag, block) = match r.port {
            DISK_PORT_READ | DISK_PORT_WRITE => {
                let mut block = DiskRequest::default();
                // SAFETY: DiskRequest is repr(C) plain integers, any bytes
                // are a valid value; the view lives only for the copy.
                let bytes = unsafe {
                    core::slice::from_raw_parts_mut(
                        (&raw mut block).cast::<u8>(),
                        size_of::<DiskRequest>(),
                    )
                };
                if let Err(e) = dev.dma_read(r.client, r.value, bytes) {
                    return complete(dev, r.client, 0, Err(e));
                }
                let op = if r.port == DISK_PORT_READ {
                    Op::Read
                } else {
                    Op::Write
                };
                (op, block.tag, block)
            }
            DISK_PORT_FLUSH => (Op::Flush, r.value as u32, DiskRequest::default()),
            DISK_PORT_SYNC => return complete(dev, r.client, r.value as u32, Ok(())),
            _ => return complete(dev, r.client, 0, Err(Error::NotSupported)),
        };
        if let Err(e) = self.admit(dev, op, &block, r.client) {
            return complete(dev, r.client, tag, Err(e));
        }
        if op == Op::Flush && self.blk.geo.flags & DISK_FLAG_FLUSH == 0 {
            // No write cache: every completed write is durable already.
            return complete(dev, r.client, tag, Ok(()));
        }
        let Some(k) = self.free_slot() else {
            return complete(dev, r.client, tag, Err(Error::IoError));
        };
        if op == Op::Write {
            // SAFETY: slot k is free: no request of it is in flight.
            let data = unsafe { self.blk.bounce(k, u64::from(block.len)) };
            if let Err(e) = dev.dma_read(r.client, block.buffer, data) {
                return complete(dev, r.client, tag, Err(e));
            }
        }
        self.slots[k] = Some(InFlight {
            dev,
            client: r.client,
            op,
            tag,
            buffer: block.buffer,
            len: block.len,
            deadline: Deadline::after_ms(TIMEOUT_MS),
        });
        self.blk.submit(k, op, block.sector, block.len);
    }

    /// Whether `client` of `dev` may have `op` on `block` now.
    fn admit(
        &self,
        dev: Served,
        op: Op,
        block: &DiskRequest,
        client: ClientId,
    ) -> Result<(), Error> {
        if self
            .slots
            .iter()
            .flatten()
            .any(|f| (f.dev, f.client) == (dev, client))
        {
            return Err(Error::Busy);
        }
        let g = &self.blk.geo;
        let read_only = g.flags & DISK_FLAG_READ_ONLY != 0 || Some(dev) == self.read_only;
        match op {
            Op::Flush => return Ok(()),
            Op::Write if read_only => return Err(Error::AccessDenied),
            _ => {}
        }
        disk_check(block, g.capacity, g.sector_size, g.transfer_max)
    }

    /// A free slot, waiting (bounded) for one if all are in flight; `None`
    /// if the device had to be given up.
    fn free_slot(&mut self) -> Option<usize> {
        loop {
            if self.stop.is_some() {
                return None;
            }
            let slots = self.blk.geo.slots;
            if let Some(k) = self.slots[..slots].iter().position(|s| s.is_none()) {
                return Some(k);
            }
            let oldest = self.oldest()?;
            self.mode.pause(oldest, true);
            self.harvest();
        }
    }

    /// Takes every completion the device has given back, then fails the
    /// device if a request is overdue.
    fn harvest(&mut self) {
        loop {
            match self.blk.take() {
                Ok(None) => break,
                Ok(Some((k, written))) => match self.slots[k].take() {
                    Some(f) => self.finish(k, f, written),
                    None => {
                        return self.device_failed("completed a request it did not have");
                    }
                },
                Err(_) => return self.device_failed("broke the used ring"),
            }
        }
        if self.oldest().is_some_and(Deadline::passed) {
            self.device_failed("kept a request too long");
        }
    }

    /// Slot `k`'s request came back, the device having written `written`
    /// bytes (data and status).
    fn finish(&mut self, k: usize, f: InFlight, written: u32) {
        let dev = f.dev;
        let mut result = self.blk.status(k);
        if f.op == Op::Read && result.is_ok() {
            result = if u64::from(written) <= u64::from(f.len) {
                println!(
                    "virtio-blk: the device wrote {written} bytes for a {}-byte read",
                    f.len
                );
                Err(Error::IoError)
            } else {
                // SAFETY: slot k's request is back: no longer in flight.
                let data = unsafe { self.blk.bounce(k, u64::from(f.len)) };
                dev.dma_write(f.client, data, f.buffer)
            };
        }
        complete(dev, f.client, f.tag, result);
    }

    /// The device broke the protocol or stopped answering: reset it, fail
    /// what it had, set it up again (or stop serving).
    fn device_failed(&mut self, why: &str) {
        println!("virtio-blk: the device {why}; resetting it");
        let restarted = self.blk.restart();
        for f in self.slots.iter_mut().filter_map(Option::take) {
            complete(f.dev, f.client, f.tag, Err(Error::IoError));
        }
        if let Err(e) = restarted {
            println!("virtio-blk: the device cannot be set up again ({e}); stopping");
            self.stop = Some(EXIT_DEVICE_LOST);
        } else if self.hw.config_read(4, 2).is_ok_and(|c| c & 0x4 == 0) {
            // The kernel stopped the function's bus mastering (it kept
            // faulting): only a fresh attachment turns it on again, so
            // leave, and let init start a new driver.
            println!("virtio-blk: the kernel stopped the device's DMA; stopping");
            self.stop = Some(EXIT_DEVICE_LOST);
        }
    }

    /// Asks the device its serial (GET_ID on slot 0), waiting a second
    /// at most; a device that does not know it leaves it empty.
    pub fn read_serial(&mut self) {
        self.blk.submit(0, Op::GetId, 0, 20);
        let deadline = Deadline::after_ms(1000);
        loop {
            match self.blk.take() {
                Ok(None) if !deadline.passed() => self.mode.pause(deadline, true),
                Ok(Some((0, _))) => {
                    if self.blk.status(0).is_ok() {
                        self.serial = self.blk.serial();
                    }
                    return;
                }
                Ok(None) => return self.device_failed("did not answer GET_ID"),
                _ => return self.device_failed("broke the used ring"),
            }
        }
    }

    /// The I/O MMU blocked DMAs of the device: say so (the kernel stops a
    /// function that keeps faulting; its requests then time out).
    fn report_faults(&self) {
        let count = self.hw.dma_faults().unwrap_or(0);
        if let Ok(Some((iova, reason, write))) = self.hw.dma_fault(0) {
            println!(
                "virtio-blk: {count} DMA faults; the last a {} at iova {iova:#x} (reason {reason})",
                if write { "write" } else { "read" }
            );
        }
    }
}

impl Server for Disk {
    fn request(&mut self, dev: Served, r: &Request) -> Reply {
        match r.kind {
            REQUEST_OPEN | REQUEST_CLONE => self.publish(dev, r.client),
            REQUEST_OUT => self.out(dev, r),
            // A client that closes mid-request: its request completes into
            // the bounce buffer, and the answer finds no one.
            _ => {}
        }
        match self.stop {
            Some(code) => Reply::Stop(code),
            None => Reply::None,
        }
    }

    fn interrupt(&mut self, _dev: Served, vectors: u64) {
        if vectors & 1 << V_WATCHDOG != 0 {
            self.mode.watchdog_fired();
        }
        if vectors & 1 << V_FAULT != 0 {
            self.report_faults();
        }
        self.harvest();
    }

    /// After every batch of requests: take completions; while requests are
    /// in flight, come straight back when polling (the loop would
    /// otherwise sleep until the next request), or make sure the watchdog
    /// will wake the loop when waiting for the interrupt.
    fn idle(&mut self, _dev: Served) -> Option<i32> {
        self.harvest();
        if let Some(oldest) = self.oldest() {
            self.mode.pause(oldest, false);
            if !self.mode.interrupts() {
                let _ = libmh::process::irq_raise(self.vector);
            }
        }
        self.stop
    }
}
