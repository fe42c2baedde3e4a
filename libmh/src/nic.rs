//! The NIC device's client (`abi::nic`, docs/devices/nic.md): raw Ethernet
//! frames, for the protocol server (and the tests that stand in for it).
//!
//! [`Nic::open`] attaches `net0`, maps one area of fresh pages at the
//! address the caller gives — a transmit buffer and [`RX_BUFFERS`] receive
//! buffers — exports it to the device once, maps the three lines, becomes
//! the owner (waiting up to 2 s for a last owner's CLOSE to be taken: the
//! server takes its clients' requests in turn, so it may still be queued),
//! posts every receive buffer and reads the MAC address. [`Nic::send`] copies a
//! frame into the transmit buffer and waits for its completion;
//! [`Nic::try_recv`] takes the next filled receive buffer (in the order
//! they were posted, which is the order the server fills them) and posts
//! it again.
//!
//! Rules: the area stays exported until [`Nic::close`] (or the process's
//! exit); a frame is checked with the server's own function before it is
//! sent; a receive buffer is read only once the server's count says it is
//! filled and its header's sequence number agrees, so a lying server
//! cannot make the client read a frame twice or one that was never
//! written.

use crate::dev::{self, Handle, REGISTRY};
use crate::vm;
use abi::Error;
use abi::nic::*;

/// The name the NIC driver registers.
pub const NAME: &str = "net0";
/// The rights [`Nic::open`] asks for.
pub const RIGHTS: u32 = dev::RIGHT_READ | dev::RIGHT_WRITE | dev::RIGHT_DMA | dev::RIGHT_IRQ;
/// Receive buffers a [`Nic`] keeps posted (with the transmit buffer, 16
/// pages).
pub const RX_BUFFERS: u32 = 31;
/// Bytes of each buffer of the area (a header and the longest frame fit).
const BUFFER: u64 = 2048;
/// Bytes of the area [`Nic::open`] maps: the transmit buffer, then the
/// receive buffers.
pub const AREA_BYTES: u64 = (1 + RX_BUFFERS as u64) * BUFFER;
const _: () = assert!(AREA_BYTES.is_multiple_of(4096));

/// The vectors a [`Nic`] takes its lines on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vectors {
    /// SEND and SYNC completions.
    pub sent: u32,
    /// Receive buffers filled.
    pub rx: u32,
    /// A receive buffer refused or lost.
    pub post_failed: u32,
}

/// An open interface.
#[derive(Debug)]
pub struct Nic {
    handle: Handle,
    vectors: Vectors,
    va: u64,
    iova: u64,
    mac: [u8; 6],
    /// Receive buffers taken so far (the next to look at is
    /// `taken % RX_BUFFERS`).
    taken: u64,
}

impl Nic {
    /// Attaches `net0` and sets the client up, its area at `va` (page
    /// aligned, [`AREA_BYTES`] long, free in the caller's space).
    pub fn open(va: u64, vectors: Vectors) -> Result<Nic, Error> {
        let handle = dev::attach(REGISTRY, NAME, RIGHTS)?;
        let opened = Nic::set_up(handle, va, vectors);
        if opened.is_err() {
            let _ = handle.detach();
            let _ = vm::unmap(va, AREA_BYTES);
        }
        opened
    }

