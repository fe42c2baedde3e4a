//! virtio-net: the network driver. It finds the first modern virtio-net
//! PCI function (1af4:1041), claims it through `platform` as the hardware
//! device `net0-pci` (or attaches the claim a previous instance left),
//! drives it with libvirtio (`device`), and serves the `net0` user device
//! (`abi::nic`, docs/devices/nic.md; the requests are in `nic`) to one
//! protocol server at a time.
//!
//! Start-up order, as virtio-blk's and for the same reason (a restart
//! after a crash is safe): register `net0` first, reset the device, release
//! the quarantine the kernel kept for a dead predecessor's exports, and
//! only then export this driver's memory and set the device up.
//!
//! Frames arrive by the receive queue's MSI-X interrupt; the driver looks
//! at the used ring after every event as well, so nothing waits for an
//! interrupt that did not come. A function without MSI-X is not driven.
//!
//! Exit statuses: 2 a bad argument, 3 no virtio-net function (or it cannot
//! be claimed), 4 `net0` cannot be registered, 5 the device cannot be set
//! up (or set up again after it failed).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod device;
mod nic;

use abi::Error;
use abi::nic::{NIC_IOSPACE_SIZE, NIC_IRQ_LINES, NIC_QUEUE_PER_CLIENT};
use device::Net;
use libmh::dev::{self, Handle, REGISTRY};
use libmh::pci::Function;
use libmh::{Args, println};
use libvirtio::Transport;
use nic::{EXIT_DEVICE_LOST, Nic, V_FAULT, V_RX};

/// The user device this driver serves.
pub const NET_NAME: &str = "net0";
/// The hardware device its PCI function becomes.
pub const HW_NAME: &str = "net0-pci";
/// virtio's modern (non-transitional) network device.
const VIRTIO_NET_MODERN: u16 = 0x1041;
/// Raised when a request is queued on `net0`.
const V_REQUEST: u32 = 1;

libmh::entry!(main);

fn main(args: Args) -> i32 {
    if let Some(word) = args.iter().next() {
        println!("virtio-net: unknown argument '{word}' (it takes none)");
        return 2;
    }
    let dev = match dev::create_queued(
        REGISTRY,
        NET_NAME,
        NIC_IRQ_LINES,
        NIC_IOSPACE_SIZE,
        V_REQUEST,
        NIC_QUEUE_PER_CLIENT,
    ) {
        Ok(d) => d,
        Err(e) => {
            println!("virtio-net: cannot register '{NET_NAME}': {e}");
            return 4;
        }
    };
    let (hw, platform) = match libvirtio::claim("virtio-net", HW_NAME, VIRTIO_NET_MODERN) {
        Ok(x) => x,
        Err(e) => {
            println!("virtio-net: no virtio-net function to drive: {e}");
            return 3;
        }
    };
    let mut nic = match start(hw, platform) {
        Ok(n) => n,
        Err(e) => {
            println!("virtio-net: cannot set the device up: {e}");
            return EXIT_DEVICE_LOST;
        }
    };
    match libmh::server::serve(dev, V_REQUEST, 1 << V_RX | 1 << V_FAULT, &mut nic) {
        Ok(code) => code,
        Err(e) => {
            println!("virtio-net: stopped: {e}");
            1
        }
    }
}

/// Reset, quarantine release, the interrupt, and the device's set-up.
fn start(hw: Handle, platform: Handle) -> Result<Nic, Error> {
    let f = Function(hw);
    let t = Transport::open("virtio-net", f)?;
    t.reset()?;
    dev::release_quarantine(platform, HW_NAME)?;
    let _ = platform.detach();
    // MSI-X only: INTx off (a level line nobody acknowledges would only
    // disturb whoever shares it).
    let command = f.config_read(4, 2)?;
    f.config_write(4, 2, command | 0x400)?;
    if hw.info()?.irq_lines == 0 {
        println!("virtio-net: the function has no MSI-X lines the kernel maps");
        return Err(Error::NotSupported);
    }
    hw.irq_map(0, V_RX)?;
    let (net, taken) = Net::start(hw, t, 0)?;
    if !taken {
        println!("virtio-net: the device refused MSI-X vector 0");
        return Err(Error::NotSupported);
    }
    // Faults are worth a line in the log; not having the line is not fatal.
    let _ = hw.irq_map(abi::hw::HW_LINE_DMA_FAULT, V_FAULT);
    let m = net.mac;
    println!(
        "virtio-net: address {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {} receive buffers; serving '{NET_NAME}'",
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        device::RX_BUFFERS
    );
    Ok(Nic::new(f, net))
}
