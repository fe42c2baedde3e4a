//! The virtio-blk device (virtio 1.2, 5.2) on top of the transport, the
//! arena and the queue: feature negotiation, the disk's shape, and request
//! chains for READ, WRITE, FLUSH and GET_ID, one per slot.
//!
//! Rules: the features taken are the ones this driver implements, plus
//! VIRTIO_F_ACCESS_PLATFORM, which a device behind an I/O MMU must offer
//! (without it QEMU's device would bypass the I/O MMU and treat iovas as
//! physical addresses) and which is always accepted when offered (QEMU
//! refuses FEATURES_OK otherwise); everything the device reports about
//! itself (capacity, segment limits, block size, used-ring ids, status
//! bytes) is range-checked before it is believed.

use crate::arena::{self, PAGE};
use abi::Error;
use abi::disk::{DISK_FLAG_FLUSH, DISK_FLAG_READ_ONLY, DISK_SECTOR_SIZE, DISK_TRANSFER_MAX};
use libmh::dev::Handle;
use libmh::println;
use libvirtio::features::{ACCESS_PLATFORM as F_ACCESS_PLATFORM, VERSION_1 as F_VERSION_1};
use libvirtio::queue::SIZE_MAX;
use libvirtio::{Arena, NO_VECTOR, Queue, Transport};

const F_SIZE_MAX: u64 = 1 << 1;
const F_SEG_MAX: u64 = 1 << 2;
const F_RO: u64 = 1 << 5;
const F_BLK_SIZE: u64 = 1 << 6;
const F_FLUSH: u64 = 1 << 9;
const REQUIRED: u64 = F_VERSION_1;
const WANTED: u64 = F_SIZE_MAX | F_SEG_MAX | F_RO | F_BLK_SIZE | F_FLUSH | F_ACCESS_PLATFORM;

/// The queue's three pages in the arena.
const QUEUE_PAGES: [u64; 3] = [arena::DESC, arena::AVAIL, arena::USED];

/// Request slots: requests in flight at once.
pub const SLOTS_MAX: usize = 8;
/// Bytes of each slot's bounce buffer.
const PER_SLOT: u64 = DISK_TRANSFER_MAX;
/// virtio-blk's unit of addressing.
const UNIT: u64 = 512;

/// What a request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Flush,
    GetId,
}

impl Op {
    /// virtio-blk's request type.
    fn code(self) -> u32 {
        match self {
            Op::Read => 0,
            Op::Write => 1,
            Op::Flush => 4,
            Op::GetId => 8,
        }
    }
}

/// The disk as clients see it, and how requests are cut for the device.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Sectors of `sector_size` bytes.
    pub capacity: u64,
    pub sector_size: u64,
    /// The most bytes one request moves.
    pub transfer_max: u64,
    /// `DISK_FLAG_*` (not the interrupt flag, which is the server's).
    pub flags: u64,
    /// Request slots the queue holds at once.
    pub slots: usize,
    /// Descriptors per slot, and the most bytes per data descriptor.
    per_slot: u16,
    segment_max: u64,
    queue_size: u16,
}

/// virtio-blk's configuration: capacity (512-byte units), size_max,
/// seg_max, blk_size.
fn blk_config(t: &Transport) -> Result<(u64, u32, u32, u32), Error> {
    if t.device_len() < 24 {
        println!("virtio-blk: the device configuration is too short");
        return Err(Error::NotSupported);
    }
    t.config(|t| {
        let word = |off| t.device_read::<u32>(off);
        let capacity = u64::from(word(4)) << 32 | u64::from(word(0));
        (capacity, word(8), word(12), word(20))
    })
}

