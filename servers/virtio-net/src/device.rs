//! The virtio-net device (virtio 1.2, 5.1) on top of libvirtio: feature
//! negotiation, the MAC address, a receive queue kept full of buffers and
//! a transmit queue, each buffer a fixed half page of the arena.
//!
//! Rules: the features taken are VERSION_1, MAC and ACCESS_PLATFORM
//! (always accepted when offered, required behind an I/O MMU) and nothing
//! that changes a buffer's shape (no checksum offload, no segmentation, no
//! merged receive buffers), so every buffer is one 12-byte header and one
//! frame; receive buffer `k` is always descriptor `k` of the receive
//! queue and transmit buffer `k` descriptor `k` of the transmit queue, so
//! a used-ring id is checked by one comparison; everything the device
//! reports (ids, lengths) is range-checked before it is believed.

use abi::Error;
use abi::nic::NIC_FRAME_MAX;
use libmh::dev::Handle;
use libmh::println;
use libvirtio::features::{ACCESS_PLATFORM, VERSION_1};
use libvirtio::{Arena, NO_VECTOR, PAGE, Queue, Transport};

const F_MAC: u64 = 1 << 5;
const REQUIRED: u64 = VERSION_1;
const WANTED: u64 = F_MAC | ACCESS_PLATFORM;

/// The header before every frame (virtio 1.x, no merged buffers).
pub const HEADER: u64 = 12;
/// Each buffer: a header and the longest frame fit, and two buffers share
/// a page without crossing it (so without an I/O MMU each is contiguous).
const BUFFER: u64 = 2048;
/// Receive buffers the device holds, and transmit slots.
pub const RX_BUFFERS: u16 = 64;
pub const TX_BUFFERS: u16 = 32;

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;

/// The arena: where it is mapped, and its layout.
const VA: u64 = 0x5b00_0000_0000;
const RX_PAGES: [u64; 3] = [0, PAGE, 2 * PAGE];
const TX_PAGES: [u64; 3] = [3 * PAGE, 4 * PAGE, 5 * PAGE];
const RX_AREA: u64 = 6 * PAGE;
const TX_AREA: u64 = RX_AREA + RX_BUFFERS as u64 * BUFFER;
const ARENA_LEN: u64 = TX_AREA + TX_BUFFERS as u64 * BUFFER;

const fn rx_buffer(k: u16) -> u64 {
    RX_AREA + k as u64 * BUFFER
}

const fn tx_buffer(k: u16) -> u64 {
    TX_AREA + k as u64 * BUFFER
}

/// A running virtio-net device.
pub struct Net {
    t: Transport,
    arena: Arena,
    rx: Queue,
    tx: Queue,
    /// Which transmit buffers the device holds.
    tx_busy: u32,
    pub mac: [u8; 6],
    /// The MSI-X line the receive queue interrupts on.
    vector: u16,
}

/// The largest power of two that is at most `want` and `max` (0: none).
fn queue_size(want: u16, max: u16) -> u16 {
    match want.min(max) {
        0 => 0,
        n => 1 << (15 - n.leading_zeros()),
    }
}

impl Net {
    /// Sets the device up (it was reset already, before any export) and
    /// exports the arena to `h`; receive completions interrupt on MSI-X
    /// line `vector`. Returns whether the device took the vector.
    pub fn start(h: Handle, t: Transport, vector: u16) -> Result<(Net, bool), Error> {
        let mut arena = Arena::new(h, VA, ARENA_LEN)?;
        let rx = Queue::new(&mut arena, RX_PAGES, RX_BUFFERS, true);
        let tx = Queue::new(&mut arena, TX_PAGES, TX_BUFFERS, false);
        let mut net = Net {
            t,
            arena,
            rx,
            tx,
            tx_busy: 0,
            mac: [0; 6],
            vector,
        };
        let taken = net.setup()?;
        Ok((net, taken))
    }

