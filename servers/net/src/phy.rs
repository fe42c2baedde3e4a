//! smoltcp's view of the interface: a `phy::Device` over `libmh::nic`.
//!
//! Rules: a receive token holds one frame already copied out of the NIC
//! client's buffer (the buffer is posted again at once), so smoltcp never
//! holds the driver's memory; a transmit token sends with `Nic::send`,
//! which returns when the driver has copied the frame. A frame the driver
//! refuses is counted and dropped, as a wire would drop it.

use libmh::nic::Nic;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The largest Ethernet frame without its checksum.
const FRAME_MAX: usize = abi::nic::NIC_FRAME_MAX as usize;

pub struct Interface {
    pub nic: Nic,
    rx: [u8; FRAME_MAX],
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub tx_dropped: u64,
}

impl Interface {
    pub fn new(nic: Nic) -> Interface {
        Interface {
            nic,
            rx: [0; FRAME_MAX],
            rx_frames: 0,
            tx_frames: 0,
            tx_dropped: 0,
        }
    }
}

pub struct RxToken<'a> {
    frame: &'a [u8],
}

pub struct TxToken<'a> {
    nic: &'a Nic,
    sent: &'a mut u64,
    dropped: &'a mut u64,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = [0u8; FRAME_MAX];
        let n = len.min(FRAME_MAX);
        let r = f(&mut frame[..n]);
        match self.nic.send(&frame[..n]) {
            Ok(()) => *self.sent += 1,
            Err(_) => *self.dropped += 1,
        }
        r
    }
}

impl phy::Device for Interface {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let len = match self.nic.try_recv(&mut self.rx) {
            Ok(Some(len)) => len,
            // Nothing, or a buffer the driver filled wrongly: no frame.
            Ok(None) | Err(_) => return None,
        };
        self.rx_frames += 1;
        Some((
            RxToken {
                frame: &self.rx[..len],
            },
            TxToken {
                nic: &self.nic,
                sent: &mut self.tx_frames,
                dropped: &mut self.tx_dropped,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            nic: &self.nic,
            sent: &mut self.tx_frames,
            dropped: &mut self.tx_dropped,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME_MAX;
        caps.max_burst_size = Some(1);
        caps
    }
}