/// Works out the geometry from the agreed features and the device's
/// configuration; `NotSupported` for a device this driver cannot use.
fn plan(t: &Transport, features: u64, translated: bool, queue_max: u16) -> Result<Geometry, Error> {
    let (units, size_max, seg_max, blk_size) = blk_config(t)?;
    // Sector size: the logical block size if the device names a sane one.
    let sector_size = if features & F_BLK_SIZE != 0
        && blk_size.is_power_of_two()
        && (512..=4096).contains(&blk_size)
    {
        u64::from(blk_size)
    } else {
        DISK_SECTOR_SIZE
    };
    // Port words must stay below 2^63; no real disk is near.
    let capacity = units / (sector_size / UNIT);
    if units >= 1 << 62 {
        println!("virtio-blk: capacity {units} is not believable");
        return Err(Error::NotSupported);
    }
    let segment_max = if features & F_SIZE_MAX != 0 {
        u64::from(size_max) / 512 * 512
    } else {
        PER_SLOT
    };
    if segment_max == 0 {
        println!("virtio-blk: segments of at most {size_max} bytes are too small");
        return Err(Error::NotSupported);
    }
    let seg_max = if features & F_SEG_MAX != 0 {
        u64::from(seg_max)
    } else {
        u64::MAX
    };
    // The most data descriptors `len` bytes of a bounce buffer can need.
    let segments = |len: u64| {
        if translated {
            len.div_ceil(segment_max)
        } else {
            len.div_ceil(PAGE) * PAGE.div_ceil(segment_max)
        }
    };
    let mut transfer_max = PER_SLOT;
    while segments(transfer_max) > seg_max && transfer_max > sector_size {
        transfer_max -= sector_size;
    }
    let queue_size = match queue_max.min(SIZE_MAX) {
        0 => 0,
        n => 1 << (15 - n.leading_zeros()),
    };
    let per_slot = 2 + segments(transfer_max);
    let slots = (u64::from(queue_size) / per_slot).min(SLOTS_MAX as u64) as usize;
    if segments(transfer_max) > seg_max || slots == 0 {
        println!(
            "virtio-blk: cannot fit a request (queue {queue_max}, seg_max {seg_max}, size_max {size_max})"
        );
        return Err(Error::NotSupported);
    }
    let mut flags = 0;
    if features & F_FLUSH != 0 {
        flags |= DISK_FLAG_FLUSH;
    }
    if features & F_RO != 0 {
        flags |= DISK_FLAG_READ_ONLY;
    }
    Ok(Geometry {
        capacity,
        sector_size,
        transfer_max,
        flags,
        slots,
        per_slot: per_slot as u16,
        segment_max,
        queue_size,
    })
}

/// A running virtio-blk device.
pub struct Blk {
    t: Transport,
    arena: Arena,
    q: Queue,
    pub geo: Geometry,
    /// The MSI-X vector (line) queue 0 interrupts on, or `NO_VECTOR`.
    vector: u16,
}

impl Blk {
    /// Sets the device up (it was reset already, before any export) and
    /// exports the arena to `h`. `vector` is the MSI-X line to program for
    /// the queue, or `NO_VECTOR` to poll; returns whether the device took
    /// it as well.
    pub fn start(h: Handle, t: Transport, vector: u16) -> Result<(Blk, bool), Error> {
        let translated = libmh::pci::Function(h).translated()?;
        let features = t.negotiate(REQUIRED, WANTED)?;
        if translated && features & F_ACCESS_PLATFORM == 0 {
            println!(
                "virtio-blk: the device does not offer ACCESS_PLATFORM: it would bypass the I/O MMU"
            );
            return Err(Error::NotSupported);
        }
        let geo = plan(&t, features, translated, t.queue_max(0))?;
        let mut arena = Arena::new(h, arena::VA, arena::bounce(SLOTS_MAX, PER_SLOT))?;
        let q = Queue::new(&mut arena, QUEUE_PAGES, geo.queue_size, vector != NO_VECTOR);
        let mut blk = Blk {
            t,
            arena,
            q,
            geo,
            vector,
        };
        let taken = blk.setup_queue()?;
        Ok((blk, taken))
    }

    /// Queue 0 at the arena's rings, then DRIVER_OK.
    fn setup_queue(&mut self) -> Result<bool, Error> {
        let rings = self.q.addresses(&self.arena);
        let taken = self.t.queue_setup(0, self.q.size(), rings, self.vector)?;
        self.t.driver_ok();
        Ok(taken)
    }