    fn set_up(handle: Handle, va: u64, vectors: Vectors) -> Result<Nic, Error> {
        handle.irq_map(NIC_IRQ_SENT, vectors.sent)?;
        handle.irq_map(NIC_IRQ_RX, vectors.rx)?;
        handle.irq_map(NIC_IRQ_POST_FAILED, vectors.post_failed)?;
        vm::map(va, AREA_BYTES, vm::PROT_RW)?;
        // SAFETY: just mapped read-write; the slice lives only for the
        // export, which keeps the pages for the client's life.
        let area = unsafe { core::slice::from_raw_parts_mut(va as *mut u8, AREA_BYTES as usize) };
        let iova = handle.export(area)?;
        let mut nic = Nic {
            handle,
            vectors,
            va,
            iova,
            mac: [0; 6],
            taken: 0,
        };
        // The first SYNC makes this client the owner, and after it the
        // address is there. `Busy` may only mean that the last owner's
        // CLOSE is still queued behind its other requests (the server
        // takes its clients' requests in turn): ask again for up to 2 s.
        let start = crate::process::sys_info().map_or(0, |i| i.ticks);
        let hz = crate::process::sys_info().map_or(100, |i| i.tick_hz.max(1));
        loop {
            handle.port_out_wait(NIC_PORT_SYNC, 8, 1, 1 << vectors.sent)?;
            let (tag, result) = nic_decode_result(handle.port_in(NIC_IO_SEND_RESULT, 8)?);
            match result {
                Err(Error::Busy)
                    if crate::process::sys_info().map_or(u64::MAX, |i| i.ticks) - start
                        < 2 * hz =>
                {
                    crate::process::yield_now();
                }
                Err(e) => return Err(e),
                Ok(()) if tag != 1 => return Err(Error::IoError),
                Ok(()) => break,
            }
        }
        let mac = handle.port_in(NIC_IO_MAC, 8)?;
        nic.mac = core::array::from_fn(|i| (mac >> (8 * i)) as u8);
        for k in 0..RX_BUFFERS {
            nic.post(k)?;
        }
        Ok(nic)
    }

    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The iova of the client's area (its transmit buffer first) in the
    /// device's view.
    pub fn area_iova(&self) -> u64 {
        self.iova
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The iova of receive buffer `k`.
    fn rx_iova(&self, k: u32) -> u64 {
        self.iova + (1 + u64::from(k)) * BUFFER
    }

    fn post(&self, k: u32) -> Result<(), Error> {
        let word = nic_buffer_word(self.rx_iova(k), BUFFER as u32).ok_or(Error::BadAddress)?;
        self.handle.port_out(NIC_PORT_RX_POST, 8, word)
    }

    /// Sends one frame (`NIC_FRAME_MIN ..= NIC_FRAME_MAX` bytes: the
    /// Ethernet header and payload) and waits until the server took it.
    pub fn send(&self, frame: &[u8]) -> Result<(), Error> {
        let len = u32::try_from(frame.len()).map_err(|_| Error::InvalidArgument)?;
        nic_check_frame(len)?;
        // SAFETY: the transmit buffer is the area's first BUFFER bytes,
        // mapped for the client's life; the server reads it only during
        // the SEND below, which this call waits for.
        let tx = unsafe { core::slice::from_raw_parts_mut(self.va as *mut u8, BUFFER as usize) };
        tx[..frame.len()].copy_from_slice(frame);
        let word = nic_buffer_word(self.iova, len).ok_or(Error::BadAddress)?;
        self.send_word(word)
    }

    /// Sends the frame a raw buffer word names (tests use it to hand the
    /// server words `send` would refuse) and waits for the completion.
    pub fn send_word(&self, word: u64) -> Result<(), Error> {
        self.handle
            .port_out_wait(NIC_PORT_SEND, 8, word, 1 << self.vectors.sent)?;
        nic_decode_result(self.handle.port_in(NIC_IO_SEND_RESULT, 8)?).1
    }

    /// The next received frame, copied into `buf` (its length returned),
    /// or `None` if none has arrived. `InvalidArgument`: `buf` is shorter
    /// than the frame (which is then dropped).
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        let filled = self.handle.port_in(NIC_IO_RX_FILLED, 8)?;
        if filled <= self.taken {
            return Ok(None);
        }
        let k = (self.taken % u64::from(RX_BUFFERS)) as u32;
        let at = self.va + (1 + u64::from(k)) * BUFFER;
        // SAFETY: receive buffer k lies in the area, mapped for the
        // client's life; the server has filled it (the count says so) and
        // writes it again only after it is posted again, below.
        let slot = unsafe { core::slice::from_raw_parts(at as *const u8, BUFFER as usize) };
        let len = u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]);
        let seq = u32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]);
        self.taken += 1;
        let frame = (NIC_RX_HEADER_SIZE as usize)
            .checked_add(len as usize)
            .filter(|&end| end <= BUFFER as usize && u64::from(seq) == self.taken)
            .map(|end| &slot[NIC_RX_HEADER_SIZE as usize..end]);
        let result = match frame {
            None => Err(Error::IoError),
            Some(f) if f.len() > buf.len() => Err(Error::InvalidArgument),
            Some(f) => {
                buf[..f.len()].copy_from_slice(f);
                Ok(Some(f.len()))
            }
        };
        self.post(k)?;
        result
    }

    /// Frames the server dropped for want of a posted buffer.
    pub fn dropped(&self) -> Result<u64, Error> {
        self.handle.port_in(NIC_IO_RX_DROPPED, 8)
    }

    /// Withdraws the area and detaches.
    pub fn close(self) -> Result<(), Error> {
        let withdrawn = self.handle.unexport(self.iova);
        let detached = self.handle.detach();
        let _ = vm::unmap(self.va, AREA_BYTES);
        withdrawn.and(detached)
    }
}