    /// Negotiates, reads the address, sets both queues up with every
    /// receive buffer given to the device, then DRIVER_OK.
    fn setup(&mut self) -> Result<bool, Error> {
        let features = self.t.negotiate(REQUIRED, WANTED)?;
        if self.arena.translated() && features & ACCESS_PLATFORM == 0 {
            println!(
                "virtio-net: the device does not offer ACCESS_PLATFORM: it would bypass the I/O MMU"
            );
            return Err(Error::NotSupported);
        }
        self.mac = if features & F_MAC != 0 && self.t.device_len() >= 6 {
            self.t
                .config(|t| core::array::from_fn(|i| t.device_read::<u8>(i as u64)))?
        } else {
            // Locally administered, unicast: MH's own when the device has
            // none to give.
            [0x02, 0x4d, 0x48, 0x00, 0x00, 0x01]
        };
        let (rx_max, tx_max) = (self.t.queue_max(RX_QUEUE), self.t.queue_max(TX_QUEUE));
        if queue_size(RX_BUFFERS, rx_max) != RX_BUFFERS
            || queue_size(TX_BUFFERS, tx_max) != TX_BUFFERS
        {
            println!("virtio-net: queues of {rx_max} and {tx_max} entries are too small");
            return Err(Error::NotSupported);
        }
        let rings = self.rx.addresses(&self.arena);
        let taken = self
            .t
            .queue_setup(RX_QUEUE, RX_BUFFERS, rings, self.vector)?;
        let rings = self.tx.addresses(&self.arena);
        self.t.queue_setup(TX_QUEUE, TX_BUFFERS, rings, NO_VECTOR)?;
        for k in 0..RX_BUFFERS {
            self.give_rx(k);
        }
        self.t.driver_ok();
        self.t.notify(RX_QUEUE);
        Ok(taken)
    }

    /// Resets the device and sets it up again with empty rings (after it
    /// broke the protocol): frames in flight are lost.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.t.reset()?;
        self.rx = Queue::new(&mut self.arena, RX_PAGES, RX_BUFFERS, true);
        self.tx = Queue::new(&mut self.arena, TX_PAGES, TX_BUFFERS, false);
        self.tx_busy = 0;
        self.setup().map(|_| ())
    }

    /// Gives receive buffer `k` (back) to the device, without notifying.
    fn give_rx(&mut self, k: u16) {
        let a = &self.arena;
        self.rx
            .set(a, k, a.dev_addr(rx_buffer(k)), BUFFER as u32, true, None);
        self.rx.publish(a, k);
    }

    /// The next frame the device received, passed to `each` (its bytes,
    /// header stripped); the buffer goes back to the device afterwards.
    /// `Ok(false)`: nothing received. `IoError`: the device broke the used
    /// ring (the caller restarts it).
    pub fn receive(&mut self, each: impl FnOnce(&[u8])) -> Result<bool, Error> {
        let Some((id, len)) = self.rx.take(&self.arena)? else {
            return Ok(false);
        };
        let Ok(k) = u16::try_from(id) else {
            return Err(Error::IoError);
        };
        if k >= RX_BUFFERS {
            println!("virtio-net: the device returned receive descriptor {id}, not a buffer");
            return Err(Error::IoError);
        }
        let len = u64::from(len);
        if (HEADER..=HEADER + u64::from(NIC_FRAME_MAX)).contains(&len) {
            // SAFETY: buffer k is back from the device, which is given it
            // again only below.
            let frame = unsafe { self.arena.bytes(rx_buffer(k) + HEADER, len - HEADER) };
            each(frame);
        } else {
            println!("virtio-net: the device says it wrote {len} bytes into a receive buffer");
        }
        self.give_rx(k);
        self.t.notify(RX_QUEUE);
        Ok(true)
    }

    /// Takes back the transmit buffers the device is done with; `IoError`
    /// if it returns one it does not hold.
    fn reap_tx(&mut self) -> Result<(), Error> {
        while let Some((id, _)) = self.tx.take(&self.arena)? {
            if id >= u32::from(TX_BUFFERS) || self.tx_busy & 1 << id == 0 {
                println!("virtio-net: the device returned transmit descriptor {id}, not in flight");
                return Err(Error::IoError);
            }
            self.tx_busy &= !(1 << id);
        }
        Ok(())
    }

    /// Sends one frame of `len` bytes that `fill` writes into the buffer it
    /// is given (it may fail: nothing is sent then). `Busy`: every
    /// transmit buffer is in flight; `IoError`: the device broke the used
    /// ring (the caller restarts it).
    pub fn send(
        &mut self,
        len: u32,
        fill: impl FnOnce(&mut [u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.reap_tx()?;
        let Some(k) = (0..TX_BUFFERS).find(|&k| self.tx_busy & 1 << k == 0) else {
            return Err(Error::Busy);
        };
        let off = tx_buffer(k);
        // SAFETY: buffer k is not in flight (its bit is clear).
        let buffer = unsafe { self.arena.bytes(off, HEADER + u64::from(len)) };
        let (header, frame) = buffer.split_at_mut(HEADER as usize);
        header.fill(0);
        fill(frame)?;
        let a = &self.arena;
        self.tx
            .set(a, k, a.dev_addr(off), HEADER as u32 + len, false, None);
        self.tx.publish(a, k);
        self.tx_busy |= 1 << k;
        self.t.notify(TX_QUEUE);
        Ok(())
    }
}