    /// Resets the device and sets it up again with empty rings: after a
    /// device that broke the protocol or stopped answering. Whatever was
    /// in flight is gone (the caller fails it).
    pub fn restart(&mut self) -> Result<(), Error> {
        let features = self.t.negotiate(REQUIRED, WANTED)?;
        self.geo = plan(
            &self.t,
            features,
            self.arena.translated(),
            self.t.queue_max(0),
        )?;
        self.q = Queue::new(
            &mut self.arena,
            QUEUE_PAGES,
            self.geo.queue_size,
            self.vector != NO_VECTOR,
        );
        self.setup_queue().map(|_| ())
    }

    /// Slot `k`'s bounce buffer, its first `len` bytes.
    ///
    /// # Safety
    ///
    /// Slot `k` has no request in flight.
    pub unsafe fn bounce(&mut self, k: usize, len: u64) -> &mut [u8] {
        // SAFETY: the caller's promise; the buffer lies in the arena.
        unsafe {
            self.arena
                .bytes(arena::bounce(k, PER_SLOT), len.min(PER_SLOT))
        }
    }

    /// Gives the device slot `k`'s request: `op` on `len` bytes from
    /// client sector `sector` (already checked against the geometry). The
    /// data of a WRITE is in the slot's bounce buffer.
    pub fn submit(&mut self, k: usize, op: Op, sector: u64, len: u32) {
        let head = k as u16 * self.geo.per_slot;
        let h = arena::header(k);
        self.arena.write(h, op.code());
        self.arena.write(h + 4, 0u32);
        self.arena
            .write(h + 8, sector * (self.geo.sector_size / UNIT));
        // Not a status the device can give: a chain that comes back
        // without its status written reads as an error.
        self.arena.write(arena::status(k), 0xffu8);
        let (q, a) = (&self.q, &self.arena);
        q.set(a, head, a.dev_addr(h), 16, false, Some(head + 1));
        let mut next = head + 1;
        let (data, dlen) = match op {
            Op::Read | Op::Write => (arena::bounce(k, PER_SLOT), u64::from(len)),
            Op::GetId => (arena::ID, 20),
            Op::Flush => (0, 0),
        };
        if dlen > 0 {
            let device_writes = op != Op::Write;
            a.segments(data, dlen, self.geo.segment_max, |addr, n| {
                q.set(a, next, addr, n, device_writes, Some(next + 1));
                next += 1;
            });
        }
        q.set(a, next, a.dev_addr(arena::status(k)), 1, true, None);
        self.q.publish(&self.arena, head);
        self.t.notify(0);
    }

    /// The next slot the device finished, with the bytes it says it wrote;
    /// `IoError` for a used-ring entry that names no chain head of a slot,
    /// or more entries than were given (the caller resets the device).
    pub fn take(&mut self) -> Result<Option<(usize, u32)>, Error> {
        let Some((id, len)) = self.q.take(&self.arena)? else {
            return Ok(None);
        };
        let per = u32::from(self.geo.per_slot);
        if id % per != 0 || (id / per) as usize >= self.geo.slots {
            println!("virtio-blk: the device returned descriptor {id}, no request's head");
            return Err(Error::IoError);
        }
        Ok(Some(((id / per) as usize, len)))
    }

    /// What the device said of slot `k`'s request.
    pub fn status(&self, k: usize) -> Result<(), Error> {
        match self.arena.read::<u8>(arena::status(k)) {
            0 => Ok(()),
            2 => Err(Error::NotSupported),
            _ => Err(Error::IoError),
        }
    }

    /// The GET_ID answer (valid once a GET_ID request completed): the
    /// serial as printable ASCII, zero-padded.
    pub fn serial(&self) -> [u8; 24] {
        let mut s = [0u8; 24];
        for (i, b) in s.iter_mut().take(20).enumerate() {
            let c = self.arena.read::<u8>(arena::ID + i as u64);
            if c == 0 {
                break;
            }
            *b = if c.is_ascii_graphic() { c } else { b'?' };
        }
        s
    }
}
