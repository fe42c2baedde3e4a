//! The `net0` user device (`abi::nic`, docs/devices/nic.md): the frames
//! of one owner — the protocol server — between its exported memory and
//! the device.
//!
//! Rules: one owner at a time: the first client to send a request while
//! the interface is free (not the first to attach: the kernel hands a
//! server its clients' requests in turn, so one that attached and left
//! may still have its CLOSE queued behind a newcomer's OPEN); every other
//! client's request is answered `Busy`. Its posted receive buffers are filled in
//! the order posted; a frame with no buffer is dropped and counted. Every
//! request gets its answer (SEND and SYNC a result word on
//! `NIC_IRQ_SENT`, a refused RX_POST one on `NIC_IRQ_POST_FAILED`); a
//! client's bad iova is the client's error (`BadAddress`), never the
//! driver's. A device that breaks the protocol is reset and set up again
//! (frames in flight are lost, which Ethernet allows); one that cannot be
//! set up again stops the driver, and init may start a new one.

use crate::device::Net;
use abi::Error;
use abi::nic::*;
use abi::userdev::{ClientId, REQUEST_CLOSE, REQUEST_OUT, Request};
use libmh::dev::Served;
use libmh::pci::Function;
use libmh::println;
use libmh::server::{Reply, Server};

/// The exit status when the device cannot be set up again.
pub const EXIT_DEVICE_LOST: i32 = 5;
/// The driver's vectors: the device's receive interrupt (MSI-X line 0)
/// and the function's DMA-fault line.
pub const V_RX: u32 = 2;
pub const V_FAULT: u32 = 3;

/// A receive buffer the owner lent (its length was checked at the post:
/// it holds a header and the longest frame).
#[derive(Clone, Copy)]
struct Posted {
    iova: u64,
}

/// The owner's receive buffers, oldest first (a ring).
struct Posts {
    ring: [Posted; NIC_RX_POSTED_MAX as usize],
    head: usize,
    count: usize,
}

impl Posts {
    const fn new() -> Posts {
        Posts {
            ring: [Posted { iova: 0 }; NIC_RX_POSTED_MAX as usize],
            head: 0,
            count: 0,
        }
    }

    fn push(&mut self, p: Posted) -> Result<(), Error> {
        if self.count == self.ring.len() {
            return Err(Error::LimitReached);
        }
        self.ring[(self.head + self.count) % self.ring.len()] = p;
        self.count += 1;
        Ok(())
    }

    fn pop(&mut self) -> Option<Posted> {
        if self.count == 0 {
            return None;
        }
        let p = self.ring[self.head];
        self.head = (self.head + 1) % self.ring.len();
        self.count -= 1;
        Some(p)
    }
}

/// The owner and what it has.
struct Owner {
    client: ClientId,
    posts: Posts,
    filled: u64,
    dropped: u64,
    sent: u64,
}

pub struct Nic {
    hw: Function,
    net: Net,
    owner: Option<Owner>,
    stop: Option<i32>,
}

fn mac_word(mac: [u8; 6]) -> u64 {
    mac.iter()
        .enumerate()
        .fold(0, |w, (i, &b)| w | u64::from(b) << (8 * i))
}

impl Nic {
    pub fn new(hw: Function, net: Net) -> Nic {
        Nic {
            hw,
            net,
            owner: None,
            stop: None,
        }
    }

    /// Makes `client` the owner if there is none; whether it is the owner.
    fn own(&mut self, dev: Served, client: ClientId) -> bool {
        match &self.owner {
            Some(o) => o.client == client,
            None => {
                self.owner = Some(Owner {
                    client,
                    posts: Posts::new(),
                    filled: 0,
                    dropped: 0,
                    sent: 0,
                });
                let words = [
                    (NIC_IO_MAC, mac_word(self.net.mac)),
                    (NIC_IO_RX_FILLED, 0),
                    (NIC_IO_RX_DROPPED, 0),
                    (NIC_IO_TX_SENT, 0),
                    (NIC_IO_POST_RESULT, 0),
                ];
                for (port, value) in words {
                    let _ = dev.write_iospace(client, port, 8, value);
                }
                true
            }
        }
    }

    fn out(&mut self, dev: Served, r: &Request) -> Reply {
        let sent =
            |result| Reply::word(NIC_IO_SEND_RESULT, nic_result_word(0, result), NIC_IRQ_SENT);
        if !self.own(dev, r.client) {
            return match r.port {
                NIC_PORT_RX_POST => Reply::word(
                    NIC_IO_POST_RESULT,
                    nic_result_word(0, Err(Error::Busy)),
                    NIC_IRQ_POST_FAILED,
                ),
                _ => sent(Err(Error::Busy)),
            };
        }
        if r.size != 8 {
            return sent(Err(Error::InvalidArgument));
        }
        match r.port {
            NIC_PORT_SEND => sent(self.send(dev, r.client, r.value)),
            NIC_PORT_RX_POST => match self.post(r.value) {
                Ok(()) => Reply::None,
                Err(e) => Reply::word(
                    NIC_IO_POST_RESULT,
                    nic_result_word(0, Err(e)),
                    NIC_IRQ_POST_FAILED,
                ),
            },
            NIC_PORT_SYNC => Reply::word(
                NIC_IO_SEND_RESULT,
                nic_result_word(r.value as u32, Ok(())),
                NIC_IRQ_SENT,
            ),
            _ => sent(Err(Error::NotSupported)),
        }
    }

    fn send(&mut self, dev: Served, client: ClientId, word: u64) -> Result<(), Error> {
        let (iova, len) = nic_buffer_of(word);
        nic_check_frame(len)?;
        let result = self
            .net
            .send(len, |frame| dev.dma_read(client, iova, frame));
        match result {
            Err(Error::IoError) => {
                self.device_failed("broke the transmit ring");
                Err(Error::IoError)
            }
            Err(e) => Err(e),
            Ok(()) => {
                if let Some(o) = &mut self.owner {
                    o.sent += 1;
                    let _ = dev.write_iospace(client, NIC_IO_TX_SENT, 8, o.sent);
                }
                Ok(())
            }
        }
    }

    fn post(&mut self, word: u64) -> Result<(), Error> {
        let (iova, len) = nic_buffer_of(word);
        if len < NIC_RX_BUFFER_MIN {
            return Err(Error::InvalidArgument);
        }
        let o = self.owner.as_mut().ok_or(Error::Busy)?;
        o.posts.push(Posted { iova })
    }

    /// Hands every frame the device has to the owner of `dev` (without
    /// one, frames are dropped).
    fn drain(&mut self, dev: Served) {
        let mut filled_any = false;
        loop {
            let owner = &mut self.owner;
            let got = self.net.receive(|frame| {
                let Some(o) = owner.as_mut() else {
                    return;
                };
                let Some(p) = o.posts.pop() else {
                    o.dropped += 1;
                    let _ = dev.write_iospace(o.client, NIC_IO_RX_DROPPED, 8, o.dropped);
                    return;
                };
                let mut buf = [0u8; (NIC_RX_HEADER_SIZE + NIC_FRAME_MAX) as usize];
                let seq = (o.filled + 1) as u32;
                let n = frame.len();
                buf[..4].copy_from_slice(&(n as u32).to_le_bytes());
                buf[4..8].copy_from_slice(&seq.to_le_bytes());
                let end = NIC_RX_HEADER_SIZE as usize + n;
                buf[NIC_RX_HEADER_SIZE as usize..end].copy_from_slice(frame);
                match dev.dma_write(o.client, &buf[..end], p.iova) {
                    Ok(()) => {
                        o.filled += 1;
                        let _ = dev.write_iospace(o.client, NIC_IO_RX_FILLED, 8, o.filled);
                        filled_any = true;
                    }
                    Err(e) => {
                        // The buffer was not the client's to lend: it is
                        // gone, and the client hears why.
                        o.dropped += 1;
                        let _ = dev.write_iospace(o.client, NIC_IO_RX_DROPPED, 8, o.dropped);
                        let _ = dev.write_iospace(
                            o.client,
                            NIC_IO_POST_RESULT,
                            8,
                            nic_result_word(0, Err(e)),
                        );
                        let _ = dev.irq(o.client, NIC_IRQ_POST_FAILED);
                    }
                }
            });
            match got {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => {
                    self.device_failed("broke the receive ring");
                    break;
                }
            }
        }
        if filled_any && let Some(o) = &self.owner {
            let _ = dev.irq(o.client, NIC_IRQ_RX);
        }
    }

    /// The device broke the protocol: reset it and set it up again, or
    /// stop serving.
    fn device_failed(&mut self, why: &str) {
        println!("virtio-net: the device {why}; resetting it");
        if let Err(e) = self.net.restart() {
            println!("virtio-net: the device cannot be set up again ({e}); stopping");
            self.stop = Some(EXIT_DEVICE_LOST);
        } else if self.hw.config_read(4, 2).is_ok_and(|c| c & 0x4 == 0) {
            // The kernel stopped the function's DMA (it kept faulting):
            // only a fresh attachment turns it on again.
            println!("virtio-net: the kernel stopped the device's DMA; stopping");
            self.stop = Some(EXIT_DEVICE_LOST);
        }
    }
}

impl Server for Nic {
    fn request(&mut self, dev: Served, r: &Request) -> Reply {
        if let Some(code) = self.stop {
            return Reply::Stop(code);
        }
        match r.kind {
            REQUEST_CLOSE => {
                if self.owner.as_ref().is_some_and(|o| o.client == r.client) {
                    self.owner = None;
                }
                Reply::None
            }
            REQUEST_OUT => self.out(dev, r),
            // Opens own nothing (see the module's rules); clones (a fork
            // of a handle) are clients of their own; reads of the I/O
            // space never reach the server.
            _ => Reply::None,
        }
    }

    fn interrupt(&mut self, _dev: Served, vectors: u64) {
        if vectors & 1 << V_FAULT != 0 {
            println!("virtio-net: the I/O MMU blocked a DMA request of the device");
        }
    }

    fn idle(&mut self, dev: Served) -> Option<i32> {
        // After any event: the receive interrupt, a request, a fault. A
        // look at the used ring costs little, and no frame waits for an
        // interrupt that was coalesced away.
        self.drain(dev);
        self.stop
    }
}
